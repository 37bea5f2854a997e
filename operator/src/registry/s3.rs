//! The S3-compatible object storage backend: several stateless registry replicas serve one
//! bucket. Keys follow the shared layout (`layout`) under a prefix, plus:
//! ```text
//! uses/<alg>/<hex>                                  empty: the blob was just (re)used (GC clock)
//! repositories/<name>/_uploads/<id>/state           upload session: JSON {offset, parts}
//! repositories/<name>/_uploads/<id>/parts/<start>-<rand>  one acknowledged chunk
//! ```
//!
//! "Storage that never lies", on a medium without rename:
//! - A blob key is written only by a single PUT or a completed multipart upload, and that PUT
//!   is completed only once the digest computed while streaming matched (else the multipart
//!   upload is aborted): a blob key never holds unverified content. Memory stays flat: bodies
//!   stream in 5 MiB parts, at most two in flight.
//! - An upload session lives in the bucket, so a PATCH or the final PUT may land on another
//!   replica than the POST. Each chunk is its own object; the session's `state` object lists
//!   the acknowledged parts and is replaced with `If-Match` on its ETag, so two replicas
//!   appending at once cannot both win (the loser's part is left out and deleted). Completing
//!   streams the parts, in order, through the hasher into the blob key.
//! - A tag is written only after its manifest exists, and moved with `If-Match` / created with
//!   `If-None-Match: *` on the tag object, retried on a lost race: the immutable-tag check and
//!   the write are atomic across replicas. A server without conditional writes
//!   (`conditional_writes: false`) gets plain overwrites: the check is then atomic only
//!   within one replica (a process lock).
//! - The GC's clock is an object's last-modified time; reusing an existing blob writes its
//!   `uses/` marker, so a blob is fresh if either is recent. Within one replica the sweep and
//!   manifest pushes are ordered by a lock as in the filesystem backend. Across replicas a
//!   push also re-checks its blobs after writing the manifest (and withdraws it if one
//!   vanished). What remains is a push on another replica whose marker write, blob check,
//!   manifest write and re-check all fall between the GC's last look at that blob and its
//!   DELETE (one request apart), for a blob unused for the whole grace period.
//! - Multipart uploads abandoned by a killed process are invisible and never become objects;
//!   a bucket lifecycle rule (AbortIncompleteMultipartUpload) reclaims their space.

use std::collections::{HashMap, HashSet};
use std::io;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use futures::StreamExt;
use futures::future::BoxFuture;
use object_store::path::Path as Key;
use object_store::{
    GetOptions, GetRange, ObjectMeta, ObjectStore, ObjectStoreExt, PutMode, PutOptions, PutPayload,
    UpdateVersion, WriteMultipart,
};
use serde::{Deserialize, Serialize};

use super::digest::{Digest, Hasher};
use super::layout::{self, ManifestMeta, random_id, valid_upload_id};
use super::manifest::Descriptor;
use super::storage::*;

/// Part size of multipart uploads: S3's minimum (every part but the last).
const PART_SIZE: usize = 5 * 1024 * 1024;
/// Parts uploading at once per upload: memory per upload stays under ~3 parts.
const PARTS_IN_FLIGHT: usize = 2;
/// Attempts at a conditional write that keeps losing races before giving up.
const CONDITIONAL_ATTEMPTS: usize = 16;

/// Where the bucket is and how to reach it. Credentials come from the standard AWS
/// environment variables (`AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY`, `AWS_SESSION_TOKEN`...).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct S3Config {
    pub bucket: String,
    /// Key prefix (no leading or trailing `/`), may be empty.
    pub prefix: String,
    /// An S3-compatible server's URL (path-style requests); None = AWS.
    pub endpoint: Option<String>,
    pub region: Option<String>,
    /// Allow `http://` endpoints.
    pub allow_http: bool,
    /// The server honours `If-Match` / `If-None-Match` on PUT (AWS S3 does since 2024).
    pub conditional_writes: bool,
}

#[derive(Debug, thiserror::Error)]
pub enum S3ConfigError {
    #[error("invalid S3 location '{0}': expected s3://BUCKET[/PREFIX]")]
    Url(String),
    #[error("S3 client: {0}")]
    Client(#[from] object_store::Error),
}

impl S3Config {
    /// `s3://BUCKET[/PREFIX]` into a bucket and a prefix.
    pub fn parse_url(url: &str) -> Result<(String, String), S3ConfigError> {
        let rest = url
            .strip_prefix("s3://")
            .ok_or_else(|| S3ConfigError::Url(url.into()))?;
        let (bucket, prefix) = rest.split_once('/').unwrap_or((rest, ""));
        let bucket_ok = (3..=63).contains(&bucket.len())
            && bucket
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'.');
        if !bucket_ok {
            return Err(S3ConfigError::Url(url.into()));
        }
        Ok((bucket.to_string(), normalize_prefix(prefix)))
    }
}

fn normalize_prefix(prefix: &str) -> String {
    prefix
        .split('/')
        .filter(|p| !p.is_empty())
        .collect::<Vec<_>>()
        .join("/")
}

/// An upload session as stored in its `state` object.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SessionState {
    /// Bytes acknowledged: the sum of the parts' sizes.
    pub offset: u64,
    /// Acknowledged chunks, in order.
    pub parts: Vec<SessionPart>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SessionPart {
    /// Object name under the session's `parts/`.
    pub name: String,
    pub size: u64,
}

impl SessionState {
    pub fn encode(&self) -> Vec<u8> {
        serde_json::to_vec(self).expect("session state serializes")
    }

    /// Parses a stored state, refusing one whose parts do not add up to its offset.
    pub fn decode(raw: &[u8]) -> io::Result<SessionState> {
        let s: SessionState = serde_json::from_slice(raw).map_err(io::Error::other)?;
        let sum: u64 = s.parts.iter().map(|p| p.size).sum();
        if sum != s.offset || s.parts.iter().any(|p| !valid_part_name(&p.name)) {
            return Err(io::Error::other("corrupt upload session state"));
        }
        Ok(s)
    }

    /// The state after acknowledging one more part.
    pub fn with_part(&self, name: String, size: u64) -> SessionState {
        let mut next = self.clone();
        next.offset += size;
        next.parts.push(SessionPart { name, size });
        next
    }
}

/// `<start, 20 digits>-<8 hex>`: sorted by position, unique among racing writers.
pub fn part_name(start: u64, nonce: &str) -> String {
    format!("{start:020}-{nonce}")
}

fn valid_part_name(name: &str) -> bool {
    name.split_once('-').is_some_and(|(start, nonce)| {
        start.len() == 20
            && start.bytes().all(|b| b.is_ascii_digit())
            && !nonce.is_empty()
            && nonce.bytes().all(|b| b.is_ascii_hexdigit())
    })
}

fn store_err(e: object_store::Error) -> StorageError {
    StorageError::Io(io::Error::other(e))
}

