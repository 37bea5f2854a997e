//! ECR repository names, URIs and ARNs.

use std::sync::LazyLock;

use fancy_regex::Regex;

/// ECR's repository name pattern, as it appears in ECR's own error message.
pub const REPOSITORY_NAME_PATTERN: &str =
    "(?:[a-z0-9]+(?:[._-][a-z0-9]+)*/)*[a-z0-9]+(?:[._-][a-z0-9]+)*";

/// ECR's length limits for a repository name.
pub const REPOSITORY_NAME_MIN: usize = 2;
pub const REPOSITORY_NAME_MAX: usize = 256;

static NAME: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(&format!("^{REPOSITORY_NAME_PATTERN}$")).expect("the ECR name pattern compiles")
});

/// Checks a repository name as CreateRepository does, with ECR's InvalidParameterException
/// messages (length first, then the pattern, as ECR reports them).
pub fn validate_repository_name(name: &str) -> Result<(), String> {
    const AT: &str = "Invalid parameter at 'repositoryName' failed to satisfy constraint";
    // ECR counts characters; the pattern is ASCII, so bytes == characters for valid names.
    let len = name.chars().count();
    if len < REPOSITORY_NAME_MIN {
        return Err(format!(
            "{AT}: 'must have length greater than or equal to {REPOSITORY_NAME_MIN}'"
        ));
    }
    if len > REPOSITORY_NAME_MAX {
        return Err(format!(
            "{AT}: 'must have length less than or equal to {REPOSITORY_NAME_MAX}'"
        ));
    }
    // The pattern has no lookaround, so fancy-regex delegates to the regex crate: linear
    // time, and it cannot hit a backtrack limit; an error there would still be a rejection.
    if NAME.is_match(name).unwrap_or(false) {
        Ok(())
    } else {
        Err(format!(
            "{AT}: 'must satisfy regular expression '{REPOSITORY_NAME_PATTERN}''"
        ))
    }
}

/// `HOST/NAME`: what `docker push` and `docker pull` use (ECR's `repositoryUri`). `host` may
/// carry a port; a trailing `/` or a scheme is dropped, since image references have neither.
pub fn repository_uri(host: &str, name: &str) -> String {
    let host = host
        .strip_prefix("https://")
        .or_else(|| host.strip_prefix("http://"))
        .unwrap_or(host)
        .trim_end_matches('/');
    format!("{host}/{name}")
}

/// `arn:aws:ecr:REGION:ACCOUNT:repository/NAME` (ECR's `repositoryArn`). In kubecs the
/// account is the namespace and the region [`crate::arn::REGION`]; see
/// [`crate::arn::repository`].
pub fn repository_arn(region: &str, account: &str, name: &str) -> String {
    format!("arn:aws:ecr:{region}:{account}:repository/{name}")
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn accepts_ecr_names() {
        for name in [
            "ab",
            "web",
            "team-a/web-app",
            "a/b/c",
            "my_repo.v2",
            "project-a/nginx-web-app",
            "0x",
            &"a".repeat(256),
        ] {
            assert_eq!(validate_repository_name(name), Ok(()), "{name}");
        }
    }

    #[test]
    fn rejects_with_ecr_messages() {
        let pattern_msg = "Invalid parameter at 'repositoryName' failed to satisfy constraint: \
             'must satisfy regular expression '(?:[a-z0-9]+(?:[._-][a-z0-9]+)*/)*[a-z0-9]+(?:[._-][a-z0-9]+)*''";
        for name in [
            "Web", "-web", "web-", "a//b", "/ab", "ab/", "a..b", "a._b", "we b", "web:1", "wéb",
        ] {
            assert_eq!(
                validate_repository_name(name),
                Err(pattern_msg.to_string()),
                "{name}"
            );
        }
        assert_eq!(
            validate_repository_name("a"),
            Err(
                "Invalid parameter at 'repositoryName' failed to satisfy constraint: \
                 'must have length greater than or equal to 2'"
                    .to_string()
            )
        );
        assert_eq!(
            validate_repository_name(""),
            Err(
                "Invalid parameter at 'repositoryName' failed to satisfy constraint: \
                 'must have length greater than or equal to 2'"
                    .to_string()
            )
        );
        assert_eq!(
            validate_repository_name(&"a".repeat(257)),
            Err(
                "Invalid parameter at 'repositoryName' failed to satisfy constraint: \
                 'must have length less than or equal to 256'"
                    .to_string()
            )
        );
    }

    #[test]
    fn the_crd_schema_uses_the_same_pattern() {
        // The CRD validates spec.repositoryName with the anchored pattern; keep them one.
        let crds = serde_json::to_string(&crate::api::all_crds()).unwrap();
        assert!(crds.contains(&format!("^{REPOSITORY_NAME_PATTERN}$")));
    }

    #[test]
    fn uri_and_arn() {
        assert_eq!(
            repository_uri("registry.kubecs.svc:5000", "team-a/web"),
            "registry.kubecs.svc:5000/team-a/web"
        );
        assert_eq!(
            repository_uri("https://r.example.com/", "web"),
            "r.example.com/web"
        );
        assert_eq!(
            repository_arn("us-east-1", "123456789012", "team-a/web"),
            "arn:aws:ecr:us-east-1:123456789012:repository/team-a/web"
        );
        assert_eq!(
            crate::arn::repository("prod", "web"),
            "arn:aws:ecr:kubecs:prod:repository/web"
        );
    }

    proptest! {
        /// Names built from the grammar's own pieces are always accepted.
        #[test]
        fn grammar_built_names_are_valid(
            segments in prop::collection::vec(
                ("[a-z0-9]{1,5}", prop::collection::vec(("[._-]", "[a-z0-9]{1,4}"), 0..3)),
                1..4,
            )
        ) {
            let name = segments
                .iter()
                .map(|(head, rest)| {
                    let mut s = head.clone();
                    for (sep, part) in rest {
                        s.push_str(sep);
                        s.push_str(part);
                    }
                    s
                })
                .collect::<Vec<_>>()
                .join("/");
            prop_assume!(name.len() >= 2);
            prop_assert_eq!(validate_repository_name(&name), Ok(()));
        }

        /// Any uppercase letter makes a name invalid.
        #[test]
        fn uppercase_is_never_valid(prefix in "[a-z]{1,5}", upper in "[A-Z]", suffix in "[a-z]{0,5}") {
            let name = format!("{prefix}{upper}{suffix}");
            prop_assert!(validate_repository_name(&name).is_err());
        }
    }
}
