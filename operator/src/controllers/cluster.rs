//! The EcsCluster controller: claims the Nodes its selector matches as container instances,
//! reports ECS's counts, and holds deletion while services or tasks remain.

use crate::api::states::ClusterState;
use crate::deploy::TaskPod;
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use super::events::{Event, EventType};
use futures::StreamExt;
use k8s_openapi::api::core::v1::Node;
use k8s_openapi::jiff::Timestamp;
use kube::api::{Api, Patch, PatchParams};
use kube::core::Selector;
use kube::runtime::controller::{Action, Controller};
use kube::runtime::finalizer::{Event as Finalizer, finalizer};
use kube::runtime::reflector::ObjectRef;
use kube::{Resource, ResourceExt};
use serde_json::json;
use tracing::{info, warn};

use super::conditions::{condition, merge};
use super::{Context, Error, Result};
use crate::api::cluster::{ConflictingInstance, ContainerInstanceSummary, InstanceResources};
use crate::api::common::condition as cond;
use crate::api::{EcsCluster, EcsClusterStatus, Service};
use crate::arn;
use crate::placement::instance::{CLAIM_ANNOTATION, REGISTERED_AT_ANNOTATION};
use crate::placement::{ContainerInstance, NodeView, plan_claims};

/// Holds deletion until no service or task uses the cluster, then releases its instances.
pub const FINALIZER: &str = "ecs.kubecs.io/cluster-protection";
const CONTROLLER: &str = "ecscluster";
/// How many container instances status lists; the counts stay exact.
const MAX_LISTED_INSTANCES: usize = 100;
/// ECS's word when a cluster still has services.
pub const HAS_SERVICES: &str = "The Cluster cannot be deleted while Services are active.";
/// ECS's word when a cluster still has tasks.
pub const HAS_TASKS: &str = "The Cluster cannot be deleted while Tasks are active.";

/// `namespace/name`: how a Node's claim annotation names its cluster.
fn cluster_key(c: &EcsCluster) -> String {
    format!("{}/{}", c.namespace().unwrap_or_default(), c.name_any())
}

/// The cluster a Service or Task names (ECS's default cluster is `default`).
pub fn cluster_name(spec_cluster: Option<&str>) -> &str {
    spec_cluster
        .map(|c| c.rsplit('/').next().unwrap_or(c))
        .unwrap_or("default")
}

/// Runs the controller until the stream ends.
pub async fn run(
    ctx: Arc<Context>,
    cluster_events: impl futures::Stream<Item = Arc<EcsCluster>> + Send + 'static,
    node_events: impl futures::Stream<Item = Arc<Node>> + Send + 'static,
    service_events: impl futures::Stream<Item = Arc<Service>> + Send + 'static,
    task_events: impl futures::Stream<Item = Arc<TaskPod>> + Send + 'static,
) {
    let store = ctx.stores.clusters.clone();
    // A Node change can concern any cluster: its holder, or any cluster whose selector now
    // matches it. Clusters are few; Nodes many.
    let node_store = store.clone();
    let node_changes = super::node_changes::NodeChanges::default();
    Controller::for_shared_stream(cluster_events, store)
        .watches_shared_stream(node_events, move |node: Arc<Node>| {
            if !node_changes.changed(&node) {
                return Vec::new();
            }
            node_store
                .state()
                .iter()
                .map(|c| ObjectRef::from(c.as_ref()))
                .collect::<Vec<_>>()
        })
        .watches_shared_stream(service_events, |svc: Arc<Service>| {
            let ns = svc.namespace()?;
            Some(ObjectRef::new(cluster_name(svc.spec.cluster.as_deref())).within(&ns))
        })
        // The cluster's counts follow its tasks (throttled to a pass a second).
        .reconcile_on(task_events.filter_map(|t| {
            futures::future::ready(
                t.cluster
                    .as_deref()
                    .map(|c| ObjectRef::new(c).within(&t.namespace)),
            )
        }))
        .shutdown_on_signal()
        .run(reconcile, error_policy, ctx)
        .for_each(|res| async move {
            match res {
                // Deleted while queued: nothing to do.
                Err(kube::runtime::controller::Error::ObjectNotFound(_)) => {}
                Err(e) => warn!(error = %e, "ecscluster reconcile failed"),
                Ok(_) => {}
            }
        })
        .await;
}

