//! Pull through cache rules as pure decisions: which rule a repository name falls under and
//! what the upstream calls it, the rule fields' constraints in ECR's words, where a rule's
//! credentials live, and when a cached tag is due for a check with the upstream.

use std::sync::LazyLock;
use std::time::{Duration, SystemTime};

use fancy_regex::Regex;

/// The prefix that means "any": the default upstream repository prefix.
pub const ROOT: &str = "ROOT";

/// The name every pull through cache secret starts with.
pub const SECRET_PREFIX: &str = "ecr-pullthroughcache/";

/// How often ECR checks a cached tag with the upstream: at most once every 24 hours.
pub const TAG_RECHECK: Duration = Duration::from_secs(24 * 3600);

/// ECR's PullThroughCacheRuleRepositoryPrefix pattern (2-30 characters).
pub const PREFIX_PATTERN: &str =
    r"^([a-z0-9]+((\.|_|__|-+)[a-z0-9]+)*(\/[a-z0-9]+((\.|_|__|-+)[a-z0-9]+)*)*\/?|ROOT)$";

static PREFIX: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(PREFIX_PATTERN).expect("the ECR prefix pattern compiles"));

/// A rule as the registry applies it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CacheRule {
    /// Without the trailing `/` ECR assumes.
    pub ecr_repository_prefix: String,
    /// `https://HOST` (or `http://HOST` when the rule says so), no trailing `/`.
    pub upstream_registry_url: String,
    /// None: ROOT.
    pub upstream_repository_prefix: Option<String>,
    /// The Kubernetes Secret holding `username` and `accessToken`.
    pub credential_secret: Option<String>,
    /// The rule's account: where its Secret and the repositories it creates live.
    pub namespace: Option<String>,
}

impl CacheRule {
    /// A rule from its ECR fields, checked as CreatePullThroughCacheRule checks them.
    pub fn new(
        ecr_repository_prefix: &str,
        upstream_registry_url: &str,
        upstream_repository_prefix: Option<&str>,
        credential_arn: Option<&str>,
        namespace: Option<&str>,
    ) -> Result<CacheRule, String> {
        validate_prefix("ecrRepositoryPrefix", ecr_repository_prefix)?;
        if ecr_repository_prefix == ROOT {
            return Err(
                "The ecrRepositoryPrefix ROOT is reserved: ECR accepts it only for an ECR upstream registry."
                    .into(),
            );
        }
        if let Some(p) = upstream_repository_prefix {
            validate_prefix("upstreamRepositoryPrefix", p)?;
        }
        Ok(CacheRule {
            ecr_repository_prefix: ecr_repository_prefix.trim_end_matches('/').to_string(),
            upstream_registry_url: upstream_base_url(upstream_registry_url)?,
            upstream_repository_prefix: upstream_repository_prefix
                .filter(|p| *p != ROOT)
                .map(|p| p.trim_end_matches('/').to_string()),
            credential_secret: credential_arn.map(credential_secret).transpose()?,
            namespace: namespace.map(str::to_string),
        })
    }

    /// The upstream's name for `repo`, when `repo` is under this rule's prefix.
    pub fn upstream_repository(&self, repo: &str) -> Option<String> {
        let rest = repo
            .strip_prefix(&self.ecr_repository_prefix)?
            .strip_prefix('/')
            .filter(|r| !r.is_empty())?;
        Some(match &self.upstream_repository_prefix {
            Some(p) => format!("{p}/{rest}"),
            None => rest.to_string(),
        })
    }
}

/// The rule `repo` falls under (the longest prefix wins) and the upstream's name for it.
pub fn matching<'a>(rules: &'a [CacheRule], repo: &str) -> Option<(&'a CacheRule, String)> {
    rules
        .iter()
        .filter_map(|r| r.upstream_repository(repo).map(|u| (r, u)))
        .max_by_key(|(r, _)| r.ecr_repository_prefix.len())
}

