//! What a task pod says about its task, in ECS terms: `lastStatus`, health, and whether (and
//! why) the task has stopped or must be stopped. Pure: a function of the pod and the clock.

use super::task_pod::{ContainerState, PodPhase, ProbeTiming, TaskPod};
use crate::api::task::ContainerInfo;

pub use crate::api::states::{HealthStatus as Health, LastStatus, StopCode};

/// Why a task stopped, or must be stopped.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StopCause {
    pub code: StopCode,
    /// ECS's `stoppedReason`.
    pub reason: String,
    /// Counts toward the deployment circuit breaker.
    pub failure: bool,
    /// Stopped because an essential container failed its health checks.
    pub unhealthy: bool,
}

/// Seconds a task must have run healthy before it completes a rollout.
pub const STABLE_SECONDS: i64 = 5;

/// ECS's stopped reasons.
pub mod reasons {
    pub const ESSENTIAL_EXITED: &str = "Essential container in task exited";
    pub const HEALTH_CHECKS: &str = "Task failed container health checks";
    pub const FAILED_TO_START: &str = "Task failed to start";
}

/// A task as its owner sees it.
#[derive(Clone, Debug, PartialEq)]
pub struct ObservedTask {
    /// The pod name (the task id kubecs shows in events).
    pub name: String,
    pub uid: String,
    /// The deployment id label (`ecs.kubecs.io/deployment`), empty for RunTask.
    pub deployment: String,
    /// The container instance (node), once bound.
    pub node: Option<String>,
    pub last_status: LastStatus,
    pub health: Health,
    /// An essential container has a health check (so HEALTHY is required, not UNKNOWN).
    pub health_checked: bool,
    /// The pod is terminating: ECS's desiredStatus STOPPED.
    pub stopping: bool,
    /// Set when the task stopped or must stop.
    pub stop: Option<StopCause>,
    /// Unix seconds.
    pub created_at: i64,
    pub started_at: Option<i64>,
    pub containers: Vec<ContainerInfo>,
    /// Task scale-in protection ends then (Unix seconds): ECS's `protectionEnabled` with its
    /// `expirationDate`, from the pod's `ecs.kubecs.io/protected-until` annotation.
    pub protected_until: Option<i64>,
    /// Its container instance is DRAINING: a service replaces it within its bounds. Set by
    /// the owner, which knows the instances; the pod alone does not say.
    pub draining: bool,
}

impl ObservedTask {
    /// Not stopped and not being stopped.
    pub fn is_live(&self) -> bool {
        !self.stopping && self.stop.is_none()
    }

    /// Counts toward `minimumHealthyPercent`: RUNNING and, when it has a health check,
    /// HEALTHY.
    pub fn is_healthy(&self) -> bool {
        self.is_live()
            && self.last_status == LastStatus::Running
            && match self.health {
                Health::Healthy => true,
                Health::Unknown => !self.health_checked,
                Health::Unhealthy => false,
            }
    }

    /// Healthy for [`STABLE_SECONDS`]: what completes a rollout or takes production traffic,
    /// so a container that crashes right after it starts never does.
    pub fn is_stable(&self, now: i64) -> bool {
        self.is_healthy() && self.started_at.is_none_or(|s| now - s >= STABLE_SECONDS)
    }

    /// Scale-in protection is on at `now`.
    pub fn is_protected(&self, now: i64) -> bool {
        self.protected_until.is_some_and(|t| now < t)
    }

    /// Holds a place toward `maximumPercent`: anything not yet gone.
    pub fn holds_place(&self) -> bool {
        self.last_status != LastStatus::Stopped
    }
}

/// Container waiting reasons that mean the task will never start (ECS's
/// `CannotPullContainerError` and friends), rather than "not yet".
const FATAL_WAITING: &[&str] = &[
    "InvalidImageName",
    "CreateContainerConfigError",
    "CreateContainerError",
    "RunContainerError",
    "ErrImageNeverPull",
];

/// A failed pull the kubelet retries. It becomes the task's failure only once the task is
/// this old: as ECS's agent retries a pull before it gives up, and because a kubelet may try a
/// task's first pull before its pull Secret reached it (a 401 that its next try does not get).
const RETRIED_PULL: &[&str] = &["ErrImagePull", "ImagePullBackOff"];
pub const PULL_RETRY_SECONDS: i64 = 30;

/// Seconds after a container starts by which a failing readiness probe means UNHEALTHY:
/// ECS's startPeriod + interval × retries (+ timeout), then the service's grace period.
fn unhealthy_after(probe: &ProbeTiming, grace: i64) -> i64 {
    grace.max(probe.initial_delay) + probe.period * probe.failures + probe.timeout
}

