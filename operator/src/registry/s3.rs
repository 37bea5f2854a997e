//! The S3-compatible object storage backend: several stateless registry replicas serve one
//! bucket. Keys follow the layout (`layout`) under a prefix.
//!
//! What the medium gives the store (`store`):
//! - Objects are written whole, by a single PUT or a completed multipart upload, so a staged
//!   write is invisible until committed, and aborted (never completed) otherwise. Memory stays
//!   flat: bodies stream in 5 MiB parts, at most two in flight.
//! - Conditional writes (`If-None-Match: *`, `If-Match` on the ETag) make `put_if` atomic
//!   across replicas. A server without them (`conditional_writes: false`) gets plain
//!   overwrites: the store's checks are then atomic only within one replica.
//! - Modification times cannot be set (`CAN_TOUCH` is false): the store keeps `uses/` markers.
//! - Multipart uploads abandoned by a killed process are invisible and never become objects;
//!   a bucket lifecycle rule (AbortIncompleteMultipartUpload) reclaims their space.

use std::io;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use futures::StreamExt;
use object_store::path::Path as Key;
use object_store::{
    GetOptions, GetRange, ObjectMeta, ObjectStore, ObjectStoreExt, PutMode, PutOptions, PutPayload,
    UpdateVersion, WriteMultipart,
};

use super::backend::{Backend, Listing, ObjectInfo, StagedWrite, Versioned};
use super::layout;
use super::storage::{BlobRead, StorageResult};
use super::store::Store;

/// Part size of multipart uploads: S3's minimum (every part but the last).
const PART_SIZE: usize = 5 * 1024 * 1024;
/// Parts uploading at once per upload: memory per upload stays under ~3 parts.
const PARTS_IN_FLIGHT: usize = 2;

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

/// The registry on an S3 bucket.
pub type S3Storage = Store<S3Backend>;

impl Store<S3Backend> {
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
        Store::with_backend(S3Backend {
            store,
            prefix: normalize_prefix(prefix),
            conditional,
        })
    }

    /// One listing request: fails on a missing bucket, a wrong endpoint or bad credentials.
    pub async fn check(&self) -> StorageResult<()> {
        self.backend().list_dir(layout::REPOSITORIES).await?;
        Ok(())
    }
}

pub struct S3Backend {
    store: Arc<dyn ObjectStore>,
    prefix: String,
    conditional: bool,
}