fn is_not_found(e: &object_store::Error) -> bool {
    matches!(e, object_store::Error::NotFound { .. })
}

/// A lost conditional write.
fn is_conflict(e: &object_store::Error) -> bool {
    matches!(
        e,
        object_store::Error::Precondition { .. } | object_store::Error::AlreadyExists { .. }
    )
}

fn system_time(meta: &ObjectMeta) -> SystemTime {
    UNIX_EPOCH + Duration::from_millis(meta.last_modified.timestamp_millis().max(0) as u64)
}

/// Streams one object in: a small one as a single PUT, a large one as a multipart upload.
/// Nothing is visible before `finish`; dropping it unfinished aborts the multipart upload.
struct ObjectWriter {
    store: Arc<dyn ObjectStore>,
    key: Key,
    buffered: Vec<Bytes>,
    buffered_len: usize,
    multipart: Option<WriteMultipart>,
}

impl ObjectWriter {
    fn new(store: Arc<dyn ObjectStore>, key: Key) -> ObjectWriter {
        ObjectWriter {
            store,
            key,
            buffered: Vec::new(),
            buffered_len: 0,
            multipart: None,
        }
    }

    async fn write(&mut self, chunk: Bytes) -> object_store::Result<()> {
        if let Some(m) = &mut self.multipart {
            // Back-pressure: wait for a part slot before buffering more.
            m.wait_for_capacity(PARTS_IN_FLIGHT).await?;
            m.put(chunk);
            return Ok(());
        }
        self.buffered_len += chunk.len();
        self.buffered.push(chunk);
        if self.buffered_len >= PART_SIZE {
            let upload = self.store.put_multipart(&self.key).await?;
            let mut m = WriteMultipart::new_with_chunk_size(upload, PART_SIZE);
            for b in self.buffered.drain(..) {
                m.put(b);
            }
            self.buffered_len = 0;
            self.multipart = Some(m);
        }
        Ok(())
    }

    async fn finish(mut self) -> object_store::Result<()> {
        match self.multipart.take() {
            Some(m) => m.finish().await.map(|_| ()),
            None => {
                let payload: PutPayload = std::mem::take(&mut self.buffered).into_iter().collect();
                self.store.put(&self.key, payload).await.map(|_| ())
            }
        }
    }

    async fn abort(mut self) {
        if let Some(m) = self.multipart.take() {
            let _ = m.abort().await;
        }
    }
}

impl Drop for ObjectWriter {
    fn drop(&mut self) {
        // Request dropped mid-body (client gone): abort in the background.
        if let Some(m) = self.multipart.take()
            && let Ok(rt) = tokio::runtime::Handle::try_current()
        {
            rt.spawn(async move {
                let _ = m.abort().await;
            });
        }
    }
}

/// Streams `body` into `writer` (if any) and `hasher` (if any); returns the bytes received.
async fn stream_in(
    mut body: ByteStream,
    mut writer: Option<&mut ObjectWriter>,
    mut hasher: Option<&mut Hasher>,
    offset: u64,
    limit: u64,
) -> StorageResult<u64> {
    let mut n = 0u64;
    while let Some(chunk) = body.next().await {
        let chunk = chunk.map_err(StorageError::Client)?;
        n += chunk.len() as u64;
        if offset + n > limit {
            return Err(StorageError::TooLarge { limit });
        }
        if let Some(h) = hasher.as_deref_mut() {
            h.update(&chunk);
        }
        if let Some(w) = writer.as_deref_mut() {
            w.write(chunk).await.map_err(store_err)?;
        }
    }
    Ok(n)
}

/// The S3 backend. See the module documentation.
pub struct S3Storage {
    store: Arc<dyn ObjectStore>,
    prefix: String,
    conditional: bool,
    /// Serialises chunks of one session within this replica (the bucket state orders them
    /// across replicas).
    uploads: layout::SessionLocks<()>,
    tag_lock: tokio::sync::Mutex<()>,
    /// As in the filesystem backend: pushes reusing blobs (readers) against the GC deleting
    /// one (writer), within this replica.
    gc_lock: tokio::sync::RwLock<()>,
}

impl S3Storage {
    /// Connects to the bucket described by `config` (no request is made yet).
    pub fn connect(config: &S3Config) -> Result<S3Storage, S3ConfigError> {
        use object_store::aws::{AmazonS3Builder, S3ConditionalPut};
        let mut b = AmazonS3Builder::from_env()
            .with_bucket_name(&config.bucket)
            .with_allow_http(config.allow_http)
            .with_conditional_put(if config.conditional_writes {
                S3ConditionalPut::ETagMatch
            } else {
                S3ConditionalPut::Disabled
            });
        if let Some(r) = &config.region {
            b = b.with_region(r);
        }
        if let Some(e) = &config.endpoint {
            b = b.with_endpoint(e).with_virtual_hosted_style_request(false);
        }
        Ok(S3Storage::new(
            Arc::new(b.build()?),
            &config.prefix,
            config.conditional_writes,
        ))
    }

    /// Over any object store (tests use the in-memory one).
    pub fn new(store: Arc<dyn ObjectStore>, prefix: &str, conditional: bool) -> S3Storage {
        S3Storage {
            store,
            prefix: normalize_prefix(prefix),
            conditional,
            uploads: layout::SessionLocks::new(),
            tag_lock: tokio::sync::Mutex::new(()),
            gc_lock: tokio::sync::RwLock::new(()),
        }
    }

    /// One listing request: fails on a missing bucket, a wrong endpoint or bad credentials.
    pub async fn check(&self) -> StorageResult<()> {
        self.list_dir(layout::REPOSITORIES).await.map(|_| ())
    }

    /// The object key of a layout path.
    fn key(&self, rel: &str) -> Key {
        if self.prefix.is_empty() {
            Key::from(rel)
        } else {
            Key::from(format!("{}/{rel}", self.prefix))
        }
    }

    /// A key's path relative to the prefix.
    fn rel(&self, key: &Key) -> String {
        let k = key.as_ref();
        if self.prefix.is_empty() {
            k.to_string()
        } else {
            k.strip_prefix(&self.prefix)
                .map(|s| s.trim_start_matches('/'))
                .unwrap_or(k)
                .to_string()
        }
    }

    fn marker(d: &Digest) -> String {
        format!("uses/{}/{}", d.algorithm().as_str(), d.hex())
    }

    async fn head(&self, rel: &str) -> StorageResult<Option<ObjectMeta>> {
        match self.store.head(&self.key(rel)).await {
            Ok(m) => Ok(Some(m)),
            Err(e) if is_not_found(&e) => Ok(None),
            Err(e) => Err(store_err(e)),
        }
    }

    async fn exists(&self, rel: &str) -> StorageResult<bool> {
        Ok(self.head(rel).await?.is_some())
    }

