//! Container instances: the Nodes an EcsCluster claims, with ECS attributes and resources,
//! and the pure claim planner (a Node belongs to at most one cluster).

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::Node;
use kube::core::{Selector, SelectorExt};

use super::quantity;

/// The annotation on a Node that records which cluster (`namespace/name`) claimed it.
pub const CLAIM_ANNOTATION: &str = "ecs.kubecs.io/cluster";
/// The annotation recording when the Node was registered to its cluster (RFC 3339).
pub const REGISTERED_AT_ANNOTATION: &str = "ecs.kubecs.io/registered-at";
/// Node labels under this prefix become custom ECS attributes: the label
/// `attribute.ecs.kubecs.io/stack=prod` is the attribute `stack` with value `prod`.
pub const ATTRIBUTE_LABEL_PREFIX: &str = "attribute.ecs.kubecs.io/";

/// The facts about a Node the claim planner needs.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NodeView {
    pub name: String,
    pub labels: BTreeMap<String, String>,
    /// `namespace/name` of the cluster holding it, if any.
    pub claimed_by: Option<String>,
}

impl NodeView {
    pub fn from_node(node: &Node) -> Self {
        Self {
            name: node.metadata.name.clone().unwrap_or_default(),
            labels: node.metadata.labels.clone().unwrap_or_default(),
            claimed_by: node
                .metadata
                .annotations
                .as_ref()
                .and_then(|a| a.get(CLAIM_ANNOTATION))
                .cloned(),
        }
    }
}

/// What a cluster must do about the Nodes.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ClaimPlan {
    /// Matched, unclaimed: claim them.
    pub claim: Vec<String>,
    /// Matched and already ours: registered instances.
    pub owned: Vec<String>,
    /// Ours but no longer matched (or the cluster is going away): release them.
    pub release: Vec<String>,
    /// Matched but held by another cluster: (node, holder).
    pub conflicts: Vec<(String, String)>,
}

/// Decides which Nodes the cluster `me` (`namespace/name`) claims, keeps, releases, or cannot
/// have. With no selector the cluster matches no Node.
pub fn plan_claims(me: &str, selector: Option<&Selector>, nodes: &[NodeView]) -> ClaimPlan {
    let mut plan = ClaimPlan::default();
    for node in nodes {
        let matched = selector.is_some_and(|s| s.matches(&node.labels));
        match (&node.claimed_by, matched) {
            (Some(holder), true) if holder == me => plan.owned.push(node.name.clone()),
            (Some(holder), false) if holder == me => plan.release.push(node.name.clone()),
            (Some(holder), true) => plan.conflicts.push((node.name.clone(), holder.clone())),
            (None, true) => plan.claim.push(node.name.clone()),
            (_, false) => {}
        }
    }
    plan.claim.sort();
    plan.owned.sort();
    plan.release.sort();
    plan.conflicts.sort();
    plan
}

/// A container instance as ECS describes it.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct ContainerInstance {
    /// The Node's name (ECS `ec2InstanceId`).
    pub id: String,
    /// ECS attributes: `ecs.availability-zone`, `ecs.instance-type`, `ecs.os-type`,
    /// `ecs.cpu-architecture`, and custom ones from labels under [`ATTRIBUTE_LABEL_PREFIX`].
    pub attributes: BTreeMap<String, String>,
    /// CPU units (1024 per core) from the Node's allocatable.
    pub registered_cpu: i64,
    /// MiB from the Node's allocatable.
    pub registered_memory: i64,
    /// The Node is Ready (the agent is connected).
    pub agent_connected: bool,
    /// The Node is cordoned: ECS's DRAINING.
    pub draining: bool,
    /// When it was registered to the cluster (RFC 3339), if known.
    pub registered_at: Option<String>,
}

