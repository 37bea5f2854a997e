//! Capacity provider strategies: which provider each task of a service or a RunTask uses.
//!
//! ECS splits tasks base first, then by weight: the provider with a `base` gets tasks until
//! it runs `base`; every further task goes to the provider furthest below its weighted share
//! of the tasks placed by weight (ties to the one listed first). Deciding one task at a time
//! makes the split of `n + 1` tasks the split of `n` plus one, so a service that scales out,
//! or replaces a lost task, keeps its shares; scale-in takes from the providers above them.

use std::collections::BTreeMap;

use crate::api::common::CapacityProviderStrategyItem;

/// One provider of a strategy, defaults applied.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Share {
    pub provider: String,
    pub base: u64,
    pub weight: u64,
}

/// The strategy's shares, in its order.
pub fn shares(strategy: &[CapacityProviderStrategyItem]) -> Vec<Share> {
    strategy
        .iter()
        .map(|i| Share {
            provider: i.capacity_provider.clone(),
            base: i.base.unwrap_or(0).max(0) as u64,
            weight: i.weight.unwrap_or(0).max(0) as u64,
        })
        .collect()
}

/// The provider the next task goes to, given how many tasks each runs. None when no provider
/// can take it (every base is met and no weight is positive).
pub fn next(shares: &[Share], running: &BTreeMap<String, u64>) -> Option<usize> {
    let count = |s: &Share| running.get(&s.provider).copied().unwrap_or(0);
    if let Some(i) = shares.iter().position(|s| count(s) < s.base) {
        return Some(i);
    }
    let total_weight: u64 = shares.iter().map(|s| s.weight).sum();
    if total_weight == 0 {
        return None;
    }
    // Tasks beyond each base, counting the one being placed.
    let weighted: u64 = shares
        .iter()
        .map(|s| count(s).saturating_sub(s.base))
        .sum::<u64>()
        + 1;
    // The deficit of provider s is weight/total × weighted − beyond(s); compared across
    // providers times total_weight, so in integers.
    shares
        .iter()
        .enumerate()
        .filter(|(_, s)| s.weight > 0)
        .map(|(i, s)| {
            let beyond = count(s).saturating_sub(s.base);
            let deficit = (s.weight * weighted) as i128 - (beyond * total_weight) as i128;
            (i, deficit)
        })
        // The largest deficit; the first listed among equals.
        .fold(None, |best: Option<(usize, i128)>, (i, d)| match best {
            Some((_, bd)) if bd >= d => best,
            _ => Some((i, d)),
        })
        .map(|(i, _)| i)
}

/// The providers of `n` new tasks, given what runs already (provider → tasks).
pub fn assign(shares: &[Share], running: &BTreeMap<String, u64>, n: usize) -> Vec<String> {
    let mut running = running.clone();
    let mut out = Vec::with_capacity(n);
    for _ in 0..n {
        let Some(i) = next(shares, &running) else {
            break;
        };
        let p = &shares[i].provider;
        *running.entry(p.clone()).or_default() += 1;
        out.push(p.clone());
    }
    out
}

/// How `n` tasks split among the providers (provider → tasks), ECS's way.
pub fn split(shares: &[Share], n: usize) -> BTreeMap<String, u64> {
    let mut m = BTreeMap::new();
    for p in assign(shares, &BTreeMap::new(), n) {
        *m.entry(p).or_default() += 1;
    }
    m
}