async fn reconcile(cluster: Arc<EcsCluster>, ctx: Arc<Context>) -> Result<Action> {
    let ns = cluster.namespace().unwrap_or_default();
    // Every service event of the cluster triggers it: one pass a second is enough for its
    // counts. Deletion and spec changes go at once.
    if cluster.meta().deletion_timestamp.is_none()
        && cluster.finalizers().iter().any(|f| f == FINALIZER)
        && let Some(wait) = ctx.throttled(
            &format!("{ns}/EcsCluster/{}", cluster.name_any()),
            cluster.metadata.generation,
            Duration::from_secs(1),
        )
    {
        return Ok(Action::requeue(wait));
    }
    let _timer = ctx.metrics.reconciled(CONTROLLER);
    let api: Api<EcsCluster> = Api::namespaced(ctx.client.clone(), &ns);
    finalizer(&api, FINALIZER, cluster, |event| async {
        match event {
            Finalizer::Apply(c) => apply(&c, &ctx).await,
            Finalizer::Cleanup(c) => cleanup(&c, &ctx).await,
        }
    })
    .await
    .map_err(|e| Error::Finalizer(Box::new(e)))
}

fn error_policy(_c: Arc<EcsCluster>, err: &Error, ctx: Arc<Context>) -> Action {
    ctx.metrics.failed(CONTROLLER, err.kind());
    match err {
        Error::Finalizer(inner)
            if matches!(
                **inner,
                kube::runtime::finalizer::Error::CleanupFailed(Error::DeletionBlocked(_))
            ) =>
        {
            Action::requeue(Duration::from_secs(15))
        }
        _ => Action::requeue(Duration::from_secs(5)),
    }
}

/// Claims and releases Nodes, then writes status.
async fn apply(cluster: &EcsCluster, ctx: &Context) -> Result<Action> {
    let me = cluster_key(cluster);
    let selector: Option<Selector> = match cluster
        .spec
        .instance_selector
        .clone()
        .map(Selector::try_from)
    {
        Some(Ok(s)) => Some(s),
        Some(Err(e)) => return Err(Error::InvalidSpec(format!("instanceSelector: {e}"))),
        None => None,
    };
    let views: Vec<NodeView> = ctx
        .stores
        .nodes
        .state()
        .iter()
        .map(|n| NodeView::from_node(n))
        .collect();
    let plan = plan_claims(&me, selector.as_ref(), &views);
    let nodes: Api<Node> = Api::all(ctx.client.clone());
    let mut owned = plan.owned.clone();
    let mut conflicts = plan.conflicts.clone();
    for name in &plan.claim {
        match claim_node(&nodes, ctx, name, &me).await? {
            Claim::Won => {
                info!(cluster = %me, node = %name, "registered container instance");
                owned.push(name.clone());
            }
            Claim::Lost(holder) => conflicts.push((name.clone(), holder)),
        }
    }
    for name in &plan.release {
        release_node(&nodes, name, &me).await?;
    }
    owned.sort();
    write_status(cluster, ctx, &owned, &conflicts, None).await?;
    Ok(Action::requeue(Duration::from_secs(300)))
}

enum Claim {
    Won,
    Lost(String),
}

/// First writer wins: the claim is a merge patch guarded by the Node's resourceVersion, so two
/// clusters (or two operators) racing for one Node cannot both get it.
async fn claim_node(nodes: &Api<Node>, ctx: &Context, name: &str, me: &str) -> Result<Claim> {
    let Some(node) = ctx.stores.nodes.get(&ObjectRef::new(name)) else {
        return Ok(Claim::Lost(String::new()));
    };
    if let Some(holder) = NodeView::from_node(&node).claimed_by {
        return Ok(if holder == me {
            Claim::Won
        } else {
            Claim::Lost(holder)
        });
    }
    let patch = json!({"metadata": {
        "resourceVersion": node.resource_version(),
        "annotations": {CLAIM_ANNOTATION: me, REGISTERED_AT_ANNOTATION: Timestamp::now().to_string()}
    }});
    match nodes
        .patch(name, &PatchParams::default(), &Patch::Merge(&patch))
        .await
    {
        Ok(_) => Ok(Claim::Won),
        Err(kube::Error::Api(s)) if s.code == 409 => {
            // Someone changed the Node first: read who holds it now.
            let fresh = nodes.get(name).await?;
            match NodeView::from_node(&fresh).claimed_by {
                Some(h) if h == me => Ok(Claim::Won),
                Some(h) => Ok(Claim::Lost(h)),
                None => Ok(Claim::Lost(String::new())),
            }
        }
        Err(e) => Err(e.into()),
    }
}

