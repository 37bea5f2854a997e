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
use std::sync::{Mutex, RwLock, RwLockReadGuard};

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
    by_node: HashMap<String, HashMap<String, PodOnNode>>,
    node_of: HashMap<String, String>,
}

impl NodeUsage {
    /// The active pods bound to `node`.
    pub fn on<'a>(&'a self, node: &str) -> impl Iterator<Item = &'a PodOnNode> + 'a {
        self.by_node.get(node).into_iter().flat_map(|m| m.values())
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
                id: uid.clone(),
                group: super::launch::group_of(pod),
                cpu,
                memory,
            },
            host_ports: super::launch::host_ports(pod),
            cluster_task,
        };
        self.by_node
            .entry(node.clone())
            .or_default()
            .insert(uid.clone(), entry);
        self.node_of.insert(uid, node);
    }

    fn remove(&mut self, uid: &str) {
        if let Some(node) = self.node_of.remove(uid)
            && let Some(m) = self.by_node.get_mut(&node)
        {
            m.remove(uid);
            if m.is_empty() {
                self.by_node.remove(&node);
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
            .find(|p| p.task.id == "uid-a")
            .cloned()
            .unwrap();
        assert_eq!((a.task.cpu, a.task.memory), (256, 512));
        assert_eq!(a.task.group, "service:web");
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
