//! `Repository` (ecr.kubecs.io): an ECR repository in the kubecs registry.

use kube::{CustomResource, KubeSchema};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::common::{Condition, Tag};

/// ECR's rule that exclusion filters go with a `*_WITH_EXCLUSION` mutability (Repository and
/// RepositoryCreationTemplate).
pub(crate) fn exclusion_filters_need_an_exclusion_mutability() -> kube::core::Rule {
    kube::core::Rule::new("!has(self.imageTagMutabilityExclusionFilters) || size(self.imageTagMutabilityExclusionFilters) == 0 || (has(self.imageTagMutability) && self.imageTagMutability.endsWith('_WITH_EXCLUSION'))").message("imageTagMutabilityExclusionFilters require imageTagMutability IMMUTABLE_WITH_EXCLUSION or MUTABLE_WITH_EXCLUSION.")
}

/// ECR's rule that a `*_WITH_EXCLUSION` mutability has 1 to 5 filters.
pub(crate) fn an_exclusion_mutability_needs_filters() -> kube::core::Rule {
    kube::core::Rule::new("!has(self.imageTagMutability) || !self.imageTagMutability.endsWith('_WITH_EXCLUSION') || (has(self.imageTagMutabilityExclusionFilters) && size(self.imageTagMutabilityExclusionFilters) >= 1)").message("imageTagMutability with exclusion requires 1 to 5 imageTagMutabilityExclusionFilters.")
}

/// An ECR repository in the in-cluster registry: tag mutability, lifecycle policy and
/// repository policy, with its URI, image count and size in status.
#[derive(CustomResource, Serialize, Deserialize, Clone, Debug, PartialEq, KubeSchema)]
#[kube(
    group = "ecr.kubecs.io",
    version = "v1alpha1",
    kind = "Repository",
    plural = "repositories",
    singular = "repository",
    shortname = "ecrrepo",
    shortname = "repo",
    category = "ecr",
    namespaced,
    status = "RepositoryStatus",
    doc = "An ECR repository in the kubecs registry.",
    printcolumn(
        name = "Repository",
        type_ = "string",
        json_path = ".status.repositoryName"
    ),
    printcolumn(name = "URI", type_ = "string", json_path = ".status.repositoryUri"),
    printcolumn(
        name = "Mutability",
        type_ = "string",
        json_path = ".spec.imageTagMutability"
    ),
    printcolumn(name = "Images", type_ = "integer", json_path = ".status.imageCount"),
    printcolumn(
        name = "Size",
        type_ = "integer",
        json_path = ".status.sizeInBytes",
        priority = 1
    ),
    printcolumn(name = "Last Push", type_ = "date", json_path = ".status.lastPushedAt"),
    printcolumn(
        name = "Last Pull",
        type_ = "date",
        json_path = ".status.lastPulledAt",
        priority = 1
    ),
    printcolumn(
        name = "Age",
        type_ = "date",
        json_path = ".metadata.creationTimestamp"
    )
)]
#[x_kube(validation = Rule::new("!has(oldSelf.repositoryName) || (has(self.repositoryName) && self.repositoryName == oldSelf.repositoryName)").message("repositoryName cannot be changed."))]
#[x_kube(validation = exclusion_filters_need_an_exclusion_mutability())]
#[x_kube(validation = an_exclusion_mutability_needs_filters())]
#[serde(rename_all = "camelCase")]
pub struct RepositorySpec {
    /// The repository name, e.g. `team-a/web-app` (ECR's pattern, 2-256 characters). Defaults
    /// to `metadata.name`; it cannot change.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(
        length(min = 2, max = 256),
        regex(pattern = r"^(?:[a-z0-9]+(?:[._-][a-z0-9]+)*/)*[a-z0-9]+(?:[._-][a-z0-9]+)*$")
    )]
    pub repository_name: Option<String>,
    /// MUTABLE (default), IMMUTABLE, IMMUTABLE_WITH_EXCLUSION or MUTABLE_WITH_EXCLUSION.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image_tag_mutability: Option<ImageTagMutability>,
    /// Tags exempt from the mutability setting (1-5 wildcard filters).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 5))]
    pub image_tag_mutability_exclusion_filters: Vec<ImageTagMutabilityExclusionFilter>,
    /// Scan on push (accepted; no scanner runs).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image_scanning_configuration: Option<ImageScanningConfiguration>,
    /// Encryption at rest (accepted; the storage backend's own encryption applies).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub encryption_configuration: Option<EncryptionConfiguration>,
    /// The lifecycle policy, in ECR's JSON grammar.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lifecycle_policy: Option<LifecyclePolicy>,
    /// The repository policy: IAM-style statements whose principals are Kubernetes users,
    /// groups and service accounts. An explicit Deny wins.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub repository_policy: Option<RepositoryPolicy>,
    /// Allow deleting the repository while it holds images (ECR's `force`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub force: Option<bool>,
    /// Metadata tags.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 50))]
    pub tags: Vec<Tag>,
}

