//! `kubecs registry`: the OCI registry over filesystem or S3 storage, served until SIGINT or
//! SIGTERM. Bare, every repository is allowed and only registry tokens are accepted. With
//! `--kubernetes`, Repository objects decide (see `registry::repositories`), Kubernetes tokens
//! are accepted, and the background work (the Repository controller: status, lifecycle
//! policies, the images finalizer; and the garbage collection) runs on the replica that holds
//! the `kubecs-registry` Lease, while every replica serves requests.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::future::BoxFuture;
use kube::Client;
use kube::api::Api;
use kube::runtime::watcher;
use tokio::sync::mpsc::{UnboundedReceiver, UnboundedSender, unbounded_channel};
use tracing::info;

use super::Fatal;
use super::operator::LeaseArgs;
use super::wiring::{shared_reflector, shutdown_signal};
use crate::api::pull_through_cache_rule::PullThroughCacheRule;
use crate::api::replication_configuration::ReplicationConfiguration;
use crate::api::repository::Repository;
use crate::api::repository_creation_template::RepositoryCreationTemplate;
use crate::controllers::{self, WatchHealth};
use crate::ecr::pull_through::{CacheRule, TAG_RECHECK};
use crate::registry::{self as oci, DEFAULT_MAX_UPLOAD_BYTES};

/// The Lease whose holder runs the registry's background work.
pub const LEASE: &str = "kubecs-registry";

#[derive(clap::Args)]
#[command(subcommand_negates_reqs = true, args_conflicts_with_subcommands = true)]
pub struct Args {
    #[command(subcommand)]
    action: Option<Action>,
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
    #[command(flatten)]
    s3: S3Args,
    /// File holding the token signing key (32+ bytes); generated if missing.
    #[arg(long, env = "KUBECS_REGISTRY_TOKEN_KEY_FILE", required = true)]
    token_key_file: Option<PathBuf>,
    /// The registry (account) id in ECR's messages.
    #[arg(long, env = "KUBECS_REGISTRY_ID", default_value = "000000000000")]
    registry_id: String,
    /// Accept pushes to repositories that do not exist (instead of NAME_UNKNOWN). With
    /// --kubernetes the push creates the Repository object, with the CREATE_ON_PUSH
    /// repository creation template whose prefix matches.
    #[arg(long, env = "KUBECS_REGISTRY_CREATE_ON_PUSH")]
    create_on_push: bool,
    /// The namespace of a Repository created on push when no template applies and the
    /// pusher is not a ServiceAccount (whose namespace is used otherwise).
    #[arg(
        long,
        env = "KUBECS_REGISTRY_CREATE_ON_PUSH_NAMESPACE",
        default_value = "default"
    )]
    create_on_push_namespace: String,
    /// The largest blob accepted, in bytes.
    #[arg(long, env = "KUBECS_REGISTRY_MAX_UPLOAD_BYTES", default_value_t = DEFAULT_MAX_UPLOAD_BYTES)]
    max_upload_bytes: u64,
    /// Blob upload requests (a monolithic POST, PATCH, PUT) one identity may have in
    /// progress at once; more are 429 TOOMANYREQUESTS (0: no cap).
    #[arg(
        long,
        env = "KUBECS_REGISTRY_MAX_UPLOADS_PER_IDENTITY",
        default_value_t = 64
    )]
    max_uploads_per_identity: usize,
    /// Seconds between garbage collections of unreferenced blobs (0: never).
    #[arg(long, default_value_t = 3600)]
    gc_interval_seconds: u64,
    /// Unreferenced blobs younger than this many seconds are kept (uploads in progress);
    /// at least 1.
    #[arg(long, default_value_t = 86400, value_parser = grace_seconds)]
    gc_grace_seconds: u64,
    /// Seconds a client has to send a request's headers, and to start its next request on
    /// an idle keep-alive connection.
    #[arg(
        long,
        env = "KUBECS_REGISTRY_HEADER_READ_TIMEOUT_SECONDS",
        default_value_t = 30
    )]
    header_read_timeout_seconds: u64,
    /// Seconds a request body may pause between two pieces before the request fails.
    #[arg(
        long,
        env = "KUBECS_REGISTRY_BODY_IDLE_TIMEOUT_SECONDS",
        default_value_t = 60
    )]
    body_idle_timeout_seconds: u64,
    /// A pull through cache rule without Kubernetes (repeatable): `PREFIX=URL` or
    /// `PREFIX=URL/UPSTREAM_PREFIX`, e.g. `docker-hub=registry-1.docker.io` or
    /// `hub=http://127.0.0.1:5001/library`; pulled from anonymously. With --kubernetes the
    /// PullThroughCacheRule objects add theirs.
    #[arg(long = "pull-through-cache", env = "KUBECS_REGISTRY_PULL_THROUGH_CACHE", value_delimiter = ',', value_parser = static_rule)]
    pull_through_cache: Vec<CacheRule>,
    /// Seconds between checks of a cached tag with its upstream (ECR: 24 hours).
    #[arg(
        long,
        env = "KUBECS_REGISTRY_PULL_THROUGH_TAG_RECHECK_SECONDS",
        default_value_t = TAG_RECHECK.as_secs()
    )]
    pull_through_tag_recheck_seconds: u64,
    /// Seconds between writes of the pull times (ECR's lastRecordedPullTime) noted in
    /// memory: each image pulled meanwhile costs one write, however often it was pulled. A
    /// crash loses at most this interval's pulls. 0: pull times are not written (a store
    /// whose reads must write nothing, as the crash-point suite's).
    #[arg(
        long,
        env = "KUBECS_REGISTRY_PULL_TIME_FLUSH_SECONDS",
        default_value_t = 20
    )]
    pull_time_flush_seconds: u64,
    /// Replication without Kubernetes: a JSON or YAML file in the ReplicationConfiguration
    /// spec's shape (`rules` as ECR's PutReplicationConfiguration takes them, and
    /// `destinationRegistries`: `{region, registryId, url, username, passwordFile}` saying
    /// where each destination is). With --kubernetes the ReplicationConfiguration objects
    /// decide and this flag is refused.
    #[arg(
        long,
        env = "KUBECS_REGISTRY_REPLICATION_CONFIG",
        conflicts_with = "kubernetes"
    )]
    replication_config: Option<PathBuf>,
    /// Connections served at once; more wait to be accepted.
    #[arg(long, env = "KUBECS_REGISTRY_MAX_CONNECTIONS", default_value_t = 1024)]
    max_connections: usize,
    #[command(flatten)]
    cluster: KubernetesArgs,
}

