//! The `kubecs` binary: the operator, the CRD generator, `render`, and (as later issues add
//! them) the registry and `login-password`.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

use axum::Router;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::IntoResponse;
use axum::routing::get;
use clap::{Parser, Subcommand, ValueEnum};
use futures::StreamExt;
use k8s_openapi::api::apps::v1::ControllerRevision;
use k8s_openapi::api::core::v1::{Node, Pod};
use kube::Client;
use kube::api::Api;
use kube::runtime::reflector::{self, Store};
use kube::runtime::{WatchStreamExt, watcher};
use prometheus_client::registry::Registry;
use tracing::info;

use kubecs::api::{self, Service, TaskDefinition};
use kubecs::controllers::{self, Context};
use kubecs::metrics::Metrics;
use kubecs::taskdef;

#[derive(Parser)]
#[command(
    name = "kubecs",
    version,
    about = "Amazon ECS and ECR semantics on any Kubernetes cluster"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the controllers (EcsCluster, and as they land TaskDefinition, Service, Task).
    Operator {
        /// Address of the admin server (/live, /ready, /metrics).
        #[arg(long, env = "KUBECS_ADMIN_ADDR", default_value = "127.0.0.1:8080")]
        admin_addr: SocketAddr,
        /// Run controllers only while holding the `kubecs-operator` Lease, so several replicas
        /// can run with one active.
        #[arg(long, env = "KUBECS_LEADER_ELECTION", default_value_t = true, action = clap::ArgAction::Set)]
        leader_election: bool,
        /// The namespace of the Lease (the operator's own).
        #[arg(long, env = "POD_NAMESPACE", default_value = "kubecs-system")]
        lease_namespace: String,
        /// Seconds a leader holds the Lease without renewing it; a standby takes over after.
        #[arg(long, env = "KUBECS_LEASE_SECONDS", default_value_t = 15)]
        lease_seconds: u64,
        /// How long a finished Task (RunTask) stays visible before it is removed.
        #[arg(
            long,
            env = "KUBECS_STOPPED_TASK_RETENTION_SECONDS",
            default_value_t = 3600
        )]
        stopped_task_retention_seconds: u64,
    },
    /// Print every kubecs CRD as YAML (what crds/ holds).
    Crdgen,
    /// Print the Pod an ECS task definition becomes. Reads the JSON of
    /// `aws ecs register-task-definition --cli-input-json`, the output of
    /// `aws ecs describe-task-definition`, or a TaskDefinition YAML. An invalid task definition
    /// is refused with ECS's messages (exit status 1); fields Kubernetes cannot honour are
    /// listed on stderr.
    Render {
        /// The task definition file (`-` for stdin).
        file: PathBuf,
        /// The output format.
        #[arg(short, long, value_enum, default_value_t = Format::Yaml)]
        output: Format,
        /// The namespace of the pod.
        #[arg(short, long)]
        namespace: Option<String>,
        /// The EcsCluster the task runs in (the cluster label).
        #[arg(long)]
        cluster: Option<String>,
        /// Split task-level cpu/memory among the containers instead of using pod-level
        /// resources (for clusters without the PodLevelResources feature).
        #[arg(long)]
        no_pod_level_resources: bool,
    },
}

#[derive(Clone, Copy, ValueEnum)]
enum Format {
    Yaml,
    Json,
}

#[tokio::main]
async fn main() -> anyhow_free::Result {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| "info,kube=warn".into()),
        )
        .init();
    match Cli::parse().command {
        Command::Crdgen => {
            print!("{}", api::crds_yaml());
            Ok(())
        }
        Command::Operator {
            admin_addr,
            leader_election,
            lease_namespace,
            lease_seconds,
            stopped_task_retention_seconds,
        } => {
            let lease = leader_election.then_some((lease_namespace, lease_seconds));
            operator(
                admin_addr,
                lease,
                std::time::Duration::from_secs(stopped_task_retention_seconds),
            )
            .await
        }
        Command::Render {
            file,
            output,
            namespace,
            cluster,
            no_pod_level_resources,
        } => {
            let opts = taskdef::RenderOptions {
                pod_level_resources: !no_pod_level_resources,
                ..Default::default()
            };
            if let Err(messages) = render(&file, output, namespace, cluster, &opts) {
                for m in messages {
                    eprintln!("{m}");
                }
                std::process::exit(1);
            }
            Ok(())
        }
    }
}

