//! Replication (ECR's registry replication): images pushed to a repository that a rule
//! matches are copied, asynchronously, to the rule's destinations: other kubecs registries or
//! any OCI registry.
//!
//! - **Durable queue.** A manifest push (by digest or tag) writes the image's replication
//!   record (`_replication/` beside the manifests: each destination IN_PROGRESS) before the
//!   push is acknowledged, then wakes the worker. The worker settles each destination
//!   COMPLETE, or on a failure backs off (`ecr::replication::retry_delay`) and retries, until
//!   FAILED. At start the worker rescans every repository's records, so a killed registry
//!   resumes where it stopped (and retries what had FAILED); it rescans periodically too,
//!   for what other replicas on a shared bucket queued.
//! - **Copy order.** Blobs first (skipped when the destination has them: a HEAD; mounted
//!   from another repository of the destination that this process copied the blob to;
//!   otherwise streamed from the store), then the manifests an index lists, then the
//!   manifest by digest, then its tags. Within a repository, subjects before the images that
//!   refer to them; a copied image queues its referrers (signatures, SBOMs) for the same
//!   destination, so they follow it even when they were pushed before the rule existed.
//! - **Destinations** are named as ECR names them, `region` + `registryId`; where one is, and
//!   its credentials, come from the `ReplicationConfiguration`'s `destinationRegistries`
//!   (or `--replication-config`). Requests carry [`SOURCE_HEADER`], so that a kubecs
//!   destination that creates the repository on push applies its REPLICATION creation
//!   template.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use axum::http::{Method, Request, StatusCode, header};
use bytes::Bytes;
use futures::TryStreamExt;
use futures::future::BoxFuture;
use http_body_util::{BodyExt, Full, Limited, StreamBody};
use hyper::body::Frame;
use serde::Deserialize;
use tokio::sync::Notify;
use tokio::sync::mpsc::UnboundedSender;

use super::digest::Digest;
use super::manifest::parse_manifest;
use super::pull_through::redirect_target;
use super::storage::{Storage, StorageResult};
use crate::api::replication_configuration::{
    DestinationRegistry, ReplicationDestination, ReplicationRule,
};
use crate::challenge::{self, Unanswered};
use crate::ecr::replication::{FailureCode, ImageReplication, copy_order, destinations_for};

/// The header on every request of a replication: the source registry's id. A kubecs
/// registry that creates the repository on push then applies its REPLICATION template.
pub const SOURCE_HEADER: &str = "kubecs-replication-source";

/// How long a destination may take to answer a request's head.
const TIMEOUT: Duration = Duration::from_secs(30);
/// How often every repository's records are read again (other replicas' pushes).
pub const RESCAN: Duration = Duration::from_secs(30);

/// Where a destination is.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Endpoint {
    /// `https://HOST[:PORT]`, no trailing `/`.
    pub url: String,
    /// User and password (or access token) for its Basic or Bearer challenge.
    pub credentials: Option<(String, String)>,
}

/// Where the rules come from: ReplicationConfiguration objects, or a file.
pub trait ReplicationRules: Send + Sync + 'static {
    /// The destinations of `repo`'s pushes.
    fn destinations(&self, repo: &str) -> Vec<ReplicationDestination>;
    /// Where destination `d` of `repo`'s rules is; None when nothing says.
    fn endpoint<'a>(
        &'a self,
        repo: &'a str,
        d: &'a ReplicationDestination,
    ) -> BoxFuture<'a, Result<Option<Endpoint>, String>>;
}

/// `--replication-config FILE`: a configuration without Kubernetes (JSON or YAML), in the
/// `ReplicationConfiguration` spec's shape; a destination registry's credentials are given
/// as `username` and `passwordFile` instead of a Secret.
#[derive(Deserialize, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct StaticConfig {
    #[serde(default)]
    pub rules: Vec<ReplicationRule>,
    #[serde(default)]
    pub destination_registries: Vec<StaticDestination>,
}

