//! Repository creation templates: which template a repository the registry creates takes
//! (the longest matching prefix, else `ROOT`), and the Repository spec it makes.
//!
//! ECR: "a prefix of `prod` would apply to all repositories beginning with `prod/`"; a
//! trailing `/` in the prefix is the same prefix. `ROOT` applies to every repository that no
//! other template (for the same scenario) matches.

use crate::api::repository::RepositorySpec;
use crate::api::repository_creation_template::{RctAppliedFor, RepositoryCreationTemplateSpec};

/// The catch-all prefix.
pub const ROOT: &str = "ROOT";

/// ECR's pattern of a template prefix, in its validation message.
const PREFIX_PATTERN: &str =
    "^((?:[a-z0-9]+(?:[._-][a-z0-9]+)*/)*[a-z0-9]+(?:[._-][a-z0-9]+)*/?|ROOT)$";

/// The prefix without its optional trailing `/`.
fn bare(prefix: &str) -> &str {
    prefix.strip_suffix('/').unwrap_or(prefix)
}

/// Does the template prefix `prefix` apply to repository `repo`?
pub fn applies(prefix: &str, repo: &str) -> bool {
    prefix == ROOT
        || repo
            .strip_prefix(bare(prefix))
            .is_some_and(|rest| rest.starts_with('/'))
}

/// How specific a matching prefix is: ROOT least.
fn specificity(prefix: &str) -> usize {
    if prefix == ROOT {
        0
    } else {
        bare(prefix).len() + 1
    }
}

/// The template `repo` takes when created for `scenario`: among those applied for it, the
/// longest matching prefix, else ROOT. `templates` come in claim order (oldest first): of two
/// with one prefix the first holds it.
pub fn select<'a, I>(
    templates: I,
    scenario: RctAppliedFor,
    repo: &str,
) -> Option<&'a RepositoryCreationTemplateSpec>
where
    I: IntoIterator<Item = &'a RepositoryCreationTemplateSpec>,
{
    let mut best: Option<&RepositoryCreationTemplateSpec> = None;
    for t in templates {
        if !t.applied_for.contains(&scenario) || !applies(&t.prefix, repo) {
            continue;
        }
        if best.is_none_or(|b| specificity(&t.prefix) > specificity(&b.prefix)) {
            best = Some(t);
        }
    }
    best
}

/// The spec of repository `repo` created with `template` (None: ECR's defaults, MUTABLE
/// tags and no policies).
pub fn repository_spec(
    template: Option<&RepositoryCreationTemplateSpec>,
    repo: &str,
) -> RepositorySpec {
    RepositorySpec {
        repository_name: Some(repo.to_string()),
        image_tag_mutability: template.and_then(|t| t.image_tag_mutability),
        image_tag_mutability_exclusion_filters: template
            .map(|t| t.image_tag_mutability_exclusion_filters.clone())
            .unwrap_or_default(),
        image_scanning_configuration: None,
        encryption_configuration: template.and_then(|t| t.encryption_configuration.clone()),
        lifecycle_policy: template.and_then(|t| t.lifecycle_policy.clone()),
        repository_policy: template.and_then(|t| t.repository_policy.clone()),
        force: None,
        tags: template
            .map(|t| t.resource_tags.clone())
            .unwrap_or_default(),
    }
}

