//! Deployment planning, ECS's way: which tasks to start and stop now, and how the service's
//! deployments move (IN_PROGRESS → COMPLETED | FAILED, rollback, blue/green stages). Pure:
//! a planner takes the service's configuration, its recorded deployments and its observed
//! tasks, and returns a plan the Service controller applies.
//!
//! Bounds (ECS): during a rollout the service never has more than
//! floor(maximumPercent × desired / 100) tasks holding a place, nor fewer than
//! ceil(minimumHealthyPercent × desired / 100) healthy ones — counted conservatively: a task
//! being stopped still holds a place and is no longer healthy.

pub mod daemon;
pub mod history;
pub mod hooks;
pub mod rebalance;
pub mod replica;
pub mod task;
pub mod task_pod;

pub use crate::api::states::{
    DeploymentStatus, HealthStatus as Health, LastStatus, LifecycleStage, RolloutState, StopCode,
};
pub use task::{ObservedTask, StopCause, observe};
pub use task_pod::TaskPod;

use crate::api::service::Deployment;

/// How Kubernetes shows a service event: what ECS's console flags (a task that cannot be
/// placed, fails its health checks or fails to start; a failed deployment) is a Warning.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Severity {
    Normal,
    Warning,
}

/// A service event in ECS's words, with its severity.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EcsEvent {
    pub severity: Severity,
    pub message: String,
}

impl EcsEvent {
    pub fn normal(message: String) -> Self {
        Self {
            severity: Severity::Normal,
            message,
        }
    }

    pub fn warning(message: String) -> Self {
        Self {
            severity: Severity::Warning,
            message,
        }
    }
}

/// How a service replaces tasks.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Strategy {
    Rolling,
    /// Green runs beside blue; production traffic moves once green is healthy; blue stops
    /// after the bake time.
    BlueGreen {
        bake_seconds: i64,
        shift: TrafficShift,
    },
}

/// How blue/green moves production traffic to green.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum TrafficShift {
    /// BLUE_GREEN (and LINEAR or CANARY without an HTTPRoute): all at once.
    AllAtOnce,
    /// LINEAR: `step_percent` more after each `step_bake_seconds`.
    Linear {
        step_percent: f64,
        step_bake_seconds: i64,
    },
    /// CANARY: `canary_percent`, then the rest after `canary_bake_seconds`.
    Canary {
        canary_percent: f64,
        canary_bake_seconds: i64,
    },
}

impl TrafficShift {
    /// Green's share after the step that follows `current` (None before the first step), and
    /// how long to bake at `current` before taking it.
    pub fn next(self, current: Option<f64>) -> (f64, i64) {
        match (self, current) {
            (TrafficShift::AllAtOnce, _) => (100.0, 0),
            (TrafficShift::Linear { step_percent, .. }, None) => (step_percent.min(100.0), 0),
            (
                TrafficShift::Linear {
                    step_percent,
                    step_bake_seconds,
                },
                Some(c),
            ) => ((c + step_percent).min(100.0), step_bake_seconds),
            (TrafficShift::Canary { canary_percent, .. }, None) => (canary_percent.min(100.0), 0),
            (
                TrafficShift::Canary {
                    canary_bake_seconds,
                    ..
                },
                Some(_),
            ) => (100.0, canary_bake_seconds),
        }
    }
}

/// The deployment configuration, defaults applied.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Bounds {
    pub desired: i32,
    pub minimum_healthy_percent: i32,
    pub maximum_percent: i32,
}

impl Bounds {
    /// ceil(min% × desired): the fewest healthy tasks allowed.
    pub fn min_healthy(&self) -> i32 {
        let d = self.desired.max(0) as i64;
        ((self.minimum_healthy_percent.max(0) as i64 * d + 99) / 100) as i32
    }

    /// floor(max% × desired): the most tasks allowed.
    pub fn max_total(&self) -> i32 {
        let d = self.desired.max(0) as i64;
        ((self.maximum_percent.max(0) as i64 * d) / 100) as i32
    }
}

