//! Registry replication as pure decisions: ECR's constraints on a replication configuration
//! in ECR's words, which destinations a repository's pushes go to, each destination's state
//! for one image (the durable record the registry keeps beside the manifest), the retry
//! schedule, and the order in which a repository's waiting images are copied.
//!
//! As in ECR, only what is pushed while a rule matches is replicated (a push queues the image
//! for the rule's destinations), never what the repository held before; deletions are not
//! replicated.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::api::replication_configuration::{
    ReplicationDestination, ReplicationRule, RepositoryFilterType,
};

/// ECR: at most 10 rules per replication configuration.
pub const MAX_RULES: usize = 10;
/// ECR: at most 25 unique destinations across all rules.
pub const MAX_DESTINATIONS: usize = 25;
/// ECR: at most 100 repository filters per rule.
pub const MAX_FILTERS: usize = 100;

/// The first retry's delay; each next one doubles, up to [`MAX_DELAY`].
pub const FIRST_DELAY: Duration = Duration::from_secs(1);
pub const MAX_DELAY: Duration = Duration::from_secs(60);
/// Attempts before an image is FAILED for a destination that keeps failing (about 7
/// minutes of retries). A new push of the image, or a restart, tries again.
pub const MAX_ATTEMPTS: u32 = 12;

/// ECR's `ReplicationStatus`.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum ReplicationStatus {
    InProgress,
    Complete,
    Failed,
}

/// Why a copy failed (ECR's `failureCode`; ECR documents no values, these are kubecs').
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum FailureCode {
    /// No `destinationRegistries` entry says where the destination is.
    DestinationUnknown,
    /// No answer, a 5xx, a 429 or a timeout: retried.
    DestinationUnavailable,
    /// 401 or 403: the destination refused the credentials.
    AccessDenied,
    /// The destination has no such repository and does not create it on push.
    RepositoryNotFound,
    /// Any other refusal of the content (a 4xx).
    Rejected,
}

impl FailureCode {
    /// Whether another attempt may succeed without anyone changing anything.
    pub fn retryable(self) -> bool {
        matches!(self, FailureCode::DestinationUnavailable)
    }

    /// The code a destination's HTTP status stands for; None for a success.
    pub fn of_status(status: u16, name_unknown: bool) -> Option<FailureCode> {
        match status {
            200..=299 => None,
            401 | 403 => Some(FailureCode::AccessDenied),
            404 if name_unknown => Some(FailureCode::RepositoryNotFound),
            408 | 429 | 500..=599 => Some(FailureCode::DestinationUnavailable),
            _ => Some(FailureCode::Rejected),
        }
    }
}

/// Checks a configuration as PutReplicationConfiguration does.
pub fn validate(rules: &[ReplicationRule]) -> Result<(), String> {
    if rules.len() > MAX_RULES {
        return Err(format!(
            "Invalid parameter at 'replicationConfiguration.rules' failed to satisfy constraint: 'Member must have length less than or equal to {MAX_RULES}'"
        ));
    }
    let mut unique = BTreeSet::new();
    for (i, r) in rules.iter().enumerate() {
        let at = format!("replicationConfiguration.rules.{}", i + 1);
        if r.repository_filters.len() > MAX_FILTERS {
            return Err(format!(
                "Invalid parameter at '{at}.repositoryFilters' failed to satisfy constraint: 'Member must have length less than or equal to {MAX_FILTERS}'"
            ));
        }
        for d in &r.destinations {
            validate_destination(d, &at)?;
            unique.insert(d);
        }
        for f in &r.repository_filters {
            validate_filter(&f.filter, &at)?;
        }
    }
    if unique.len() > MAX_DESTINATIONS {
        return Err(format!(
            "Invalid parameter at 'replicationConfiguration' failed to satisfy constraint: 'A replication configuration may have at most {MAX_DESTINATIONS} unique destinations across all rules'"
        ));
    }
    Ok(())
}

