//! `Service`: an ECS service. `spec` is the input of ECS `CreateService`, `status` the output
//! of `DescribeServices`.

use kube::{CustomResource, KubeSchema};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::states::{
    CircuitBreakerStatus, DeploymentStatus, HookAction, HookStatus, HookTargetType, LifecycleStage,
    RolloutState, ServiceState, StopCode,
};

use super::common::{
    CapacityProviderStrategyItem, Condition, EnabledDisabled, LaunchType, NetworkConfiguration,
    PlacementConstraint, PlacementStrategy, PropagateTags, Tag,
};

/// An ECS service: keeps `desiredCount` tasks of a task definition running on an EcsCluster,
/// placed with ECS strategies and constraints, and rolls new revisions out within
/// `minimumHealthyPercent`/`maximumPercent` (or blue/green).
#[derive(CustomResource, Serialize, Deserialize, Clone, Debug, PartialEq, KubeSchema)]
#[kube(
    group = "ecs.kubecs.io",
    version = "v1alpha1",
    kind = "Service",
    plural = "services",
    singular = "service",
    shortname = "ecssvc",
    shortname = "esvc",
    category = "ecs",
    namespaced,
    status = "ServiceStatus",
    doc = "An ECS service: desiredCount tasks of a task definition, placed and deployed with ECS semantics.",
    scale(
        spec_replicas_path = ".spec.desiredCount",
        status_replicas_path = ".status.runningCount",
        label_selector_path = ".status.selector"
    ),
    printcolumn(name = "Cluster", type_ = "string", json_path = ".spec.cluster"),
    printcolumn(
        name = "Task Definition",
        type_ = "string",
        json_path = ".status.taskDefinition"
    ),
    printcolumn(name = "Desired", type_ = "integer", json_path = ".spec.desiredCount"),
    printcolumn(
        name = "Running",
        type_ = "integer",
        json_path = ".status.runningCount"
    ),
    printcolumn(
        name = "Pending",
        type_ = "integer",
        json_path = ".status.pendingCount"
    ),
    printcolumn(
        name = "Rollout",
        type_ = "string",
        json_path = ".status.deployments[0].rolloutState"
    ),
    printcolumn(
        name = "Launch Type",
        type_ = "string",
        json_path = ".spec.launchType",
        priority = 1
    ),
    printcolumn(
        name = "Scheduling",
        type_ = "string",
        json_path = ".spec.schedulingStrategy",
        priority = 1
    ),
    printcolumn(
        name = "Age",
        type_ = "date",
        json_path = ".metadata.creationTimestamp"
    ),
    selectable = ".spec.cluster"
)]
#[x_kube(validation = Rule::new("!(has(self.launchType) && has(self.capacityProviderStrategy) && self.capacityProviderStrategy.size() > 0)").message("Specify either Launch Type or Capacity Provider Strategy, but not both."))]
#[x_kube(validation = Rule::new("!has(self.capacityProviderStrategy) || self.capacityProviderStrategy.filter(i, has(i.base) && i.base > 0).size() <= 1").message("Only one capacity provider in a capacity provider strategy can have a base defined."))]
#[x_kube(validation = Rule::new("!has(self.placementStrategy) || self.placementStrategy.size() <= 5").message("Too many placement strategies: at most 5 are allowed."))]
#[x_kube(validation = Rule::new("!has(self.placementConstraints) || self.placementConstraints.size() <= 10").message("Too many placement constraints: at most 10 are allowed."))]
#[x_kube(validation = Rule::new("!has(self.launchType) || self.launchType != 'FARGATE' || ((!has(self.placementStrategy) || self.placementStrategy.size() == 0) && (!has(self.placementConstraints) || self.placementConstraints.size() == 0))").message("Task placement strategies and constraints are not supported with the FARGATE launch type."))]
#[x_kube(validation = Rule::new("!has(self.launchType) || self.launchType != 'FARGATE' || !has(self.schedulingStrategy) || self.schedulingStrategy != 'DAEMON'").message("The DAEMON scheduling strategy is not supported with the FARGATE launch type."))]
#[x_kube(validation = Rule::new("!has(self.schedulingStrategy) || self.schedulingStrategy != 'DAEMON' || !has(self.placementStrategy) || self.placementStrategy.size() == 0").message("Placement strategies are not supported with the DAEMON scheduling strategy."))]
#[x_kube(validation = Rule::new("!has(oldSelf.cluster) || (has(self.cluster) && self.cluster == oldSelf.cluster)").message("cluster cannot be changed: create a new service in the other cluster."))]
#[x_kube(validation = Rule::new("(has(self.schedulingStrategy) ? self.schedulingStrategy : 'REPLICA') == (has(oldSelf.schedulingStrategy) ? oldSelf.schedulingStrategy : 'REPLICA')").message("schedulingStrategy cannot be changed on an existing service."))]
#[serde(rename_all = "camelCase")]
pub struct ServiceSpec {
    /// The EcsCluster (in this namespace) that runs the service. Defaults to `default`, as ECS.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 255))]
    pub cluster: Option<String>,
    /// The task definition: `family` (its latest ACTIVE revision) or `family:revision`, or a
    /// full task definition ARN.
    #[schemars(length(min = 1, max = 2048))]
    pub task_definition: String,
    /// How many tasks to keep running (REPLICA). kubectl scale and HorizontalPodAutoscalers set
    /// it through the scale subresource. Not used with DAEMON.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0))]
    pub desired_count: Option<i32>,
    /// EC2 (kubecs places and binds each task), FARGATE (kube-scheduler places tasks, spread
    /// across zones), EXTERNAL or MANAGED_INSTANCES (as EC2).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub launch_type: Option<LaunchType>,
    /// Capacity providers and their base/weight shares (at most 6; only one with a base);
    /// exclusive with `launchType`. Omitted with no launch type: the cluster's
    /// `defaultCapacityProviderStrategy`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 6))]
    pub capacity_provider_strategy: Vec<CapacityProviderStrategyItem>,
    /// The Fargate platform version (accepted).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub platform_version: Option<String>,
    /// Load balancers: each entry's target group is a core Kubernetes Service selecting the
    /// service's healthy tasks. `targetGroupArn` is an ELB target group ARN (its name is used)
    /// or a Service name; blue/green adds `advancedConfiguration.alternateTargetGroupArn`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 5))]
    pub load_balancers: Vec<LoadBalancer>,
    /// Service discovery registries (accepted; reported as unsupported).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub service_registries: Vec<ServiceRegistry>,
    /// Rollout bounds, circuit breaker and strategy (ROLLING or BLUE_GREEN).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub deployment_configuration: Option<DeploymentConfiguration>,
    /// Constraints every task of the service obeys (at most 10, with the task definition's).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 40))]
    pub placement_constraints: Vec<PlacementConstraint>,
    /// Strategies applied in order, each a tie-breaker (at most 5). Default:
    /// spread on `attribute:ecs.availability-zone`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 20))]
    pub placement_strategy: Vec<PlacementStrategy>,
    /// The awsvpc configuration (accepted; every task has its own pod network).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub network_configuration: Option<NetworkConfiguration>,
    /// Seconds to ignore failing health checks after a task starts.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0, max = 2147483647))]
    pub health_check_grace_period_seconds: Option<i32>,
    /// REPLICA (keep desiredCount tasks) or DAEMON (one task per container instance).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scheduling_strategy: Option<SchedulingStrategy>,
    /// Who deploys: ECS (kubecs; the default). CODE_DEPLOY and EXTERNAL are not supported.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub deployment_controller: Option<DeploymentController>,
    /// Metadata tags.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 50))]
    pub tags: Vec<Tag>,
    /// Add the ECS managed tags (cluster, service) to tasks as labels.
    #[serde(
        default,
        rename = "enableECSManagedTags",
        skip_serializing_if = "Option::is_none"
    )]
    pub enable_ecs_managed_tags: Option<bool>,
    /// Propagate tags from the TASK_DEFINITION or the SERVICE to tasks (as pod labels).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub propagate_tags: Option<PropagateTags>,
    /// ECS Exec (accepted: kubectl exec is the Kubernetes way).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub enable_execute_command: Option<bool>,
    /// Rebalance tasks across availability zones (ENABLED or DISABLED).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub availability_zone_rebalancing: Option<EnabledDisabled>,
}

