//! What Service and Task owners share: resolving a task definition reference to a registered
//! revision, the container instances of a cluster as the placement engine sees them, and
//! creating task pods — bound to the chosen instance (EC2) or left to kube-scheduler with a
//! zone spread (FARGATE).

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use futures::StreamExt;
use k8s_openapi::api::core::v1::{Pod, TopologySpreadConstraint};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, OwnerReference};
use kube::ResourceExt;
use kube::api::{Api, DeleteParams, PostParams, Preconditions};

use super::taskdef::{TaskDefinitionRef, family_name, family_owner};
use super::{Context, Stores};
use crate::api::common::{CapacityProviderStrategyItem, LaunchType};
use crate::api::labels;
use crate::api::{TaskDefinition, TaskDefinitionSpec};
use crate::placement::capacity::{self, Share};
use crate::placement::engine::{InstanceState, RunningTask, family_group, service_group};
use crate::placement::instance::pod_requests;
use crate::placement::{PlacementOutcome, PlacementPolicy, PlacementRequest};
use crate::taskdef::{self, PodIdentity, RenderOptions};

/// Label of a standalone task's group (spread and `task:group` use it).
pub const TASK_GROUP_LABEL: &str = "ecs.kubecs.io/group";
/// ECS's message for an INACTIVE revision used by something new.
pub const INACTIVE: &str = "TaskDefinition is inactive";

/// A registered revision, ready to render.
#[derive(Clone, Debug)]
pub struct Resolved {
    pub family: String,
    pub revision: i64,
    pub active: bool,
    /// Shared with the index that parsed it.
    pub spec: std::sync::Arc<TaskDefinitionSpec>,
}

impl Resolved {
    /// `family:revision`.
    pub fn name(&self) -> String {
        format!("{}:{}", self.family, self.revision)
    }
}

/// Resolves `family`, `family:N` or an ARN among the namespace's registered revisions.
/// Errors are ECS's ClientException messages.
pub fn resolve(stores: &Stores, ns: &str, reference: &str) -> Result<Resolved, String> {
    let r = TaskDefinitionRef::parse(reference)?;
    let index = stores.registered.read();
    // The family's owner registers its revisions (a later claimant is refused): most often
    // the object named after the family. Every service pass resolves, so that one is read
    // first and the namespace scanned only when it is not the owner.
    let uid_of = |t: &TaskDefinition| t.metadata.uid.clone().unwrap_or_default();
    let owner = stores
        .taskdefs
        .get(&kube::runtime::reflector::ObjectRef::new(&r.family).within(ns))
        .filter(|t| family_name(t) == r.family && index.of(ns, &uid_of(t)).next().is_some())
        .or_else(|| family_owner(&stores.taskdefs, ns, &r.family));
    let td = owner.ok_or_else(|| "Unable to describe task definition.".to_string())?;
    let uid = uid_of(&td);
    let revisions: Vec<_> = index.of(ns, &uid).collect();
    let stored: Vec<_> = revisions.iter().map(|r| r.stored.clone()).collect();
    let n = r.pick(&stored).ok_or_else(|| match r.revision {
        Some(_) => "Unable to describe task definition.".to_string(),
        None => format!(
            "No ACTIVE revision of task definition family '{}'.",
            r.family
        ),
    })?;
    let picked = revisions
        .iter()
        .find(|r| r.stored.revision == n)
        .expect("picked from these");
    let spec = picked
        .spec
        .clone()
        .map_err(|e| format!("stored revision {}:{n} is unreadable: {e}", r.family))?;
    Ok(Resolved {
        family: r.family,
        revision: n,
        active: picked.stored.active,
        spec,
    })
}

/// ECS refuses a launch type the revision is not compatible with.
pub fn check_launch_type(resolved: &Resolved, launch_type: LaunchType) -> Result<(), String> {
    use crate::api::taskdef::Compatibility;
    let (needed, word) = match launch_type {
        LaunchType::Ec2 => (Compatibility::Ec2, "EC2"),
        LaunchType::Fargate => (Compatibility::Fargate, "FARGATE"),
        LaunchType::External => (Compatibility::External, "EXTERNAL"),
        LaunchType::ManagedInstances => (Compatibility::ManagedInstances, "MANAGED_INSTANCES"),
    };
    // ECS validates a revision for Fargate only when it asks for it (requiresCompatibilities).
    let asked = needed != Compatibility::Fargate
        || resolved.spec.requires_compatibilities.contains(&needed);
    if asked && taskdef::compatibilities(&resolved.spec).contains(&needed) {
        Ok(())
    } else {
        Err(format!(
            "Task definition does not support launch_type {word}."
        ))
    }
}

