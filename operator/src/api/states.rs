//! ECS's fixed vocabularies, as the API spells them: every status field with one is one of
//! these enums (so the CRD schema lists the values and `kubectl explain` shows them), and
//! decisions compare enums, never strings.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// A service's status (ECS `Service.status`).
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum ServiceState {
    Active,
    Draining,
    Inactive,
}

/// A deployment's circuit breaker (ECS `ServiceDeploymentCircuitBreaker.status`).
#[derive(Serialize, Deserialize, Clone, Copy, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum CircuitBreakerStatus {
    /// Counting the deployment's failed tasks.
    #[default]
    Monitoring,
    /// The deployment completed without tripping it.
    MonitoringComplete,
    /// It failed the deployment.
    Triggered,
    /// Off.
    Disabled,
}

/// A deployment's status: the newest is PRIMARY, the ones it replaces ACTIVE.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum DeploymentStatus {
    #[default]
    Primary,
    Active,
    Inactive,
}

/// A deployment's rollout state.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum RolloutState {
    InProgress,
    Completed,
    Failed,
}

/// Where a deployment is in its lifecycle (ECS's stages, in order; lifecycle hooks run at
/// the stages between them).
#[derive(
    Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, JsonSchema,
)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum LifecycleStage {
    ReconcileService,
    PreScaleUp,
    /// The new deployment's tasks start.
    ScaleUp,
    PostScaleUp,
    TestTrafficShift,
    PostTestTrafficShift,
    PreProductionTrafficShift,
    /// Production traffic moves to the new deployment.
    ProductionTrafficShift,
    PostProductionTrafficShift,
    /// Production traffic is on the new deployment; the old one still runs.
    BakeTime,
    /// The old deployment's tasks stop.
    CleanUp,
}

/// How a lifecycle hook is run (ECS DeploymentLifecycleHookTargetType).
#[derive(Serialize, Deserialize, Clone, Copy, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum HookTargetType {
    /// ECS calls a Lambda function; kubecs POSTs ECS's hook payload to `hookTargetArn`, an
    /// HTTP(S) URL, and reads `hookStatus` from the answer.
    #[default]
    AwsLambda,
    /// The deployment waits for ContinueServiceDeployment (or `ecs.kubecs.io/continue`).
    Pause,
}

/// Where a lifecycle hook is (ECS DeploymentLifecycleHookStatus).
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum HookStatus {
    AwaitingAction,
    InProgress,
    Succeeded,
    Failed,
    TimedOut,
}

/// What to do with a paused or timed-out hook (ECS DeploymentLifecycleHookAction).
#[derive(Serialize, Deserialize, Clone, Copy, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum HookAction {
    Continue,
    #[default]
    Rollback,
}

/// Why a task stopped (ECS `stopCode`).
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, JsonSchema)]
pub enum StopCode {
    TaskFailedToStart,
    EssentialContainerExited,
    UserInitiated,
    ServiceSchedulerInitiated,
    SpotInterruption,
    TerminationNotice,
}

/// A task's (or container's) lifecycle state, in ECS's order: a later state ranks higher.
#[derive(
    Serialize, Deserialize, Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, JsonSchema,
)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum LastStatus {
    /// Not yet on an instance (Fargate tasks waiting for kube-scheduler).
    #[default]
    Provisioning,
    /// On an instance, containers not all started.
    Pending,
    Activating,
    /// Every essential container runs.
    Running,
    Deactivating,
    Stopping,
    /// Being stopped (the pod is terminating).
    Deprovisioning,
    /// Stopped: the pod finished, or an essential container stopped.
    Stopped,
}

impl LastStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            LastStatus::Provisioning => "PROVISIONING",
            LastStatus::Pending => "PENDING",
            LastStatus::Activating => "ACTIVATING",
            LastStatus::Running => "RUNNING",
            LastStatus::Deactivating => "DEACTIVATING",
            LastStatus::Stopping => "STOPPING",
            LastStatus::Deprovisioning => "DEPROVISIONING",
            LastStatus::Stopped => "STOPPED",
        }
    }
}

/// What a task should become (ECS `desiredStatus`).
#[derive(Serialize, Deserialize, Clone, Copy, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum DesiredStatus {
    #[default]
    Running,
    Pending,
    Stopped,
}

/// A task's or container's health (ECS `healthStatus`).
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum HealthStatus {
    /// Every essential container with a health check passes it.
    Healthy,
    /// An essential container failed its health check past its grace time.
    Unhealthy,
    /// No health check, or not decided yet.
    Unknown,
}

/// A cluster's status (ECS `Cluster.status`).
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum ClusterState {
    Active,
    Provisioning,
    Deprovisioning,
    Failed,
    Inactive,
}

/// A task definition revision's status: INACTIVE once deregistered (running services keep
/// it; new ones cannot use it).
#[derive(Serialize, Deserialize, Clone, Copy, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum RevisionState {
    #[default]
    Active,
    Inactive,
    DeleteInProgress,
}

/// A container instance's status (ECS `ContainerInstance.status`).
#[derive(Serialize, Deserialize, Clone, Copy, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum InstanceState {
    #[default]
    Active,
    Draining,
    Registering,
    Deregistering,
    RegistrationFailed,
    Inactive,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn states_are_spelled_as_ecs_spells_them() {
        let s = |v: serde_json::Value| v.as_str().unwrap().to_string();
        assert_eq!(
            s(serde_json::to_value(RolloutState::InProgress).unwrap()),
            "IN_PROGRESS"
        );
        assert_eq!(
            s(serde_json::to_value(LifecycleStage::PostProductionTrafficShift).unwrap()),
            "POST_PRODUCTION_TRAFFIC_SHIFT"
        );
        assert_eq!(
            s(serde_json::to_value(StopCode::EssentialContainerExited).unwrap()),
            "EssentialContainerExited"
        );
        assert_eq!(
            s(serde_json::to_value(LastStatus::Deprovisioning).unwrap()),
            "DEPROVISIONING"
        );
        assert_eq!(
            s(serde_json::to_value(InstanceState::RegistrationFailed).unwrap()),
            "REGISTRATION_FAILED"
        );
        for l in [
            LastStatus::Provisioning,
            LastStatus::Running,
            LastStatus::Stopped,
        ] {
            assert_eq!(s(serde_json::to_value(l).unwrap()), l.as_str());
        }
        assert!(
            LastStatus::Pending < LastStatus::Running && LastStatus::Running < LastStatus::Stopped
        );
    }
}
