//! The hook through which ECR semantics reach the HTTP API: which repositories exist (with
//! their tag mutability), and which ECR actions a principal may perform on them.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::RwLock;

use futures::future::BoxFuture;

use crate::api::repository::ImageTagMutability;

use super::auth::Principal;
use super::names::wildcard_match;

/// ECR API actions, as repository policies name them.
pub mod actions {
    pub const BATCH_GET_IMAGE: &str = "ecr:BatchGetImage";
    pub const GET_DOWNLOAD_URL_FOR_LAYER: &str = "ecr:GetDownloadUrlForLayer";
    pub const BATCH_CHECK_LAYER_AVAILABILITY: &str = "ecr:BatchCheckLayerAvailability";
    pub const INITIATE_LAYER_UPLOAD: &str = "ecr:InitiateLayerUpload";
    pub const UPLOAD_LAYER_PART: &str = "ecr:UploadLayerPart";
    pub const COMPLETE_LAYER_UPLOAD: &str = "ecr:CompleteLayerUpload";
    pub const PUT_IMAGE: &str = "ecr:PutImage";
    pub const BATCH_DELETE_IMAGE: &str = "ecr:BatchDeleteImage";
    pub const LIST_IMAGES: &str = "ecr:ListImages";
    pub const DESCRIBE_IMAGES: &str = "ecr:DescribeImages";
    pub const DESCRIBE_REPOSITORIES: &str = "ecr:DescribeRepositories";
    /// A pull that a pull through cache rule fills from its upstream.
    pub const BATCH_IMPORT_UPSTREAM_IMAGE: &str = "ecr:BatchImportUpstreamImage";
}

/// What the registry needs to know about a repository.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct RepositorySettings {
    pub tag_mutability: ImageTagMutability,
    /// Wildcard filters (`*`) of the `*_WITH_EXCLUSION` mutabilities.
    pub exclusion_filters: Vec<String>,
}

impl RepositorySettings {
    /// May a push move `tag` to another digest? MUTABLE: yes; IMMUTABLE: no;
    /// IMMUTABLE_WITH_EXCLUSION: only tags matching a filter; MUTABLE_WITH_EXCLUSION: all but
    /// tags matching a filter.
    pub fn tag_is_immutable(&self, tag: &str) -> bool {
        let excluded = || {
            self.exclusion_filters
                .iter()
                .any(|f| wildcard_match(f, tag))
        };
        match self.tag_mutability {
            ImageTagMutability::Mutable => false,
            ImageTagMutability::Immutable => true,
            ImageTagMutability::ImmutableWithExclusion => !excluded(),
            ImageTagMutability::MutableWithExclusion => excluded(),
        }
    }
}

/// ECR semantics, plugged into the HTTP API.
pub trait AccessPolicy: Send + Sync + 'static {
    /// Is `repo` a known repository? None -> NAME_UNKNOWN with ECR's message unless the
    /// registry creates repositories on push.
    fn repository(&self, repo: &str) -> Option<RepositorySettings>;
    /// May `principal` perform the ECR `action` (e.g. "ecr:BatchGetImage") on `repo`?
    /// Err -> 403 DENIED with the message.
    fn authorize(&self, principal: &Principal, repo: &str, action: &str) -> Result<(), String>;
    /// Creates the unknown `repo` for a push by `principal` (`--create-on-push`): the settings
    /// it was created with. `scenario`: CREATE_ON_PUSH, or REPLICATION for a push by another
    /// registry's replication (its templates apply). By default nothing is written and ECR's
    /// defaults apply.
    fn create_on_push<'a>(
        &'a self,
        _principal: &'a Principal,
        _repo: &'a str,
        _scenario: crate::api::repository_creation_template::RctAppliedFor,
    ) -> BoxFuture<'a, Result<RepositorySettings, String>> {
        Box::pin(async { Ok(RepositorySettings::default()) })
    }
}

/// Every repository exists (mutable), every action is allowed: for tests and a bare registry.
pub struct AllowAll;

