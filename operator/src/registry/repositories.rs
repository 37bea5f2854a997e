//! Repository objects as the registry's [`AccessPolicy`].
//!
//! Namespaces and names: DESIGN.md maps an ECR account to a namespace, but image references
//! (`HOST/NAME:TAG`) carry no account, so **repository names are global across the cluster**:
//! a `Repository` may live in any namespace, and `spec.repositoryName` (default
//! `metadata.name`) is the name clients push to. When two objects claim one name, the oldest
//! (creation time, then `namespace/name`) owns it; the others are reported Degraded and have
//! no effect. The owner's namespace is the repository's account (its ARN, and the "same
//! account" rule below).
//!
//! Authorization of an authenticated principal on a repository (pure, see [`decide`]):
//! - an explicit Deny in `spec.repositoryPolicy` refuses (403 DENIED, IAM's wording);
//! - an Allow statement allows;
//! - no policy: every authenticated principal is allowed (the registry does not consult RBAC);
//! - a policy that says nothing about the caller: as in ECR, where a repository policy is
//!   needed only across accounts, callers of the repository's own account are allowed — users
//!   (cluster-wide, like IAM users) and ServiceAccounts of the repository's namespace — and
//!   ServiceAccounts of other namespaces are refused.
//!
//! Unknown repositories are left to the handler (NAME_UNKNOWN, or `--create-on-push`, which
//! writes the Repository object with its creation template: `creation`).

use std::sync::Arc;

use kube::ResourceExt;
use kube::runtime::reflector::Store;

use crate::api::repository::Repository;
use crate::ecr::{self, Decision};
use crate::taskdef::names::{dns_subdomain, fnv64, is_dns_subdomain};

use super::access::{AccessPolicy, RepositorySettings};
use super::auth::Principal;

/// The registry name a Repository object stands for.
pub fn repository_name(r: &Repository) -> String {
    r.spec
        .repository_name
        .clone()
        .unwrap_or_else(|| r.name_any())
}

/// The object name of a repository the API or a pull through cache creates: the repository
/// name when it is one, otherwise a DNS subdomain made of it with a hash (so `a/b` and `a-b`
/// never collide).
pub fn object_name(repository_name: &str) -> String {
    if is_dns_subdomain(repository_name) {
        return repository_name.to_string();
    }
    let base = repository_name.replace(['/', '_'], "-");
    dns_subdomain(&format!("{base}-{:08x}", fnv64(repository_name) as u32))
}

/// Orders claimants of one name (a repository's, a cache rule's prefix): oldest first, then
/// by `namespace/name`.
pub fn claim_key<K: kube::Resource>(r: &K) -> (Option<i64>, String, String) {
    (
        r.meta()
            .creation_timestamp
            .as_ref()
            .map(|t| t.0.as_millisecond()),
        r.namespace().unwrap_or_default(),
        r.name_any(),
    )
}

/// The object that owns registry name `name`, if any.
pub fn lookup<'a>(repos: &'a [Arc<Repository>], name: &str) -> Option<&'a Arc<Repository>> {
    repos
        .iter()
        .filter(|r| repository_name(r) == name)
        .min_by_key(|r| claim_key(&***r))
}

/// When `r` is not the owner of its name: the owner's `namespace/name`.
pub fn shadowed_by(repos: &[Arc<Repository>], r: &Repository) -> Option<String> {
    let owner = lookup(repos, &repository_name(r))?;
    (owner.uid() != r.uid() || claim_key(&**owner) != claim_key(r)).then(|| {
        format!(
            "{}/{}",
            owner.namespace().unwrap_or_default(),
            owner.name_any()
        )
    })
}

/// Tag mutability settings of a Repository.
pub fn settings(r: &Repository) -> RepositorySettings {
    RepositorySettings {
        tag_mutability: r.spec.image_tag_mutability.unwrap_or_default(),
        exclusion_filters: ecr::exclusion_filter_patterns(
            &r.spec.image_tag_mutability_exclusion_filters,
        ),
    }
}

/// The ARN of the repository `name` owned by an object in `namespace`.
pub fn repository_arn(namespace: &str, name: &str) -> String {
    crate::arn::repository(namespace, name)
}

fn policy_principal(p: &Principal) -> ecr::Principal {
    ecr::Principal {
        username: p.username.clone(),
        groups: p.groups.clone(),
    }
}

/// Whether `p` belongs to the account (namespace) `namespace`: users are cluster-wide,
/// ServiceAccounts belong to their namespace.
fn same_account(p: &Principal, namespace: &str) -> bool {
    match p.username.strip_prefix("system:serviceaccount:") {
        Some(rest) => rest.split_once(':').is_some_and(|(ns, _)| ns == namespace),
        None => true,
    }
}

/// May `p` perform `action` on the repository `r` (named `name`)? Err is the 403 message.
pub fn decide(r: &Repository, name: &str, p: &Principal, action: &str) -> Result<(), String> {
    let namespace = r.namespace().unwrap_or_default();
    let decision = ecr::policy::evaluate(
        r.spec.repository_policy.as_ref(),
        &policy_principal(p),
        action,
    );
    let allowed = match &decision {
        Decision::Allow | Decision::NoPolicy => true,
        Decision::ImplicitDeny => same_account(p, &namespace),
        Decision::ExplicitDeny { .. } => false,
    };
    if allowed {
        return Ok(());
    }
    Err(ecr::policy::access_denied_message(
        &decision,
        &p.username,
        action,
        &repository_arn(&namespace, name),
    )
    .unwrap_or_else(|| {
        format!(
            "User: {} is not authorized to perform: {action}",
            p.username
        )
    }))
}