/// `kubecs render`: prints the pod, or returns the messages to print before failing.
fn render(
    file: &std::path::Path,
    output: Format,
    namespace: Option<String>,
    cluster: Option<String>,
    opts: &taskdef::RenderOptions,
) -> Result<(), Vec<String>> {
    let text = if file.as_os_str() == "-" {
        std::io::read_to_string(std::io::stdin())
    } else {
        std::fs::read_to_string(file)
    }
    .map_err(|e| vec![format!("cannot read {}: {e}", file.display())])?;
    let input = taskdef::input::parse_task_definition(&text).map_err(|e| vec![e.to_string()])?;
    for w in &input.warnings {
        eprintln!("warning: {w}");
    }
    let family = input.spec.family.clone();
    let identity = taskdef::PodIdentity {
        name: family.as_deref().map(taskdef::names::dns_label),
        namespace,
        cluster,
        family,
        revision: input.revision,
        ..Default::default()
    };
    let rendered = taskdef::render_pod(&input.spec, &identity, opts).map_err(|e| e.0)?;
    for u in &rendered.unsupported {
        eprintln!("unsupported: {u}");
    }
    for c in &rendered.claims {
        eprintln!(
            "note: the pod mounts PersistentVolumeClaim '{}' (volume '{}'), which must exist",
            c.name, c.volume
        );
    }
    let out = match output {
        Format::Yaml => serde_yaml::to_string(&rendered.pod).map_err(|e| vec![e.to_string()])?,
        Format::Json => {
            serde_json::to_string_pretty(&rendered.pod).map_err(|e| vec![e.to_string()])? + "\n"
        }
    };
    print!("{out}");
    Ok(())
}

/// A boxed error for main: every failure here is fatal and printed.
mod anyhow_free {
    pub type Result = std::result::Result<(), Box<dyn std::error::Error + Send + Sync>>;
}

/// Starts the shared reflectors, waits for their first lists, then runs the controllers and
/// the admin server until a signal arrives.
async fn operator(
    admin_addr: SocketAddr,
    lease: Option<(String, u64)>,
    retention: std::time::Duration,
) -> anyhow_free::Result {
    let client = Client::try_default().await?;
    let mut registry = Registry::with_prefix("kubecs");
    let metrics = Arc::new(Metrics::new(&mut registry));

    let (nodes, node_events) =
        shared_reflector(Api::<Node>::all(client.clone()), watcher::Config::default());
    let (services, service_events) = shared_reflector(
        Api::<Service>::all(client.clone()),
        watcher::Config::default(),
    );
    let (taskdefs, taskdef_events) = shared_reflector(
        Api::<TaskDefinition>::all(client.clone()),
        watcher::Config::default(),
    );
    // Pods that hold node resources: not Succeeded, not Failed.
    let (pods, _pod_events) = shared_reflector(
        Api::<Pod>::all(client.clone()),
        watcher::Config::default().fields("status.phase!=Succeeded,status.phase!=Failed"),
    );
    // Registered task definition revisions.
    let (revisions, _revision_events) = shared_reflector(
        Api::<ControllerRevision>::all(client.clone()),
        watcher::Config::default().labels(controllers::taskdef::OWNER_UID_LABEL),
    );
    // Task pods in every phase: their owners read stopped tasks too.
    let (tasks, task_events) = shared_reflector(
        Api::<Pod>::all(client.clone()),
        watcher::Config::default().labels(&format!(
            "{}={}",
            api::labels::MANAGED_BY,
            api::labels::MANAGER
        )),
    );
    let ready = Arc::new(tokio::sync::Notify::new());
    let admin = tokio::spawn(admin_server(admin_addr, Arc::new(registry), ready.clone()));
    info!("waiting for the first lists of nodes, pods and services");
    nodes.wait_until_ready().await?;
    services.wait_until_ready().await?;
    pods.wait_until_ready().await?;
    taskdefs.wait_until_ready().await?;
    revisions.wait_until_ready().await?;
    tasks.wait_until_ready().await?;
    ready.notify_one();

    let mut context = Context::new(
        client,
        metrics,
        controllers::Stores {
            nodes,
            pods,
            services,
            taskdefs: taskdefs.clone(),
            revisions,
            tasks,
        },
    );
    context.stopped_task_retention = retention;
    let ctx = Arc::new(context);
    // One active operator: wait for the Lease; losing it ends the process (its pod restarts
    // as a standby), so two leaders never write at once.
    let _lease_task = match lease {
        Some((ns, seconds)) => Some(lead(ctx.client.clone(), &ns, seconds).await?),
        None => None,
    };
    info!("kubecs operator started");
    tokio::join!(
        controllers::cluster::run(ctx.clone(), node_events, service_events),
        controllers::taskdef::run(ctx.clone(), taskdefs, taskdef_events),
        controllers::service::run(ctx.clone(), task_events.clone()),
        controllers::task::run(ctx, task_events),
    );
    admin.abort();
    Ok(())
}

