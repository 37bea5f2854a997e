//! ECR lifecycle policies: which images a policy expires now, and policy validation.
//!
//! Evaluation follows the ECR user guide's "Lifecycle policy evaluation rules":
//! - rules are applied lowest `rulePriority` first, and an image is expired by at most one rule;
//! - an image that matches the tagging requirements (the selection) of a rule can't be expired
//!   by a lower-priority rule, even when that rule keeps it: the rule *claims* it;
//! - a rule still *identifies* images claimed by higher-priority rules "as if they haven't been
//!   expired": they count towards its `imageCountMoreThan` but it never marks them;
//! - expiration is ordered by push time, older images first; with `imageCountMoreThan N` the
//!   newest N identified images are kept; with `sinceImagePushed N days` images pushed more
//!   than N days before `now` expire (an image exactly N days old is kept); with
//!   `sinceImagePulled N days` the same counts from the image's `lastRecordedPullTime`, or
//!   from its push for an image never pulled (ECR's reading: an image pushed and never used
//!   ages like one last used at its push);
//! - ECR's archive rules (`transition`, `storageClass: archive`, `sinceImageTransitioned`)
//!   are refused by [`validate`]: kubecs has no archive storage class;
//! - `tagPrefixList` / `tagPatternList` select an image only if *every* entry matches one of
//!   its tags.
//!
//! The user guide's examples (Example A/B on multiple rules, multiple tags, all images) are
//! reproduced in the tests below.
//!
//! Images are manifests as ECR lists them (one record per digest). The caller decides what an
//! image is for multi-platform pushes: a platform manifest referenced by a tagged index should
//! not be offered as an untagged image on its own.

use std::collections::HashSet;

use crate::api::repository::{
    CountType, CountUnit, LifecycleActionType, LifecyclePolicy, LifecyclePreviewResult,
    LifecycleRule, StorageClass, TagStatus,
};

use super::wildcard;

/// Seconds in ECR's `days` count unit.
/// In milliseconds, as push times are.
const DAY: i64 = 86_400_000;

/// One image (manifest) in a repository.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ImageRecord {
    pub digest: String,
    pub tags: Vec<String>,
    /// Push time, unix milliseconds: two pushes within one second still have an order
    /// (`imageCountMoreThan` keeps the newest).
    pub pushed_at: i64,
    /// ECR's lastRecordedPullTime, unix milliseconds; None when never pulled.
    pub last_pulled_at: Option<i64>,
    pub size_bytes: u64,
}

impl ImageRecord {
    /// Where `sinceImagePulled` counts from: the last recorded pull, else the push.
    fn last_used_at(&self) -> i64 {
        self.last_pulled_at.unwrap_or(self.pushed_at)
    }
}

/// An image a lifecycle policy expires, and the rule that expires it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Expiration {
    pub digest: String,
    pub tags: Vec<String>,
    /// Unix milliseconds.
    pub pushed_at: i64,
    pub applied_rule_priority: i32,
}

impl From<&Expiration> for LifecyclePreviewResult {
    fn from(e: &Expiration) -> Self {
        LifecyclePreviewResult {
            image_digest: e.digest.clone(),
            image_tags: e.tags.clone(),
            // RFC 3339, like every other timestamp kubecs writes to status.
            image_pushed_at: k8s_openapi::jiff::Timestamp::from_millisecond(e.pushed_at)
                .ok()
                .map(|t| t.to_string()),
            applied_rule_priority: e.applied_rule_priority,
        }
    }
}

/// The preview ECR's GetLifecyclePolicyPreview would show.
pub fn preview(expirations: &[Expiration]) -> Vec<LifecyclePreviewResult> {
    expirations.iter().map(Into::into).collect()
}

/// Whether `rule`'s selection (tag status and tag lists) identifies `image`.
pub fn selects(rule: &LifecycleRule, image: &ImageRecord) -> bool {
    let s = &rule.selection;
    match s.tag_status {
        TagStatus::Any => true,
        TagStatus::Untagged => image.tags.is_empty(),
        // AND semantics: each prefix (pattern) must match at least one of the image's tags.
        TagStatus::Tagged => {
            !image.tags.is_empty()
                && s.tag_prefix_list
                    .iter()
                    .all(|p| image.tags.iter().any(|t| t.starts_with(p.as_str())))
                && s.tag_pattern_list
                    .iter()
                    .all(|p| image.tags.iter().any(|t| wildcard::matches(p, t, false)))
        }
    }
}

/// Newest first; equal push times ordered by digest so that results are deterministic (the
/// lexicographically smaller digest counts as the newer one).
fn newest_first(a: &ImageRecord, b: &ImageRecord) -> std::cmp::Ordering {
    b.pushed_at
        .cmp(&a.pushed_at)
        .then_with(|| a.digest.cmp(&b.digest))
}

