//! Indexes of the pods the reflectors hold, kept by the watch events themselves, so that a
//! reconcile reads what concerns it instead of scanning every pod in the cluster:
//! - [`NodeUsage`]: what runs on each Node (the room it uses, its task group, its host
//!   ports), for placement and cluster status; pods on other Nodes cost nothing;
//! - [`TasksByOwner`]: the task pods of each owning Service or Task.
//!
//! An index is updated before the store it sits beside (see `cli::wiring`), so whatever a
//! reconcile finds in the store, the index holds too. A relist builds a fresh index and swaps
//! it in when the list is complete, as the store does.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex, RwLock, RwLockReadGuard};

use k8s_openapi::api::core::v1::Pod;
use kube::ResourceExt;
use kube::runtime::reflector::ObjectRef;
use kube::runtime::watcher;

use crate::placement::engine::RunningTask;
use crate::placement::instance::{pod_is_active, pod_requests};

/// What an index keeps of a pod.
pub trait PodIndex: Default + Send + Sync + 'static {
    /// Adds `pod`, replacing what the index held for the same uid.
    fn upsert(&mut self, pod: &Pod);
    /// Forgets the pod with `uid`.
    fn remove(&mut self, uid: &str);
}

/// An index shared between the watch that keeps it and the reconcilers that read it.
#[derive(Default)]
pub struct Shared<I: PodIndex> {
    live: RwLock<I>,
    /// The index a relist is building, swapped in at `InitDone`.
    building: Mutex<Option<I>>,
}

impl<I: PodIndex> Shared<I> {
    /// Applies one watch event.
    pub fn apply(&self, event: &watcher::Event<Pod>) {
        match event {
            watcher::Event::Apply(p) => self.write().upsert(p),
            watcher::Event::Delete(p) => self.write().remove(&p.uid().unwrap_or_default()),
            watcher::Event::Init => {
                *self.building.lock().expect("not poisoned") = Some(I::default())
            }
            watcher::Event::InitApply(p) => {
                if let Some(b) = self.building.lock().expect("not poisoned").as_mut() {
                    b.upsert(p);
                }
            }
            watcher::Event::InitDone => {
                if let Some(b) = self.building.lock().expect("not poisoned").take() {
                    *self.write() = b;
                }
            }
        }
    }

    pub fn read(&self) -> RwLockReadGuard<'_, I> {
        self.live.read().expect("not poisoned")
    }

    fn write(&self) -> std::sync::RwLockWriteGuard<'_, I> {
        self.live.write().expect("not poisoned")
    }
}

/// What the store of every active pod keeps of one: its identity and labels, its Node and
/// phase. What it uses of a Node's room is in [`NodeUsage`], read before the trim; the rest
/// (containers, volumes, conditions) of thousands of foreign pods is not kept.
pub fn trim_to_presence(pod: &mut Pod) {
    let node_name = pod.spec.as_ref().and_then(|s| s.node_name.clone());
    let phase = pod.status.as_ref().and_then(|s| s.phase.clone());
    pod.metadata.annotations = None;
    pod.metadata.owner_references = None;
    pod.spec = Some(k8s_openapi::api::core::v1::PodSpec {
        node_name,
        containers: Vec::new(),
        ..Default::default()
    });
    pod.status = Some(k8s_openapi::api::core::v1::PodStatus {
        phase,
        ..Default::default()
    });
}

/// What the task pods' store drops: what no reconciler reads of a task pod once it exists
/// (volumes, environment, mounts, commands, tolerations, affinity). In k8s-openapi's
/// structs these are most of a pod's memory, and the store holds every task pod, twice as
/// many while a service rolls.
pub fn trim_task(pod: &mut Pod) {
    let Some(spec) = pod.spec.as_mut() else {
        return;
    };
    spec.volumes = None;
    spec.tolerations = None;
    spec.affinity = None;
    spec.topology_spread_constraints = None;
    spec.security_context = None;
    for c in spec
        .containers
        .iter_mut()
        .chain(spec.init_containers.iter_mut().flatten())
    {
        c.env = None;
        c.env_from = None;
        c.volume_mounts = None;
        c.command = None;
        c.args = None;
        c.security_context = None;
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

    /// What the active pods bound to `node` take of it.
    pub fn room_taken(&self, node: &str) -> Option<&OnNode> {
        self.by_node.get(node)
    }
}

impl PodIndex for NodeUsage {
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

impl PodIndex for TasksByOwner {
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
                     "containers": [{"name": "app", "image": "x", "env": [{"name": "A", "value": "1"}],
                                     "readinessProbe": {"exec": {"command": ["true"]}},
                                     "resources": {"requests": {"cpu": "1"}}}]},
            "status": {"phase": "Running", "containerStatuses": [{"name": "app", "image": "x",
                       "imageID": "", "ready": true, "restartCount": 0}]},
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
        // What observing a task reads is kept.
        assert_eq!(p.metadata, before.metadata);
        assert_eq!(p.status, before.status);
        assert_eq!(spec.node_name.as_deref(), Some("n1"));
        assert_eq!(spec.containers[0].name, "app");
        assert!(spec.containers[0].readiness_probe.is_some());
        assert_eq!(
            spec.containers[0].resources,
            before.spec.as_ref().unwrap().containers[0].resources
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