/// Blocks until this process holds the `kubecs-operator` Lease; then watches it and exits
/// the process if it is lost.
async fn lead(
    client: Client,
    namespace: &str,
    seconds: u64,
) -> Result<tokio::task::JoinHandle<()>, Box<dyn std::error::Error + Send + Sync>> {
    let identity = format!(
        "{}-{}",
        std::env::var("HOSTNAME").unwrap_or_else(|_| "kubecs".into()),
        std::process::id()
    );
    let manager = kube_lease_manager::LeaseManagerBuilder::new(client, "kubecs-operator")
        .with_namespace(namespace)
        .with_identity(&identity)
        .with_duration(seconds.max(2))
        .with_grace((seconds / 3).max(1))
        .build()
        .await?;
    let (mut leading, task) = manager.watch().await;
    info!(%identity, "standby: waiting for the kubecs-operator lease");
    while !*leading.borrow_and_update() {
        leading.changed().await?;
    }
    info!(%identity, "leading: holding the kubecs-operator lease");
    Ok(tokio::spawn(async move {
        while leading.changed().await.is_ok() {
            if !*leading.borrow_and_update() {
                break;
            }
        }
        // Lost, or the lease manager stopped (then nobody renews it): either way not leader.
        tracing::error!("lost the kubecs-operator lease: exiting");
        drop(task);
        std::process::exit(2);
    }))
}

/// A reflector whose store the reconcilers read and whose events can trigger controllers.
/// The watch runs in its own task so the store stays current whoever polls the events.
fn shared_reflector<K>(
    api: Api<K>,
    config: watcher::Config,
) -> (
    Store<K>,
    impl futures::Stream<Item = Arc<K>> + Clone + Send + 'static,
)
where
    K: kube::Resource<DynamicType = ()>
        + Clone
        + std::fmt::Debug
        + serde::de::DeserializeOwned
        + Send
        + Sync
        + 'static,
{
    let (reader, writer) = reflector::store_shared(1024);
    let subscriber = writer.subscribe().expect("a shared store has a dispatcher");
    let watch = watcher(api, config.any_semantic())
        .default_backoff()
        .reflect_shared(writer)
        .for_each(|_| futures::future::ready(()));
    tokio::spawn(watch);
    (reader, subscriber)
}

struct Admin {
    registry: Registry,
    ready: std::sync::atomic::AtomicBool,
}

/// `/live`, `/ready` (after the first lists) and `/metrics`.
async fn admin_server(addr: SocketAddr, registry: Arc<Registry>, ready: Arc<tokio::sync::Notify>) {
    let registry = Arc::into_inner(registry).expect("the registry has one owner");
    let state = Arc::new(Admin {
        registry,
        ready: false.into(),
    });
    let flag = state.clone();
    tokio::spawn(async move {
        ready.notified().await;
        flag.ready.store(true, std::sync::atomic::Ordering::SeqCst);
    });
    let app = Router::new()
        .route("/live", get(|| async { "ok" }))
        .route(
            "/ready",
            get(|State(s): State<Arc<Admin>>| async move {
                if s.ready.load(std::sync::atomic::Ordering::SeqCst) {
                    (StatusCode::OK, "ok")
                } else {
                    (StatusCode::SERVICE_UNAVAILABLE, "starting")
                }
            }),
        )
        .route("/metrics", get(metrics_handler))
        .with_state(state);
    match tokio::net::TcpListener::bind(addr).await {
        Ok(listener) => {
            info!(%addr, "admin server listening");
            let _ = axum::serve(listener, app).await;
        }
        Err(e) => tracing::error!(%addr, error = %e, "admin server could not bind"),
    }
}

async fn metrics_handler(State(s): State<Arc<Admin>>) -> impl IntoResponse {
    let mut body = String::new();
    match prometheus_client::encoding::text::encode(&mut body, &s.registry) {
        Ok(()) => (
            StatusCode::OK,
            [(
                "content-type",
                "application/openmetrics-text; version=1.0.0; charset=utf-8",
            )],
            body,
        ),
        Err(_) => (
            StatusCode::INTERNAL_SERVER_ERROR,
            [("content-type", "text/plain")],
            String::new(),
        ),
    }
}
