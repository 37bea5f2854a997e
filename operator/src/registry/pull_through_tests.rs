//! The pull through cache against a real upstream: a second in-process kubecs registry served
//! on a 127.0.0.1 listener, behind a Bearer token challenge (distribution's token protocol),
//! counting the requests it answers.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use axum::body::{Body, Bytes};
use axum::extract::{Request, State};
use axum::http::{Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::json;
use tokio::net::TcpListener;
use tokio::sync::watch;
use tower::ServiceExt;

use super::access::actions;
use super::digest::Digest;
use super::manifest::OCI_MANIFEST;
use super::pull_through::{PullThrough, StaticRules};
use super::storage::ManifestRecord;
use super::*;
use crate::ecr::pull_through::CacheRule;

fn alice() -> Principal {
    Principal {
        username: "alice".into(),
        groups: vec![],
    }
}

fn basic_token(signer: &TokenSigner) -> String {
    crate::challenge::basic("AWS", &signer.issue(&alice(), SystemTime::now()))
}

/// What the upstream's front knows: its token, its kubecs registry, what it served.
struct Front {
    addr: SocketAddr,
    token: String,
    inner: axum::Router,
    /// Authorized requests, by `METHOD path`.
    hits: Mutex<HashMap<String, usize>>,
    /// Serve every blob with its first byte changed.
    lie: AtomicBool,
}

/// Distribution's token protocol in front of a kubecs registry (which speaks Basic): a
/// request without the Bearer token gets the challenge; `/token` hands the token out.
async fn serve_front(State(f): State<Arc<Front>>, req: Request) -> Response {
    let path = req.uri().path().to_string();
    if path == "/token" {
        let scope = req.uri().query().unwrap_or_default();
        assert!(scope.contains("scope=repository:"), "{scope}");
        return axum::Json(json!({ "token": f.token })).into_response();
    }
    let bearer = format!("Bearer {}", f.token);
    if req
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        != Some(&bearer)
    {
        let challenge = format!(
            r#"Bearer realm="http://{}/token",service="upstream""#,
            f.addr
        );
        return (
            StatusCode::UNAUTHORIZED,
            [(header::WWW_AUTHENTICATE, challenge)],
        )
            .into_response();
    }
    let hit = format!("{} {path}", req.method());
    *f.hits.lock().unwrap().entry(hit).or_default() += 1;
    let (mut parts, body) = req.into_parts();
    parts.headers.insert(
        header::AUTHORIZATION,
        crate::challenge::basic("AWS", &f.token).parse().unwrap(),
    );
    let resp = f
        .inner
        .clone()
        .oneshot(Request::from_parts(parts, body))
        .await
        .unwrap();
    if !(f.lie.load(Ordering::SeqCst) && path.contains("/blobs/")) {
        return resp;
    }
    let (parts, body) = resp.into_parts();
    let mut bytes = axum::body::to_bytes(body, usize::MAX)
        .await
        .unwrap()
        .to_vec();
    bytes[0] ^= 0xff;
    Response::from_parts(parts, Body::from(bytes))
}

/// The upstream registry on 127.0.0.1, holding `library/app:v1`.
struct Upstream {
    front: Arc<Front>,
    storage: Arc<dyn Storage>,
    stop: watch::Sender<bool>,
    served: tokio::task::JoinHandle<()>,
    image: Image,
    _dir: tempfile::TempDir,
}

struct Image {
    manifest: Bytes,
    manifest_digest: Digest,
    config: Bytes,
    layer: Bytes,
}

impl Image {
    fn digest_of(bytes: &[u8]) -> Digest {
        Digest::sha256(bytes)
    }
}

async fn put_blob(s: &Arc<dyn Storage>, repo: &str, bytes: &Bytes) {
    let body: storage::ByteStream = Box::pin(futures::stream::iter([Ok::<_, std::io::Error>(
        bytes.clone(),
    )]));
    s.put_blob(repo, &Digest::sha256(bytes), body, u64::MAX)
        .await
        .unwrap();
}

impl Upstream {
    async fn start() -> Upstream {
        let dir = tempfile::tempdir().unwrap();
        let storage: Arc<dyn Storage> = Arc::new(FsStorage::open(dir.path()).unwrap());
        // A layer of several pieces, so that it streams.
        let layer: Bytes = (0..600_000u32)
            .map(|i| (i.wrapping_mul(2_654_435_761) >> 24) as u8)
            .collect::<Vec<u8>>()
            .into();
        let config = Bytes::from_static(br#"{"architecture":"amd64","os":"linux"}"#);
        let manifest: Bytes = json!({
            "schemaVersion": 2,
            "mediaType": OCI_MANIFEST,
            "config": {"mediaType": "application/vnd.oci.image.config.v1+json",
                       "digest": Image::digest_of(&config).to_string(), "size": config.len()},
            "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar",
                        "digest": Image::digest_of(&layer).to_string(), "size": layer.len()}],
        })
        .to_string()
        .into();
        let repo = "library/app";
        put_blob(&storage, repo, &config).await;
        put_blob(&storage, repo, &layer).await;
        let manifest_digest = Digest::sha256(&manifest);
        let parsed = manifest::parse_manifest(&manifest, Some(OCI_MANIFEST)).unwrap();
        let record = ManifestRecord::of(&parsed, &manifest_digest, manifest.len());
        storage
            .put_manifest(repo, &manifest_digest, manifest.clone(), record)
            .await
            .unwrap();
        storage
            .put_tag(repo, "v1", &manifest_digest, true)
            .await
            .unwrap();
        let signer = TokenSigner::new(vec![7u8; 32]).unwrap();
        let inner = router(Arc::new(Registry {
            storage: storage.clone(),
            policy: Arc::new(AllowAll),
            auth: Authenticator::new(signer.clone()),
            config: RegistryConfig::default(),
            changes: None,
            uploads: Default::default(),
            pulls: Default::default(),
            pull_through: None,
            replication: None,
        }));
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let front = Arc::new(Front {
            addr: listener.local_addr().unwrap(),
            token: signer.issue(&alice(), SystemTime::now()),
            inner,
            hits: Mutex::default(),
            lie: AtomicBool::new(false),
        });
        let app = axum::Router::new()
            .fallback(serve_front)
            .with_state(front.clone());
        let (stop, mut stopped) = watch::channel(false);
        let limits = serve::ServeLimits {
            header_read_timeout: Duration::from_secs(5),
            body_idle_timeout: Duration::from_secs(5),
            max_connections: 64,
        };
        let served = tokio::spawn(async move {
            serve::serve(listener, app, limits, async move {
                let _ = stopped.wait_for(|s| *s).await;
            })
            .await
            .unwrap();
        });
        Upstream {
            front,
            storage,
            stop,
            served,
            image: Image {
                manifest,
                manifest_digest,
                config,
                layer,
            },
            _dir: dir,
        }
    }

    fn url(&self) -> String {
        format!("http://{}", self.front.addr)
    }

    /// Authorized GETs of `path`.
    fn hits(&self, path: &str) -> usize {
        self.requests("GET", path)
    }

    fn requests(&self, method: &str, path: &str) -> usize {
        let key = format!("{method} {path}");
        self.front
            .hits
            .lock()
            .unwrap()
            .get(&key)
            .copied()
            .unwrap_or(0)
    }

    fn total_hits(&self) -> usize {
        self.front.hits.lock().unwrap().values().sum()
    }

    /// Stops serving: the listener closes and every connection ends.
    async fn stop(self) {
        let _ = self.stop.send(true);
        self.served.await.unwrap();
    }
}

