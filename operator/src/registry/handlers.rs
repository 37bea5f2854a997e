//! The OCI Distribution Specification v1.1 HTTP API.

use std::io;
use std::sync::Arc;
use std::time::{Instant, SystemTime};

use axum::body::{Body, Bytes, HttpBody};
use axum::extract::{Request, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use futures::{StreamExt, TryStreamExt};
use serde_json::json;

use super::Registry;
use super::access::{RepositorySettings, actions};
use super::auth::Principal;
use super::digest::Digest;
use super::errors::{ApiError, ErrorCode};
use super::manifest::{self, MAX_MANIFEST_BYTES, OCI_INDEX, ParsedManifest};
use super::names::{Route, parse_route, valid_repository_name, valid_tag};
use super::negotiation;
use super::pull_through::{Blob, CacheRoute, PullThrough};
use super::ranges::{RangeDecision, decide_range, parse_content_range, upload_range};
use super::storage::{ByteStream, ManifestRecord, StorageError, TagWrite};
use crate::api::repository_creation_template::RctAppliedFor;

const API_VERSION: &str = "Docker-Distribution-API-Version";

/// The most `?tag=` parameters one manifest push may carry (each is a tag write).
pub const MAX_TAGS_PER_PUSH: usize = 100;

type ApiResult = Result<Response, ApiError>;

/// Entry point for every request: authenticate, route, authorize, handle; then the API version
/// header and a debug log line.
pub async fn dispatch(State(reg): State<Arc<Registry>>, req: Request) -> Response {
    let started = Instant::now();
    let (method, path) = (req.method().clone(), req.uri().path().to_string());
    let mut resp = handle(&reg, req)
        .await
        .unwrap_or_else(IntoResponse::into_response);
    resp.headers_mut()
        .insert(API_VERSION, HeaderValue::from_static("registry/2.0"));
    tracing::debug!(
        %method,
        %path,
        status = resp.status().as_u16(),
        elapsed_ms = started.elapsed().as_millis() as u64,
        "registry request"
    );
    resp
}

fn unauthorized(reason: impl std::fmt::Display) -> ApiError {
    tracing::debug!(%reason, "registry request refused");
    ApiError::new(ErrorCode::Unauthorized, "authentication required")
        .with_header(header::WWW_AUTHENTICATE, r#"Basic realm="kubecs""#)
}

fn unsupported(method: &Method) -> ApiError {
    ApiError::new(
        ErrorCode::Unsupported,
        format!("the operation {method} is unsupported on this path"),
    )
}

fn header_str(h: &HeaderMap, name: impl header::AsHeaderName) -> Option<&str> {
    h.get(name).and_then(|v| v.to_str().ok())
}

/// Where a Kubernetes identity exchanges its bearer token for a registry token.
pub const TOKEN_PATH: &str = "/kubecs/v1/token";

/// `POST /kubecs/v1/token` (ECR's GetAuthorizationToken): authenticated with a Kubernetes token
/// (checked by the external verifier, TokenReview), answers ECR's `authorizationData` with a
/// registry token for that principal, valid 12 hours. A registry token is not accepted here.
async fn issue_token(reg: &Registry, headers: &HeaderMap) -> ApiResult {
    let principal = reg
        .auth
        .authenticate_kubernetes(header_str(headers, header::AUTHORIZATION))
        .await
        .map_err(unauthorized)?;
    let now = SystemTime::now();
    let token = reg.auth.signer.issue(&principal, now);
    let expires = now + super::auth::TOKEN_LIFETIME;
    let expires_at = k8s_openapi::jiff::Timestamp::try_from(expires)
        .map(|t| t.to_string())
        .unwrap_or_default();
    tracing::info!(user = %principal.username, "issued a registry token");
    let body = json!({
        "authorizationData": [{
            "authorizationToken": base64::Engine::encode(
                &base64::engine::general_purpose::STANDARD,
                format!("{}:{token}", super::auth::TOKEN_USERNAME),
            ),
            "expiresAt": expires_at,
        }]
    });
    Ok((
        StatusCode::OK,
        [(header::CONTENT_TYPE, "application/json")],
        body.to_string(),
    )
        .into_response())
}

/// What a request to one repository does, parsed once from its route, method and query: the
/// dispatch and the authorization both read it, so an operation and its ECR actions are
/// defined together.
#[derive(Debug, PartialEq, Eq)]
enum Op<'a> {
    GetManifest {
        reference: &'a str,
        head: bool,
    },
    PutManifest {
        reference: &'a str,
        /// `?tag=` parameters (distribution-spec 1.2), in order.
        tags: Vec<&'a str>,
    },
    DeleteManifest {
        reference: &'a str,
    },
    GetBlob {
        digest: &'a str,
        head: bool,
    },
    DeleteBlob {
        digest: &'a str,
    },
    /// `POST .../blobs/uploads/`: a mount, a monolithic upload (`digest`) or a session.
    StartUpload {
        mount: Option<&'a str>,
        from: Option<&'a str>,
        digest: Option<&'a str>,
    },
    PatchUpload {
        id: &'a str,
    },
    PutUpload {
        id: &'a str,
        digest: Option<&'a str>,
    },
    UploadStatus {
        id: &'a str,
    },
    CancelUpload {
        id: &'a str,
    },
    ListTags {
        n: Option<&'a str>,
        last: Option<&'a str>,
    },
    Referrers {
        digest: &'a str,
        artifact_type: Option<&'a str>,
    },
    /// The ECR API's image list; `ids`: digests and tags only (ListImages).
    Images {
        ids: bool,
    },
}

impl<'a> Op<'a> {
    /// None when the method is not supported on the route (or the route is the catalog).
    fn parse(route: &Route<'a>, method: &Method, query: &'a Query) -> Option<Op<'a>> {
        let m = method.as_str();
        Some(match (route, m) {
            (Route::Manifest { reference, .. }, "GET" | "HEAD") => Op::GetManifest {
                reference,
                head: m == "HEAD",
            },
            (Route::Manifest { reference, .. }, "PUT") => Op::PutManifest {
                reference,
                tags: query.all("tag").collect(),
            },
            (Route::Manifest { reference, .. }, "DELETE") => Op::DeleteManifest { reference },
            (Route::Blob { digest, .. }, "GET" | "HEAD") => Op::GetBlob {
                digest,
                head: m == "HEAD",
            },
            (Route::Blob { digest, .. }, "DELETE") => Op::DeleteBlob { digest },
            (Route::UploadStart { .. }, "POST") => Op::StartUpload {
                mount: query.get("mount"),
                from: query.get("from"),
                digest: query.get("digest"),
            },
            (Route::Upload { id, .. }, "PATCH") => Op::PatchUpload { id },
            (Route::Upload { id, .. }, "PUT") => Op::PutUpload {
                id,
                digest: query.get("digest"),
            },
            (Route::Upload { id, .. }, "GET") => Op::UploadStatus { id },
            (Route::Upload { id, .. }, "DELETE") => Op::CancelUpload { id },
            (Route::Tags { .. }, "GET") => Op::ListTags {
                n: query.get("n"),
                last: query.get("last"),
            },
            (Route::Referrers { digest, .. }, "GET") => Op::Referrers {
                digest,
                artifact_type: query.get("artifactType"),
            },
            (Route::Images { .. }, "GET") => Op::Images {
                ids: query.get("view") == Some("ids"),
            },
            _ => return None,
        })
    }

    /// Reads an image: what a pull through cache fills.
    fn is_pull(&self) -> bool {
        matches!(self, Op::GetManifest { .. } | Op::GetBlob { .. })
    }

    /// A push starts with an upload (or a mount) or a manifest: what creates a repository.
    fn starts_push(&self) -> bool {
        matches!(self, Op::StartUpload { .. } | Op::PutManifest { .. })
    }

    /// The ECR actions the operation needs on its repository.
    fn actions(&self) -> &'static [&'static str] {
        use actions::*;
        match self {
            Op::GetManifest { .. } | Op::Referrers { .. } => &[BATCH_GET_IMAGE],
            Op::PutManifest { .. } => &[PUT_IMAGE],
            Op::DeleteManifest { .. } | Op::DeleteBlob { .. } => &[BATCH_DELETE_IMAGE],
            Op::GetBlob { head: false, .. } => &[GET_DOWNLOAD_URL_FOR_LAYER],
            Op::GetBlob { head: true, .. } => &[BATCH_CHECK_LAYER_AVAILABILITY],
            // A monolithic upload is a whole upload in one request (even when it is a mount).
            Op::StartUpload {
                digest: Some(_), ..
            } => &[
                INITIATE_LAYER_UPLOAD,
                UPLOAD_LAYER_PART,
                COMPLETE_LAYER_UPLOAD,
            ],
            Op::StartUpload { digest: None, .. } => &[INITIATE_LAYER_UPLOAD],
            Op::PatchUpload { .. } | Op::UploadStatus { .. } | Op::CancelUpload { .. } => {
                &[UPLOAD_LAYER_PART]
            }
            Op::PutUpload { .. } => &[COMPLETE_LAYER_UPLOAD],
            Op::ListTags { .. } | Op::Images { ids: true } => &[LIST_IMAGES],
            Op::Images { ids: false } => &[DESCRIBE_IMAGES],
        }
    }
}

