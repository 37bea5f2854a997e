//! A task pod as kubecs' controllers keep it: the few facts [`super::observe`] turns into ECS
//! states, read once from the pod when its watch event arrives.
//!
//! The operator holds every task pod of the cluster (twice as many while services roll), and
//! a k8s-openapi `Pod` costs kilobytes even stripped of what nobody reads: its structs have a
//! field for everything a pod can say. A `TaskPod` is a few hundred bytes.

use k8s_openapi::api::core::v1::{ContainerStatus, Pod, Probe};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kube::ResourceExt;

use crate::api::labels;
use crate::taskdef::annotations;

/// A pod's `status.phase`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum PodPhase {
    #[default]
    Pending,
    Running,
    Succeeded,
    Failed,
    Unknown,
}

impl PodPhase {
    /// The phase of `pod` (Pending when it has none yet).
    pub fn of(pod: &Pod) -> Self {
        match pod.status.as_ref().and_then(|s| s.phase.as_deref()) {
            None | Some("Pending") => Self::Pending,
            Some("Running") => Self::Running,
            Some("Succeeded") => Self::Succeeded,
            Some("Failed") => Self::Failed,
            Some(_) => Self::Unknown,
        }
    }

    /// Succeeded or Failed: the pod holds no room on its Node any more.
    pub fn is_terminal(self) -> bool {
        matches!(self, Self::Succeeded | Self::Failed)
    }
}

/// A container's state, as the kubelet last reported it.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub enum ContainerState {
    /// No state reported yet.
    #[default]
    Unknown,
    Waiting {
        reason: Option<String>,
        message: Option<String>,
    },
    Running {
        /// Unix seconds.
        started_at: Option<i64>,
    },
    Terminated {
        exit_code: i32,
        reason: Option<String>,
    },
}

impl ContainerState {
    fn of(status: &ContainerStatus) -> Self {
        let Some(s) = status.state.as_ref() else {
            return Self::Unknown;
        };
        if let Some(t) = &s.terminated {
            Self::Terminated {
                exit_code: t.exit_code,
                reason: t.reason.clone(),
            }
        } else if let Some(r) = &s.running {
            Self::Running {
                started_at: r.started_at.as_ref().map(seconds),
            }
        } else if let Some(w) = &s.waiting {
            Self::Waiting {
                reason: w.reason.clone(),
                message: w.message.clone(),
            }
        } else {
            Self::Unknown
        }
    }

    pub fn is_running(&self) -> bool {
        matches!(self, Self::Running { .. })
    }
}

/// One container's reported status.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ContainerRun {
    pub name: String,
    /// An init container (an init-phase container or a native sidecar).
    pub init: bool,
    pub ready: bool,
    /// The kubelet restarted it at least once.
    pub restarted: bool,
    pub state: ContainerState,
}

/// What a readiness probe's timing says about when failing it means UNHEALTHY.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ProbeTiming {
    pub initial_delay: i64,
    pub period: i64,
    pub failures: i64,
    pub timeout: i64,
}

impl ProbeTiming {
    fn of(probe: &Probe) -> Self {
        Self {
            initial_delay: probe.initial_delay_seconds.unwrap_or(0).into(),
            period: probe.period_seconds.unwrap_or(10).into(),
            failures: probe.failure_threshold.unwrap_or(3).into(),
            timeout: probe.timeout_seconds.unwrap_or(1).into(),
        }
    }
}

/// The object that controls a task pod: its Service or its Task.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Owner {
    pub kind: String,
    pub name: String,
    pub uid: String,
}

/// A task pod, as its owner and its cluster read it.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct TaskPod {
    pub name: String,
    pub namespace: String,
    pub uid: String,
    pub owner: Option<Owner>,
    /// The ECS cluster it counts in (its `ecs.kubecs.io/cluster` label).
    pub cluster: Option<String>,
    /// The service deployment that started it (`ecs.kubecs.io/deployment`).
    pub deployment: Option<String>,
    /// The Task (RunTask) that started it (`ecs.kubecs.io/task`).
    pub task: Option<String>,
    /// The capacity provider it was placed with (`ecs.kubecs.io/capacity-provider`).
    pub capacity_provider: Option<String>,
    /// Its essential containers: the annotation's, or else every regular container.
    pub essential: Vec<String>,
    /// The readiness probe of each container that has one (regular, then init ones).
    pub probes: Vec<(String, ProbeTiming)>,
    /// The user's StopTask reason (`ecs.kubecs.io/stopped-reason`).
    pub stopped_reason: Option<String>,
    /// The end of its scale-in protection, Unix seconds (`ecs.kubecs.io/protected-until`).
    pub protected_until: Option<i64>,
    /// It has a deletion timestamp: ECS's desiredStatus STOPPED.
    pub deleting: bool,
    /// Unix seconds.
    pub created_at: Option<i64>,
    /// Its container instance, once bound.
    pub node: Option<String>,
    pub phase: PodPhase,
    /// Unix seconds.
    pub start_time: Option<i64>,
    /// The containers' statuses: regular, then init ones.
    pub containers: Vec<ContainerRun>,
}