/// Reads a task pod. `grace` is the service's `healthCheckGracePeriodSeconds` (0 for RunTask).
pub fn observe(pod: &TaskPod, now: i64, grace: i64) -> ObservedTask {
    let phase = pod.phase;
    let stopping = pod.deleting;
    let created_at = pod.created_at.unwrap_or(now);
    let mut stop: Option<StopCause> = None;
    let mut all_essential_running = !pod.essential.is_empty();
    let mut started_at: Option<i64> = None;
    let mut health_checked = false;
    let mut healthy = true;
    let mut unhealthy = false;
    for name in &pod.essential {
        let cs = pod.container(name);
        let state = cs.map(|c| &c.state);
        match state {
            Some(ContainerState::Running { started_at: at }) => {
                let t = at.unwrap_or(now);
                started_at = Some(started_at.map_or(t, |s: i64| s.max(t)));
            }
            _ => all_essential_running = false,
        }
        // A sidecar the kubelet restarted has stopped once: for an essential one, ECS stops
        // the task.
        let terminated = matches!(state, Some(ContainerState::Terminated { .. }));
        let restarted = cs.is_some_and(|c| c.restarted);
        if (terminated || restarted) && stop.is_none() {
            stop = Some(StopCause {
                code: StopCode::EssentialContainerExited,
                reason: reasons::ESSENTIAL_EXITED.into(),
                failure: true,
                unhealthy: false,
            });
        }
        if let Some(ContainerState::Waiting { reason, message }) = state {
            let why = reason.as_deref().unwrap_or_default();
            let age = now - created_at;
            let fatal = FATAL_WAITING.contains(&why)
                || (RETRIED_PULL.contains(&why) && age >= PULL_RETRY_SECONDS);
            if fatal && stop.is_none() {
                let detail = message.as_deref().unwrap_or(why);
                stop = Some(StopCause {
                    code: StopCode::TaskFailedToStart,
                    reason: format!("CannotPullContainerError: {}", detail.trim_end_matches('.')),
                    failure: true,
                    unhealthy: false,
                });
            }
        }
        if let Some(probe) = pod.probe(name) {
            health_checked = true;
            let ready = cs.is_some_and(|c| c.ready);
            if !ready {
                healthy = false;
                if let Some(ContainerState::Running { started_at: at }) = state {
                    let since = at.unwrap_or(now);
                    if now - since >= unhealthy_after(probe, grace) {
                        unhealthy = true;
                    }
                }
            }
        }
    }
    if phase.is_terminal() && stop.is_none() {
        stop = Some(StopCause {
            code: StopCode::EssentialContainerExited,
            reason: reasons::ESSENTIAL_EXITED.into(),
            failure: phase == PodPhase::Failed,
            unhealthy: false,
        });
    }
    // StopTask: the user's reason wins over the exit the stop itself causes.
    if let Some(reason) = &pod.stopped_reason {
        stop = Some(StopCause {
            code: StopCode::UserInitiated,
            reason: reason.clone(),
            failure: false,
            unhealthy: false,
        });
    }
    if unhealthy && stop.is_none() {
        stop = Some(StopCause {
            code: StopCode::ServiceSchedulerInitiated,
            reason: reasons::HEALTH_CHECKS.into(),
            failure: true,
            unhealthy: true,
        });
    }
    // Every container has exited: the task has stopped, even while the kubelet has not yet
    // made the phase terminal (it does so only after tearing the sandbox down). Stopping it
    // then would delete a pod that is already done.
    let all_exited = !pod.containers.is_empty()
        && pod
            .containers
            .iter()
            .all(|c| matches!(c.state, ContainerState::Terminated { .. }));
    let last_status = if phase.is_terminal() || all_exited {
        LastStatus::Stopped
    } else if stopping {
        LastStatus::Deprovisioning
    } else if pod.node.is_none() {
        LastStatus::Provisioning
    } else if phase == PodPhase::Running && all_essential_running {
        LastStatus::Running
    } else {
        LastStatus::Pending
    };
    let health = if unhealthy {
        Health::Unhealthy
    } else if health_checked && healthy && last_status == LastStatus::Running {
        Health::Healthy
    } else {
        Health::Unknown
    };
    let containers = pod
        .containers
        .iter()
        .map(|c| ContainerInfo {
            name: c.name.clone(),
            last_status: match c.state {
                ContainerState::Terminated { .. } => LastStatus::Stopped,
                ContainerState::Running { .. } => LastStatus::Running,
                _ => LastStatus::Pending,
            },
            exit_code: match c.state {
                ContainerState::Terminated { exit_code, .. } => Some(exit_code),
                _ => None,
            },
            reason: match &c.state {
                ContainerState::Terminated { reason, .. }
                | ContainerState::Waiting { reason, .. } => reason.clone(),
                _ => None,
            },
            health_status: pod.probe(&c.name).map(|_| {
                if c.ready {
                    Health::Healthy
                } else {
                    Health::Unknown
                }
            }),
        })
        .collect();
    ObservedTask {
        name: pod.name.clone(),
        uid: pod.uid.clone(),
        deployment: pod.deployment.clone().unwrap_or_default(),
        node: pod.node.clone(),
        last_status,
        health,
        health_checked,
        stopping,
        stop,
        created_at,
        started_at: started_at.or(pod.start_time),
        containers,
        protected_until: pod.protected_until,
        draining: false,
    }
}