/// The GC's grace period. Zero is refused: "fresh" would then mean "stored after the GC
/// started", finer than the media's clocks (S3 reports seconds), and the GC would free the
/// blobs of a push whose manifest has not arrived yet.
fn grace_seconds(s: &str) -> Result<u64, String> {
    match s.parse::<u64>().map_err(|e| e.to_string())? {
        0 => Err(
            "0 would let the garbage collection free blobs that a push is about to \
                  reference (and, by clock resolution, blobs a stored manifest references); \
                  use 1 or more"
                .into(),
        ),
        n => Ok(n),
    }
}

/// `PREFIX=URL[/UPSTREAM_PREFIX]`, checked as ECR checks a rule.
fn static_rule(s: &str) -> Result<CacheRule, String> {
    let (prefix, url) = s
        .split_once('=')
        .ok_or("expected PREFIX=URL or PREFIX=URL/UPSTREAM_PREFIX")?;
    let host_start = url.find("://").map_or(0, |i| i + 3);
    let (url, upstream_prefix) = match url[host_start..].split_once('/') {
        Some((host, p)) if !p.is_empty() => (&url[..host_start + host.len()], Some(p)),
        _ => (url, None),
    };
    CacheRule::new(prefix, url, upstream_prefix, None, None)
}

#[derive(clap::Subcommand)]
enum Action {
    /// Check a store offline (after a disk fault or a crash): every blob hashes to its name,
    /// every manifest to its name with its blobs present and linked, every tag resolves.
    /// Prints what it finds; exit status 1 if anything. Repairs nothing.
    Fsck(FsckArgs),
}

#[derive(clap::Args)]
struct FsckArgs {
    /// Directory of the filesystem storage.
    #[arg(long, required_unless_present = "storage", conflicts_with = "storage")]
    storage_dir: Option<PathBuf>,
    #[command(flatten)]
    s3: S3Args,
}

/// S3-compatible object storage instead of a directory.
#[derive(clap::Args)]
struct S3Args {
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
}