fn store_err(e: object_store::Error) -> io::Error {
    io::Error::other(e)
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
/// Nothing is visible before `commit`; dropping it uncommitted aborts the multipart upload.
pub struct ObjectWriter {
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

    async fn put(&mut self, chunk: Bytes) -> object_store::Result<()> {
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

    async fn finish(&mut self) -> object_store::Result<()> {
        match self.multipart.take() {
            Some(m) => m.finish().await.map(|_| ()),
            None => {
                let payload: PutPayload = std::mem::take(&mut self.buffered).into_iter().collect();
                self.store.put(&self.key, payload).await.map(|_| ())
            }
        }
    }
}

impl StagedWrite for ObjectWriter {
    async fn write(&mut self, chunk: Bytes) -> io::Result<()> {
        self.put(chunk).await.map_err(store_err)
    }

    async fn commit(mut self) -> io::Result<()> {
        self.finish().await.map_err(store_err)
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

impl S3Backend {
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

    async fn meta(&self, key: &str) -> io::Result<Option<ObjectMeta>> {
        match self.store.head(&self.key(key)).await {
            Ok(m) => Ok(Some(m)),
            Err(e) if is_not_found(&e) => Ok(None),
            Err(e) => Err(store_err(e)),
        }
    }
}

fn info(meta: &ObjectMeta) -> ObjectInfo {
    ObjectInfo {
        size: meta.size,
        modified: system_time(meta),
    }
}

impl Backend for S3Backend {
    type Writer = ObjectWriter;
    const CAN_TOUCH: bool = false;
    const CAN_RENAME: bool = false;
    const SOLE_WRITER: bool = false;

    async fn head(&self, key: &str) -> io::Result<Option<ObjectInfo>> {
        Ok(self.meta(key).await?.as_ref().map(info))
    }

    /// A ranged GET.
    async fn get(&self, key: &str, range: Option<(u64, u64)>) -> io::Result<Option<BlobRead>> {
        let range = match range {
            // S3 refuses an empty range: answer it from a HEAD.
            Some((start, end)) if start >= end => {
                return Ok(self.meta(key).await?.map(|m| BlobRead {
                    size: m.size,
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
        match self.store.get_opts(&self.key(key), opts).await {
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
    }

    async fn read(&self, key: &str) -> io::Result<Option<Versioned>> {
        match self.store.get(&self.key(key)).await {
            Ok(r) => {
                let version = r.meta.e_tag.clone();
                let bytes = r.bytes().await.map_err(store_err)?;
                Ok(Some(Versioned { bytes, version }))
            }
            Err(e) if is_not_found(&e) => Ok(None),
            Err(e) => Err(store_err(e)),
        }
    }

    async fn put(&self, key: &str, bytes: Bytes) -> io::Result<()> {
        let payload = PutPayload::from(bytes);
        self.store
            .put(&self.key(key), payload)
            .await
            .map_err(store_err)?;
        Ok(())
    }

    /// `If-None-Match: *` or `If-Match: <etag>`; a plain overwrite when the server has no
    /// conditional writes.
    async fn put_if(&self, key: &str, bytes: Bytes, version: Option<&str>) -> io::Result<bool> {
        let mode = match (self.conditional, version) {
            (false, _) => PutMode::Overwrite,
            (true, None) => PutMode::Create,
            (true, Some(e_tag)) => PutMode::Update(UpdateVersion {
                e_tag: Some(e_tag.to_string()),
                version: None,
            }),
        };
        let opts = PutOptions {
            mode,
            ..Default::default()
        };
        match self
            .store
            .put_opts(&self.key(key), PutPayload::from(bytes), opts)
            .await
        {
            Ok(_) => Ok(true),
            Err(e) if is_conflict(&e) => Ok(false),
            Err(e) => Err(store_err(e)),
        }
    }

    /// A HEAD first: S3 answers a DELETE of nothing as a success.
    async fn delete(&self, key: &str) -> io::Result<bool> {
        if self.meta(key).await?.is_none() {
            return Ok(false);
        }
        match self.store.delete(&self.key(key)).await {
            Ok(()) => Ok(true),
            Err(e) if is_not_found(&e) => Ok(false),
            Err(e) => Err(store_err(e)),
        }
    }

    async fn delete_all(&self, prefix: &str) -> io::Result<()> {
        let mut s = self.store.list(Some(&self.key(prefix)));
        while let Some(m) = s.next().await {
            match self.store.delete(&m.map_err(store_err)?.location).await {
                Err(e) if !is_not_found(&e) => return Err(store_err(e)),
                _ => {}
            }
        }
        Ok(())
    }

    async fn list(&self, prefix: &str) -> io::Result<Vec<(String, ObjectInfo)>> {
        let mut out = Vec::new();
        let mut s = self.store.list(Some(&self.key(prefix)));
        while let Some(m) = s.next().await {
            let m = m.map_err(store_err)?;
            out.push((self.rel(&m.location), info(&m)));
        }
        Ok(out)
    }

    /// One delimited listing: objects and common prefixes.
    async fn list_dir(&self, prefix: &str) -> io::Result<Listing> {
        let r = self
            .store
            .list_with_delimiter(Some(&self.key(prefix)))
            .await
            .map_err(store_err)?;
        let name = |k: &Key| k.filename().unwrap_or_default().to_string();
        let mut objects: Vec<String> = r.objects.iter().map(|m| name(&m.location)).collect();
        let mut dirs: Vec<String> = r.common_prefixes.iter().map(name).collect();
        objects.sort();
        dirs.sort();
        Ok(Listing { objects, dirs })
    }

    async fn begin(&self, key: &str) -> io::Result<ObjectWriter> {
        Ok(ObjectWriter::new(self.store.clone(), self.key(key)))
    }

    async fn touch(&self, _key: &str) -> io::Result<bool> {
        Err(io::Error::other("S3 objects cannot be touched"))
    }

    async fn rename(&self, _from: &str, _to: &str) -> io::Result<()> {
        Err(io::Error::other("S3 objects are copied, not renamed"))
    }

    /// Nothing: abandoned multipart uploads are the bucket lifecycle rule's.
    async fn sweep_staging(&self, _cutoff: SystemTime) -> io::Result<u64> {
        Ok(0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use object_store::memory::InMemory;

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
    fn keys_live_under_the_prefix() {
        let s = S3Storage::new(Arc::new(InMemory::new()), "/reg/istry/", true);
        let d = super::super::digest::Digest::sha256(b"x");
        let k = s.backend().key(&layout::blob(&d));
        assert_eq!(k.as_ref(), format!("reg/istry/{}", layout::blob(&d)));
        assert_eq!(s.backend().rel(&k), layout::blob(&d));
        let bare = S3Storage::new(Arc::new(InMemory::new()), "", true);
        assert_eq!(bare.backend().key("blobs/x").as_ref(), "blobs/x");
    }
}
