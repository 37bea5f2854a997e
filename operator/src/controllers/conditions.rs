//! Status conditions: keep `lastTransitionTime` unless the status actually changes.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};
use k8s_openapi::jiff::Timestamp;

/// A condition with the given type, status, reason and message.
pub fn condition(
    type_: &str,
    ok: bool,
    reason: &str,
    message: impl Into<String>,
    generation: Option<i64>,
) -> Condition {
    Condition {
        type_: type_.into(),
        status: if ok { "True" } else { "False" }.into(),
        reason: reason.into(),
        message: message.into(),
        observed_generation: generation,
        last_transition_time: Time(Timestamp::now()),
    }
}

/// Merges `new` conditions into the `old` list: a condition whose status did not change keeps
/// its old transition time, so status writes stay idempotent.
pub fn merge(old: &[Condition], new: Vec<Condition>) -> Vec<Condition> {
    new.into_iter()
        .map(|mut c| {
            if let Some(prev) = old
                .iter()
                .find(|o| o.type_ == c.type_ && o.status == c.status)
            {
                c.last_transition_time = prev.last_transition_time.clone();
            }
            c
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unchanged_status_keeps_transition_time() {
        let mut old = condition("Ready", true, "A", "m", None);
        old.last_transition_time = Time(Timestamp::UNIX_EPOCH);
        let merged = merge(
            &[old.clone()],
            vec![condition("Ready", true, "B", "n", Some(2))],
        );
        assert_eq!(merged[0].last_transition_time, old.last_transition_time);
        assert_eq!(merged[0].reason, "B");
        let flipped = merge(
            &[old.clone()],
            vec![condition("Ready", false, "B", "n", None)],
        );
        assert_ne!(flipped[0].last_transition_time, old.last_transition_time);
    }
}
