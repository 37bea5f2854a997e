//! `PullThroughCacheRule` (ecr.kubecs.io): an ECR pull through cache rule of the kubecs
//! registry.
//!
//! A kind of its own rather than a list on a registry config object: in ECR each rule is a
//! resource of the account with its own ARN, its own create/update/delete calls and IAM
//! permissions; as an object it gets its own RBAC (who may point a prefix at which upstream),
//! its own lifecycle (`kubectl delete` one rule), and the account is its namespace, where the
//! credentials Secret and the Repository objects it creates live.

use kube::{CustomResource, KubeSchema};
use serde::{Deserialize, Serialize};

/// A pull through cache rule: pulls of `ECR_PREFIX/NAME` that miss the registry fetch
/// `NAME` (under `upstreamRepositoryPrefix`) from the upstream registry, store it and
/// serve it from then on.
#[derive(CustomResource, Serialize, Deserialize, Clone, Debug, PartialEq, KubeSchema)]
#[kube(
    group = "ecr.kubecs.io",
    version = "v1alpha1",
    kind = "PullThroughCacheRule",
    plural = "pullthroughcacherules",
    singular = "pullthroughcacherule",
    shortname = "ptc",
    category = "ecr",
    namespaced,
    doc = "An ECR pull through cache rule of the kubecs registry.",
    printcolumn(
        name = "Prefix",
        type_ = "string",
        json_path = ".spec.ecrRepositoryPrefix"
    ),
    printcolumn(
        name = "Upstream",
        type_ = "string",
        json_path = ".spec.upstreamRegistryUrl"
    ),
    printcolumn(
        name = "Upstream Prefix",
        type_ = "string",
        json_path = ".spec.upstreamRepositoryPrefix"
    ),
    printcolumn(
        name = "Credential",
        type_ = "string",
        json_path = ".spec.credentialArn",
        priority = 1
    ),
    printcolumn(
        name = "Age",
        type_ = "date",
        json_path = ".metadata.creationTimestamp"
    )
)]
#[x_kube(validation = Rule::new("self.ecrRepositoryPrefix == oldSelf.ecrRepositoryPrefix").message("ecrRepositoryPrefix cannot be changed: create a new pull through cache rule."))]
#[x_kube(validation = Rule::new("self.upstreamRegistryUrl == oldSelf.upstreamRegistryUrl").message("upstreamRegistryUrl cannot be changed: create a new pull through cache rule."))]
#[x_kube(validation = Rule::new("self.ecrRepositoryPrefix != 'ROOT'").message("The ecrRepositoryPrefix ROOT is reserved: ECR accepts it only for an ECR upstream registry."))]
#[x_kube(validation = Rule::new(r"self.ecrRepositoryPrefix == 'ROOT' || self.ecrRepositoryPrefix.matches('^[a-z0-9]+((\\.|_|__|-+)[a-z0-9]+)*(/[a-z0-9]+((\\.|_|__|-+)[a-z0-9]+)*)*/?$')").message("Invalid parameter at 'ecrRepositoryPrefix' failed to satisfy constraint: 'must satisfy regular expression pattern: [a-z0-9]+((.|_|__|-+)[a-z0-9]+)*(/[a-z0-9]+((.|_|__|-+)[a-z0-9]+)*)*/?'"))]
#[x_kube(validation = Rule::new(r"!has(self.upstreamRepositoryPrefix) || self.upstreamRepositoryPrefix == 'ROOT' || self.upstreamRepositoryPrefix.matches('^[a-z0-9]+((\\.|_|__|-+)[a-z0-9]+)*(/[a-z0-9]+((\\.|_|__|-+)[a-z0-9]+)*)*/?$')").message("Invalid parameter at 'upstreamRepositoryPrefix' failed to satisfy constraint: 'must satisfy regular expression pattern: [a-z0-9]+((.|_|__|-+)[a-z0-9]+)*(/[a-z0-9]+((.|_|__|-+)[a-z0-9]+)*)*/?'"))]
#[x_kube(validation = Rule::new(r"!has(self.credentialArn) || self.credentialArn.matches('^(arn:aws(-[a-z0-9]+)*:secretsmanager:[a-zA-Z0-9-:]+:secret:)?ecr-pullthroughcache/[a-zA-Z0-9/_+=.@-]+$')").message("The credentialArn must name a Secrets Manager secret whose name starts with 'ecr-pullthroughcache/'."))]
#[serde(rename_all = "camelCase")]
pub struct PullThroughCacheRuleSpec {
    /// The repository name prefix the cached repositories take, e.g. `docker-hub`: a pull of
    /// `docker-hub/library/busybox` goes to the upstream's `library/busybox`. ECR always
    /// assumes a `/` after the prefix. 2-30 characters of lowercase letters and digits,
    /// separated by `.`, `_`, `__`, `-` or `/`. It cannot change.
    #[schemars(length(min = 2, max = 30))]
    pub ecr_repository_prefix: String,
    /// The upstream registry, as ECR names it (`registry-1.docker.io`, `ghcr.io`, `quay.io`,
    /// `registry.k8s.io`, `public.ecr.aws`...): HTTPS unless written with `http://`. It cannot
    /// change.
    #[schemars(length(min = 1, max = 512))]
    pub upstream_registry_url: String,
    /// The repository prefix in the upstream registry that cached names map to: `ROOT`
    /// (default) maps `ECR_PREFIX/NAME` to `NAME`, `library` maps it to `library/NAME`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 2, max = 30))]
    pub upstream_repository_prefix: Option<String>,
    /// The upstream's credentials, named as ECR names its Secrets Manager secret
    /// (`arn:aws:secretsmanager:REGION:ACCOUNT:secret:ecr-pullthroughcache/NAME` or
    /// `ecr-pullthroughcache/NAME`): the Kubernetes Secret `ecr-pullthroughcache-NAME` in
    /// this namespace, with the keys `username` and `accessToken` as ECR's secret has them.
    /// Without it the upstream is pulled from anonymously.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 612))]
    pub credential_arn: Option<String>,
}
