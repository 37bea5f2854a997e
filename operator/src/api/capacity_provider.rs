//! `CapacityProvider`: a named group of container instances, where ECS has an Auto Scaling
//! group. A cluster lists the providers it may use (`spec.capacityProviders`); services and
//! tasks split their tasks among them with a `capacityProviderStrategy` (base first, then by
//! weight). `FARGATE` and `FARGATE_SPOT` need no object: their tasks are placed by
//! kube-scheduler, as FARGATE launch type tasks are.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;
use kube::CustomResource;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::common::Tag;

/// The capacity providers that need no object.
pub const FARGATE: &str = "FARGATE";
pub const FARGATE_SPOT: &str = "FARGATE_SPOT";

/// A capacity provider: the container instances (of the cluster using it) that match
/// `instanceSelector`. Its name is what strategies name.
#[derive(CustomResource, Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[kube(
    group = "ecs.kubecs.io",
    version = "v1alpha1",
    kind = "CapacityProvider",
    plural = "capacityproviders",
    singular = "capacityprovider",
    shortname = "ecscp",
    category = "ecs",
    namespaced,
    doc = "An ECS capacity provider: the container instances its instanceSelector matches, named in capacity provider strategies.",
    printcolumn(
        name = "Age",
        type_ = "date",
        json_path = ".metadata.creationTimestamp"
    )
)]
#[serde(rename_all = "camelCase")]
pub struct CapacityProviderSpec {
    /// Which of a cluster's container instances belong to this provider (a label selector
    /// over their Nodes). An instance may belong to several providers.
    pub instance_selector: LabelSelector,
    /// Metadata tags.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 50))]
    pub tags: Vec<Tag>,
}

/// Whether `name` is one of the Fargate providers.
pub fn is_fargate(name: &str) -> bool {
    name == FARGATE || name == FARGATE_SPOT
}
