//! PullThroughCacheRule objects as the pull through cache's rules (with `--kubernetes`).
//!
//! Repository names are global across the cluster (see `repositories`), so a prefix is too:
//! when objects of several namespaces claim one prefix, the oldest (creation time, then
//! `namespace/name`) holds it. A rule's namespace is its account: its credentials are the
//! Secret its `credentialArn` names there, and the repositories its first pulls create are
//! Repository objects there (with the PULL_THROUGH_CACHE creation template that applies, see
//! `creation`), so `kubectl get repositories` and repository policies work on them as on any
//! other.

use std::sync::Arc;

use futures::future::BoxFuture;
use k8s_openapi::api::core::v1::Secret;
use kube::runtime::reflector::Store;
use kube::{Api, Client, ResourceExt};

use super::creation::Creator;
use super::pull_through::CacheRules;
use super::repositories::claim_key;
use crate::api::pull_through_cache_rule::PullThroughCacheRule;
use crate::ecr::pull_through::CacheRule;

/// The annotation on a Repository a pull through cache created: the rule's prefix.
pub const CREATED_BY_RULE: &str = "ecr.kubecs.io/pull-through-cache-prefix";

/// The Secret keys of upstream credentials, as ECR's secret holds them.
pub const USERNAME_KEY: &str = "username";
pub const ACCESS_TOKEN_KEY: &str = "accessToken";

/// The rules the objects stand for, one per prefix (the oldest object's); objects whose
/// fields ECR would refuse are left out, with a log line.
pub fn rules_of(objects: &[Arc<PullThroughCacheRule>]) -> Vec<CacheRule> {
    let mut sorted: Vec<&Arc<PullThroughCacheRule>> = objects.iter().collect();
    sorted.sort_by_key(|o| claim_key(&***o));
    let mut rules: Vec<CacheRule> = Vec::new();
    for o in sorted {
        let s = &o.spec;
        let rule = CacheRule::new(
            &s.ecr_repository_prefix,
            &s.upstream_registry_url,
            s.upstream_repository_prefix.as_deref(),
            s.credential_arn.as_deref(),
            o.namespace().as_deref(),
        );
        match rule {
            Ok(r)
                if rules
                    .iter()
                    .any(|h| h.ecr_repository_prefix == r.ecr_repository_prefix) =>
            {
                tracing::debug!(rule = %o.name_any(), prefix = %r.ecr_repository_prefix, "prefix held by an older rule");
            }
            Ok(r) => rules.push(r),
            Err(e) => tracing::debug!(rule = %o.name_any(), error = %e, "rule left out"),
        }
    }
    rules
}

/// The user and access token of an `ecr-pullthroughcache/...` Secret.
pub fn credentials_of(secret: &Secret) -> Option<(String, String)> {
    let data = secret.data.as_ref()?;
    let text = |k: &str| String::from_utf8(data.get(k)?.0.clone()).ok();
    Some((text(USERNAME_KEY)?, text(ACCESS_TOKEN_KEY)?))
}

/// The rules of a reflector of PullThroughCacheRule objects, and `extra` ones from flags.
pub struct KubeCacheRules {
    pub store: Store<PullThroughCacheRule>,
    pub client: Client,
    pub extra: Vec<CacheRule>,
    /// Writes the Repository objects first pulls create, with their creation template.
    pub creator: Arc<Creator>,
}

impl CacheRules for KubeCacheRules {
    fn rules(&self) -> Vec<CacheRule> {
        let mut rules = rules_of(&self.store.state());
        rules.extend(self.extra.iter().cloned());
        rules
    }

    fn credentials<'a>(
        &'a self,
        rule: &'a CacheRule,
    ) -> BoxFuture<'a, Result<Option<(String, String)>, String>> {
        Box::pin(async move {
            let (Some(name), Some(ns)) = (&rule.credential_secret, &rule.namespace) else {
                return Ok(None);
            };
            let secret = Api::<Secret>::namespaced(self.client.clone(), ns)
                .get_opt(name)
                .await
                .map_err(|e| format!("reading the Secret {ns}/{name}: {e}"))?
                .ok_or_else(|| {
                    format!("the credentials Secret {ns}/{name} of the pull through cache rule does not exist")
                })?;
            credentials_of(&secret).map(Some).ok_or_else(|| {
                format!(
                    "the Secret {ns}/{name} lacks the keys {USERNAME_KEY} and {ACCESS_TOKEN_KEY}"
                )
            })
        })
    }

    fn create_repository<'a>(
        &'a self,
        rule: &'a CacheRule,
        repo: &'a str,
    ) -> BoxFuture<'a, Result<(), String>> {
        Box::pin(async move {
            let Some(ns) = &rule.namespace else {
                return Ok(());
            };
            let annotations = [(
                CREATED_BY_RULE.to_string(),
                rule.ecr_repository_prefix.clone(),
            )]
            .into();
            self.creator.create_for_cache(ns, repo, annotations).await
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::pull_through_cache_rule::PullThroughCacheRuleSpec;
    use k8s_openapi::ByteString;
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;

    fn object(ns: &str, name: &str, age_s: i64, prefix: &str) -> Arc<PullThroughCacheRule> {
        let mut o = PullThroughCacheRule::new(
            name,
            PullThroughCacheRuleSpec {
                ecr_repository_prefix: prefix.into(),
                upstream_registry_url: format!("{name}.example"),
                upstream_repository_prefix: None,
                credential_arn: Some("ecr-pullthroughcache/hub".into()),
            },
        );
        o.metadata.namespace = Some(ns.into());
        let t = k8s_openapi::jiff::Timestamp::from_second(1_700_000_000 - age_s).unwrap();
        o.metadata.creation_timestamp = Some(Time(t));
        Arc::new(o)
    }

    #[test]
    fn the_oldest_rule_holds_a_prefix() {
        let rules = rules_of(&[
            object("b", "young", 10, "hub"),
            object("a", "old", 100, "hub"),
            object("a", "bad", 5, "X"),
            object("c", "quay", 1, "quay"),
        ]);
        assert_eq!(rules.len(), 2);
        assert_eq!(rules[0].upstream_registry_url, "https://old.example");
        assert_eq!(rules[0].namespace.as_deref(), Some("a"));
        assert_eq!(
            rules[0].credential_secret.as_deref(),
            Some("ecr-pullthroughcache-hub")
        );
        assert_eq!(rules[1].ecr_repository_prefix, "quay");
    }

    #[test]
    fn credentials_are_the_secrets_username_and_access_token() {
        let mut s = Secret::default();
        assert_eq!(credentials_of(&s), None);
        s.data = Some(
            [
                ("username".to_string(), ByteString(b"u".to_vec())),
                ("accessToken".to_string(), ByteString(b"t".to_vec())),
            ]
            .into(),
        );
        assert_eq!(credentials_of(&s), Some(("u".into(), "t".into())));
    }
}
