//! The HTTP API driven in-process (`tower::ServiceExt::oneshot`), every test on both backends
//! (`on_fs::*` over a temporary directory, `on_s3::*` over an in-memory object store).

use std::collections::BTreeSet;
use std::io;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use axum::body::{Body, Bytes};
use axum::http::{HeaderMap, Method, Request, StatusCode};
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use object_store::memory::InMemory;
use serde_json::{Value, json};
use tower::ServiceExt;

use super::access::actions;
use super::backend::Backend;
use super::digest::{Algorithm, Digest};
use super::handlers::MAX_TAGS_PER_PUSH;
use super::manifest::{OCI_INDEX, OCI_MANIFEST};
use super::*;
use crate::api::repository::ImageTagMutability;

/// Instantiates each test (an `async fn(Kind)`) once per backend.
macro_rules! on_both_backends {
    ($($name:ident),* $(,)?) => {
        mod on_fs {
            $(#[tokio::test]
            async fn $name() {
                super::$name(super::Kind::Fs).await
            })*
        }
        mod on_s3 {
            $(#[tokio::test]
            async fn $name() {
                super::$name(super::Kind::S3).await
            })*
        }
    };
}

on_both_backends!(
    ping_needs_a_valid_token,
    monolithic_push_and_pull,
    chunked_push_and_out_of_order_chunk,
    streamed_patch_and_cancel,
    digest_mismatch_is_refused_and_nothing_is_visible,
    sha512_blobs_and_manifests,
    range_requests,
    cross_repository_mount,
    mount_from_an_unreadable_repository_falls_back_to_upload,
    mount_without_from_falls_back_to_upload_and_links_nothing,
    manifest_push_pull_and_validation,
    conditional_gets_and_cache_control,
    manifest_get_honours_accept,
    what_changes_is_seen_at_once,
    manifest_referencing_unknown_blobs_or_manifests_is_refused,
    manifest_over_4_mib_is_refused,
    tag_listing_is_sorted_and_paginated,
    catalog_is_paginated,
    referrers_with_artifact_type_filter,
    deletes,
    immutable_tags_cannot_move,
    tag_mutability_exclusions,
    unknown_repository_is_name_unknown_with_ecr_message,
    create_on_push_creates_the_repository_with_its_template_settings_first,
    invalid_names_and_denied_actions,
    upload_size_cap,
    uploads_over_the_per_identity_cap_are_too_many_requests,
    an_announced_body_over_the_upload_cap_is_refused_up_front,
    a_push_with_too_many_tag_parameters_is_refused,
    an_overflowing_content_range_is_416_and_a_long_component_name_invalid,
    gc_keeps_referenced_and_fresh_blobs,
    reusing_an_old_blob_protects_it_from_gc,
    killed_upload_leaves_nothing_visible,
    upload_session_survives_a_restart,
    list_images_reports_tags_sizes_and_push_time,
    pulls_are_coalesced_flushed_and_survive_a_restart,
    gc_expires_idle_upload_sessions_only,
    token_endpoint_exchanges_kubernetes_tokens_only,
    the_ecr_image_list_hides_platform_manifests_and_needs_its_action,
);

#[derive(Clone, Copy, Debug)]
enum Kind {
    Fs,
    S3,
}

/// Where a harness's store lives: kept to open it again (a restart, or another replica).
enum Medium {
    Dir(tempfile::TempDir),
    Bucket(Arc<InMemory>),
}

impl Medium {
    fn new(kind: Kind) -> Medium {
        match kind {
            Kind::Fs => Medium::Dir(tempfile::tempdir().unwrap()),
            Kind::S3 => Medium::Bucket(Arc::new(InMemory::new())),
        }
    }

    fn open(&self) -> Opened {
        match self {
            Medium::Dir(d) => {
                Opened::Fs(Arc::new(FsStorage::open(d.path().join("store")).unwrap()))
            }
            Medium::Bucket(m) => Opened::S3(Arc::new(S3Storage::new(m.clone(), "reg/istry", true))),
        }
    }
}

/// The store with its backend's type, for what tests do behind its back.
enum Opened {
    Fs(Arc<FsStorage>),
    S3(Arc<S3Storage>),
}

impl Opened {
    fn storage(&self) -> Arc<dyn Storage> {
        match self {
            Opened::Fs(s) => s.clone(),
            Opened::S3(s) => s.clone(),
        }
    }
}

/// Digests of every blob stored (`blobs/<alg>/<hex[..2]>/<hex>`).
async fn blobs_in<B: Backend>(s: &Store<B>) -> BTreeSet<Digest> {
    let listed = s.backend().list(layout::BLOBS).await.unwrap();
    listed
        .iter()
        .filter_map(|(k, _)| {
            let alg = k.split('/').nth(1)?;
            layout::digest_from_parts(alg, k.rsplit('/').next()?)
        })
        .collect()
}

struct Harness {
    medium: Medium,
    opened: Opened,
    router: axum::Router,
    signer: TokenSigner,
    storage: Arc<dyn Storage>,
    auth: String,
    /// The pulls the router noted, written by `flush` (the registry's loop).
    pulls: Arc<pulls::PullTimes>,
}

struct Resp {
    status: StatusCode,
    headers: HeaderMap,
    body: Bytes,
}

impl Resp {
    fn header(&self, name: &str) -> &str {
        self.headers
            .get(name)
            .map(|v| v.to_str().unwrap())
            .unwrap_or_else(|| panic!("no {name} header in {:?}", self.headers))
    }

    fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap_or_else(|e| {
            panic!("{e}: {}", String::from_utf8_lossy(&self.body));
        })
    }

    fn error_code(&self) -> String {
        self.json()["errors"][0]["code"]
            .as_str()
            .unwrap()
            .to_string()
    }

    fn error_message(&self) -> String {
        self.json()["errors"][0]["message"]
            .as_str()
            .unwrap()
            .to_string()
    }
}

fn basic(user: &str, password: &str) -> String {
    format!("Basic {}", STANDARD.encode(format!("{user}:{password}")))
}

fn alice() -> Principal {
    Principal {
        username: "alice".into(),
        groups: vec!["dev".into()],
    }
}

fn harness_with(kind: Kind, policy: Arc<dyn AccessPolicy>, config: RegistryConfig) -> Harness {
    harness_in(Medium::new(kind), policy, config)
}

fn harness_in(medium: Medium, policy: Arc<dyn AccessPolicy>, config: RegistryConfig) -> Harness {
    let opened = medium.open();
    let storage = opened.storage();
    let signer = TokenSigner::new(vec![42u8; 32]).unwrap();
    let auth = basic("AWS", &signer.issue(&alice(), SystemTime::now()));
    let pulls = Arc::new(pulls::PullTimes::default());
    let router = router(Arc::new(Registry {
        storage: storage.clone(),
        policy,
        auth: Authenticator::new(signer.clone()),
        config,
        changes: None,
        uploads: Default::default(),
        pulls: pulls.clone(),
        pull_through: None,
        replication: None,
    }));
    Harness {
        medium,
        opened,
        router,
        signer,
        storage,
        auth,
        pulls,
    }
}

fn harness(kind: Kind) -> Harness {
    harness_with(kind, Arc::new(AllowAll), RegistryConfig::default())
}

/// A moment between what was stored before and what is stored after the call (S3's clock
/// counts milliseconds). The margin after it covers the time between `grace_since` and the
/// GC reading the clock.
async fn moment() -> SystemTime {
    tokio::time::sleep(Duration::from_millis(10)).await;
    let t = SystemTime::now();
    tokio::time::sleep(Duration::from_millis(50)).await;
    t
}

/// The grace period for which what was stored before `t` is old and what came after fresh.
fn grace_since(t: SystemTime) -> Duration {
    t.elapsed().unwrap()
}

impl Harness {
    /// The same medium opened again: a restarted process, or another replica.
    fn reopen(self) -> Harness {
        harness_in(self.medium, Arc::new(AllowAll), RegistryConfig::default())
    }

    async fn stored_blobs(&self) -> BTreeSet<Digest> {
        match &self.opened {
            Opened::Fs(s) => blobs_in(&**s).await,
            Opened::S3(s) => blobs_in(&**s).await,
        }
    }

    /// Writes an object behind the store's back (what a killed process may leave).
    async fn put_raw(&self, key: &str, bytes: &'static [u8]) {
        let bytes = Bytes::from_static(bytes);
        match &self.opened {
            Opened::Fs(s) => s.backend().put(key, bytes).await.unwrap(),
            Opened::S3(s) => s.backend().put(key, bytes).await.unwrap(),
        }
    }

    fn fs_root(&self) -> Option<&std::path::Path> {
        match &self.opened {
            Opened::Fs(s) => Some(s.root()),
            Opened::S3(_) => None,
        }
    }

    async fn request(
        &self,
        method: Method,
        uri: &str,
        headers: &[(&str, &str)],
        body: Body,
        auth: Option<&str>,
    ) -> Resp {
        let mut b = Request::builder().method(method).uri(uri);
        if let Some(a) = auth {
            b = b.header("authorization", a);
        }
        for (k, v) in headers {
            b = b.header(*k, *v);
        }
        let resp = self
            .router
            .clone()
            .oneshot(b.body(body).unwrap())
            .await
            .unwrap();
        let (parts, body) = resp.into_parts();
        Resp {
            status: parts.status,
            headers: parts.headers,
            body: axum::body::to_bytes(body, usize::MAX).await.unwrap(),
        }
    }

    async fn send(&self, method: Method, uri: &str, headers: &[(&str, &str)], body: &[u8]) -> Resp {
        self.request(
            method,
            uri,
            headers,
            Body::from(body.to_vec()),
            Some(&self.auth.clone()),
        )
        .await
    }

    /// A POST without headers or body (starting an upload, a mount).
    async fn post(&self, uri: &str) -> Resp {
        self.send(Method::POST, uri, &[], b"").await
    }