/// ECR semantics from the cluster.
#[derive(clap::Args)]
struct KubernetesArgs {
    /// ECR semantics from the cluster: Repository objects decide which repositories exist,
    /// their tag mutability and policy; Kubernetes bearer tokens are checked with
    /// TokenReview (and exchanged for registry tokens at /kubecs/v1/token); the replica
    /// holding the `kubecs-registry` Lease writes Repository status, applies lifecycle
    /// policies, holds the `ecr.kubecs.io/images` finalizer and collects garbage. Uses the
    /// in-cluster config or KUBECONFIG.
    #[arg(long, env = "KUBECS_REGISTRY_KUBERNETES")]
    kubernetes: bool,
    /// `host[:port]` clients use to reach the registry, shown in `repositoryUri`
    /// (default: the listen address).
    #[arg(long, env = "KUBECS_REGISTRY_PUBLIC_HOST")]
    public_host: Option<String>,
    /// Seconds between applications of the lifecycle policies (also applied when a replica
    /// starts leading); with --kubernetes.
    #[arg(
        long,
        env = "KUBECS_REGISTRY_LIFECYCLE_INTERVAL_SECONDS",
        default_value_t = 3600
    )]
    lifecycle_interval_seconds: u64,
    #[command(flatten)]
    lease: LeaseArgs,
}

/// Where the registry keeps its content.
pub enum StoreChoice {
    Dir(PathBuf),
    S3(oci::S3Config),
}

impl Args {
    pub fn store(&self) -> Result<StoreChoice, Fatal> {
        store_choice(&self.storage_dir, &self.s3)
    }

    fn serve_limits(&self) -> oci::serve::ServeLimits {
        oci::serve::ServeLimits {
            header_read_timeout: Duration::from_secs(self.header_read_timeout_seconds),
            body_idle_timeout: Duration::from_secs(self.body_idle_timeout_seconds),
            max_connections: self.max_connections,
        }
    }

    /// The garbage collection's interval and grace period; None when disabled.
    fn gc(&self) -> Option<(Duration, Duration)> {
        (self.gc_interval_seconds > 0).then(|| {
            (
                Duration::from_secs(self.gc_interval_seconds),
                Duration::from_secs(self.gc_grace_seconds),
            )
        })
    }
}

/// Where the registry keeps its content, from the storage flags.
fn store_choice(dir: &Option<PathBuf>, s3: &S3Args) -> Result<StoreChoice, Fatal> {
    match (&s3.storage, dir) {
        (Some(url), _) => {
            let (bucket, prefix) = oci::S3Config::parse_url(url)?;
            Ok(StoreChoice::S3(oci::S3Config {
                bucket,
                prefix,
                endpoint: s3.s3_endpoint.clone(),
                region: s3.s3_region.clone(),
                allow_http: s3.s3_allow_http,
                conditional_writes: !s3.s3_no_conditional_writes,
            }))
        }
        (None, Some(dir)) => Ok(StoreChoice::Dir(dir.clone())),
        (None, None) => Err("--storage-dir or --storage is required".into()),
    }
}

/// `kubecs registry fsck`.
async fn fsck(a: FsckArgs) -> Result<(), Fatal> {
    let report = match store_choice(&a.storage_dir, &a.s3)? {
        StoreChoice::Dir(dir) => oci::fsck::check(&oci::FsStorage::open(dir)?).await?,
        StoreChoice::S3(config) => {
            let s3 = oci::S3Storage::connect(&config)?;
            s3.check().await?;
            oci::fsck::check(&s3).await?
        }
    };
    for f in &report.findings {
        println!("{f}");
    }
    println!(
        "checked {} blobs ({} bytes), {} manifests, {} tags: {}",
        report.blobs,
        report.bytes,
        report.manifests,
        report.tags,
        if report.clean() {
            "clean".to_string()
        } else {
            format!("{} problems", report.findings.len())
        }
    );
    if !report.clean() {
        std::process::exit(1);
    }
    Ok(())
}

impl From<&Args> for oci::RegistryConfig {
    fn from(a: &Args) -> oci::RegistryConfig {
        oci::RegistryConfig {
            registry_id: a.registry_id.clone(),
            create_on_push: a.create_on_push,
            max_upload_bytes: a.max_upload_bytes,
            max_uploads_per_identity: a.max_uploads_per_identity,
        }
    }
}