/// The registry's policy over a reflector of Repository objects.
pub struct KubeRepositories {
    pub store: Store<Repository>,
    /// Writes the Repository objects of `--create-on-push` (None: pushes to unknown names
    /// are refused, or, without Kubernetes, allowed with ECR's defaults).
    pub creator: Option<Arc<super::creation::Creator>>,
}

impl AccessPolicy for KubeRepositories {
    fn repository(&self, name: &str) -> Option<RepositorySettings> {
        let repos = self.store.state();
        lookup(&repos, name).map(|r| settings(r))
    }

    fn authorize(&self, principal: &Principal, name: &str, action: &str) -> Result<(), String> {
        let repos = self.store.state();
        match lookup(&repos, name) {
            Some(r) => decide(r, name, principal, action),
            None => Ok(()),
        }
    }

    fn create_on_push<'a>(
        &'a self,
        principal: &'a Principal,
        repo: &'a str,
        scenario: crate::api::repository_creation_template::RctAppliedFor,
    ) -> futures::future::BoxFuture<'a, Result<RepositorySettings, String>> {
        Box::pin(async move {
            match &self.creator {
                Some(c) => c.create_for_push(principal, repo, scenario).await,
                None => Ok(RepositorySettings::default()),
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::repository::{ImageTagMutability, RepositorySpec};
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;

    fn repo(ns: &str, name: &str, created: i64, spec: serde_json::Value) -> Arc<Repository> {
        let mut r = Repository::new(
            name,
            serde_json::from_value::<RepositorySpec>(spec).unwrap(),
        );
        r.metadata.namespace = Some(ns.into());
        r.metadata.uid = Some(format!("{ns}-{name}"));
        r.metadata.creation_timestamp = Some(Time(
            k8s_openapi::jiff::Timestamp::from_second(created).unwrap(),
        ));
        Arc::new(r)
    }

    fn sa(ns: &str, name: &str) -> Principal {
        Principal {
            username: format!("system:serviceaccount:{ns}:{name}"),
            groups: vec!["system:serviceaccounts".into()],
        }
    }

    #[test]
    fn names_are_global_and_the_oldest_claim_wins() {
        let repos = vec![
            repo("b", "web", 200, serde_json::json!({})),
            repo(
                "a",
                "other",
                100,
                serde_json::json!({"repositoryName": "web"}),
            ),
            repo(
                "c",
                "team-a",
                50,
                serde_json::json!({"repositoryName": "team/app"}),
            ),
        ];
        let owner = lookup(&repos, "web").unwrap();
        assert_eq!(owner.namespace().as_deref(), Some("a"));
        assert_eq!(shadowed_by(&repos, &repos[0]).as_deref(), Some("a/other"));
        assert_eq!(shadowed_by(&repos, &repos[1]), None);
        assert_eq!(
            lookup(&repos, "team/app").unwrap().name_any(),
            "team-a",
            "spec.repositoryName is the registry name"
        );
        assert!(lookup(&repos, "team-a").is_none());
    }

    #[test]
    fn settings_follow_the_spec() {
        let r = repo(
            "a",
            "web",
            1,
            serde_json::json!({"imageTagMutability": "IMMUTABLE_WITH_EXCLUSION",
                "imageTagMutabilityExclusionFilters": [{"filterType": "WILDCARD", "filter": "dev-*"}]}),
        );
        let s = settings(&r);
        assert_eq!(s.tag_mutability, ImageTagMutability::ImmutableWithExclusion);
        assert!(!s.tag_is_immutable("dev-1"));
        assert!(s.tag_is_immutable("v1"));
    }

    #[test]
    fn policy_decisions() {
        let open = repo("team", "web", 1, serde_json::json!({}));
        assert!(decide(&open, "web", &sa("elsewhere", "x"), "ecr:PutImage").is_ok());

        let policy = serde_json::json!({"repositoryPolicy": {"Statement": [
            {"Effect": "Deny", "Principal": {"Kubernetes": {"ServiceAccount": "team:intruder"}},
             "Action": "ecr:*"},
            {"Effect": "Allow", "Principal": {"Kubernetes": {"ServiceAccount": "ci:pusher"}},
             "Action": ["ecr:PutImage"]}]}});
        let r = repo("team", "web", 1, policy);
        let denied = decide(&r, "web", &sa("team", "intruder"), "ecr:BatchGetImage").unwrap_err();
        assert_eq!(
            denied,
            "User: system:serviceaccount:team:intruder is not authorized to perform: \
             ecr:BatchGetImage on resource: arn:aws:ecr:kubecs:team:repository/web \
             with an explicit deny in a resource-based policy"
        );
        // The account's own identities need no statement; other accounts need an Allow.
        assert!(decide(&r, "web", &sa("team", "builder"), "ecr:PutImage").is_ok());
        assert!(
            decide(
                &r,
                "web",
                &Principal {
                    username: "alice".into(),
                    groups: vec![]
                },
                "ecr:PutImage"
            )
            .is_ok()
        );
        assert!(decide(&r, "web", &sa("ci", "pusher"), "ecr:PutImage").is_ok());
        let e = decide(&r, "web", &sa("ci", "pusher"), "ecr:BatchGetImage").unwrap_err();
        assert!(e.contains("because no resource-based policy allows"), "{e}");
    }
}
