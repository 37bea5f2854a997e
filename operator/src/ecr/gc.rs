//! Blob garbage collection planning: which stored blobs are safe to delete.
//!
//! The caller lists the blobs with their last-modified times, then computes the digests every
//! manifest references (layers, configs, and the manifests of indexes). A blob is deleted only
//! if nothing references it, no in-progress upload declared it as its target, and it is older
//! than the grace period. The grace period is what protects a concurrent push: its blobs are
//! written before the manifest that references them, so for a while they look unreferenced.

use std::collections::{BTreeSet, HashSet};

/// A blob in the store.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StoredBlob {
    pub digest: String,
    /// Last modification, unix seconds.
    pub modified_at: i64,
}

/// What a GC pass will do, with the reasons blobs were kept (for metrics and logs).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct GcPlan {
    /// Digests to delete, sorted and distinct.
    pub delete: Vec<String>,
    /// Blobs kept because a manifest references them.
    pub kept_referenced: usize,
    /// Unreferenced blobs kept because an upload in progress targets them.
    pub kept_uploading: usize,
    /// Unreferenced blobs kept because they are within the grace period.
    pub kept_young: usize,
}

/// Plans deletions. A blob is deleted only when it is unreferenced, not the declared target of
/// an upload in progress, and strictly older than `grace_period_secs` at `now` (unix seconds).
/// A blob stamped in the future (clock skew) is young, hence kept. A digest listed twice is
/// judged on its newest entry.
pub fn plan_blob_deletions(
    blobs: &[StoredBlob],
    referenced: &HashSet<String>,
    upload_targets: &HashSet<String>,
    grace_period_secs: u64,
    now: i64,
) -> GcPlan {
    let grace = i64::try_from(grace_period_secs).unwrap_or(i64::MAX);
    let mut newest: std::collections::BTreeMap<&str, i64> = Default::default();
    for b in blobs {
        let t = newest.entry(b.digest.as_str()).or_insert(b.modified_at);
        *t = (*t).max(b.modified_at);
    }
    let mut plan = GcPlan::default();
    let mut delete = BTreeSet::new();
    for (digest, modified_at) in newest {
        if referenced.contains(digest) {
            plan.kept_referenced += 1;
        } else if upload_targets.contains(digest) {
            plan.kept_uploading += 1;
        } else if now.saturating_sub(modified_at) <= grace {
            plan.kept_young += 1;
        } else {
            delete.insert(digest.to_string());
        }
    }
    plan.delete = delete.into_iter().collect();
    plan
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn blob(d: &str, t: i64) -> StoredBlob {
        StoredBlob {
            digest: d.into(),
            modified_at: t,
        }
    }

    fn set(d: &[&str]) -> HashSet<String> {
        d.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn deletes_only_old_unreferenced_blobs() {
        let now = 10_000;
        let blobs = [
            blob("sha256:ref", 0),
            blob("sha256:old", 0),
            blob("sha256:young", now - 100),
            blob("sha256:edge", now - 3600),
            blob("sha256:uploading", 0),
            blob("sha256:future", now + 50),
        ];
        let plan = plan_blob_deletions(
            &blobs,
            &set(&["sha256:ref"]),
            &set(&["sha256:uploading"]),
            3600,
            now,
        );
        assert_eq!(plan.delete, vec!["sha256:old".to_string()]);
        assert_eq!(plan.kept_referenced, 1);
        assert_eq!(plan.kept_uploading, 1);
        // young, exactly-at-grace, and future-stamped blobs are all kept.
        assert_eq!(plan.kept_young, 3);
    }

    #[test]
    fn duplicate_listing_uses_newest_time() {
        let plan = plan_blob_deletions(
            &[blob("sha256:a", 0), blob("sha256:a", 990)],
            &HashSet::new(),
            &HashSet::new(),
            60,
            1000,
        );
        assert!(plan.delete.is_empty());
        assert_eq!(plan.kept_young, 1);
    }

    #[test]
    fn zero_grace_still_keeps_a_blob_written_this_second() {
        let plan = plan_blob_deletions(
            &[blob("sha256:a", 1000), blob("sha256:b", 999)],
            &HashSet::new(),
            &HashSet::new(),
            0,
            1000,
        );
        assert_eq!(plan.delete, vec!["sha256:b".to_string()]);
    }

    proptest! {
        #[test]
        fn never_deletes_referenced_uploading_or_young(
            blobs in prop::collection::vec((0u8..20, -100i64..2000), 0..40),
            referenced in prop::collection::hash_set(0u8..20, 0..10),
            uploading in prop::collection::hash_set(0u8..20, 0..5),
            grace in 0u64..1500,
            now in 0i64..2000,
        ) {
            let name = |i: u8| format!("sha256:{i:02}");
            let blobs: Vec<_> = blobs.iter().map(|&(d, t)| blob(&name(d), t)).collect();
            let referenced: HashSet<_> = referenced.into_iter().map(name).collect();
            let uploading: HashSet<_> = uploading.into_iter().map(name).collect();
            let plan = plan_blob_deletions(&blobs, &referenced, &uploading, grace, now);
            for d in &plan.delete {
                prop_assert!(!referenced.contains(d));
                prop_assert!(!uploading.contains(d));
                for b in blobs.iter().filter(|b| &b.digest == d) {
                    prop_assert!(now - b.modified_at > grace as i64);
                }
            }
            // Every distinct blob is accounted for exactly once.
            let distinct: HashSet<_> = blobs.iter().map(|b| &b.digest).collect();
            prop_assert_eq!(
                plan.delete.len() + plan.kept_referenced + plan.kept_uploading + plan.kept_young,
                distinct.len()
            );
            // And everything old, unreferenced and not uploading is deleted.
            for d in distinct {
                let newest = blobs.iter().filter(|b| &b.digest == d).map(|b| b.modified_at).max().unwrap();
                let eligible = !referenced.contains(d) && !uploading.contains(d) && now - newest > grace as i64;
                prop_assert_eq!(plan.delete.contains(d), eligible);
            }
        }
    }
}