    /// An object's bytes and ETag.
    async fn get(&self, rel: &str) -> StorageResult<Option<(Bytes, Option<String>)>> {
        match self.store.get(&self.key(rel)).await {
            Ok(r) => {
                let etag = r.meta.e_tag.clone();
                Ok(Some((r.bytes().await.map_err(store_err)?, etag)))
            }
            Err(e) if is_not_found(&e) => Ok(None),
            Err(e) => Err(store_err(e)),
        }
    }

    async fn put(&self, rel: &str, bytes: impl Into<Bytes>) -> StorageResult<()> {
        let payload = PutPayload::from(bytes.into());
        self.store
            .put(&self.key(rel), payload)
            .await
            .map_err(store_err)?;
        Ok(())
    }

    /// A conditional write: create when `etag` is None, else replace that version. Plain
    /// overwrite when the server has no conditional writes. Ok(false) on a lost race.
    async fn put_if(&self, rel: &str, bytes: Vec<u8>, etag: Option<String>) -> StorageResult<bool> {
        let mode = match (self.conditional, etag) {
            (false, _) => PutMode::Overwrite,
            (true, None) => PutMode::Create,
            (true, Some(e_tag)) => PutMode::Update(UpdateVersion {
                e_tag: Some(e_tag),
                version: None,
            }),
        };
        let opts = PutOptions {
            mode,
            ..Default::default()
        };
        match self
            .store
            .put_opts(&self.key(rel), PutPayload::from(bytes), opts)
            .await
        {
            Ok(_) => Ok(true),
            Err(e) if is_conflict(&e) => Ok(false),
            Err(e) => Err(store_err(e)),
        }
    }

    /// Deletes an object; false when it did not exist.
    async fn delete(&self, rel: &str) -> StorageResult<bool> {
        if !self.exists(rel).await? {
            return Ok(false);
        }
        match self.store.delete(&self.key(rel)).await {
            Ok(()) => Ok(true),
            Err(e) if is_not_found(&e) => Ok(false),
            Err(e) => Err(store_err(e)),
        }
    }

    /// Every object under a directory (recursively).
    async fn list_all(&self, dir: &str) -> StorageResult<Vec<ObjectMeta>> {
        let prefix = self.key(dir);
        let mut out = Vec::new();
        let mut s = self.store.list(Some(&prefix));
        while let Some(m) = s.next().await {
            out.push(m.map_err(store_err)?);
        }
        Ok(out)
    }

    /// The direct children of a directory: (object names, subdirectory names), sorted.
    async fn list_dir(&self, dir: &str) -> StorageResult<(Vec<String>, Vec<String>)> {
        let r = self
            .store
            .list_with_delimiter(Some(&self.key(dir)))
            .await
            .map_err(store_err)?;
        let name = |k: &Key| k.filename().unwrap_or_default().to_string();
        let mut files: Vec<String> = r.objects.iter().map(|m| name(&m.location)).collect();
        let mut dirs: Vec<String> = r.common_prefixes.iter().map(name).collect();
        files.sort();
        dirs.sort();
        Ok((files, dirs))
    }

    /// Digests stored as `<dir>/<alg>/<hex>` with their metadata.
    async fn list_digests(&self, dir: &str) -> StorageResult<Vec<(Digest, ObjectMeta)>> {
        let mut out = Vec::new();
        for m in self.list_all(dir).await? {
            let rel = self.rel(&m.location);
            let mut parts = rel.rsplit('/');
            if let (Some(hex), Some(alg)) = (parts.next(), parts.next())
                && let Some(d) = layout::digest_from_parts(alg, hex)
            {
                out.push((d, m));
            }
        }
        Ok(out)
    }

    /// Marks a blob as just used: its GC clock restarts.
    async fn mark_used(&self, d: &Digest) -> StorageResult<()> {
        self.put(&Self::marker(d), Bytes::new()).await
    }

    async fn link(&self, repo: &str, d: &Digest) -> StorageResult<()> {
        let link = layout::link(repo, d);
        if !self.exists(&link).await? {
            self.put(&link, Bytes::new()).await?;
        }
        Ok(())
    }

    async fn read_state(
        &self,
        repo: &str,
        id: &str,
    ) -> StorageResult<Option<(SessionState, Option<String>)>> {
        let state = format!("{}/state", layout::upload(repo, id));
        let Some((raw, etag)) = self.get(&state).await? else {
            return Ok(None);
        };
        Ok(Some((SessionState::decode(&raw)?, etag)))
    }

    fn part_key(repo: &str, id: &str, name: &str) -> String {
        format!("{}/parts/{name}", layout::upload(repo, id))
    }

    /// Removes a session: its state first (from then on it is unknown), then its parts.
    async fn delete_session(&self, repo: &str, id: &str) -> StorageResult<()> {
        let dir = layout::upload(repo, id);
        self.delete(&format!("{dir}/state")).await?;
        for m in self.list_all(&dir).await? {
            match self.store.delete(&m.location).await {
                Ok(()) => {}
                Err(e) if is_not_found(&e) => {}
                Err(e) => return Err(store_err(e)),
            }
        }
        Ok(())
    }

    /// Streams a verified body into the blob key (or, when the blob already exists, only
    /// hashes it), then links it. `write` feeds the body.
    async fn store_blob<F>(&self, repo: &str, digest: &Digest, feed: F) -> StorageResult<u64>
    where
        F: AsyncFnOnce(Option<&mut ObjectWriter>, &mut Hasher) -> StorageResult<u64>,
    {
        let key = layout::blob(digest);
        // The marker first: a GC that sees it keeps an existing blob while we stream.
        self.mark_used(digest).await?;
        let mut writer = if self.exists(&key).await? {
            None
        } else {
            Some(ObjectWriter::new(self.store.clone(), self.key(&key)))
        };
        let mut hasher = digest.algorithm().hasher();
        let size = match feed(writer.as_mut(), &mut hasher).await {
            Ok(n) => n,
            Err(e) => {
                if let Some(w) = writer {
                    w.abort().await;
                }
                return Err(e);
            }
        };
        let actual = hasher.finish();
        if &actual != digest {
            if let Some(w) = writer {
                w.abort().await;
            }
            return Err(StorageError::DigestMismatch {
                expected: digest.clone(),
                actual,
            });
        }
        let _gc = self.gc_lock.read().await;
        match writer {
            Some(w) => w.finish().await.map_err(store_err)?,
            // It existed: make sure a GC did not free it meanwhile.
            None if !self.exists(&key).await? => {
                return Err(StorageError::Io(io::Error::other(format!(
                    "blob {digest} was collected during the upload; retry"
                ))));
            }
            None => {}
        }
        self.link(repo, digest).await?;
        Ok(size)
    }
}