#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, Default, JsonSchema)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum SchedulingStrategy {
    /// Keep desiredCount tasks across the cluster.
    #[default]
    Replica,
    /// One task on each active container instance that meets the constraints.
    Daemon,
}

#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
pub struct DeploymentController {
    /// ECS, CODE_DEPLOY or EXTERNAL.
    #[serde(rename = "type")]
    pub type_: DeploymentControllerType,
}

#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum DeploymentControllerType {
    Ecs,
    CodeDeploy,
    External,
}

/// A load balancer target of the service.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct LoadBalancer {
    /// The target group: an ELB target group ARN
    /// (`arn:aws:elasticloadbalancing:...:targetgroup/NAME/ID`) or a plain NAME; kubecs keeps a
    /// core Service of that NAME selecting the service's healthy tasks.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target_group_arn: Option<String>,
    /// A Classic Load Balancer name (used as the Service name when no target group is given).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub load_balancer_name: Option<String>,
    /// The container that receives the traffic.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub container_name: Option<String>,
    /// The container port that receives the traffic.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1, max = 65535))]
    pub container_port: Option<i32>,
    /// Blue/green: the alternate (test) target group and listener rules.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub advanced_configuration: Option<AdvancedConfiguration>,
}

#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct AdvancedConfiguration {
    /// The test target group (a core Service) that selects the green deployment's tasks.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub alternate_target_group_arn: Option<String>,
    /// LINEAR and CANARY: the Gateway API HTTPRoute (its name in the namespace, or an ARN
    /// ending in `/NAME`) whose backendRefs weights move production traffic between this
    /// target group's Service (blue) and the alternate one (green).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub production_listener_rule: Option<String>,
    /// The test listener rule (accepted).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub test_listener_rule: Option<String>,
    /// The role that may change the listener (accepted).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub role_arn: Option<String>,
}

