//! The checks a Service and a RunTask share before anything is planned: the cluster exists,
//! the capacity provider strategy (its own or the cluster's default) names providers the
//! cluster has, the task definition resolves (and is ACTIVE, unless the service already runs
//! it), it is valid for the launch type, and the placement configuration is within ECS's
//! rules. One place, one set of ECS messages.

use crate::api::EcsCluster;
use crate::api::common::{
    CapacityProviderStrategyItem, LaunchType, PlacementConstraint, PlacementStrategy,
};
use crate::placement::{PlacementPolicy, TaskKind};

use super::Stores;
use super::launch::{self, INACTIVE, Providers, Resolved};

/// Why a Service or Task cannot go ahead: shown as its `Ready=False`/`Degraded=True`
/// condition (the reason) and an event (the message), in ECS's words.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Refusal {
    ClusterNotFound,
    TaskDefinitionNotFound(String),
    TaskDefinitionInactive(String),
    IncompatibleLaunchType(String),
    InvalidPlacement(String),
    InvalidCapacityProviderStrategy(String),
}

impl Refusal {
    /// The condition reason.
    pub fn reason(&self) -> &'static str {
        match self {
            Refusal::ClusterNotFound => "ClusterNotFound",
            Refusal::TaskDefinitionNotFound(_) => "TaskDefinitionNotFound",
            Refusal::TaskDefinitionInactive(_) => "TaskDefinitionInactive",
            Refusal::IncompatibleLaunchType(_) => "IncompatibleLaunchType",
            Refusal::InvalidPlacement(_) => "InvalidPlacement",
            Refusal::InvalidCapacityProviderStrategy(_) => "InvalidCapacityProviderStrategy",
        }
    }

    /// ECS's message.
    pub fn message(&self) -> String {
        match self {
            Refusal::ClusterNotFound => "ClusterNotFoundException: Cluster not found.".into(),
            Refusal::TaskDefinitionInactive(name) => format!("{INACTIVE}: {name} is INACTIVE."),
            Refusal::TaskDefinitionNotFound(m)
            | Refusal::IncompatibleLaunchType(m)
            | Refusal::InvalidPlacement(m)
            | Refusal::InvalidCapacityProviderStrategy(m) => m.clone(),
        }
    }
}

/// What a Service or Task asks for.
pub struct Ask<'a> {
    /// The cluster, when it exists.
    pub cluster: Option<&'a EcsCluster>,
    pub task_definition: &'a str,
    /// The revisions the owner already runs: an INACTIVE one of them may go on running.
    pub already_running: &'a [String],
    /// The launch type asked for (None: the capacity provider strategy decides, else EC2).
    pub launch_type: Option<LaunchType>,
    /// The owner's own strategy (empty: the cluster's default, without a launch type).
    pub capacity_provider_strategy: &'a [CapacityProviderStrategyItem],
    /// DAEMON services run on the cluster's instances: no capacity provider strategy.
    pub daemon: bool,
    pub kind: TaskKind,
    pub strategies: &'a [PlacementStrategy],
    pub constraints: &'a [PlacementConstraint],
}

/// What passed the checks.
pub struct Cleared {
    pub resolved: Resolved,
    pub policy: PlacementPolicy,
    /// The launch type the tasks get (FARGATE for a Fargate strategy).
    pub launch_type: LaunchType,
    /// The capacity provider strategy tasks are split by, if any.
    pub providers: Option<Providers>,
}

/// Runs the checks in ECS's order; reads the stores only.
pub fn check(stores: &Stores, ns: &str, ask: &Ask<'_>) -> Result<Cleared, Refusal> {
    let Some(cluster) = ask.cluster else {
        return Err(Refusal::ClusterNotFound);
    };
    let providers = if ask.daemon {
        None
    } else {
        launch::resolve_strategy(
            stores,
            ns,
            cluster,
            ask.capacity_provider_strategy,
            ask.launch_type,
        )
        .map_err(Refusal::InvalidCapacityProviderStrategy)?
    };
    let resolved = launch::resolve(stores, ns, ask.task_definition)
        .map_err(Refusal::TaskDefinitionNotFound)?;
    decide(resolved, ask, providers)
}

/// The checks after resolution: pure.
fn decide(
    resolved: Resolved,
    ask: &Ask<'_>,
    providers: Option<Providers>,
) -> Result<Cleared, Refusal> {
    let launch_type = providers
        .as_ref()
        .map(Providers::launch_type)
        .unwrap_or(ask.launch_type.unwrap_or(LaunchType::Ec2));
    let name = resolved.name();
    if !resolved.active && !ask.already_running.contains(&name) {
        return Err(Refusal::TaskDefinitionInactive(name));
    }
    launch::check_launch_type(&resolved, launch_type).map_err(Refusal::IncompatibleLaunchType)?;
    let policy = PlacementPolicy::new(
        ask.kind,
        ask.strategies,
        ask.constraints,
        &resolved.spec.placement_constraints,
    )
    .map_err(|e| Refusal::InvalidPlacement(e.to_string()))?;
    Ok(Cleared {
        resolved,
        policy,
        launch_type,
        providers,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::TaskDefinitionSpec;

    fn revision(active: bool, spec: serde_json::Value) -> Resolved {
        Resolved {
            family: "web".into(),
            revision: 3,
            active,
            spec: serde_json::from_value::<TaskDefinitionSpec>(spec)
                .unwrap()
                .into(),
        }
    }

    fn ask<'a>(running: &'a [String], launch_type: LaunchType) -> Ask<'a> {
        Ask {
            cluster: None,
            task_definition: "web",
            already_running: running,
            launch_type: Some(launch_type),
            capacity_provider_strategy: &[],
            daemon: false,
            kind: TaskKind::Service,
            strategies: &[],
            constraints: &[],
        }
    }

    fn app() -> serde_json::Value {
        serde_json::json!({"containerDefinitions": [{"name": "app", "image": "x", "memory": 128}]})
    }

    #[test]
    fn an_inactive_revision_is_refused_unless_it_already_runs() {
        let refused = decide(revision(false, app()), &ask(&[], LaunchType::Ec2), None)
            .err()
            .unwrap();
        assert_eq!(refused.reason(), "TaskDefinitionInactive");
        assert_eq!(
            refused.message(),
            "TaskDefinition is inactive: web:3 is INACTIVE."
        );
        let running = ["web:3".to_string()];
        assert!(
            decide(
                revision(false, app()),
                &ask(&running, LaunchType::Ec2),
                None
            )
            .is_ok()
        );
    }

    #[test]
    fn a_revision_without_fargate_is_refused_for_fargate_in_ecs_words() {
        let refused = decide(revision(true, app()), &ask(&[], LaunchType::Fargate), None)
            .err()
            .unwrap();
        assert_eq!(refused.reason(), "IncompatibleLaunchType");
        assert_eq!(
            refused.message(),
            "Task definition does not support launch_type FARGATE."
        );
    }

    #[test]
    fn the_cluster_is_checked_first() {
        assert_eq!(
            Refusal::ClusterNotFound.message(),
            "ClusterNotFoundException: Cluster not found."
        );
    }
}