    async fn get(&self, uri: &str) -> Resp {
        self.send(Method::GET, uri, &[], b"").await
    }

    /// Monolithic push; returns the digest.
    async fn push_blob(&self, repo: &str, content: &[u8]) -> Digest {
        let d = Digest::sha256(content);
        let r = self
            .send(
                Method::POST,
                &format!("/v2/{repo}/blobs/uploads/?digest={d}"),
                &[],
                content,
            )
            .await;
        assert_eq!(r.status, StatusCode::CREATED, "{:?}", r.body);
        d
    }

    /// Pushes a config + one layer and an image manifest referencing them, under `reference`.
    async fn push_image(&self, repo: &str, reference: &str, salt: &str) -> (Digest, Vec<u8>) {
        let config = format!("{{\"salt\":\"{salt}\"}}");
        let cfg = self.push_blob(repo, config.as_bytes()).await;
        let layer = self
            .push_blob(repo, format!("layer-{salt}").as_bytes())
            .await;
        let manifest = image_manifest(&cfg, config.len(), &layer, 6 + salt.len(), None);
        let r = self
            .send(
                Method::PUT,
                &format!("/v2/{repo}/manifests/{reference}"),
                &[("content-type", OCI_MANIFEST)],
                &manifest,
            )
            .await;
        assert_eq!(
            r.status,
            StatusCode::CREATED,
            "{}",
            String::from_utf8_lossy(&r.body)
        );
        (Digest::sha256(&manifest), manifest)
    }
}

fn image_manifest(
    cfg: &Digest,
    cfg_size: usize,
    layer: &Digest,
    layer_size: usize,
    extra: Option<Value>,
) -> Vec<u8> {
    let mut m = json!({
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": cfg.to_string(), "size": cfg_size},
        "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar+gzip", "digest": layer.to_string(), "size": layer_size}]
    });
    if let Some(Value::Object(extra)) = extra {
        for (k, v) in extra {
            m[k] = v;
        }
    }
    serde_json::to_vec(&m).unwrap()
}

// --- authentication -------------------------------------------------------------------------

async fn ping_needs_a_valid_token(k: Kind) {
    let h = harness(k);
    let ok = h.get("/v2/").await;
    assert_eq!(ok.status, StatusCode::OK);
    assert_eq!(ok.header("docker-distribution-api-version"), "registry/2.0");

    let now = SystemTime::now();
    let forged = TokenSigner::new(vec![1u8; 32])
        .unwrap()
        .issue(&alice(), now);
    let expired = h
        .signer
        .issue(&alice(), now - Duration::from_secs(13 * 3600));
    let good = h.signer.issue(&alice(), now);
    let cases: Vec<(&str, Option<String>)> = vec![
        ("no token", None),
        ("forged signature", Some(basic("AWS", &forged))),
        ("expired", Some(basic("AWS", &expired))),
        ("wrong user", Some(basic("alice", &good))),
        ("garbage", Some("Basic !!!".into())),
        ("unknown scheme", Some(format!("Token {good}"))),
    ];
    for (what, auth) in cases {
        for uri in ["/v2/", "/v2/a/manifests/latest", "/v2/_catalog"] {
            let r = h
                .request(Method::GET, uri, &[], Body::empty(), auth.as_deref())
                .await;
            assert_eq!(r.status, StatusCode::UNAUTHORIZED, "{what} {uri}");
            assert_eq!(r.header("www-authenticate"), r#"Basic realm="kubecs""#);
            assert_eq!(r.error_code(), "UNAUTHORIZED", "{what}");
        }
    }
    // Probes need no token; nothing else outside /v2 exists.
    let live = h
        .request(Method::GET, "/ready", &[], Body::empty(), None)
        .await;
    assert_eq!(live.status, StatusCode::OK);
    let other = h
        .request(Method::GET, "/v3/", &[], Body::empty(), None)
        .await;
    assert_eq!(other.status, StatusCode::NOT_FOUND);
    // A Bearer token is accepted as well.
    let r = h
        .request(
            Method::GET,
            "/v2/",
            &[],
            Body::empty(),
            Some(&format!("Bearer {good}")),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK);
}

// --- push and pull ---------------------------------------------------------------------------

async fn monolithic_push_and_pull(k: Kind) {
    let h = harness(k);
    let content = b"hello blob".to_vec();
    let d = h.push_blob("team/app", &content).await;
    let uri = format!("/v2/team/app/blobs/{d}");
    let head = h.send(Method::HEAD, &uri, &[], b"").await;
    assert_eq!(head.status, StatusCode::OK);
    assert_eq!(head.header("content-length"), "10");
    assert_eq!(head.header("docker-content-digest"), d.to_string());
    assert!(head.body.is_empty());
    let get = h.get(&uri).await;
    assert_eq!(get.status, StatusCode::OK);
    assert_eq!(&get.body[..], &content[..]);
    // The blob belongs to the repository it was pushed to.
    let other = h.get(&format!("/v2/other/blobs/{d}")).await;
    assert_eq!(other.status, StatusCode::NOT_FOUND);
    assert_eq!(other.error_code(), "BLOB_UNKNOWN");
}

async fn chunked_push_and_out_of_order_chunk(k: Kind) {
    let h = harness(k);
    let content: Vec<u8> = (0..3000u32).map(|i| (i % 251) as u8).collect();
    let d = Digest::sha256(&content);
    let start = h.post("/v2/r/blobs/uploads/").await;
    assert_eq!(start.status, StatusCode::ACCEPTED);
    assert_eq!(start.header("range"), "0-0");
    let uuid = start.header("docker-upload-uuid").to_string();
    let loc = start.header("location").to_string();
    assert_eq!(loc, format!("/v2/r/blobs/uploads/{uuid}"));

    let p1 = h
        .send(
            Method::PATCH,
            &loc,
            &[("content-range", "0-999"), ("content-length", "1000")],
            &content[..1000],
        )
        .await;
    assert_eq!(p1.status, StatusCode::ACCEPTED);
    assert_eq!(p1.header("range"), "0-999");

    // Out of order: starts past the end, then rewinds to 0.
    for (range, part) in [("2000-2999", &content[2000..]), ("0-999", &content[..1000])] {
        let bad = h
            .send(Method::PATCH, &loc, &[("content-range", range)], part)
            .await;
        assert_eq!(bad.status, StatusCode::RANGE_NOT_SATISFIABLE, "{range}");
        assert_eq!(bad.header("range"), "0-999");
        assert_eq!(bad.header("location"), loc);
    }
    let status = h.get(&loc).await;
    assert_eq!(status.status, StatusCode::NO_CONTENT);
    assert_eq!(status.header("range"), "0-999");

    let p2 = h
        .send(
            Method::PATCH,
            &loc,
            &[("content-range", "1000-1999")],
            &content[1000..2000],
        )
        .await;
    assert_eq!(p2.status, StatusCode::ACCEPTED);
    // The last chunk comes with the closing PUT.
    let put = h
        .send(
            Method::PUT,
            &format!("{loc}?digest={d}"),
            &[("content-range", "2000-2999")],
            &content[2000..],
        )
        .await;
    assert_eq!(put.status, StatusCode::CREATED);
    assert_eq!(put.header("location"), format!("/v2/r/blobs/{d}"));
    assert_eq!(
        &h.get(&format!("/v2/r/blobs/{d}")).await.body[..],
        &content[..]
    );
    // The session is gone.
    assert_eq!(h.get(&loc).await.status, StatusCode::NOT_FOUND);
}

async fn streamed_patch_and_cancel(k: Kind) {
    let h = harness(k);
    let content = vec![7u8; 100_000];
    let d = Digest::sha256(&content);
    let loc = h
        .post("/v2/r/blobs/uploads/")
        .await
        .header("location")
        .to_string();
    // No Content-Range: a stream of several body chunks.
    let chunks: Vec<Result<Bytes, std::io::Error>> = content
        .chunks(7000)
        .map(|c| Ok(Bytes::copy_from_slice(c)))
        .collect();
    let r = h
        .request(
            Method::PATCH,
            &loc,
            &[],
            Body::from_stream(futures::stream::iter(chunks)),
            Some(&h.auth),
        )
        .await;
    assert_eq!(r.status, StatusCode::ACCEPTED);
    assert_eq!(r.header("range"), "0-99999");
    let put = h
        .send(Method::PUT, &format!("{loc}?digest={d}"), &[], b"")
        .await;
    assert_eq!(put.status, StatusCode::CREATED);

    let loc2 = h
        .post("/v2/r/blobs/uploads/")
        .await
        .header("location")
        .to_string();
    assert_eq!(
        h.send(Method::DELETE, &loc2, &[], b"").await.status,
        StatusCode::NO_CONTENT
    );
    let gone = h.get(&loc2).await;
    assert_eq!(gone.status, StatusCode::NOT_FOUND);
    assert_eq!(gone.error_code(), "BLOB_UPLOAD_UNKNOWN");
}

async fn digest_mismatch_is_refused_and_nothing_is_visible(k: Kind) {
    let h = harness(k);
    let claimed = Digest::sha256(b"what the client claims");
    let body = b"what the client sends";
    // Monolithic.
    let r = h
        .send(
            Method::POST,
            &format!("/v2/r/blobs/uploads/?digest={claimed}"),
            &[],
            body,
        )
        .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    assert_eq!(r.error_code(), "DIGEST_INVALID");
    // Session.
    let loc = h
        .post("/v2/r/blobs/uploads/")
        .await
        .header("location")
        .to_string();
    let r = h
        .send(Method::PUT, &format!("{loc}?digest={claimed}"), &[], body)
        .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    assert_eq!(r.error_code(), "DIGEST_INVALID");
    assert_eq!(
        h.get(&loc).await.status,
        StatusCode::NOT_FOUND,
        "session discarded"
    );
    for d in [claimed, Digest::sha256(body)] {
        assert_eq!(
            h.send(Method::HEAD, &format!("/v2/r/blobs/{d}"), &[], b"")
                .await
                .status,
            StatusCode::NOT_FOUND
        );
    }
    assert!(h.stored_blobs().await.is_empty(), "no blob stored");
    if let Some(root) = h.fs_root() {
        let left = std::fs::read_dir(root.join("tmp")).unwrap().count();
        assert_eq!(left, 0, "no temporary file left");
    }
    // Malformed digests.
    for bad in ["sha256:1234", "md5:abc", "nonsense"] {
        let r = h
            .send(
                Method::POST,
                &format!("/v2/r/blobs/uploads/?digest={bad}"),
                &[],
                body,
            )
            .await;
        assert_eq!(r.status, StatusCode::BAD_REQUEST, "{bad}");
        assert_eq!(r.error_code(), "DIGEST_INVALID");
    }
}

async fn sha512_blobs_and_manifests(k: Kind) {
    let h = harness(k);
    let content = b"sha512 content";
    let d = Digest::of(Algorithm::Sha512, content);
    assert_eq!(d.hex().len(), 128);
    let r = h
        .send(
            Method::POST,
            &format!("/v2/r/blobs/uploads/?digest={d}"),
            &[],
            content,
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED);
    assert_eq!(&h.get(&format!("/v2/r/blobs/{d}")).await.body[..], content);
    // Chunked with sha512.
    let other = b"another sha512 blob, chunked";
    let d2 = Digest::of(Algorithm::Sha512, other);
    let loc = h
        .post("/v2/r/blobs/uploads/")
        .await
        .header("location")
        .to_string();
    h.send(
        Method::PATCH,
        &loc,
        &[("content-range", "0-9")],
        &other[..10],
    )
    .await;
    let put = h
        .send(
            Method::PUT,
            &format!("{loc}?digest={d2}"),
            &[],
            &other[10..],
        )
        .await;
    assert_eq!(put.status, StatusCode::CREATED);
    // A manifest pushed by its sha512 digest.
    let m = image_manifest(&d, content.len(), &d2, other.len(), None);
    let md = Digest::of(Algorithm::Sha512, &m);
    let r = h
        .send(
            Method::PUT,
            &format!("/v2/r/manifests/{md}"),
            &[("content-type", OCI_MANIFEST)],
            &m,
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED);
    assert_eq!(r.header("docker-content-digest"), md.to_string());
    let g = h.get(&format!("/v2/r/manifests/{md}")).await;
    assert_eq!(&g.body[..], &m[..]);
}

async fn range_requests(k: Kind) {
    let h = harness(k);
    let content: Vec<u8> = (0..2048u32).map(|i| i as u8).collect();
    let d = h.push_blob("r", &content).await;
    let uri = format!("/v2/r/blobs/{d}");
    let r = h
        .send(Method::GET, &uri, &[("range", "bytes=500-1499")], b"")
        .await;
    assert_eq!(r.status, StatusCode::PARTIAL_CONTENT);
    assert_eq!(r.header("content-range"), "bytes 500-1499/2048");
    assert_eq!(r.header("content-length"), "1000");
    assert_eq!(&r.body[..], &content[500..1500]);
    let r = h
        .send(Method::GET, &uri, &[("range", "bytes=-48")], b"")
        .await;
    assert_eq!(&r.body[..], &content[2000..]);
    let r = h
        .send(Method::GET, &uri, &[("range", "bytes=2000-9999")], b"")
        .await;
    assert_eq!(r.header("content-range"), "bytes 2000-2047/2048");
    for bad in ["bytes=5000-6000", "bytes=10-5"] {
        let r = h.send(Method::GET, &uri, &[("range", bad)], b"").await;
        assert_eq!(r.status, StatusCode::RANGE_NOT_SATISFIABLE, "{bad}");
        assert_eq!(r.header("content-range"), "bytes */2048");
    }
}

async fn cross_repository_mount(k: Kind) {
    let h = harness(k);
    let d = h.push_blob("source", b"shared layer").await;
    // From a repository that has it.
    let r = h
        .post(&format!("/v2/target/blobs/uploads/?mount={d}&from=source"))
        .await;
    assert_eq!(r.status, StatusCode::CREATED);
    assert_eq!(r.header("location"), format!("/v2/target/blobs/{d}"));
    assert_eq!(
        &h.get(&format!("/v2/target/blobs/{d}")).await.body[..],
        b"shared layer"
    );
    // From a repository that does not have it: an upload session instead.
    let r = h
        .post(&format!("/v2/fourth/blobs/uploads/?mount={d}&from=empty"))
        .await;
    assert_eq!(r.status, StatusCode::ACCEPTED);
    assert!(
        r.header("location")
            .starts_with("/v2/fourth/blobs/uploads/")
    );
    // Unknown digest without `from`: also a session.
    let missing = Digest::sha256(b"never pushed");
    let r = h
        .post(&format!("/v2/fifth/blobs/uploads/?mount={missing}"))
        .await;
    assert_eq!(r.status, StatusCode::ACCEPTED);
}

async fn mount_from_an_unreadable_repository_falls_back_to_upload(k: Kind) {
    struct NoReadFromSecret;
    impl AccessPolicy for NoReadFromSecret {
        fn repository(&self, _: &str) -> Option<RepositorySettings> {
            Some(RepositorySettings::default())
        }
        fn authorize(&self, _: &Principal, repo: &str, action: &str) -> Result<(), String> {
            if repo == "secret" && action == actions::GET_DOWNLOAD_URL_FOR_LAYER {
                Err("no".into())
            } else {
                Ok(())
            }
        }
    }
    let h = harness_with(k, Arc::new(NoReadFromSecret), RegistryConfig::default());
    let d = h.push_blob("secret", b"classified").await;
    let r = h
        .post(&format!("/v2/mine/blobs/uploads/?mount={d}&from=secret"))
        .await;
    assert_eq!(r.status, StatusCode::ACCEPTED);
}

/// Without `from` there is no source repository to check a read against: a pusher could copy
/// any layer whose digest it knows. The mount becomes an upload and links nothing.
async fn mount_without_from_falls_back_to_upload_and_links_nothing(k: Kind) {
    let h = harness(k);
    let d = h.push_blob("secret", b"classified").await;
    let r = h.post(&format!("/v2/mine/blobs/uploads/?mount={d}")).await;
    assert_eq!(r.status, StatusCode::ACCEPTED);
    assert!(r.header("location").starts_with("/v2/mine/blobs/uploads/"));
    let r = h.get(&format!("/v2/mine/blobs/{d}")).await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);
    assert_eq!(r.error_code(), "BLOB_UNKNOWN");
}