#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, Default, JsonSchema)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum ImageTagMutability {
    #[default]
    Mutable,
    Immutable,
    ImmutableWithExclusion,
    MutableWithExclusion,
}

#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ImageTagMutabilityExclusionFilter {
    /// Always WILDCARD.
    pub filter_type: ExclusionFilterType,
    /// A tag pattern: letters, digits, `._-` and `*` wildcards, 1-128 characters.
    #[schemars(regex(pattern = r"^[0-9a-zA-Z._*-]{1,128}$"))]
    pub filter: String,
}

#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum ExclusionFilterType {
    Wildcard,
}

#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ImageScanningConfiguration {
    #[serde(default)]
    pub scan_on_push: bool,
}

#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct EncryptionConfiguration {
    /// AES256, KMS or KMS_DSSE.
    pub encryption_type: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kms_key: Option<String>,
}

/// An ECR lifecycle policy.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, KubeSchema)]
#[x_kube(validation = Rule::new("self.rules.all(r, self.rules.exists_one(o, o.rulePriority == r.rulePriority))").message("Lifecycle policy validation failure: rulePriority must be unique."))]
#[x_kube(validation = Rule::new("self.rules.all(r, r.selection.tagStatus != 'any' || self.rules.all(o, o.rulePriority <= r.rulePriority))").message("Lifecycle policy validation failure: a rule with tagStatus 'any' must have the highest rulePriority."))]
pub struct LifecyclePolicy {
    /// The rules, evaluated together; each image is expired by at most one rule.
    #[schemars(length(min = 1, max = 50))]
    pub rules: Vec<LifecycleRule>,
}

#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct LifecycleRule {
    /// The rule's priority: unique, lowest first.
    #[schemars(range(min = 1, max = 999))]
    pub rule_priority: i32,
    /// What the rule is for.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 256))]
    pub description: Option<String>,
    /// Which images the rule applies to.
    pub selection: LifecycleSelection,
    /// What happens to them: `expire`.
    pub action: LifecycleAction,
}

/// A lifecycle rule's selection.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, KubeSchema)]
#[x_kube(validation = Rule::new("self.tagStatus != 'tagged' || (has(self.tagPrefixList) && size(self.tagPrefixList) > 0) || (has(self.tagPatternList) && size(self.tagPatternList) > 0)").message("Lifecycle policy validation failure: tagPrefixList or tagPatternList is required when tagStatus is 'tagged'."))]
#[x_kube(validation = Rule::new("self.tagStatus == 'tagged' || ((!has(self.tagPrefixList) || size(self.tagPrefixList) == 0) && (!has(self.tagPatternList) || size(self.tagPatternList) == 0))").message("Lifecycle policy validation failure: tagPrefixList and tagPatternList are only allowed when tagStatus is 'tagged'."))]
#[x_kube(validation = Rule::new("!(has(self.tagPrefixList) && size(self.tagPrefixList) > 0 && has(self.tagPatternList) && size(self.tagPatternList) > 0)").message("Lifecycle policy validation failure: tagPrefixList and tagPatternList cannot be used together."))]
#[x_kube(validation = Rule::new("self.countType == 'imageCountMoreThan' ? !has(self.countUnit) : has(self.countUnit)").message("Lifecycle policy validation failure: countUnit is required with countType 'sinceImagePushed' or 'sinceImagePulled' and not allowed with 'imageCountMoreThan'."))]
#[x_kube(validation = Rule::new("self.countType != 'sinceImageTransitioned' && (!has(self.storageClass) || self.storageClass == 'standard')").message("Lifecycle policy validation failure: the archive storage class is not supported: storageClass must be 'standard' and countType cannot be 'sinceImageTransitioned'."))]
#[x_kube(validation = Rule::new("!has(self.tagPatternList) || self.tagPatternList.all(p, size(p) - size(p.replace('*', '')) <= 4)").message("Lifecycle policy validation failure: a tag pattern may contain at most 4 wildcards."))]
#[serde(rename_all = "camelCase")]
pub struct LifecycleSelection {
    /// tagged, untagged or any.
    pub tag_status: TagStatus,
    /// Tag prefixes; an image matches only if every prefix matches one of its tags.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 100), inner(length(max = 128)))]
    pub tag_prefix_list: Vec<String>,
    /// Tag patterns with `*` wildcards (at most 4 each).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 100), inner(length(max = 128)))]
    pub tag_pattern_list: Vec<String>,
    /// imageCountMoreThan, sinceImagePushed or sinceImagePulled (sinceImageTransitioned is
    /// refused: kubecs has no archive storage class).
    pub count_type: CountType,
    /// `standard` (the default); `archive` is refused.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub storage_class: Option<StorageClass>,
    /// `days`, with sinceImagePushed and sinceImagePulled only.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub count_unit: Option<CountUnit>,
    /// The image count or the age in days.
    #[schemars(range(min = 1))]
    pub count_number: i32,
}