fn seconds(t: &Time) -> i64 {
    t.0.as_second()
}

impl TaskPod {
    pub fn from_pod(pod: &Pod) -> Self {
        let meta = &pod.metadata;
        let label = |key: &str| pod.labels().get(key).cloned();
        let annotation = |key: &str| pod.annotations().get(key);
        let spec = pod.spec.as_ref();
        let status = pod.status.as_ref();
        let essential = match annotation(annotations::ESSENTIAL_CONTAINERS) {
            Some(names) => names
                .split(',')
                .filter(|n| !n.is_empty())
                .map(String::from)
                .collect(),
            None => spec
                .map(|s| s.containers.iter().map(|c| c.name.clone()).collect())
                .unwrap_or_default(),
        };
        let probes = spec
            .map(|s| {
                s.containers
                    .iter()
                    .chain(s.init_containers.iter().flatten())
                    .filter_map(|c| {
                        Some((c.name.clone(), ProbeTiming::of(c.readiness_probe.as_ref()?)))
                    })
                    .collect()
            })
            .unwrap_or_default();
        let runs = |statuses: Option<&Vec<ContainerStatus>>, init: bool| {
            statuses
                .into_iter()
                .flatten()
                .map(move |c| ContainerRun {
                    name: c.name.clone(),
                    init,
                    ready: c.ready,
                    restarted: c.restart_count > 0,
                    state: ContainerState::of(c),
                })
                .collect::<Vec<_>>()
        };
        let mut containers = runs(status.and_then(|s| s.container_statuses.as_ref()), false);
        containers.extend(runs(
            status.and_then(|s| s.init_container_statuses.as_ref()),
            true,
        ));
        TaskPod {
            name: pod.name_any(),
            namespace: pod.namespace().unwrap_or_default(),
            uid: pod.uid().unwrap_or_default(),
            owner: pod
                .owner_references()
                .iter()
                .find(|o| o.controller == Some(true))
                .map(|o| Owner {
                    kind: o.kind.clone(),
                    name: o.name.clone(),
                    uid: o.uid.clone(),
                }),
            cluster: label(labels::CLUSTER),
            deployment: label(labels::DEPLOYMENT),
            task: label(labels::TASK),
            capacity_provider: label(labels::CAPACITY_PROVIDER),
            essential,
            probes,
            stopped_reason: annotation(annotations::STOPPED_REASON).cloned(),
            protected_until: annotation(annotations::PROTECTED_UNTIL)
                .and_then(|t| t.parse::<k8s_openapi::jiff::Timestamp>().ok())
                .map(|t| t.as_second()),
            deleting: meta.deletion_timestamp.is_some(),
            created_at: meta.creation_timestamp.as_ref().map(seconds),
            node: spec.and_then(|s| s.node_name.clone()),
            phase: PodPhase::of(pod),
            start_time: status.and_then(|s| s.start_time.as_ref()).map(seconds),
            containers,
        }
    }

    /// Not Succeeded nor Failed: it holds room on its Node.
    pub fn is_active(&self) -> bool {
        !self.phase.is_terminal()
    }

    /// ECS's RUNNING as a cluster counts it: the pod runs and each of its regular containers
    /// has started.
    pub fn is_running(&self) -> bool {
        is_running(
            self.phase,
            self.containers
                .iter()
                .filter(|c| !c.init)
                .map(|c| c.state.is_running()),
        )
    }

    /// The status of container `name`.
    pub fn container(&self, name: &str) -> Option<&ContainerRun> {
        self.containers.iter().find(|c| c.name == name)
    }

    /// The readiness probe timing of container `name`, when it has one.
    pub fn probe(&self, name: &str) -> Option<&ProbeTiming> {
        self.probes.iter().find(|(n, _)| n == name).map(|(_, p)| p)
    }
}

/// ECS's RUNNING: the pod runs and every regular container (`running`, one flag each) has
/// started; a pod with no container status yet has not.
pub fn is_running(phase: PodPhase, mut running: impl Iterator<Item = bool>) -> bool {
    phase == PodPhase::Running
        && running
            .next()
            .is_some_and(|first| first && running.all(|r| r))
}

