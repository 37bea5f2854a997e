//! The `kubecs` binary: the operator, the CRD generator, `render`, the registry and
//! `registry-token` (and, as a later issue adds it, `login-password`).

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
use kubecs::registry::{self as oci, DEFAULT_MAX_UPLOAD_BYTES};
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
        /// The kubecs registry as task images name it (`host[:port]`): task pods pulling from
        /// it get a pull Secret with a fresh registry token, as ECS's execution role does.
        #[arg(
            long,
            env = "KUBECS_REGISTRY_HOST",
            requires = "registry_token_key_file"
        )]
        registry_host: Option<String>,
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
    /// Run the ECR-compatible OCI registry (OCI Distribution Specification v1.1). Clients log in
    /// with `docker login -u AWS -p <token>`; see `registry-token`.
    Registry {
        /// Address to listen on (port 0 picks a free port; the log says which).
        #[arg(long, env = "KUBECS_REGISTRY_LISTEN", default_value = "127.0.0.1:5000")]
        listen: SocketAddr,
        /// Directory of the filesystem storage (one registry process per directory).
        #[arg(
            long,
            env = "KUBECS_REGISTRY_STORAGE_DIR",
            required_unless_present = "storage",
            conflicts_with = "storage"
        )]
        storage_dir: Option<PathBuf>,
        /// S3-compatible object storage, `s3://BUCKET[/PREFIX]`, instead of --storage-dir:
        /// several registry processes may serve one bucket. Credentials come from the
        /// standard AWS variables (AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY...).
        #[arg(long, env = "KUBECS_REGISTRY_STORAGE")]
        storage: Option<String>,
        /// URL of an S3-compatible server (path-style requests); default AWS.
        #[arg(long, env = "KUBECS_REGISTRY_S3_ENDPOINT", requires = "storage")]
        s3_endpoint: Option<String>,
        /// The bucket's region (default AWS_REGION or us-east-1).
        #[arg(long, env = "KUBECS_REGISTRY_S3_REGION", requires = "storage")]
        s3_region: Option<String>,
        /// Allow an http:// endpoint.
        #[arg(long, env = "KUBECS_REGISTRY_S3_ALLOW_HTTP", requires = "storage")]
        s3_allow_http: bool,
        /// The server lacks conditional writes (If-Match / If-None-Match on PUT): overwrite
        /// instead. Immutable tags are then enforced within each replica only.
        #[arg(
            long,
            env = "KUBECS_REGISTRY_S3_NO_CONDITIONAL_WRITES",
            requires = "storage"
        )]
        s3_no_conditional_writes: bool,
        /// File holding the token signing key (32+ bytes); generated if missing.
        #[arg(long, env = "KUBECS_REGISTRY_TOKEN_KEY_FILE")]
        token_key_file: PathBuf,
        /// The registry (account) id in ECR's messages.
        #[arg(long, env = "KUBECS_REGISTRY_ID", default_value = "000000000000")]
        registry_id: String,
        /// Accept pushes to repositories that do not exist (instead of NAME_UNKNOWN).
        #[arg(long, env = "KUBECS_REGISTRY_CREATE_ON_PUSH")]
        create_on_push: bool,
        /// The largest blob accepted, in bytes.
        #[arg(long, env = "KUBECS_REGISTRY_MAX_UPLOAD_BYTES", default_value_t = DEFAULT_MAX_UPLOAD_BYTES)]
        max_upload_bytes: u64,
        /// Seconds between garbage collections of unreferenced blobs (0: never).
        #[arg(long, default_value_t = 3600)]
        gc_interval_seconds: u64,
        /// Unreferenced blobs younger than this many seconds are kept (uploads in progress).
        #[arg(long, default_value_t = 86400)]
        gc_grace_seconds: u64,
        /// ECR semantics from the cluster: Repository objects decide which repositories exist,
        /// their tag mutability and policy; Kubernetes bearer tokens are checked with
        /// TokenReview (and exchanged for registry tokens at /kubecs/v1/token); the registry
        /// writes Repository status, applies lifecycle policies and holds the
        /// `ecr.kubecs.io/images` finalizer. Uses the in-cluster config or KUBECONFIG.
        #[arg(long, env = "KUBECS_REGISTRY_KUBERNETES")]
        kubernetes: bool,
        /// `host[:port]` clients use to reach the registry, shown in `repositoryUri`
        /// (default: the listen address).
        #[arg(long, env = "KUBECS_REGISTRY_PUBLIC_HOST")]
        public_host: Option<String>,
        /// Seconds between applications of the lifecycle policies (also applied at start);
        /// with --kubernetes.
        #[arg(
            long,
            env = "KUBECS_REGISTRY_LIFECYCLE_INTERVAL_SECONDS",
            default_value_t = 3600
        )]
        lifecycle_interval_seconds: u64,
    },
    /// Print a registry password for `docker login -u AWS --password-stdin` (like
    /// `aws ecr get-login-password`): the current kubeconfig user's bearer token is exchanged
    /// at the registry for a registry token of that identity, valid 12 hours.
    LoginPassword {
        /// The registry: `host[:port]` (https; http for loopback) or a URL.
        #[arg(long, env = "KUBECS_REGISTRY")]
        registry: String,
        /// The kubeconfig context (default: the current one).
        #[arg(long)]
        context: Option<String>,
    },
    /// Print a registry token (valid 12 hours) for `docker login -u AWS -p <token>`.
    RegistryToken {
        /// The registry's token key file (as given to `kubecs registry`); created if missing.
        #[arg(long, env = "KUBECS_REGISTRY_TOKEN_KEY_FILE")]
        token_key_file: PathBuf,
        /// The principal's username.
        #[arg(long)]
        user: String,
        /// The principal's groups (repeatable).
        #[arg(long = "group")]
        groups: Vec<String>,
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
                // Not `kube=warn`: targets match by prefix, and that would silence `kubecs` too.
                .unwrap_or_else(|_| "info,kube_client=warn,kube_runtime=warn".into()),
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
            registry_host,
            registry_token_key_file,
        } => {
            let lease = leader_election.then_some((lease_namespace, lease_seconds));
            let registry = match (registry_host, registry_token_key_file) {
                (Some(host), Some(key)) => Some(controllers::pullsecret::RegistryPull::new(
                    host,
                    oci::TokenSigner::new(std::fs::read(&key)?)?,
                )),
                _ => None,
            };
            operator(
                admin_addr,
                lease,
                std::time::Duration::from_secs(stopped_task_retention_seconds),
                registry,
            )
            .await
        }
        Command::Registry {
            listen,
            storage_dir,
            storage,
            s3_endpoint,
            s3_region,
            s3_allow_http,
            s3_no_conditional_writes,
            token_key_file,
            registry_id,
            create_on_push,
            max_upload_bytes,
            gc_interval_seconds,
            gc_grace_seconds,
            kubernetes,
            public_host,
            lifecycle_interval_seconds,
        } => {
            let cluster = kubernetes.then(|| ClusterWiring {
                public_host: public_host.unwrap_or_else(|| listen.to_string()),
                lifecycle_interval: std::time::Duration::from_secs(lifecycle_interval_seconds),
            });
            let config = oci::RegistryConfig {
                registry_id,
                create_on_push,
                max_upload_bytes,
            };
            let gc = (gc_interval_seconds > 0).then(|| {
                (
                    std::time::Duration::from_secs(gc_interval_seconds),
                    std::time::Duration::from_secs(gc_grace_seconds),
                )
            });
            let store = match (storage, storage_dir) {
                (Some(url), _) => {
                    let (bucket, prefix) = oci::S3Config::parse_url(&url)?;
                    StoreChoice::S3(oci::S3Config {
                        bucket,
                        prefix,
                        endpoint: s3_endpoint,
                        region: s3_region,
                        allow_http: s3_allow_http,
                        conditional_writes: !s3_no_conditional_writes,
                    })
                }
                (None, Some(dir)) => StoreChoice::Dir(dir),
                (None, None) => return Err("--storage-dir or --storage is required".into()),
            };
            registry(listen, store, &token_key_file, config, gc, cluster).await
        }
        Command::LoginPassword { registry, context } => {
            let result = async {
                let bearer = kubecs::login::kubeconfig_token(context).await?;
                kubecs::login::fetch_registry_token(&registry, &bearer).await
            };
            match result.await {
                Ok(token) => {
                    println!("{token}");
                    Ok(())
                }
                Err(e) => {
                    eprintln!("kubecs login-password: {e}");
                    std::process::exit(1);
                }
            }
        }
        Command::RegistryToken {
            token_key_file,
            user,
            groups,
        } => {
            let signer = oci::TokenSigner::load_or_create(&token_key_file)?;
            let principal = oci::Principal {
                username: user,
                groups,
            };
            println!("{}", signer.issue(&principal, std::time::SystemTime::now()));
            Ok(())
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

/// `kubecs registry --kubernetes` settings.
struct ClusterWiring {
    public_host: String,
    lifecycle_interval: std::time::Duration,
}

/// Where `kubecs registry` keeps its content.
enum StoreChoice {
    Dir(PathBuf),
    S3(oci::S3Config),
}

/// `kubecs registry`: filesystem or S3 storage, served until SIGINT/SIGTERM. Bare, every repository
/// is allowed and only registry tokens are accepted; with `--kubernetes`, Repository objects
/// decide (see `registry::repositories`) and the Repository controller runs here.
async fn registry(
    listen: SocketAddr,
    store: StoreChoice,
    token_key_file: &std::path::Path,
    config: oci::RegistryConfig,
    gc: Option<(std::time::Duration, std::time::Duration)>,
    cluster: Option<ClusterWiring>,
) -> anyhow_free::Result {
    let storage: Arc<dyn oci::Storage> = match store {
        StoreChoice::Dir(dir) => Arc::new(oci::FsStorage::open(dir)?),
        StoreChoice::S3(config) => {
            let s3 = oci::S3Storage::connect(&config)?;
            // Fail at start, not at the first push, on a wrong bucket, endpoint or key.
            s3.check().await?;
            info!(bucket = %config.bucket, prefix = %config.prefix, "registry storage on S3");
            Arc::new(s3)
        }
    };
    let signer = oci::TokenSigner::load_or_create(token_key_file)?;
    let mut auth = oci::Authenticator::new(signer);
    let mut policy: Arc<dyn oci::AccessPolicy> = Arc::new(oci::AllowAll);
    let mut changes = None;
    if let Some(wiring) = cluster {
        let client = Client::try_default().await?;
        let health = Arc::new(controllers::WatchHealth::default());
        let (repos, repo_events) = shared_reflector(
            Api::<api::repository::Repository>::all(client.clone()),
            watcher::Config::default(),
            &health,
        );
        info!("waiting for the first list of Repository objects");
        repos.wait_until_ready().await?;
        auth = auth.with_external(Arc::new(oci::tokenreview::TokenReviewVerifier::new(
            client.clone(),
        )));
        policy = Arc::new(oci::repositories::KubeRepositories {
            store: repos.clone(),
        });
        let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
        changes = Some(tx.clone());
        let ctx = Arc::new(controllers::repository::Ctx::new(
            client,
            repos,
            storage.clone(),
            config.registry_id.clone(),
            wiring.public_host,
        ));
        tokio::spawn(controllers::repository::run(
            ctx,
            repo_events,
            rx,
            tx,
            wiring.lifecycle_interval,
        ));
    }
    let state = Arc::new(oci::Registry {
        storage: storage.clone(),
        policy,
        auth,
        config,
        changes,
    });
    if let Some((interval, grace)) = gc {
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(interval);
            tick.tick().await;
            loop {
                tick.tick().await;
                match oci::Storage::delete_unreferenced_blobs(&*storage, grace).await {
                    Ok(r) => info!(?r, "registry garbage collection"),
                    Err(e) => tracing::warn!(error = %e, "registry garbage collection failed"),
                }
            }
        });
    }
    let listener = tokio::net::TcpListener::bind(listen).await?;
    info!(
        "kubecs registry listening on http://{}",
        listener.local_addr()?
    );
    axum::serve(listener, oci::router(state))
        .with_graceful_shutdown(shutdown_signal())
        .await?;
    Ok(())
}

