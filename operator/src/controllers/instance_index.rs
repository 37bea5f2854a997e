//! The container instances of each cluster, as placement starts from them: parsed once when
//! their Node changes, not on every placement (parsing every Node of a cluster on every
//! service pass was a fifth of the operator's CPU at 10,000 tasks).

use std::collections::{BTreeMap, HashMap};

use k8s_openapi::api::core::v1::Node;
use kube::ResourceExt;

use super::watch_index::WatchIndex;
use crate::placement::ContainerInstance;
use crate::placement::engine::InstanceState;
use crate::placement::instance::CLAIM_ANNOTATION;

/// Each cluster's usable instances (claimed, with no taint a task pod does not tolerate),
/// idle: what runs on them is added by the reader, from `pod_index::NodeUsage`.
#[derive(Default)]
pub struct InstancesByCluster {
    /// `namespace/name` of the cluster → Node name → the instance.
    by_cluster: HashMap<String, BTreeMap<String, InstanceState>>,
    /// Node uid → (cluster, Node name).
    placed: HashMap<String, (String, String)>,
}

impl InstancesByCluster {
    /// The usable instances of cluster `key` (`namespace/name`), in Node name order.
    pub fn of<'a>(&'a self, key: &str) -> impl Iterator<Item = &'a InstanceState> + 'a {
        self.by_cluster
            .get(key)
            .into_iter()
            .flat_map(|m| m.values())
    }
}

impl WatchIndex<Node> for InstancesByCluster {
    fn upsert(&mut self, node: &Node) {
        let uid = node.uid().unwrap_or_default();
        self.remove(&uid);
        let Some(cluster) = node.annotations().get(CLAIM_ANNOTATION) else {
            return;
        };
        if untolerated_taint(node) {
            return;
        }
        let name = node.name_any();
        let instance = InstanceState::from_container_instance(&ContainerInstance::from_node(node));
        self.by_cluster
            .entry(cluster.clone())
            .or_default()
            .insert(name.clone(), instance);
        self.placed.insert(uid, (cluster.clone(), name));
    }

    fn remove(&mut self, uid: &str) {
        if let Some((cluster, name)) = self.placed.remove(uid)
            && let Some(m) = self.by_cluster.get_mut(&cluster)
        {
            m.remove(&name);
            if m.is_empty() {
                self.by_cluster.remove(&cluster);
            }
        }
    }
}

/// Taints a task pod does not tolerate keep kubecs from binding there, as kube-scheduler would.
fn untolerated_taint(node: &Node) -> bool {
    node.spec
        .as_ref()
        .and_then(|s| s.taints.as_ref())
        .is_some_and(|ts| {
            ts.iter().any(|t| {
                matches!(t.effect.as_str(), "NoSchedule" | "NoExecute")
                    && t.key != "node.kubernetes.io/unschedulable"
            })
        })
}

#[cfg(test)]
mod tests {
    use kube::runtime::watcher;
    use serde_json::json;

    use super::super::watch_index::Shared;
    use super::*;

    fn node(name: &str, cluster: Option<&str>, taint: Option<&str>, memory: &str) -> Node {
        let mut n = crate::controllers::testing::node(name, "z1", cluster);
        n.metadata.uid = Some(format!("uid-{name}"));
        n.status.as_mut().unwrap().allocatable = Some(
            [("cpu", "2"), ("memory", memory)]
                .map(|(k, v)| {
                    (
                        k.to_string(),
                        k8s_openapi::apimachinery::pkg::api::resource::Quantity(v.into()),
                    )
                })
                .into(),
        );
        if let Some(effect) = taint {
            n.spec = Some(
                serde_json::from_value(json!({"taints": [{"key": "k", "effect": effect}]}))
                    .unwrap(),
            );
        }
        n
    }

    fn names(index: &Shared<InstancesByCluster>, key: &str) -> Vec<(String, i64)> {
        index
            .read()
            .of(key)
            .map(|i| (i.id.to_string(), i.remaining_memory))
            .collect()
    }

    #[test]
    fn a_node_is_an_instance_of_the_cluster_that_claims_it_while_it_is_usable() {
        let index = Shared::<InstancesByCluster>::default();
        for n in [
            node("b", Some("ns/c"), None, "4Gi"),
            node("a", Some("ns/c"), None, "4Gi"),
            node("x", Some("ns/other"), None, "4Gi"),
            node("free", None, None, "4Gi"),
            node("tainted", Some("ns/c"), Some("NoSchedule"), "4Gi"),
            node("preferred", Some("ns/c"), Some("PreferNoSchedule"), "4Gi"),
        ] {
            index.apply(&watcher::Event::Apply(n));
        }
        assert_eq!(
            names(&index, "ns/c"),
            vec![
                ("a".into(), 4096),
                ("b".into(), 4096),
                ("preferred".into(), 4096)
            ]
        );
        assert_eq!(names(&index, "ns/other"), vec![("x".into(), 4096)]);
        // A change is parsed again; a release, a new taint or a deletion removes it.
        index.apply(&watcher::Event::Apply(node("a", Some("ns/c"), None, "8Gi")));
        index.apply(&watcher::Event::Apply(node("b", None, None, "4Gi")));
        index.apply(&watcher::Event::Apply(node(
            "preferred",
            Some("ns/c"),
            Some("NoExecute"),
            "4Gi",
        )));
        index.apply(&watcher::Event::Delete(node(
            "x",
            Some("ns/other"),
            None,
            "4Gi",
        )));
        assert_eq!(names(&index, "ns/c"), vec![("a".into(), 8192)]);
        assert!(names(&index, "ns/other").is_empty());
        // Moved to another cluster.
        index.apply(&watcher::Event::Apply(node(
            "a",
            Some("ns/other"),
            None,
            "8Gi",
        )));
        assert!(names(&index, "ns/c").is_empty());
        assert_eq!(names(&index, "ns/other"), vec![("a".into(), 8192)]);
    }
}
