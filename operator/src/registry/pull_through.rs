//! Pull through cache (ECR's pull through cache rules): a pull of `PREFIX/NAME` that misses
//! the store is filled from the rule's upstream registry, then served from the store.
//!
//! - Blobs stream to the client while they are written to the store through the store's
//!   own upload path (`put_blob`: verified against their digest, visible only once durable).
//!   The client's last piece is held back until the store has verified the blob: a blob that
//!   fails verification is not stored and the client's connection is aborted.
//! - Concurrent misses fetch once: one flight per blob digest and per manifest reference; the
//!   others wait for it and then read the store.
//! - A manifest is served as soon as it is fetched (verified against its digest) and stored
//!   once its blobs are (the store refuses a manifest whose blobs it lacks): a background
//!   fill fetches them through the same flights.
//! - A cached tag is checked with the upstream at most once per `tag_recheck` (ECR: 24 h); on
//!   a failed check, or with the upstream down, what is cached is served.
//! - The upstream's `WWW-Authenticate` challenge (Bearer or Basic) is answered by
//!   [`crate::challenge`], anonymously or with the rule's credentials.

use std::collections::HashMap;
use std::io;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use axum::http::{Method, Request, Response, StatusCode, header};
use bytes::Bytes;
use futures::StreamExt;
use futures::future::BoxFuture;
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Incoming;
use tokio::sync::{mpsc, oneshot, watch};

use super::digest::Digest;
use super::errors::{ApiError, ErrorCode};
use super::manifest::{self, MAX_MANIFEST_BYTES, PULL_ACCEPT};
use super::storage::{ByteStream, ManifestRecord, Storage, StoredManifest};
use crate::challenge::{self, Unanswered};
use crate::ecr::pull_through::{CacheRule, matching, tag_due};

/// How long the upstream may take to answer a request's head.
const TIMEOUT: Duration = Duration::from_secs(30);
/// How long a blob's body may pause between two pieces.
const IDLE: Duration = Duration::from_secs(60);
/// Redirects followed (registries send blobs from a CDN or object store).
const MAX_REDIRECTS: usize = 5;

/// Where the rules come from: a reflector of PullThroughCacheRule objects, or flags.
pub trait CacheRules: Send + Sync + 'static {
    /// The rules in force.
    fn rules(&self) -> Vec<CacheRule>;
    /// The upstream's user and password (the rule's Secret), None when the rule has none.
    fn credentials<'a>(
        &'a self,
        rule: &'a CacheRule,
    ) -> BoxFuture<'a, Result<Option<(String, String)>, String>>;
    /// Creates repository `repo` for `rule` (its first pull found the image upstream).
    fn create_repository<'a>(
        &'a self,
        rule: &'a CacheRule,
        repo: &'a str,
    ) -> BoxFuture<'a, Result<(), String>>;
}

/// Rules given on the command line: anonymous upstreams, every repository exists already.
pub struct StaticRules(pub Vec<CacheRule>);

impl CacheRules for StaticRules {
    fn rules(&self) -> Vec<CacheRule> {
        self.0.clone()
    }

    fn credentials<'a>(
        &'a self,
        _: &'a CacheRule,
    ) -> BoxFuture<'a, Result<Option<(String, String)>, String>> {
        Box::pin(async { Ok(None) })
    }

    fn create_repository<'a>(
        &'a self,
        _: &'a CacheRule,
        _: &'a str,
    ) -> BoxFuture<'a, Result<(), String>> {
        Box::pin(async { Ok(()) })
    }
}

/// A repository under a rule.
#[derive(Clone, Debug)]
pub struct CacheRoute {
    pub rule: CacheRule,
    /// The repository's name in the registry.
    pub repo: String,
    /// Its name upstream.
    pub upstream: String,
}

/// Why the upstream gave nothing. Cloned to every waiter of a flight.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Failure {
    /// The upstream answered 404; `name_unknown` when it said NAME_UNKNOWN.
    NotFound { name_unknown: bool },
    /// Unreachable, refused, or an answer that was not what was asked for.
    Unavailable(String),
}