fn validate_destination(d: &ReplicationDestination, at: &str) -> Result<(), String> {
    let region_ok = (2..=25).contains(&d.region.len())
        && d.region
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-');
    if !region_ok {
        return Err(format!(
            "Invalid parameter at '{at}.destinations.region' failed to satisfy constraint: 'must satisfy regular expression pattern: [0-9a-z-]{{2,25}}'"
        ));
    }
    if d.registry_id.len() != 12 || !d.registry_id.bytes().all(|b| b.is_ascii_digit()) {
        return Err(format!(
            "Invalid parameter at '{at}.destinations.registryId' failed to satisfy constraint: 'must satisfy regular expression pattern: [0-9]{{12}}'"
        ));
    }
    Ok(())
}

/// ECR's RepositoryFilterValue: 2-256 characters of a repository name's start.
fn validate_filter(f: &str, at: &str) -> Result<(), String> {
    let chars_ok = f
        .bytes()
        .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"._-/".contains(&b));
    if !(2..=256).contains(&f.len()) || !chars_ok {
        return Err(format!(
            "Invalid parameter at '{at}.repositoryFilters.filter' failed to satisfy constraint: 'must satisfy regular expression pattern: ^(?:[a-z0-9]+(?:[._-][a-z0-9]*)*/)*[a-z0-9]*(?:[._-][a-z0-9]*)*$'"
        ));
    }
    Ok(())
}

/// Whether `rule` replicates `repo`: no filter, or a filter that matches.
pub fn rule_matches(rule: &ReplicationRule, repo: &str) -> bool {
    rule.repository_filters.is_empty()
        || rule.repository_filters.iter().any(|f| match f.filter_type {
            RepositoryFilterType::PrefixMatch => repo.starts_with(&f.filter),
        })
}

/// The destinations of `repo`'s pushes: those of every matching rule, each once, in the
/// rules' order.
pub fn destinations_for(rules: &[ReplicationRule], repo: &str) -> Vec<ReplicationDestination> {
    let mut out: Vec<ReplicationDestination> = Vec::new();
    for r in rules.iter().filter(|r| rule_matches(r, repo)) {
        for d in &r.destinations {
            if !out.contains(d) {
                out.push(d.clone());
            }
        }
    }
    out
}

/// The delay before attempt `failed + 1`, after `failed` failed attempts (at least 1).
pub fn retry_delay(failed: u32) -> Duration {
    let doubled = FIRST_DELAY.saturating_mul(1u32 << failed.saturating_sub(1).min(20));
    doubled.min(MAX_DELAY)
}

/// One destination's state for one image: the durable record (JSON) kept beside the image.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct DestinationState {
    pub region: String,
    pub registry_id: String,
    pub status: ReplicationStatus,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub failure_code: Option<FailureCode>,
    /// Failed attempts since the last push of the image.
    #[serde(default)]
    pub attempts: u32,
    /// Unix milliseconds before which no attempt is made (a retry's backoff).
    #[serde(default)]
    pub not_before_ms: u64,
    /// When the image was last pushed (queued), unix milliseconds: a copy that started
    /// before a later push does not mark that push done.
    #[serde(default)]
    pub queued_ms: u64,
}

impl DestinationState {
    pub fn destination(&self) -> ReplicationDestination {
        ReplicationDestination {
            region: self.region.clone(),
            registry_id: self.registry_id.clone(),
        }
    }
}

/// Every destination's state for one image.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq)]
pub struct ImageReplication {
    pub destinations: Vec<DestinationState>,
}

impl ImageReplication {
    /// The record after a push of the image (a manifest or a tag) at `now_ms`: each of
    /// `destinations` waits for a copy (again), whatever it was.
    pub fn queued(
        prior: Option<ImageReplication>,
        destinations: &[ReplicationDestination],
        now_ms: u64,
    ) -> ImageReplication {
        let mut r = prior.unwrap_or_default();
        for d in destinations {
            let fresh = DestinationState {
                region: d.region.clone(),
                registry_id: d.registry_id.clone(),
                status: ReplicationStatus::InProgress,
                failure_code: None,
                attempts: 0,
                not_before_ms: 0,
                queued_ms: now_ms,
            };
            match r.destinations.iter_mut().find(|s| s.destination() == *d) {
                Some(s) => *s = fresh,
                None => r.destinations.push(fresh),
            }
        }
        r
    }

