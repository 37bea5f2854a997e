//! Indexes of the pods the reflectors hold, kept by the watch events themselves, so that a
//! reconcile reads what concerns it instead of scanning every pod in the cluster:
//! - [`NodeUsage`]: what runs on each Node (the room it uses, its task group, its host
//!   ports), for placement and cluster status; pods on other Nodes cost nothing;
//! - [`TaskPods`]: every task pod kubecs made, in any phase, as a [`TaskPod`] (what its owner
//!   and its cluster read), by owner and by name: the operator keeps no task `Pod`.
//!
//! Each is a [`WatchIndex`] kept by its watch (see `watch_index`).

use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;

use k8s_openapi::api::core::v1::Pod;
use kube::ResourceExt;
use kube::runtime::reflector::ObjectRef;

pub use super::watch_index::{Shared, WatchIndex};
use crate::deploy::TaskPod;
use crate::deploy::task_pod::pod_is_running;
use crate::placement::engine::RunningTask;
use crate::placement::instance::{pod_is_active, pod_requests};

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
                pod_is_running(pod),
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

/// Every task pod, as a [`TaskPod`], by uid; and the uids of each controlling owner's
/// (a Service or a Task) and by `namespace/name`.
#[derive(Default)]
pub struct TaskPods {
    by_uid: HashMap<String, Arc<TaskPod>>,
    by_owner: HashMap<String, BTreeSet<String>>,
    by_name: HashMap<(String, String), String>,
}

impl TaskPods {
    /// The task pods whose controller is the object with `owner_uid`.
    pub fn of(&self, owner_uid: &str) -> Vec<Arc<TaskPod>> {
        self.by_owner
            .get(owner_uid)
            .into_iter()
            .flatten()
            .filter_map(|uid| self.by_uid.get(uid).cloned())
            .collect()
    }

    /// The task pod `ns/name`.
    pub fn named(&self, ns: &str, name: &str) -> Option<&Arc<TaskPod>> {
        self.by_name
            .get(&(ns.to_string(), name.to_string()))
            .and_then(|uid| self.by_uid.get(uid))
    }

    /// The task pod with `uid`.
    pub fn get(&self, uid: &str) -> Option<&Arc<TaskPod>> {
        self.by_uid.get(uid)
    }

    /// Every task pod.
    pub fn iter(&self) -> impl Iterator<Item = &Arc<TaskPod>> {
        self.by_uid.values()
    }

    /// The task pods that count in cluster `ns/cluster`, in any phase.
    pub fn in_cluster<'a>(
        &'a self,
        ns: &'a str,
        cluster: &'a str,
    ) -> impl Iterator<Item = &'a Arc<TaskPod>> + 'a {
        self.iter()
            .filter(move |t| t.namespace == ns && t.cluster.as_deref() == Some(cluster))
    }
}

/// The controlling owner of task pod `t`, when it is a `K` (a Service or a Task).
pub fn owner_of_kind<K>(t: &TaskPod) -> Option<ObjectRef<K>>
where
    K: kube::Resource<DynamicType = ()>,
{
    let owner = t.owner.as_ref().filter(|o| o.kind == K::kind(&()))?;
    Some(ObjectRef::new(&owner.name).within(&t.namespace))
}

impl Shared<TaskPods> {
    /// Applies a watch event of a task pod and answers the task pods it concerns, for the
    /// controllers it triggers: the one applied or deleted (as the deletion last saw it), or
    /// after a relist every one.
    pub fn apply_task_event(
        &self,
        event: &kube::runtime::watcher::Event<Pod>,
    ) -> Vec<Arc<TaskPod>> {
        use kube::runtime::watcher::Event;
        self.apply(event);
        match event {
            Event::Apply(pod) => self
                .read()
                .get(pod.uid().as_deref().unwrap_or_default())
                .cloned()
                .into_iter()
                .collect(),
            Event::Delete(pod) => vec![Arc::new(TaskPod::from_pod(pod))],
            Event::InitDone => self.read().iter().cloned().collect(),
            Event::Init | Event::InitApply(_) => Vec::new(),
        }
    }
}

impl WatchIndex<Pod> for TaskPods {
    fn upsert(&mut self, pod: &Pod) {
        let task = TaskPod::from_pod(pod);
        self.remove(&task.uid);
        if let Some(owner) = &task.owner {
            self.by_owner
                .entry(owner.uid.clone())
                .or_default()
                .insert(task.uid.clone());
        }
        self.by_name.insert(
            (task.namespace.clone(), task.name.clone()),
            task.uid.clone(),
        );
        self.by_uid.insert(task.uid.clone(), Arc::new(task));
    }

    fn remove(&mut self, uid: &str) {
        let Some(task) = self.by_uid.remove(uid) else {
            return;
        };
        let key = (task.namespace.clone(), task.name.clone());
        if self.by_name.get(&key).is_some_and(|u| u == uid) {
            self.by_name.remove(&key);
        }
        if let Some(owner) = &task.owner
            && let Some(s) = self.by_owner.get_mut(&owner.uid)
        {
            s.remove(uid);
            if s.is_empty() {
                self.by_owner.remove(&owner.uid);
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
        let running = pod_is_running(&pod("a", Some("n1"), "Running", "s1"));
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
    fn a_task_event_names_the_task_pods_it_concerns_and_their_owners() {
        let index = Shared::<TaskPods>::default();
        let names = |v: Vec<Arc<TaskPod>>| v.iter().map(|t| t.name.clone()).collect::<Vec<_>>();
        let a = pod("a", Some("n1"), "Running", "s1");
        assert_eq!(
            names(index.apply_task_event(&watcher::Event::Apply(a.clone()))),
            ["a"]
        );
        // A deletion concerns the pod as it last was: its owner learns that it is gone.
        let gone = index.apply_task_event(&watcher::Event::Delete(a.clone()));
        assert_eq!(names(gone.clone()), ["a"]);
        let owner = owner_of_kind::<crate::api::Service>(&gone[0]).expect("a Service owns it");
        assert_eq!(
            (owner.name.as_str(), owner.namespace.as_deref()),
            ("web", Some("shop"))
        );
        assert_eq!(owner_of_kind::<crate::api::Task>(&gone[0]), None);
        // A relist concerns every pod once it is complete, and none before.
        assert!(index.apply_task_event(&watcher::Event::Init).is_empty());
        for n in ["b", "c"] {
            let e = watcher::Event::InitApply(pod(n, None, "Pending", "s2"));
            assert!(index.apply_task_event(&e).is_empty());
        }
        let mut all = names(index.apply_task_event(&watcher::Event::InitDone));
        all.sort();
        assert_eq!(all, ["b", "c"]);
    }

    #[test]
    fn a_relist_replaces_the_index_only_when_complete() {
        let index = Shared::<TaskPods>::default();
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
        assert!(index.read().named("shop", "gone").is_none());
        assert_eq!(
            index.read().named("shop", "b").map(|t| t.uid.clone()),
            Some("uid-b".into())
        );
        // A deleted pod leaves every view of the index.
        index.apply(&watcher::Event::Delete(pod(
            "b",
            Some("n1"),
            "Running",
            "s2",
        )));
        assert!(index.read().named("shop", "b").is_none());
        assert!(index.read().get("uid-b").is_none());
        assert_eq!(names("s2"), Vec::<String>::new());
        assert_eq!(index.read().iter().count(), 1);
    }
}