/// Query parameters, keeping repeated keys (`tag=a&tag=b`).
struct Query(Vec<(String, String)>);

impl Query {
    fn parse(uri: &axum::http::Uri) -> Query {
        Query(
            axum::extract::Query::<Vec<(String, String)>>::try_from_uri(uri)
                .map(|q| q.0)
                .unwrap_or_default(),
        )
    }

    fn get(&self, key: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }

    fn all(&self, key: &str) -> impl Iterator<Item = &str> {
        self.0
            .iter()
            .filter(move |(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }
}

async fn handle(reg: &Registry, req: Request) -> ApiResult {
    let path = req.uri().path().to_string();
    // Probes: `/v2/` needs a token, a kubelet has none.
    if matches!(path.as_str(), "/live" | "/ready") && req.method() == Method::GET {
        return Ok((StatusCode::OK, "ok").into_response());
    }
    if path == TOKEN_PATH {
        return match *req.method() {
            Method::POST | Method::GET => issue_token(reg, req.headers()).await,
            ref m => Err(unsupported(m)),
        };
    }
    let Some(rest) = path.strip_prefix("/v2") else {
        return Err(
            ApiError::new(ErrorCode::Unsupported, "not found").with_status(StatusCode::NOT_FOUND)
        );
    };
    let principal = reg
        .auth
        .authenticate(
            header_str(req.headers(), header::AUTHORIZATION),
            SystemTime::now(),
        )
        .await
        .map_err(unauthorized)?;
    let method = req.method().clone();
    let rest = rest.strip_prefix('/').unwrap_or(rest);
    if rest.is_empty() {
        return match method {
            Method::GET | Method::HEAD => Ok((
                StatusCode::OK,
                [(header::CONTENT_TYPE, "application/json")],
                "{}",
            )
                .into_response()),
            _ => Err(unsupported(&method)),
        };
    }
    let route = parse_route(rest).ok_or_else(|| {
        ApiError::new(ErrorCode::Unsupported, format!("no such endpoint: {path}"))
            .with_status(StatusCode::NOT_FOUND)
    })?;
    let query = Query::parse(req.uri());
    if route == Route::Catalog {
        return match method {
            Method::GET => catalog(reg, &principal, &query).await,
            _ => Err(unsupported(&method)),
        };
    }
    let name = match &route {
        Route::Tags { name }
        | Route::Manifest { name, .. }
        | Route::Blob { name, .. }
        | Route::UploadStart { name }
        | Route::Upload { name, .. }
        | Route::Referrers { name, .. }
        | Route::Images { name } => *name,
        Route::Catalog => unreachable!("handled above"),
    };
    if !valid_repository_name(name) {
        return Err(ApiError::new(
            ErrorCode::NameInvalid,
            format!("invalid repository name '{name}'"),
        ));
    }
    let op = Op::parse(&route, &method, &query).ok_or_else(|| unsupported(&method))?;
    for action in op.actions() {
        reg.policy
            .authorize(&principal, name, action)
            .map_err(|m| ApiError::new(ErrorCode::Denied, m))?;
    }
    // A repository under a pull through cache rule exists once its first pull creates it.
    let cache = reg
        .pull_through
        .as_ref()
        .and_then(|p| Some((p.clone(), p.route(name)?)));
    let known = reg.policy.repository(name);
    let exists = known.is_some();
    let known = match known {
        // A push creates the repository (its object, with its creation template) before
        // anything is stored, so the template's tag mutability holds from the first tag.
        None if reg.config.create_on_push && op.starts_push() => Some(
            reg.policy
                .create_on_push(&principal, name, push_scenario(req.headers()))
                .await
                .map_err(|m| ApiError::new(ErrorCode::Unavailable, m))?,
        ),
        known => known,
    };
    let settings = known
        .or_else(|| reg.config.create_on_push.then(RepositorySettings::default))
        .or_else(|| (cache.is_some() && op.is_pull()).then(RepositorySettings::default))
        .ok_or_else(|| {
            ApiError::new(
                ErrorCode::NameUnknown,
                format!(
                    "The repository with name '{name}' does not exist in the registry with id '{}'",
                    reg.config.registry_id
                ),
            )
        })?;
    // Held until the upload's body is in and stored.
    let _upload = match op {
        Op::StartUpload {
            mount: None,
            digest: Some(_),
            ..
        }
        | Op::PatchUpload { .. }
        | Op::PutUpload { .. } => Some(
            reg.uploads
                .take(&principal.username, reg.config.max_uploads_per_identity)
                .ok_or_else(|| {
                    ApiError::new(
                        ErrorCode::TooManyRequests,
                        format!(
                            "at most {} uploads at once per identity",
                            reg.config.max_uploads_per_identity
                        ),
                    )
                })?,
        ),
        _ => None,
    };
    let ctx = Ctx {
        reg,
        name,
        principal: &principal,
        settings: &settings,
        cache,
        exists,
    };
    match op {
        Op::GetManifest { reference, head } => {
            get_manifest(&ctx, reference, head, req.headers()).await
        }
        Op::PutManifest { reference, tags } => put_manifest(&ctx, reference, &tags, req).await,
        Op::DeleteManifest { reference } => delete_manifest(&ctx, reference).await,
        Op::GetBlob { digest, head } => get_blob(&ctx, digest, head, req.headers()).await,
        Op::DeleteBlob { digest } => delete_blob(&ctx, digest).await,
        Op::StartUpload {
            mount,
            from,
            digest,
        } => start_upload(&ctx, mount, from, digest, req).await,
        Op::PatchUpload { id } => patch_upload(&ctx, id, req).await,
        Op::PutUpload { id, digest } => put_upload(&ctx, id, digest, req).await,
        Op::UploadStatus { id } => upload_status(&ctx, id).await,
        Op::CancelUpload { id } => cancel_upload(&ctx, id).await,
        Op::ListTags { n, last } => list_tags(&ctx, n, last).await,
        Op::Referrers {
            digest,
            artifact_type,
        } => referrers(&ctx, digest, artifact_type).await,
        Op::Images { ids } => super::images::answer(&*reg.storage, name, ids).await,
    }
}

/// A request addressed to one repository, authorized.
struct Ctx<'a> {
    reg: &'a Registry,
    name: &'a str,
    principal: &'a Principal,
    settings: &'a RepositorySettings,
    /// The pull through cache and the rule the repository falls under.
    cache: Option<(Arc<PullThrough>, CacheRoute)>,
    /// Whether the repository exists (else a pull through cache's first pull creates it).
    exists: bool,
}

impl Ctx<'_> {
    /// The pull through cache, when the repository is under a rule and the principal may
    /// fill it from the upstream (ECR's `ecr:BatchImportUpstreamImage`); else why not.
    fn importer(&self) -> Option<Result<(&Arc<PullThrough>, &CacheRoute), ApiError>> {
        let (pt, route) = self.cache.as_ref()?;
        Some(
            self.reg
                .policy
                .authorize(
                    self.principal,
                    self.name,
                    actions::BATCH_IMPORT_UPSTREAM_IMAGE,
                )
                .map(|()| (pt, route))
                .map_err(|m| ApiError::new(ErrorCode::Denied, m)),
        )
    }
}