#[derive(Deserialize, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct StaticDestination {
    pub region: String,
    pub registry_id: String,
    pub url: String,
    #[serde(default)]
    pub username: Option<String>,
    /// A file holding the password (for a kubecs registry, a token of `kubecs registry-token`).
    #[serde(default)]
    pub password_file: Option<std::path::PathBuf>,
}

impl StaticConfig {
    /// Reads and checks a configuration file.
    pub fn load(path: &std::path::Path) -> Result<StaticConfig, String> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| format!("reading {}: {e}", path.display()))?;
        let c: StaticConfig =
            serde_yaml::from_str(&text).map_err(|e| format!("{}: {e}", path.display()))?;
        crate::ecr::replication::validate(&c.rules)?;
        for d in &c.destination_registries {
            normalized_url(&d.url)?;
        }
        Ok(c)
    }
}

/// A registry URL without its trailing `/`; `https://` when it names no scheme.
pub fn normalized_url(url: &str) -> Result<String, String> {
    let url = url.trim_end_matches('/');
    let url = match url.contains("://") {
        true => url.to_string(),
        false => format!("https://{url}"),
    };
    match url.starts_with("https://") || url.starts_with("http://") {
        true => Ok(url),
        false => Err(format!(
            "{url}: a destination registry URL is http:// or https://"
        )),
    }
}

/// A `destinationRegistries` entry: the destination it says where is.
pub trait NamesDestination {
    fn names(&self, d: &ReplicationDestination) -> bool;
}

impl NamesDestination for DestinationRegistry {
    fn names(&self, d: &ReplicationDestination) -> bool {
        self.region == d.region && self.registry_id == d.registry_id
    }
}

impl NamesDestination for StaticDestination {
    fn names(&self, d: &ReplicationDestination) -> bool {
        self.region == d.region && self.registry_id == d.registry_id
    }
}

/// The entry of `registries` for destination `d`.
pub fn registry_of<'a, R: NamesDestination>(
    registries: &'a [R],
    d: &ReplicationDestination,
) -> Option<&'a R> {
    registries.iter().find(|r| r.names(d))
}

impl ReplicationRules for StaticConfig {
    fn destinations(&self, repo: &str) -> Vec<ReplicationDestination> {
        destinations_for(&self.rules, repo)
    }

    fn endpoint<'a>(
        &'a self,
        _repo: &'a str,
        d: &'a ReplicationDestination,
    ) -> BoxFuture<'a, Result<Option<Endpoint>, String>> {
        Box::pin(async move {
            let Some(r) = registry_of(&self.destination_registries, d) else {
                return Ok(None);
            };
            let credentials = match &r.password_file {
                Some(f) => {
                    let password = tokio::fs::read_to_string(f)
                        .await
                        .map_err(|e| format!("reading {}: {e}", f.display()))?;
                    let user = r.username.clone().unwrap_or_else(|| "AWS".into());
                    Some((user, password.trim().to_string()))
                }
                None => None,
            };
            Ok(Some(Endpoint {
                url: normalized_url(&r.url)?,
                credentials,
            }))
        })
    }
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default()
        .as_millis() as u64
}

fn parse_record(raw: &[u8]) -> Option<ImageReplication> {
    serde_json::from_slice(raw).ok()
}

fn encode(r: &ImageReplication) -> Bytes {
    Bytes::from(serde_json::to_vec(r).expect("a replication record serializes"))
}

/// The replication records of a repository, parsed (garbage is skipped).
pub async fn records(
    storage: &dyn Storage,
    repo: &str,
) -> StorageResult<BTreeMap<Digest, ImageReplication>> {
    Ok(storage
        .replication_records(repo)
        .await?
        .into_iter()
        .filter_map(|(d, raw)| Some((d, parse_record(&raw)?)))
        .collect())
}

/// Why one copy failed: its code and what happened.
#[derive(Debug)]
struct Failure {
    code: FailureCode,
    detail: String,
}