/// The registry under test: `hub/...` pulls through from `upstream`.
struct Cache {
    router: axum::Router,
    storage: Arc<dyn Storage>,
    pull_through: Arc<PullThrough>,
    auth: String,
    _dir: tempfile::TempDir,
}

fn cache(upstream: &str, policy: Arc<dyn AccessPolicy>, tag_recheck: Duration) -> Cache {
    let dir = tempfile::tempdir().unwrap();
    let storage: Arc<dyn Storage> = Arc::new(FsStorage::open(dir.path()).unwrap());
    let rule = CacheRule::new("hub", upstream, None, None, None).unwrap();
    let signer = TokenSigner::new(vec![42u8; 32]).unwrap();
    let pull_through = PullThrough::new(
        Arc::new(StaticRules(vec![rule])),
        storage.clone(),
        tag_recheck,
        DEFAULT_MAX_UPLOAD_BYTES,
        None,
    );
    let router = router(Arc::new(Registry {
        storage: storage.clone(),
        policy,
        auth: Authenticator::new(signer.clone()),
        config: RegistryConfig::default(),
        changes: None,
        uploads: Default::default(),
        pulls: Default::default(),
        pull_through: Some(pull_through.clone()),
        replication: None,
    }));
    Cache {
        router,
        storage,
        pull_through,
        auth: basic_token(&signer),
        _dir: dir,
    }
}