impl ContainerInstance {
    pub fn from_node(node: &Node) -> Self {
        let labels = node.metadata.labels.clone().unwrap_or_default();
        let mut attributes = BTreeMap::new();
        for (attr, label) in [
            ("ecs.availability-zone", "topology.kubernetes.io/zone"),
            ("ecs.instance-type", "node.kubernetes.io/instance-type"),
            ("ecs.os-type", "kubernetes.io/os"),
            ("ecs.cpu-architecture", "kubernetes.io/arch"),
        ] {
            if let Some(v) = labels.get(label) {
                attributes.insert(attr.to_string(), ecs_attribute_value(attr, v));
            }
        }
        for (k, v) in &labels {
            if let Some(name) = k.strip_prefix(ATTRIBUTE_LABEL_PREFIX) {
                attributes.insert(name.to_string(), v.clone());
            }
        }
        let status = node.status.as_ref();
        let allocatable = status.and_then(|s| s.allocatable.as_ref());
        let get = |k: &str| allocatable.and_then(|a| a.get(k)).map(|q| q.0.clone());
        let agent_connected = status
            .and_then(|s| s.conditions.as_ref())
            .is_some_and(|cs| cs.iter().any(|c| c.type_ == "Ready" && c.status == "True"));
        Self {
            id: node.metadata.name.clone().unwrap_or_default(),
            attributes,
            registered_cpu: get("cpu")
                .and_then(|q| quantity::cpu_units(&q))
                .unwrap_or(0),
            registered_memory: get("memory")
                .and_then(|q| quantity::mebibytes(&q))
                .unwrap_or(0),
            agent_connected,
            draining: node
                .spec
                .as_ref()
                .and_then(|s| s.unschedulable)
                .unwrap_or(false),
            registered_at: node
                .metadata
                .annotations
                .as_ref()
                .and_then(|a| a.get(REGISTERED_AT_ANNOTATION))
                .cloned(),
        }
    }

    /// ECS's status of the instance.
    pub fn status(&self) -> crate::api::states::InstanceState {
        use crate::api::states::InstanceState;
        if self.draining {
            InstanceState::Draining
        } else {
            InstanceState::Active
        }
    }
}

/// The resources a pod reserves on its node, in ECS units (CPU units, MiB): pod-level
/// resources when set, else the larger of the containers' sum and the largest init container,
/// plus the pod overhead — what kube-scheduler accounts for.
pub fn pod_requests(pod: &k8s_openapi::api::core::v1::Pod) -> (i64, i64) {
    use k8s_openapi::api::core::v1::ResourceRequirements;
    fn req(r: Option<&ResourceRequirements>) -> (i64, i64) {
        let get = |k: &str| {
            r.and_then(|r| {
                r.requests
                    .as_ref()
                    .and_then(|m| m.get(k))
                    .or_else(|| r.limits.as_ref().and_then(|m| m.get(k)))
            })
            .map(|q| q.0.clone())
        };
        (
            get("cpu")
                .and_then(|q| quantity::cpu_units(&q))
                .unwrap_or(0),
            get("memory")
                .and_then(|q| quantity::mebibytes(&q))
                .unwrap_or(0),
        )
    }
    let Some(spec) = pod.spec.as_ref() else {
        return (0, 0);
    };
    let (mut cpu, mut mem) = if spec.resources.is_some() {
        req(spec.resources.as_ref())
    } else {
        let (c, m) = spec
            .containers
            .iter()
            .map(|c| req(c.resources.as_ref()))
            .fold((0, 0), |a, b| (a.0 + b.0, a.1 + b.1));
        let (ic, im) = spec
            .init_containers
            .iter()
            .flatten()
            .map(|c| req(c.resources.as_ref()))
            .fold((0, 0), |a, b| (a.0.max(b.0), a.1.max(b.1)));
        (c.max(ic), m.max(im))
    };
    if let Some(o) = spec.overhead.as_ref() {
        cpu += o
            .get("cpu")
            .and_then(|q| quantity::cpu_units(&q.0))
            .unwrap_or(0);
        mem += o
            .get("memory")
            .and_then(|q| quantity::mebibytes(&q.0))
            .unwrap_or(0);
    }
    (cpu, mem)
}

/// Whether a pod still holds its node's resources (not Succeeded or Failed).
pub fn pod_is_active(pod: &k8s_openapi::api::core::v1::Pod) -> bool {
    !matches!(
        pod.status.as_ref().and_then(|s| s.phase.as_deref()),
        Some("Succeeded") | Some("Failed")
    )
}