#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, Default, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum TagStatus {
    #[default]
    Tagged,
    Untagged,
    Any,
}

#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, Default, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub enum CountType {
    #[default]
    ImageCountMoreThan,
    SinceImagePushed,
    /// Counted from the last recorded pull, or from the push for an image never pulled.
    SinceImagePulled,
    /// ECR's archive rules; refused until kubecs has an archive.
    SinceImageTransitioned,
}

/// ECR's image storage classes.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum StorageClass {
    Standard,
    /// Refused: kubecs has no archive storage class.
    Archive,
}

#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum CountUnit {
    Days,
}

#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, KubeSchema)]
#[x_kube(validation = Rule::new("self.type == 'expire'").message("Lifecycle policy validation failure: the archive storage class is not supported: the action type must be 'expire'."))]
#[serde(rename_all = "camelCase")]
pub struct LifecycleAction {
    /// `expire`; `transition` (to the archive) is refused.
    #[serde(rename = "type")]
    pub type_: LifecycleActionType,
    /// With `transition` only: `archive`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target_storage_class: Option<StorageClass>,
}

#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, Default, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum LifecycleActionType {
    #[default]
    Expire,
    /// ECR's move to the archive storage class; refused until kubecs has an archive.
    Transition,
}

/// An IAM-style repository policy.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
pub struct RepositoryPolicy {
    /// The policy language version, `2012-10-17`.
    #[serde(rename = "Version", default, skip_serializing_if = "Option::is_none")]
    pub version: Option<String>,
    /// The statements; an explicit Deny wins over any Allow.
    #[serde(rename = "Statement")]
    #[schemars(length(min = 1, max = 100))]
    pub statement: Vec<PolicyStatement>,
}

/// One statement of a repository policy.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
pub struct PolicyStatement {
    /// A statement id.
    #[serde(rename = "Sid", default, skip_serializing_if = "Option::is_none")]
    pub sid: Option<String>,
    /// Allow or Deny.
    #[serde(rename = "Effect")]
    pub effect: PolicyEffect,
    /// Who: `"*"`, or `{"Kubernetes": {"User": [...], "Group": [...], "ServiceAccount":
    /// ["namespace:name"]}}`; `{"AWS": "*"}` means everyone.
    #[serde(rename = "Principal", default, skip_serializing_if = "Option::is_none")]
    #[schemars(schema_with = "super::preserve_unknown")]
    pub principal: Option<serde_json::Value>,
    /// ECR actions: a string or a list, `ecr:*` wildcards allowed.
    #[serde(rename = "Action", default, skip_serializing_if = "Option::is_none")]
    #[schemars(schema_with = "super::preserve_unknown")]
    pub action: Option<serde_json::Value>,
    /// Actions the statement does not apply to.
    #[serde(rename = "NotAction", default, skip_serializing_if = "Option::is_none")]
    #[schemars(schema_with = "super::preserve_unknown")]
    pub not_action: Option<serde_json::Value>,
    /// Conditions (accepted; not evaluated).
    #[serde(rename = "Condition", default, skip_serializing_if = "Option::is_none")]
    #[schemars(schema_with = "super::preserve_unknown")]
    pub condition: Option<serde_json::Value>,
}

#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, Default, JsonSchema)]
pub enum PolicyEffect {
    #[default]
    Allow,
    Deny,
}

/// What DescribeRepositories reports.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct RepositoryStatus {
    /// The repository name in the registry.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub repository_name: Option<String>,
    /// `host[:port]/name`: what docker push and pull use.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub repository_uri: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub repository_arn: Option<String>,
    /// The registry id in ECR's messages.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub registry_id: Option<String>,
    /// Images (distinct manifests) in the repository.
    #[serde(default)]
    pub image_count: i64,
    /// Bytes of the repository's manifests and the blobs they reference.
    #[serde(default)]
    pub size_in_bytes: i64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_pushed_at: Option<String>,
    /// The latest lastRecordedPullTime of the repository's images (per image:
    /// `aws ecr describe-images`). Recorded in batches, so up to a flush interval late.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_pulled_at: Option<String>,
    /// What the lifecycle policy would expire now.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub lifecycle_policy_preview: Vec<LifecyclePreviewResult>,
    /// Replication per destination: how many images are COMPLETE, IN_PROGRESS and FAILED
    /// there (per image: `aws ecr describe-image-replication-status`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub replication: Vec<ReplicationSummary>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
    /// Ready, Degraded.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub conditions: Vec<Condition>,
}

#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct LifecyclePreviewResult {
    pub image_digest: String,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub image_tags: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image_pushed_at: Option<String>,
    /// The rule that expires it.
    pub applied_rule_priority: i32,
}

/// One replication destination's images of a repository, by ECR's replication status.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ReplicationSummary {
    pub region: String,
    pub registry_id: String,
    #[serde(default)]
    pub complete: i64,
    #[serde(default)]
    pub in_progress: i64,
    #[serde(default)]
    pub failed: i64,
}