    /// The destinations due for an attempt at `now_ms`: IN_PROGRESS past their backoff.
    pub fn due(&self, now_ms: u64) -> Vec<ReplicationDestination> {
        self.destinations
            .iter()
            .filter(|s| s.status == ReplicationStatus::InProgress && s.not_before_ms <= now_ms)
            .map(DestinationState::destination)
            .collect()
    }

    /// The earliest future attempt, if any destination waits on a backoff.
    pub fn next_attempt_ms(&self) -> Option<u64> {
        self.destinations
            .iter()
            .filter(|s| s.status == ReplicationStatus::InProgress)
            .map(|s| s.not_before_ms)
            .min()
    }

    /// Whether anything is left to do (IN_PROGRESS somewhere).
    pub fn pending(&self) -> bool {
        self.destinations
            .iter()
            .any(|s| s.status == ReplicationStatus::InProgress)
    }

    /// Records the outcome of an attempt at `d` that started at `started_ms` and ended at
    /// `now_ms`. A push queued after the attempt started keeps the destination IN_PROGRESS
    /// (the copy may predate a tag). Returns whether the record changed.
    pub fn settle(
        &mut self,
        d: &ReplicationDestination,
        started_ms: u64,
        now_ms: u64,
        outcome: Result<(), FailureCode>,
    ) -> bool {
        let Some(s) = self.destinations.iter_mut().find(|s| s.destination() == *d) else {
            return false;
        };
        if s.queued_ms > started_ms {
            return false;
        }
        match outcome {
            Ok(()) => {
                s.status = ReplicationStatus::Complete;
                s.failure_code = None;
                s.attempts = 0;
                s.not_before_ms = 0;
            }
            Err(code) => {
                s.attempts += 1;
                s.failure_code = Some(code);
                if code.retryable() && s.attempts < MAX_ATTEMPTS {
                    s.not_before_ms = now_ms + retry_delay(s.attempts).as_millis() as u64;
                } else {
                    s.status = ReplicationStatus::Failed;
                }
            }
        }
        true
    }

    /// Every FAILED destination back to IN_PROGRESS (at a restart: the destination may be
    /// back, or fixed).
    pub fn retry_failed(&mut self) -> bool {
        let mut changed = false;
        for s in &mut self.destinations {
            if s.status == ReplicationStatus::Failed {
                s.status = ReplicationStatus::InProgress;
                s.attempts = 0;
                s.not_before_ms = 0;
                changed = true;
            }
        }
        changed
    }
}

/// Each destination's images by status, for Repository status (sorted by destination).
pub fn summarize<'a>(
    records: impl IntoIterator<Item = &'a ImageReplication>,
) -> Vec<crate::api::repository::ReplicationSummary> {
    let mut by: BTreeMap<ReplicationDestination, crate::api::repository::ReplicationSummary> =
        BTreeMap::new();
    for s in records.into_iter().flat_map(|r| &r.destinations) {
        let e = by.entry(s.destination()).or_insert_with(|| {
            crate::api::repository::ReplicationSummary {
                region: s.region.clone(),
                registry_id: s.registry_id.clone(),
                ..Default::default()
            }
        });
        match s.status {
            ReplicationStatus::Complete => e.complete += 1,
            ReplicationStatus::InProgress => e.in_progress += 1,
            ReplicationStatus::Failed => e.failed += 1,
        }
    }
    by.into_values().collect()
}

