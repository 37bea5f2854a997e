//! The ECR API (`AmazonEC2ContainerRegistry_V20150921`): repositories are Repository objects;
//! images live in the registry and are reached through its OCI API as the caller.
//!
//! - `repositories`: create, delete, describe, tag mutability, tags (the objects' spec).
//! - `policies`: lifecycle and repository policies, carried as JSON text and stored typed.
//! - `images`: image operations over the registry's HTTP API (`registry_client`).
//! - `token`: GetAuthorizationToken, the caller's own registry token.
//! - `pull_through`: pull through cache rules (PullThroughCacheRule objects).
//! - `templates`: repository creation templates (RepositoryCreationTemplate objects).
//! - `replication`: the replication configuration (ReplicationConfiguration objects) and each
//!   image's replication status (the registry's).
//!
//! The registry id in answers and messages is the one the registry writes into Repository
//! status (`--registry-id` of `kubecs registry`), [`DEFAULT_REGISTRY_ID`] until it has.

mod by_prefix;
mod images;
mod policies;
mod pull_through;
mod registry_client;
mod replication;
mod repositories;
pub(crate) mod templates;
mod token;

use kube::ResourceExt;
use kube::api::ListParams;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::registry::RegistryLink;
use super::{AwsError, Caller};
use crate::api::repository::Repository;
use crate::registry::repositories::repository_name;

/// The operations served.
pub const OPERATIONS: &[&str] = &[
    "GetAuthorizationToken",
    "CreateRepository",
    "DeleteRepository",
    "DescribeRepositories",
    "DescribeRegistry",
    "PutImageTagMutability",
    "TagResource",
    "UntagResource",
    "ListTagsForResource",
    "GetLifecyclePolicy",
    "PutLifecyclePolicy",
    "DeleteLifecyclePolicy",
    "StartLifecyclePolicyPreview",
    "GetLifecyclePolicyPreview",
    "SetRepositoryPolicy",
    "GetRepositoryPolicy",
    "DeleteRepositoryPolicy",
    "DescribeImages",
    "ListImages",
    "BatchGetImage",
    "BatchDeleteImage",
    "PutImage",
    "BatchCheckLayerAvailability",
    "CreatePullThroughCacheRule",
    "DescribePullThroughCacheRules",
    "DeletePullThroughCacheRule",
    "UpdatePullThroughCacheRule",
    "ValidatePullThroughCacheRule",
    "CreateRepositoryCreationTemplate",
    "DescribeRepositoryCreationTemplates",
    "UpdateRepositoryCreationTemplate",
    "DeleteRepositoryCreationTemplate",
    "PutReplicationConfiguration",
    "DescribeImageReplicationStatus",
];

/// The registry's id until its status says otherwise (`kubecs registry`'s default).
pub const DEFAULT_REGISTRY_ID: &str = "000000000000";

/// One ECR call: the caller and the registry its image operations reach.
pub struct Ecr<'a> {
    pub c: &'a Caller,
    pub registry: Option<&'a RegistryLink>,
}

pub async fn call(
    c: &Caller,
    registry: Option<&RegistryLink>,
    op: &str,
    body: &[u8],
) -> Result<Value, AwsError> {
    let e = &Ecr { c, registry };
    let out: Result<Value, AwsError> = crate::aws_operations!(e, op, body, {
        "GetAuthorizationToken" => token::get_authorization_token,
        "CreateRepository" => repositories::create,
        "DeleteRepository" => repositories::delete,
        "DescribeRepositories" => repositories::describe,
        "DescribeRegistry" => replication::describe_registry,
        "PutReplicationConfiguration" => replication::put_replication_configuration,
        "DescribeImageReplicationStatus" => replication::describe_image_replication_status,
        "PutImageTagMutability" => repositories::put_image_tag_mutability,
        "TagResource" => repositories::tag_resource,
        "UntagResource" => repositories::untag_resource,
        "ListTagsForResource" => repositories::list_tags_for_resource,
        "GetLifecyclePolicy" => policies::get_lifecycle_policy,
        "PutLifecyclePolicy" => policies::put_lifecycle_policy,
        "DeleteLifecyclePolicy" => policies::delete_lifecycle_policy,
        "StartLifecyclePolicyPreview" => policies::start_lifecycle_policy_preview,
        "GetLifecyclePolicyPreview" => policies::get_lifecycle_policy_preview,
        "SetRepositoryPolicy" => policies::set_repository_policy,
        "GetRepositoryPolicy" => policies::get_repository_policy,
        "DeleteRepositoryPolicy" => policies::delete_repository_policy,
        "DescribeImages" => images::describe_images,
        "ListImages" => images::list_images,
        "BatchGetImage" => images::batch_get_image,
        "BatchDeleteImage" => images::batch_delete_image,
        "PutImage" => images::put_image,
        "BatchCheckLayerAvailability" => images::batch_check_layer_availability,
        "CreatePullThroughCacheRule" => pull_through::create,
        "DescribePullThroughCacheRules" => pull_through::describe,
        "DeletePullThroughCacheRule" => pull_through::delete,
        "UpdatePullThroughCacheRule" => pull_through::update,
        "ValidatePullThroughCacheRule" => pull_through::validate,
        "CreateRepositoryCreationTemplate" => templates::create,
        "DescribeRepositoryCreationTemplates" => templates::describe,
        "UpdateRepositoryCreationTemplate" => templates::update,
        "DeleteRepositoryCreationTemplate" => templates::delete,
    });
    out.map(compact)
}