// --- manifests -------------------------------------------------------------------------------

async fn manifest_push_pull_and_validation(k: Kind) {
    let h = harness(k);
    let (d, m) = h.push_image("app", "v1", "a").await;
    for reference in ["v1".to_string(), d.to_string()] {
        let uri = format!("/v2/app/manifests/{reference}");
        let g = h.get(&uri).await;
        assert_eq!(g.status, StatusCode::OK);
        assert_eq!(g.header("content-type"), OCI_MANIFEST);
        assert_eq!(g.header("docker-content-digest"), d.to_string());
        assert_eq!(g.header("content-length"), m.len().to_string());
        assert_eq!(&g.body[..], &m[..]);
        let head = h.send(Method::HEAD, &uri, &[], b"").await;
        assert_eq!(head.status, StatusCode::OK);
        assert_eq!(head.header("content-length"), m.len().to_string());
        assert!(head.body.is_empty());
    }
    // A manifest is also served by the blob endpoint.
    let as_blob = h.get(&format!("/v2/app/blobs/{d}")).await;
    assert_eq!(as_blob.status, StatusCode::OK);
    assert_eq!(&as_blob.body[..], &m[..]);
    let missing = h.get("/v2/app/manifests/v2").await;
    assert_eq!(missing.status, StatusCode::NOT_FOUND);
    assert_eq!(missing.error_code(), "MANIFEST_UNKNOWN");

    // The digest in the reference must be the body's.
    let wrong = Digest::sha256(b"other");
    let r = h
        .send(
            Method::PUT,
            &format!("/v2/app/manifests/{wrong}"),
            &[("content-type", OCI_MANIFEST)],
            &m,
        )
        .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    assert_eq!(r.error_code(), "DIGEST_INVALID");
    // Not JSON.
    let r = h
        .send(
            Method::PUT,
            "/v2/app/manifests/bad",
            &[("content-type", OCI_MANIFEST)],
            b"{",
        )
        .await;
    assert_eq!(r.error_code(), "MANIFEST_INVALID");
}

/// Content addressed by digest is immutable: `Cache-Control` says so, and `If-None-Match`
/// naming its ETag is 304 without a body, for blobs and manifests (by digest or tag).
async fn conditional_gets_and_cache_control(k: Kind) {
    let h = harness(k);
    let (m, _) = h.push_image("app", "v1", "a").await;
    let layer = Digest::sha256(b"layer-a");
    let blob = format!("/v2/app/blobs/{layer}");
    let g = h.get(&blob).await;
    assert_eq!(g.status, StatusCode::OK);
    assert_eq!(g.header("cache-control"), "max-age=31536000, immutable");
    let etag = g.header("etag").to_string();
    assert_eq!(etag, format!("\"{layer}\""));
    for method in [Method::GET, Method::HEAD] {
        let r = h
            .send(method.clone(), &blob, &[("if-none-match", &etag)], b"")
            .await;
        assert_eq!(r.status, StatusCode::NOT_MODIFIED, "{method}");
        assert!(r.body.is_empty());
        assert_eq!(r.header("etag"), etag);
        assert_eq!(r.header("cache-control"), "max-age=31536000, immutable");
    }
    // Another ETag: the content, ranges as usual.
    let r = h
        .send(
            Method::GET,
            &blob,
            &[
                ("if-none-match", "\"sha256:other\""),
                ("range", "bytes=0-1"),
            ],
            b"",
        )
        .await;
    assert_eq!(r.status, StatusCode::PARTIAL_CONTENT);
    assert_eq!(&r.body[..], b"la");

    for reference in [m.to_string(), "v1".into()] {
        let uri = format!("/v2/app/manifests/{reference}");
        let g = h.get(&uri).await;
        assert_eq!(g.header("etag"), format!("\"{m}\""));
        let r = h
            .send(Method::GET, &uri, &[("if-none-match", &m.to_string())], b"")
            .await;
        assert_eq!(r.status, StatusCode::NOT_MODIFIED, "{reference}");
        assert!(r.body.is_empty());
        // By digest immutable; by tag it changes when the tag moves.
        assert_eq!(
            g.headers.get("cache-control").is_some(),
            reference.contains(':'),
            "{reference}"
        );
    }
    // A manifest fetched through the blob endpoint is content too.
    let r = h
        .send(
            Method::GET,
            &format!("/v2/app/blobs/{m}"),
            &[("if-none-match", &format!("\"{m}\""))],
            b"",
        )
        .await;
    assert_eq!(r.status, StatusCode::NOT_MODIFIED);
}