fn storage_error(e: StorageError) -> ApiError {
    match e {
        StorageError::DigestMismatch { expected, actual } => ApiError::new(
            ErrorCode::DigestInvalid,
            "provided digest did not match uploaded content",
        )
        .with_detail(json!({ "expected": expected.to_string(), "computed": actual.to_string() })),
        StorageError::UploadUnknown(id) => ApiError::new(
            ErrorCode::BlobUploadUnknown,
            format!("blob upload {id} is unknown to the registry"),
        ),
        StorageError::TooLarge { limit } => ApiError::new(
            ErrorCode::SizeInvalid,
            format!("blob exceeds the maximum upload size of {limit} bytes"),
        )
        .with_status(StatusCode::PAYLOAD_TOO_LARGE),
        StorageError::SizeMismatch { expected, received } => ApiError::new(
            ErrorCode::SizeInvalid,
            format!("received {received} bytes, {expected} were announced"),
        ),
        StorageError::RangeMismatch { offset, requested } => ApiError::new(
            ErrorCode::BlobUploadInvalid,
            format!("chunk starts at {requested}, the upload is at {offset}"),
        )
        .with_status(StatusCode::RANGE_NOT_SATISFIABLE),
        StorageError::BlobUnknown(d) => {
            ApiError::new(ErrorCode::BlobUnknown, format!("blob {d} is unknown"))
                .with_detail(json!({ "digest": d.to_string() }))
        }
        StorageError::ManifestUnknown(d) => manifest_unknown(&d.to_string()),
        StorageError::Client(e) => ApiError::new(
            ErrorCode::BlobUploadInvalid,
            format!("the request body could not be read: {e}"),
        ),
        StorageError::Io(e) => ApiError::internal(e),
    }
}

/// The request's Content-Length, if it announces one.
fn content_length(headers: &HeaderMap) -> Option<u64> {
    header_str(headers, header::CONTENT_LENGTH).and_then(|v| v.parse().ok())
}

/// Refuses a blob body that announces more than the upload cap, before reading any of it.
fn check_announced_size(ctx: &Ctx<'_>, headers: &HeaderMap) -> Result<(), ApiError> {
    let limit = ctx.reg.config.max_upload_bytes;
    match content_length(headers) {
        Some(n) if n > limit => Err(storage_error(StorageError::TooLarge { limit })),
        _ => Ok(()),
    }
}

fn parse_digest(s: &str) -> Result<Digest, ApiError> {
    s.parse().map_err(|e: super::digest::DigestError| {
        ApiError::new(ErrorCode::DigestInvalid, e.to_string())
    })
}

fn body_stream(body: Body) -> ByteStream {
    Box::pin(body.into_data_stream().map_err(io::Error::other))
}

fn location(path: String) -> (header::HeaderName, String) {
    (header::LOCATION, path)
}

fn response(
    status: StatusCode,
    headers: Vec<(header::HeaderName, String)>,
    body: Body,
) -> Response {
    let mut b = Response::builder().status(status);
    for (k, v) in headers {
        b = b.header(k, v);
    }
    b.body(body)
        .unwrap_or_else(|e| ApiError::internal(e).into_response())
}

// --- manifests -------------------------------------------------------------------------------

/// A manifest reference: a digest (has `:`) or a tag.
enum Reference {
    Digest(Digest),
    Tag(String),
}