/// Checks a repository prefix with ECR's InvalidParameterException messages.
pub fn validate_prefix(field: &str, prefix: &str) -> Result<(), String> {
    let at = format!("Invalid parameter at '{field}' failed to satisfy constraint");
    let len = prefix.chars().count();
    if len < 2 {
        return Err(format!(
            "{at}: 'must have length greater than or equal to 2'"
        ));
    }
    if len > 30 {
        return Err(format!("{at}: 'must have length less than or equal to 30'"));
    }
    if PREFIX.is_match(prefix).unwrap_or(false) {
        Ok(())
    } else {
        Err(format!(
            "{at}: 'must satisfy regular expression pattern: {PREFIX_PATTERN}'"
        ))
    }
}

/// The base URL of an upstream registry: ECR's rules name a host (`registry-1.docker.io`);
/// a scheme may be given (`http://` for a registry on loopback).
pub fn upstream_base_url(url: &str) -> Result<String, String> {
    let url = url.trim().trim_end_matches('/');
    let (scheme, host) = match url.split_once("://") {
        Some((s @ ("http" | "https"), h)) => (s, h),
        Some(_) => {
            return Err(format!(
                "The upstream registry URL '{url}' is not supported."
            ));
        }
        None => ("https", url),
    };
    if host.is_empty() || host.contains('/') || host.contains(char::is_whitespace) {
        return Err(format!(
            "The upstream registry URL '{url}' is not supported."
        ));
    }
    Ok(format!("{scheme}://{host}"))
}

/// The Kubernetes Secret a `credentialArn` names: a Secrets Manager ARN or plain secret name
/// whose name starts with `ecr-pullthroughcache/`, mapped as every Secrets Manager name is
/// (`ecr-pullthroughcache/docker-hub` is the Secret `ecr-pullthroughcache-docker-hub`).
pub fn credential_secret(credential_arn: &str) -> Result<String, String> {
    let name = match credential_arn.strip_prefix("arn:") {
        Some(rest) => {
            let parts: Vec<&str> = rest.splitn(6, ':').collect();
            match parts.as_slice() {
                [_, "secretsmanager", _, _, "secret", name] => *name,
                _ => "",
            }
        }
        None => credential_arn,
    };
    let valid = name.strip_prefix(SECRET_PREFIX).is_some_and(|n| {
        !n.is_empty()
            && n.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"/_+=.@-".contains(&b))
    });
    if !valid {
        return Err(format!(
            "Invalid parameter at 'credentialArn' failed to satisfy constraint: 'must name a Secrets Manager secret whose name starts with '{SECRET_PREFIX}''"
        ));
    }
    Ok(crate::taskdef::secrets::pull_secret_name(credential_arn))
}

/// ECR's name (`upstreamRegistry`) of a well-known upstream registry URL.
pub fn upstream_registry_name(url: &str) -> Option<&'static str> {
    let host = url.split_once("://").map_or(url, |(_, h)| h);
    let host = host.trim_end_matches('/');
    Some(match host {
        "registry-1.docker.io" => "docker-hub",
        "public.ecr.aws" => "ecr-public",
        "quay.io" => "quay",
        "registry.k8s.io" => "k8s",
        "ghcr.io" => "github-container-registry",
        "registry.gitlab.com" => "gitlab-container-registry",
        "cgr.dev" => "chainguard",
        h if h.ends_with(".azurecr.io") => "azure-container-registry",
        h if h.contains(".dkr.ecr.") && h.ends_with(".amazonaws.com") => "ecr",
        _ => return None,
    })
}