impl AccessPolicy for AllowAll {
    fn repository(&self, _: &str) -> Option<RepositorySettings> {
        Some(RepositorySettings::default())
    }

    fn authorize(&self, _: &Principal, _: &str, _: &str) -> Result<(), String> {
        Ok(())
    }
}

/// An in-memory policy: a set of repositories with their settings, and per-user allowed
/// actions (`*` or `ecr:*` allow everything). Users with no entry may do anything.
#[derive(Default)]
pub struct StaticPolicy {
    repositories: RwLock<BTreeMap<String, RepositorySettings>>,
    /// username -> allowed actions.
    grants: RwLock<BTreeMap<String, BTreeSet<String>>>,
}

impl StaticPolicy {
    pub fn new() -> StaticPolicy {
        StaticPolicy::default()
    }

    pub fn with_repository(self, name: &str, settings: RepositorySettings) -> StaticPolicy {
        self.set_repository(name, settings);
        self
    }

    pub fn set_repository(&self, name: &str, settings: RepositorySettings) {
        self.repositories
            .write()
            .expect("policy lock")
            .insert(name.to_string(), settings);
    }

    pub fn remove_repository(&self, name: &str) {
        self.repositories.write().expect("policy lock").remove(name);
    }

    /// Restricts `username` to `actions`.
    pub fn grant(self, username: &str, actions: &[&str]) -> StaticPolicy {
        self.grants.write().expect("policy lock").insert(
            username.to_string(),
            actions.iter().map(|a| a.to_string()).collect(),
        );
        self
    }
}

impl AccessPolicy for StaticPolicy {
    fn repository(&self, repo: &str) -> Option<RepositorySettings> {
        self.repositories
            .read()
            .expect("policy lock")
            .get(repo)
            .cloned()
    }

    fn authorize(&self, principal: &Principal, repo: &str, action: &str) -> Result<(), String> {
        let grants = self.grants.read().expect("policy lock");
        match grants.get(&principal.username) {
            None => Ok(()),
            Some(a) if a.contains("*") || a.contains("ecr:*") || a.contains(action) => Ok(()),
            Some(_) => Err(format!(
                "User: {} is not authorized to perform: {action} on resource: {repo}",
                principal.username
            )),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings(m: ImageTagMutability, filters: &[&str]) -> RepositorySettings {
        RepositorySettings {
            tag_mutability: m,
            exclusion_filters: filters.iter().map(|s| s.to_string()).collect(),
        }
    }

    #[test]
    fn tag_mutability() {
        use ImageTagMutability::*;
        assert!(!settings(Mutable, &[]).tag_is_immutable("latest"));
        assert!(settings(Immutable, &[]).tag_is_immutable("latest"));
        let iwe = settings(ImmutableWithExclusion, &["latest", "dev-*"]);
        assert!(!iwe.tag_is_immutable("latest"));
        assert!(!iwe.tag_is_immutable("dev-42"));
        assert!(iwe.tag_is_immutable("v1.0"));
        let mwe = settings(MutableWithExclusion, &["release-*"]);
        assert!(mwe.tag_is_immutable("release-1"));
        assert!(!mwe.tag_is_immutable("latest"));
    }

    #[test]
    fn static_policy() {
        let p = StaticPolicy::new()
            .with_repository("a", RepositorySettings::default())
            .grant("reader", &[actions::BATCH_GET_IMAGE]);
        assert!(p.repository("a").is_some());
        assert!(p.repository("b").is_none());
        let reader = Principal {
            username: "reader".into(),
            groups: vec![],
        };
        assert!(p.authorize(&reader, "a", actions::BATCH_GET_IMAGE).is_ok());
        let e = p.authorize(&reader, "a", actions::PUT_IMAGE).unwrap_err();
        assert!(e.contains("ecr:PutImage"), "{e}");
        let other = Principal {
            username: "other".into(),
            groups: vec![],
        };
        assert!(p.authorize(&other, "a", actions::PUT_IMAGE).is_ok());
    }
}