impl Failure {
    fn unavailable(detail: impl Into<String>) -> Failure {
        Failure {
            code: FailureCode::DestinationUnavailable,
            detail: detail.into(),
        }
    }
}

/// A destination's answer read to its end (small: errors, manifests' acknowledgements).
struct Answer {
    status: StatusCode,
    headers: axum::http::HeaderMap,
    body: Bytes,
}

impl Answer {
    fn failure(&self, what: &str) -> Failure {
        let first = serde_json::from_slice::<serde_json::Value>(&self.body)
            .ok()
            .and_then(|v| v.get("errors")?.get(0).cloned());
        let code = first
            .as_ref()
            .and_then(|e| e.get("code")?.as_str().map(str::to_string));
        let message = first
            .as_ref()
            .and_then(|e| e.get("message")?.as_str().map(str::to_string))
            .unwrap_or_default();
        let name_unknown = code.as_deref() == Some("NAME_UNKNOWN");
        Failure {
            code: FailureCode::of_status(self.status.as_u16(), name_unknown)
                .unwrap_or(FailureCode::Rejected),
            detail: format!(
                "{what}: {} {} {message}",
                self.status,
                code.unwrap_or_default()
            ),
        }
    }
}

/// The registry's replication worker and the push handler's hook.
pub struct Replicator {
    rules: Arc<dyn ReplicationRules>,
    storage: Arc<dyn Storage>,
    /// This registry's id, sent in [`SOURCE_HEADER`].
    registry_id: String,
    /// Repositories pushed to since the worker last looked (a set: bounded by the number of
    /// repositories however long no worker runs, as on a replica that does not lead).
    woken: Mutex<BTreeSet<String>>,
    wake: Notify,
    /// Held by the running worker (one per process; a new term waits for the last one's end).
    running: tokio::sync::Mutex<()>,
    /// Told the repository name when a record settles (Repository status).
    changes: Option<UnboundedSender<String>>,
    /// A repository of each destination that holds each blob this process copied there:
    /// where to mount it from next time.
    mounts: Mutex<HashMap<(String, Digest), String>>,
    /// The last `Authorization` each destination repository took.
    auth: challenge::Remembered,
}

impl Replicator {
    pub fn new(
        rules: Arc<dyn ReplicationRules>,
        storage: Arc<dyn Storage>,
        registry_id: String,
        changes: Option<UnboundedSender<String>>,
    ) -> Arc<Replicator> {
        Arc::new(Replicator {
            rules,
            storage,
            registry_id,
            woken: Mutex::default(),
            wake: Notify::new(),
            running: tokio::sync::Mutex::new(()),
            mounts: Mutex::default(),
            auth: Default::default(),
            changes,
        })
    }

    /// Queues a pushed image (its manifest, or a tag pointing at it) for the destinations of
    /// `repo`'s rules: durable before the push is acknowledged. Nothing when no rule matches.
    pub async fn pushed(&self, repo: &str, digest: &Digest) -> StorageResult<()> {
        let destinations = self.rules.destinations(repo);
        if destinations.is_empty() {
            return Ok(());
        }
        let prior = self.storage.replication_record(repo, digest).await?;
        let record = ImageReplication::queued(
            prior.and_then(|p| parse_record(&p)),
            &destinations,
            now_ms(),
        );
        self.storage
            .put_replication_record(repo, digest, Some(encode(&record)))
            .await?;
        self.woken.lock().expect("woken").insert(repo.to_string());
        self.wake.notify_one();
        Ok(())
    }