/// What a capacity provider of a strategy launches on.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ProviderKind {
    /// FARGATE or FARGATE_SPOT: kube-scheduler places the task, as for launch type FARGATE.
    Fargate,
    /// A CapacityProvider: its instances (Node names matching its selector).
    Instances(BTreeSet<String>),
}

/// A resolved capacity provider strategy.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Providers {
    pub shares: Vec<Share>,
    pub kinds: BTreeMap<String, ProviderKind>,
}

impl Providers {
    /// The launch type the strategy amounts to (ECS does not mix Fargate and instances).
    pub fn launch_type(&self) -> LaunchType {
        if self.kinds.values().all(|k| *k == ProviderKind::Fargate) {
            LaunchType::Fargate
        } else {
            LaunchType::Ec2
        }
    }

    /// The providers of `n` new tasks, given what runs already: (provider, count) in the
    /// order they were first chosen.
    pub fn groups(&self, running: &BTreeMap<String, u64>, n: usize) -> Vec<(String, usize)> {
        let mut out: Vec<(String, usize)> = Vec::new();
        for p in capacity::assign(&self.shares, running, n) {
            match out.iter_mut().find(|(q, _)| *q == p) {
                Some((_, k)) => *k += 1,
                None => out.push((p, 1)),
            }
        }
        out
    }
}

/// ECS's messages for a strategy it refuses.
pub const NOT_ASSOCIATED: &str = "The specified capacity provider strategy cannot contain a capacity provider that is not associated with the cluster. Associate the capacity provider with the cluster or specify a valid capacity provider and try again.";
pub const MIXED_PROVIDERS: &str = "The capacity provider strategy cannot contain a mix of capacity providers using Auto Scaling groups and Fargate providers. Specify one or the other and try again.";
pub const NO_WEIGHT: &str = "The capacity provider strategy must contain at least one capacity provider with a weight greater than zero or a base greater than zero.";

/// The strategy a service or task launches with: its own, else (without a launch type) its
/// cluster's default; None for the launch type path. Errors are ECS's messages.
pub fn resolve_strategy(
    stores: &Stores,
    ns: &str,
    cluster: &crate::api::EcsCluster,
    own: &[CapacityProviderStrategyItem],
    launch_type: Option<LaunchType>,
) -> Result<Option<Providers>, String> {
    let strategy = if !own.is_empty() {
        own
    } else if launch_type.is_none() {
        &cluster.spec.default_capacity_provider_strategy[..]
    } else {
        &[][..]
    };
    if strategy.is_empty() {
        return Ok(None);
    }
    let shares = capacity::shares(strategy);
    if shares.iter().all(|s| s.weight == 0 && s.base == 0) {
        return Err(NO_WEIGHT.into());
    }
    let mut kinds = BTreeMap::new();
    for s in &shares {
        if !cluster.spec.capacity_providers.contains(&s.provider) {
            return Err(NOT_ASSOCIATED.into());
        }
        let kind = if crate::api::capacity_provider::is_fargate(&s.provider) {
            ProviderKind::Fargate
        } else {
            let found = stores
                .capacity_providers
                .get(&kube::runtime::reflector::ObjectRef::new(&s.provider).within(ns))
                .ok_or_else(|| {
                    format!(
                        "The specified capacity provider '{}' does not exist. Specify a valid capacity provider and try again.",
                        s.provider
                    )
                })?;
            ProviderKind::Instances(provider_nodes(stores, &found.spec.instance_selector)?)
        };
        kinds.insert(s.provider.clone(), kind);
    }
    let fargate = kinds
        .values()
        .filter(|k| **k == ProviderKind::Fargate)
        .count();
    if fargate > 0 && fargate < kinds.len() {
        return Err(MIXED_PROVIDERS.into());
    }
    Ok(Some(Providers { shares, kinds }))
}