/// Removes our claim; a JSON patch `test` makes it a no-op if another cluster holds the Node.
async fn release_node(nodes: &Api<Node>, name: &str, me: &str) -> Result<()> {
    let path = |k: &str| {
        format!(
            "/metadata/annotations/{}",
            k.replace('~', "~0").replace('/', "~1")
        )
    };
    let patch: json_patch::Patch = serde_json::from_value(json!([
        {"op": "test", "path": path(CLAIM_ANNOTATION), "value": me},
        {"op": "remove", "path": path(CLAIM_ANNOTATION)},
        {"op": "remove", "path": path(REGISTERED_AT_ANNOTATION)},
    ]))
    .expect("static patch");
    match nodes
        .patch(name, &PatchParams::default(), &Patch::Json::<()>(patch))
        .await
    {
        Ok(_) => {
            info!(node = %name, cluster = %me, "deregistered container instance");
            Ok(())
        }
        // 422: the test failed (not ours any more) or the annotation is gone; 404: Node gone.
        Err(kube::Error::Api(s)) if s.code == 422 || s.code == 404 => Ok(()),
        Err(e) => Err(e.into()),
    }
}

/// Blocks deletion while services or tasks use the cluster; then releases the instances.
async fn cleanup(cluster: &EcsCluster, ctx: &Context) -> Result<Action> {
    let ns = cluster.namespace().unwrap_or_default();
    let name = cluster.name_any();
    let using: Vec<String> = services_of(ctx, &ns, &name)
        .iter()
        .map(|s| s.name_any())
        .collect();
    let active_tasks = ctx
        .stores
        .tasks
        .read()
        .in_cluster(&ns, &name)
        .filter(|t| t.is_active())
        .count();
    let blocker = if !using.is_empty() {
        Some(format!("{HAS_SERVICES} Services: {}.", using.join(", ")))
    } else if active_tasks > 0 {
        Some(format!("{HAS_TASKS} Active tasks: {active_tasks}."))
    } else {
        None
    };
    let me = cluster_key(cluster);
    if let Some(reason) = blocker {
        let owned: Vec<String> = ctx
            .stores
            .nodes
            .state()
            .iter()
            .filter(|n| NodeView::from_node(n).claimed_by.as_deref() == Some(me.as_str()))
            .filter_map(|n| n.metadata.name.clone())
            .collect();
        write_status(cluster, ctx, &owned, &[], Some(&reason)).await?;
        ctx.recorder
            .publish(
                &Event {
                    type_: EventType::Warning,
                    reason: "DeletionBlocked".into(),
                    note: Some(reason.clone()),
                    action: "Delete".into(),
                    secondary: None,
                },
                &cluster.object_ref(&()),
            )
            .await
            // A terminating namespace refuses new events; the status says it anyway.
            .unwrap_or_else(|e| warn!(error = %e, "could not publish event"));
        return Err(Error::DeletionBlocked(reason));
    }
    let nodes: Api<Node> = Api::all(ctx.client.clone());
    let claimed: Vec<String> = ctx
        .stores
        .nodes
        .state()
        .iter()
        .filter(|n| NodeView::from_node(n).claimed_by.as_deref() == Some(me.as_str()))
        .filter_map(|n| n.metadata.name.clone())
        .collect();
    for node in claimed {
        release_node(&nodes, &node, &me).await?;
    }
    info!(cluster = %me, "cluster deleted");
    Ok(Action::await_change())
}