async fn open(store: StoreChoice) -> Result<Arc<dyn oci::Storage>, Fatal> {
    Ok(match store {
        StoreChoice::Dir(dir) => Arc::new(oci::FsStorage::open(dir)?),
        StoreChoice::S3(config) => {
            let s3 = oci::S3Storage::connect(&config)?;
            // Fail at start, not at the first push, on a wrong bucket, endpoint or key.
            s3.check().await?;
            info!(bucket = %config.bucket, prefix = %config.prefix, "registry storage on S3");
            Arc::new(s3)
        }
    })
}

pub async fn run(a: Args) -> Result<(), Fatal> {
    if let Some(Action::Fsck(f)) = a.action {
        return fsck(f).await;
    }
    oci::crashpoint::init()?;
    let storage = open(a.store()?).await?;
    let config = oci::RegistryConfig::from(&a);
    let signer = oci::TokenSigner::load_or_create(
        a.token_key_file
            .as_ref()
            .ok_or("--token-key-file is required")?,
    )?;
    let mut auth = oci::Authenticator::new(signer);
    let mut policy: Arc<dyn oci::AccessPolicy> = Arc::new(oci::AllowAll);
    let mut rules: Arc<dyn oci::pull_through::CacheRules> =
        Arc::new(oci::pull_through::StaticRules(a.pull_through_cache.clone()));
    let mut changes = None;
    let mut leadership = None;
    let mut replication_rules: Option<Arc<dyn oci::replication::ReplicationRules>> = None;
    let mut work = Background {
        storage: storage.clone(),
        gc: a.gc(),
        replication: None,
        repositories: None,
        current: Arc::new(Mutex::new(None)),
    };
    if a.cluster.kubernetes {
        let client = Client::try_default().await?;
        let health = Arc::new(WatchHealth::default());
        let (repos, repo_events) = shared_reflector(
            Api::<Repository>::all(client.clone()),
            watcher::Config::default(),
            &health,
        );
        info!("waiting for the first list of Repository objects");
        repos.wait_until_ready().await?;
        // Only the store is read: nothing subscribes to its events.
        let (cache_rules, _) = shared_reflector(
            Api::<PullThroughCacheRule>::all(client.clone()),
            watcher::Config::default(),
            &health,
        );
        cache_rules.wait_until_ready().await?;
        // Only the store is read: nothing subscribes to its events.
        let (templates, _) = shared_reflector(
            Api::<RepositoryCreationTemplate>::all(client.clone()),
            watcher::Config::default(),
            &health,
        );
        templates.wait_until_ready().await?;
        // Only the store is read: nothing subscribes to its events.
        let (replication_configs, _) = shared_reflector(
            Api::<ReplicationConfiguration>::all(client.clone()),
            watcher::Config::default(),
            &health,
        );
        replication_configs.wait_until_ready().await?;
        replication_rules = Some(Arc::new(oci::replication_config::KubeReplication {
            configs: replication_configs,
            repositories: repos.clone(),
            client: client.clone(),
        }));
        let creator = Arc::new(oci::creation::Creator {
            client: client.clone(),
            templates,
            default_namespace: a.create_on_push_namespace.clone(),
        });
        rules = Arc::new(oci::cache_rules::KubeCacheRules {
            store: cache_rules,
            client: client.clone(),
            extra: a.pull_through_cache.clone(),
            creator: creator.clone(),
        });
        auth = auth.with_external(Arc::new(oci::tokenreview::TokenReviewVerifier::new(
            client.clone(),
        )));
        policy = Arc::new(oci::repositories::KubeRepositories {
            store: repos.clone(),
            creator: a.create_on_push.then_some(creator),
        });
        let (tx, rx) = unbounded_channel();
        changes = Some(tx);
        let ctx = Arc::new(controllers::repository::Ctx::new(
            client.clone(),
            repos.clone(),
            storage.clone(),
            config.registry_id.clone(),
            a.cluster
                .public_host
                .clone()
                .unwrap_or_else(|| a.listen.to_string()),
        ));
        work.repositories = Some(RepositoryWork {
            ctx,
            events: Box::new(move || Box::pin(repo_events.subscribe())),
            lifecycle_interval: Duration::from_secs(a.cluster.lifecycle_interval_seconds),
        });
        tokio::spawn(route_changes(
            rx,
            work.current.clone(),
            client.clone(),
            repos,
        ));
        let lease = &a.cluster.lease;
        if lease.leader_election {
            leadership = Some(
                crate::lease::join(client, &lease.lease_namespace, LEASE, lease.lease_seconds)
                    .await?,
            );
        }
    }
    if let Some(path) = &a.replication_config {
        replication_rules = Some(Arc::new(oci::replication::StaticConfig::load(path)?));
    }
    let replication = replication_rules.map(|rules| {
        oci::replication::Replicator::new(
            rules,
            storage.clone(),
            config.registry_id.clone(),
            changes.clone(),
        )
    });
    let pull_through = oci::pull_through::PullThrough::new(
        rules,
        storage.clone(),
        Duration::from_secs(a.pull_through_tag_recheck_seconds),
        config.max_upload_bytes,
        changes.clone(),
    );
    let (stop, stopped) = tokio::sync::watch::channel(false);
    let pulls = Arc::new(oci::pulls::PullTimes::default());
    // Every replica records the pulls it serves, leader or not.
    let flusher = (a.pull_time_flush_seconds > 0).then(|| {
        tokio::spawn(flush_pulls(
            pulls.clone(),
            storage.clone(),
            Duration::from_secs(a.pull_time_flush_seconds),
            changes.clone(),
            stopped.clone(),
        ))
    });
    // Every replica queues its pushes; one worker (the leader's) copies them.
    if let Some(r) = &replication {
        work.replication = Some(r.clone());
    }
    let state = Arc::new(oci::Registry {
        storage,
        policy,
        auth,
        config,
        changes,
        uploads: Default::default(),
        pulls: pulls.clone(),
        pull_through: Some(pull_through),
        replication,
    });
    let background = tokio::spawn(supervise(Arc::new(work), leadership, stopped));
    let listener = tokio::net::TcpListener::bind(a.listen).await?;
    info!(
        "kubecs registry listening on http://{}",
        listener.local_addr()?
    );
    oci::serve::serve(
        listener,
        oci::router(state),
        a.serve_limits(),
        shutdown_signal(),
    )
    .await?;
    let _ = stop.send(true);
    let _ = background.await;
    if let Some(flusher) = flusher {
        let _ = flusher.await;
    }
    Ok(())
}

