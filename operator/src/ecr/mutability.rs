//! Image tag mutability: whether a push may move an existing tag.

use crate::api::repository::{ImageTagMutability, ImageTagMutabilityExclusionFilter};

use super::wildcard;

/// Whether `tag` is immutable under `mutability` and its exclusion filters (ECR's WILDCARD
/// filters: `*` only, matched against the whole tag, case-sensitively as tags are):
/// - MUTABLE: no tag is immutable;
/// - IMMUTABLE: every tag is;
/// - IMMUTABLE_WITH_EXCLUSION: every tag except those matching a filter;
/// - MUTABLE_WITH_EXCLUSION: only the tags matching a filter.
pub fn tag_is_immutable(
    mutability: ImageTagMutability,
    exclusion_filters: &[String],
    tag: &str,
) -> bool {
    let excluded = || {
        exclusion_filters
            .iter()
            .any(|f| wildcard::matches(f, tag, false))
    };
    match mutability {
        ImageTagMutability::Mutable => false,
        ImageTagMutability::Immutable => true,
        ImageTagMutability::ImmutableWithExclusion => !excluded(),
        ImageTagMutability::MutableWithExclusion => excluded(),
    }
}

/// The filter strings of a Repository's `imageTagMutabilityExclusionFilters` (all WILDCARD).
pub fn exclusion_filter_patterns(filters: &[ImageTagMutabilityExclusionFilter]) -> Vec<String> {
    filters.iter().map(|f| f.filter.clone()).collect()
}

/// ECR's TAG_INVALID message for a push that would move an immutable tag.
pub fn tag_invalid_message(tag: &str, repo: &str) -> String {
    format!(
        "The image tag '{tag}' already exists in the '{repo}' repository and cannot be \
         overwritten because the repository is immutable."
    )
}

/// Whether a push of `new_digest` under `tag` may proceed, given the digest the tag points
/// at now (`None`: a new tag). Re-pushing the digest a tag already names moves nothing, so it
/// is allowed even when the tag is immutable (docker and CI retries do this); only moving an
/// immutable tag to another digest is refused, with ECR's message.
pub fn check_tag_update(
    mutability: ImageTagMutability,
    exclusion_filters: &[String],
    repo: &str,
    tag: &str,
    current_digest: Option<&str>,
    new_digest: &str,
) -> Result<(), String> {
    match current_digest {
        Some(current)
            if current != new_digest && tag_is_immutable(mutability, exclusion_filters, tag) =>
        {
            Err(tag_invalid_message(tag, repo))
        }
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::repository::ExclusionFilterType;
    use ImageTagMutability::*;

    fn filters(f: &[&str]) -> Vec<String> {
        f.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn mutable_and_immutable_ignore_filters() {
        let f = filters(&["latest"]);
        for tag in ["latest", "v1", "release-2024"] {
            assert!(!tag_is_immutable(Mutable, &f, tag));
            assert!(!tag_is_immutable(Mutable, &[], tag));
            assert!(tag_is_immutable(Immutable, &f, tag));
            assert!(tag_is_immutable(Immutable, &[], tag));
        }
    }

    #[test]
    fn immutable_with_exclusion_frees_matching_tags() {
        let f = filters(&["latest", "dev-*"]);
        assert!(!tag_is_immutable(ImmutableWithExclusion, &f, "latest"));
        assert!(!tag_is_immutable(ImmutableWithExclusion, &f, "dev-abc123"));
        assert!(!tag_is_immutable(ImmutableWithExclusion, &f, "dev-"));
        assert!(tag_is_immutable(ImmutableWithExclusion, &f, "v1.2.3"));
        // Anchored: a filter is not a substring search.
        assert!(tag_is_immutable(ImmutableWithExclusion, &f, "latest-1"));
        assert!(tag_is_immutable(ImmutableWithExclusion, &f, "my-dev-1"));
        // Tags are case-sensitive.
        assert!(tag_is_immutable(ImmutableWithExclusion, &f, "LATEST"));
    }

    #[test]
    fn mutable_with_exclusion_locks_only_matching_tags() {
        let f = filters(&["v*.*.*", "release-*"]);
        assert!(tag_is_immutable(MutableWithExclusion, &f, "v1.2.3"));
        assert!(tag_is_immutable(MutableWithExclusion, &f, "release-7"));
        assert!(!tag_is_immutable(MutableWithExclusion, &f, "latest"));
        assert!(!tag_is_immutable(MutableWithExclusion, &f, "v1"));
        // With no filters (invalid for the CRD) nothing is locked.
        assert!(!tag_is_immutable(MutableWithExclusion, &[], "v1.2.3"));
    }

    #[test]
    fn message_is_ecrs() {
        assert_eq!(
            tag_invalid_message("v1", "team-a/web"),
            "The image tag 'v1' already exists in the 'team-a/web' repository and cannot be \
             overwritten because the repository is immutable."
        );
    }

    #[test]
    fn tag_update_checks() {
        let none: &[String] = &[];
        assert_eq!(
            check_tag_update(Immutable, none, "web", "v1", None, "sha256:a"),
            Ok(())
        );
        assert_eq!(
            check_tag_update(Immutable, none, "web", "v1", Some("sha256:a"), "sha256:a"),
            Ok(())
        );
        assert_eq!(
            check_tag_update(Immutable, none, "web", "v1", Some("sha256:a"), "sha256:b"),
            Err(tag_invalid_message("v1", "web"))
        );
        assert_eq!(
            check_tag_update(Mutable, none, "web", "v1", Some("sha256:a"), "sha256:b"),
            Ok(())
        );
        let f = filters(&["latest"]);
        assert_eq!(
            check_tag_update(
                ImmutableWithExclusion,
                &f,
                "web",
                "latest",
                Some("sha256:a"),
                "sha256:b"
            ),
            Ok(())
        );
    }

    #[test]
    fn patterns_from_crd_filters() {
        let crd = vec![ImageTagMutabilityExclusionFilter {
            filter_type: ExclusionFilterType::Wildcard,
            filter: "dev-*".into(),
        }];
        assert_eq!(exclusion_filter_patterns(&crd), vec!["dev-*".to_string()]);
    }
}
