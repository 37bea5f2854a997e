//! Indexes of the pods the reflectors hold, kept by the watch events themselves, so that a
//! reconcile reads what concerns it instead of scanning every pod in the cluster:
//! - [`NodeUsage`]: what runs on each Node (the room it uses, its task group, its host
//!   ports), for placement and cluster status; pods on other Nodes cost nothing;
//! - [`TasksByOwner`]: the task pods of each owning Service or Task.
//!
//! Each is a [`WatchIndex`] kept by its watch (see `watch_index`).

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use k8s_openapi::api::core::v1::Pod;
use kube::ResourceExt;
use kube::runtime::reflector::ObjectRef;

pub use super::watch_index::{Shared, WatchIndex};
use crate::placement::engine::RunningTask;
use crate::placement::instance::{pod_is_active, pod_requests};

/// What the task pods' store keeps of one: what observing a task reads
/// (`deploy::task::observe`: its metadata, Node, containers' names, images and readiness
/// probes, phase and container states), nothing else. Its room and host ports were read by
/// the indexes before the trim. The store holds every task pod, twice as many while a
/// service rolls, and k8s-openapi's structs are large: a container's environment, mounts,
/// resources and the pod's volumes, conditions and IPs were most of the memory it held.
pub fn trim_task(pod: &mut Pod) {
    use k8s_openapi::api::core::v1::{Container, ContainerStatus, PodSpec, PodStatus};
    let keep_container = |c: &mut Container| Container {
        name: std::mem::take(&mut c.name),
        image: c.image.take(),
        readiness_probe: c.readiness_probe.take(),
        // An init container that restarts always is a sidecar (it runs beside the others).
        restart_policy: c.restart_policy.take(),
        ..Default::default()
    };
    if let Some(spec) = pod.spec.as_mut() {
        *spec = PodSpec {
            node_name: spec.node_name.take(),
            containers: spec.containers.iter_mut().map(keep_container).collect(),
            init_containers: spec
                .init_containers
                .as_mut()
                .map(|cs| cs.iter_mut().map(keep_container).collect()),
            ..Default::default()
        };
    }
    let keep_status = |c: &mut ContainerStatus| ContainerStatus {
        name: std::mem::take(&mut c.name),
        image: std::mem::take(&mut c.image),
        image_id: std::mem::take(&mut c.image_id),
        ready: c.ready,
        restart_count: c.restart_count,
        started: c.started,
        state: c.state.take(),
        ..Default::default()
    };
    if let Some(status) = pod.status.as_mut() {
        *status = PodStatus {
            phase: status.phase.take(),
            reason: status.reason.take(),
            message: status.message.take(),
            start_time: status.start_time.take(),
            container_statuses: status
                .container_statuses
                .as_mut()
                .map(|cs| cs.iter_mut().map(keep_status).collect()),
            init_container_statuses: status
                .init_container_statuses
                .as_mut()
                .map(|cs| cs.iter_mut().map(keep_status).collect()),
            ..Default::default()
        };
    }
}

/// One active pod on a Node, as placement and cluster status count it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PodOnNode {
    pub task: RunningTask,
    pub host_ports: Vec<u16>,
    /// `namespace/cluster` of a kubecs task, running or not: the cluster status counts them.
    pub cluster_task: Option<(String, String, bool)>,
}

/// What runs on each Node: every active pod bound to it, kubecs' or not.
#[derive(Default)]
pub struct NodeUsage {
    by_node: HashMap<String, OnNode>,
    node_of: HashMap<String, String>,
}

/// The active pods on one Node, and what placement reads of them, summed when a pod comes or
/// goes: every placement reads every Node of its cluster, and must not redo that sum (nor
/// copy each task) per pass.
#[derive(Default)]
pub struct OnNode {
    pods: HashMap<String, PodOnNode>,
    /// Every pod's task, shared with the placements that read it.
    pub tasks: Arc<Vec<RunningTask>>,
    /// CPU units and MiB the pods reserve.
    pub reserved: (i64, i64),
    /// Host ports the pods use.
    pub host_ports: Vec<u16>,
}

impl OnNode {
    fn summarize(&mut self) {
        self.tasks = Arc::new(self.pods.values().map(|p| p.task.clone()).collect());
        self.reserved = self
            .pods
            .values()
            .fold((0, 0), |(c, m), p| (c + p.task.cpu, m + p.task.memory));
        self.host_ports = self
            .pods
            .values()
            .flat_map(|p| p.host_ports.iter().copied())
            .collect();
    }
}

impl NodeUsage {
    /// The active pods bound to `node`.
    pub fn on<'a>(&'a self, node: &str) -> impl Iterator<Item = &'a PodOnNode> + 'a {
        self.by_node
            .get(node)
            .into_iter()
            .flat_map(|m| m.pods.values())
    }

    /// Whether the active pod with `uid` is counted on its Node.
    pub fn holds(&self, uid: &str) -> bool {
        self.node_of.contains_key(uid)
    }

    /// What the active pods bound to `node` take of it.
    pub fn room_taken(&self, node: &str) -> Option<&OnNode> {
        self.by_node.get(node)
    }
}