    /// The worker: a rescan at start (retrying what had FAILED), then each repository when a
    /// push wakes it, when a backoff ends, and every [`RESCAN`], until the future is dropped.
    pub async fn run(self: Arc<Self>) {
        let _running = self.running.lock().await;
        let mut due: BTreeMap<String, u64> = BTreeMap::new();
        self.rescan(&mut due, true).await;
        let mut last_scan = tokio::time::Instant::now();
        loop {
            let now = now_ms();
            let ready: Vec<String> = due
                .iter()
                .filter(|(_, at)| **at <= now)
                .map(|(r, _)| r.clone())
                .collect();
            for repo in ready {
                due.remove(&repo);
                match self.pass(&repo).await {
                    Ok(Some(next)) => {
                        due.insert(repo, next);
                    }
                    Ok(None) => {}
                    Err(e) => {
                        tracing::warn!(repo, error = %e, "replication: reading the store failed; trying again");
                        due.insert(repo, now_ms() + 5_000);
                    }
                }
            }
            let sleep = due
                .values()
                .min()
                .map(|at| Duration::from_millis(at.saturating_sub(now_ms())))
                .unwrap_or(RESCAN)
                .min(RESCAN.saturating_sub(last_scan.elapsed()));
            tokio::select! {
                _ = self.wake.notified() => {}
                _ = tokio::time::sleep(sleep) => {}
            }
            for repo in std::mem::take(&mut *self.woken.lock().expect("woken")) {
                due.insert(repo, 0);
            }
            if last_scan.elapsed() >= RESCAN {
                self.rescan(&mut due, false).await;
                last_scan = tokio::time::Instant::now();
            }
        }
    }

    /// Every repository with pending records becomes due at its next attempt; at start,
    /// FAILED records are retried too.
    async fn rescan(&self, due: &mut BTreeMap<String, u64>, start: bool) {
        let repos = match self.storage.list_repositories().await {
            Ok(r) => r,
            Err(e) => {
                tracing::warn!(error = %e, "replication: listing repositories failed");
                return;
            }
        };
        for repo in repos {
            let Ok(records) = records(&*self.storage, &repo).await else {
                continue;
            };
            for (d, mut r) in records {
                if start && r.retry_failed() {
                    let _ = self
                        .storage
                        .put_replication_record(&repo, &d, Some(encode(&r)))
                        .await;
                }
                if let Some(at) = r.next_attempt_ms() {
                    let e = due.entry(repo.clone()).or_insert(at);
                    *e = (*e).min(at);
                }
            }
        }
    }

    /// Copies `repo`'s due images; the time of its next due attempt, if any.
    async fn pass(&self, repo: &str) -> StorageResult<Option<u64>> {
        let records = records(&*self.storage, repo).await?;
        let images: HashMap<Digest, super::storage::ImageInfo> = self
            .storage
            .list_images(repo)
            .await?
            .into_iter()
            .map(|i| (i.digest.clone(), i))
            .collect();
        let mut subjects = BTreeMap::new();
        for d in records.keys() {
            match images.get(d) {
                Some(i) => {
                    subjects.insert(d.clone(), i.subject.clone());
                }
                // Deleted since its push: deletions are not replicated.
                None => self.storage.put_replication_record(repo, d, None).await?,
            }
        }
        let mut again = false;
        for digest in copy_order(&subjects) {
            let Some(image) = images.get(&digest) else {
                continue;
            };
            for d in records[&digest].due(now_ms()) {
                let started = now_ms();
                let outcome = self.copy_image(repo, image, &d).await;
                if let Err(f) = &outcome {
                    tracing::warn!(repo, digest = %digest, region = %d.region, registry_id = %d.registry_id,
                        code = ?f.code, error = %f.detail, "replication attempt failed");
                } else {
                    tracing::info!(repo, digest = %digest, region = %d.region, registry_id = %d.registry_id, "replicated");
                    again |= self.queue_referrers(repo, &digest, &d).await?;
                }
                // Settled on the record as it is now: a push meanwhile queued it again.
                let fresh = self.storage.replication_record(repo, &digest).await?;
                let Some(mut r) = fresh.and_then(|f| parse_record(&f)) else {
                    continue;
                };
                if r.settle(&d, started, now_ms(), outcome.map_err(|f| f.code)) {
                    self.storage
                        .put_replication_record(repo, &digest, Some(encode(&r)))
                        .await?;
                    if let Some(tx) = &self.changes {
                        let _ = tx.send(repo.to_string());
                    }
                }
            }
        }
        if again {
            return Ok(Some(0));
        }
        let next = self::records(&*self.storage, repo)
            .await?
            .values()
            .filter_map(ImageReplication::next_attempt_ms)
            .min();
        Ok(next)
    }