fn parse_reference(r: &str) -> Result<Reference, ApiError> {
    if r.contains(':') {
        parse_digest(r).map(Reference::Digest)
    } else if valid_tag(r) {
        Ok(Reference::Tag(r.to_string()))
    } else {
        Err(ApiError::new(
            ErrorCode::ManifestInvalid,
            format!("invalid tag '{r}'"),
        ))
    }
}

fn manifest_unknown(reference: &str) -> ApiError {
    ApiError::new(
        ErrorCode::ManifestUnknown,
        format!("manifest unknown: {reference}"),
    )
}

/// `GET`/`HEAD` of a manifest, honouring `Accept` and `If-None-Match` (see `negotiation`).
async fn get_manifest(
    ctx: &Ctx<'_>,
    reference: &str,
    head: bool,
    request: &HeaderMap,
) -> ApiResult {
    let storage = &ctx.reg.storage;
    let (digest, by_digest) = match parse_reference(reference)? {
        Reference::Digest(d) => (d, true),
        Reference::Tag(t) => {
            let cached = storage
                .resolve_tag(ctx.name, &t)
                .await
                .map_err(storage_error)?;
            let d = match (ctx.importer(), cached) {
                (Some(Ok((pt, route))), cached) => {
                    Some(pt.resolve_tag(route, &t, cached, ctx.exists).await?)
                }
                (Some(Err(denied)), None) => return Err(denied),
                (_, cached) => cached,
            };
            (d.ok_or_else(|| manifest_unknown(reference))?, false)
        }
    };
    let m = match storage
        .get_manifest(ctx.name, &digest)
        .await
        .map_err(storage_error)?
    {
        Some(m) => m,
        None => match ctx.importer() {
            Some(importer) => {
                let (pt, route) = importer?;
                pt.manifest(route, &digest, ctx.exists).await?
            }
            None => return Err(manifest_unknown(reference)),
        },
    };
    if !negotiation::acceptable(request, &m.media_type) {
        return Err(ApiError::new(
            ErrorCode::ManifestUnknown,
            format!(
                "manifest {reference} is a {}, which the Accept header does not list",
                m.media_type
            ),
        ));
    }
    if !head {
        // A GET is a pull (a 304 too: the client asked for the image); a HEAD only checks.
        ctx.reg
            .pulls
            .record(ctx.name, &m.digest, std::time::SystemTime::now());
    }
    // By tag, the answer changes when the tag moves: not cacheable as immutable.
    let mut headers = content_headers(&m.digest, by_digest);
    if negotiation::not_modified(request, &m.digest) {
        return Ok(response(StatusCode::NOT_MODIFIED, headers, Body::empty()));
    }
    headers.push((header::CONTENT_TYPE, m.media_type.clone()));
    headers.push((header::CONTENT_LENGTH, m.bytes.len().to_string()));
    let body = if head {
        Body::empty()
    } else {
        Body::from(m.bytes)
    };
    Ok(response(StatusCode::OK, headers, body))
}

/// Reads a request body of at most `limit` bytes; None when it is larger.
async fn read_limited(body: Body, limit: usize) -> Result<Option<Bytes>, ApiError> {
    let mut stream = body.into_data_stream();
    let mut buf = Vec::new();
    while let Some(chunk) = stream.next().await {
        let chunk = chunk
            .map_err(|e| ApiError::new(ErrorCode::ManifestInvalid, format!("request body: {e}")))?;
        if buf.len() + chunk.len() > limit {
            return Ok(None);
        }
        buf.extend_from_slice(&chunk);
    }
    Ok(Some(Bytes::from(buf)))
}

fn tag_immutable_error(tag: &str, repo: &str) -> ApiError {
    ApiError::new(
        ErrorCode::TagInvalid,
        format!(
            "The image tag '{tag}' already exists in the '{repo}' repository and cannot be overwritten because the repository is immutable."
        ),
    )
}

/// Which creation templates a push that creates its repository takes: REPLICATION when
/// another registry's replication pushes (it says so in `replication::SOURCE_HEADER`; the
/// header only chooses among the templates the pusher could get anyway), else CREATE_ON_PUSH.
fn push_scenario(headers: &HeaderMap) -> RctAppliedFor {
    match headers.contains_key(super::replication::SOURCE_HEADER) {
        true => RctAppliedFor::Replication,
        false => RctAppliedFor::CreateOnPush,
    }
}

/// `PUT /v2/<name>/manifests/<reference>`: read, validate, check what it references, check
/// its tags against immutability, store it, then point its tags at it.
async fn put_manifest(
    ctx: &Ctx<'_>,
    reference: &str,
    query_tags: &[&str],
    req: Request,
) -> ApiResult {
    if query_tags.len() > MAX_TAGS_PER_PUSH {
        return Err(ApiError::new(
            ErrorCode::TagInvalid,
            format!(
                "a push takes at most {MAX_TAGS_PER_PUSH} tag parameters, {} were given",
                query_tags.len()
            ),
        ));
    }
    let replicated = req
        .headers()
        .contains_key(super::replication::SOURCE_HEADER);
    let (reference, content_type, bytes) = read_manifest(reference, req).await?;
    let (digest, tags) = push_target(reference, &bytes, query_tags)?;
    // Up to 4 MiB of JSON: parsed off the async workers.
    let parsed = tokio::task::spawn_blocking({
        let bytes = bytes.clone();
        move || manifest::parse_manifest(&bytes, content_type.as_deref())
    })
    .await
    .map_err(ApiError::internal)?
    .map_err(|e| ApiError::new(ErrorCode::ManifestInvalid, e.to_string()))?;
    check_references(ctx, &parsed).await?;
    check_immutable_tags(ctx, &tags, &digest).await?;
    store_manifest(ctx, &digest, bytes, &parsed).await?;
    write_tags(ctx, &tags, &digest).await?;
    // Queued durably before the push is acknowledged: a crash cannot lose the replication.
    // What another registry replicates here is not replicated on: two registries that
    // replicate to each other would copy every push back and forth for ever.
    if let Some(r) = ctx.reg.replication.as_ref().filter(|_| !replicated) {
        r.pushed(ctx.name, &digest).await.map_err(storage_error)?;
    }
    tracing::debug!(repo = ctx.name, %digest, user = %ctx.principal.username, "manifest pushed");
    ctx.reg.changed(ctx.name);
    let mut headers = vec![
        location(format!("/v2/{}/manifests/{digest}", ctx.name)),
        (
            header::HeaderName::from_static("docker-content-digest"),
            digest.to_string(),
        ),
        (header::CONTENT_LENGTH, "0".into()),
    ];
    if let Some(s) = &parsed.subject {
        headers.push((
            header::HeaderName::from_static("oci-subject"),
            s.to_string(),
        ));
    }
    if !query_tags.is_empty() {
        headers.push((header::HeaderName::from_static("oci-tag"), tags.join(",")));
    }
    Ok(response(StatusCode::CREATED, headers, Body::empty()))
}

