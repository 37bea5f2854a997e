//! Which Node events matter to ECS clusters and services. A kubelet (or KWOK) rewrites each
//! Node's status every few seconds only to renew heartbeat times; with hundreds of Nodes, those
//! events would reconcile every service of a cluster many times a second. What a container
//! instance is to ECS (its attributes, claim, room, readiness, draining, taints) is
//! fingerprinted, and only a changed fingerprint is passed on.

use std::collections::HashMap;
use std::hash::{DefaultHasher, Hash, Hasher};
use std::sync::Mutex;

use k8s_openapi::api::core::v1::Node;
use kube::ResourceExt;

/// The last fingerprint seen of each Node.
#[derive(Default)]
pub struct NodeChanges {
    seen: Mutex<HashMap<String, u64>>,
}

impl NodeChanges {
    /// Whether `node` differs, in what ECS sees of it, from the last time it was seen here.
    pub fn changed(&self, node: &Node) -> bool {
        let print = fingerprint(node);
        let mut seen = self.seen.lock().expect("not poisoned");
        seen.insert(node.name_any(), print) != Some(print)
    }
}

/// Labels, annotations, spec (unschedulable, taints), room, and each condition's status:
/// everything but heartbeat and transition times.
fn fingerprint(node: &Node) -> u64 {
    let mut h = DefaultHasher::new();
    node.labels().hash(&mut h);
    node.annotations().hash(&mut h);
    node.metadata.deletion_timestamp.is_some().hash(&mut h);
    if let Some(spec) = &node.spec {
        spec.unschedulable.hash(&mut h);
        for t in spec.taints.iter().flatten() {
            (&t.key, &t.value, &t.effect).hash(&mut h);
        }
    }
    if let Some(status) = &node.status {
        for m in [&status.allocatable, &status.capacity]
            .into_iter()
            .flatten()
        {
            for (k, v) in m {
                (k, &v.0).hash(&mut h);
            }
        }
        for c in status.conditions.iter().flatten() {
            (&c.type_, &c.status).hash(&mut h);
        }
        for a in status.addresses.iter().flatten() {
            (&a.type_, &a.address).hash(&mut h);
        }
    }
    h.finish()
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn node(heartbeat: &str, ready: &str, claim: Option<&str>) -> Node {
        let mut annotations = serde_json::Map::new();
        if let Some(c) = claim {
            annotations.insert("ecs.kubecs.io/cluster".into(), json!(c));
        }
        serde_json::from_value(json!({
            "metadata": {"name": "n1", "labels": {"type": "kwok"}, "annotations": annotations},
            "status": {"allocatable": {"cpu": "2", "memory": "4Gi"},
                       "conditions": [{"type": "Ready", "status": ready,
                                       "lastHeartbeatTime": heartbeat}]},
        }))
        .expect("a Node")
    }

    #[test]
    fn a_heartbeat_is_not_a_change_but_readiness_and_claims_are() {
        let changes = NodeChanges::default();
        assert!(changes.changed(&node("2026-01-01T00:00:00Z", "True", None)));
        assert!(!changes.changed(&node("2026-01-01T00:00:20Z", "True", None)));
        assert!(changes.changed(&node("2026-01-01T00:00:40Z", "False", None)));
        assert!(changes.changed(&node("2026-01-01T00:00:40Z", "False", Some("shop/prod"))));
        assert!(!changes.changed(&node("2026-01-01T00:01:00Z", "False", Some("shop/prod"))));
    }
}