    /// Queues the referrers of `digest` that `d` does not have yet: they go with their subject.
    async fn queue_referrers(
        &self,
        repo: &str,
        digest: &Digest,
        d: &ReplicationDestination,
    ) -> StorageResult<bool> {
        let mut queued = false;
        for referrer in self.storage.referrers(repo, digest).await? {
            let prior = self
                .storage
                .replication_record(repo, &referrer.digest)
                .await?
                .and_then(|p| parse_record(&p));
            if prior
                .as_ref()
                .is_some_and(|p| p.destinations.iter().any(|s| s.destination() == *d))
            {
                continue;
            }
            let r = ImageReplication::queued(prior, std::slice::from_ref(d), now_ms());
            self.storage
                .put_replication_record(repo, &referrer.digest, Some(encode(&r)))
                .await?;
            queued = true;
        }
        Ok(queued)
    }

    /// Copies one image with its tags to `d`.
    async fn copy_image(
        &self,
        repo: &str,
        image: &super::storage::ImageInfo,
        d: &ReplicationDestination,
    ) -> Result<(), Failure> {
        let ep = self
            .rules
            .endpoint(repo, d)
            .await
            .map_err(Failure::unavailable)?
            .ok_or_else(|| Failure {
                code: FailureCode::DestinationUnknown,
                detail: "no destinationRegistries entry names this region and registryId".into(),
            })?;
        let bytes = self.copy_manifest(&ep, repo, &image.digest, 0).await?;
        for tag in &image.tags {
            self.put_manifest(&ep, repo, tag, &bytes).await?;
        }
        Ok(())
    }