/// Writes the noted pull times every `interval` (see `registry::pulls`), and once more when
/// `stopped` (the server has finished its requests).
async fn flush_pulls(
    pulls: Arc<oci::pulls::PullTimes>,
    storage: Arc<dyn oci::Storage>,
    interval: Duration,
    changes: Option<UnboundedSender<String>>,
    mut stopped: tokio::sync::watch::Receiver<bool>,
) {
    // A repository whose pull times were written has a new lastPulledAt to show.
    let recorded = move |repo: &str| {
        if let Some(tx) = &changes {
            let _ = tx.send(repo.to_string());
        }
    };
    let mut tick = tokio::time::interval(interval);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        let last = tokio::select! {
            _ = tick.tick() => false,
            _ = stopped.wait_for(|s| *s) => true,
        };
        if let Err(e) = pulls.flush(&*storage, &recorded).await {
            tracing::warn!(error = %e, "recording pull times failed; kept for the next try");
        }
        if last {
            return;
        }
    }
}

/// The registry's background work, started for each term of leadership.
struct Background {
    storage: Arc<dyn oci::Storage>,
    gc: Option<(Duration, Duration)>,
    /// The replication worker (see `registry::replication`).
    replication: Option<Arc<oci::replication::Replicator>>,
    repositories: Option<RepositoryWork>,
    /// During a term, where the Repository controller takes change notices.
    current: Arc<Mutex<Option<UnboundedSender<String>>>>,
}

type RepositoryEvents = Box<
    dyn Fn() -> std::pin::Pin<Box<dyn futures::Stream<Item = Arc<Repository>> + Send>>
        + Send
        + Sync,
>;

struct RepositoryWork {
    ctx: Arc<controllers::repository::Ctx>,
    /// A fresh subscription to the Repository watch for each term.
    events: RepositoryEvents,
    lifecycle_interval: Duration,
}