impl WatchIndex<Pod> for NodeUsage {
    fn upsert(&mut self, pod: &Pod) {
        let uid = pod.uid().unwrap_or_default();
        self.remove(&uid);
        let Some(node) = pod.spec.as_ref().and_then(|s| s.node_name.clone()) else {
            return;
        };
        if !pod_is_active(pod) {
            return;
        }
        let (cpu, memory) = pod_requests(pod);
        let cluster_task = pod.labels().get(crate::api::labels::CLUSTER).map(|c| {
            (
                pod.namespace().unwrap_or_default(),
                c.clone(),
                super::cluster::is_running(pod),
            )
        });
        let entry = PodOnNode {
            task: RunningTask {
                id: uid.as_str().into(),
                group: super::launch::group_of(pod).into(),
                cpu,
                memory,
            },
            host_ports: super::launch::host_ports(pod),
            cluster_task,
        };
        let on = self.by_node.entry(node.clone()).or_default();
        on.pods.insert(uid.clone(), entry);
        on.summarize();
        self.node_of.insert(uid, node);
    }

    fn remove(&mut self, uid: &str) {
        if let Some(node) = self.node_of.remove(uid)
            && let Some(on) = self.by_node.get_mut(&node)
        {
            on.pods.remove(uid);
            if on.pods.is_empty() {
                self.by_node.remove(&node);
            } else {
                on.summarize();
            }
        }
    }
}

/// The task pods of each controlling owner (a Service or a Task), by the owner's uid.
#[derive(Default)]
pub struct TasksByOwner {
    by_owner: HashMap<String, HashSet<ObjectRef<Pod>>>,
    owner_of: HashMap<String, (String, ObjectRef<Pod>)>,
}

impl TasksByOwner {
    /// The pods whose controller is the object with `uid`.
    pub fn of(&self, owner_uid: &str) -> Vec<ObjectRef<Pod>> {
        self.by_owner
            .get(owner_uid)
            .map(|s| s.iter().cloned().collect())
            .unwrap_or_default()
    }
}

impl WatchIndex<Pod> for TasksByOwner {
    fn upsert(&mut self, pod: &Pod) {
        let uid = pod.uid().unwrap_or_default();
        self.remove(&uid);
        let Some(owner) = pod
            .owner_references()
            .iter()
            .find(|o| o.controller == Some(true))
            .map(|o| o.uid.clone())
        else {
            return;
        };
        let r = ObjectRef::from(pod);
        self.by_owner
            .entry(owner.clone())
            .or_default()
            .insert(r.clone());
        self.owner_of.insert(uid, (owner, r));
    }

