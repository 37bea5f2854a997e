//! `Task`: ECS `RunTask`, a one-off or batch run of 1 to 10 copies of a task definition.

use kube::{CustomResource, KubeSchema};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::states::{DesiredStatus, HealthStatus, LastStatus, StopCode};

use super::common::{
    CapacityProviderStrategyItem, Condition, KeyValuePair, LaunchType, NetworkConfiguration,
    PlacementConstraint, PlacementStrategy, PropagateTags, Tag,
};

/// A standalone run of a task definition (ECS RunTask): `count` tasks, placed with ECS
/// strategies and constraints, reported with their containers' exit codes and stop reasons.
#[derive(CustomResource, Serialize, Deserialize, Clone, Debug, PartialEq, KubeSchema)]
#[kube(
    group = "ecs.kubecs.io",
    version = "v1alpha1",
    kind = "Task",
    plural = "tasks",
    singular = "task",
    shortname = "ecstask",
    category = "ecs",
    namespaced,
    status = "TaskStatus",
    doc = "A standalone ECS task run (RunTask): count copies of a task definition revision.",
    printcolumn(name = "Cluster", type_ = "string", json_path = ".spec.cluster"),
    printcolumn(
        name = "Task Definition",
        type_ = "string",
        json_path = ".status.taskDefinition"
    ),
    printcolumn(name = "Count", type_ = "integer", json_path = ".spec.count"),
    printcolumn(
        name = "Last Status",
        type_ = "string",
        json_path = ".status.lastStatus"
    ),
    printcolumn(
        name = "Group",
        type_ = "string",
        json_path = ".spec.group",
        priority = 1
    ),
    printcolumn(
        name = "Age",
        type_ = "date",
        json_path = ".metadata.creationTimestamp"
    )
)]
#[x_kube(validation = Rule::new("self == oldSelf").message("A Task is immutable once run: create a new Task."))]
#[x_kube(validation = Rule::new("!(has(self.launchType) && has(self.capacityProviderStrategy) && self.capacityProviderStrategy.size() > 0)").message("Specify either Launch Type or Capacity Provider Strategy, but not both."))]
#[x_kube(validation = Rule::new("!has(self.capacityProviderStrategy) || self.capacityProviderStrategy.filter(i, has(i.base) && i.base > 0).size() <= 1").message("Only one capacity provider in a capacity provider strategy can have a base defined."))]
#[x_kube(validation = Rule::new("!has(self.placementStrategy) || self.placementStrategy.size() <= 5").message("Too many placement strategies: at most 5 are allowed."))]
#[x_kube(validation = Rule::new("!has(self.placementConstraints) || self.placementConstraints.size() <= 10").message("Too many placement constraints: at most 10 are allowed."))]
#[x_kube(validation = Rule::new("!has(self.launchType) || self.launchType != 'FARGATE' || ((!has(self.placementStrategy) || self.placementStrategy.size() == 0) && (!has(self.placementConstraints) || self.placementConstraints.size() == 0))").message("Task placement strategies and constraints are not supported with the FARGATE launch type."))]
#[serde(rename_all = "camelCase")]
pub struct TaskSpec {
    /// The EcsCluster (in this namespace) to run on. Defaults to `default`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 255))]
    pub cluster: Option<String>,
    /// `family`, `family:revision` or a task definition ARN.
    #[schemars(length(min = 1, max = 2048))]
    pub task_definition: String,
    /// How many tasks to run, 1-10 (default 1).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1, max = 10))]
    pub count: Option<i32>,
    /// EC2, FARGATE, EXTERNAL or MANAGED_INSTANCES.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub launch_type: Option<LaunchType>,
    /// Capacity providers and their base/weight shares (at most 6; only one with a base);
    /// exclusive with `launchType`. Omitted with no launch type: the cluster's
    /// `defaultCapacityProviderStrategy`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 6))]
    pub capacity_provider_strategy: Vec<CapacityProviderStrategyItem>,
    /// The task group (`family:NAME` by default); spread strategies balance within a group and
    /// `task:group` in the query language matches it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 255))]
    pub group: Option<String>,
    /// Who started the task (up to 128 characters).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 128))]
    pub started_by: Option<String>,
    /// Per-container and task-level overrides.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub overrides: Option<TaskOverride>,
    /// Constraints (at most 10, with the task definition's).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 40))]
    pub placement_constraints: Vec<PlacementConstraint>,
    /// Strategies in order (at most 5). Default: random.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 20))]
    pub placement_strategy: Vec<PlacementStrategy>,
    /// The awsvpc configuration (accepted).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub network_configuration: Option<NetworkConfiguration>,
    /// The Fargate platform version (accepted).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub platform_version: Option<String>,
    /// Metadata tags.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 50))]
    pub tags: Vec<Tag>,
    /// Add the ECS managed tags to the tasks.
    #[serde(
        default,
        rename = "enableECSManagedTags",
        skip_serializing_if = "Option::is_none"
    )]
    pub enable_ecs_managed_tags: Option<bool>,
    /// Propagate tags from the TASK_DEFINITION.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub propagate_tags: Option<PropagateTags>,
    /// A reference id for the run (accepted).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reference_id: Option<String>,
    /// ECS Exec (accepted: kubectl exec is the Kubernetes way).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub enable_execute_command: Option<bool>,
}