impl Background {
    /// One term: the Repository controller with its lifecycle loop, and the GC loop, until
    /// the future is dropped.
    fn term(&self) -> BoxFuture<'static, ()> {
        let repositories = self.repositories.as_ref().map(|w| {
            let (tx, rx) = unbounded_channel();
            *self.current.lock().expect("not poisoned") = Some(tx.clone());
            controllers::repository::run(w.ctx.clone(), (w.events)(), rx, tx, w.lifecycle_interval)
        });
        let gc = self
            .gc
            .map(|(interval, grace)| gc_loop(self.storage.clone(), interval, grace));
        // Runs until the term's future is dropped.
        let replication = self.replication.clone().map(|r| r.run());
        Box::pin(async move {
            tokio::join!(
                async move {
                    if let Some(r) = replication {
                        r.await
                    }
                },
                async move {
                    if let Some(r) = repositories {
                        r.await
                    }
                },
                async move {
                    if let Some(g) = gc {
                        g.await
                    }
                },
            );
        })
    }

    fn end_term(&self) {
        *self.current.lock().expect("not poisoned") = None;
    }
}

/// Runs the background work whenever this replica leads (always, without leader election),
/// until `stopped`; then releases the lease.
async fn supervise(
    work: Arc<Background>,
    mut leadership: Option<crate::lease::Leadership>,
    mut stopped: tokio::sync::watch::Receiver<bool>,
) {
    let Some(mut lead) = leadership.take() else {
        tokio::select! {
            _ = work.term() => {}
            _ = stopped.wait_for(|s| *s) => {}
        }
        return;
    };
    loop {
        info!(identity = %lead.identity, "standby: waiting for the {LEASE} lease; serving requests");
        let acquired = tokio::select! {
            acquired = lead.acquired() => acquired,
            _ = stopped.wait_for(|s| *s) => break,
        };
        if !acquired {
            tracing::error!("the {LEASE} lease manager stopped: no background work here");
            let _ = stopped.wait_for(|s| *s).await;
            return;
        }
        info!(identity = %lead.identity, "leading: holding the {LEASE} lease; running Repository status, lifecycle policies, replication and garbage collection");
        let term = work.term();
        let end = tokio::select! {
            _ = term => false,
            _ = lead.lost() => false,
            _ = stopped.wait_for(|s| *s) => true,
        };
        work.end_term();
        if end {
            break;
        }
        tracing::warn!(identity = %lead.identity, "lost the {LEASE} lease: background work stopped; still serving requests");
    }
    lead.release().await;
}

async fn gc_loop(storage: Arc<dyn oci::Storage>, interval: Duration, grace: Duration) {
    let mut tick = tokio::time::interval(interval);
    // The first tick fires at once: collect one interval after the start (of a term).
    tick.tick().await;
    loop {
        tick.tick().await;
        match storage.delete_unreferenced_blobs(grace).await {
            Ok(r) => info!(?r, "registry garbage collection"),
            Err(e) => tracing::warn!(error = %e, "registry garbage collection failed"),
        }
    }
}

/// Change notices from the request handlers: to this replica's Repository controller while it
/// leads, else announced on the Repository object for the leader.
async fn route_changes(
    mut rx: UnboundedReceiver<String>,
    current: Arc<Mutex<Option<UnboundedSender<String>>>>,
    client: Client,
    repos: kube::runtime::reflector::Store<Repository>,
) {
    while let Some(name) = rx.recv().await {
        let local = current.lock().expect("not poisoned").clone();
        match local {
            Some(tx) if tx.send(name.clone()).is_ok() => {}
            _ => controllers::repository::announce_change(&client, &repos, &name).await,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn static_rules_name_a_prefix_an_upstream_and_its_prefix() {
        let r = static_rule("hub=http://127.0.0.1:5001/library").unwrap();
        assert_eq!(r.ecr_repository_prefix, "hub");
        assert_eq!(r.upstream_registry_url, "http://127.0.0.1:5001");
        assert_eq!(r.upstream_repository_prefix.as_deref(), Some("library"));
        let r = static_rule("docker-hub=registry-1.docker.io").unwrap();
        assert_eq!(r.upstream_registry_url, "https://registry-1.docker.io");
        assert_eq!(r.upstream_repository_prefix, None);
        assert!(static_rule("registry-1.docker.io").is_err());
        assert!(static_rule("H=quay.io").is_err());
    }
}
