//! `RepositoryCreationTemplate` (ecr.kubecs.io): the settings ECR gives a repository it
//! creates itself (on push, for a pull through cache, by replication).
//!
//! Like repository names and cache rule prefixes, a template's prefix is global across the
//! cluster (image references carry no account): when objects of several namespaces claim one
//! prefix the oldest holds it. The template's namespace is the account of the repositories
//! it creates on push.

use kube::{CustomResource, KubeSchema};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::common::Tag;
use super::repository::{
    EncryptionConfiguration, ImageTagMutability, ImageTagMutabilityExclusionFilter,
    LifecyclePolicy, RepositoryPolicy,
};

/// The settings a repository the registry creates takes when its name starts with `prefix`
/// (the longest matching prefix wins; `ROOT` matches every name).
#[derive(CustomResource, Serialize, Deserialize, Clone, Debug, PartialEq, KubeSchema)]
#[kube(
    group = "ecr.kubecs.io",
    version = "v1alpha1",
    kind = "RepositoryCreationTemplate",
    plural = "repositorycreationtemplates",
    singular = "repositorycreationtemplate",
    shortname = "rct",
    category = "ecr",
    namespaced,
    doc = "An ECR repository creation template of the kubecs registry.",
    printcolumn(name = "Prefix", type_ = "string", json_path = ".spec.prefix"),
    printcolumn(name = "Applied For", type_ = "string", json_path = ".spec.appliedFor"),
    printcolumn(
        name = "Mutability",
        type_ = "string",
        json_path = ".spec.imageTagMutability"
    ),
    printcolumn(
        name = "Age",
        type_ = "date",
        json_path = ".metadata.creationTimestamp"
    )
)]
#[x_kube(validation = Rule::new("self.prefix == oldSelf.prefix").message("prefix cannot be changed: create a new repository creation template."))]
#[x_kube(validation = Rule::new(r"self.prefix == 'ROOT' || self.prefix.matches('^(?:[a-z0-9]+(?:[._-][a-z0-9]+)*/)*[a-z0-9]+(?:[._-][a-z0-9]+)*/?$')").message("Invalid parameter at 'prefix' failed to satisfy constraint: 'must satisfy regular expression pattern: ^((?:[a-z0-9]+(?:[._-][a-z0-9]+)*/)*[a-z0-9]+(?:[._-][a-z0-9]+)*/?|ROOT)$'"))]
#[x_kube(validation = super::repository::exclusion_filters_need_an_exclusion_mutability())]
#[x_kube(validation = super::repository::an_exclusion_mutability_needs_filters())]
#[serde(rename_all = "camelCase")]
pub struct RepositoryCreationTemplateSpec {
    /// The repository namespace prefix the template applies to: `prod` applies to
    /// `prod/...`; `ROOT` to every repository no other template matches. It cannot change.
    #[schemars(length(min = 1, max = 256))]
    pub prefix: String,
    /// What the template is for.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 256))]
    pub description: Option<String>,
    /// When the template applies: CREATE_ON_PUSH, PULL_THROUGH_CACHE, REPLICATION.
    #[schemars(length(min = 1, max = 3))]
    pub applied_for: Vec<RctAppliedFor>,
    /// The created repositories' tag mutability (default MUTABLE).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image_tag_mutability: Option<ImageTagMutability>,
    /// Tags exempt from the mutability setting (1-5 wildcard filters).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 5))]
    pub image_tag_mutability_exclusion_filters: Vec<ImageTagMutabilityExclusionFilter>,
    /// The created repositories' repository policy.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub repository_policy: Option<RepositoryPolicy>,
    /// The created repositories' lifecycle policy.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lifecycle_policy: Option<LifecyclePolicy>,
    /// Metadata tags of the created repositories.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 50))]
    pub resource_tags: Vec<Tag>,
    /// Encryption at rest (accepted; the storage backend's own encryption applies).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub encryption_configuration: Option<EncryptionConfiguration>,
}

/// ECR's `RCTAppliedFor`.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, Hash, JsonSchema)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum RctAppliedFor {
    CreateOnPush,
    PullThroughCache,
    Replication,
}