/// ECR's check of a template prefix (the CRD's CEL rule says the same).
pub fn validate_prefix(prefix: &str) -> Result<(), String> {
    let component_ok = |c: &str| {
        !c.is_empty()
            && c.split(['.', '_', '-']).all(|p| {
                !p.is_empty()
                    && p.bytes()
                        .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit())
            })
    };
    let ok = prefix == ROOT
        || (!prefix.is_empty() && prefix.len() <= 256 && bare(prefix).split('/').all(component_ok));
    if ok {
        Ok(())
    } else {
        Err(format!(
            "Invalid parameter at 'prefix' failed to satisfy constraint: 'must satisfy regular expression pattern: {PREFIX_PATTERN}'"
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::repository::ImageTagMutability;

    fn template(prefix: &str, applied_for: &[RctAppliedFor]) -> RepositoryCreationTemplateSpec {
        serde_json::from_value(serde_json::json!({
            "prefix": prefix,
            "appliedFor": applied_for,
        }))
        .unwrap()
    }

    use RctAppliedFor::*;

    #[test]
    fn a_prefix_applies_to_the_names_under_it_and_root_to_all() {
        assert!(applies("prod", "prod/web"));
        assert!(applies("prod/", "prod/web"));
        assert!(applies("prod", "prod/team/web"));
        assert!(!applies("prod", "prod"), "ECR: names beginning with prod/");
        assert!(!applies("prod", "production/web"));
        assert!(!applies("prod/web", "prod/webapp/x"));
        assert!(applies("ROOT", "anything"));
    }

    #[test]
    fn the_longest_matching_prefix_for_the_scenario_wins_else_root() {
        let ts = [
            template("ROOT", &[CreateOnPush, PullThroughCache]),
            template("prod", &[CreateOnPush]),
            template("prod/team", &[CreateOnPush]),
            template("prod/team/", &[PullThroughCache]),
            template("docker-hub", &[Replication]),
        ];
        let pick = |scenario, repo| select(&ts, scenario, repo).map(|t| t.prefix.as_str());
        assert_eq!(pick(CreateOnPush, "prod/team/web"), Some("prod/team"));
        assert_eq!(pick(CreateOnPush, "prod/other"), Some("prod"));
        assert_eq!(pick(CreateOnPush, "dev/web"), Some("ROOT"));
        assert_eq!(pick(PullThroughCache, "prod/team/web"), Some("prod/team/"));
        assert_eq!(
            pick(PullThroughCache, "docker-hub/library/nginx"),
            Some("ROOT")
        );
        assert_eq!(
            pick(Replication, "docker-hub/library/nginx"),
            Some("docker-hub")
        );
        assert_eq!(pick(Replication, "dev/web"), None);
    }

    #[test]
    fn of_two_templates_with_one_prefix_the_first_claim_holds_it() {
        let mut old = template("prod", &[CreateOnPush]);
        old.description = Some("old".into());
        let young = template("prod", &[CreateOnPush]);
        let ts = [old, young];
        let t = select(&ts, CreateOnPush, "prod/web").unwrap();
        assert_eq!(t.description.as_deref(), Some("old"));
    }

    #[test]
    fn the_spec_carries_the_templates_settings() {
        let t: RepositoryCreationTemplateSpec = serde_json::from_value(serde_json::json!({
            "prefix": "prod",
            "appliedFor": ["CREATE_ON_PUSH"],
            "imageTagMutability": "IMMUTABLE_WITH_EXCLUSION",
            "imageTagMutabilityExclusionFilters": [{"filterType": "WILDCARD", "filter": "latest"}],
            "lifecyclePolicy": {"rules": [{"rulePriority": 1, "selection": {"tagStatus": "untagged",
                "countType": "imageCountMoreThan", "countNumber": 1}, "action": {"type": "expire"}}]},
            "repositoryPolicy": {"Statement": [{"Effect": "Allow", "Principal": "*", "Action": "ecr:*"}]},
            "resourceTags": [{"key": "team", "value": "a"}],
        }))
        .unwrap();
        let s = repository_spec(Some(&t), "prod/web");
        assert_eq!(s.repository_name.as_deref(), Some("prod/web"));
        assert_eq!(
            s.image_tag_mutability,
            Some(ImageTagMutability::ImmutableWithExclusion)
        );
        assert_eq!(s.image_tag_mutability_exclusion_filters[0].filter, "latest");
        assert_eq!(s.lifecycle_policy, t.lifecycle_policy);
        assert_eq!(s.repository_policy, t.repository_policy);
        assert_eq!(s.tags[0].key, "team");
        let plain = repository_spec(None, "dev/web");
        assert_eq!(plain.image_tag_mutability, None);
        assert!(plain.lifecycle_policy.is_none() && plain.tags.is_empty());
    }

    #[test]
    fn prefixes_are_checked_as_ecr_checks_them() {
        for ok in ["ROOT", "prod", "prod/", "prod/team-a", "a.b_c/d"] {
            assert_eq!(validate_prefix(ok), Ok(()), "{ok}");
        }
        for bad in ["", "Prod", "/prod", "prod//x", "prod-", "a..b"] {
            let e = validate_prefix(bad).unwrap_err();
            assert!(e.starts_with("Invalid parameter at 'prefix'"), "{bad}: {e}");
        }
        // The CRD says the same.
        let crds = serde_json::to_string(&crate::api::all_crds()).unwrap();
        assert!(crds.contains(&validate_prefix("X").unwrap_err()));
    }
}