#[cfg(test)]
mod tests {
    use k8s_openapi::api::core::v1::Pod;
    use serde_json::json;

    use super::*;
    use crate::taskdef::annotations;

    fn observe(p: &Pod, now: i64, grace: i64) -> ObservedTask {
        super::observe(&TaskPod::from_pod(p), now, grace)
    }

    fn pod(v: serde_json::Value) -> Pod {
        serde_json::from_value(v).unwrap()
    }

    fn running(name: &str, ready: bool, started: &str) -> serde_json::Value {
        json!({"name": name, "image": "x", "imageID": "", "ready": ready, "restartCount": 0,
               "state": {"running": {"startedAt": started}}})
    }

    fn base(containers: serde_json::Value, statuses: serde_json::Value, phase: &str) -> Pod {
        pod(json!({
            "metadata": {"name": "web-1", "uid": "u1", "creationTimestamp": "2026-01-01T00:00:00Z",
                "labels": {"ecs.kubecs.io/deployment": "123"},
                "annotations": {"ecs.kubecs.io/essential-containers": "app"}},
            "spec": {"nodeName": "n1", "containers": containers},
            "status": {"phase": phase, "containerStatuses": statuses}
        }))
    }

    const T0: i64 = 1_767_225_600; // 2026-01-01T00:00:00Z

    #[test]
    fn running_without_health_check_is_healthy_for_deployments() {
        let p = base(
            json!([{"name": "app", "image": "x"}, {"name": "side", "image": "y"}]),
            json!([running("app", true, "2026-01-01T00:00:01Z")]),
            "Running",
        );
        let t = observe(&p, T0 + 10, 0);
        assert_eq!(t.last_status, LastStatus::Running);
        assert_eq!(t.health, Health::Unknown);
        assert!(t.is_healthy());
        assert_eq!(t.deployment, "123");
        assert_eq!(t.started_at, Some(T0 + 1));
    }

    #[test]
    fn health_checked_task_is_healthy_only_when_ready() {
        let c = json!([{"name": "app", "image": "x",
            "readinessProbe": {"exec": {"command": ["true"]}, "periodSeconds": 5, "failureThreshold": 2, "timeoutSeconds": 2}}]);
        let ready = base(
            c.clone(),
            json!([running("app", true, "2026-01-01T00:00:00Z")]),
            "Running",
        );
        assert_eq!(observe(&ready, T0 + 3, 0).health, Health::Healthy);
        let not_ready = base(
            c,
            json!([running("app", false, "2026-01-01T00:00:00Z")]),
            "Running",
        );
        // Within startPeriod/interval×retries: not decided, and not healthy either.
        let early = observe(&not_ready, T0 + 5, 0);
        assert_eq!(early.health, Health::Unknown);
        assert!(!early.is_healthy());
        assert!(early.stop.is_none());
        // Past it: UNHEALTHY, and the task must stop with ECS's reason.
        let late = observe(&not_ready, T0 + 13, 0);
        assert_eq!(late.health, Health::Unhealthy);
        assert_eq!(late.stop.unwrap().reason, reasons::HEALTH_CHECKS);
        // The grace period postpones the verdict.
        assert!(observe(&not_ready, T0 + 13, 60).stop.is_none());
    }

    #[test]
    fn essential_container_exit_stops_the_task_but_a_sidecar_exit_does_not() {
        let c = json!([{"name": "app", "image": "x"}, {"name": "side", "image": "y"}]);
        let side_done = base(
            c.clone(),
            json!([running("app", true, "2026-01-01T00:00:00Z"),
                   {"name": "side", "image": "y", "imageID": "", "ready": false, "restartCount": 0,
                    "state": {"terminated": {"exitCode": 0}}}]),
            "Running",
        );
        let t = observe(&side_done, T0, 0);
        assert!(t.stop.is_none());
        assert_eq!(t.containers[1].exit_code, Some(0));
        let app_done = base(
            c,
            json!([{"name": "app", "image": "x", "imageID": "", "ready": false, "restartCount": 0,
                    "state": {"terminated": {"exitCode": 2, "reason": "Error"}}}]),
            "Running",
        );
        let t = observe(&app_done, T0, 0);
        let stop = t.stop.unwrap();
        assert_eq!(stop.code, StopCode::EssentialContainerExited);
        assert_eq!(stop.reason, "Essential container in task exited");
        assert_eq!(t.containers[0].exit_code, Some(2));
        // Every container has exited (the phase lags on a real kubelet): already STOPPED,
        // so nothing deletes the pod.
        assert_eq!(t.last_status, LastStatus::Stopped);
    }