/// RunTask overrides.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct TaskOverride {
    /// Overrides for named containers.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 10))]
    pub container_overrides: Vec<ContainerOverride>,
    /// Task-level CPU units.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cpu: Option<String>,
    /// Task-level memory (MiB).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub memory: Option<String>,
    /// The task role (ServiceAccount).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub task_role_arn: Option<String>,
    /// The execution role (accepted).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub execution_role_arn: Option<String>,
}

#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ContainerOverride {
    /// The container to override.
    pub name: String,
    /// Replaces the container's command.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub command: Vec<String>,
    /// Added to (or replaces same-named) environment variables.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub environment: Vec<KeyValuePair>,
    /// CPU units.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cpu: Option<i32>,
    /// Hard memory limit (MiB).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub memory: Option<i32>,
    /// Soft memory limit (MiB).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub memory_reservation: Option<i32>,
}

/// What DescribeTasks reports for the run.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct TaskStatus {
    /// The resolved task definition (family:revision).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub task_definition: Option<String>,
    /// PROVISIONING, PENDING, RUNNING, STOPPED: the least advanced state of the run's tasks.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_status: Option<LastStatus>,
    /// One entry per task.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tasks: Vec<TaskInfo>,
    /// Placement failures, in ECS's words (ECS `failures`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub failures: Vec<Failure>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
    /// Ready, Progressing, Degraded.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub conditions: Vec<Condition>,
}

/// One task (ECS `Task`).
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct TaskInfo {
    /// The task id (the pod's uid).
    pub task_id: String,
    /// The task ARN.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub task_arn: Option<String>,
    /// The pod that runs the task.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pod_name: Option<String>,
    /// The container instance (node) it runs on.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub container_instance: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub availability_zone: Option<String>,
    /// PROVISIONING, PENDING, RUNNING, DEPROVISIONING, STOPPED.
    pub last_status: LastStatus,
    /// RUNNING or STOPPED.
    pub desired_status: DesiredStatus,
    /// HEALTHY, UNHEALTHY or UNKNOWN.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub health_status: Option<HealthStatus>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub containers: Vec<ContainerInfo>,
    /// TaskFailedToStart, EssentialContainerExited, UserInitiated, ServiceSchedulerInitiated...
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stop_code: Option<StopCode>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stopped_reason: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub started_at: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stopped_at: Option<String>,
}

#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ContainerInfo {
    pub name: String,
    /// PENDING, RUNNING or STOPPED.
    pub last_status: LastStatus,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exit_code: Option<i32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// HEALTHY or UNKNOWN, for a container with a health check.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub health_status: Option<HealthStatus>,
}

/// A failure of RunTask (ECS `Failure`).
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Failure {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub arn: Option<String>,
    pub reason: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
}