/// What was asked of the upstream, for the error a client gets.
pub enum Asked<'a> {
    Manifest(&'a str),
    Blob(&'a Digest),
}

impl Failure {
    /// The distribution spec's error for a client.
    pub fn api_error(&self, route: &CacheRoute, asked: Asked<'_>) -> ApiError {
        let url = &route.rule.upstream_registry_url;
        match (self, asked) {
            (Failure::NotFound { name_unknown: true }, _) => ApiError::new(
                ErrorCode::NameUnknown,
                format!(
                    "The repository with name '{}' does not exist in the upstream registry {url}",
                    route.upstream
                ),
            ),
            (Failure::NotFound { .. }, Asked::Manifest(r)) => ApiError::new(
                ErrorCode::ManifestUnknown,
                format!("manifest unknown: {r} (not in the upstream registry {url})"),
            ),
            (Failure::NotFound { .. }, Asked::Blob(d)) => ApiError::new(
                ErrorCode::BlobUnknown,
                format!("blob {d} is unknown to the upstream registry {url}"),
            )
            .with_detail(serde_json::json!({ "digest": d.to_string() })),
            (Failure::Unavailable(m), _) => ApiError::new(
                ErrorCode::Unavailable,
                format!("the upstream registry {url} failed: {m}"),
            ),
        }
    }
}

type Outcome<T> = Result<T, Failure>;

/// Fetches in progress, by key; each waiter gets the outcome.
struct Flights<T> {
    m: Mutex<HashMap<String, watch::Receiver<Option<T>>>>,
}

/// The lead of a flight: lands it with an outcome; dropped unlanded, its waiters are told
/// it was abandoned and the key is free again.
struct Lead<T> {
    flights: Arc<Flights<T>>,
    key: String,
    tx: watch::Sender<Option<T>>,
}

enum Joined<T> {
    Lead(Lead<T>),
    Wait(watch::Receiver<Option<T>>),
}

impl<T: Clone> Flights<T> {
    fn new() -> Arc<Flights<T>> {
        Arc::new(Flights {
            m: Mutex::new(HashMap::new()),
        })
    }

    fn join(self: &Arc<Self>, key: &str) -> Joined<T> {
        let mut m = self.m.lock().expect("flights");
        if let Some(rx) = m.get(key) {
            return Joined::Wait(rx.clone());
        }
        let (tx, rx) = watch::channel(None);
        m.insert(key.to_string(), rx);
        Joined::Lead(Lead {
            flights: self.clone(),
            key: key.to_string(),
            tx,
        })
    }
}

impl<T> Lead<T> {
    /// Ends the flight: the key is freed first, so that a request arriving now reads what
    /// the flight stored instead of waiting.
    fn land(self, outcome: T) {
        self.release();
        let _ = self.tx.send(Some(outcome));
    }

    fn release(&self) {
        let mut m = self.flights.m.lock().expect("flights");
        if m.get(&self.key)
            .is_some_and(|rx| rx.same_channel(&self.tx.subscribe()))
        {
            m.remove(&self.key);
        }
    }
}

impl<T> Drop for Lead<T> {
    fn drop(&mut self) {
        self.release();
    }
}

/// The outcome of a flight, or Unavailable when its lead was abandoned.
async fn wait<T: Clone>(mut rx: watch::Receiver<Option<T>>) -> Outcome<T> {
    match rx.wait_for(Option::is_some).await {
        Ok(v) => Ok(v.clone().expect("waited for Some")),
        Err(_) => Err(Failure::Unavailable("the fetch was abandoned".into())),
    }
}

/// A blob the client asked for.
pub enum Blob {
    /// Streaming from the upstream as it is stored; `size` when the upstream said it.
    Streaming {
        size: Option<u64>,
        stream: ByteStream,
    },
    /// In the store now: read it from there.
    Stored,
}

/// The registry's pull through cache.
pub struct PullThrough {
    rules: Arc<dyn CacheRules>,
    tag_recheck: Duration,
    storage: Arc<dyn Storage>,
    max_blob_bytes: u64,
    /// Told the repository name when a manifest or tag was stored (Repository status).
    changes: Option<mpsc::UnboundedSender<String>>,
    /// Keyed by digest; the outcome is the repository the blob was stored through.
    blobs: Arc<Flights<Outcome<String>>>,
    /// Keyed by `repo:tag` or `repo@digest`.
    manifests: Arc<Flights<Outcome<Digest>>>,
    /// When each cached `(repo, tag)` was last checked with the upstream.
    checked: Mutex<HashMap<(String, String), SystemTime>>,
    /// Fetched manifests whose blobs are still being filled, and the tags that name them.
    pending: Mutex<HashMap<(String, Digest), StoredManifest>>,
    pending_tags: Mutex<HashMap<(String, String), Digest>>,
    /// The last `Authorization` each upstream repository took.
    auth: challenge::Remembered,
}

impl PullThrough {
    pub fn new(
        rules: Arc<dyn CacheRules>,
        storage: Arc<dyn Storage>,
        tag_recheck: Duration,
        max_blob_bytes: u64,
        changes: Option<mpsc::UnboundedSender<String>>,
    ) -> Arc<PullThrough> {
        Arc::new(PullThrough {
            rules,
            tag_recheck,
            storage,
            max_blob_bytes,
            changes,
            blobs: Flights::new(),
            manifests: Flights::new(),
            checked: Mutex::default(),
            pending: Mutex::default(),
            pending_tags: Mutex::default(),
            auth: Default::default(),
        })
    }

    /// No fill is pending (tests: a fill ends after its tag is stored, and a pull until
    /// then is served from what is pending, without asking the upstream).
    #[cfg(test)]
    pub(crate) fn fills_settled(&self) -> bool {
        self.pending.lock().expect("pending").is_empty()
            && self.pending_tags.lock().expect("pending").is_empty()
    }

    /// The rule `repo` falls under, if any.
    pub fn route(&self, repo: &str) -> Option<CacheRoute> {
        let rules = self.rules.rules();
        matching(&rules, repo).map(|(rule, upstream)| CacheRoute {
            rule: rule.clone(),
            repo: repo.to_string(),
            upstream,
        })
    }

    /// The digest `tag` names: the cached one (`cached`) while it is fresh, else the
    /// upstream's (fetched and cached on the way), else, when the upstream fails, the cached
    /// one. `exists`: whether the repository exists already (else the first fetch creates it).
    pub async fn resolve_tag(
        self: &Arc<Self>,
        route: &CacheRoute,
        tag: &str,
        cached: Option<Digest>,
        exists: bool,
    ) -> Result<Digest, ApiError> {
        let key = (route.repo.clone(), tag.to_string());
        if let Some(d) = self.pending_tags.lock().expect("pending").get(&key) {
            return Ok(d.clone());
        }
        let checked = self.checked.lock().expect("checked").get(&key).copied();
        if let Some(c) = &cached
            && !tag_due(checked, SystemTime::now(), self.tag_recheck)
        {
            return Ok(c.clone());
        }
        match self
            .manifest_flight(route, tag, exists, cached.clone())
            .await
        {
            Ok(d) => Ok(d),
            Err(f) => match cached {
                Some(c) => {
                    tracing::warn!(repo = %route.repo, tag, failure = ?f, "the upstream check of a cached tag failed; serving the cached image");
                    Ok(c)
                }
                None => Err(f.api_error(route, Asked::Manifest(tag))),
            },
        }
    }

    /// A manifest the store does not hold: fetched (or being filled) from the upstream.
    pub async fn manifest(
        self: &Arc<Self>,
        route: &CacheRoute,
        digest: &Digest,
        exists: bool,
    ) -> Result<StoredManifest, ApiError> {
        let key = (route.repo.clone(), digest.clone());
        if let Some(m) = self.pending.lock().expect("pending").get(&key) {
            return Ok(m.clone());
        }
        let reference = digest.to_string();
        self.manifest_flight(route, &reference, exists, None)
            .await
            .map_err(|f| f.api_error(route, Asked::Manifest(&reference)))?;
        if let Some(m) = self.pending.lock().expect("pending").get(&key) {
            return Ok(m.clone());
        }
        self.storage
            .get_manifest(&route.repo, digest)
            .await
            .ok()
            .flatten()
            .ok_or_else(|| {
                Failure::Unavailable("the fetched manifest was not kept".into())
                    .api_error(route, Asked::Manifest(&reference))
            })
    }

    /// One fetch of `reference` in `route`'s repository at a time; run detached so that a
    /// client going away does not abandon its waiters.
    async fn manifest_flight(
        self: &Arc<Self>,
        route: &CacheRoute,
        reference: &str,
        exists: bool,
        cached: Option<Digest>,
    ) -> Outcome<Digest> {
        let sep = if reference.contains(':') { '@' } else { ':' };
        let key = format!("{}{sep}{reference}", route.repo);
        match self.manifests.join(&key) {
            Joined::Wait(rx) => wait(rx).await?,
            Joined::Lead(lead) => {
                let rx = lead.tx.subscribe();
                let (this, route, reference) = (self.clone(), route.clone(), reference.to_string());
                tokio::spawn(async move {
                    let outcome = this
                        .fetch_manifest(&route, &reference, exists, cached)
                        .await;
                    lead.land(outcome);
                });
                wait(rx).await?
            }
        }
    }

    /// Fetches a manifest, verifies it, makes it servable (pending) and starts its fill. A
    /// tag whose `cached` digest the upstream still names (a HEAD, which Docker Hub does not
    /// count as a pull) is only marked checked.
    async fn fetch_manifest(
        self: &Arc<Self>,
        route: &CacheRoute,
        reference: &str,
        exists: bool,
        cached: Option<Digest>,
    ) -> Outcome<Digest> {
        let path = format!("manifests/{reference}");
        if let Some(c) = cached {
            let head = self
                .get(Method::HEAD, route, &path, Some(PULL_ACCEPT))
                .await?;
            if head.status() == StatusCode::OK
                && announced_digest(head.headers()) == Some(c.clone())
            {
                self.checked.lock().expect("checked").insert(
                    (route.repo.clone(), reference.to_string()),
                    SystemTime::now(),
                );
                return Ok(c);
            }
        }
        let resp = self
            .get(Method::GET, route, &path, Some(PULL_ACCEPT))
            .await?;
        if resp.status() != StatusCode::OK {
            return Err(failure_of(resp).await);
        }
        let headers = resp.headers().clone();
        let bytes = Limited::new(resp.into_body(), MAX_MANIFEST_BYTES)
            .collect()
            .await
            .map_err(|e| Failure::Unavailable(format!("reading the manifest: {e}")))?
            .to_bytes();
        let wanted = reference
            .parse::<Digest>()
            .ok()
            .or_else(|| announced_digest(&headers));
        let digest = verify_manifest(&bytes, wanted.as_ref())?;
        let content_type = headers
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .map(str::to_string);
        let parsed = tokio::task::spawn_blocking({
            let bytes = bytes.clone();
            move || manifest::parse_manifest(&bytes, content_type.as_deref())
        })
        .await
        .map_err(|e| Failure::Unavailable(e.to_string()))?
        .map_err(|e| Failure::Unavailable(format!("the upstream's manifest is invalid: {e}")))?;
        if !exists && let Err(e) = self.rules.create_repository(&route.rule, &route.repo).await {
            tracing::warn!(repo = %route.repo, error = %e, "could not create the pull through cache repository");
        }
        let tag = (!reference.contains(':')).then(|| reference.to_string());
        let record = ManifestRecord::of(&parsed, &digest, bytes.len());
        let stored = matches!(
            self.storage.get_manifest(&route.repo, &digest).await,
            Ok(Some(_))
        );
        if !stored {
            self.pending.lock().expect("pending").insert(
                (route.repo.clone(), digest.clone()),
                StoredManifest {
                    digest: digest.clone(),
                    media_type: parsed.media_type.clone(),
                    bytes: bytes.clone(),
                    pushed_at: SystemTime::now(),
                },
            );
        }
        if let Some(t) = &tag {
            let key = (route.repo.clone(), t.clone());
            self.pending_tags
                .lock()
                .expect("pending")
                .insert(key.clone(), digest.clone());
            self.checked
                .lock()
                .expect("checked")
                .insert(key, SystemTime::now());
        }
        tokio::spawn({
            let (this, route, digest) = (self.clone(), route.clone(), digest.clone());
            async move { this.fill(&route, &digest, bytes, record, tag).await }
        });
        Ok(digest)
    }

    /// Stores a fetched manifest once its blobs are in the store, then points its tag at it.
    /// On failure nothing stays pending: the next pull starts again.
    async fn fill(
        self: Arc<Self>,
        route: &CacheRoute,
        digest: &Digest,
        bytes: Bytes,
        record: ManifestRecord,
        tag: Option<String>,
    ) {
        let mut result = Ok(());
        for b in &record.blobs {
            if !matches!(self.storage.blob_size(&route.repo, b).await, Ok(Some(_))) {
                result = match self.blob_flight(route, b, None).await {
                    Ok(Flight::Led(done)) => done.await,
                    Ok(Flight::Waited) => Ok(()),
                    Err(f) => Err(f),
                };
                if result.is_err() {
                    break;
                }
            }
        }
        let result = match result {
            Ok(()) => {
                self.store(route, digest, bytes, record, tag.as_deref())
                    .await
            }
            Err(f) => Err(format!("{f:?}")),
        };
        if let Err(e) = result {
            tracing::warn!(repo = %route.repo, %digest, error = %e, "pull through cache fill failed");
        }
        self.pending
            .lock()
            .expect("pending")
            .remove(&(route.repo.clone(), digest.clone()));
        if let Some(t) = tag {
            self.pending_tags
                .lock()
                .expect("pending")
                .remove(&(route.repo.clone(), t));
        }
    }

    async fn store(
        &self,
        route: &CacheRoute,
        digest: &Digest,
        bytes: Bytes,
        record: ManifestRecord,
        tag: Option<&str>,
    ) -> Result<(), String> {
        let s = &self.storage;
        s.put_manifest(&route.repo, digest, bytes, record)
            .await
            .map_err(|e| e.to_string())?;
        if let Some(t) = tag {
            // The upstream moved the tag: the cache follows it.
            s.put_tag(&route.repo, t, digest, true)
                .await
                .map_err(|e| e.to_string())?;
        }
        if let Some(tx) = &self.changes {
            let _ = tx.send(route.repo.clone());
        }
        tracing::info!(repo = %route.repo, %digest, tag, upstream = %route.rule.upstream_registry_url, "cached from the upstream");
        Ok(())
    }

    /// A blob the store does not hold. `stream`: the client wants its bytes now (a whole GET)
    /// and, when this request leads the fetch, gets them as they arrive; otherwise it waits
    /// for the blob to be stored.
    pub async fn blob(
        self: &Arc<Self>,
        route: &CacheRoute,
        digest: &Digest,
        stream: bool,
    ) -> Result<Blob, ApiError> {
        let (client, rx) = if stream {
            let (tx, rx) = mpsc::channel(16);
            let (head_tx, head_rx) = oneshot::channel();
            (Some((tx, head_tx)), Some((rx, head_rx)))
        } else {
            (None, None)
        };
        let err = |f: Failure| f.api_error(route, Asked::Blob(digest));
        match self.blob_flight(route, digest, client).await.map_err(err)? {
            Flight::Waited => Ok(Blob::Stored),
            Flight::Led(done) => match rx {
                Some((rx, head_rx)) => match head_rx.await {
                    Ok(Ok(Head::Streaming(size))) => Ok(Blob::Streaming {
                        size,
                        stream: receiver_stream(rx),
                    }),
                    Ok(Ok(Head::Stored)) => Ok(Blob::Stored),
                    Ok(Err(f)) => Err(err(f)),
                    Err(_) => Err(err(Failure::Unavailable("the fetch was abandoned".into()))),
                },
                None => done.await.map(|_| Blob::Stored).map_err(err),
            },
        }
    }

    /// Joins or leads the fetch of `digest` into `route`'s repository. A waiter gets the blob
    /// linked into its repository once the flight stored it (through any repository).
    async fn blob_flight(
        self: &Arc<Self>,
        route: &CacheRoute,
        digest: &Digest,
        client: Option<(Client, oneshot::Sender<Outcome<Head>>)>,
    ) -> Outcome<Flight> {
        match self.blobs.join(&digest.to_string()) {
            Joined::Wait(rx) => {
                let from = wait(rx).await??;
                if from != route.repo {
                    self.storage
                        .mount_blob(&route.repo, digest, &from)
                        .await
                        .map_err(|e| Failure::Unavailable(e.to_string()))?;
                }
                Ok(Flight::Waited)
            }
            Joined::Lead(lead) => {
                let rx = lead.tx.subscribe();
                let (this, route, digest) = (self.clone(), route.clone(), digest.clone());
                tokio::spawn(async move {
                    let outcome = this.fetch_blob(&route, &digest, client).await;
                    lead.land(outcome.map(|()| route.repo.clone()));
                });
                Ok(Flight::Led(Box::pin(
                    async move { wait(rx).await?.map(|_| ()) },
                )))
            }
        }
    }

    /// Fetches a blob into the store, teeing it to `client` when there is one.
    async fn fetch_blob(
        &self,
        route: &CacheRoute,
        digest: &Digest,
        client: Option<(Client, oneshot::Sender<Outcome<Head>>)>,
    ) -> Outcome<()> {
        let (client, head) = match client {
            Some((c, h)) => (Some(c), Some(h)),
            None => (None, None),
        };
        let tell = |head: Option<oneshot::Sender<_>>, v| {
            if let Some(h) = head {
                let _ = h.send(v);
            }
        };
        // Won the lead just after another flight landed: it is stored already.
        if let Ok(Some(_)) = self.storage.blob_size(&route.repo, digest).await {
            tell(head, Ok(Head::Stored));
            return Ok(());
        }
        let resp = match self
            .get(Method::GET, route, &format!("blobs/{digest}"), None)
            .await
        {
            Ok(r) if r.status() == StatusCode::OK => r,
            Ok(r) => {
                let f = failure_of(r).await;
                tell(head, Err(f.clone()));
                return Err(f);
            }
            Err(f) => {
                tell(head, Err(f.clone()));
                return Err(f);
            }
        };
        let size = resp
            .headers()
            .get(header::CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse().ok());
        tell(head, Ok(Head::Streaming(size)));
        store_tee(
            self.storage.clone(),
            &route.repo,
            digest,
            resp.into_body(),
            client,
            self.max_blob_bytes,
        )
        .await
        .map_err(Failure::Unavailable)
    }

    /// `method` (GET or HEAD) of `path` of the upstream repository, answering its challenge
    /// and following
    /// redirects (without credentials: they go to another host).
    async fn get(
        &self,
        method: Method,
        route: &CacheRoute,
        path: &str,
        accept: Option<&str>,
    ) -> Outcome<Response<Incoming>> {
        let base = &route.rule.upstream_registry_url;
        let url = format!("{base}/v2/{}/{path}", route.upstream);
        let scope = format!("{base}/{}", route.upstream);
        let known = self.auth.get(&scope);
        let mut resp = send(&method, &url, accept, known.as_deref()).await?;
        if resp.status() == StatusCode::UNAUTHORIZED {
            let credentials = self
                .rules
                .credentials(&route.rule)
                .await
                .map_err(Failure::Unavailable)?;
            let challenge = challenge::of(resp.headers());
            match challenge::answer(
                challenge.as_deref(),
                Some(&route.upstream),
                credentials.as_ref(),
            )
            .await
            {
                Ok(Some(a)) => {
                    resp = send(&method, &url, accept, Some(&a)).await?;
                    self.auth.remember(scope, a);
                }
                Ok(None) => {}
                Err(Unanswered::NeedsCredentials) => {
                    return Err(Failure::Unavailable(
                        "it asks for credentials and the rule has no credentialArn".into(),
                    ));
                }
                Err(Unanswered::Token(e)) => return Err(Failure::Unavailable(e)),
            }
        }
        let mut url = url;
        for _ in 0..MAX_REDIRECTS {
            if !resp.status().is_redirection() {
                break;
            }
            let Some(location) = resp
                .headers()
                .get(header::LOCATION)
                .and_then(|v| v.to_str().ok())
            else {
                break;
            };
            url = redirect_target(&url, location);
            resp = send(&method, &url, accept, None).await?;
        }
        Ok(resp)
    }
}

/// The client's side of a tee: pieces of the blob, or the error that aborts its connection.
type Client = mpsc::Sender<io::Result<Bytes>>;

/// What the lead of a blob's fetch tells its client before the body.
enum Head {
    /// The body follows; its size when the upstream said it.
    Streaming(Option<u64>),
    /// The blob was stored meanwhile: read it from the store.
    Stored,
}

/// How a request took part in a blob's flight.
enum Flight {
    /// Another request fetched it; it is in the store.
    Waited,
    /// This request started the fetch; resolves when the blob is stored.
    Led(BoxFuture<'static, Outcome<()>>),
}

fn receiver_stream(rx: mpsc::Receiver<io::Result<Bytes>>) -> ByteStream {
    Box::pin(futures::stream::unfold(rx, |mut rx| async move {
        rx.recv().await.map(|item| (item, rx))
    }))
}

/// Writes `body` into the store as blob `digest` of `repo` (verified by `put_blob`) while
/// passing it to `client`. The client's last piece is sent only once the store has the
/// blob; if the store refuses it (a digest mismatch, a broken upstream), the client gets an
/// error instead, which aborts its connection short of the announced length.
async fn store_tee(
    storage: Arc<dyn Storage>,
    repo: &str,
    digest: &Digest,
    body: Incoming,
    client: Option<Client>,
    limit: u64,
) -> Result<(), String> {
    let (store_tx, store_rx) = mpsc::channel::<io::Result<Bytes>>(16);
    let put = storage.put_blob(repo, digest, receiver_stream(store_rx), limit);
    let mut client = client;
    let feed = async {
        let mut body = body.into_data_stream();
        let mut held: Option<Bytes> = None;
        loop {
            let piece = match tokio::time::timeout(IDLE, body.next()).await {
                Ok(Some(Ok(piece))) => piece,
                Ok(Some(Err(e))) => {
                    let _ = store_tx.send(Err(io::Error::other(e))).await;
                    break;
                }
                Ok(None) => break,
                Err(_) => {
                    let stalled = io::Error::new(io::ErrorKind::TimedOut, "the upstream stalled");
                    let _ = store_tx.send(Err(stalled)).await;
                    break;
                }
            };
            if store_tx.send(Ok(piece.clone())).await.is_err() {
                break;
            }
            if let Some(h) = held.replace(piece) {
                pass(&mut client, Ok(h)).await;
            }
        }
        drop(store_tx);
        held
    };
    let (stored, held) = tokio::join!(put, feed);
    match stored {
        Ok(_) => {
            if let Some(h) = held {
                pass(&mut client, Ok(h)).await;
            }
            Ok(())
        }
        Err(e) => {
            pass(&mut client, Err(io::Error::other(e.to_string()))).await;
            Err(e.to_string())
        }
    }
}

/// Gives the client its next piece. A client that went away, or that has not taken a piece
/// for [`IDLE`], is dropped (its transfer ends short): the store's copy goes on without it,
/// so no client can hold up a fetch others wait for.
async fn pass(client: &mut Option<Client>, piece: io::Result<Bytes>) {
    if let Some(c) = client {
        match tokio::time::timeout(IDLE, c.send(piece)).await {
            Ok(Ok(())) => {}
            _ => *client = None,
        }
    }
}

/// The digest of fetched manifest bytes; they must hash to `wanted` (the digest asked for,
/// else the one the upstream announced).
fn verify_manifest(bytes: &[u8], wanted: Option<&Digest>) -> Outcome<Digest> {
    let actual = match wanted {
        Some(w) => Digest::of(w.algorithm(), bytes),
        None => Digest::sha256(bytes),
    };
    match wanted {
        Some(w) if *w != actual => Err(Failure::Unavailable(format!(
            "its manifest does not match its digest {w} (computed {actual})"
        ))),
        _ => Ok(actual),
    }
}

/// Where a redirect goes: `location` absolute, or a path on `url`'s host.
pub(crate) fn redirect_target(url: &str, location: &str) -> String {
    if location.contains("://") {
        return location.to_string();
    }
    let origin_end = url
        .find("://")
        .and_then(|i| url[i + 3..].find('/').map(|j| i + 3 + j))
        .unwrap_or(url.len());
    format!("{}{location}", &url[..origin_end])
}

async fn send(
    method: &Method,
    url: &str,
    accept: Option<&str>,
    authorization: Option<&str>,
) -> Outcome<Response<Incoming>> {
    let mut b = Request::builder().method(method.clone()).uri(url);
    if let Some(a) = accept {
        b = b.header(header::ACCEPT, a);
    }
    if let Some(a) = authorization {
        b = b.header(header::AUTHORIZATION, a);
    }
    let req = b
        .body(Full::new(Bytes::new()))
        .map_err(|e| Failure::Unavailable(e.to_string()))?;
    crate::http::open(req, "the upstream registry", TIMEOUT)
        .await
        .map_err(|e| Failure::Unavailable(e.to_string()))
}

/// The digest an answer announces (`Docker-Content-Digest`).
fn announced_digest(headers: &axum::http::HeaderMap) -> Option<Digest> {
    headers
        .get("docker-content-digest")
        .and_then(|v| v.to_str().ok())
        .and_then(|d| d.parse().ok())
}

/// The failure an upstream's error answer stands for, with its message when it sent one.
async fn failure_of(resp: Response<Incoming>) -> Failure {
    let status = resp.status();
    let body = Limited::new(resp.into_body(), 64 * 1024)
        .collect()
        .await
        .map(|b| b.to_bytes())
        .unwrap_or_default();
    let first = serde_json::from_slice::<serde_json::Value>(&body)
        .ok()
        .and_then(|v| v.get("errors")?.get(0).cloned());
    let code = first
        .as_ref()
        .and_then(|e| e.get("code")?.as_str().map(str::to_string));
    let message = first
        .as_ref()
        .and_then(|e| e.get("message")?.as_str().map(str::to_string));
    match status {
        StatusCode::NOT_FOUND => Failure::NotFound {
            name_unknown: code.as_deref() == Some("NAME_UNKNOWN"),
        },
        s => Failure::Unavailable(match message {
            Some(m) => format!("it answered {s}: {m}"),
            None => format!("it answered {s}"),
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn manifests_must_hash_to_their_digest() {
        let body = br#"{"schemaVersion":2}"#;
        let d = Digest::sha256(body);
        assert_eq!(verify_manifest(body, Some(&d)), Ok(d.clone()));
        assert_eq!(verify_manifest(body, None), Ok(d.clone()));
        let other = Digest::sha256(b"other");
        assert!(matches!(
            verify_manifest(body, Some(&other)),
            Err(Failure::Unavailable(m)) if m.contains("does not match")
        ));
    }

    #[test]
    fn redirects_resolve_against_the_upstream() {
        assert_eq!(
            redirect_target("https://r.io/v2/a/blobs/x", "https://cdn.io/b?sig=1"),
            "https://cdn.io/b?sig=1"
        );
        assert_eq!(
            redirect_target("http://127.0.0.1:5000/v2/a/blobs/x", "/store/b"),
            "http://127.0.0.1:5000/store/b"
        );
    }
}