impl Storage for S3Storage {
    fn blob_size<'a>(
        &'a self,
        repo: &'a str,
        digest: &'a Digest,
    ) -> BoxFuture<'a, StorageResult<Option<u64>>> {
        Box::pin(async move {
            if !self.exists(&layout::link(repo, digest)).await? {
                return Ok(None);
            }
            Ok(self.head(&layout::blob(digest)).await?.map(|m| m.size))
        })
    }

    fn read_blob<'a>(
        &'a self,
        repo: &'a str,
        digest: &'a Digest,
        range: Option<(u64, u64)>,
    ) -> BoxFuture<'a, StorageResult<Option<BlobRead>>> {
        Box::pin(async move {
            if !self.exists(&layout::link(repo, digest)).await? {
                return Ok(None);
            }
            let key = self.key(&layout::blob(digest));
            let range = match range {
                // S3 refuses an empty range: answer it from a HEAD.
                Some((start, end)) if start >= end => {
                    let Some(meta) = self.head(&layout::blob(digest)).await? else {
                        return Ok(None);
                    };
                    return Ok(Some(BlobRead {
                        size: meta.size,
                        stream: Box::pin(futures::stream::empty()),
                    }));
                }
                Some((start, end)) => Some(GetRange::Bounded(start..end)),
                None => None,
            };
            let opts = GetOptions {
                range,
                ..Default::default()
            };
            match self.store.get_opts(&key, opts).await {
                Ok(r) => {
                    let size = r.meta.size;
                    let stream = r.into_stream().map(|c| c.map_err(io::Error::other));
                    Ok(Some(BlobRead {
                        size,
                        stream: Box::pin(stream),
                    }))
                }
                Err(e) if is_not_found(&e) => Ok(None),
                Err(e) => Err(store_err(e)),
            }
        })
    }

    fn put_blob<'a>(
        &'a self,
        repo: &'a str,
        digest: &'a Digest,
        body: ByteStream,
        limit: u64,
    ) -> BoxFuture<'a, StorageResult<u64>> {
        Box::pin(async move {
            self.store_blob(repo, digest, async |w, h| {
                stream_in(body, w, Some(h), 0, limit).await
            })
            .await
        })
    }

    fn mount_blob<'a>(
        &'a self,
        repo: &'a str,
        digest: &'a Digest,
        from: Option<&'a str>,
    ) -> BoxFuture<'a, StorageResult<bool>> {
        Box::pin(async move {
            if let Some(from) = from
                && !self.exists(&layout::link(from, digest)).await?
            {
                return Ok(false);
            }
            let _gc = self.gc_lock.read().await;
            self.mark_used(digest).await?;
            if !self.exists(&layout::blob(digest)).await? {
                return Ok(false);
            }
            self.link(repo, digest).await?;
            Ok(true)
        })
    }

    fn unlink_blob<'a>(
        &'a self,
        repo: &'a str,
        digest: &'a Digest,
    ) -> BoxFuture<'a, StorageResult<bool>> {
        Box::pin(async move { self.delete(&layout::link(repo, digest)).await })
    }

    fn start_upload<'a>(&'a self, repo: &'a str) -> BoxFuture<'a, StorageResult<UploadStatus>> {
        Box::pin(async move {
            let id = random_id()?;
            let state = format!("{}/state", layout::upload(repo, &id));
            self.put(&state, SessionState::default().encode()).await?;
            Ok(UploadStatus { id, offset: 0 })
        })
    }

    fn upload_status<'a>(
        &'a self,
        repo: &'a str,
        id: &'a str,
    ) -> BoxFuture<'a, StorageResult<Option<UploadStatus>>> {
        Box::pin(async move {
            if !valid_upload_id(id) {
                return Ok(None);
            }
            Ok(self.read_state(repo, id).await?.map(|(s, _)| UploadStatus {
                id: id.to_string(),
                offset: s.offset,
            }))
        })
    }

    fn append_upload<'a>(
        &'a self,
        repo: &'a str,
        id: &'a str,
        start: Option<u64>,
        expected_len: Option<u64>,
        body: ByteStream,
        limit: u64,
    ) -> BoxFuture<'a, StorageResult<UploadStatus>> {
        Box::pin(async move {
            if !valid_upload_id(id) {
                return Err(StorageError::UploadUnknown(id.to_string()));
            }
            let lock = self.uploads.get(id);
            let _session = lock.lock().await;
            let Some((state, etag)) = self.read_state(repo, id).await? else {
                self.uploads.forget(id);
                return Err(StorageError::UploadUnknown(id.to_string()));
            };
            let offset = state.offset;
            if let Some(requested) = start
                && requested != offset
            {
                return Err(StorageError::RangeMismatch { offset, requested });
            }
            let name = part_name(offset, &random_id()?[..8]);
            let part = Self::part_key(repo, id, &name);
            let mut w = ObjectWriter::new(self.store.clone(), self.key(&part));
            let n = match stream_in(body, Some(&mut w), None, offset, limit).await {
                Ok(n) => n,
                Err(e) => {
                    w.abort().await;
                    return Err(e);
                }
            };
            if let Some(expected) = expected_len
                && n != expected
            {
                w.abort().await;
                return Err(StorageError::SizeMismatch {
                    expected,
                    received: n,
                });
            }
            let status = |offset| UploadStatus {
                id: id.to_string(),
                offset,
            };
            if n == 0 {
                w.abort().await;
                return Ok(status(offset));
            }
            w.finish().await.map_err(store_err)?;
            let next = state.with_part(name, n);
            let state_key = format!("{}/state", layout::upload(repo, id));
            if self.put_if(&state_key, next.encode(), etag).await? {
                return Ok(status(next.offset));
            }
            // Another replica moved the session (or ended it) meanwhile: our part is not
            // part of it.
            let _ = self.delete(&part).await;
            match self.read_state(repo, id).await? {
                Some((now, _)) => Err(StorageError::RangeMismatch {
                    offset: now.offset,
                    requested: offset,
                }),
                None => Err(StorageError::UploadUnknown(id.to_string())),
            }
        })
    }

    fn complete_upload<'a>(
        &'a self,
        repo: &'a str,
        id: &'a str,
        digest: &'a Digest,
    ) -> BoxFuture<'a, StorageResult<u64>> {
        Box::pin(async move {
            if !valid_upload_id(id) {
                return Err(StorageError::UploadUnknown(id.to_string()));
            }
            let lock = self.uploads.get(id);
            let _session = lock.lock().await;
            let Some((state, _)) = self.read_state(repo, id).await? else {
                self.uploads.forget(id);
                return Err(StorageError::UploadUnknown(id.to_string()));
            };
            let feed = async |mut w: Option<&mut ObjectWriter>, h: &mut Hasher| {
                let mut total = 0u64;
                for p in &state.parts {
                    let key = self.key(&Self::part_key(repo, id, &p.name));
                    let r = self.store.get(&key).await.map_err(store_err)?;
                    let mut s = r.into_stream();
                    let mut n = 0u64;
                    while let Some(c) = s.next().await {
                        let c = c.map_err(store_err)?;
                        n += c.len() as u64;
                        h.update(&c);
                        if let Some(w) = w.as_deref_mut() {
                            w.write(c).await.map_err(store_err)?;
                        }
                    }
                    if n != p.size {
                        return Err(StorageError::Io(io::Error::other(format!(
                            "upload {id}: part {} has {n} bytes, {} recorded",
                            p.name, p.size
                        ))));
                    }
                    total += n;
                }
                Ok(total)
            };
            let result = self.store_blob(repo, digest, feed).await;
            if matches!(result, Ok(_) | Err(StorageError::DigestMismatch { .. })) {
                // Done, or refused content: the session ends either way.
                self.delete_session(repo, id).await?;
                self.uploads.forget(id);
            }
            result
        })
    }

    fn cancel_upload<'a>(
        &'a self,
        repo: &'a str,
        id: &'a str,
    ) -> BoxFuture<'a, StorageResult<bool>> {
        Box::pin(async move {
            if !valid_upload_id(id) {
                return Ok(false);
            }
            let lock = self.uploads.get(id);
            let _session = lock.lock().await;
            let existed = self.read_state(repo, id).await?.is_some();
            if existed {
                self.delete_session(repo, id).await?;
            }
            self.uploads.forget(id);
            Ok(existed)
        })
    }

    fn get_manifest<'a>(
        &'a self,
        repo: &'a str,
        digest: &'a Digest,
    ) -> BoxFuture<'a, StorageResult<Option<StoredManifest>>> {
        Box::pin(async move {
            let Some((raw, _)) = self.get(&layout::manifest(repo, digest)).await? else {
                return Ok(None);
            };
            Ok(Some(layout::stored_manifest(digest.clone(), raw)?))
        })
    }

    fn put_manifest<'a>(
        &'a self,
        repo: &'a str,
        digest: &'a Digest,
        bytes: Bytes,
        record: ManifestRecord,
    ) -> BoxFuture<'a, StorageResult<()>> {
        Box::pin(async move {
            let _gc = self.gc_lock.read().await;
            for d in &record.blobs {
                self.mark_used(d).await?;
                if !self.exists(&layout::blob(d)).await? {
                    return Err(StorageError::BlobUnknown(d.clone()));
                }
            }
            // The referrer entry first: readers skip it until the manifest exists.
            if let Some((subject, desc)) = &record.subject {
                let json = serde_json::to_vec(desc).map_err(io::Error::other)?;
                self.put(&layout::referrer(repo, subject, digest), json)
                    .await?;
            }
            let key = layout::manifest(repo, digest);
            if self.exists(&key).await? {
                // Already stored: identical bytes, first push time kept.
                return Ok(());
            }
            let blobs = record.blobs.clone();
            let meta = ManifestMeta::new(record, bytes.len(), SystemTime::now());
            let raw = layout::encode_manifest(&meta, &bytes)?;
            if !self.put_if(&key, raw, None).await? {
                // Another replica stored it first (same bytes): keep its push time.
                return Ok(());
            }
            // Across replicas there is no GC lock: if a blob vanished meanwhile, withdraw.
            for d in &blobs {
                if !self.exists(&layout::blob(d)).await? {
                    self.delete(&key).await?;
                    return Err(StorageError::BlobUnknown(d.clone()));
                }
            }
            Ok(())
        })
    }

    fn delete_manifest<'a>(
        &'a self,
        repo: &'a str,
        digest: &'a Digest,
    ) -> BoxFuture<'a, StorageResult<bool>> {
        Box::pin(async move {
            let _tags = self.tag_lock.lock().await;
            let key = layout::manifest(repo, digest);
            let Some((raw, _)) = self.get(&key).await? else {
                return Ok(false);
            };
            let (meta, _) = layout::decode_manifest(raw)?;
            // Tags first, so no tag ever points at a missing manifest.
            for tag in self.list_tags(repo).await? {
                if self.resolve_tag(repo, &tag).await?.as_ref() == Some(digest) {
                    self.delete(&layout::tag(repo, &tag)).await?;
                }
            }
            if let Some(subject) = meta.subject {
                self.delete(&layout::referrer(repo, &subject, digest))
                    .await?;
            }
            self.delete(&key).await
        })
    }

    fn resolve_tag<'a>(
        &'a self,
        repo: &'a str,
        tag: &'a str,
    ) -> BoxFuture<'a, StorageResult<Option<Digest>>> {
        Box::pin(async move {
            let Some((raw, _)) = self.get(&layout::tag(repo, tag)).await? else {
                return Ok(None);
            };
            let s = String::from_utf8_lossy(&raw);
            Ok(Some(s.trim().parse().map_err(io::Error::other)?))
        })
    }

    fn put_tag<'a>(
        &'a self,
        repo: &'a str,
        tag: &'a str,
        digest: &'a Digest,
        overwrite: bool,
    ) -> BoxFuture<'a, StorageResult<TagWrite>> {
        Box::pin(async move {
            let _tags = self.tag_lock.lock().await;
            let key = layout::tag(repo, tag);
            for _ in 0..CONDITIONAL_ATTEMPTS {
                let (current, etag) = match self.get(&key).await? {
                    Some((raw, etag)) => {
                        let s = String::from_utf8_lossy(&raw);
                        let d: Digest = s.trim().parse().map_err(io::Error::other)?;
                        (Some(d), etag)
                    }
                    None => (None, None),
                };
                let outcome = match layout::plan_tag(current.as_ref(), digest, overwrite) {
                    layout::TagPlan::Done(outcome) => return Ok(outcome),
                    layout::TagPlan::Write(outcome) => outcome,
                };
                if !self.exists(&layout::manifest(repo, digest)).await? {
                    return Err(StorageError::Io(io::Error::other(
                        "tag target manifest is not stored",
                    )));
                }
                if self
                    .put_if(&key, digest.to_string().into_bytes(), etag)
                    .await?
                {
                    return Ok(outcome);
                }
                // Another replica wrote the tag meanwhile: decide again on its value.
            }
            Err(StorageError::Io(io::Error::other(format!(
                "tag {tag} kept changing under concurrent writes"
            ))))
        })
    }

    fn delete_tag<'a>(&'a self, repo: &'a str, tag: &'a str) -> BoxFuture<'a, StorageResult<bool>> {
        Box::pin(async move {
            let _tags = self.tag_lock.lock().await;
            self.delete(&layout::tag(repo, tag)).await
        })
    }

    fn list_tags<'a>(&'a self, repo: &'a str) -> BoxFuture<'a, StorageResult<Vec<String>>> {
        Box::pin(async move { Ok(self.list_dir(&layout::tags(repo)).await?.0) })
    }

    fn referrers<'a>(
        &'a self,
        repo: &'a str,
        subject: &'a Digest,
    ) -> BoxFuture<'a, StorageResult<Vec<Descriptor>>> {
        Box::pin(async move {
            let dir = layout::referrers(repo, subject);
            let mut out = Vec::new();
            for name in self.list_dir(&dir).await?.0 {
                let Some(d) = layout::parse_referrer_name(&name) else {
                    continue;
                };
                // Entries are written before their manifest: only count stored ones.
                if !self.exists(&layout::manifest(repo, &d)).await? {
                    continue;
                }
                let Some((raw, _)) = self.get(&format!("{dir}/{name}")).await? else {
                    continue;
                };
                if let Ok(desc) = serde_json::from_slice::<Descriptor>(&raw) {
                    out.push(desc);
                }
            }
            Ok(out)
        })
    }

    fn list_repositories(&self) -> BoxFuture<'_, StorageResult<Vec<String>>> {
        Box::pin(async move {
            // Walk the "directories": one that holds a `_` child is a repository, and may
            // hold nested ones too (`a` and `a/b` are both valid).
            let mut out = Vec::new();
            let mut todo = vec![String::new()];
            while let Some(name) = todo.pop() {
                let dir = if name.is_empty() {
                    layout::REPOSITORIES.to_string()
                } else {
                    layout::repo(&name)
                };
                for child in self.list_dir(&dir).await?.1 {
                    if layout::is_repository_marker(&child) {
                        if !name.is_empty() && out.last() != Some(&name) {
                            out.push(name.clone());
                        }
                    } else if name.is_empty() {
                        todo.push(child);
                    } else {
                        todo.push(format!("{name}/{child}"));
                    }
                }
            }
            out.sort();
            out.dedup();
            Ok(out)
        })
    }

    fn list_images<'a>(&'a self, repo: &'a str) -> BoxFuture<'a, StorageResult<Vec<ImageInfo>>> {
        Box::pin(async move {
            let mut tags = Vec::new();
            for tag in self.list_tags(repo).await? {
                if let Some(d) = self.resolve_tag(repo, &tag).await? {
                    tags.push((tag, d));
                }
            }
            let mut manifests = Vec::new();
            for (d, _) in self.list_digests(&layout::manifests(repo)).await? {
                if let Some((raw, _)) = self.get(&layout::manifest(repo, &d)).await? {
                    manifests.push((d, layout::decode_manifest(raw)?.0));
                }
            }
            Ok(layout::images(manifests, &tags))
        })
    }

    /// The filesystem backend's collector, with last-modified times as the clock and the
    /// `uses/` markers as the "touch" (see the module documentation for the cross-replica
    /// window).
    fn delete_unreferenced_blobs(&self, grace: Duration) -> BoxFuture<'_, StorageResult<GcReport>> {
        Box::pin(async move {
            let cutoff = SystemTime::now().checked_sub(grace).unwrap_or(UNIX_EPOCH);
            let old = |m: &ObjectMeta| system_time(m) < cutoff;
            let mut report = GcReport::default();

            // 1. Candidates: the blob and its marker both older than the grace period.
            let markers: HashMap<Digest, ObjectMeta> =
                self.list_digests("uses").await?.into_iter().collect();
            let blobs = self.list_all(layout::BLOBS).await?;
            let mut candidates = Vec::new();
            let mut present = HashSet::new();
            for m in blobs {
                let Some(hex) = m.location.filename() else {
                    continue;
                };
                let rel = self.rel(&m.location);
                let Some(alg) = rel.split('/').nth(1) else {
                    continue;
                };
                let Some(d) = layout::digest_from_parts(alg, hex) else {
                    continue;
                };
                present.insert(d.clone());
                if old(&m) && markers.get(&d).is_none_or(old) {
                    candidates.push(d);
                } else {
                    report.blobs_kept_fresh += 1;
                }
            }

            // 2. Mark, after the listing.
            let repos = self.list_repositories().await?;
            let mut marked = HashSet::new();
            let mut links = Vec::new();
            for r in &repos {
                for (d, _) in self.list_digests(&layout::manifests(r)).await? {
                    if let Some((raw, _)) = self.get(&layout::manifest(r, &d)).await? {
                        marked.extend(layout::decode_manifest(raw)?.0.blobs);
                    }
                }
                for (d, _) in self.list_digests(&layout::links(r)).await? {
                    links.push((r.clone(), d));
                }
            }

            // 3. Sweep, re-checking both clocks right before each delete.
            let mut deleted = HashSet::new();
            for d in candidates {
                if marked.contains(&d) {
                    report.blobs_kept_referenced += 1;
                    continue;
                }
                let _gc = self.gc_lock.write().await;
                let key = layout::blob(&d);
                let marker = self.head(&Self::marker(&d)).await?;
                let blob = self.head(&key).await?;
                match blob {
                    Some(b) if old(&b) && marker.as_ref().is_none_or(old) => {
                        self.delete(&key).await?;
                        self.delete(&Self::marker(&d)).await?;
                        report.blobs_deleted += 1;
                        report.bytes_freed += b.size;
                        deleted.insert(d);
                    }
                    _ => report.blobs_kept_fresh += 1,
                }
            }
            for (repo, d) in links {
                if deleted.contains(&d) {
                    self.delete(&layout::link(&repo, &d)).await?;
                }
            }
            // Markers of blobs that never completed (or were freed elsewhere).
            for (d, m) in markers {
                if !present.contains(&d) && old(&m) && self.delete(&Self::marker(&d)).await? {
                    report.temp_files_deleted += 1;
                }
            }

            // 4. Upload sessions idle longer than the grace period (state and parts old).
            for r in &repos {
                for id in self.list_dir(&layout::uploads(r)).await?.1 {
                    let objects = self.list_all(&layout::upload(r, &id)).await?;
                    if objects.is_empty() || !objects.iter().all(old) {
                        continue;
                    }
                    // A session whose lock is held here has a chunk streaming in.
                    let lock = self.uploads.get(&id);
                    let Ok(_session) = lock.try_lock() else {
                        continue;
                    };
                    self.delete_session(r, &id).await?;
                    report.uploads_expired += 1;
                    drop(_session);
                    self.uploads.forget(&id);
                }
            }
            Ok(report)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use object_store::memory::InMemory;

    fn body(chunks: Vec<&'static [u8]>) -> ByteStream {
        Box::pin(futures::stream::iter(
            chunks.into_iter().map(|c| Ok(Bytes::from_static(c))),
        ))
    }

    async fn read_all(r: BlobRead) -> Vec<u8> {
        let mut out = Vec::new();
        let mut s = r.stream;
        while let Some(c) = s.next().await {
            out.extend_from_slice(&c.unwrap());
        }
        out
    }

    fn storage() -> (Arc<InMemory>, S3Storage) {
        let mem = Arc::new(InMemory::new());
        let s = S3Storage::new(mem.clone(), "/reg/istry/", true);
        (mem, s)
    }

    #[test]
    fn s3_urls() {
        assert_eq!(
            S3Config::parse_url("s3://my-bucket/a//b/").unwrap(),
            ("my-bucket".to_string(), "a/b".to_string())
        );
        assert_eq!(
            S3Config::parse_url("s3://my-bucket").unwrap(),
            ("my-bucket".to_string(), String::new())
        );
        for bad in [
            "my-bucket",
            "s3://",
            "s3://UPPER/x",
            "http://b/x",
            "s3://ab",
        ] {
            assert!(S3Config::parse_url(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn session_state_encoding() {
        let s = SessionState::default()
            .with_part(part_name(0, "ab12cd34"), 5)
            .with_part(part_name(5, "0011aabb"), 7);
        assert_eq!(s.offset, 12);
        assert_eq!(s.parts[1].name, "00000000000000000005-0011aabb");
        assert_eq!(SessionState::decode(&s.encode()).unwrap(), s);
        // Parts that do not add up to the offset, or names that could escape `parts/`.
        let mut bad = s.clone();
        bad.offset = 13;
        assert!(SessionState::decode(&bad.encode()).is_err());
        let mut bad = s.clone();
        bad.parts[0].name = "../../x".into();
        assert!(SessionState::decode(&bad.encode()).is_err());
        assert!(SessionState::decode(b"{").is_err());
    }

    #[test]
    fn keys_live_under_the_prefix() {
        let (_, s) = storage();
        let d = Digest::sha256(b"x");
        let k = s.key(&layout::blob(&d));
        assert_eq!(k.as_ref(), format!("reg/istry/{}", layout::blob(&d)));
        assert_eq!(s.rel(&k), layout::blob(&d));
        let bare = S3Storage::new(Arc::new(InMemory::new()), "", true);
        assert_eq!(bare.key("blobs/x").as_ref(), "blobs/x");
    }

    #[tokio::test]
    async fn blob_round_trip_ranges_and_digest_mismatch() {
        let (mem, s) = storage();
        let content = b"hello, object storage";
        let d = Digest::sha256(content);
        assert_eq!(
            s.put_blob("r", &d, body(vec![&content[..5], &content[5..]]), 1 << 20)
                .await
                .unwrap(),
            content.len() as u64
        );
        assert_eq!(
            s.blob_size("r", &d).await.unwrap(),
            Some(content.len() as u64)
        );
        assert_eq!(s.blob_size("other", &d).await.unwrap(), None);
        let r = s.read_blob("r", &d, Some((7, 13))).await.unwrap().unwrap();
        assert_eq!(r.size, content.len() as u64);
        assert_eq!(read_all(r).await, b"object");

        // Wrong content under a digest: refused, nothing stored under that key.
        let wrong = Digest::sha256(b"other");
        let e = s.put_blob("r", &wrong, body(vec![b"nope"]), 1 << 20).await;
        assert!(matches!(e, Err(StorageError::DigestMismatch { .. })));
        assert!(mem.head(&s.key(&layout::blob(&wrong))).await.is_err());
        assert_eq!(s.blob_size("r", &wrong).await.unwrap(), None);
    }

    #[tokio::test]
    async fn large_blob_goes_multipart_and_verifies() {
        let (_, s) = storage();
        // Three parts' worth, in uneven chunks.
        let content: Vec<u8> = (0..(PART_SIZE * 2 + 12345))
            .map(|i| (i % 251) as u8)
            .collect();
        let d = Digest::sha256(&content);
        let chunks: Vec<io::Result<Bytes>> = content
            .chunks(1_000_003)
            .map(|c| Ok(Bytes::copy_from_slice(c)))
            .collect();
        let n = s
            .put_blob("r", &d, Box::pin(futures::stream::iter(chunks)), u64::MAX)
            .await
            .unwrap();
        assert_eq!(n, content.len() as u64);
        let r = s.read_blob("r", &d, None).await.unwrap().unwrap();
        assert_eq!(read_all(r).await, content);
    }

    /// Two replicas on one bucket: the session started on one continues on the other.
    #[tokio::test]
    async fn upload_session_spans_replicas() {
        let mem = Arc::new(InMemory::new());
        let a = S3Storage::new(mem.clone(), "p", true);
        let b = S3Storage::new(mem.clone(), "p", true);
        let st = a.start_upload("r").await.unwrap();
        a.append_upload("r", &st.id, Some(0), Some(3), body(vec![b"abc"]), 100)
            .await
            .unwrap();
        assert_eq!(
            b.upload_status("r", &st.id).await.unwrap().unwrap().offset,
            3
        );
        // Out of order on the other replica: refused, nothing changes.
        let e = b
            .append_upload("r", &st.id, Some(1), None, body(vec![b"x"]), 100)
            .await;
        assert!(matches!(
            e,
            Err(StorageError::RangeMismatch { offset: 3, .. })
        ));
        // A short body: refused, the session stays at 3.
        let e = b
            .append_upload("r", &st.id, Some(3), Some(5), body(vec![b"de"]), 100)
            .await;
        assert!(matches!(e, Err(StorageError::SizeMismatch { .. })));
        b.append_upload("r", &st.id, Some(3), None, body(vec![b"def"]), 100)
            .await
            .unwrap();
        let d = Digest::sha256(b"abcdef");
        assert_eq!(a.complete_upload("r", &st.id, &d).await.unwrap(), 6);
        let r = b.read_blob("r", &d, None).await.unwrap().unwrap();
        assert_eq!(read_all(r).await, b"abcdef");
        // The session is gone everywhere, parts included.
        assert!(b.upload_status("r", &st.id).await.unwrap().is_none());
        assert!(
            a.list_all(&layout::upload("r", &st.id))
                .await
                .unwrap()
                .is_empty()
        );
    }

    #[tokio::test]
    async fn a_stale_session_state_loses_the_race() {
        let mem = Arc::new(InMemory::new());
        let a = S3Storage::new(mem.clone(), "", true);
        let st = a.start_upload("r").await.unwrap();
        let (_, stale) = a.read_state("r", &st.id).await.unwrap().unwrap();
        a.append_upload("r", &st.id, None, None, body(vec![b"ab"]), 100)
            .await
            .unwrap();
        // A replica that read the state before that append cannot overwrite it.
        let key = format!("{}/state", layout::upload("r", &st.id));
        let next = SessionState::default().with_part(part_name(0, "ff"), 1);
        assert!(!a.put_if(&key, next.encode(), stale).await.unwrap());
        assert_eq!(
            a.upload_status("r", &st.id).await.unwrap().unwrap().offset,
            2
        );
    }

    #[tokio::test]
    async fn complete_with_the_wrong_digest_discards_the_session() {
        let (_, s) = storage();
        let st = s.start_upload("r").await.unwrap();
        s.append_upload("r", &st.id, None, None, body(vec![b"abc"]), 100)
            .await
            .unwrap();
        let wrong = Digest::sha256(b"xyz");
        let e = s.complete_upload("r", &st.id, &wrong).await;
        assert!(matches!(e, Err(StorageError::DigestMismatch { .. })));
        assert!(s.upload_status("r", &st.id).await.unwrap().is_none());
        assert!(s.head(&layout::blob(&wrong)).await.unwrap().is_none());
    }

    async fn manifest(s: &S3Storage, repo: &str, blob: &Digest, salt: &str) -> Digest {
        let bytes = Bytes::from(format!("{{\"salt\":\"{salt}\"}}"));
        let d = Digest::sha256(&bytes);
        let record = ManifestRecord {
            media_type: "application/vnd.oci.image.manifest.v1+json".into(),
            blobs: vec![blob.clone()],
            ..Default::default()
        };
        s.put_manifest(repo, &d, bytes, record).await.unwrap();
        d
    }

    #[tokio::test]
    async fn tags_manifests_listings_and_gc() {
        let mem = Arc::new(InMemory::new());
        let a = S3Storage::new(mem.clone(), "x", true);
        let b = S3Storage::new(mem.clone(), "x", true);
        let layer = Digest::sha256(b"layer");
        a.put_blob("team/app", &layer, body(vec![b"layer"]), 100)
            .await
            .unwrap();
        let m1 = manifest(&a, "team/app", &layer, "1").await;
        let m2 = manifest(&a, "team/app", &layer, "2").await;
        assert_eq!(
            a.put_tag("team/app", "v1", &m1, false).await.unwrap(),
            TagWrite::Created
        );
        // Immutable from the other replica: refused, nothing moves.
        assert_eq!(
            b.put_tag("team/app", "v1", &m2, false).await.unwrap(),
            TagWrite::Conflict(m1.clone())
        );
        assert_eq!(
            b.put_tag("team/app", "v1", &m2, true).await.unwrap(),
            TagWrite::Moved(m1.clone())
        );
        assert_eq!(
            a.resolve_tag("team/app", "v1").await.unwrap(),
            Some(m2.clone())
        );
        // A tag to a manifest that is not stored is refused.
        assert!(a.put_tag("team/app", "v2", &layer, true).await.is_err());
        assert_eq!(a.list_tags("team/app").await.unwrap(), vec!["v1"]);
        assert_eq!(b.list_repositories().await.unwrap(), vec!["team/app"]);
        let images = b.list_images("team/app").await.unwrap();
        assert_eq!(images.len(), 2);
        assert_eq!(
            images.iter().find(|i| i.digest == m2).unwrap().tags,
            vec!["v1"]
        );

        // Deleting the manifest removes its tag; the blob is referenced by m1 still.
        assert!(a.delete_manifest("team/app", &m2).await.unwrap());
        assert_eq!(a.resolve_tag("team/app", "v1").await.unwrap(), None);
        let orphan = Digest::sha256(b"orphan");
        a.put_blob("team/app", &orphan, body(vec![b"orphan"]), 100)
            .await
            .unwrap();
        // Within the grace period nothing goes.
        let r = b
            .delete_unreferenced_blobs(Duration::from_secs(3600))
            .await
            .unwrap();
        assert_eq!(r.blobs_deleted, 0);
        assert_eq!(r.blobs_kept_fresh, 2);
        // With no grace, only the unreferenced blob goes (and its link with it).
        tokio::time::sleep(Duration::from_millis(5)).await;
        let r = b.delete_unreferenced_blobs(Duration::ZERO).await.unwrap();
        assert_eq!((r.blobs_deleted, r.blobs_kept_referenced), (1, 1));
        assert_eq!(a.blob_size("team/app", &orphan).await.unwrap(), None);
        assert_eq!(a.blob_size("team/app", &layer).await.unwrap(), Some(5));
        // A manifest referencing the freed blob is refused.
        let bytes = Bytes::from_static(b"{}");
        let record = ManifestRecord {
            blobs: vec![orphan.clone()],
            ..Default::default()
        };
        let e = a
            .put_manifest("team/app", &Digest::sha256(&bytes), bytes, record)
            .await;
        assert!(matches!(e, Err(StorageError::BlobUnknown(_))));
    }

    /// Replicas racing to create one immutable tag with different manifests: the conditional
    /// create lets exactly one win, every other sees the winner as a conflict.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn racing_replicas_cannot_both_set_an_immutable_tag() {
        use object_store::throttle::{ThrottleConfig, ThrottledStore};
        // Each request takes a while, as over a network: the races are real.
        let config = ThrottleConfig {
            wait_get_per_call: Duration::from_millis(3),
            wait_put_per_call: Duration::from_millis(3),
            ..Default::default()
        };
        let store: Arc<dyn ObjectStore> = Arc::new(ThrottledStore::new(InMemory::new(), config));
        let replicas: Vec<Arc<S3Storage>> = (0..4)
            .map(|_| Arc::new(S3Storage::new(store.clone(), "", true)))
            .collect();
        let layer = Digest::sha256(b"l");
        replicas[0]
            .put_blob("r", &layer, body(vec![b"l"]), 10)
            .await
            .unwrap();
        let mut digests = Vec::new();
        for i in 0..8 {
            digests.push(manifest(&replicas[0], "r", &layer, &i.to_string()).await);
        }
        let tasks: Vec<_> = digests
            .iter()
            .enumerate()
            .map(|(i, d)| {
                let (s, d) = (replicas[i % replicas.len()].clone(), d.clone());
                tokio::spawn(async move { s.put_tag("r", "release", &d, false).await.unwrap() })
            })
            .collect();
        let mut outcomes = Vec::new();
        for t in tasks {
            outcomes.push(t.await.unwrap());
        }
        let created: Vec<_> = outcomes
            .iter()
            .enumerate()
            .filter(|(_, o)| **o == TagWrite::Created)
            .collect();
        assert_eq!(created.len(), 1, "{outcomes:?}");
        let winner = digests[created[0].0].clone();
        for o in &outcomes {
            assert!(
                *o == TagWrite::Created || *o == TagWrite::Conflict(winner.clone()),
                "{outcomes:?}"
            );
        }
        let tag = replicas[3].resolve_tag("r", "release").await.unwrap();
        assert_eq!(tag, Some(winner));
    }

    #[tokio::test]
    async fn gc_expires_idle_sessions() {
        let (_, s) = storage();
        let st = s.start_upload("r").await.unwrap();
        s.append_upload("r", &st.id, None, None, body(vec![b"abc"]), 100)
            .await
            .unwrap();
        let r = s
            .delete_unreferenced_blobs(Duration::from_secs(3600))
            .await
            .unwrap();
        assert_eq!(r.uploads_expired, 0);
        tokio::time::sleep(Duration::from_millis(5)).await;
        let r = s.delete_unreferenced_blobs(Duration::ZERO).await.unwrap();
        assert_eq!(r.uploads_expired, 1);
        assert!(s.upload_status("r", &st.id).await.unwrap().is_none());
    }
}