#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ServiceRegistry {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub registry_arn: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub port: Option<i32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub container_name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub container_port: Option<i32>,
}

/// How a deployment replaces tasks.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, KubeSchema)]
#[x_kube(validation = Rule::new("!has(self.maximumPercent) || !has(self.minimumHealthyPercent) || self.maximumPercent >= self.minimumHealthyPercent").message("maximumPercent must be greater than or equal to minimumHealthyPercent."))]
#[x_kube(validation = Rule::new("!has(self.lifecycleHooks) || size(self.lifecycleHooks) == 0 || (has(self.strategy) && self.strategy != 'ROLLING')").message("lifecycleHooks are supported with the BLUE_GREEN, LINEAR and CANARY deployment strategies."))]
#[serde(rename_all = "camelCase")]
pub struct DeploymentConfiguration {
    /// Stop a rollout whose tasks keep failing, optionally rolling back.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub deployment_circuit_breaker: Option<DeploymentCircuitBreaker>,
    /// Upper bound of running tasks during a rollout, in percent of desiredCount, rounded down
    /// (REPLICA default 200, DAEMON 100).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0))]
    pub maximum_percent: Option<i32>,
    /// Lower bound of healthy tasks during a rollout, in percent of desiredCount, rounded up
    /// (REPLICA default 100, DAEMON 0).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0, max = 100))]
    pub minimum_healthy_percent: Option<i32>,
    /// Alarms that fail a deployment while it rolls out (and bakes), optionally rolling it
    /// back: kubecs reads them as Alertmanager alerts whose `alertname` is listed (the
    /// operator's `--alertmanager-url`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub alarms: Option<DeploymentAlarms>,
    /// ROLLING (the default), BLUE_GREEN, or LINEAR and CANARY (blue/green with production
    /// traffic moved step by step through an HTTPRoute's weights).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub strategy: Option<DeploymentStrategy>,
    /// LINEAR: the share of production traffic each step moves, and the bake between steps.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub linear_configuration: Option<LinearConfiguration>,
    /// CANARY: the share the canary step moves, and its bake before the rest moves.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub canary_configuration: Option<CanaryConfiguration>,
    /// Blue/green: minutes both revisions run after traffic shifts, before blue is stopped
    /// (0-1440). Rollback is possible during this time.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0, max = 1440))]
    pub bake_time_in_minutes: Option<i32>,
    /// Blue/green lifecycle hooks: the deployment waits at each hook's stages until it
    /// succeeds (at most 10 hooks).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 10))]
    pub lifecycle_hooks: Vec<DeploymentLifecycleHook>,
}