/// The Nodes a capacity provider's selector matches.
fn provider_nodes(
    stores: &Stores,
    selector: &k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector,
) -> Result<BTreeSet<String>, String> {
    use kube::core::SelectorExt;
    let selector = kube::core::Selector::try_from(selector.clone())
        .map_err(|e| format!("instanceSelector: {e}"))?;
    Ok(stores
        .nodes
        .state()
        .iter()
        .filter(|n| selector.matches(n.metadata.labels.as_ref().unwrap_or(&BTreeMap::new())))
        .filter_map(|n| n.metadata.name.clone())
        .collect())
}

/// The task group of a pod, as placement knows it.
pub(super) fn group_of(pod: &Pod) -> String {
    let l = pod.labels();
    if let Some(s) = l.get(labels::SERVICE) {
        service_group(s)
    } else if let Some(g) = l.get(TASK_GROUP_LABEL) {
        g.clone()
    } else {
        l.get(labels::FAMILY)
            .map(|f| family_group(f))
            .unwrap_or_default()
    }
}

pub(super) fn host_ports(pod: &Pod) -> Vec<u16> {
    pod.spec
        .iter()
        .flat_map(|s| s.containers.iter())
        .flat_map(|c| c.ports.iter().flatten())
        .filter_map(|p| p.host_port)
        .filter_map(|p| u16::try_from(p).ok())
        .collect()
}

/// Pods placed but not yet seen by the reflector: placement counts them, so two decisions
/// in a row never promise the same room twice. A placement reserves its room here before
/// its pods are created and names them once the API server has: the lock is never held
/// across an API call (it was, and serialized every service's launches while each waiting
/// pass kept its copy of the cluster).
#[derive(Default)]
pub struct Ledger {
    in_flight: Vec<InFlight>,
    next_ticket: u64,
}

struct InFlight {
    ticket: u64,
    /// None while the pod is being created (`generateName`: the server names it).
    name: Option<String>,
    node: String,
    task: RunningTask,
    ports: Vec<u16>,
    at: Instant,
}

impl Ledger {
    /// Promises room on `node` to a pod about to be created.
    fn reserve(&mut self, node: &str, task: RunningTask, ports: Vec<u16>) -> u64 {
        self.next_ticket += 1;
        self.in_flight.push(InFlight {
            ticket: self.next_ticket,
            name: None,
            node: node.to_string(),
            task,
            ports,
            at: Instant::now(),
        });
        self.next_ticket
    }

    /// The pod was created: from now on the reflector's copy replaces the promise.
    fn created(&mut self, ticket: u64, name: &str, uid: &str) {
        if let Some(f) = self.in_flight.iter_mut().find(|f| f.ticket == ticket) {
            f.name = Some(name.to_string());
            f.task.id = uid.into();
        }
    }

    /// The pod was not created (or already existed): the room is not promised.
    fn cancel(&mut self, ticket: u64) {
        self.in_flight.retain(|f| f.ticket != ticket);
    }
}

/// The container instances of cluster `ns/name`, with what runs on them (every active pod on
/// the Node, ours or not, plus in-flight ones).
pub fn instances(
    stores: &Stores,
    ledger: &mut Ledger,
    ns: &str,
    cluster: &str,
) -> Vec<InstanceState> {
    let key = format!("{ns}/{cluster}");
    let mut instances: Vec<InstanceState> = stores.instances.read().of(&key).cloned().collect();
    // What runs on the cluster's Nodes, ours or not (foreign pods use room too), from the
    // index: pods on other Nodes cost nothing.
    {
        let usage = stores.node_usage.read();
        for inst in instances.iter_mut() {
            if let Some(on) = usage.room_taken(&inst.id) {
                inst.run_all(&on.tasks, on.reserved, &on.host_ports);
            }
        }
    }
    // An in-flight pod the index now holds is counted above (or has ended).
    {
        let usage = stores.node_usage.read();
        ledger.in_flight.retain(|f| {
            (f.name.is_none() || !usage.holds(&f.task.id))
                && f.at.elapsed() < Duration::from_secs(60)
        });
    }
    // In Node name order, as the index keeps them.
    for f in &ledger.in_flight {
        if let Ok(i) = instances.binary_search_by(|inst| (*inst.id).cmp(f.node.as_str())) {
            instances[i].run(f.task.clone(), &f.ports);
        }
    }
    instances
}