/// Builds and server-side-applies the status.
async fn write_status(
    cluster: &EcsCluster,
    ctx: &Context,
    owned: &[String],
    conflicts: &[(String, String)],
    deletion_blocked: Option<&str>,
) -> Result<()> {
    let status = build_status(cluster, ctx, owned, conflicts, deletion_blocked);
    ctx.write_status(cluster, cluster.status.as_ref(), &status)
        .await?;
    Ok(())
}

fn build_status(
    cluster: &EcsCluster,
    ctx: &Context,
    owned: &[String],
    conflicts: &[(String, String)],
    deletion_blocked: Option<&str>,
) -> EcsClusterStatus {
    let ns = cluster.namespace().unwrap_or_default();
    let name = cluster.name_any();
    let generation = cluster.metadata.generation;
    // Room used on each of the cluster's Nodes (every pod there, ours or not) and the
    // cluster's tasks on them, from the index; then the cluster's tasks not yet bound.
    let mut used: BTreeMap<String, (i64, i64)> = BTreeMap::new();
    let mut tasks_on: BTreeMap<String, (i32, i32)> = BTreeMap::new();
    let (mut running, mut pending) = (0, 0);
    {
        let usage = ctx.stores.node_usage.read();
        for node in owned.iter() {
            for p in usage.on(node) {
                let e = used.entry(node.clone()).or_default();
                e.0 += p.task.cpu;
                e.1 += p.task.memory;
                if let Some((pns, pc, is_running)) = &p.cluster_task
                    && *pns == ns
                    && *pc == name
                {
                    let e = tasks_on.entry(node.clone()).or_default();
                    if *is_running { e.0 += 1 } else { e.1 += 1 }
                }
            }
        }
    }
    // The cluster's tasks, bound or not (a FARGATE task may run on a Node the cluster
    // does not own, or wait unbound).
    for task in ctx.stores.tasks.read().in_cluster(&ns, &name) {
        match (task.is_active(), task.is_running()) {
            (true, true) => running += 1,
            (true, false) => pending += 1,
            (false, _) => {}
        }
    }
    let instances: Vec<ContainerInstanceSummary> = owned
        .iter()
        .take(MAX_LISTED_INSTANCES)
        .filter_map(|n| ctx.stores.nodes.get(&ObjectRef::new(n)))
        .map(|node| {
            let ci = ContainerInstance::from_node(&node);
            let (uc, um) = used.get(&ci.id).copied().unwrap_or_default();
            let (r, p) = tasks_on.get(&ci.id).copied().unwrap_or_default();
            ContainerInstanceSummary {
                container_instance_arn: Some(arn::container_instance(&ns, &name, &ci.id)),
                status: ci.status(),
                agent_connected: ci.agent_connected,
                availability_zone: ci.attributes.get("ecs.availability-zone").cloned(),
                instance_type: ci.attributes.get("ecs.instance-type").cloned(),
                registered_resources: InstanceResources {
                    cpu: ci.registered_cpu,
                    memory: ci.registered_memory,
                },
                remaining_resources: InstanceResources {
                    cpu: ci.registered_cpu - uc,
                    memory: ci.registered_memory - um,
                },
                running_tasks_count: r,
                pending_tasks_count: p,
                registered_at: ci.registered_at.clone(),
                ec2_instance_id: ci.id,
            }
        })
        .collect();
    let active_services = services_of(ctx, &ns, &name).len() as i32;
    let old = cluster.status.clone().unwrap_or_default();
    let mut conds = Vec::new();
    if let Some(reason) = deletion_blocked {
        conds.push(condition(
            cond::READY,
            false,
            "DeletionBlocked",
            reason,
            generation,
        ));
    } else {
        conds.push(condition(
            cond::READY,
            true,
            "Active",
            format!("{} container instances registered.", owned.len()),
            generation,
        ));
    }
    if conflicts.is_empty() {
        conds.push(condition(
            cond::DEGRADED,
            false,
            "NoConflicts",
            "",
            generation,
        ));
    } else {
        let list = conflicts
            .iter()
            .map(|(n, h)| format!("{n} (registered to {h})"))
            .collect::<Vec<_>>()
            .join(", ");
        conds.push(condition(
            cond::DEGRADED,
            true,
            "ContainerInstanceConflict",
            format!("A container instance can belong to only one cluster; not registered: {list}."),
            generation,
        ));
    }
    EcsClusterStatus {
        cluster_arn: Some(arn::cluster(&ns, &name)),
        status: Some(if deletion_blocked.is_some() {
            ClusterState::Deprovisioning
        } else {
            ClusterState::Active
        }),
        registered_container_instances_count: owned.len() as i32,
        running_tasks_count: running,
        pending_tasks_count: pending,
        active_services_count: active_services,
        container_instances: instances,
        conflicting_instances: conflicts
            .iter()
            .map(|(n, h)| ConflictingInstance {
                ec2_instance_id: n.clone(),
                claimed_by: h.clone(),
            })
            .collect(),
        observed_generation: generation,
        conditions: merge(&old.conditions, conds),
    }
}