/// The reference (an invalid one is TAG_INVALID here), the content type and the body of a
/// manifest push, refused above the size limit whether announced or not.
async fn read_manifest(
    reference: &str,
    req: Request,
) -> Result<(Reference, Option<String>, Bytes), ApiError> {
    let (parts, body) = req.into_parts();
    if content_length(&parts.headers).is_some_and(|n| n > MAX_MANIFEST_BYTES as u64) {
        return Err(manifest_too_large());
    }
    let reference = match parse_reference(reference) {
        Ok(r) => r,
        Err(e) if e.code == ErrorCode::ManifestInvalid => {
            return Err(ApiError::new(
                ErrorCode::TagInvalid,
                format!("invalid tag '{reference}'"),
            ));
        }
        Err(e) => return Err(e),
    };
    let bytes = read_limited(body, MAX_MANIFEST_BYTES)
        .await?
        .ok_or_else(manifest_too_large)?;
    let content_type = header_str(&parts.headers, header::CONTENT_TYPE).map(str::to_string);
    Ok((reference, content_type, bytes))
}

fn manifest_too_large() -> ApiError {
    ApiError::new(
        ErrorCode::ManifestInvalid,
        format!("manifest exceeds the maximum size of {MAX_MANIFEST_BYTES} bytes"),
    )
    .with_status(StatusCode::PAYLOAD_TOO_LARGE)
}

/// The digest a pushed manifest is stored under (the reference's, which must be the body's,
/// or the body's when pushed by tag) and the tags to point at it: the reference's and the
/// `?tag=` parameters.
fn push_target(
    reference: Reference,
    bytes: &[u8],
    query_tags: &[&str],
) -> Result<(Digest, Vec<String>), ApiError> {
    let (digest, mut tags) = match reference {
        Reference::Digest(d) => {
            let actual = Digest::of(d.algorithm(), bytes);
            if actual != d {
                return Err(ApiError::new(
                    ErrorCode::DigestInvalid,
                    "manifest digest did not match the reference",
                )
                .with_detail(
                    json!({ "expected": d.to_string(), "computed": actual.to_string() }),
                ));
            }
            (d, Vec::new())
        }
        Reference::Tag(t) => (Digest::sha256(bytes), vec![t]),
    };
    for &t in query_tags {
        if !valid_tag(t) {
            return Err(ApiError::new(
                ErrorCode::TagInvalid,
                format!("invalid tag '{t}'"),
            ));
        }
        if !tags.iter().any(|x| x == t) {
            tags.push(t.to_string());
        }
    }
    Ok((digest, tags))
}

fn manifest_blob_unknown(b: &Digest) -> ApiError {
    ApiError::new(
        ErrorCode::ManifestBlobUnknown,
        format!("blob {b} is unknown to the repository"),
    )
    .with_detail(json!({ "digest": b.to_string() }))
}

/// Every blob the manifest references is linked into the repository, every manifest an index
/// lists is stored in it.
async fn check_references(ctx: &Ctx<'_>, parsed: &ParsedManifest) -> Result<(), ApiError> {
    let storage = &ctx.reg.storage;
    for b in &parsed.blobs {
        if storage
            .blob_size(ctx.name, b)
            .await
            .map_err(storage_error)?
            .is_none()
        {
            return Err(manifest_blob_unknown(b));
        }
    }
    for c in &parsed.children {
        if storage
            .get_manifest(ctx.name, c)
            .await
            .map_err(storage_error)?
            .is_none()
        {
            return Err(ApiError::new(
                ErrorCode::ManifestUnknown,
                format!("manifest {c} listed by the index is unknown to the repository"),
            )
            .with_status(StatusCode::BAD_REQUEST)
            .with_detail(json!({ "digest": c.to_string() })));
        }
    }
    Ok(())
}

/// Refuses, before anything is stored, to move an immutable tag; `write_tags` checks again,
/// atomically with the write.
async fn check_immutable_tags(
    ctx: &Ctx<'_>,
    tags: &[String],
    digest: &Digest,
) -> Result<(), ApiError> {
    for t in tags {
        if ctx.settings.tag_is_immutable(t)
            && let Some(current) = ctx
                .reg
                .storage
                .resolve_tag(ctx.name, t)
                .await
                .map_err(storage_error)?
            && &current != digest
        {
            return Err(tag_immutable_error(t, ctx.name));
        }
    }
    Ok(())
}

/// Stores the manifest with what listings and the GC need. A referenced blob the GC freed
/// since `check_references` is MANIFEST_BLOB_UNKNOWN.
async fn store_manifest(
    ctx: &Ctx<'_>,
    digest: &Digest,
    bytes: Bytes,
    parsed: &ParsedManifest,
) -> Result<(), ApiError> {
    let record = ManifestRecord::of(parsed, digest, bytes.len());
    ctx.reg
        .storage
        .put_manifest(ctx.name, digest, bytes, record)
        .await
        .map_err(|e| match e {
            StorageError::BlobUnknown(b) => manifest_blob_unknown(&b),
            e => storage_error(e),
        })
}

/// Points the tags at the stored manifest; an immutable tag is moved by no one (the storage
/// checks and writes atomically).
async fn write_tags(ctx: &Ctx<'_>, tags: &[String], digest: &Digest) -> Result<(), ApiError> {
    for t in tags {
        let overwrite = !ctx.settings.tag_is_immutable(t);
        if let TagWrite::Conflict(_) = ctx
            .reg
            .storage
            .put_tag(ctx.name, t, digest, overwrite)
            .await
            .map_err(storage_error)?
        {
            return Err(tag_immutable_error(t, ctx.name));
        }
    }
    Ok(())
}

async fn delete_manifest(ctx: &Ctx<'_>, reference: &str) -> ApiResult {
    let storage = &ctx.reg.storage;
    let found = match parse_reference(reference)? {
        Reference::Digest(d) => storage.delete_manifest(ctx.name, &d).await,
        Reference::Tag(t) => storage.delete_tag(ctx.name, &t).await,
    }
    .map_err(storage_error)?;
    if !found {
        return Err(manifest_unknown(reference));
    }
    ctx.reg.changed(ctx.name);
    Ok(response(
        StatusCode::ACCEPTED,
        vec![(header::CONTENT_LENGTH, "0".into())],
        Body::empty(),
    ))
}

// --- blobs -----------------------------------------------------------------------------------