/// Who a task pod belongs to and what it is.
pub struct PodToRender<'a> {
    pub namespace: &'a str,
    pub cluster: &'a str,
    pub resolved: &'a Resolved,
    /// The spec to render (overrides applied).
    pub spec: &'a TaskDefinitionSpec,
    /// `generateName`, or the exact name (RunTask's deterministic names).
    pub generate_name: Option<String>,
    pub name: Option<String>,
    pub labels: BTreeMap<String, String>,
    pub owner: OwnerReference,
    pub launch_type: LaunchType,
    pub options: &'a RenderOptions,
}

/// Renders the task's pod (not yet placed).
pub fn render(t: &PodToRender) -> Result<Pod, String> {
    let identity = PodIdentity {
        name: t.name.clone(),
        namespace: Some(t.namespace.to_string()),
        cluster: Some(t.cluster.to_string()),
        family: Some(t.resolved.family.clone()),
        revision: Some(t.resolved.revision),
        labels: t.labels.clone(),
        annotations: BTreeMap::new(),
    };
    let rendered = taskdef::render_pod(t.spec, &identity, t.options).map_err(|e| e.0.join(" "))?;
    let mut pod = rendered.pod;
    if t.name.is_none() {
        pod.metadata.name = None;
        pod.metadata.generate_name = t.generate_name.clone();
    }
    pod.metadata.owner_references = Some(vec![t.owner.clone()]);
    if t.launch_type == LaunchType::Fargate
        && let Some(spec) = pod.spec.as_mut()
    {
        // No instance management: kube-scheduler places it, spread across zones.
        spec.topology_spread_constraints = Some(vec![TopologySpreadConstraint {
            max_skew: 1,
            topology_key: "topology.kubernetes.io/zone".into(),
            when_unsatisfiable: "ScheduleAnyway".into(),
            label_selector: Some(LabelSelector {
                match_labels: Some(t.labels.clone()),
                ..Default::default()
            }),
            ..Default::default()
        }]);
    }
    Ok(pod)
}

/// How to render a task of `spec` in `ns`: with the registry pull Secret (kept fresh) when
/// its images live in the kubecs registry.
pub async fn render_options(
    ctx: &Context,
    ns: &str,
    spec: &TaskDefinitionSpec,
) -> Result<RenderOptions, kube::Error> {
    let mut options = RenderOptions::default();
    if let Some(registry) = ctx.registry_pull.as_ref().filter(|r| r.used_by(spec)) {
        registry.ensure(&ctx.client, ns).await?;
        options.registry_pull_secret = Some(super::pullsecret::PULL_SECRET.into());
    }
    Ok(options)
}

/// What one pod reserves, for a placement request.
pub fn request_of(pod: &Pod, group: &str, count: usize, seed: u64) -> PlacementRequest {
    let (cpu, memory) = pod_requests(pod);
    PlacementRequest {
        group: group.to_string(),
        count,
        cpu,
        memory,
        host_ports: host_ports(pod),
        seed,
    }
}

/// How to place a batch of identical tasks.
#[derive(Clone, Copy)]
pub struct Placement<'a> {
    pub cluster: &'a str,
    /// The task group (`service:NAME`, or the RunTask group).
    pub group: &'a str,
    pub count: usize,
    pub policy: &'a PlacementPolicy,
    pub launch_type: LaunchType,
    /// DAEMON: the instances, one task each, decided by the planner.
    pub fixed_nodes: Option<&'a [String]>,
    /// A capacity provider's instances: placement considers only these.
    pub only_on: Option<&'a BTreeSet<String>>,
}

/// What one placement's creates came to. A create that failed does not hide those that
/// succeeded: their owner must expect them, or it would start them again from a store that
/// has not seen them yet (as the API server restarts, say).
#[derive(Debug, Default)]
pub struct Launched {
    /// The pods the API server created.
    pub created: Vec<String>,
    /// Pods whose create failed without saying whether it was committed (the connection
    /// dropped, or the API server answered 5xx): they may exist. Each has its own name, so
    /// creating it again settles it (201 or 409), and never makes a second pod.
    pub uncertain: Vec<Pod>,
    /// When not all fit: why.
    pub outcome: Option<PlacementOutcome>,
    /// The first create that failed.
    pub error: Option<kube::Error>,
}