#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, Default, JsonSchema)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum DeploymentStrategy {
    #[default]
    Rolling,
    BlueGreen,
    Linear,
    Canary,
}

/// ECS LinearConfiguration.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct LinearConfiguration {
    /// Percent of production traffic per step, 3.0-100.0 (default 10).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 3.0, max = 100.0))]
    pub step_percent: Option<f64>,
    /// Minutes between steps, 0-1440 (default 6).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0, max = 1440))]
    pub step_bake_time_in_minutes: Option<i32>,
}

/// ECS CanaryConfiguration.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct CanaryConfiguration {
    /// Percent of production traffic the canary gets, 0.1-100.0 (default 5).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0.1, max = 100.0))]
    pub canary_percent: Option<f64>,
    /// Minutes the canary bakes before the rest moves, 0-1440 (default 10).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0, max = 1440))]
    pub canary_bake_time_in_minutes: Option<i32>,
}

/// The deployment circuit breaker.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct DeploymentCircuitBreaker {
    /// Turn the circuit breaker on.
    pub enable: bool,
    /// Roll back to the last COMPLETED deployment when it trips.
    pub rollback: bool,
    /// Overrides the default threshold of clamp(0.5 × desiredCount, 3, 200) failed tasks.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub threshold_configuration: Option<ThresholdConfiguration>,
    /// A task that reaches a healthy state resets the failure count to 0 (default true).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reset_on_healthy_task: Option<bool>,
}

/// The circuit breaker of one deployment (ECS `ServiceDeploymentCircuitBreaker`).
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct CircuitBreakerState {
    /// Failed tasks counted since the count was last reset.
    pub failure_count: i32,
    /// MONITORING while the deployment rolls out, TRIGGERED once it failed it,
    /// MONITORING_COMPLETE once the deployment completed.
    pub status: CircuitBreakerStatus,
    /// The failure count that trips it.
    pub threshold: i32,
    /// How many of the deployment's tasks were healthy when last seen: more now means a task
    /// reached a healthy state since.
    #[serde(default)]
    pub healthy_tasks: i32,
}

#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ThresholdConfiguration {
    /// COUNT (failed tasks) or PERCENT (of desiredCount).
    #[serde(default, rename = "type", skip_serializing_if = "Option::is_none")]
    pub type_: Option<ThresholdType>,
    /// The threshold value.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1))]
    pub value: Option<i32>,
}

#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum ThresholdType {
    Count,
    Percent,
}

#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct DeploymentAlarms {
    /// The alarms watched: Alertmanager alert names.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub alarm_names: Vec<String>,
    /// Whether to watch them.
    pub enable: bool,
    /// Roll back to the last COMPLETED deployment when one fires.
    pub rollback: bool,
}

/// A deployment's alarms (ECS ServiceDeploymentAlarms).
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct DeploymentAlarmsState {
    /// MONITORING while it rolls out, TRIGGERED once an alarm failed it, MONITORING_COMPLETE
    /// once it completed.
    pub status: CircuitBreakerStatus,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub alarm_names: Vec<String>,
    /// The alarms that were firing when it failed.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub triggered_alarm_names: Vec<String>,
}

/// A lifecycle hook: run at the deployment's stages it names; the deployment goes on once it
/// succeeded, and rolls back if it fails or (by default) times out.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, KubeSchema)]
#[serde(rename_all = "camelCase")]
#[x_kube(validation = Rule::new("(has(self.targetType) && self.targetType == 'PAUSE') || has(self.hookTargetArn)").message("hookTargetArn is required for an AWS_LAMBDA lifecycle hook."))]
pub struct DeploymentLifecycleHook {
    /// AWS_LAMBDA (the default: kubecs POSTs ECS's hook payload to hookTargetArn, an HTTP(S)
    /// URL) or PAUSE (wait for ContinueServiceDeployment, or the Service annotation
    /// `ecs.kubecs.io/continue=HOOK_ID[:CONTINUE|:ROLLBACK]`).
    #[serde(default)]
    pub target_type: HookTargetType,
    /// The URL the hook is POSTed to (kubecs' stand-in for a Lambda function ARN).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hook_target_arn: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub role_arn: Option<String>,
    /// The stages it runs at.
    #[schemars(length(min = 1))]
    pub lifecycle_stages: Vec<LifecycleStage>,
    /// Passed to the hook on each call.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(schema_with = "super::preserve_unknown")]
    pub hook_details: Option<serde_json::Value>,
    /// How long to wait for it, and what to do then (default 1440 minutes, ROLLBACK).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout_configuration: Option<HookTimeout>,
}