/// `Accept` as distribution honours it: an OCI manifest or index the client did not list is
/// MANIFEST_UNKNOWN; listed, wildcarded or without `Accept` it is served.
async fn manifest_get_honours_accept(k: Kind) {
    let h = harness(k);
    let (m, body) = h.push_image("app", "v1", "a").await;
    let get = |accept: &'static str| {
        let h = &h;
        async move {
            let headers: &[(&str, &str)] = if accept.is_empty() {
                &[]
            } else {
                &[("accept", accept)]
            };
            h.send(Method::GET, "/v2/app/manifests/v1", headers, b"")
                .await
        }
    };
    for accept in [
        "",
        OCI_MANIFEST,
        "application/vnd.docker.distribution.manifest.v2+json, application/vnd.oci.image.manifest.v1+json;q=0.9",
        "*/*",
    ] {
        let r = get(accept).await;
        assert_eq!(r.status, StatusCode::OK, "Accept: {accept}");
        assert_eq!(&r.body[..], &body[..]);
    }
    for accept in [
        OCI_INDEX,
        "application/vnd.docker.distribution.manifest.v2+json",
    ] {
        let r = get(accept).await;
        assert_eq!(r.status, StatusCode::NOT_FOUND, "Accept: {accept}");
        assert_eq!(r.error_code(), "MANIFEST_UNKNOWN");
    }
    // HEAD negotiates the same way.
    let r = h
        .send(
            Method::HEAD,
            &format!("/v2/app/manifests/{m}"),
            &[("accept", OCI_INDEX)],
            b"",
        )
        .await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);
}

/// Reads served from the store's index (filesystem) see every change at once: a moved tag,
/// a deleted tag or manifest, an unlinked blob.
async fn what_changes_is_seen_at_once(k: Kind) {
    let h = harness(k);
    let (first, _) = h.push_image("app", "v1", "a").await;
    let layer = Digest::sha256(b"layer-a");
    // Read once, so that the index holds them.
    assert_eq!(
        h.get("/v2/app/manifests/v1")
            .await
            .header("docker-content-digest"),
        first.to_string()
    );
    let head = |uri: String| {
        let h = &h;
        async move { h.send(Method::HEAD, &uri, &[], b"").await.status }
    };
    assert_eq!(head(format!("/v2/app/blobs/{layer}")).await, StatusCode::OK);

    let (second, _) = h.push_image("app", "v1", "b").await;
    let g = h.get("/v2/app/manifests/v1").await;
    assert_eq!(
        g.header("docker-content-digest"),
        second.to_string(),
        "the tag moved"
    );

    let del = h
        .send(Method::DELETE, "/v2/app/manifests/v1", &[], b"")
        .await;
    assert_eq!(del.status, StatusCode::ACCEPTED);
    assert_eq!(
        h.get("/v2/app/manifests/v1").await.status,
        StatusCode::NOT_FOUND
    );

    assert_eq!(
        head(format!("/v2/app/manifests/{first}")).await,
        StatusCode::OK
    );
    let del = h
        .send(
            Method::DELETE,
            &format!("/v2/app/manifests/{first}"),
            &[],
            b"",
        )
        .await;
    assert_eq!(del.status, StatusCode::ACCEPTED);
    assert_eq!(
        head(format!("/v2/app/manifests/{first}")).await,
        StatusCode::NOT_FOUND
    );

    let del = h
        .send(Method::DELETE, &format!("/v2/app/blobs/{layer}"), &[], b"")
        .await;
    assert_eq!(del.status, StatusCode::ACCEPTED);
    assert_eq!(
        head(format!("/v2/app/blobs/{layer}")).await,
        StatusCode::NOT_FOUND
    );
    assert_eq!(
        h.get(&format!("/v2/app/blobs/{layer}")).await.status,
        StatusCode::NOT_FOUND
    );
}

async fn manifest_referencing_unknown_blobs_or_manifests_is_refused(k: Kind) {
    let h = harness(k);
    let cfg = h.push_blob("r", b"{}").await;
    let missing = Digest::sha256(b"missing layer");
    let m = image_manifest(&cfg, 2, &missing, 13, None);
    let r = h
        .send(
            Method::PUT,
            "/v2/r/manifests/x",
            &[("content-type", OCI_MANIFEST)],
            &m,
        )
        .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    assert_eq!(r.error_code(), "MANIFEST_BLOB_UNKNOWN");
    assert_eq!(
        r.json()["errors"][0]["detail"]["digest"],
        missing.to_string()
    );
    // A blob of another repository does not count.
    let elsewhere = h.push_blob("other", b"layer elsewhere").await;
    let m = image_manifest(&cfg, 2, &elsewhere, 15, None);
    let r = h
        .send(
            Method::PUT,
            "/v2/r/manifests/x",
            &[("content-type", OCI_MANIFEST)],
            &m,
        )
        .await;
    assert_eq!(r.error_code(), "MANIFEST_BLOB_UNKNOWN");
    // An index listing an unknown manifest.
    let index = serde_json::to_vec(&json!({
        "schemaVersion": 2, "mediaType": OCI_INDEX,
        "manifests": [{"mediaType": OCI_MANIFEST, "digest": missing.to_string(), "size": 10}]
    }))
    .unwrap();
    let r = h
        .send(
            Method::PUT,
            "/v2/r/manifests/idx",
            &[("content-type", OCI_INDEX)],
            &index,
        )
        .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    assert_eq!(r.error_code(), "MANIFEST_UNKNOWN");
    assert_eq!(h.get("/v2/r/tags/list").await.json()["tags"], json!([]));
}

async fn manifest_over_4_mib_is_refused(k: Kind) {
    let h = harness(k);
    let cfg = h.push_blob("r", b"{}").await;
    let layer = h.push_blob("r", b"l").await;
    let big = image_manifest(
        &cfg,
        2,
        &layer,
        1,
        Some(json!({"annotations": {"pad": "x".repeat(4 * 1024 * 1024)}})),
    );
    assert!(big.len() > 4 * 1024 * 1024);
    let r = h
        .send(
            Method::PUT,
            "/v2/r/manifests/big",
            &[("content-type", OCI_MANIFEST)],
            &big,
        )
        .await;
    assert_eq!(r.status, StatusCode::PAYLOAD_TOO_LARGE);
    assert_eq!(r.error_code(), "MANIFEST_INVALID");
    // Also when the length is not announced (a streamed body).
    let r = h
        .request(
            Method::PUT,
            "/v2/r/manifests/big",
            &[("content-type", OCI_MANIFEST)],
            Body::from_stream(futures::stream::iter(
                big.chunks(65536)
                    .map(|c| Ok::<_, std::io::Error>(Bytes::copy_from_slice(c)))
                    .collect::<Vec<_>>(),
            )),
            Some(&h.auth),
        )
        .await;
    assert_eq!(r.status, StatusCode::PAYLOAD_TOO_LARGE);
    // Just under the limit is fine.
    let pad = 8 * 1024 * 1024 - 1 - big.len();
    let fits = image_manifest(
        &cfg,
        2,
        &layer,
        1,
        Some(json!({"annotations": {"pad": "x".repeat(pad)}})),
    );
    assert_eq!(fits.len(), 4 * 1024 * 1024 - 1);
    let r = h
        .send(
            Method::PUT,
            "/v2/r/manifests/fits",
            &[("content-type", OCI_MANIFEST)],
            &fits,
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED);
}

async fn tag_listing_is_sorted_and_paginated(k: Kind) {
    let h = harness(k);
    let (d, m) = h.push_image("r", "v1", "a").await;
    for t in ["b", "a", "c", "latest", "v2"] {
        let r = h
            .send(
                Method::PUT,
                &format!("/v2/r/manifests/{t}"),
                &[("content-type", OCI_MANIFEST)],
                &m,
            )
            .await;
        assert_eq!(r.status, StatusCode::CREATED);
        assert_eq!(r.header("docker-content-digest"), d.to_string());
    }
    let all = h.get("/v2/r/tags/list").await;
    assert_eq!(
        all.json(),
        json!({"name": "r", "tags": ["a", "b", "c", "latest", "v1", "v2"]})
    );
    assert!(all.headers.get("link").is_none());
    let p1 = h.get("/v2/r/tags/list?n=2").await;
    assert_eq!(p1.json()["tags"], json!(["a", "b"]));
    assert_eq!(
        p1.header("link"),
        r#"</v2/r/tags/list?n=2&last=b>; rel="next""#
    );
    let p2 = h.get("/v2/r/tags/list?n=2&last=b").await;
    assert_eq!(p2.json()["tags"], json!(["c", "latest"]));
    let p3 = h.get("/v2/r/tags/list?n=2&last=latest").await;
    assert_eq!(p3.json()["tags"], json!(["v1", "v2"]));
    assert!(p3.headers.get("link").is_none());
    assert_eq!(h.get("/v2/r/tags/list?n=0").await.json()["tags"], json!([]));
}