async fn shutdown_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
            .expect("SIGTERM handler");
        tokio::select! {
            _ = ctrl_c => {}
            _ = term.recv() => {}
        }
    }
    #[cfg(not(unix))]
    let _ = ctrl_c.await;
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
    registry_pull: Option<controllers::pullsecret::RegistryPull>,
) -> anyhow_free::Result {
    let client = Client::try_default().await?;
    let mut registry = Registry::with_prefix("kubecs");
    let metrics = Arc::new(Metrics::new(&mut registry));
    let health = Arc::new(controllers::WatchHealth::default());

    let (nodes, node_events) = shared_reflector(
        Api::<Node>::all(client.clone()),
        watcher::Config::default(),
        &health,
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
    // Pods that hold node resources: not Succeeded, not Failed.
    let (pods, _pod_events) = shared_reflector(
        Api::<Pod>::all(client.clone()),
        watcher::Config::default().fields("status.phase!=Succeeded,status.phase!=Failed"),
        &health,
    );
    // Registered task definition revisions.
    let (revisions, revision_events) = shared_reflector(
        Api::<ControllerRevision>::all(client.clone()),
        watcher::Config::default().labels(controllers::taskdef::OWNER_UID_LABEL),
        &health,
    );
    // Task pods in every phase: their owners read stopped tasks too.
    let (tasks, task_events) = shared_reflector(
        Api::<Pod>::all(client.clone()),
        watcher::Config::default().labels(&format!(
            "{}={}",
            api::labels::MANAGED_BY,
            api::labels::MANAGER
        )),
        &health,
    );
    let ready = Arc::new(tokio::sync::Notify::new());
    let admin = tokio::spawn(admin_server(
        admin_addr,
        Arc::new(registry),
        ready.clone(),
        health.clone(),
    ));
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
    context.registry_pull = registry_pull;
    let ctx = Arc::new(context);
    // One active operator: wait for the Lease; losing it ends the process (its pod restarts
    // as a standby), so two leaders never write at once.
    let _lease_task = match lease {
        Some((ns, seconds)) => Some(lead(ctx.client.clone(), &ns, seconds).await?),
        None => None,
    };
    info!("kubecs operator started");
    tokio::join!(
        controllers::cluster::run(ctx.clone(), node_events.clone(), service_events.clone()),
        controllers::taskdef::run(ctx.clone(), taskdefs, taskdef_events, revision_events),
        controllers::service::run(
            ctx.clone(),
            service_events,
            task_events.clone(),
            node_events
        ),
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
/// Watch errors (an RBAC 403, a dropped connection) are logged and make `/ready` fail until
/// the watch lists again; the watcher's backoff retries them.
fn shared_reflector<K>(
    api: Api<K>,
    config: watcher::Config,
    health: &Arc<controllers::WatchHealth>,
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
    let kind = format!("{}.{}", K::plural(&()), K::group(&()));
    let health = health.clone();
    let watch = watcher(api, config.any_semantic())
        .default_backoff()
        .reflect_shared(writer)
        .for_each(move |event| {
            match event {
                Err(e) => {
                    tracing::warn!(watch = %kind, error = %e, "watch failed; retrying");
                    health.failing(&kind, e.to_string());
                }
                Ok(_) => health.recovered(&kind),
            }
            futures::future::ready(())
        });
    tokio::spawn(watch);
    (reader, subscriber)
}

struct Admin {
    registry: Registry,
    ready: std::sync::atomic::AtomicBool,
    watches: Arc<controllers::WatchHealth>,
}

/// `/live`, `/ready` (after the first lists, while every watch works) and `/metrics`.
async fn admin_server(
    addr: SocketAddr,
    registry: Arc<Registry>,
    ready: Arc<tokio::sync::Notify>,
    watches: Arc<controllers::WatchHealth>,
) {
    let registry = Arc::into_inner(registry).expect("the registry has one owner");
    let state = Arc::new(Admin {
        registry,
        ready: false.into(),
        watches,
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
                if !s.ready.load(std::sync::atomic::Ordering::SeqCst) {
                    (StatusCode::SERVICE_UNAVAILABLE, "starting".to_string())
                } else if let Some(why) = s.watches.first_failure() {
                    (StatusCode::SERVICE_UNAVAILABLE, why)
                } else {
                    (StatusCode::OK, "ok".to_string())
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