/// Places `count` copies of `pod` (EC2) and creates them bound to their instances; FARGATE
/// pods are created unbound. A pod with a `generateName` is named here, as the API server
/// would name it, so that a create whose answer was lost can be told apart and retried.
pub async fn place_and_create(ctx: &Context, pod: &Pod, how: &Placement<'_>) -> Launched {
    let Placement {
        cluster,
        group,
        count,
        policy,
        launch_type,
        fixed_nodes,
        only_on,
    } = *how;
    let ns = pod.namespace().unwrap_or_default();
    let api: Api<Pod> = Api::namespaced(ctx.client.clone(), &ns);
    // Decide and reserve under the ledger's lock; create without it.
    let mut outcome = None;
    let placed: Vec<(Option<String>, Option<u64>)> = {
        let mut ledger = ctx.ledger.lock().await;
        let nodes: Vec<Option<String>> = if launch_type == LaunchType::Fargate {
            vec![None; count]
        } else if let Some(fixed) = fixed_nodes {
            fixed.iter().cloned().map(Some).collect()
        } else {
            let mut states = instances(&ctx.stores, &mut ledger, &ns, cluster);
            if let Some(allowed) = only_on {
                states.retain(|s| allowed.contains(&*s.id));
            }
            let seed = Instant::now().elapsed().as_nanos() as u64 ^ count as u64;
            let req = request_of(pod, group, count, seed ^ rand_seed());
            let out = crate::placement::place(&states, policy, &req);
            let nodes = out
                .placed
                .iter()
                .map(|&i| Some(states[i].id.to_string()))
                .collect();
            if out.failure.is_some() {
                outcome = Some(out);
            }
            nodes
        };
        let (cpu, memory) = pod_requests(pod);
        let ports = host_ports(pod);
        let group: std::sync::Arc<str> = group.into();
        nodes
            .into_iter()
            .map(|node| {
                let ticket = node.as_deref().map(|n| {
                    let task = RunningTask {
                        id: "".into(),
                        group: group.clone(),
                        cpu,
                        memory,
                    };
                    ledger.reserve(n, task, ports.clone())
                });
                (node, ticket)
            })
            .collect()
    };
    let results: Vec<(Option<u64>, Pod, Result<Pod, kube::Error>)> = futures::stream::iter(placed)
        .map(|(node, ticket)| {
            let mut p = pod.clone();
            if let Some(n) = node {
                p.spec.as_mut().expect("rendered").node_name = Some(n);
            }
            if p.metadata.name.is_none()
                && let Some(prefix) = p.metadata.generate_name.take()
            {
                p.metadata.name = Some(generated_name(&prefix));
            }
            let api = api.clone();
            async move {
                let result = api.create(&PostParams::default(), &p).await;
                (ticket, p, result)
            }
        })
        .buffered(CREATES_AT_ONCE)
        .collect()
        .await;
    let mut ledger = ctx.ledger.lock().await;
    let mut launched = Launched {
        outcome,
        ..Default::default()
    };
    for (ticket, sent, result) in results {
        match result {
            Ok(made) => {
                let name = made.name_any();
                if let Some(t) = ticket {
                    ledger.created(t, &name, &made.uid().unwrap_or_default());
                }
                launched.created.push(name);
            }
            // RunTask's deterministic names: created before a crash (the reflector counts
            // it). A generated name: taken by another pod; this one was not created.
            Err(kube::Error::Api(s)) if s.code == 409 => {
                ticket.into_iter().for_each(|t| ledger.cancel(t))
            }
            Err(e) => {
                ticket.into_iter().for_each(|t| ledger.cancel(t));
                if may_have_happened(&e) {
                    launched.uncertain.push(sent);
                }
                launched.error.get_or_insert(e);
            }
        }
    }
    launched
}

/// Whether a failed write may still have been committed: the answer was lost (a dropped
/// connection, a timeout) or the API server failed after it began (5xx). A 4xx refusal, or
/// a connection that never opened, wrote nothing.
pub fn may_have_happened(e: &kube::Error) -> bool {
    match e {
        kube::Error::Api(s) => s.code >= 500,
        other => !is_connect_error(other),
    }
}

