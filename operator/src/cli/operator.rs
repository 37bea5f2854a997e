//! `kubecs operator`: the shared reflectors, then (while holding the `kubecs-operator` Lease)
//! the EcsCluster, TaskDefinition, Service and Task controllers, and the admin server.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use k8s_openapi::api::apps::v1::ControllerRevision;
use k8s_openapi::api::core::v1::{Node, Pod};
use kube::Client;
use kube::api::Api;
use kube::runtime::watcher;
use prometheus_client::registry::Registry;
use tracing::info;

use super::Fatal;
use super::wiring::{Subscribers, admin_server, index_watch, indexed_reflector, shared_reflector};
use crate::api::{self, Service, TaskDefinition};
use crate::controllers::{self, Context, WatchHealth};
use crate::metrics::Metrics;
use crate::registry as oci;

/// The Lease that makes one operator replica active.
pub const LEASE: &str = "kubecs-operator";

#[derive(clap::Args)]
pub struct Args {
    /// Address of the admin server (/live, /ready, /metrics).
    #[arg(long, env = "KUBECS_ADMIN_ADDR", default_value = "127.0.0.1:8080")]
    admin_addr: SocketAddr,
    #[command(flatten)]
    lease: LeaseArgs,
    /// The kubecs registry as task images name it (`host[:port]`): task pods pulling from
    /// it get a pull Secret with a fresh registry token, as ECS's execution role does.
    #[arg(
        long,
        env = "KUBECS_REGISTRY_HOST",
        requires = "registry_token_key_file"
    )]
    registry_host: Option<String>,
    /// Where the operator reaches the registry (default `http://` + `--registry-host`): it
    /// resolves task image tags to digests there at each deployment's start.
    #[arg(long, env = "KUBECS_REGISTRY_URL", requires = "registry_host")]
    registry_url: Option<String>,
    /// Alertmanager's URL: deployment alarms (`deploymentConfiguration.alarms`) are the alerts
    /// it holds active, by `alertname`.
    #[arg(long, env = "KUBECS_ALERTMANAGER_URL")]
    alertmanager_url: Option<String>,
    /// The registry's token signing key (the chart mounts its Secret).
    #[arg(long, env = "KUBECS_REGISTRY_TOKEN_KEY_FILE")]
    registry_token_key_file: Option<PathBuf>,
    /// How long a finished Task (RunTask) stays visible before it is removed.
    #[arg(
        long,
        env = "KUBECS_STOPPED_TASK_RETENTION_SECONDS",
        default_value_t = 3600
    )]
    stopped_task_retention_seconds: u64,
}

/// Leader election among replicas (the operator's and the registry's own Leases).
#[derive(clap::Args, Clone, Debug)]
pub struct LeaseArgs {
    /// Take part in leader election on the Lease, so several replicas can run with one
    /// doing the work that must not run twice.
    #[arg(long, env = "KUBECS_LEADER_ELECTION", default_value_t = true, action = clap::ArgAction::Set)]
    pub leader_election: bool,
    /// The namespace of the Lease (the pod's own).
    #[arg(long, env = "POD_NAMESPACE", default_value = "kubecs-system")]
    pub lease_namespace: String,
    /// Seconds a leader holds the Lease without renewing it; a standby takes over after.
    #[arg(long, env = "KUBECS_LEASE_SECONDS", default_value_t = 15)]
    pub lease_seconds: u64,
}