/// The services in `ns` that run in cluster `name`, from the Service store.
fn services_of(ctx: &Context, ns: &str, name: &str) -> Vec<Arc<Service>> {
    ctx.stores
        .services
        .state()
        .into_iter()
        .filter(|s| {
            s.namespace().as_deref() == Some(ns) && cluster_name(s.spec.cluster.as_deref()) == name
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_cluster_is_default() {
        assert_eq!(cluster_name(None), "default");
        assert_eq!(cluster_name(Some("prod")), "prod");
        assert_eq!(
            cluster_name(Some("arn:aws:ecs:us-east-1:123:cluster/prod")),
            "prod"
        );
    }
}

/// The API conversation of the EcsCluster reconciler (see `controllers::testing`).
#[cfg(test)]
mod conversation {
    use super::*;
    use crate::controllers::testing::{World, failure, node};
    use axum::http::{Method, StatusCode};
    use serde_json::Value;

    const PROD: &str = "/apis/ecs.kubecs.io/v1alpha1/namespaces/shop/ecsclusters/prod";

    fn cluster(deleting: bool) -> EcsCluster {
        let mut v = json!({
            "apiVersion": "ecs.kubecs.io/v1alpha1", "kind": "EcsCluster",
            "metadata": {"name": "prod", "namespace": "shop", "uid": "cluster-1",
                         "generation": 1, "resourceVersion": "3", "finalizers": [FINALIZER]},
            "spec": {"instanceSelector": {"matchLabels": {"topology.kubernetes.io/zone": "us-east-1a"}}},
        });
        if deleting {
            v["metadata"]["deletionTimestamp"] = json!("2026-12-01T10:00:00Z");
        }
        serde_json::from_value(v).expect("an EcsCluster")
    }

    fn seeded(world: &World, c: &EcsCluster) {
        world.api.seed(PROD, serde_json::to_value(c).expect("json"));
    }

    fn service(name: &str) -> Service {
        serde_json::from_value(json!({
            "apiVersion": "ecs.kubecs.io/v1alpha1", "kind": "Service",
            "metadata": {"name": name, "namespace": "shop", "uid": format!("svc-{name}")},
            "spec": {"cluster": "prod", "taskDefinition": "web", "desiredCount": 1},
        }))
        .expect("a Service")
    }

    fn status_of(world: &World) -> Value {
        let patches = world.api.all(&Method::PATCH, &format!("{PROD}/status"));
        patches.last().expect("a status write").body["status"].clone()
    }

    #[tokio::test]
    async fn a_cluster_with_active_services_keeps_its_finalizer_and_its_instances() {
        let mut world = World::plain();
        world.node(node("n1", "us-east-1a", Some("shop/prod")));
        world.service(service("web"));
        world.service(service("api"));
        let c = cluster(true);
        seeded(&world, &c);
        let err = reconcile(Arc::new(c), world.ctx.clone())
            .await
            .expect_err("deletion is blocked");
        assert!(
            err.to_string()
                .contains("The Cluster cannot be deleted while Services are active. Services: "),
            "{err}"
        );
        // Status and an event say why; the finalizer and the Node claim stay.
        let status = status_of(&world);
        assert_eq!(status["conditions"][0]["type"], "Ready");
        let events = world.api.all(
            &Method::POST,
            "/apis/events.k8s.io/v1/namespaces/shop/events",
        );
        assert_eq!(events.len(), 1);
        assert_eq!(events[0].body["reason"], "DeletionBlocked");
        assert_eq!(
            world.api.first(&Method::PATCH, PROD),
            None,
            "finalizer removed"
        );
        assert_eq!(world.api.first(&Method::PATCH, "/api/v1/nodes/n1"), None);
    }

    #[tokio::test]
    async fn an_unused_cluster_releases_its_instances_before_its_finalizer() {
        let mut world = World::plain();
        for (n, holder) in [
            ("n1", "shop/prod"),
            ("n2", "shop/prod"),
            ("n3", "other/fleet"),
        ] {
            let nd = node(n, "us-east-1a", Some(holder));
            world.api.seed(
                &format!("/api/v1/nodes/{n}"),
                serde_json::to_value(&nd).unwrap(),
            );
            world.node(nd);
        }
        let c = cluster(true);
        seeded(&world, &c);
        reconcile(Arc::new(c), world.ctx.clone())
            .await
            .expect("deleted");
        let releases: Vec<usize> = ["n1", "n2"]
            .iter()
            .map(|n| {
                world
                    .api
                    .first(&Method::PATCH, &format!("/api/v1/nodes/{n}"))
                    .expect("released")
            })
            .collect();
        // The release is guarded: it removes the claim only while it is still ours.
        let patch = &world.api.calls()[releases[0]].body;
        assert_eq!(patch[0]["op"], "test");
        assert_eq!(patch[0]["value"], "shop/prod");
        assert_eq!(world.api.first(&Method::PATCH, "/api/v1/nodes/n3"), None);
        // The finalizer goes last: a crash before it leaves no Node claimed by a gone cluster.
        let finalizer = world
            .api
            .first(&Method::PATCH, PROD)
            .expect("finalizer removed");
        assert!(releases.iter().all(|&r| r < finalizer));
    }

    #[tokio::test]
    async fn a_node_another_cluster_claims_first_is_reported_as_a_conflict() {
        let mut world = World::new(Box::new(|call| {
            if call.path != "/api/v1/nodes/n1" {
                return None;
            }
            match call.method {
                // Another cluster's claim landed first: our resourceVersion is stale.
                Method::PATCH => Some(failure(409, "Conflict", "the object has been modified")),
                Method::GET => Some((
                    StatusCode::OK,
                    serde_json::to_value(node("n1", "us-east-1a", Some("other/fleet"))).unwrap(),
                )),
                _ => None,
            }
        }));
        world.node(node("n1", "us-east-1a", None));
        let c = cluster(false);
        seeded(&world, &c);
        reconcile(Arc::new(c), world.ctx.clone())
            .await
            .expect("reconciled");
        let claim = &world.api.all(&Method::PATCH, "/api/v1/nodes/n1")[0];
        // First writer wins: the claim carries the resourceVersion it was decided on.
        assert_eq!(claim.body["metadata"]["resourceVersion"], "7");
        assert_eq!(
            claim.body["metadata"]["annotations"][CLAIM_ANNOTATION],
            "shop/prod"
        );
        let status = status_of(&world);
        assert_eq!(status["registeredContainerInstancesCount"], 0);
        assert_eq!(
            status["conflictingInstances"],
            json!([{"ec2InstanceId": "n1", "claimedBy": "other/fleet"}])
        );
    }

    #[tokio::test]
    async fn a_node_it_claims_becomes_a_registered_instance() {
        let mut world = World::plain();
        let n1 = node("n1", "us-east-1a", None);
        world
            .api
            .seed("/api/v1/nodes/n1", serde_json::to_value(&n1).unwrap());
        world.node(n1);
        world.node(node("n2", "us-east-1b", None));
        let c = cluster(false);
        seeded(&world, &c);
        reconcile(Arc::new(c), world.ctx.clone())
            .await
            .expect("reconciled");
        assert!(
            world
                .api
                .first(&Method::PATCH, "/api/v1/nodes/n2")
                .is_none()
        );
        let status = status_of(&world);
        assert_eq!(status["registeredContainerInstancesCount"], 1);
        assert_eq!(status["conflictingInstances"], json!(null));
    }
}