    #[test]
    fn init_phase_containers_are_reported_and_essential_sidecars_count() {
        // migrate (SUCCESS target) ran in the init phase; envoy (START target, essential) is a
        // native sidecar; app is the regular container.
        let mut p = base(
            json!([{"name": "app", "image": "x"}]),
            json!([running("app", true, "2026-01-01T00:00:05Z")]),
            "Running",
        );
        p.metadata.annotations.as_mut().unwrap().insert(
            "ecs.kubecs.io/essential-containers".into(),
            "app,envoy".into(),
        );
        let init = json!([
            {"name": "migrate", "image": "m", "imageID": "", "ready": false, "restartCount": 0,
             "state": {"terminated": {"exitCode": 0, "reason": "Completed"}}},
            running("envoy", true, "2026-01-01T00:00:02Z")
        ]);
        p.status.as_mut().unwrap().init_container_statuses =
            Some(serde_json::from_value(init).unwrap());
        let t = observe(&p, T0 + 10, 0);
        assert_eq!(t.last_status, LastStatus::Running);
        assert!(t.stop.is_none());
        let names: Vec<&str> = t.containers.iter().map(|c| c.name.as_str()).collect();
        assert_eq!(names, ["app", "migrate", "envoy"]);
        assert_eq!(t.containers[1].exit_code, Some(0));
        // The kubelet restarted the essential sidecar: it stopped once, so the task stops.
        p.status
            .as_mut()
            .unwrap()
            .init_container_statuses
            .as_mut()
            .unwrap()[1]
            .restart_count = 1;
        let t = observe(&p, T0 + 10, 0);
        assert_eq!(t.stop.unwrap().code, StopCode::EssentialContainerExited);
    }

    #[test]
    fn image_pull_failure_is_a_failure_to_start() {
        let p = base(
            json!([{"name": "app", "image": "x"}]),
            json!([{"name": "app", "image": "x", "imageID": "", "ready": false, "restartCount": 0,
                    "state": {"waiting": {"reason": "ErrImagePull", "message": "pull access denied for x."}}}]),
            "Pending",
        );
        // The kubelet retries: not yet the task's failure.
        let t = observe(&p, T0 + 5, 0);
        assert_eq!(t.last_status, LastStatus::Pending);
        assert!(t.stop.is_none());
        let t = observe(&p, T0 + PULL_RETRY_SECONDS, 0);
        let stop = t.stop.unwrap();
        assert_eq!(stop.code, StopCode::TaskFailedToStart);
        assert_eq!(
            stop.reason,
            "CannotPullContainerError: pull access denied for x"
        );
    }

    #[test]
    fn phases_map_to_ecs_statuses() {
        let mut p = base(json!([{"name": "app", "image": "x"}]), json!([]), "Pending");
        assert_eq!(observe(&p, T0, 0).last_status, LastStatus::Pending);
        p.spec.as_mut().unwrap().node_name = None;
        assert_eq!(observe(&p, T0, 0).last_status, LastStatus::Provisioning);
        let done = base(
            json!([{"name": "app", "image": "x"}]),
            json!([]),
            "Succeeded",
        );
        let t = observe(&done, T0, 0);
        assert_eq!(t.last_status, LastStatus::Stopped);
        assert!(!t.stop.unwrap().failure);
    }

    #[test]
    fn a_user_stop_is_user_initiated_with_the_users_reason() {
        let mut p = base(
            json!([{"name": "app", "image": "x"}]),
            json!([{"name": "app", "image": "x", "imageID": "", "ready": false, "restartCount": 0,
                    "state": {"terminated": {"exitCode": 143, "startedAt": "2026-01-01T00:00:00Z"}}}]),
            "Running",
        );
        p.metadata.annotations.as_mut().unwrap().insert(
            annotations::STOPPED_REASON.into(),
            "Scaling down for the night".into(),
        );
        let t = observe(&p, T0 + 10, 0);
        let cause = t.stop.unwrap();
        assert_eq!(cause.code, StopCode::UserInitiated);
        assert_eq!(cause.reason, "Scaling down for the night");
        assert!(!cause.failure, "a user's stop is not a deployment failure");
    }
}