struct Got {
    status: StatusCode,
    body: Result<Bytes, String>,
}

impl Got {
    fn bytes(&self) -> &Bytes {
        self.body.as_ref().unwrap()
    }

    fn code(&self) -> String {
        let v: serde_json::Value = serde_json::from_slice(self.bytes()).unwrap();
        v["errors"][0]["code"].as_str().unwrap().to_string()
    }
}

impl Cache {
    async fn get(&self, path: &str) -> Got {
        let req = Request::builder()
            .method(Method::GET)
            .uri(format!("/v2/{path}"))
            .header(header::AUTHORIZATION, &self.auth)
            .header(header::ACCEPT, OCI_MANIFEST)
            .body(Body::empty())
            .unwrap();
        let resp = self.router.clone().oneshot(req).await.unwrap();
        let status = resp.status();
        let body = axum::body::to_bytes(resp.into_body(), usize::MAX)
            .await
            .map_err(|e| e.to_string());
        Got { status, body }
    }

    /// Waits for the background fill to store the manifest and point `tag` at it.
    async fn filled(&self, repo: &str, tag: &str, d: &Digest) {
        for _ in 0..500 {
            // Stored, and the fill over: until it is, a pull is served from what is pending.
            if let Ok(Some(t)) = self.storage.resolve_tag(repo, tag).await
                && &t == d
                && self.pull_through.fills_settled()
            {
                return;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        panic!("{repo}:{tag} never named {d}");
    }
}

#[tokio::test]
async fn a_miss_is_fetched_byte_exact_and_served_again_with_the_upstream_stopped() {
    let up = Upstream::start().await;
    // Every pull of a cached tag is due for a check: the stopped upstream's failure shows.
    let c = cache(&up.url(), Arc::new(AllowAll), Duration::ZERO);
    let img = &up.image;
    let m = c.get("hub/library/app/manifests/v1").await;
    assert_eq!(m.status, StatusCode::OK);
    assert_eq!(m.bytes(), &img.manifest);
    for blob in [&img.config, &img.layer] {
        let b = c
            .get(&format!("hub/library/app/blobs/{}", Digest::sha256(blob)))
            .await;
        assert_eq!(b.status, StatusCode::OK);
        assert_eq!(b.bytes(), blob, "byte-exact");
    }
    c.filled("hub/library/app", "v1", &img.manifest_digest)
        .await;
    assert!(
        c.storage
            .get_manifest("hub/library/app", &img.manifest_digest)
            .await
            .unwrap()
            .is_some()
    );
    let layer_path = format!("/v2/library/app/blobs/{}", Digest::sha256(&img.layer));
    assert_eq!(
        up.hits(&layer_path),
        1,
        "the fill and the client shared one fetch"
    );

    let (manifest, layer) = (img.manifest.clone(), img.layer.clone());
    up.stop().await;
    let m = c.get("hub/library/app/manifests/v1").await;
    assert_eq!(m.status, StatusCode::OK, "served from the cache");
    assert_eq!(m.bytes(), &manifest);
    let b = c
        .get(&format!("hub/library/app/blobs/{}", Digest::sha256(&layer)))
        .await;
    assert_eq!(b.bytes(), &layer);
    // Nothing cached and the upstream down: the spec's error shape, UNAVAILABLE.
    let gone = c.get("hub/library/other/manifests/v1").await;
    assert_eq!(gone.status, StatusCode::BAD_GATEWAY);
    assert_eq!(gone.code(), "UNAVAILABLE");
}

#[tokio::test]
async fn concurrent_cold_pulls_fetch_each_blob_and_manifest_once() {
    let up = Upstream::start().await;
    let c = Arc::new(cache(
        &up.url(),
        Arc::new(AllowAll),
        Duration::from_secs(3600),
    ));
    let layer = up.image.layer.clone();
    let path = format!("hub/library/app/blobs/{}", Digest::sha256(&layer));
    let pulls: Vec<_> = (0..10)
        .map(|_| {
            let (c, path) = (c.clone(), path.clone());
            tokio::spawn(async move { c.get(&path).await })
        })
        .collect();
    for p in pulls {
        let got = p.await.unwrap();
        assert_eq!(got.status, StatusCode::OK);
        assert_eq!(got.bytes(), &layer);
    }
    assert_eq!(
        up.hits(&format!("/v2/library/app/blobs/{}", Digest::sha256(&layer))),
        1
    );
    let pulls: Vec<_> = (0..10)
        .map(|_| {
            let c = c.clone();
            tokio::spawn(async move { c.get("hub/library/app/manifests/v1").await })
        })
        .collect();
    for p in pulls {
        assert_eq!(p.await.unwrap().bytes(), &up.image.manifest);
    }
    assert_eq!(up.hits("/v2/library/app/manifests/v1"), 1);
    // Within the re-check interval the cached tag is not checked again.
    c.filled("hub/library/app", "v1", &up.image.manifest_digest)
        .await;
    c.get("hub/library/app/manifests/v1").await;
    assert_eq!(up.hits("/v2/library/app/manifests/v1"), 1);
}

#[tokio::test]
async fn a_due_tag_is_checked_with_a_head_and_fetched_again_only_when_it_moved() {
    let up = Upstream::start().await;
    let c = cache(&up.url(), Arc::new(AllowAll), Duration::ZERO);
    let path = "/v2/library/app/manifests/v1";
    assert_eq!(
        c.get("hub/library/app/manifests/v1").await.status,
        StatusCode::OK
    );
    c.filled("hub/library/app", "v1", &up.image.manifest_digest)
        .await;
    for _ in 0..3 {
        let m = c.get("hub/library/app/manifests/v1").await;
        assert_eq!(m.bytes(), &up.image.manifest);
    }
    assert_eq!(up.hits(path), 1, "the unchanged tag was not fetched again");
    assert_eq!(up.requests("HEAD", path), 3, "each due pull checked it");
    // The upstream moves the tag: the next pull follows it.
    let config = Bytes::from_static(br#"{"architecture":"arm64","os":"linux"}"#);
    let upstream_store = up.storage.clone();
    put_blob(&upstream_store, "library/app", &config).await;
    let moved: Bytes = json!({
        "schemaVersion": 2, "mediaType": OCI_MANIFEST,
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json",
                   "digest": Digest::sha256(&config).to_string(), "size": config.len()},
        "layers": [],
    })
    .to_string()
    .into();
    let d = Digest::sha256(&moved);
    let parsed = manifest::parse_manifest(&moved, Some(OCI_MANIFEST)).unwrap();
    upstream_store
        .put_manifest(
            "library/app",
            &d,
            moved.clone(),
            ManifestRecord::of(&parsed, &d, moved.len()),
        )
        .await
        .unwrap();
    upstream_store
        .put_tag("library/app", "v1", &d, true)
        .await
        .unwrap();
    let m = c.get("hub/library/app/manifests/v1").await;
    assert_eq!(m.bytes(), &moved);
    c.filled("hub/library/app", "v1", &d).await;
    assert_eq!(up.hits(path), 2);
}

#[tokio::test]
async fn upstream_404s_are_the_specs_unknowns() {
    let up = Upstream::start().await;
    let c = cache(&up.url(), Arc::new(AllowAll), Duration::from_secs(3600));
    let m = c.get("hub/library/app/manifests/nope").await;
    assert_eq!(m.status, StatusCode::NOT_FOUND);
    assert_eq!(m.code(), "MANIFEST_UNKNOWN");
    let missing = Digest::sha256(b"not there");
    let b = c.get(&format!("hub/library/app/blobs/{missing}")).await;
    assert_eq!(b.status, StatusCode::NOT_FOUND);
    assert_eq!(b.code(), "BLOB_UNKNOWN");
    // Outside every rule's prefix the upstream is never asked.
    let hits = up.total_hits();
    let local = c.get("other/app/manifests/v1").await;
    assert_eq!(local.code(), "MANIFEST_UNKNOWN");
    assert_eq!(up.total_hits(), hits);
}

#[tokio::test]
async fn a_blob_that_does_not_match_its_digest_is_not_stored() {
    let up = Upstream::start().await;
    let c = cache(&up.url(), Arc::new(AllowAll), Duration::from_secs(3600));
    let layer = up.image.layer.clone();
    let d = Digest::sha256(&layer);
    up.front.lie.store(true, Ordering::SeqCst);
    let lied = c.get(&format!("hub/library/app/blobs/{d}")).await;
    assert!(
        lied.body.is_err(),
        "the client's transfer is aborted, not completed"
    );
    assert_eq!(
        c.storage.blob_size("hub/library/app", &d).await.unwrap(),
        None
    );
    // A HEAD waits for the store's verdict: the spec's error, nothing stored.
    let head = c
        .router
        .clone()
        .oneshot(
            Request::builder()
                .method(Method::HEAD)
                .uri(format!("/v2/hub/library/app/blobs/{d}"))
                .header(header::AUTHORIZATION, &c.auth)
                .body(Body::empty())
                .unwrap(),
        )
        .await
        .unwrap();
    assert_eq!(head.status(), StatusCode::BAD_GATEWAY);
    up.front.lie.store(false, Ordering::SeqCst);
    let honest = c.get(&format!("hub/library/app/blobs/{d}")).await;
    assert_eq!(honest.bytes(), &layer);
    assert_eq!(
        c.storage.blob_size("hub/library/app", &d).await.unwrap(),
        Some(layer.len() as u64)
    );
}

#[tokio::test]
async fn filling_the_cache_needs_ecrs_import_permission() {
    let up = Upstream::start().await;
    let only_pull = StaticPolicy::new().grant(
        "alice",
        &[
            actions::BATCH_GET_IMAGE,
            actions::GET_DOWNLOAD_URL_FOR_LAYER,
        ],
    );
    let c = cache(&up.url(), Arc::new(only_pull), Duration::from_secs(3600));
    let m = c.get("hub/library/app/manifests/v1").await;
    assert_eq!(m.status, StatusCode::FORBIDDEN);
    assert!(
        String::from_utf8_lossy(m.bytes()).contains("ecr:BatchImportUpstreamImage"),
        "{:?}",
        m.body
    );
    assert_eq!(up.total_hits(), 0);
}