    /// Copies a manifest by digest after what it references (blobs, listed manifests);
    /// returns its bytes and media type.
    fn copy_manifest<'a>(
        &'a self,
        ep: &'a Endpoint,
        repo: &'a str,
        digest: &'a Digest,
        depth: usize,
    ) -> BoxFuture<'a, Result<(Bytes, String), Failure>> {
        Box::pin(async move {
            let m = self
                .storage
                .get_manifest(repo, digest)
                .await
                .map_err(|e| Failure::unavailable(format!("reading the manifest: {e}")))?
                .ok_or_else(|| Failure {
                    code: FailureCode::Rejected,
                    detail: format!("{digest} is no longer in the registry"),
                })?;
            let parsed = parse_manifest(&m.bytes, Some(&m.media_type)).map_err(|e| Failure {
                code: FailureCode::Rejected,
                detail: e.to_string(),
            })?;
            if depth < 4 {
                for child in &parsed.children {
                    self.copy_manifest(ep, repo, child, depth + 1).await?;
                }
            }
            for blob in &parsed.blobs {
                self.copy_blob(ep, repo, blob).await?;
            }
            let out = (m.bytes.clone(), m.media_type.clone());
            self.put_manifest(ep, repo, &digest.to_string(), &out)
                .await?;
            Ok(out)
        })
    }

    async fn put_manifest(
        &self,
        ep: &Endpoint,
        repo: &str,
        reference: &str,
        (bytes, media_type): &(Bytes, String),
    ) -> Result<(), Failure> {
        let url = format!("{}/v2/{repo}/manifests/{reference}", ep.url);
        let a = self
            .send(ep, repo, Method::PUT, &url, Some(media_type), bytes.clone())
            .await?;
        match a.status {
            StatusCode::CREATED | StatusCode::OK | StatusCode::ACCEPTED => Ok(()),
            _ => Err(a.failure(&format!("PUT manifest {reference}"))),
        }
    }

    /// Puts a blob at the destination unless it has it: a HEAD, else a mount from a
    /// repository this process copied it to, else an upload streamed from the store.
    async fn copy_blob(&self, ep: &Endpoint, repo: &str, blob: &Digest) -> Result<(), Failure> {
        let head = format!("{}/v2/{repo}/blobs/{blob}", ep.url);
        let a = self
            .send(ep, repo, Method::HEAD, &head, None, Bytes::new())
            .await?;
        if a.status == StatusCode::OK {
            return Ok(());
        }
        let key = (ep.url.clone(), blob.clone());
        let from = self.mounts.lock().expect("mounts").get(&key).cloned();
        let start = match &from {
            Some(f) if f != repo => {
                format!("{}/v2/{repo}/blobs/uploads/?mount={blob}&from={f}", ep.url)
            }
            _ => format!("{}/v2/{repo}/blobs/uploads/", ep.url),
        };
        let a = self
            .send(ep, repo, Method::POST, &start, None, Bytes::new())
            .await?;
        if a.status == StatusCode::CREATED {
            return Ok(());
        }
        if a.status != StatusCode::ACCEPTED {
            return Err(a.failure("starting a blob upload"));
        }
        let location = a
            .headers
            .get(header::LOCATION)
            .and_then(|v| v.to_str().ok())
            .ok_or_else(|| Failure::unavailable("the upload answer has no Location"))?;
        let target = redirect_target(&start, location);
        let sep = if target.contains('?') { '&' } else { '?' };
        let target = format!("{target}{sep}digest={blob}");
        let read = self
            .storage
            .read_blob(repo, blob, None)
            .await
            .map_err(|e| Failure::unavailable(format!("reading blob {blob}: {e}")))?
            .ok_or_else(|| Failure {
                code: FailureCode::Rejected,
                detail: format!("blob {blob} is no longer in the registry"),
            })?;
        let body = http_body_util::combinators::UnsyncBoxBody::new(StreamBody::new(
            read.stream.map_ok(Frame::data),
        ));
        let mut b = Request::builder()
            .method(Method::PUT)
            .uri(&target)
            .header(header::CONTENT_LENGTH, read.size)
            .header(header::CONTENT_TYPE, "application/octet-stream")
            .header(SOURCE_HEADER, &self.registry_id);
        if let Some(auth) = self.known_auth(ep, repo) {
            b = b.header(header::AUTHORIZATION, auth);
        }
        let req = b
            .body(body)
            .map_err(|e| Failure::unavailable(e.to_string()))?;
        let client = crate::http::streaming_client().map_err(Failure::unavailable)?;
        let resp = client
            .request(req)
            .await
            .map_err(|e| Failure::unavailable(format!("{target}: {e}")))?;
        let a = read_answer(resp).await?;
        if a.status != StatusCode::CREATED {
            return Err(a.failure(&format!("uploading blob {blob}")));
        }
        self.mounts
            .lock()
            .expect("mounts")
            .insert(key, repo.to_string());
        Ok(())
    }

    fn known_auth(&self, ep: &Endpoint, repo: &str) -> Option<String> {
        let scope = format!("{}/{repo}", ep.url);
        self.auth.get(&scope)
    }

    /// A small request to the destination, answering its challenge once (Basic or a Bearer
    /// token for `pull,push`) and remembering the answer for the repository.
    async fn send(
        &self,
        ep: &Endpoint,
        repo: &str,
        method: Method,
        url: &str,
        content_type: Option<&str>,
        body: Bytes,
    ) -> Result<Answer, Failure> {
        let known = self.known_auth(ep, repo);
        let a = self
            .send_once(&method, url, content_type, &body, known.as_deref())
            .await?;
        if a.status != StatusCode::UNAUTHORIZED {
            return Ok(a);
        }
        let challenge = challenge::of(&a.headers);
        let authorization = match challenge::answer_for(
            challenge.as_deref(),
            Some(repo),
            "pull,push",
            ep.credentials.as_ref(),
        )
        .await
        {
            Ok(Some(auth)) => auth,
            Ok(None) => return Ok(a),
            Err(Unanswered::NeedsCredentials) => {
                return Err(Failure {
                    code: FailureCode::AccessDenied,
                    detail: "the destination asks for credentials and none are configured".into(),
                });
            }
            Err(Unanswered::Token(e)) => {
                return Err(Failure {
                    code: FailureCode::AccessDenied,
                    detail: e,
                });
            }
        };
        let a = self
            .send_once(&method, url, content_type, &body, Some(&authorization))
            .await?;
        if a.status != StatusCode::UNAUTHORIZED {
            self.auth
                .remember(format!("{}/{repo}", ep.url), authorization);
        }
        Ok(a)
    }

    async fn send_once(
        &self,
        method: &Method,
        url: &str,
        content_type: Option<&str>,
        body: &Bytes,
        authorization: Option<&str>,
    ) -> Result<Answer, Failure> {
        let mut b = Request::builder()
            .method(method.clone())
            .uri(url)
            .header(SOURCE_HEADER, &self.registry_id);
        if let Some(t) = content_type {
            b = b.header(header::CONTENT_TYPE, t);
        }
        if *method != Method::HEAD && *method != Method::GET {
            b = b.header(header::CONTENT_LENGTH, body.len());
        }
        if let Some(a) = authorization {
            b = b.header(header::AUTHORIZATION, a);
        }
        let req = b
            .body(Full::new(body.clone()))
            .map_err(|e| Failure::unavailable(e.to_string()))?;
        let resp = crate::http::open(req, "the replication destination", TIMEOUT)
            .await
            .map_err(|e| Failure::unavailable(e.to_string()))?;
        read_answer(resp).await
    }
}

