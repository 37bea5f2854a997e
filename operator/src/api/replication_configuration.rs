//! `ReplicationConfiguration` (ecr.kubecs.io): ECR's registry replication configuration of one
//! account (namespace), in ECR's field names (`rules[].destinations[].{region, registryId}`,
//! `rules[].repositoryFilters[].{filter, filterType}`), plus what ECR never needs and kubecs
//! does: where each destination is (`destinationRegistries`).
//!
//! ECR names a destination by `region` and `registryId`, and AWS knows where that is. A kubecs
//! registry has no such directory, so the object maps each `(region, registryId)` to a URL and,
//! for a registry that asks for credentials, the Secret holding them. The mapping lives beside
//! the rules (one object per account, named `default`, what PutReplicationConfiguration writes
//! and DescribeRegistry reads) rather than in a kind of its own: ECR's replication settings are
//! one registry-level document, and `aws ecr put-replication-configuration` only replaces its
//! `rules`, leaving `destinationRegistries` (set with `kubectl`) alone.

use kube::{CustomResource, KubeSchema};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// The name of an account's replication configuration object.
pub const DEFAULT_NAME: &str = "default";

/// The registry replication configuration of the account (namespace): images pushed to
/// repositories a rule matches are copied to the rule's destinations.
#[derive(CustomResource, Serialize, Deserialize, Clone, Debug, Default, PartialEq, KubeSchema)]
#[kube(
    group = "ecr.kubecs.io",
    version = "v1alpha1",
    kind = "ReplicationConfiguration",
    plural = "replicationconfigurations",
    singular = "replicationconfiguration",
    shortname = "ecrrepl",
    category = "ecr",
    namespaced,
    doc = "The ECR registry replication configuration of an account (namespace) of the kubecs registry.",
    printcolumn(
        name = "Age",
        type_ = "date",
        json_path = ".metadata.creationTimestamp"
    )
)]
#[serde(rename_all = "camelCase")]
pub struct ReplicationConfigurationSpec {
    /// ECR's replication rules (at most 10; at most 25 unique destinations across them).
    #[serde(default)]
    #[schemars(length(max = 10))]
    pub rules: Vec<ReplicationRule>,
    /// kubecs: where each destination of the rules is. A destination with no entry here
    /// cannot be reached (its images stay FAILED with failureCode DESTINATION_UNKNOWN).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 25))]
    pub destination_registries: Vec<DestinationRegistry>,
}

/// ECR's `ReplicationRule`.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ReplicationRule {
    /// Where images of the matching repositories are copied.
    #[schemars(length(max = 100))]
    pub destinations: Vec<ReplicationDestination>,
    /// Which repositories the rule replicates (none: every repository).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 100))]
    pub repository_filters: Vec<RepositoryFilter>,
}

/// ECR's `ReplicationDestination`: a registry named by its region and id.
#[derive(
    Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash, JsonSchema,
)]
#[serde(rename_all = "camelCase")]
pub struct ReplicationDestination {
    /// The destination's region (`[0-9a-z-]{2,25}`).
    pub region: String,
    /// The destination registry's id (12 digits).
    pub registry_id: String,
}

/// ECR's `RepositoryFilter`.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct RepositoryFilter {
    /// With PREFIX_MATCH, the start of the names of the repositories replicated.
    pub filter: String,
    pub filter_type: RepositoryFilterType,
}

/// ECR's `RepositoryFilterType`.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum RepositoryFilterType {
    PrefixMatch,
}

/// kubecs: where the destination `(region, registryId)` is.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct DestinationRegistry {
    pub region: String,
    pub registry_id: String,
    /// The registry's base URL, `https://HOST[:PORT]` (or `http://` for a registry on a
    /// trusted network): another kubecs registry or any OCI registry.
    pub url: String,
    /// A Secret of this namespace with the keys `username` and `accessToken`, for a
    /// registry that asks for credentials (Basic, or a Bearer token service). For another
    /// kubecs registry: `AWS` and a token of its `kubecs registry-token`, or a ServiceAccount
    /// token it accepts.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub credentials_secret: Option<String>,
}