/// The order in which images are copied: an image before the images that refer to it (a
/// signature after its image, a signature of an SBOM after the SBOM), so that a referrer
/// never reaches a destination before its subject; otherwise by digest, for a stable order.
/// `subjects`: each image's subject, if any.
pub fn copy_order<D: Ord + Clone + std::hash::Hash>(subjects: &BTreeMap<D, Option<D>>) -> Vec<D> {
    let mut depth: HashMap<&D, usize> = HashMap::new();
    for d in subjects.keys() {
        // Follow the subject chain (bounded: a cycle cannot be pushed, but stay safe).
        let (mut n, mut at) = (0, d);
        while let Some(Some(s)) = subjects.get(at) {
            n += 1;
            at = s;
            if n > subjects.len() {
                break;
            }
        }
        depth.insert(d, n);
    }
    let mut out: Vec<D> = subjects.keys().cloned().collect();
    out.sort_by_key(|d| depth[d]);
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::replication_configuration::RepositoryFilter;

    fn dest(region: &str) -> ReplicationDestination {
        ReplicationDestination {
            region: region.into(),
            registry_id: "000000000002".into(),
        }
    }

    fn rule(regions: &[&str], filters: &[&str]) -> ReplicationRule {
        ReplicationRule {
            destinations: regions.iter().map(|r| dest(r)).collect(),
            repository_filters: filters
                .iter()
                .map(|f| RepositoryFilter {
                    filter: f.to_string(),
                    filter_type: RepositoryFilterType::PrefixMatch,
                })
                .collect(),
        }
    }

    #[test]
    fn a_repository_goes_to_the_destinations_of_every_matching_rule_once() {
        let rules = vec![
            rule(&["west"], &["prod", "shared/"]),
            rule(&["east", "west"], &["prod/"]),
            rule(&["north"], &[]),
        ];
        assert_eq!(
            destinations_for(&rules, "prod/web"),
            vec![dest("west"), dest("east"), dest("north")]
        );
        assert_eq!(
            destinations_for(&rules, "production"),
            vec![dest("west"), dest("north")]
        );
        assert_eq!(destinations_for(&rules, "dev/web"), vec![dest("north")]);
        assert!(destinations_for(&rules[..2], "dev/web").is_empty());
    }

    #[test]
    fn ecr_limits_are_refused_in_ecr_words() {
        assert!(validate(&[rule(&["west"], &["prod"])]).is_ok());
        let eleven = vec![rule(&["west"], &[]); 11];
        assert!(
            validate(&eleven)
                .unwrap_err()
                .contains("less than or equal to 10")
        );
        let many: Vec<String> = (0..26).map(|i| format!("r{i}")).collect();
        let many: Vec<&str> = many.iter().map(String::as_str).collect();
        let e = validate(&[rule(&many[..13], &[]), rule(&many[13..], &[])]).unwrap_err();
        assert!(e.contains("25 unique destinations"), "{e}");
        // The same destination in several rules counts once.
        assert!(validate(&vec![rule(&many[..25], &[]); 3]).is_ok());
        let filters = vec!["ab"; 101];
        assert!(
            validate(&[rule(&["west"], &filters)])
                .unwrap_err()
                .contains("rules.1.repositoryFilters")
        );
        assert!(
            validate(&[rule(&["US-EAST-1"], &[])])
                .unwrap_err()
                .contains("destinations.region")
        );
        let mut bad_id = rule(&["west"], &[]);
        bad_id.destinations[0].registry_id = "12".into();
        assert!(validate(&[bad_id]).unwrap_err().contains("registryId"));
        assert!(
            validate(&[rule(&["west"], &["A"])])
                .unwrap_err()
                .contains("filter")
        );
    }

    #[test]
    fn retries_back_off_doubling_up_to_a_minute() {
        let delays: Vec<u64> = (1..=9).map(|n| retry_delay(n).as_secs()).collect();
        assert_eq!(delays, vec![1, 2, 4, 8, 16, 32, 60, 60, 60]);
        assert_eq!(retry_delay(0), FIRST_DELAY);
        assert_eq!(retry_delay(u32::MAX), MAX_DELAY);
        let total: Duration = (1..MAX_ATTEMPTS).map(retry_delay).sum();
        assert!(total > Duration::from_secs(300) && total < Duration::from_secs(600));
    }

    #[test]
    fn an_unreachable_destination_is_retried_then_failed_and_a_push_queues_again() {
        let d = dest("west");
        let mut r = ImageReplication::queued(None, std::slice::from_ref(&d), 1_000);
        assert_eq!(r.due(1_000), vec![d.clone()]);
        let down = Err(FailureCode::DestinationUnavailable);
        assert!(r.settle(&d, 1_000, 1_500, down));
        assert_eq!(r.destinations[0].status, ReplicationStatus::InProgress);
        assert!(r.due(2_000).is_empty(), "backing off for 1 s");
        assert_eq!(r.next_attempt_ms(), Some(2_500));
        assert_eq!(r.due(2_500), vec![d.clone()]);
        for i in 1..MAX_ATTEMPTS {
            r.settle(&d, 2_000 + u64::from(i), 3_000, down);
        }
        assert_eq!(r.destinations[0].status, ReplicationStatus::Failed);
        assert_eq!(
            r.destinations[0].failure_code,
            Some(FailureCode::DestinationUnavailable)
        );
        assert!(!r.pending());
        let r = ImageReplication::queued(Some(r), std::slice::from_ref(&d), 9_000);
        assert_eq!(r.destinations.len(), 1);
        assert_eq!(r.destinations[0].status, ReplicationStatus::InProgress);
        assert_eq!(r.destinations[0].failure_code, None);
    }

    #[test]
    fn a_refusal_fails_at_once_and_a_restart_retries_it() {
        let d = dest("west");
        let mut r = ImageReplication::queued(None, std::slice::from_ref(&d), 1);
        r.settle(&d, 1, 2, Err(FailureCode::AccessDenied));
        assert_eq!(r.destinations[0].status, ReplicationStatus::Failed);
        assert!(r.retry_failed());
        assert_eq!(r.due(3), vec![d]);
    }

    #[test]
    fn a_copy_that_predates_a_later_push_does_not_complete_it() {
        let d = dest("west");
        let r = ImageReplication::queued(None, std::slice::from_ref(&d), 10);
        let mut r = ImageReplication::queued(Some(r), std::slice::from_ref(&d), 20);
        assert!(!r.settle(&d, 15, 30, Ok(())));
        assert_eq!(r.destinations[0].status, ReplicationStatus::InProgress);
        assert!(r.settle(&d, 25, 30, Ok(())));
        assert_eq!(r.destinations[0].status, ReplicationStatus::Complete);
        assert!(!r.settle(&dest("east"), 25, 30, Ok(())));
    }

    #[test]
    fn subjects_are_copied_before_their_referrers() {
        let subjects = BTreeMap::from([
            ("a-signature-of-the-sbom", Some("b-sbom")),
            ("b-sbom", Some("z-image")),
            ("c-signature", Some("z-image")),
            ("z-image", None),
            ("y-other", None),
        ]);
        let order = copy_order(&subjects);
        assert_eq!(
            order,
            vec![
                "y-other",
                "z-image",
                "b-sbom",
                "c-signature",
                "a-signature-of-the-sbom"
            ]
        );
    }

    #[test]
    fn repository_status_counts_each_destinations_images_by_status() {
        let (w, e) = (dest("west"), dest("east"));
        let mut one = ImageReplication::queued(None, &[w.clone(), e.clone()], 1);
        one.settle(&w, 1, 2, Ok(()));
        let mut two = ImageReplication::queued(None, std::slice::from_ref(&w), 1);
        two.settle(&w, 1, 2, Err(FailureCode::Rejected));
        let s = summarize([&one, &two]);
        assert_eq!(s.len(), 2);
        assert_eq!((s[0].region.as_str(), s[0].in_progress), ("east", 1));
        assert_eq!(
            (s[1].region.as_str(), s[1].complete, s[1].failed),
            ("west", 1, 1)
        );
    }

    #[test]
    fn http_answers_map_to_failure_codes() {
        assert_eq!(FailureCode::of_status(201, false), None);
        assert_eq!(
            FailureCode::of_status(503, false),
            Some(FailureCode::DestinationUnavailable)
        );
        assert_eq!(
            FailureCode::of_status(401, false),
            Some(FailureCode::AccessDenied)
        );
        assert_eq!(
            FailureCode::of_status(404, true),
            Some(FailureCode::RepositoryNotFound)
        );
        assert_eq!(
            FailureCode::of_status(400, false),
            Some(FailureCode::Rejected)
        );
        assert!(!FailureCode::Rejected.retryable());
    }
}