async fn catalog_is_paginated(k: Kind) {
    let h = harness(k);
    for r in ["b/x", "a", "c"] {
        h.push_blob(r, r.as_bytes()).await;
    }
    assert_eq!(
        h.get("/v2/_catalog").await.json(),
        json!({"repositories": ["a", "b/x", "c"]})
    );
    let p = h.get("/v2/_catalog?n=1&last=a").await;
    assert_eq!(p.json()["repositories"], json!(["b/x"]));
    assert_eq!(
        p.header("link"),
        r#"</v2/_catalog?n=1&last=b/x>; rel="next""#
    );
}

async fn referrers_with_artifact_type_filter(k: Kind) {
    let h = harness(k);
    let (subject, subject_bytes) = h.push_image("r", "v1", "s").await;
    let empty = h.push_blob("r", b"{}").await;
    let mut pushed = Vec::new();
    for (i, at) in [
        "application/vnd.sig",
        "application/vnd.sbom",
        "application/vnd.sig",
    ]
    .iter()
    .enumerate()
    {
        let layer = h.push_blob("r", format!("artifact {i}").as_bytes()).await;
        let m = serde_json::to_vec(&json!({
            "schemaVersion": 2, "mediaType": OCI_MANIFEST, "artifactType": at,
            "config": {"mediaType": "application/vnd.oci.empty.v1+json", "digest": empty.to_string(), "size": 2},
            "layers": [{"mediaType": "application/octet-stream", "digest": layer.to_string(), "size": 10}],
            "subject": {"mediaType": OCI_MANIFEST, "digest": subject.to_string(), "size": subject_bytes.len()},
            "annotations": {"n": i.to_string()}
        }))
        .unwrap();
        let d = Digest::sha256(&m);
        let r = h
            .send(
                Method::PUT,
                &format!("/v2/r/manifests/{d}"),
                &[("content-type", OCI_MANIFEST)],
                &m,
            )
            .await;
        assert_eq!(r.status, StatusCode::CREATED);
        assert_eq!(r.header("oci-subject"), subject.to_string());
        pushed.push((d, m.len(), *at));
    }
    let all = h.get(&format!("/v2/r/referrers/{subject}")).await;
    assert_eq!(all.status, StatusCode::OK);
    assert_eq!(all.header("content-type"), OCI_INDEX);
    let idx = all.json();
    assert_eq!(idx["schemaVersion"], 2);
    assert_eq!(idx["mediaType"], OCI_INDEX);
    assert_eq!(idx["manifests"].as_array().unwrap().len(), 3);
    let (d0, len0, _) = &pushed[0];
    assert!(idx["manifests"].as_array().unwrap().contains(&json!({
        "mediaType": OCI_MANIFEST, "digest": d0.to_string(), "size": len0,
        "artifactType": "application/vnd.sig", "annotations": {"n": "0"}
    })));
    assert!(all.headers.get("oci-filters-applied").is_none());
    let sigs = h
        .get(&format!(
            "/v2/r/referrers/{subject}?artifactType=application/vnd.sig"
        ))
        .await;
    assert_eq!(sigs.header("oci-filters-applied"), "artifactType");
    let sigs = sigs.json();
    let list = sigs["manifests"].as_array().unwrap();
    assert_eq!(list.len(), 2);
    assert!(
        list.iter()
            .all(|m| m["artifactType"] == "application/vnd.sig")
    );
    // No referrers: still an empty index, 200.
    let none = h
        .get(&format!("/v2/r/referrers/{}", Digest::sha256(b"x")))
        .await;
    assert_eq!(none.status, StatusCode::OK);
    assert_eq!(none.json()["manifests"], json!([]));
    // Deleting a referrer removes it from the index.
    h.send(
        Method::DELETE,
        &format!("/v2/r/manifests/{}", pushed[1].0),
        &[],
        b"",
    )
    .await;
    let after = h.get(&format!("/v2/r/referrers/{subject}")).await.json();
    assert_eq!(after["manifests"].as_array().unwrap().len(), 2);
}

async fn deletes(k: Kind) {
    let h = harness(k);
    let (d, m) = h.push_image("r", "v1", "a").await;
    h.send(
        Method::PUT,
        "/v2/r/manifests/latest",
        &[("content-type", OCI_MANIFEST)],
        &m,
    )
    .await;
    // By tag: only the tag goes.
    let r = h
        .send(Method::DELETE, "/v2/r/manifests/latest", &[], b"")
        .await;
    assert_eq!(r.status, StatusCode::ACCEPTED);
    assert_eq!(
        h.get("/v2/r/manifests/latest").await.status,
        StatusCode::NOT_FOUND
    );
    assert_eq!(
        h.get(&format!("/v2/r/manifests/{d}")).await.status,
        StatusCode::OK
    );
    // By digest: the manifest and its remaining tags.
    let r = h
        .send(Method::DELETE, &format!("/v2/r/manifests/{d}"), &[], b"")
        .await;
    assert_eq!(r.status, StatusCode::ACCEPTED);
    assert_eq!(
        h.get("/v2/r/manifests/v1").await.status,
        StatusCode::NOT_FOUND
    );
    assert_eq!(h.get("/v2/r/tags/list").await.json()["tags"], json!([]));
    let again = h
        .send(Method::DELETE, &format!("/v2/r/manifests/{d}"), &[], b"")
        .await;
    assert_eq!(again.status, StatusCode::NOT_FOUND);
    assert_eq!(again.error_code(), "MANIFEST_UNKNOWN");
    // Blobs.
    let b = h.push_blob("r", b"blob").await;
    let uri = format!("/v2/r/blobs/{b}");
    assert_eq!(
        h.send(Method::DELETE, &uri, &[], b"").await.status,
        StatusCode::ACCEPTED
    );
    assert_eq!(h.get(&uri).await.status, StatusCode::NOT_FOUND);
    assert_eq!(
        h.send(Method::DELETE, &uri, &[], b"").await.error_code(),
        "BLOB_UNKNOWN"
    );
}

// --- ECR semantics ---------------------------------------------------------------------------

fn ecr_policy(mutability: ImageTagMutability, filters: &[&str]) -> Arc<StaticPolicy> {
    Arc::new(StaticPolicy::new().with_repository(
        "team/app",
        RepositorySettings {
            tag_mutability: mutability,
            exclusion_filters: filters.iter().map(|s| s.to_string()).collect(),
        },
    ))
}

async fn immutable_tags_cannot_move(k: Kind) {
    let h = harness_with(
        k,
        ecr_policy(ImageTagMutability::Immutable, &[]),
        RegistryConfig::default(),
    );
    let (d1, m1) = h.push_image("team/app", "v1", "one").await;
    // The same digest again under the same tag is fine.
    let again = h
        .send(
            Method::PUT,
            "/v2/team/app/manifests/v1",
            &[("content-type", OCI_MANIFEST)],
            &m1,
        )
        .await;
    assert_eq!(again.status, StatusCode::CREATED);
    // Another digest under v1 is refused with ECR's message; v1 still points at d1.
    let cfg = h.push_blob("team/app", b"{\"other\":1}").await;
    let layer = h.push_blob("team/app", b"other layer").await;
    let m2 = image_manifest(&cfg, 11, &layer, 11, None);
    let r = h
        .send(
            Method::PUT,
            "/v2/team/app/manifests/v1",
            &[("content-type", OCI_MANIFEST)],
            &m2,
        )
        .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    assert_eq!(r.error_code(), "TAG_INVALID");
    assert_eq!(
        r.error_message(),
        "The image tag 'v1' already exists in the 'team/app' repository and cannot be overwritten because the repository is immutable."
    );
    assert_eq!(
        h.get("/v2/team/app/manifests/v1")
            .await
            .header("docker-content-digest"),
        d1.to_string()
    );
    // A new tag is fine.
    let r = h
        .send(
            Method::PUT,
            "/v2/team/app/manifests/v2",
            &[("content-type", OCI_MANIFEST)],
            &m2,
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED);
}

async fn tag_mutability_exclusions(k: Kind) {
    for (mutability, filters, tag, movable) in [
        (
            ImageTagMutability::ImmutableWithExclusion,
            &["latest", "dev-*"][..],
            "dev-1",
            true,
        ),
        (
            ImageTagMutability::ImmutableWithExclusion,
            &["latest", "dev-*"][..],
            "v1",
            false,
        ),
        (
            ImageTagMutability::MutableWithExclusion,
            &["release-*"][..],
            "release-1",
            false,
        ),
        (
            ImageTagMutability::MutableWithExclusion,
            &["release-*"][..],
            "latest",
            true,
        ),
    ] {
        let h = harness_with(
            k,
            ecr_policy(mutability, filters),
            RegistryConfig::default(),
        );
        h.push_image("team/app", tag, "one").await;
        let cfg = h.push_blob("team/app", b"{\"x\":2}").await;
        let layer = h.push_blob("team/app", b"two").await;
        let m2 = image_manifest(&cfg, 7, &layer, 3, None);
        let r = h
            .send(
                Method::PUT,
                &format!("/v2/team/app/manifests/{tag}"),
                &[("content-type", OCI_MANIFEST)],
                &m2,
            )
            .await;
        let expected = if movable {
            StatusCode::CREATED
        } else {
            StatusCode::BAD_REQUEST
        };
        assert_eq!(r.status, expected, "{mutability:?} {filters:?} {tag}");
    }
}