/// The deployment circuit breaker, resolved.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Breaker {
    pub rollback: bool,
    /// Failed tasks that trip it.
    pub threshold: i32,
    /// A task that reaches a healthy state resets the count (ECS's default).
    pub reset_on_healthy_task: bool,
}

/// ECS's threshold: half the desired count, at least 3, at most 200 — or the configured
/// COUNT, or PERCENT of the desired count.
pub fn breaker_threshold(desired: i32, count: Option<i32>, percent: Option<i32>) -> i32 {
    if let Some(c) = count {
        return c.max(1);
    }
    if let Some(p) = percent {
        return (((p as i64 * desired.max(0) as i64 + 99) / 100) as i32).max(1);
    }
    ((desired.max(0) + 1) / 2).clamp(3, 200)
}

/// A task to stop, and why.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StopTask {
    pub name: String,
    pub deployment: String,
    pub code: StopCode,
    pub reason: String,
    /// Counted as a failure of its deployment now (the caller records it so a retried stop
    /// does not count twice).
    pub counted_failure: bool,
}

/// Tasks to start for a deployment.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Launch {
    pub deployment: String,
    pub task_definition: String,
    pub count: usize,
    /// For DAEMON: the instance each task goes to.
    pub instances: Vec<String>,
}

/// What the Service controller does now.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Plan {
    /// The deployments to record in status, PRIMARY first.
    pub deployments: Vec<Deployment>,
    /// The resolved task definition the latest deployment decision was made for.
    pub trigger: String,
    pub launch: Vec<Launch>,
    pub stop: Vec<StopTask>,
    /// Service events, in ECS's words (oldest first).
    pub events: Vec<EcsEvent>,
    /// The deployment whose tasks get production traffic (blue/green); `None` means all.
    pub production: Option<String>,
    /// Everything is where it should be.
    pub steady: bool,
    /// Seconds until the next healthy PRIMARY task has been healthy long enough to count as
    /// stable: a rollout waiting only on that is decided again then, not at the next poll.
    pub stable_in: Option<i64>,
}

/// A deployment id in ECS's shape: `ecs-svc/` and 19 digits.
pub fn deployment_id(seed: u64) -> String {
    format!("ecs-svc/{:019}", seed % 10_000_000_000_000_000_000)
}

/// The digits of a deployment id: what the pod label holds (a label value cannot hold `/`).
pub fn deployment_label(id: &str) -> &str {
    id.rsplit('/').next().unwrap_or(id)
}

/// `(task a) (task b)`: how ECS lists tasks in events.
pub fn task_list<'a>(names: impl IntoIterator<Item = &'a str>) -> String {
    names
        .into_iter()
        .map(|n| format!("(task {n})"))
        .collect::<Vec<_>>()
        .join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bounds_round_as_ecs() {
        let b = Bounds {
            desired: 3,
            minimum_healthy_percent: 50,
            maximum_percent: 150,
        };
        assert_eq!(b.min_healthy(), 2);
        assert_eq!(b.max_total(), 4);
        let b = Bounds {
            desired: 4,
            minimum_healthy_percent: 50,
            maximum_percent: 150,
        };
        assert_eq!((b.min_healthy(), b.max_total()), (2, 6));
    }

    #[test]
    fn breaker_threshold_is_half_clamped_3_to_200() {
        assert_eq!(breaker_threshold(4, None, None), 3);
        assert_eq!(breaker_threshold(1, None, None), 3);
        assert_eq!(breaker_threshold(9, None, None), 5);
        assert_eq!(breaker_threshold(1000, None, None), 200);
        assert_eq!(breaker_threshold(1000, Some(7), None), 7);
        assert_eq!(breaker_threshold(10, None, Some(25)), 3);
    }

    #[test]
    fn deployment_ids_look_like_ecs() {
        let id = deployment_id(42);
        assert_eq!(id, "ecs-svc/0000000000000000042");
        assert_eq!(deployment_label(&id), "0000000000000000042");
        assert_eq!(task_list(["a", "b"]), "(task a) (task b)");
    }
}