/// Whether a cached tag last checked at `checked` is due for a check with the upstream.
pub fn tag_due(checked: Option<SystemTime>, now: SystemTime, interval: Duration) -> bool {
    match checked {
        None => true,
        Some(t) => now.duration_since(t).is_ok_and(|age| age >= interval),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rule(prefix: &str, upstream_prefix: Option<&str>) -> CacheRule {
        CacheRule::new(prefix, "registry-1.docker.io", upstream_prefix, None, None).unwrap()
    }

    #[test]
    fn names_map_to_the_upstream_as_ecr_maps_them() {
        let hub = rule("docker-hub", None);
        assert_eq!(
            hub.upstream_repository("docker-hub/library/busybox"),
            Some("library/busybox".into())
        );
        assert_eq!(hub.upstream_repository("docker-hub"), None);
        assert_eq!(hub.upstream_repository("docker-hubx/busybox"), None);
        assert_eq!(hub.upstream_repository("other/busybox"), None);
        let lib = rule("hub/", Some("library"));
        assert_eq!(lib.ecr_repository_prefix, "hub");
        assert_eq!(
            lib.upstream_repository("hub/busybox"),
            Some("library/busybox".into())
        );
        let root = rule("quay", Some("ROOT"));
        assert_eq!(root.upstream_repository_prefix, None);
        let rules = [rule("aa", None), rule("aa/b", Some("xx"))];
        let (r, up) = matching(&rules, "aa/b/c").unwrap();
        assert_eq!(
            (r.ecr_repository_prefix.as_str(), up.as_str()),
            ("aa/b", "xx/c")
        );
        assert_eq!(matching(&rules, "aa/c").unwrap().1, "c");
        assert!(matching(&rules, "bb/c").is_none());
    }

    #[test]
    fn fields_are_checked_in_ecrs_words() {
        for ok in ["ab", "docker-hub", "a/b", "a__b", "ecr-public/", "k8s.io"] {
            validate_prefix("ecrRepositoryPrefix", ok).unwrap();
        }
        let e = validate_prefix("ecrRepositoryPrefix", "a").unwrap_err();
        assert!(e.contains("greater than or equal to 2"), "{e}");
        let e = validate_prefix("ecrRepositoryPrefix", &"a".repeat(31)).unwrap_err();
        assert!(e.contains("less than or equal to 30"), "{e}");
        for bad in ["Docker", "a//b", "-ab", "a_-b", "/ab"] {
            let e = validate_prefix("ecrRepositoryPrefix", bad).unwrap_err();
            assert!(e.contains("regular expression"), "{bad}: {e}");
        }
        let e = CacheRule::new("ROOT", "quay.io", None, None, None).unwrap_err();
        assert!(e.contains("reserved"), "{e}");
        assert_eq!(
            upstream_base_url("registry-1.docker.io/").unwrap(),
            "https://registry-1.docker.io"
        );
        assert_eq!(
            upstream_base_url("http://127.0.0.1:5000").unwrap(),
            "http://127.0.0.1:5000"
        );
        assert!(upstream_base_url("ftp://x").is_err());
        assert!(upstream_base_url("quay.io/x").is_err());
    }

    #[test]
    fn credentials_are_an_ecr_pullthroughcache_secret() {
        assert_eq!(
            credential_secret(
                "arn:aws:secretsmanager:us-east-1:123456789012:secret:ecr-pullthroughcache/docker-hub-AbC123"
            )
            .unwrap(),
            "ecr-pullthroughcache-docker-hub"
        );
        assert_eq!(
            credential_secret("ecr-pullthroughcache/ghcr").unwrap(),
            "ecr-pullthroughcache-ghcr"
        );
        for bad in [
            "docker-hub",
            "arn:aws:secretsmanager:us-east-1:1:secret:docker-hub",
            "arn:aws:ssm:us-east-1:1:parameter/ecr-pullthroughcache/x",
            "ecr-pullthroughcache/",
        ] {
            assert!(credential_secret(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn well_known_upstreams_have_ecrs_names() {
        assert_eq!(
            upstream_registry_name("registry-1.docker.io"),
            Some("docker-hub")
        );
        assert_eq!(
            upstream_registry_name("https://ghcr.io/"),
            Some("github-container-registry")
        );
        assert_eq!(
            upstream_registry_name("x.azurecr.io"),
            Some("azure-container-registry")
        );
        assert_eq!(
            upstream_registry_name("1.dkr.ecr.us-east-1.amazonaws.com"),
            Some("ecr")
        );
        assert_eq!(upstream_registry_name("http://127.0.0.1:5000"), None);
    }

    #[test]
    fn a_tag_is_checked_at_most_once_an_interval() {
        let t0 = SystemTime::UNIX_EPOCH + Duration::from_secs(1_000_000);
        assert!(tag_due(None, t0, TAG_RECHECK));
        assert!(!tag_due(
            Some(t0),
            t0 + Duration::from_secs(3600),
            TAG_RECHECK
        ));
        assert!(tag_due(Some(t0), t0 + TAG_RECHECK, TAG_RECHECK));
        // A clock that went back is not a reason to call the upstream.
        assert!(!tag_due(Some(t0), t0 - Duration::from_secs(5), TAG_RECHECK));
    }
}