fn blob_unknown(d: &Digest) -> ApiError {
    ApiError::new(
        ErrorCode::BlobUnknown,
        format!("blob {d} is unknown to the repository"),
    )
    .with_detail(json!({ "digest": d.to_string() }))
}

/// What every answer about content `d` carries, a 304 included; `Cache-Control` when the
/// request addressed it by digest (then it is immutable).
fn content_headers(d: &Digest, immutable: bool) -> Vec<(header::HeaderName, String)> {
    let mut out = vec![
        (
            header::HeaderName::from_static("docker-content-digest"),
            d.to_string(),
        ),
        (header::ETAG, format!("\"{d}\"")),
    ];
    if immutable {
        out.push((header::CACHE_CONTROL, negotiation::IMMUTABLE.into()));
    }
    out
}

/// `GET`/`HEAD` of a blob, or of a manifest by digest (as distribution serves them), with
/// ranges and `If-None-Match`.
async fn get_blob(ctx: &Ctx<'_>, digest: &str, head: bool, headers: &HeaderMap) -> ApiResult {
    let d = parse_digest(digest)?;
    let storage = &ctx.reg.storage;
    let mut size = storage
        .blob_size(ctx.name, &d)
        .await
        .map_err(storage_error)?;
    let local_manifest = match size {
        Some(_) => None,
        None => storage
            .get_manifest(ctx.name, &d)
            .await
            .map_err(storage_error)?,
    };
    if size.is_none()
        && local_manifest.is_none()
        && let Some(importer) = ctx.importer()
    {
        let (pt, route) = importer?;
        // A whole GET streams from the upstream as it is stored; a HEAD or a range waits
        // for the blob and is answered from the store.
        let whole = !head && !headers.contains_key(header::RANGE);
        match pt.blob(route, &d, whole).await? {
            Blob::Streaming { size, stream } => {
                let mut out = content_headers(&d, true);
                out.push((header::CONTENT_TYPE, "application/octet-stream".to_string()));
                if let Some(n) = size {
                    out.push((header::CONTENT_LENGTH, n.to_string()));
                }
                return Ok(response(StatusCode::OK, out, Body::from_stream(stream)));
            }
            Blob::Stored => {
                size = storage
                    .blob_size(ctx.name, &d)
                    .await
                    .map_err(storage_error)?;
            }
        }
    }
    let Some(size) = size else {
        // Manifests are content too: clients may fetch one by digest from the blob
        // endpoint (distribution serves it there; oras relies on it).
        let m = local_manifest.ok_or_else(|| blob_unknown(&d))?;
        let mut out = content_headers(&d, true);
        if negotiation::not_modified(headers, &d) {
            return Ok(response(StatusCode::NOT_MODIFIED, out, Body::empty()));
        }
        out.push((header::CONTENT_TYPE, m.media_type.clone()));
        out.push((header::CONTENT_LENGTH, m.bytes.len().to_string()));
        let body = if head {
            Body::empty()
        } else {
            Body::from(m.bytes)
        };
        return Ok(response(StatusCode::OK, out, body));
    };
    let mut out = content_headers(&d, true);
    if negotiation::not_modified(headers, &d) {
        return Ok(response(StatusCode::NOT_MODIFIED, out, Body::empty()));
    }
    let decision = if head {
        RangeDecision::Full
    } else {
        decide_range(header_str(headers, header::RANGE), size)
    };
    out.push((header::CONTENT_TYPE, "application/octet-stream".to_string()));
    out.push((header::ACCEPT_RANGES, "bytes".into()));
    let (status, range) = match decision {
        RangeDecision::Unsatisfiable => {
            return Ok(response(
                StatusCode::RANGE_NOT_SATISFIABLE,
                vec![
                    (header::CONTENT_RANGE, format!("bytes */{size}")),
                    (header::CONTENT_LENGTH, "0".into()),
                ],
                Body::empty(),
            ));
        }
        RangeDecision::Full => (StatusCode::OK, None),
        RangeDecision::Partial { start, end } => {
            out.push((
                header::CONTENT_RANGE,
                format!("bytes {start}-{}/{size}", end - 1),
            ));
            (StatusCode::PARTIAL_CONTENT, Some((start, end)))
        }
    };
    let len = range.map_or(size, |(s, e)| e - s);
    out.push((header::CONTENT_LENGTH, len.to_string()));
    if head {
        return Ok(response(status, out, Body::empty()));
    }
    let read = storage
        .read_blob(ctx.name, &d, range)
        .await
        .map_err(storage_error)?
        .ok_or_else(|| blob_unknown(&d))?;
    Ok(response(status, out, Body::from_stream(read.stream)))
}

async fn delete_blob(ctx: &Ctx<'_>, digest: &str) -> ApiResult {
    let d = parse_digest(digest)?;
    if !ctx
        .reg
        .storage
        .unlink_blob(ctx.name, &d)
        .await
        .map_err(storage_error)?
    {
        return Err(blob_unknown(&d));
    }
    Ok(response(
        StatusCode::ACCEPTED,
        vec![(header::CONTENT_LENGTH, "0".into())],
        Body::empty(),
    ))
}

fn blob_created(name: &str, d: &Digest) -> Response {
    response(
        StatusCode::CREATED,
        vec![
            location(format!("/v2/{name}/blobs/{d}")),
            (
                header::HeaderName::from_static("docker-content-digest"),
                d.to_string(),
            ),
            (header::CONTENT_LENGTH, "0".into()),
        ],
        Body::empty(),
    )
}

fn upload_headers(name: &str, id: &str, offset: u64) -> Vec<(header::HeaderName, String)> {
    vec![
        location(format!("/v2/{name}/blobs/uploads/{id}")),
        (header::RANGE, upload_range(offset)),
        (
            header::HeaderName::from_static("docker-upload-uuid"),
            id.to_string(),
        ),
        (header::CONTENT_LENGTH, "0".into()),
    ]
}