/// The images `policy` expires at `now` (unix milliseconds), ordered by rule priority and then
/// oldest first. Rules are applied in priority order whatever their order in the policy. The
/// policy is assumed valid (see [`validate`]); an invalid one still evaluates without panics
/// (a `countNumber` below 0 counts as 0).
pub fn evaluate(policy: &LifecyclePolicy, images: &[ImageRecord], now: i64) -> Vec<Expiration> {
    let mut rules: Vec<&LifecycleRule> = policy.rules.iter().collect();
    rules.sort_by_key(|r| r.rule_priority);

    let mut order: Vec<usize> = (0..images.len()).collect();
    order.sort_by(|&a, &b| newest_first(&images[a], &images[b]));

    // Images matched by the selection of an already applied (higher-priority) rule.
    let mut claimed: HashSet<usize> = HashSet::new();
    let mut out = Vec::new();
    for rule in rules {
        let identified: Vec<usize> = order
            .iter()
            .copied()
            .filter(|&i| selects(rule, &images[i]))
            .collect();
        let n = i64::from(rule.selection.count_number.max(0));
        let candidates: Vec<usize> = match rule.selection.count_type {
            CountType::ImageCountMoreThan => identified
                .iter()
                .copied()
                .skip(usize::try_from(n).unwrap_or(usize::MAX))
                .collect(),
            CountType::SinceImagePushed | CountType::SinceImagePulled => {
                let unit = match rule.selection.count_unit {
                    Some(CountUnit::Days) | None => DAY,
                };
                let max_age = n.saturating_mul(unit);
                let since = |i: &ImageRecord| match rule.selection.count_type {
                    CountType::SinceImagePulled => i.last_used_at(),
                    _ => i.pushed_at,
                };
                identified
                    .iter()
                    .copied()
                    .filter(|&i| now.saturating_sub(since(&images[i])) > max_age)
                    .collect()
            }
            // Refused by validate(): no image is ever in the archive.
            CountType::SinceImageTransitioned => Vec::new(),
        };
        // Oldest first, as ECR marks them.
        let mut marked: Vec<Expiration> = candidates
            .into_iter()
            .rev()
            .filter(|i| !claimed.contains(i))
            .map(|i| Expiration {
                digest: images[i].digest.clone(),
                tags: images[i].tags.clone(),
                pushed_at: images[i].pushed_at,
                applied_rule_priority: rule.rule_priority,
            })
            .collect();
        out.append(&mut marked);
        claimed.extend(identified);
    }
    out
}

const PREFIX: &str = "Lifecycle policy validation failure: ";

/// ECR's archive rules, refused (the CRD's CEL rules say the same).
pub const NO_ARCHIVE_ACTION: &str =
    "the archive storage class is not supported: the action type must be 'expire'.";
pub const NO_ARCHIVE_SELECTION: &str = "the archive storage class is not supported: storageClass must be 'standard' and countType cannot be 'sinceImageTransitioned'.";

/// ECR's checks of a lifecycle policy, for callers that do not go through the CRD (whose CEL
/// rules say the same, in the same words). The first failure is reported.
pub fn validate(policy: &LifecyclePolicy) -> Result<(), String> {
    let fail = |detail: &str| Err(format!("{PREFIX}{detail}"));
    if policy.rules.is_empty() {
        return fail("at least one rule is required.");
    }
    if policy.rules.len() > 50 {
        return fail("a lifecycle policy may contain at most 50 rules.");
    }
    let mut seen = HashSet::new();
    for r in &policy.rules {
        if !(1..=999).contains(&r.rule_priority) {
            return fail("rulePriority must be between 1 and 999.");
        }
        if !seen.insert(r.rule_priority) {
            return fail("rulePriority must be unique.");
        }
    }
    let highest = policy.rules.iter().map(|r| r.rule_priority).max();
    for r in &policy.rules {
        let s = &r.selection;
        if r.action.type_ != LifecycleActionType::Expire {
            return fail(NO_ARCHIVE_ACTION);
        }
        if s.count_type == CountType::SinceImageTransitioned
            || s.storage_class == Some(StorageClass::Archive)
        {
            return fail(NO_ARCHIVE_SELECTION);
        }
        if s.tag_status == TagStatus::Any && Some(r.rule_priority) != highest {
            return fail("a rule with tagStatus 'any' must have the highest rulePriority.");
        }
        let prefixes = !s.tag_prefix_list.is_empty();
        let patterns = !s.tag_pattern_list.is_empty();
        match s.tag_status {
            TagStatus::Tagged if !prefixes && !patterns => {
                return fail(
                    "tagPrefixList or tagPatternList is required when tagStatus is 'tagged'.",
                );
            }
            TagStatus::Untagged | TagStatus::Any if prefixes || patterns => {
                return fail(
                    "tagPrefixList and tagPatternList are only allowed when tagStatus is 'tagged'.",
                );
            }
            _ => {}
        }
        if prefixes && patterns {
            return fail("tagPrefixList and tagPatternList cannot be used together.");
        }
        if s.tag_pattern_list
            .iter()
            .any(|p| p.matches('*').count() > 4)
        {
            return fail("a tag pattern may contain at most 4 wildcards.");
        }
        let unit_ok = match s.count_type {
            CountType::ImageCountMoreThan => s.count_unit.is_none(),
            _ => s.count_unit.is_some(),
        };
        if !unit_ok {
            return fail(
                "countUnit is required with countType 'sinceImagePushed' or 'sinceImagePulled' and not allowed with 'imageCountMoreThan'.",
            );
        }
        if s.count_number < 1 {
            return fail("countNumber must be a positive integer.");
        }
    }
    Ok(())
}

/// Parses ECR's lifecycle policy JSON text and validates it.
pub fn parse(text: &str) -> Result<LifecyclePolicy, String> {
    let policy: LifecyclePolicy =
        serde_json::from_str(text).map_err(|e| format!("{PREFIX}invalid JSON: {e}"))?;
    validate(&policy)?;
    Ok(policy)
}

#[cfg(test)]
mod tests;
