//! `ServiceDeployment`: the history of a service's deployments (ECS's ServiceDeployment, with
//! the ServiceRevision it deployed), one object per deployment, written by the operator and
//! owned by the Service. `spec` holds what the deployment was when it started (its target
//! revision, with the digests its images resolved to, and the revisions it replaced);
//! `status` where it got to. The newest [`RETAINED`] of each service are kept.

use kube::CustomResource;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::common::{CapacityProviderStrategyItem, LaunchType};
use super::service::{
    ContainerImage, DeploymentAlarmsState, DeploymentConfiguration, LifecycleHookDetail,
    LoadBalancer,
};
use super::states::{CircuitBreakerStatus, LifecycleStage};

/// How many deployments of one service are kept (the oldest go first).
pub const RETAINED: usize = 20;

/// One deployment of a service, kept after it finished (ECS ServiceDeployment).
#[derive(CustomResource, Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[kube(
    group = "ecs.kubecs.io",
    version = "v1alpha1",
    kind = "ServiceDeployment",
    plural = "servicedeployments",
    singular = "servicedeployment",
    shortname = "ecssd",
    category = "ecs",
    namespaced,
    status = "ServiceDeploymentStatus",
    doc = "One deployment of an ECS service and the service revision it deployed (ECS ServiceDeployment), written by the operator.",
    printcolumn(name = "Service", type_ = "string", json_path = ".spec.service"),
    printcolumn(
        name = "Task Definition",
        type_ = "string",
        json_path = ".spec.targetServiceRevision.taskDefinition"
    ),
    printcolumn(name = "Status", type_ = "string", json_path = ".status.status"),
    printcolumn(
        name = "Reason",
        type_ = "string",
        json_path = ".status.statusReason",
        priority = 1
    ),
    printcolumn(
        name = "Running",
        type_ = "integer",
        json_path = ".status.targetServiceRevision.runningTaskCount"
    ),
    printcolumn(name = "Started", type_ = "date", json_path = ".spec.createdAt"),
    printcolumn(name = "Finished", type_ = "date", json_path = ".status.finishedAt")
)]
#[serde(rename_all = "camelCase")]
pub struct ServiceDeploymentSpec {
    /// The service (its name in this namespace).
    pub service: String,
    /// Its cluster.
    pub cluster: String,
    /// The deployment id (`ecs-svc/...`, as DescribeServices shows it).
    pub deployment_id: String,
    pub service_deployment_arn: String,
    pub service_arn: String,
    pub cluster_arn: String,
    /// When the deployment was created (RFC 3339).
    pub created_at: String,
    /// The service revision it deploys.
    pub target_service_revision: ServiceRevision,
    /// The revisions that ran when it started, and their task counts then.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub source_service_revisions: Vec<ServiceRevisionSummary>,
    /// The service's deployment configuration when it started.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub deployment_configuration: Option<DeploymentConfiguration>,
}

/// What a deployment deploys (ECS ServiceRevision).
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ServiceRevision {
    pub service_revision_arn: String,
    /// The task definition (`family:revision`).
    pub task_definition: String,
    /// The images its tasks run, tags resolved to digests (version consistency).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub container_images: Vec<ContainerImage>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub launch_type: Option<LaunchType>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub capacity_provider_strategy: Vec<CapacityProviderStrategyItem>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub load_balancers: Vec<LoadBalancer>,
    pub created_at: String,
}

/// A revision and its task counts (ECS ServiceRevisionSummary).
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ServiceRevisionSummary {
    pub arn: String,
    #[serde(default)]
    pub requested_task_count: i32,
    #[serde(default)]
    pub running_task_count: i32,
    #[serde(default)]
    pub pending_task_count: i32,
}

/// Where the deployment got to.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ServiceDeploymentStatus {
    /// IN_PROGRESS, SUCCESSFUL, STOPPED, ROLLBACK_IN_PROGRESS, ROLLBACK_SUCCESSFUL...
    pub status: ServiceDeploymentState,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status_reason: Option<String>,
    /// Blue/green and gradual deployments: the stage it is in.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lifecycle_stage: Option<LifecycleStage>,
    /// The target revision's task counts now.
    pub target_service_revision: ServiceRevisionSummary,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub started_at: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub updated_at: Option<String>,
    /// When it succeeded or its rollback ended.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub finished_at: Option<String>,
    /// When it was stopped (superseded, stopped by the user, or failed without rollback).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stopped_at: Option<String>,
    /// Its rollback, once one started.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rollback: Option<Rollback>,
    /// The circuit breaker, when it is on.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub deployment_circuit_breaker: Option<ServiceDeploymentCircuitBreaker>,
    /// The deployment alarms, when they are on (ECS ServiceDeploymentAlarms).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub alarms: Option<DeploymentAlarmsState>,
    /// Its lifecycle hooks' runs (hook ids for ContinueServiceDeployment).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub lifecycle_hook_details: Vec<LifecycleHookDetail>,
}

/// ECS ServiceDeploymentStatus.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum ServiceDeploymentState {
    Pending,
    #[default]
    InProgress,
    Successful,
    StopRequested,
    Stopped,
    RollbackRequested,
    RollbackInProgress,
    RollbackSuccessful,
    RollbackFailed,
}

impl ServiceDeploymentState {
    /// Whether the deployment is over (nothing changes its record any more).
    pub fn is_final(self) -> bool {
        matches!(
            self,
            Self::Successful | Self::Stopped | Self::RollbackSuccessful | Self::RollbackFailed
        )
    }
}

/// A deployment's rollback (ECS Rollback).
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Rollback {
    pub reason: String,
    pub started_at: String,
    /// The revision the rollback deploys (the last successful one).
    pub service_revision_arn: String,
}

/// ECS ServiceDeploymentCircuitBreaker.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ServiceDeploymentCircuitBreaker {
    pub status: CircuitBreakerStatus,
    pub failure_count: i32,
    pub threshold: i32,
}