async fn start_upload(
    ctx: &Ctx<'_>,
    mount: Option<&str>,
    from: Option<&str>,
    digest: Option<&str>,
    req: Request,
) -> ApiResult {
    let storage = &ctx.reg.storage;
    if let Some(mount) = mount {
        let d = parse_digest(mount)?;
        // A mount needs a source repository the principal may read from; otherwise (no
        // `from`, as the spec allows, or an unreadable one) it quietly becomes an upload:
        // nothing is linked and nothing leaks about the other repository.
        let from = from.filter(|f| {
            valid_repository_name(f)
                && ctx
                    .reg
                    .policy
                    .authorize(ctx.principal, f, actions::GET_DOWNLOAD_URL_FOR_LAYER)
                    .is_ok()
        });
        if let Some(from) = from
            && storage
                .mount_blob(ctx.name, &d, from)
                .await
                .map_err(storage_error)?
        {
            return Ok(blob_created(ctx.name, &d));
        }
    } else if let Some(digest) = digest {
        // Monolithic upload: the body is the whole blob.
        let d = parse_digest(digest)?;
        check_announced_size(ctx, req.headers())?;
        storage
            .put_blob(
                ctx.name,
                &d,
                body_stream(req.into_body()),
                ctx.reg.config.max_upload_bytes,
            )
            .await
            .map_err(storage_error)?;
        return Ok(blob_created(ctx.name, &d));
    }
    let status = storage
        .start_upload(ctx.name)
        .await
        .map_err(storage_error)?;
    Ok(response(
        StatusCode::ACCEPTED,
        upload_headers(ctx.name, &status.id, status.offset),
        Body::empty(),
    ))
}

fn upload_unknown(id: &str) -> ApiError {
    ApiError::new(
        ErrorCode::BlobUploadUnknown,
        format!("blob upload {id} is unknown to the registry"),
    )
}

/// Appends a request body to an upload, honouring `Content-Range` (416 when the chunk does
/// not start at the current offset).
async fn append(ctx: &Ctx<'_>, id: &str, req: Request) -> Result<u64, ApiError> {
    let (parts, body) = req.into_parts();
    check_announced_size(ctx, &parts.headers)?;
    let content_length = content_length(&parts.headers);
    let (start, expected) = match header_str(&parts.headers, header::CONTENT_RANGE) {
        Some(cr) => {
            let (a, len) = parse_content_range(cr).ok_or_else(|| {
                ApiError::new(
                    ErrorCode::BlobUploadInvalid,
                    format!("invalid Content-Range '{cr}'"),
                )
                .with_status(StatusCode::RANGE_NOT_SATISFIABLE)
            })?;
            if content_length.is_some_and(|n| n != len) {
                return Err(ApiError::new(
                    ErrorCode::SizeInvalid,
                    format!(
                        "Content-Range announces {len} bytes, Content-Length {content_length:?}"
                    ),
                ));
            }
            (Some(a), Some(len))
        }
        None => (None, content_length),
    };
    let storage = &ctx.reg.storage;
    match storage
        .append_upload(
            ctx.name,
            id,
            start,
            expected,
            body_stream(body),
            ctx.reg.config.max_upload_bytes,
        )
        .await
    {
        Ok(s) => Ok(s.offset),
        Err(StorageError::RangeMismatch { offset, requested }) => {
            let mut e = ApiError::new(
                ErrorCode::BlobUploadInvalid,
                format!("chunk starts at {requested}, the upload is at {offset}"),
            )
            .with_status(StatusCode::RANGE_NOT_SATISFIABLE);
            for (k, v) in upload_headers(ctx.name, id, offset) {
                if k != header::CONTENT_LENGTH {
                    e = e.with_header(k, &v);
                }
            }
            Err(e)
        }
        Err(e) => Err(storage_error(e)),
    }
}

async fn patch_upload(ctx: &Ctx<'_>, id: &str, req: Request) -> ApiResult {
    let offset = append(ctx, id, req).await?;
    Ok(response(
        StatusCode::ACCEPTED,
        upload_headers(ctx.name, id, offset),
        Body::empty(),
    ))
}

async fn put_upload(ctx: &Ctx<'_>, id: &str, digest: Option<&str>, req: Request) -> ApiResult {
    let d = parse_digest(digest.ok_or_else(|| {
        ApiError::new(ErrorCode::DigestInvalid, "the digest parameter is required")
    })?)?;
    let storage = &ctx.reg.storage;
    let has_body = req.body().size_hint().exact() != Some(0)
        || req.headers().contains_key(header::CONTENT_RANGE);
    if has_body {
        append(ctx, id, req).await?;
    } else if storage
        .upload_status(ctx.name, id)
        .await
        .map_err(storage_error)?
        .is_none()
    {
        return Err(upload_unknown(id));
    }
    storage
        .complete_upload(ctx.name, id, &d)
        .await
        .map_err(storage_error)?;
    Ok(blob_created(ctx.name, &d))
}

async fn upload_status(ctx: &Ctx<'_>, id: &str) -> ApiResult {
    let s = ctx
        .reg
        .storage
        .upload_status(ctx.name, id)
        .await
        .map_err(storage_error)?
        .ok_or_else(|| upload_unknown(id))?;
    Ok(response(
        StatusCode::NO_CONTENT,
        upload_headers(ctx.name, id, s.offset),
        Body::empty(),
    ))
}

async fn cancel_upload(ctx: &Ctx<'_>, id: &str) -> ApiResult {
    if !ctx
        .reg
        .storage
        .cancel_upload(ctx.name, id)
        .await
        .map_err(storage_error)?
    {
        return Err(upload_unknown(id));
    }
    Ok(response(StatusCode::NO_CONTENT, Vec::new(), Body::empty()))
}

// --- content discovery -----------------------------------------------------------------------

/// One page of a sorted listing: entries after `last`, at most `n`; and whether more remain.
pub fn paginate(sorted: Vec<String>, n: Option<usize>, last: Option<&str>) -> (Vec<String>, bool) {
    let after: Vec<String> = sorted
        .into_iter()
        .filter(|t| last.is_none_or(|l| t.as_str() > l))
        .collect();
    match n {
        Some(n) if after.len() > n => (after.into_iter().take(n).collect(), true),
        _ => (after, false),
    }
}

fn page_params(
    n: Option<&str>,
    last: Option<&str>,
) -> Result<(Option<usize>, Option<String>), ApiError> {
    let n = match n {
        Some(v) => Some(v.parse::<usize>().map_err(|_| {
            ApiError::new(ErrorCode::Unsupported, format!("invalid page size n={v}"))
                .with_status(StatusCode::BAD_REQUEST)
        })?),
        None => None,
    };
    Ok((n, last.map(str::to_string)))
}

/// The `Link` to the next page. Tags and repository names are made of URL-safe characters.
fn next_link(base: &str, n: usize, last: &str) -> (header::HeaderName, String) {
    (
        header::LINK,
        format!("<{base}?n={n}&last={last}>; rel=\"next\""),
    )
}