/// Drops null members: optional fields the model leaves out rather than sends as null.
pub fn compact(v: Value) -> Value {
    match v {
        Value::Object(m) => Value::Object(
            m.into_iter()
                .filter(|(_, v)| !v.is_null())
                .map(|(k, v)| (k, compact(v)))
                .collect(),
        ),
        Value::Array(a) => Value::Array(a.into_iter().map(compact).collect()),
        v => v,
    }
}

/// The registry id of `r` (see the module's note).
pub fn registry_id(r: Option<&Repository>) -> String {
    r.and_then(|r| r.status.as_ref())
        .and_then(|s| s.registry_id.clone())
        .unwrap_or_else(|| DEFAULT_REGISTRY_ID.to_string())
}

/// ECR's RepositoryNotFoundException.
pub fn repository_not_found(name: &str, registry_id: &str) -> AwsError {
    AwsError::bad(
        "RepositoryNotFoundException",
        format!(
            "The repository with name '{name}' does not exist in the registry with id '{registry_id}'"
        ),
    )
}

/// A repository named by a request: its name and the account (namespace) it is looked up
/// in, the caller's unless an ARN names another (RBAC then decides).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RepositoryRef {
    pub namespace: String,
    pub name: String,
}

impl RepositoryRef {
    pub fn named(c: &Caller, name: &str) -> Result<Self, AwsError> {
        crate::ecr::validate_repository_name(name).map_err(AwsError::invalid_parameter)?;
        Ok(Self {
            namespace: c.account().to_string(),
            name: name.to_string(),
        })
    }

    /// `arn:aws:ecr:REGION:ACCOUNT:repository/NAME`.
    pub fn from_arn(arn: &str) -> Result<Self, AwsError> {
        let invalid = || {
            AwsError::invalid_parameter(format!(
                "Invalid parameter at 'resourceArn' failed to satisfy constraint: 'Invalid ARN: {arn}'"
            ))
        };
        let rest = arn.strip_prefix("arn:").ok_or_else(invalid)?;
        let parts: Vec<&str> = rest.splitn(5, ':').collect();
        match parts.as_slice() {
            [_, "ecr", _, account, resource] if !account.is_empty() => {
                let name = resource.strip_prefix("repository/").ok_or_else(invalid)?;
                crate::ecr::validate_repository_name(name).map_err(|_| invalid())?;
                Ok(Self {
                    namespace: account.to_string(),
                    name: name.to_string(),
                })
            }
            _ => Err(invalid()),
        }
    }

    pub fn arn(&self) -> String {
        crate::arn::repository(&self.namespace, &self.name)
    }
}

/// Every Repository of `namespace`.
pub async fn list_repositories(c: &Caller, namespace: &str) -> Result<Vec<Repository>, AwsError> {
    Ok(c.api::<Repository>(namespace)
        .list(&ListParams::default())
        .await
        .map_err(|e| c.kube_error(e, &crate::arn::repository(namespace, "*")))?
        .items)
}

/// The Repository `r` names, or ECR's RepositoryNotFoundException. When two objects of the
/// account claim the name, the oldest is the repository, as in the registry.
pub async fn find(c: &Caller, r: &RepositoryRef) -> Result<Repository, AwsError> {
    let repos: Vec<std::sync::Arc<Repository>> = list_repositories(c, &r.namespace)
        .await?
        .into_iter()
        .map(std::sync::Arc::new)
        .collect();
    match crate::registry::repositories::lookup(&repos, &r.name) {
        Some(found) => Ok((**found).clone()),
        None => Err(repository_not_found(
            &r.name,
            &registry_id(repos.first().map(|a| &**a)),
        )),
    }
}

/// What operations on one repository answer besides their own fields.
pub fn ids(r: &Repository) -> (String, String) {
    (registry_id(Some(r)), repository_name(r))
}

/// The Repository's object name and namespace, for writes.
pub fn object_of(r: &Repository) -> (String, String) {
    (r.namespace().unwrap_or_default(), r.name_any())
}

/// ECR's `Tag` (`Key`/`Value`; the CRD keeps ECS's `key`/`value`).
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
pub struct EcrTag {
    #[serde(rename = "Key")]
    pub key: String,
    #[serde(rename = "Value", default)]
    pub value: String,
}

impl From<&crate::api::common::Tag> for EcrTag {
    fn from(t: &crate::api::common::Tag) -> Self {
        Self {
            key: t.key.clone(),
            value: t.value.clone().unwrap_or_default(),
        }
    }
}

impl From<EcrTag> for crate::api::common::Tag {
    fn from(t: EcrTag) -> Self {
        Self {
            key: t.key,
            value: Some(t.value),
        }
    }
}

#[cfg(test)]
mod tests;