/// Reads a destination's answer (at most 64 KiB of it: acknowledgements and errors).
async fn read_answer(resp: axum::http::Response<hyper::body::Incoming>) -> Result<Answer, Failure> {
    let (parts, body) = resp.into_parts();
    let body = tokio::time::timeout(TIMEOUT, Limited::new(body, 64 * 1024).collect())
        .await
        .map_err(|_| Failure::unavailable("the destination's answer stalled"))?
        .map(|b| b.to_bytes())
        .unwrap_or_default();
    Ok(Answer {
        status: parts.status,
        headers: parts.headers,
        body,
    })
}

/// An image's statuses as the image list shows them (ECR's DescribeImageReplicationStatus).
pub fn statuses_of(r: &ImageReplication) -> Vec<crate::registry::images::ReplicationStatusEntry> {
    r.destinations
        .iter()
        .map(|s| crate::registry::images::ReplicationStatusEntry {
            region: s.region.clone(),
            registry_id: s.registry_id.clone(),
            status: s.status,
            failure_code: s.failure_code,
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn destination_urls_default_to_https_and_lose_their_slash() {
        assert_eq!(normalized_url("r.io/").unwrap(), "https://r.io");
        assert_eq!(
            normalized_url("http://127.0.0.1:5001").unwrap(),
            "http://127.0.0.1:5001"
        );
        assert!(normalized_url("ftp://r.io").is_err());
    }

    #[test]
    fn a_static_configuration_names_its_destinations() {
        let c: StaticConfig = serde_yaml::from_str(
            r#"{"rules": [{"destinations": [{"region": "west", "registryId": "000000000002"}],
                "repositoryFilters": [{"filter": "app", "filterType": "PREFIX_MATCH"}]}],
              "destinationRegistries": [{"region": "west", "registryId": "000000000002",
                "url": "http://127.0.0.1:5001"}]}"#,
        )
        .unwrap();
        assert_eq!(c.destinations("app/web").len(), 1);
        assert!(c.destinations("other").is_empty());
    }
}