async fn list_tags(ctx: &Ctx<'_>, n: Option<&str>, last: Option<&str>) -> ApiResult {
    let (n, last) = page_params(n, last)?;
    let tags = ctx
        .reg
        .storage
        .list_tags(ctx.name)
        .await
        .map_err(storage_error)?;
    let (page, more) = paginate(tags, n, last.as_deref());
    let mut headers = vec![(header::CONTENT_TYPE, "application/json".to_string())];
    if more && let (Some(n), Some(l)) = (n, page.last()) {
        headers.push(next_link(&format!("/v2/{}/tags/list", ctx.name), n, l));
    }
    let body = json!({ "name": ctx.name, "tags": page }).to_string();
    Ok(response(StatusCode::OK, headers, Body::from(body)))
}

async fn referrers(ctx: &Ctx<'_>, digest: &str, artifact_type: Option<&str>) -> ApiResult {
    let d = parse_digest(digest)?;
    let mut list = ctx
        .reg
        .storage
        .referrers(ctx.name, &d)
        .await
        .map_err(storage_error)?;
    let mut headers = vec![(header::CONTENT_TYPE, OCI_INDEX.to_string())];
    if let Some(at) = artifact_type {
        list.retain(|r| r.artifact_type.as_deref() == Some(at));
        headers.push((
            header::HeaderName::from_static("oci-filters-applied"),
            "artifactType".into(),
        ));
    }
    list.sort_by(|a, b| a.digest.cmp(&b.digest));
    let body = json!({ "schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": list }).to_string();
    Ok(response(StatusCode::OK, headers, Body::from(body)))
}

async fn catalog(reg: &Registry, principal: &Principal, query: &Query) -> ApiResult {
    let (n, last) = page_params(query.get("n"), query.get("last"))?;
    let repos: Vec<String> = reg
        .storage
        .list_repositories()
        .await
        .map_err(storage_error)?
        .into_iter()
        .filter(|r| reg.config.create_on_push || reg.policy.repository(r).is_some())
        .filter(|r| {
            reg.policy
                .authorize(principal, r, actions::DESCRIBE_REPOSITORIES)
                .is_ok()
                || reg
                    .policy
                    .authorize(principal, r, actions::LIST_IMAGES)
                    .is_ok()
        })
        .collect();
    let (page, more) = paginate(repos, n, last.as_deref());
    let mut headers = vec![(header::CONTENT_TYPE, "application/json".to_string())];
    if more && let (Some(n), Some(l)) = (n, page.last()) {
        headers.push(next_link("/v2/_catalog", n, l));
    }
    let body = json!({ "repositories": page }).to_string();
    Ok(response(StatusCode::OK, headers, Body::from(body)))
}

#[cfg(test)]
mod tests {
    use super::actions::*;
    use super::*;

    fn actions_of(path: &str, method: Method, query: &str) -> Option<Vec<&'static str>> {
        let uri: axum::http::Uri = format!("/v2/{path}?{query}").parse().unwrap();
        let query = Query::parse(&uri);
        let route = parse_route(path).unwrap();
        Op::parse(&route, &method, &query).map(|op| op.actions().to_vec())
    }

    #[test]
    fn each_operation_needs_its_ecr_actions() {
        let whole_upload = vec![
            INITIATE_LAYER_UPLOAD,
            UPLOAD_LAYER_PART,
            COMPLETE_LAYER_UPLOAD,
        ];
        let cases = [
            (
                "r/manifests/v1",
                Method::GET,
                "",
                Some(vec![BATCH_GET_IMAGE]),
            ),
            (
                "r/manifests/v1",
                Method::HEAD,
                "",
                Some(vec![BATCH_GET_IMAGE]),
            ),
            (
                "r/manifests/v1",
                Method::PUT,
                "tag=a",
                Some(vec![PUT_IMAGE]),
            ),
            (
                "r/manifests/v1",
                Method::DELETE,
                "",
                Some(vec![BATCH_DELETE_IMAGE]),
            ),
            ("r/manifests/v1", Method::POST, "", None),
            (
                "r/blobs/d",
                Method::GET,
                "",
                Some(vec![GET_DOWNLOAD_URL_FOR_LAYER]),
            ),
            (
                "r/blobs/d",
                Method::HEAD,
                "",
                Some(vec![BATCH_CHECK_LAYER_AVAILABILITY]),
            ),
            (
                "r/blobs/d",
                Method::DELETE,
                "",
                Some(vec![BATCH_DELETE_IMAGE]),
            ),
            ("r/blobs/d", Method::PUT, "", None),
            (
                "r/blobs/uploads/",
                Method::POST,
                "",
                Some(vec![INITIATE_LAYER_UPLOAD]),
            ),
            (
                "r/blobs/uploads/",
                Method::POST,
                "mount=d",
                Some(vec![INITIATE_LAYER_UPLOAD]),
            ),
            (
                "r/blobs/uploads/",
                Method::POST,
                "digest=d",
                Some(whole_upload.clone()),
            ),
            (
                "r/blobs/uploads/",
                Method::POST,
                "mount=d&digest=d",
                Some(whole_upload),
            ),
            ("r/blobs/uploads/", Method::GET, "", None),
            (
                "r/blobs/uploads/id",
                Method::PATCH,
                "",
                Some(vec![UPLOAD_LAYER_PART]),
            ),
            (
                "r/blobs/uploads/id",
                Method::GET,
                "",
                Some(vec![UPLOAD_LAYER_PART]),
            ),
            (
                "r/blobs/uploads/id",
                Method::DELETE,
                "",
                Some(vec![UPLOAD_LAYER_PART]),
            ),
            (
                "r/blobs/uploads/id",
                Method::PUT,
                "digest=d",
                Some(vec![COMPLETE_LAYER_UPLOAD]),
            ),
            ("r/blobs/uploads/id", Method::HEAD, "", None),
            ("r/tags/list", Method::GET, "n=1", Some(vec![LIST_IMAGES])),
            ("r/tags/list", Method::DELETE, "", None),
            (
                "r/referrers/d",
                Method::GET,
                "",
                Some(vec![BATCH_GET_IMAGE]),
            ),
            ("r/referrers/d", Method::HEAD, "", None),
        ];
        for (path, method, query, want) in cases {
            let got = actions_of(path, method.clone(), query);
            assert_eq!(got, want, "{method} {path}?{query}");
        }
        assert_eq!(actions_of("_catalog", Method::GET, ""), None);
    }

    #[test]
    fn operations_carry_their_parameters() {
        let uri: axum::http::Uri = "/v2/a/b/manifests/sha256:x?tag=1&tag=2".parse().unwrap();
        let query = Query::parse(&uri);
        let route = parse_route("a/b/manifests/sha256:x").unwrap();
        assert_eq!(
            Op::parse(&route, &Method::PUT, &query),
            Some(Op::PutManifest {
                reference: "sha256:x",
                tags: vec!["1", "2"],
            })
        );
    }
}