/// The provider to take a task from when scaling in by one: the one furthest above its
/// share of the tasks that remain. Tasks of providers the strategy no longer lists go first.
pub fn to_shrink(shares: &[Share], running: &BTreeMap<String, u64>) -> Option<String> {
    if let Some((p, _)) = running
        .iter()
        .find(|(p, n)| **n > 0 && !shares.iter().any(|s| &s.provider == *p))
    {
        return Some(p.clone());
    }
    let total: u64 = running.values().sum();
    if total == 0 {
        return None;
    }
    let target = split(shares, total as usize - 1);
    running
        .iter()
        .filter(|(_, n)| **n > 0)
        .map(|(p, n)| (p, *n as i64 - target.get(p).copied().unwrap_or(0) as i64))
        // The largest surplus; the last listed in the strategy among equals (its tasks came
        // last when placed).
        .max_by_key(|(p, surplus)| {
            (
                *surplus,
                shares.iter().position(|s| &s.provider == *p).unwrap_or(0),
            )
        })
        .map(|(p, _)| p.clone())
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn strategy(items: &[(&str, i32, i32)]) -> Vec<Share> {
        shares(
            &items
                .iter()
                .map(|(p, base, weight)| CapacityProviderStrategyItem {
                    capacity_provider: p.to_string(),
                    base: Some(*base),
                    weight: Some(*weight),
                })
                .collect::<Vec<_>>(),
        )
    }

    fn counts(pairs: &[(&str, u64)]) -> BTreeMap<String, u64> {
        pairs.iter().map(|(p, n)| (p.to_string(), *n)).collect()
    }

    #[test]
    fn base_first_then_by_weight() {
        // ECS's documented example shape: A base 2 weight 1, B weight 3, 10 tasks.
        let s = strategy(&[("A", 2, 1), ("B", 0, 3)]);
        assert_eq!(split(&s, 10), counts(&[("A", 4), ("B", 6)]));
        // Fewer tasks than the base: all on the base provider.
        assert_eq!(split(&s, 2), counts(&[("A", 2)]));
        assert_eq!(split(&s, 1), counts(&[("A", 1)]));
    }

    #[test]
    fn equal_weights_alternate_starting_with_the_first_listed() {
        let s = strategy(&[("spot", 0, 1), ("on-demand", 0, 1)]);
        assert_eq!(
            assign(&s, &BTreeMap::new(), 4),
            ["spot", "on-demand", "spot", "on-demand"]
        );
    }

    #[test]
    fn a_zero_weight_provider_only_takes_its_base() {
        let s = strategy(&[("A", 3, 0), ("B", 0, 1)]);
        assert_eq!(split(&s, 5), counts(&[("A", 3), ("B", 2)]));
        let only_base = strategy(&[("A", 1, 0)]);
        assert_eq!(split(&only_base, 3), counts(&[("A", 1)]));
    }

    #[test]
    fn replacements_restore_the_shares() {
        let s = strategy(&[("A", 2, 1), ("B", 0, 3)]);
        // Two of B's tasks were lost: both replacements go to B.
        assert_eq!(assign(&s, &counts(&[("A", 4), ("B", 4)]), 2), ["B", "B"]);
        // The base provider lost one: it is refilled first.
        assert_eq!(assign(&s, &counts(&[("A", 1), ("B", 6)]), 1), ["A"]);
    }

    #[test]
    fn scale_in_takes_from_the_provider_above_its_share() {
        let s = strategy(&[("A", 2, 1), ("B", 0, 3)]);
        // 10 → 9: split(9) is A 4 (2 + 2), B 5 (7 weighted: A gets 2 of them) → B.
        assert_eq!(
            to_shrink(&s, &counts(&[("A", 4), ("B", 6)])),
            Some("B".into())
        );
        // A provider the strategy dropped goes first.
        assert_eq!(
            to_shrink(&s, &counts(&[("A", 4), ("B", 6), ("old", 1)])),
            Some("old".into())
        );
        assert_eq!(to_shrink(&s, &BTreeMap::new()), None);
    }

    proptest! {
        /// Placing one at a time is the same as splitting the total, so shares never drift.
        #[test]
        fn the_split_grows_one_task_at_a_time(
            base in 0i32..5, w1 in 0i32..5, w2 in 1i32..5, n in 0usize..60,
        ) {
            let s = strategy(&[("A", base, w1), ("B", 0, w2)]);
            let mut m = split(&s, n);
            for p in assign(&s, &m, 1) {
                *m.entry(p).or_default() += 1;
            }
            prop_assert_eq!(m, split(&s, n + 1));
        }

        /// Beyond the base, each provider is within one task of its exact weighted share.
        #[test]
        fn weighted_shares_are_exact_within_one(
            w1 in 1u64..6, w2 in 1u64..6, w3 in 0u64..6, n in 0usize..200,
        ) {
            let s = strategy(&[("A", 0, w1 as i32), ("B", 0, w2 as i32), ("C", 0, w3 as i32)]);
            let m = split(&s, n);
            let total = w1 + w2 + w3;
            for (p, w) in [("A", w1), ("B", w2), ("C", w3)] {
                let exact = (w * n as u64) as f64 / total as f64;
                let got = m.get(p).copied().unwrap_or(0) as f64;
                prop_assert!((got - exact).abs() < 1.0 + 1e-9, "{p}: {got} vs {exact}");
            }
            prop_assert_eq!(m.values().sum::<u64>(), n as u64);
        }

        /// Scaling in from the split of n + 1 leaves the split of n.
        #[test]
        fn scale_in_undoes_scale_out(base in 0i32..4, w1 in 0i32..4, w2 in 1i32..4, n in 0usize..40) {
            let s = strategy(&[("A", base, w1), ("B", 0, w2)]);
            let mut m = split(&s, n + 1);
            let p = to_shrink(&s, &m).expect("something to stop");
            *m.get_mut(&p).unwrap() -= 1;
            m.retain(|_, v| *v > 0);
            prop_assert_eq!(m, split(&s, n));
        }
    }
}