#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct HookTimeout {
    /// 1-20160 minutes (default 1440).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1, max = 20160))]
    pub timeout_in_minutes: Option<i32>,
    /// CONTINUE or ROLLBACK (the default).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub action: Option<HookAction>,
}

/// One run of a lifecycle hook in a deployment (ECS DeploymentLifecycleHookDetail).
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct LifecycleHookDetail {
    /// What ContinueServiceDeployment (or `ecs.kubecs.io/continue`) names.
    pub hook_id: String,
    pub target_type: HookTargetType,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target_arn: Option<String>,
    /// The stage it runs at.
    pub lifecycle_stage: LifecycleStage,
    pub status: HookStatus,
    /// When the timeout action is taken.
    pub expires_at: String,
    pub timeout_action: HookAction,
    /// What the hook answered, or why it failed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

/// Annotation continuing (or rolling back) a paused lifecycle hook: `HOOK_ID`,
/// `HOOK_ID:CONTINUE` or `HOOK_ID:ROLLBACK` (ContinueServiceDeployment).
pub const CONTINUE_ANNOTATION: &str = "ecs.kubecs.io/continue";

/// The hook id and action an `ecs.kubecs.io/continue` value asks for.
pub fn parse_continue(v: &str) -> Option<(String, HookAction)> {
    let v = v.trim();
    let (id, action) = match v.rsplit_once(':') {
        Some((id, "CONTINUE")) => (id, HookAction::Continue),
        Some((id, "ROLLBACK")) => (id, HookAction::Rollback),
        Some(_) => return None,
        None => (v, HookAction::Continue),
    };
    (!id.is_empty()).then(|| (id.to_string(), action))
}

/// What DescribeServices reports.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ServiceStatus {
    /// The ARN of the service.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub service_arn: Option<String>,
    /// The ARN of its cluster.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cluster_arn: Option<String>,
    /// ACTIVE, DRAINING or INACTIVE.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<ServiceState>,
    /// The task definition (family:revision) of the PRIMARY deployment.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub task_definition: Option<String>,
    /// The desired count the controller works toward.
    #[serde(default)]
    pub desired_count: i32,
    /// Tasks in the RUNNING state.
    #[serde(default)]
    pub running_count: i32,
    /// Tasks in the PENDING state.
    #[serde(default)]
    pub pending_count: i32,
    /// The label selector of the service's tasks (for the scale subresource and HPA).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub selector: Option<String>,
    /// The deployments: one PRIMARY, and ACTIVE ones being replaced.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub deployments: Vec<Deployment>,
    /// What `spec.taskDefinition` resolves to now (`family:revision`). It differs from
    /// `taskDefinition` after a rollback.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub requested_task_definition: Option<String>,
    /// Blue/green: the deployment whose tasks the production Service selects.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub production_deployment: Option<String>,
    /// Tasks recently stopped, with ECS's stop code and reason (newest first, bounded).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub stopped_tasks: Vec<StoppedTask>,
    /// The most recent service events, newest first (bounded).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub events: Vec<ServiceEvent>,
    /// The generation of spec the status describes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
    /// ENABLED or DISABLED (ECS's default for a new service is ENABLED).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub availability_zone_rebalancing: Option<EnabledDisabled>,
    /// An AZ rebalance is under way: a task was started in the emptiest zone and one in the
    /// fullest is still to stop.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub az_rebalancing_in_progress: bool,
    /// The value of the `ecs.kubecs.io/force-new-deployment` annotation (UpdateService's
    /// `forceNewDeployment`) that the latest deployment answered.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub forced_deployment: Option<String>,
    /// Ready, Progressing, Degraded.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub conditions: Vec<Condition>,
}

/// Annotation whose new value starts a new deployment of the same task definition, as
/// UpdateService's `forceNewDeployment` does (`kubectl annotate ... --overwrite`).
pub const FORCE_NEW_DEPLOYMENT_ANNOTATION: &str = "ecs.kubecs.io/force-new-deployment";