/// ECS spells the architecture `x86_64`/`arm64` where Kubernetes says `amd64`/`arm64`.
fn ecs_attribute_value(attr: &str, v: &str) -> String {
    match (attr, v) {
        ("ecs.cpu-architecture", "amd64") => "x86_64".to_string(),
        _ => v.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::core::v1::{NodeCondition, NodeSpec, NodeStatus};
    use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;

    fn view(name: &str, zone: &str, claimed_by: Option<&str>) -> NodeView {
        NodeView {
            name: name.into(),
            labels: [("topology.kubernetes.io/zone".to_string(), zone.to_string())].into(),
            claimed_by: claimed_by.map(str::to_string),
        }
    }

    fn zone_selector(zones: &[&str]) -> Selector {
        let ls: LabelSelector = serde_json::from_value(serde_json::json!({
            "matchExpressions": [{"key": "topology.kubernetes.io/zone", "operator": "In", "values": zones}]
        }))
        .unwrap();
        ls.try_into().unwrap()
    }

    #[test]
    fn claims_matched_free_nodes_and_reports_conflicts() {
        let nodes = [
            view("a", "z1", None),
            view("b", "z2", Some("ns/other")),
            view("c", "z1", Some("ns/me")),
            view("d", "z3", Some("ns/me")),
            view("e", "z3", None),
        ];
        let plan = plan_claims("ns/me", Some(&zone_selector(&["z1", "z2"])), &nodes);
        assert_eq!(plan.claim, ["a"]);
        assert_eq!(plan.owned, ["c"]);
        assert_eq!(plan.release, ["d"]);
        assert_eq!(plan.conflicts, [("b".to_string(), "ns/other".to_string())]);
    }

    #[test]
    fn no_selector_releases_everything() {
        let nodes = [view("a", "z1", Some("ns/me")), view("b", "z1", None)];
        let plan = plan_claims("ns/me", None, &nodes);
        assert_eq!(plan.release, ["a"]);
        assert!(plan.claim.is_empty() && plan.owned.is_empty());
    }

    #[test]
    fn node_becomes_container_instance_with_ecs_attributes() {
        let node = Node {
            metadata: kube::api::ObjectMeta {
                name: Some("node-1".into()),
                labels: Some(
                    [
                        ("topology.kubernetes.io/zone", "us-east-1a"),
                        ("node.kubernetes.io/instance-type", "m5.large"),
                        ("kubernetes.io/arch", "amd64"),
                        ("kubernetes.io/os", "linux"),
                        ("attribute.ecs.kubecs.io/stack", "prod"),
                    ]
                    .map(|(k, v)| (k.to_string(), v.to_string()))
                    .into(),
                ),
                ..Default::default()
            },
            spec: Some(NodeSpec {
                unschedulable: Some(true),
                ..Default::default()
            }),
            status: Some(NodeStatus {
                allocatable: Some(
                    [("cpu", "2"), ("memory", "8Gi")]
                        .map(|(k, v)| (k.to_string(), Quantity(v.to_string())))
                        .into(),
                ),
                conditions: Some(vec![NodeCondition {
                    type_: "Ready".into(),
                    status: "True".into(),
                    ..Default::default()
                }]),
                ..Default::default()
            }),
        };
        let ci = ContainerInstance::from_node(&node);
        assert_eq!(ci.registered_cpu, 2048);
        assert_eq!(ci.registered_memory, 8192);
        assert!(ci.agent_connected);
        assert_eq!(ci.status(), crate::api::states::InstanceState::Draining);
        assert_eq!(ci.attributes["ecs.availability-zone"], "us-east-1a");
        assert_eq!(ci.attributes["ecs.instance-type"], "m5.large");
        assert_eq!(ci.attributes["ecs.cpu-architecture"], "x86_64");
        assert_eq!(ci.attributes["ecs.os-type"], "linux");
        assert_eq!(ci.attributes["stack"], "prod");
    }
}