async fn unknown_repository_is_name_unknown_with_ecr_message(k: Kind) {
    let h = harness_with(
        k,
        ecr_policy(ImageTagMutability::Mutable, &[]),
        RegistryConfig {
            registry_id: "123456789012".into(),
            ..Default::default()
        },
    );
    for (method, uri) in [
        (Method::POST, "/v2/nope/blobs/uploads/"),
        (Method::PUT, "/v2/nope/manifests/v1"),
        (Method::GET, "/v2/nope/manifests/v1"),
        (Method::GET, "/v2/nope/tags/list"),
    ] {
        let r = h.send(method.clone(), uri, &[], b"{}").await;
        assert_eq!(r.status, StatusCode::NOT_FOUND, "{method} {uri}");
        assert_eq!(r.error_code(), "NAME_UNKNOWN");
        assert_eq!(
            r.error_message(),
            "The repository with name 'nope' does not exist in the registry with id '123456789012'"
        );
    }
    // With create-on-push the push goes through.
    let h = harness_with(
        k,
        ecr_policy(ImageTagMutability::Mutable, &[]),
        RegistryConfig {
            create_on_push: true,
            ..Default::default()
        },
    );
    h.push_image("nope", "v1", "x").await;
}

/// A policy whose unknown repositories are created IMMUTABLE (as a template would make them),
/// noting each creation and its scenario (which templates would apply).
#[derive(Default)]
pub(super) struct CreatesImmutable(
    pub(super)  std::sync::Mutex<
        Vec<(
            String,
            crate::api::repository_creation_template::RctAppliedFor,
        )>,
    >,
);

impl AccessPolicy for CreatesImmutable {
    fn repository(&self, _: &str) -> Option<RepositorySettings> {
        None
    }

    fn authorize(&self, _: &Principal, _: &str, _: &str) -> Result<(), String> {
        Ok(())
    }

    fn create_on_push<'a>(
        &'a self,
        _: &'a Principal,
        repo: &'a str,
        scenario: crate::api::repository_creation_template::RctAppliedFor,
    ) -> futures::future::BoxFuture<'a, Result<RepositorySettings, String>> {
        self.0.lock().unwrap().push((repo.to_string(), scenario));
        Box::pin(async {
            Ok(RepositorySettings {
                tag_mutability: ImageTagMutability::Immutable,
                exclusion_filters: vec![],
            })
        })
    }
}

async fn create_on_push_creates_the_repository_with_its_template_settings_first(k: Kind) {
    let policy = Arc::new(CreatesImmutable::default());
    let h = harness_with(
        k,
        policy.clone(),
        RegistryConfig {
            create_on_push: true,
            ..Default::default()
        },
    );
    // A pull of an unknown name creates nothing.
    let r = h.get("/v2/prod/web/manifests/v1").await;
    assert_eq!(r.error_code(), "MANIFEST_UNKNOWN");
    assert!(policy.0.lock().unwrap().is_empty());
    h.push_image("prod/web", "v1", "one").await;
    let created = policy.0.lock().unwrap().clone();
    assert!(
        !created.is_empty()
            && created.iter().all(|(r, s)| r == "prod/web"
                && *s == crate::api::repository_creation_template::RctAppliedFor::CreateOnPush)
    );
    // The created settings hold from the first push: the tag cannot move.
    let config = "{\"salt\":\"two\"}";
    let cfg = h.push_blob("prod/web", config.as_bytes()).await;
    let layer = h.push_blob("prod/web", b"layer-two").await;
    let m = image_manifest(&cfg, config.len(), &layer, 9, None);
    let r = h
        .send(
            Method::PUT,
            "/v2/prod/web/manifests/v1",
            &[("content-type", OCI_MANIFEST)],
            &m,
        )
        .await;
    assert_eq!(r.error_code(), "TAG_INVALID");
}

async fn invalid_names_and_denied_actions(k: Kind) {
    let policy = Arc::new(StaticPolicy::new().grant(
        "alice",
        &[
            actions::BATCH_GET_IMAGE,
            actions::GET_DOWNLOAD_URL_FOR_LAYER,
        ],
    ));
    let h = harness_with(
        k,
        policy,
        RegistryConfig {
            create_on_push: true,
            ..Default::default()
        },
    );
    let r = h.get("/v2/Bad_Name/manifests/latest").await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    assert_eq!(r.error_code(), "NAME_INVALID");
    let long = "a".repeat(257);
    assert_eq!(
        h.get(&format!("/v2/{long}/tags/list")).await.error_code(),
        "NAME_INVALID"
    );
    let r = h.post("/v2/app/blobs/uploads/").await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
    assert_eq!(r.error_code(), "DENIED");
    assert!(r.error_message().contains("ecr:InitiateLayerUpload"));
    // Pull is allowed (and the manifest simply does not exist).
    assert_eq!(
        h.get("/v2/app/manifests/latest").await.error_code(),
        "MANIFEST_UNKNOWN"
    );
    // The catalog only lists what the principal may describe or list: nothing here.
    let content = Bytes::from_static(b"pushed by someone else");
    let stream: storage::ByteStream = Box::pin(futures::stream::iter([Ok::<_, std::io::Error>(
        content.clone(),
    )]));
    h.storage
        .put_blob("app", &Digest::sha256(&content), stream, u64::MAX)
        .await
        .unwrap();
    assert_eq!(h.storage.list_repositories().await.unwrap(), vec!["app"]);
    assert_eq!(
        h.get("/v2/_catalog").await.json(),
        json!({"repositories": []})
    );
}

async fn upload_size_cap(k: Kind) {
    let h = harness_with(
        k,
        Arc::new(AllowAll),
        RegistryConfig {
            max_upload_bytes: 1000,
            ..Default::default()
        },
    );
    let big = vec![1u8; 1001];
    let r = h
        .send(
            Method::POST,
            &format!("/v2/r/blobs/uploads/?digest={}", Digest::sha256(&big)),
            &[],
            &big,
        )
        .await;
    assert_eq!(r.status, StatusCode::PAYLOAD_TOO_LARGE);
    assert_eq!(r.error_code(), "SIZE_INVALID");
    let loc = h
        .post("/v2/r/blobs/uploads/")
        .await
        .header("location")
        .to_string();
    let ok = h.send(Method::PATCH, &loc, &[], &big[..600]).await;
    assert_eq!(ok.status, StatusCode::ACCEPTED);
    let over = h.send(Method::PATCH, &loc, &[], &big[600..]).await;
    assert_eq!(over.status, StatusCode::PAYLOAD_TOO_LARGE);
    // The session stays where it was.
    assert_eq!(h.get(&loc).await.header("range"), "0-599");
}

async fn an_overflowing_content_range_is_416_and_a_long_component_name_invalid(k: Kind) {
    let h = harness(k);
    let loc = h
        .post("/v2/r/blobs/uploads/")
        .await
        .header("location")
        .to_string();
    let range = [("content-range", "0-18446744073709551615")];
    let r = h.send(Method::PATCH, &loc, &range, b"x").await;
    assert_eq!(r.status, StatusCode::RANGE_NOT_SATISFIABLE);
    assert_eq!(r.error_code(), "BLOB_UPLOAD_INVALID");
    // A component longer than a file name may be.
    let long = "a".repeat(256);
    let r = h.post(&format!("/v2/{long}/blobs/uploads/")).await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    assert_eq!(r.error_code(), "NAME_INVALID");
}

/// The announced Content-Length decides before any byte is read: here the body itself is
/// small (and would be accepted), so only the announcement can be the reason.
async fn an_announced_body_over_the_upload_cap_is_refused_up_front(k: Kind) {
    let config = RegistryConfig {
        max_upload_bytes: 1000,
        ..Default::default()
    };
    let h = harness_with(k, Arc::new(AllowAll), config);
    let announced = [("content-length", "1001")];
    let d = Digest::sha256(b"abc");
    let uri = format!("/v2/r/blobs/uploads/?digest={d}");
    let r = h.send(Method::POST, &uri, &announced, b"abc").await;
    assert_eq!(r.status, StatusCode::PAYLOAD_TOO_LARGE);
    assert_eq!(r.error_code(), "SIZE_INVALID");
    let loc = h
        .post("/v2/r/blobs/uploads/")
        .await
        .header("location")
        .to_string();
    let r = h.send(Method::PATCH, &loc, &announced, b"abc").await;
    assert_eq!(r.status, StatusCode::PAYLOAD_TOO_LARGE);
    assert_eq!(r.error_code(), "SIZE_INVALID");
    let r = h
        .send(
            Method::PUT,
            &format!("{loc}?digest={d}"),
            &announced,
            b"abc",
        )
        .await;
    assert_eq!(r.status, StatusCode::PAYLOAD_TOO_LARGE);
    // Nothing was written: the session is still empty.
    assert_eq!(h.get(&loc).await.header("range"), "0-0");
}

async fn a_push_with_too_many_tag_parameters_is_refused(k: Kind) {
    let h = harness(k);
    let (_, manifest) = h.push_image("r", "v0", "a").await;
    let tags: Vec<String> = (0..=MAX_TAGS_PER_PUSH)
        .map(|i| format!("tag={i}"))
        .collect();
    let uri = format!("/v2/r/manifests/v1?{}", tags.join("&"));
    let r = h
        .send(
            Method::PUT,
            &uri,
            &[("content-type", OCI_MANIFEST)],
            &manifest,
        )
        .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    assert_eq!(r.error_code(), "TAG_INVALID");
    assert!(
        r.error_message().contains("at most"),
        "{}",
        r.error_message()
    );
    assert_eq!(h.get("/v2/r/tags/list").await.json()["tags"], json!(["v0"]));
}