/// One deployment of the service (ECS `Deployment`).
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Deployment {
    /// The deployment id (`ecs-svc/...`).
    pub id: String,
    /// PRIMARY (the newest), ACTIVE (being replaced) or INACTIVE.
    pub status: DeploymentStatus,
    /// The task definition (family:revision).
    pub task_definition: String,
    #[serde(default)]
    pub desired_count: i32,
    #[serde(default)]
    pub pending_count: i32,
    #[serde(default)]
    pub running_count: i32,
    #[serde(default)]
    pub failed_tasks: i32,
    /// IN_PROGRESS, COMPLETED or FAILED.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rollout_state: Option<RolloutState>,
    /// The deployment circuit breaker's count and state, when it is on.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub circuit_breaker: Option<CircuitBreakerState>,
    /// Why the rollout is in that state.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rollout_state_reason: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub launch_type: Option<LaunchType>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub created_at: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub updated_at: Option<String>,
    /// Blue/green: SCALE_UP (green starting), BAKE_TIME (production traffic on green, blue
    /// still running), CLEAN_UP (blue stopping).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lifecycle_stage: Option<LifecycleStage>,
    /// Blue/green: when production traffic moved to this deployment (the bake starts).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub production_traffic_shifted_at: Option<String>,
    /// The images its tasks run, each tag resolved to a digest at the deployment's start
    /// (ECS's software version consistency; `versionConsistency: disabled` keeps the tag).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub container_images: Vec<ContainerImage>,
    /// A failed deployment: the deployment its rollback returned to.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rolled_back_to: Option<String>,
    /// A rollback: the failed deployment it undoes (its history record tracks the rollback).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rollback_of: Option<String>,
    /// The deployment alarms, when they are on.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub alarms: Option<DeploymentAlarmsState>,
    /// LINEAR and CANARY: the percent of production traffic on this deployment, and when the
    /// last step moved it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub production_traffic_percent: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub traffic_step_at: Option<String>,
    /// Its lifecycle hooks' runs, in stage order.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub lifecycle_hook_details: Vec<LifecycleHookDetail>,
}

/// Annotation naming the deployment to stop (StopServiceDeployment): `ID` or `ID:ROLLBACK`
/// rolls back to the last completed deployment, `ID:ABORT` stops it where it is.
pub const STOP_DEPLOYMENT_ANNOTATION: &str = "ecs.kubecs.io/stop-deployment";

/// StopServiceDeployment's `stopType`.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum StopType {
    #[default]
    Rollback,
    Abort,
}

/// The deployment id and stop type an `ecs.kubecs.io/stop-deployment` value asks for (the
/// id as DescribeServices shows it, or its digits).
pub fn parse_stop_request(v: &str) -> Option<(String, StopType)> {
    let (id, kind) = match v.trim().rsplit_once(':') {
        Some((id, "ROLLBACK")) => (id, StopType::Rollback),
        Some((id, "ABORT")) => (id, StopType::Abort),
        Some(_) => return None,
        None => (v.trim(), StopType::Rollback),
    };
    let digits = id.rsplit('/').next().unwrap_or(id);
    (!digits.is_empty() && digits.bytes().all(|b| b.is_ascii_digit()))
        .then(|| (format!("ecs-svc/{digits}"), kind))
}

/// A container's image as a deployment runs it (ECS `ContainerImage`).
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ContainerImage {
    pub container_name: String,
    /// The image as the task definition names it.
    pub image: String,
    /// The digest its tasks run (`image@digest`), when it was resolved.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image_digest: Option<String>,
}

/// A task the service stopped, and why (newest first, bounded).
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct StoppedTask {
    /// The task (pod) name.
    pub task_id: String,
    /// Its deployment.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub deployment_id: Option<String>,
    /// TaskFailedToStart, EssentialContainerExited, ServiceSchedulerInitiated...
    pub stop_code: StopCode,
    /// ECS's stoppedReason, e.g. "Essential container in task exited".
    pub stopped_reason: String,
    /// Exit codes of the containers that stopped, `name=code`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub exit_codes: Vec<String>,
    pub stopped_at: String,
}

/// A service event, in ECS's words.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ServiceEvent {
    pub id: String,
    pub created_at: String,
    pub message: String,
}
