//! `EcsCluster`: an ECS cluster. Its container instances are the Nodes its selector claims.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;
use kube::{CustomResource, KubeSchema};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::common::{CapacityProviderStrategyItem, Condition, Tag};
use super::states::{ClusterState, InstanceState};

/// An ECS cluster. The Nodes matched by `instanceSelector` become its container instances
/// (a Node belongs to at most one cluster); services and tasks run on them.
#[derive(CustomResource, Serialize, Deserialize, Clone, Debug, Default, PartialEq, KubeSchema)]
#[kube(
    group = "ecs.kubecs.io",
    version = "v1alpha1",
    kind = "EcsCluster",
    plural = "ecsclusters",
    singular = "ecscluster",
    shortname = "ecsc",
    shortname = "ecscluster",
    category = "ecs",
    namespaced,
    status = "EcsClusterStatus",
    doc = "An ECS cluster: the Nodes its instanceSelector claims are its container instances.",
    printcolumn(name = "Status", type_ = "string", json_path = ".status.status"),
    printcolumn(
        name = "Instances",
        type_ = "integer",
        json_path = ".status.registeredContainerInstancesCount",
        description = "Registered container instances"
    ),
    printcolumn(
        name = "Services",
        type_ = "integer",
        json_path = ".status.activeServicesCount"
    ),
    printcolumn(
        name = "Running",
        type_ = "integer",
        json_path = ".status.runningTasksCount",
        description = "Running tasks"
    ),
    printcolumn(
        name = "Pending",
        type_ = "integer",
        json_path = ".status.pendingTasksCount",
        description = "Pending tasks"
    ),
    printcolumn(
        name = "Ready",
        type_ = "string",
        json_path = ".status.conditions[?(@.type=='Ready')].status"
    ),
    printcolumn(
        name = "Age",
        type_ = "date",
        json_path = ".metadata.creationTimestamp"
    )
)]
#[x_kube(validation = Rule::new("!has(self.defaultCapacityProviderStrategy) || self.defaultCapacityProviderStrategy.filter(i, has(i.base) && i.base > 0).size() <= 1").message("Only one capacity provider in a capacity provider strategy can have a base defined."))]
#[serde(rename_all = "camelCase")]
pub struct EcsClusterSpec {
    /// The Nodes this cluster claims as container instances (a label selector). A Node already
    /// claimed by another cluster is not taken: the conflict shows in `status.conditions`.
    /// Omitted: the cluster has no container instances (Fargate only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub instance_selector: Option<LabelSelector>,
    /// Cluster settings, e.g. `containerInsights` (accepted).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 10))]
    pub settings: Vec<ClusterSetting>,
    /// The capacity providers services and tasks of this cluster may use: `FARGATE`,
    /// `FARGATE_SPOT`, or the names of CapacityProvider objects in this namespace.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 20))]
    pub capacity_providers: Vec<String>,
    /// The capacity provider strategy used when a service or task names neither a launch type
    /// nor a strategy (at most 6 providers; only one with a base).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 6))]
    pub default_capacity_provider_strategy: Vec<CapacityProviderStrategyItem>,
    /// Metadata tags.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 50))]
    pub tags: Vec<Tag>,
}

#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
pub struct ClusterSetting {
    /// The setting name, e.g. `containerInsights`.
    pub name: String,
    /// Its value, e.g. `enabled`.
    pub value: String,
}

/// What DescribeClusters reports, plus the container instances.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct EcsClusterStatus {
    /// The ARN of the cluster.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cluster_arn: Option<String>,
    /// ACTIVE, DEPROVISIONING (being deleted) or FAILED.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<ClusterState>,
    /// Container instances (claimed Nodes) registered to the cluster.
    #[serde(default)]
    pub registered_container_instances_count: i32,
    /// Tasks in the RUNNING state.
    #[serde(default)]
    pub running_tasks_count: i32,
    /// Tasks in the PENDING state.
    #[serde(default)]
    pub pending_tasks_count: i32,
    /// Services in the ACTIVE state.
    #[serde(default)]
    pub active_services_count: i32,
    /// The container instances, sorted by name (at most 100 listed; the count is exact).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub container_instances: Vec<ContainerInstanceSummary>,
    /// Nodes the selector matches that another cluster has claimed.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub conflicting_instances: Vec<ConflictingInstance>,
    /// The generation of spec the status describes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
    /// Ready, Degraded (instance conflicts), and while deleting, why deletion waits.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub conditions: Vec<Condition>,
}

/// One container instance (ECS `ContainerInstance`, summarised).
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ContainerInstanceSummary {
    /// The instance id: the Node's name.
    pub ec2_instance_id: String,
    /// The container instance ARN.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub container_instance_arn: Option<String>,
    /// ACTIVE or DRAINING (cordoned).
    pub status: InstanceState,
    /// Whether the agent is connected: the Node is Ready.
    pub agent_connected: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub availability_zone: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub instance_type: Option<String>,
    /// Registered resources: CPU units (1024 per core) and memory (MiB) from allocatable.
    pub registered_resources: InstanceResources,
    /// Registered minus the requests of every non-terminated pod bound to the Node.
    pub remaining_resources: InstanceResources,
    #[serde(default)]
    pub running_tasks_count: i32,
    #[serde(default)]
    pub pending_tasks_count: i32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub registered_at: Option<String>,
}

#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
pub struct InstanceResources {
    /// CPU units (1024 = 1 vCPU).
    pub cpu: i64,
    /// Memory in MiB.
    pub memory: i64,
}

#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ConflictingInstance {
    /// The Node's name.
    pub ec2_instance_id: String,
    /// The cluster (namespace/name) that holds it.
    pub claimed_by: String,
}