pub async fn run(a: Args) -> Result<(), Fatal> {
    let registry_pull = match (a.registry_host, a.registry_token_key_file) {
        (Some(host), Some(key)) => Some(controllers::pullsecret::RegistryPull::new(
            host,
            a.registry_url,
            oci::TokenSigner::new(std::fs::read(&key)?)?,
        )),
        _ => None,
    };
    let client = Client::try_default().await?;
    let mut registry = Registry::with_prefix("kubecs");
    let metrics = Arc::new(Metrics::new(&mut registry));
    let health = Arc::new(WatchHealth::default());

    // Container instances, parsed once per Node change.
    let instances = Arc::new(controllers::watch_index::Shared::default());
    let index = instances.clone();
    let (nodes, node_events) = indexed_reflector(
        Api::<Node>::all(client.clone()),
        watcher::Config::default(),
        &health,
        move |e| index.apply(e),
        |_: &mut Node| {},
    );
    let (services, service_events) = shared_reflector(
        Api::<Service>::all(client.clone()),
        watcher::Config::default(),
        &health,
    );
    let (taskdefs, taskdef_events) = shared_reflector(
        Api::<TaskDefinition>::all(client.clone()),
        watcher::Config::default(),
        &health,
    );
    // Pods that hold node resources (not Succeeded, not Failed), ours or not: only the index
    // of what runs on each Node is kept, not the pods.
    let node_usage = Arc::new(controllers::pod_index::Shared::default());
    let index = node_usage.clone();
    let mut pods_listed = index_watch(
        Api::<Pod>::all(client.clone()),
        watcher::Config::default().fields("status.phase!=Succeeded,status.phase!=Failed"),
        &health,
        move |e| index.apply(e),
    );
    // Registered task definition revisions.
    let registered = Arc::new(controllers::watch_index::Shared::default());
    let index = registered.clone();
    let (revisions, revision_events) = indexed_reflector(
        Api::<ControllerRevision>::all(client.clone()),
        watcher::Config::default().labels(controllers::taskdef::OWNER_UID_LABEL),
        &health,
        move |e| index.apply(e),
        // The index parsed what a revision registered; the store answers which revisions
        // exist and their state (status, deregistration), not their definitions.
        |cr: &mut ControllerRevision| cr.data = Default::default(),
    );
    // Task pods in every phase (their owners read stopped tasks too), kept as their owners
    // read them: no task Pod is stored. Each change is passed on to the controllers it
    // concerns once the index holds it.
    let tasks = Arc::new(controllers::pod_index::Shared::<
        controllers::pod_index::TaskPods,
    >::default());
    let task_events = {
        let tasks = tasks.clone();
        Subscribers::new(move || tasks.read().iter().cloned().collect())
    };
    let (index, fan_out) = (tasks.clone(), task_events.clone());
    let mut tasks_listed = index_watch(
        Api::<Pod>::all(client.clone()),
        watcher::Config::default().labels(&format!(
            "{}={}",
            api::labels::MANAGED_BY,
            api::labels::MANAGER
        )),
        &health,
        move |e| fan_out.send(index.apply_task_event(e)),
    );
    // Capacity providers: the instance groups capacity provider strategies name.
    let (capacity_providers, _) = shared_reflector(
        Api::<api::CapacityProvider>::all(client.clone()),
        watcher::Config::default(),
        &health,
    );
    // ECS clusters: services and tasks read theirs from here.
    let (clusters, cluster_events) = shared_reflector(
        Api::<api::EcsCluster>::all(client.clone()),
        watcher::Config::default(),
        &health,
    );
    let ready = Arc::new(AtomicBool::new(false));
    let admin = tokio::spawn(admin_server(
        a.admin_addr,
        registry,
        ready.clone(),
        health.clone(),
    ));
    info!("waiting for the first lists of nodes, pods and services");
    nodes.wait_until_ready().await?;
    services.wait_until_ready().await?;
    pods_listed.wait_for(|listed| *listed).await?;
    taskdefs.wait_until_ready().await?;
    revisions.wait_until_ready().await?;
    tasks_listed.wait_for(|listed| *listed).await?;
    capacity_providers.wait_until_ready().await?;
    clusters.wait_until_ready().await?;
    ready.store(true, Ordering::SeqCst);

    let mut context = Context::new(
        client,
        metrics,
        controllers::Stores {
            nodes,
            services,
            taskdefs: taskdefs.clone(),
            revisions,
            registered,
            tasks,
            capacity_providers,
            clusters,
            instances,
            node_usage,
        },
    );
    context.stopped_task_retention = Duration::from_secs(a.stopped_task_retention_seconds);
    context.registry_pull = registry_pull;
    context.alertmanager = a
        .alertmanager_url
        .as_deref()
        .map(controllers::alarms::Alertmanager::new);
    let ctx = Arc::new(context);
    // One active operator: wait for the Lease; losing it ends the process (its pod restarts
    // as a standby), so two leaders never write at once.
    let leadership = if a.lease.leader_election {
        Some(lead(ctx.client.clone(), &a.lease).await?)
    } else {
        None
    };
    info!("kubecs operator started");
    // Each controller in its own task: the runtime's two workers run them side by side.
    let controllers = [
        tokio::spawn(controllers::cluster::run(
            ctx.clone(),
            cluster_events.subscribe(),
            node_events.subscribe(),
            service_events.subscribe(),
            task_events.subscribe(),
        )),
        tokio::spawn(controllers::taskdef::run(
            ctx.clone(),
            taskdefs,
            taskdef_events.subscribe(),
            revision_events.subscribe(),
        )),
        tokio::spawn(controllers::service::run(
            ctx.clone(),
            service_events.subscribe(),
            task_events.subscribe(),
            node_events.subscribe(),
            cluster_events.subscribe(),
            taskdef_events.subscribe(),
        )),
        tokio::spawn(controllers::task::run(ctx, task_events.subscribe())),
    ];
    for c in controllers {
        c.await?;
    }
    admin.abort();
    // Stopped by a signal: a standby takes over at once, not a lease duration later.
    if let Some((l, watchdog)) = leadership {
        watchdog.abort();
        l.release().await;
    }
    Ok(())
}

/// Blocks until this process holds the operator Lease; then exits the process if it is lost
/// (the leader steps down before a standby may take over: see `lease`).
async fn lead(
    client: Client,
    lease: &LeaseArgs,
) -> Result<(crate::lease::Leadership, tokio::task::JoinHandle<()>), Fatal> {
    let mut leadership =
        crate::lease::join(client, &lease.lease_namespace, LEASE, lease.lease_seconds).await?;
    let identity = leadership.identity.clone();
    info!(%identity, "standby: waiting for the {LEASE} lease");
    if !leadership.acquired().await {
        return Err(format!("the {LEASE} lease election stopped").into());
    }
    info!(%identity, "leading: holding the {LEASE} lease");
    let lost = leadership.lost_signal();
    let watchdog = tokio::spawn(async move {
        lost.await;
        tracing::error!("lost the {LEASE} lease: exiting");
        std::process::exit(2);
    });
    Ok((leadership, watchdog))
}