/// The request never reached the API server: the connection was refused or never opened.
fn is_connect_error(e: &kube::Error) -> bool {
    use std::error::Error as _;
    let mut source: Option<&(dyn std::error::Error + 'static)> = e.source();
    while let Some(s) = source {
        if let Some(h) = s.downcast_ref::<hyper_util::client::legacy::Error>()
            && h.is_connect()
        {
            return true;
        }
        source = s.source();
    }
    false
}

/// `prefix` and five characters from the API server's own `generateName` alphabet (no
/// vowels, no look-alikes), from the OS's randomness.
pub fn generated_name(prefix: &str) -> String {
    const ALPHABET: &[u8] = b"bcdfghjklmnpqrstvwxz2456789";
    let mut bytes = [0u8; 5];
    getrandom::fill(&mut bytes).expect("the OS has randomness");
    let suffix: String = bytes
        .iter()
        .map(|b| ALPHABET[*b as usize % ALPHABET.len()] as char)
        .collect();
    format!("{prefix}{suffix}")
}

/// Pods of one placement created at once: a service's new tasks cost about one round trip,
/// not one each, while the API server is not flooded by a large batch.
const CREATES_AT_ONCE: usize = 8;

/// Stops a task: deletes its pod (only that incarnation, by uid).
pub async fn stop(ctx: &Context, ns: &str, name: &str, uid: &str) -> Result<(), kube::Error> {
    let api: Api<Pod> = Api::namespaced(ctx.client.clone(), ns);
    let dp = DeleteParams {
        preconditions: (!uid.is_empty()).then(|| Preconditions {
            uid: Some(uid.to_string()),
            resource_version: None,
        }),
        ..Default::default()
    };
    match api.delete(name, &dp).await {
        Ok(_) => Ok(()),
        Err(kube::Error::Api(s)) if s.code == 404 || s.code == 409 => Ok(()),
        Err(e) => Err(e),
    }
}

/// A seed that differs between calls and processes: random placement ties must not repeat.
fn rand_seed() -> u64 {
    use std::hash::{BuildHasher, Hasher};
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u128(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap_or_default()
            .as_nanos(),
    );
    h.finish()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::controllers::testing::{World, failure, node};
    use crate::placement::TaskKind;
    use serde_json::json;

    fn task(cpu: i64, memory: i64) -> RunningTask {
        RunningTask {
            id: "".into(),
            group: "service:web".into(),
            cpu,
            memory,
        }
    }

    fn room(world: &World, ledger: &mut Ledger) -> (i64, i64) {
        let states = instances(&world.ctx.stores, ledger, "ns", "c");
        (states[0].remaining_cpu, states[0].remaining_memory)
    }

    fn task_pod(name: &str, node: Option<&str>) -> Pod {
        serde_json::from_value(json!({
            "metadata": {"name": name, "namespace": "ns", "uid": format!("uid-{name}"),
                         "labels": {"ecs.kubecs.io/service": "web"}},
            "spec": {"nodeName": node, "containers": [{"name": "app", "image": "app",
                "resources": {"requests": {"cpu": "1", "memory": "1Gi"}}}]},
            "status": {"phase": "Pending"},
        }))
        .expect("a pod")
    }

    fn taskdef(world: &mut World, name: &str, family: Option<&str>, created: &str, uid: &str) {
        world.taskdef(
            serde_json::from_value(json!({
                "apiVersion": "ecs.kubecs.io/v1alpha1", "kind": "TaskDefinition",
                "metadata": {"name": name, "namespace": "ns", "uid": uid, "creationTimestamp": created},
                "spec": {"family": family,
                         "containerDefinitions": [{"name": "app", "image": name, "memory": 256}]},
            }))
            .expect("a TaskDefinition"),
        );
    }

    fn revision(world: &mut World, owner_uid: &str, n: i64, image: &str) {
        world.revision(
            serde_json::from_value(json!({
                "metadata": {"name": format!("{owner_uid}-{n}"), "namespace": "ns",
                             "uid": format!("rev-{owner_uid}-{n}"),
                             "labels": {super::super::taskdef::OWNER_UID_LABEL: owner_uid}},
                "revision": n,
                "data": {"family": "web",
                         "containerDefinitions": [{"name": "app", "image": image, "memory": 256}]},
            }))
            .expect("a ControllerRevision"),
        );
    }

    #[tokio::test]
    async fn a_family_resolves_to_the_object_that_registered_it() {
        let mut world = World::plain();
        // The object named after the family owns it: read without a scan.
        taskdef(&mut world, "web", None, "2026-01-02T00:00:00Z", "td-web");
        revision(&mut world, "td-web", 1, "web:1");
        let r = resolve(&world.ctx.stores, "ns", "web").expect("resolves");
        assert_eq!(r.name(), "web:1");
        assert_eq!(
            r.spec.container_definitions[0].image.as_deref(),
            Some("web:1")
        );

        // An older object claims the family under another name: it owns it, and the one
        // named `web` (refused, FamilyConflict) registered nothing.
        let mut world = World::plain();
        taskdef(&mut world, "web", None, "2026-01-02T00:00:00Z", "td-web");
        taskdef(
            &mut world,
            "shop-web",
            Some("web"),
            "2026-01-01T00:00:00Z",
            "td-shop",
        );
        revision(&mut world, "td-shop", 4, "shop:4");
        let r = resolve(&world.ctx.stores, "ns", "web:4").expect("resolves");
        assert_eq!(
            r.spec.container_definitions[0].image.as_deref(),
            Some("shop:4")
        );
        assert_eq!(
            resolve(&world.ctx.stores, "ns", "web:5").expect_err("no such revision"),
            "Unable to describe task definition."
        );
        assert_eq!(
            resolve(&world.ctx.stores, "ns", "api").expect_err("no such family"),
            "Unable to describe task definition."
        );
    }

    #[tokio::test]
    async fn room_is_promised_from_reservation_until_the_store_holds_the_pod() {
        let mut world = World::plain();
        world.node(node("n1", "us-east-1a", Some("ns/c")));
        let mut ledger = Ledger::default();
        assert_eq!(room(&world, &mut ledger), (2048, 4096));
        let a = ledger.reserve("n1", task(1024, 1024), vec![]);
        let b = ledger.reserve("n1", task(512, 512), vec![]);
        assert_eq!(room(&world, &mut ledger), (512, 2560));
        // Not created: the room is free again.
        ledger.cancel(b);
        assert_eq!(room(&world, &mut ledger), (1024, 3072));
        // Created and named, not yet seen: still promised.
        ledger.created(a, "web-1", "uid-web-1");
        assert_eq!(room(&world, &mut ledger), (1024, 3072));
        // Seen by the reflector: counted once, from the store.
        world.pod(task_pod("web-1", Some("n1")));
        assert_eq!(room(&world, &mut ledger), (1024, 3072));
        assert!(ledger.in_flight.is_empty());
    }

    #[tokio::test]
    async fn a_failed_create_gives_its_room_back_and_fails_the_placement() {
        let mut world = World::new(Box::new(|call| {
            (call.method == axum::http::Method::POST && call.path.ends_with("/pods"))
                .then(|| failure(500, "InternalError", "etcd is down"))
        }));
        world.node(node("n1", "us-east-1a", Some("ns/c")));
        let policy = PlacementPolicy::new(TaskKind::Service, &[], &[], &[]).expect("valid");
        let how = Placement {
            cluster: "c",
            group: "service:web",
            count: 2,
            policy: &policy,
            launch_type: LaunchType::Ec2,
            fixed_nodes: None,
            only_on: None,
        };
        let mut pod = task_pod("web-x", None);
        pod.metadata.name = None;
        pod.metadata.generate_name = Some("web-".into());
        let result = place_and_create(&world.ctx, &pod, &how).await;
        assert!(result.error.is_some(), "{result:?}");
        assert!(result.created.is_empty());
        // A 500 may have been committed: both pods are uncertain, each with its own name.
        assert_eq!(result.uncertain.len(), 2);
        let names: BTreeSet<String> = result.uncertain.iter().map(|p| p.name_any()).collect();
        assert_eq!(names.len(), 2);
        assert!(
            names.iter().all(|n| n.len() == 9 && n.starts_with("web-")),
            "{names:?}"
        );
        let mut ledger = world.ctx.ledger.lock().await;
        assert!(ledger.in_flight.is_empty());
        assert_eq!(room(&world, &mut ledger), (2048, 4096));
    }
}