    fn remove(&mut self, uid: &str) {
        if let Some((owner, r)) = self.owner_of.remove(uid)
            && let Some(s) = self.by_owner.get_mut(&owner)
        {
            s.remove(&r);
            if s.is_empty() {
                self.by_owner.remove(&owner);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use kube::runtime::watcher;
    use serde_json::json;

    use super::*;

    fn pod(name: &str, node: Option<&str>, phase: &str, owner: &str) -> Pod {
        serde_json::from_value(json!({
            "metadata": {"name": name, "namespace": "shop", "uid": format!("uid-{name}"),
                         "labels": {"ecs.kubecs.io/service": "web", "ecs.kubecs.io/cluster": "prod"},
                         "ownerReferences": [{"apiVersion": "ecs.kubecs.io/v1alpha1", "kind": "Service",
                                              "name": "web", "uid": owner, "controller": true}]},
            "spec": {"nodeName": node, "containers": [{"name": "app", "image": "x",
                     "resources": {"requests": {"cpu": "250m", "memory": "512Mi"}}}]},
            "status": {"phase": phase},
        }))
        .expect("a Pod")
    }

    #[test]
    fn a_pod_counts_on_its_node_until_it_ends_or_goes() {
        let index = Shared::<NodeUsage>::default();
        index.apply(&watcher::Event::Apply(pod(
            "a",
            Some("n1"),
            "Running",
            "s1",
        )));
        index.apply(&watcher::Event::Apply(pod(
            "b",
            Some("n1"),
            "Pending",
            "s1",
        )));
        index.apply(&watcher::Event::Apply(pod("c", None, "Pending", "s1")));
        assert_eq!(index.read().on("n1").count(), 2);
        let a = index
            .read()
            .on("n1")
            .find(|p| &*p.task.id == "uid-a")
            .cloned()
            .unwrap();
        assert_eq!((a.task.cpu, a.task.memory), (256, 512));
        assert_eq!(&*a.task.group, "service:web");
        // RUNNING as the cluster counts it (its containers' states).
        let running =
            crate::controllers::cluster::is_running(&pod("a", Some("n1"), "Running", "s1"));
        assert_eq!(
            a.cluster_task,
            Some(("shop".into(), "prod".into(), running))
        );
        // A pod that ends leaves its node; one that moves (bound later) follows.
        index.apply(&watcher::Event::Apply(pod(
            "a",
            Some("n1"),
            "Succeeded",
            "s1",
        )));
        index.apply(&watcher::Event::Apply(pod(
            "c",
            Some("n2"),
            "Pending",
            "s1",
        )));
        index.apply(&watcher::Event::Delete(pod(
            "b",
            Some("n1"),
            "Pending",
            "s1",
        )));
        assert_eq!(index.read().on("n1").count(), 0);
        assert_eq!(index.read().on("n2").count(), 1);
    }

    #[test]
    fn a_nodes_room_taken_is_the_sum_of_its_active_pods() {
        let index = Shared::<NodeUsage>::default();
        for (name, phase) in [("a", "Running"), ("b", "Pending"), ("c", "Running")] {
            index.apply(&watcher::Event::Apply(pod(name, Some("n1"), phase, "s1")));
        }
        let taken = |index: &Shared<NodeUsage>| {
            index
                .read()
                .room_taken("n1")
                .map(|on| (on.reserved, on.tasks.len()))
        };
        assert_eq!(taken(&index), Some(((768, 1536), 3)));
        index.apply(&watcher::Event::Apply(pod("a", Some("n1"), "Failed", "s1")));
        index.apply(&watcher::Event::Delete(pod(
            "b",
            Some("n1"),
            "Pending",
            "s1",
        )));
        assert_eq!(taken(&index), Some(((256, 512), 1)));
        index.apply(&watcher::Event::Delete(pod(
            "c",
            Some("n1"),
            "Running",
            "s1",
        )));
        assert_eq!(taken(&index), None);
    }

    #[test]
    fn a_trimmed_task_pod_keeps_what_its_owner_reads() {
        let mut p: Pod = serde_json::from_value(json!({
            "metadata": {"name": "t", "annotations": {"ecs.kubecs.io/essential-containers": "app"}},
            "spec": {"nodeName": "n1",
                     "volumes": [{"name": "v", "emptyDir": {}}],
                     "tolerations": [{"key": "k", "operator": "Exists"}],
                     "initContainers": [{"name": "log", "image": "y", "restartPolicy": "Always",
                                         "resources": {"requests": {"memory": "64Mi"}}}],
                     "containers": [{"name": "app", "image": "x", "env": [{"name": "A", "value": "1"}],
                                     "readinessProbe": {"exec": {"command": ["true"]}},
                                     "ports": [{"containerPort": 80, "hostPort": 8080}],
                                     "resources": {"requests": {"cpu": "1"}}}]},
            "status": {"phase": "Running", "podIP": "10.0.0.9", "startTime": "2026-12-07T10:00:00Z",
                       "conditions": [{"type": "Ready", "status": "True"}],
                       "initContainerStatuses": [{"name": "log", "image": "y", "imageID": "y@sha256:2",
                                                  "ready": true, "restartCount": 0, "started": true,
                                                  "state": {"running": {"startedAt": "2026-12-07T10:00:01Z"}}}],
                       "containerStatuses": [{"name": "app", "image": "x", "imageID": "x@sha256:1",
                                              "ready": true, "restartCount": 1,
                                              "state": {"running": {"startedAt": "2026-12-07T10:00:02Z"}},
                                              "lastState": {"terminated": {"exitCode": 1}}}]},
        }))
        .expect("a Pod");
        let before = p.clone();
        trim_task(&mut p);
        let spec = p.spec.as_ref().unwrap();
        assert_eq!(
            (spec.volumes.as_ref(), spec.tolerations.as_ref()),
            (None, None)
        );
        assert_eq!(spec.containers[0].env, None);
        assert_eq!(spec.containers[0].resources, None);
        // What observing a task reads is kept: it observes the trimmed pod as the whole one.
        assert_eq!(p.metadata, before.metadata);
        assert_eq!(spec.node_name.as_deref(), Some("n1"));
        assert_eq!(spec.containers[0].name, "app");
        assert!(spec.containers[0].readiness_probe.is_some());
        assert_eq!(
            crate::deploy::observe(&p, 1_000, 0),
            crate::deploy::observe(&before, 1_000, 0)
        );
    }

    #[test]
    fn a_relist_replaces_the_index_only_when_complete() {
        let index = Shared::<TasksByOwner>::default();
        index.apply(&watcher::Event::Apply(pod(
            "a",
            Some("n1"),
            "Running",
            "s1",
        )));
        index.apply(&watcher::Event::Apply(pod(
            "gone",
            Some("n1"),
            "Running",
            "s1",
        )));
        index.apply(&watcher::Event::Init);
        index.apply(&watcher::Event::InitApply(pod(
            "a",
            Some("n1"),
            "Running",
            "s1",
        )));
        index.apply(&watcher::Event::InitApply(pod(
            "b",
            Some("n1"),
            "Running",
            "s2",
        )));
        // Until InitDone, readers see the old index.
        assert_eq!(index.read().of("s1").len(), 2);
        index.apply(&watcher::Event::InitDone);
        let names = |o: &str| {
            let mut v: Vec<String> = index.read().of(o).iter().map(|r| r.name.clone()).collect();
            v.sort();
            v
        };
        assert_eq!(names("s1"), vec!["a"]);
        assert_eq!(names("s2"), vec!["b"]);
    }
}