async fn uploads_over_the_per_identity_cap_are_too_many_requests(k: Kind) {
    let config = RegistryConfig {
        max_uploads_per_identity: 1,
        ..Default::default()
    };
    let h = Arc::new(harness_with(k, Arc::new(AllowAll), config));
    let start = || async {
        let r = h.post("/v2/r/blobs/uploads/").await;
        r.header("location").to_string()
    };
    let (first, second) = (start().await, start().await);
    // A PATCH whose body is still arriving holds alice's one upload slot.
    let (tx, rx) = futures::channel::mpsc::unbounded::<Result<Bytes, io::Error>>();
    let held = tokio::spawn({
        let (h, first) = (h.clone(), first.clone());
        async move {
            let body = Body::from_stream(rx);
            let auth = h.auth.clone();
            (h.request(Method::PATCH, &first, &[], body, Some(&auth))
                .await)
                .status
        }
    });
    tx.unbounded_send(Ok(Bytes::from_static(b"abc"))).unwrap();
    tokio::time::sleep(Duration::from_millis(100)).await;
    let r = h.send(Method::PATCH, &second, &[], b"def").await;
    assert_eq!(r.status, StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(r.error_code(), "TOOMANYREQUESTS");
    // Reading an upload's status takes no slot.
    assert_eq!(h.get(&second).await.status, StatusCode::NO_CONTENT);
    drop(tx);
    assert_eq!(held.await.unwrap(), StatusCode::ACCEPTED);
    let r = h.send(Method::PATCH, &second, &[], b"def").await;
    assert_eq!(r.status, StatusCode::ACCEPTED);
}

// --- storage guarantees ----------------------------------------------------------------------

async fn gc_keeps_referenced_and_fresh_blobs(k: Kind) {
    let h = harness(k);
    let config = b"{\"gc\":1}";
    let cfg = h.push_blob("r", config).await;
    let layer = h.push_blob("r", b"referenced layer").await;
    let m = image_manifest(&cfg, config.len(), &layer, 16, None);
    h.send(
        Method::PUT,
        "/v2/r/manifests/v1",
        &[("content-type", OCI_MANIFEST)],
        &m,
    )
    .await;
    let orphan = h.push_blob("r", b"old and unreferenced").await;
    // Read once, so that an index holds it: the GC must make the index forget it.
    let orphan_uri = format!("/v2/r/blobs/{orphan}");
    let head = h.send(Method::HEAD, &orphan_uri, &[], b"").await;
    assert_eq!(head.status, StatusCode::OK);
    // A blob referenced only from another repository's manifest is kept too.
    let elsewhere_cfg = h.push_blob("s", b"{\"s\":1}").await;
    let elsewhere_layer = h.push_blob("s", b"s layer").await;
    let ms = image_manifest(&elsewhere_cfg, 7, &elsewhere_layer, 7, None);
    h.send(
        Method::PUT,
        "/v2/s/manifests/v1",
        &[("content-type", OCI_MANIFEST)],
        &ms,
    )
    .await;
    // Everything above is older than the grace period, this one is not.
    let t = moment().await;
    let fresh = h.push_blob("r", b"fresh and unreferenced").await;
    let report = h
        .storage
        .delete_unreferenced_blobs(grace_since(t))
        .await
        .unwrap();
    assert_eq!(report.blobs_deleted, 1, "{report:?}");
    assert_eq!(report.bytes_freed, 20);
    assert_eq!(report.blobs_kept_referenced, 4);
    assert_eq!(report.blobs_kept_fresh, 1);
    let stored = h.stored_blobs().await;
    assert!(!stored.contains(&orphan));
    for d in [&cfg, &layer, &fresh, &elsewhere_cfg, &elsewhere_layer] {
        assert!(stored.contains(d));
    }
    for method in [Method::GET, Method::HEAD] {
        let r = h.send(method, &orphan_uri, &[], b"").await;
        assert_eq!(r.status, StatusCode::NOT_FOUND);
    }
    assert_eq!(h.get("/v2/r/manifests/v1").await.status, StatusCode::OK);
    // Deleting the tag keeps the manifest and its blobs; deleting the manifest frees them.
    h.send(Method::DELETE, "/v2/r/manifests/v1", &[], b"").await;
    let report = h
        .storage
        .delete_unreferenced_blobs(grace_since(t))
        .await
        .unwrap();
    assert_eq!(report.blobs_deleted, 0, "{report:?}");
    let md = Digest::sha256(&m);
    let r = h
        .send(Method::DELETE, &format!("/v2/r/manifests/{md}"), &[], b"")
        .await;
    assert_eq!(r.status, StatusCode::ACCEPTED);
    let report = h
        .storage
        .delete_unreferenced_blobs(grace_since(t))
        .await
        .unwrap();
    assert_eq!(report.blobs_deleted, 2, "{report:?}");
    assert!(h.stored_blobs().await.contains(&fresh));
}

async fn reusing_an_old_blob_protects_it_from_gc(k: Kind) {
    let h = harness(k);
    let d = h.push_blob("r", b"old base layer").await;
    let t = moment().await;
    // Pushed again (a client re-uploading, or mounting): the blob is fresh again.
    let r = h
        .post(&format!("/v2/other/blobs/uploads/?mount={d}&from=r"))
        .await;
    assert_eq!(r.status, StatusCode::CREATED);
    let again = h.push_blob("third", b"old base layer").await;
    assert_eq!(again, d);
    let report = h
        .storage
        .delete_unreferenced_blobs(grace_since(t))
        .await
        .unwrap();
    assert_eq!(report.blobs_deleted, 0, "{report:?}");
    // Unused since: it goes.
    let t = moment().await;
    let report = h
        .storage
        .delete_unreferenced_blobs(grace_since(t))
        .await
        .unwrap();
    assert_eq!(report.blobs_deleted, 1, "{report:?}");
}

async fn killed_upload_leaves_nothing_visible(k: Kind) {
    let h = harness(k);
    // A client that dies mid-body: the stream errors after some bytes.
    let content = b"a blob whose upload is killed half way";
    let d = Digest::sha256(content);
    let chunks: Vec<Result<Bytes, std::io::Error>> = vec![
        Ok(Bytes::copy_from_slice(&content[..10])),
        Err(std::io::Error::new(
            std::io::ErrorKind::ConnectionReset,
            "killed",
        )),
    ];
    let r = h
        .request(
            Method::POST,
            &format!("/v2/r/blobs/uploads/?digest={d}"),
            &[],
            Body::from_stream(futures::stream::iter(chunks)),
            Some(&h.auth),
        )
        .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    assert_eq!(r.error_code(), "BLOB_UPLOAD_INVALID");
    assert_eq!(
        h.send(Method::HEAD, &format!("/v2/r/blobs/{d}"), &[], b"")
            .await
            .status,
        StatusCode::NOT_FOUND
    );
    assert!(h.stored_blobs().await.is_empty());
}

fn backdate(path: &std::path::Path, by: Duration) {
    let f = std::fs::File::options().write(true).open(path).unwrap();
    f.set_modified(SystemTime::now() - by).unwrap();
}

/// A process killed while writing leaves a temporary file behind: not a blob, and gone when
/// the store is opened again, or by the GC once old.
#[tokio::test]
async fn temporary_files_go_at_open_and_by_gc() {
    let h = harness(Kind::Fs);
    let content = b"a blob whose writer was killed";
    let d = Digest::sha256(content);
    let root = h.fs_root().unwrap().to_path_buf();
    let leftover = root.join("tmp").join("0123456789abcdef0123456789abcdef");
    std::fs::write(&leftover, &content[..20]).unwrap();
    assert_eq!(
        h.send(Method::HEAD, &format!("/v2/r/blobs/{d}"), &[], b"")
            .await
            .status,
        StatusCode::NOT_FOUND
    );
    let h = h.reopen();
    assert!(!leftover.exists(), "temporary file removed at open");
    assert!(h.stored_blobs().await.is_empty());
    // The online GC removes old temporary files too.
    std::fs::write(&leftover, b"x").unwrap();
    backdate(&leftover, Duration::from_secs(7200));
    let report = h
        .storage
        .delete_unreferenced_blobs(Duration::from_secs(3600))
        .await
        .unwrap();
    assert_eq!(report.temp_files_deleted, 1);
}

async fn upload_session_survives_a_restart(k: Kind) {
    let h = harness(k);
    let content: Vec<u8> = (0..5000u32).map(|i| (i * 7) as u8).collect();
    let d = Digest::sha256(&content);
    let loc = h
        .post("/v2/r/blobs/uploads/")
        .await
        .header("location")
        .to_string();
    let p = h
        .send(
            Method::PATCH,
            &loc,
            &[("content-range", "0-2999")],
            &content[..3000],
        )
        .await;
    assert_eq!(p.status, StatusCode::ACCEPTED);
    // A chunk stored before the kill but never acknowledged (the state does not list it) is
    // not part of the upload.
    let id = loc.rsplit('/').next().unwrap();
    let torn = layout::upload_part("r", id, &layout::part_name(3000, "deadbeef"));
    h.put_raw(&torn, b"torn, unacknowledged bytes").await;

    let h = h.reopen();
    let status = h.get(&loc).await;
    assert_eq!(status.status, StatusCode::NO_CONTENT);
    assert_eq!(status.header("range"), "0-2999");
    let put = h
        .send(
            Method::PUT,
            &format!("{loc}?digest={d}"),
            &[("content-range", "3000-4999")],
            &content[3000..],
        )
        .await;
    assert_eq!(
        put.status,
        StatusCode::CREATED,
        "{}",
        String::from_utf8_lossy(&put.body)
    );
    assert_eq!(
        &h.get(&format!("/v2/r/blobs/{d}")).await.body[..],
        &content[..]
    );
}

async fn pulls_are_coalesced_flushed_and_survive_a_restart(k: Kind) {
    let h = harness(k);
    let (pulled, _) = h.push_image("r", "v1", "one").await;
    let (idle, _) = h.push_image("r", "v2", "two").await;
    // Pushes are not pulls, and a HEAD only checks.
    let head = h.send(Method::HEAD, "/v2/r/manifests/v2", &[], b"").await;
    assert_eq!(head.status, StatusCode::OK);
    assert_eq!(h.pulls.flush(&*h.storage, &|_| {}).await.unwrap(), 0);
    let before = SystemTime::now();
    for i in 0..50 {
        let uri = if i % 2 == 0 {
            "/v2/r/manifests/v1".to_string()
        } else {
            format!("/v2/r/manifests/{pulled}")
        };
        assert_eq!(h.get(&uri).await.status, StatusCode::OK);
    }
    let after = SystemTime::now();
    let listed = h.storage.list_images("r").await.unwrap();
    assert!(
        listed.iter().all(|i| i.last_pulled_at.is_none()),
        "noted in memory only until the flush"
    );
    // Fifty pulls of one image: one write.
    assert_eq!(h.pulls.flush(&*h.storage, &|_| {}).await.unwrap(), 1);
    assert_eq!(
        h.pulls.flush(&*h.storage, &|_| {}).await.unwrap(),
        0,
        "nothing left"
    );
    let h = h.reopen();
    let listed = h.storage.list_images("r").await.unwrap();
    let at = |d: &Digest| {
        listed
            .iter()
            .find(|i| &i.digest == d)
            .unwrap()
            .last_pulled_at
    };
    let t = at(&pulled).expect("recorded, across a restart");
    assert!(t >= before && t <= after, "{t:?}");
    assert_eq!(at(&idle), None);
    // A deleted image takes its pull time with it: pushed again, it was never pulled.
    let by_digest = format!("/v2/r/manifests/{pulled}");
    let deleted = h.send(Method::DELETE, &by_digest, &[], b"").await;
    assert_eq!(deleted.status, StatusCode::ACCEPTED);
    let (again, _) = h.push_image("r", "v1", "one").await;
    assert_eq!(again, pulled);
    let listed = h.storage.list_images("r").await.unwrap();
    assert_eq!(
        listed
            .iter()
            .find(|i| i.digest == pulled)
            .unwrap()
            .last_pulled_at,
        None
    );
    // A pull noted for an image deleted before the flush records nothing.
    assert_eq!(h.get("/v2/r/manifests/v2").await.status, StatusCode::OK);
    h.send(Method::DELETE, &format!("/v2/r/manifests/{idle}"), &[], b"")
        .await;
    assert_eq!(h.pulls.flush(&*h.storage, &|_| {}).await.unwrap(), 0);
}

async fn list_images_reports_tags_sizes_and_push_time(k: Kind) {
    let h = harness(k);
    let before = SystemTime::now() - Duration::from_secs(1);
    let (d1, m1) = h.push_image("r", "v1", "one").await;
    h.send(
        Method::PUT,
        "/v2/r/manifests/latest",
        &[("content-type", OCI_MANIFEST)],
        &m1,
    )
    .await;
    let (d2, m2) = h.push_image("r", "v2", "two").await;
    h.send(Method::DELETE, "/v2/r/manifests/v2", &[], b"").await;
    let images = h.storage.list_images("r").await.unwrap();
    assert_eq!(images.len(), 2);
    let i1 = images.iter().find(|i| i.digest == d1).unwrap();
    assert_eq!(i1.tags, vec!["latest".to_string(), "v1".to_string()]);
    assert_eq!(i1.manifest_size, m1.len() as u64);
    // config `{"salt":"one"}` (14) + layer `layer-one` (9)
    assert_eq!(i1.content_size, 14 + 9);
    assert!(i1.pushed_at >= before && i1.pushed_at <= SystemTime::now());
    let i2 = images.iter().find(|i| i.digest == d2).unwrap();
    assert!(i2.tags.is_empty(), "untagged after the tag delete");
    assert_eq!(i2.manifest_size, m2.len() as u64);
    // Re-pushing keeps the first push time.
    let first = i1.pushed_at;
    tokio::time::sleep(Duration::from_millis(5)).await;
    h.send(
        Method::PUT,
        "/v2/r/manifests/again",
        &[("content-type", OCI_MANIFEST)],
        &m1,
    )
    .await;
    let again = h.storage.list_images("r").await.unwrap();
    assert_eq!(
        again.iter().find(|i| i.digest == d1).unwrap().pushed_at,
        first
    );
}

async fn gc_expires_idle_upload_sessions_only(k: Kind) {
    let h = harness(k);
    let mut locs = Vec::new();
    let mut t = SystemTime::now();
    for i in 0..2 {
        if i == 1 {
            // The first session is idle from here on; the second is active.
            t = moment().await;
        }
        let loc = h
            .post("/v2/r/blobs/uploads/")
            .await
            .header("location")
            .to_string();
        h.send(Method::PATCH, &loc, &[], b"some bytes").await;
        locs.push(loc);
    }
    let report = h
        .storage
        .delete_unreferenced_blobs(grace_since(t))
        .await
        .unwrap();
    assert_eq!(report.uploads_expired, 1);
    assert_eq!(h.get(&locs[0]).await.status, StatusCode::NOT_FOUND);
    assert_eq!(h.get(&locs[1]).await.status, StatusCode::NO_CONTENT);
}

/// `POST /kubecs/v1/token`: a Kubernetes token (external verifier) buys a registry token for
/// that identity; a registry token or nothing buys nothing.
async fn token_endpoint_exchanges_kubernetes_tokens_only(k: Kind) {
    let medium = Medium::new(k);
    let signer = TokenSigner::new(vec![9u8; 32]).unwrap();
    let app = router(Arc::new(Registry {
        storage: medium.open().storage(),
        policy: Arc::new(AllowAll),
        auth: Authenticator::new(signer.clone()).with_external(Arc::new(auth::testing::Sa)),
        config: RegistryConfig::default(),
        changes: None,
        uploads: Default::default(),
        pulls: Default::default(),
        pull_through: None,
        replication: None,
    }));
    let call = |auth: Option<String>| {
        let mut req = Request::builder()
            .method(Method::POST)
            .uri(handlers::TOKEN_PATH);
        if let Some(a) = auth {
            req = req.header("authorization", a);
        }
        app.clone().oneshot(req.body(Body::empty()).unwrap())
    };
    let resp = call(Some("Bearer sa-token".into())).await.unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    let body = axum::body::to_bytes(resp.into_body(), 1 << 20)
        .await
        .unwrap();
    let token = crate::login::token_from_answer(&body).unwrap();
    let p = signer.verify(&token, SystemTime::now()).unwrap();
    assert_eq!(p.username, "system:serviceaccount:ns:builder");

    let basic_sa = basic("anyone", "sa-token");
    assert_eq!(call(Some(basic_sa)).await.unwrap().status(), StatusCode::OK);
    let renew = call(Some(format!("Bearer {token}"))).await.unwrap();
    assert_eq!(renew.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(call(None).await.unwrap().status(), StatusCode::UNAUTHORIZED);
    let wrong = call(Some("Bearer nope".into())).await.unwrap();
    assert_eq!(wrong.status(), StatusCode::UNAUTHORIZED);
}

// --- the ECR API's image list ------------------------------------------------------------------

async fn the_ecr_image_list_hides_platform_manifests_and_needs_its_action(k: Kind) {
    let h = harness(k);
    let (d1, m1) = h.push_image("team/app", "v1", "one").await;
    // A platform manifest, untagged as pushed by an index's builder.
    let (d2, m2) = h.push_image("team/app", "platform", "two").await;
    h.send(Method::DELETE, "/v2/team/app/manifests/platform", &[], b"")
        .await;
    let index = serde_json::to_vec(&json!({
        "schemaVersion": 2, "mediaType": OCI_INDEX,
        "manifests": [{"mediaType": OCI_MANIFEST, "digest": d2.to_string(), "size": m2.len(),
                       "platform": {"architecture": "amd64", "os": "linux"}}]
    }))
    .unwrap();
    let r = h
        .send(
            Method::PUT,
            "/v2/team/app/manifests/multi",
            &[("content-type", OCI_INDEX)],
            &index,
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED);
    let r = h.get("/v2/team/app/_kubecs/images").await;
    assert_eq!(r.status, StatusCode::OK);
    let list: images::ImageList = serde_json::from_slice(&r.body).unwrap();
    let mut got = list.images.clone();
    got.sort_by(|a, b| a.tags.cmp(&b.tags));
    assert_eq!(
        got.len(),
        2,
        "the platform manifest belongs to its index: {got:?}"
    );
    assert_eq!(got[0].digest, Digest::sha256(&index).to_string());
    assert_eq!(got[0].tags, vec!["multi".to_string()]);
    assert_eq!(got[0].media_type.as_deref(), Some(OCI_INDEX));
    // An index is as large as the largest image it lists.
    assert_eq!(got[0].size_in_bytes, Some(m2.len() as u64 + 14 + 9));
    assert_eq!(got[1].digest, d1.to_string());
    assert_eq!(got[1].size_in_bytes, Some(m1.len() as u64 + 14 + 9));
    assert!(got[1].pushed_at.as_deref().unwrap().ends_with('Z'));
    // `?view=ids`: digests and tags only.
    let ids = h.get("/v2/team/app/_kubecs/images?view=ids").await.json();
    assert!(ids["images"].as_array().unwrap().iter().all(|i| {
        let keys: Vec<&String> = i.as_object().unwrap().keys().collect();
        keys == ["digest", "tags"]
    }));
    // ListImages alone lists ids, not details.
    let policy = Arc::new(StaticPolicy::new().grant("alice", &[actions::LIST_IMAGES]));
    let h = harness_with(
        k,
        policy,
        RegistryConfig {
            create_on_push: true,
            ..Default::default()
        },
    );
    assert_eq!(
        h.get("/v2/app/_kubecs/images?view=ids").await.json(),
        json!({"images": []})
    );
    let r = h.get("/v2/app/_kubecs/images").await;
    assert_eq!(r.error_code(), "DENIED");
    assert!(
        r.error_message().contains("ecr:DescribeImages"),
        "{}",
        r.error_message()
    );
    // Unknown repositories are NAME_UNKNOWN, as everywhere.
    let h = harness_with(k, Arc::new(StaticPolicy::new()), RegistryConfig::default());
    assert_eq!(
        h.get("/v2/nope/_kubecs/images").await.error_code(),
        "NAME_UNKNOWN"
    );
}