/// Whether `pod` is RUNNING as [`TaskPod::is_running`] says, read from the pod itself (for
/// pods that are only counted, never kept).
pub fn pod_is_running(pod: &Pod) -> bool {
    is_running(
        PodPhase::of(pod),
        pod.status
            .as_ref()
            .and_then(|s| s.container_statuses.as_ref())
            .into_iter()
            .flatten()
            .map(|c| c.state.as_ref().is_some_and(|s| s.running.is_some())),
    )
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn a_task_pod_keeps_what_its_owner_and_cluster_read() {
        let pod: Pod = serde_json::from_value(json!({
            "metadata": {"name": "web-1", "namespace": "shop", "uid": "u1",
                "creationTimestamp": "2026-12-07T10:00:00Z",
                "deletionTimestamp": "2026-12-07T10:05:00Z",
                "labels": {"ecs.kubecs.io/cluster": "prod", "ecs.kubecs.io/deployment": "d1",
                           "ecs.kubecs.io/capacity-provider": "spot", "other": "x"},
                "annotations": {"ecs.kubecs.io/essential-containers": "app,log",
                                "ecs.kubecs.io/protected-until": "2026-12-07T11:00:00Z",
                                "ecs.kubecs.io/containers": "[]"},
                "ownerReferences": [
                    {"apiVersion": "v1", "kind": "ConfigMap", "name": "c", "uid": "x"},
                    {"apiVersion": "ecs.kubecs.io/v1alpha1", "kind": "Service", "name": "web",
                     "uid": "s1", "controller": true}]},
            "spec": {"nodeName": "n1",
                     "initContainers": [{"name": "log", "image": "y", "restartPolicy": "Always",
                                         "readinessProbe": {"exec": {"command": ["true"]}}}],
                     "containers": [{"name": "app", "image": "x",
                                     "readinessProbe": {"exec": {"command": ["true"]}, "periodSeconds": 5}}]},
            "status": {"phase": "Running", "startTime": "2026-12-07T10:00:01Z",
                       "initContainerStatuses": [{"name": "log", "image": "y", "imageID": "",
                           "ready": true, "restartCount": 2,
                           "state": {"running": {"startedAt": "2026-12-07T10:00:02Z"}}}],
                       "containerStatuses": [{"name": "app", "image": "x", "imageID": "",
                           "ready": false, "restartCount": 0,
                           "state": {"waiting": {"reason": "ErrImagePull", "message": "denied"}}}]},
        }))
        .expect("a Pod");
        let t = TaskPod::from_pod(&pod);
        let at = |s: &str| {
            s.parse::<k8s_openapi::jiff::Timestamp>()
                .unwrap()
                .as_second()
        };
        assert_eq!(
            (t.name.as_str(), t.namespace.as_str(), t.uid.as_str()),
            ("web-1", "shop", "u1")
        );
        assert_eq!(
            t.owner,
            Some(Owner {
                kind: "Service".into(),
                name: "web".into(),
                uid: "s1".into()
            })
        );
        assert_eq!(
            (
                t.cluster.as_deref(),
                t.deployment.as_deref(),
                t.capacity_provider.as_deref(),
                t.task.as_deref()
            ),
            (Some("prod"), Some("d1"), Some("spot"), None)
        );
        assert_eq!(t.essential, ["app", "log"]);
        assert_eq!(t.probe("app").map(|p| p.period), Some(5));
        assert_eq!(
            t.probe("log").map(|p| (p.period, p.failures)),
            Some((10, 3))
        );
        assert_eq!(t.protected_until, Some(at("2026-12-07T11:00:00Z")));
        assert!(t.deleting);
        assert_eq!(t.created_at, Some(at("2026-12-07T10:00:00Z")));
        assert_eq!(t.start_time, Some(at("2026-12-07T10:00:01Z")));
        assert_eq!(
            (t.node.as_deref(), t.phase),
            (Some("n1"), PodPhase::Running)
        );
        assert_eq!(
            t.containers,
            [
                ContainerRun {
                    name: "app".into(),
                    init: false,
                    ready: false,
                    restarted: false,
                    state: ContainerState::Waiting {
                        reason: Some("ErrImagePull".into()),
                        message: Some("denied".into())
                    },
                },
                ContainerRun {
                    name: "log".into(),
                    init: true,
                    ready: true,
                    restarted: true,
                    state: ContainerState::Running {
                        started_at: Some(at("2026-12-07T10:00:02Z"))
                    },
                },
            ]
        );
        // The sidecar runs but the app does not: not RUNNING, from the record or the pod.
        assert!(!t.is_running());
        assert!(!pod_is_running(&pod));
        assert!(t.is_active());
    }

    #[test]
    fn running_needs_the_phase_and_every_regular_container_started() {
        assert!(is_running(PodPhase::Running, [true, true].into_iter()));
        assert!(!is_running(PodPhase::Running, [true, false].into_iter()));
        assert!(!is_running(PodPhase::Running, std::iter::empty()));
        assert!(!is_running(PodPhase::Pending, [true].into_iter()));
        let mut p = Pod::default();
        assert_eq!(PodPhase::of(&p), PodPhase::Pending);
        p.status = Some(Default::default());
        p.status.as_mut().unwrap().phase = Some("Failed".into());
        assert!(PodPhase::of(&p).is_terminal());
        assert!(!TaskPod::from_pod(&p).is_active());
    }
}
