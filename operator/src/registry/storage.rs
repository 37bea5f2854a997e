//! The storage API the HTTP handlers and the Repository controller use: an object-safe trait,
//! so that the medium is chosen at run time (`Arc<dyn Storage>`). `store::Store` implements
//! it, once, over a filesystem or S3 `backend`.
//!
//! The model is the distribution spec's: blobs are content-addressed and shared; a repository
//! *links* the blobs pushed to (or mounted into) it; manifests are stored per repository by
//! digest; tags map to manifest digests; referrers are indexed by subject at push time. Every
//! operation that accepts content verifies its digest while the bytes stream and makes it
//! visible only once it is durable.

use std::collections::BTreeMap;
use std::io;
use std::pin::Pin;
use std::time::{Duration, SystemTime};

use bytes::Bytes;
use futures::Stream;
use futures::future::BoxFuture;

use super::digest::Digest;
use super::manifest::{Descriptor, ParsedManifest};

/// Bytes arriving from a client.
pub type ByteStream = Pin<Box<dyn Stream<Item = io::Result<Bytes>> + Send>>;

/// A blob being read: its total size and a stream of the requested range.
pub struct BlobRead {
    pub size: u64,
    pub stream: ByteStream,
}

/// A stored manifest.
#[derive(Clone, Debug)]
pub struct StoredManifest {
    pub digest: Digest,
    pub media_type: String,
    pub bytes: Bytes,
    pub pushed_at: SystemTime,
}

/// What `put_manifest` stores beside the bytes: what listings and the GC need without
/// parsing the manifest again.
#[derive(Clone, Debug, Default)]
pub struct ManifestRecord {
    pub media_type: String,
    /// Blobs it references (config, distributable layers): the GC's mark set.
    pub blobs: Vec<Digest>,
    /// Manifests it lists (an index).
    pub children: Vec<Digest>,
    /// The subject and this manifest's referrer descriptor, when it has a subject.
    pub subject: Option<(Digest, Descriptor)>,
    pub artifact_type: Option<String>,
    /// Config plus layers (image) or the listed manifests (index).
    pub content_size: u64,
}

impl ManifestRecord {
    /// The record of a parsed manifest stored as `digest` (`len` bytes).
    pub fn of(parsed: &ParsedManifest, digest: &Digest, len: usize) -> ManifestRecord {
        ManifestRecord {
            media_type: parsed.media_type.clone(),
            blobs: parsed.blobs.clone(),
            children: parsed.children.clone(),
            subject: parsed
                .subject
                .clone()
                .map(|s| (s, parsed.referrer_descriptor(digest.clone(), len as u64))),
            artifact_type: parsed.artifact_type.clone(),
            content_size: parsed.content_size,
        }
    }
}

/// One image (manifest) of a repository, for Repository status and lifecycle policies.
#[derive(Clone, Debug, PartialEq)]
pub struct ImageInfo {
    pub digest: Digest,
    pub media_type: String,
    pub artifact_type: Option<String>,
    /// Sorted.
    pub tags: Vec<String>,
    /// Manifest bytes.
    pub manifest_size: u64,
    /// Config + layers, or listed manifests.
    pub content_size: u64,
    pub pushed_at: SystemTime,
    /// ECR's lastRecordedPullTime: the last pull recorded (see `pulls`), if any.
    pub last_pulled_at: Option<SystemTime>,
    /// Set when the manifest refers to another (a signature, SBOM...).
    pub subject: Option<Digest>,
}

/// The state of an upload session.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct UploadStatus {
    pub id: String,
    /// Bytes received and durable.
    pub offset: u64,
}

/// The outcome of a conditional tag write.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum TagWrite {
    Created,
    /// The tag already pointed at this digest.
    Unchanged,
    /// The tag moved from the given digest.
    Moved(Digest),
    /// The tag points at another digest and overwriting was not allowed; nothing changed.
    Conflict(Digest),
}

/// What the garbage collector did.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct GcReport {
    pub blobs_deleted: u64,
    pub bytes_freed: u64,
    pub blobs_kept_referenced: u64,
    pub blobs_kept_fresh: u64,
    pub temp_files_deleted: u64,
    pub uploads_expired: u64,
}

#[derive(Debug, thiserror::Error)]
pub enum StorageError {
    #[error("content does not match digest {expected} (computed {actual})")]
    DigestMismatch { expected: Digest, actual: Digest },
    #[error("upload {0} is unknown")]
    UploadUnknown(String),
    /// A chunk did not start where the upload is.
    #[error("chunk starts at {requested}, the upload is at {offset}")]
    RangeMismatch { offset: u64, requested: u64 },
    #[error("content exceeds the limit of {limit} bytes")]
    TooLarge { limit: u64 },
    #[error("the request body ended with {received} bytes, {expected} were announced")]
    SizeMismatch { expected: u64, received: u64 },
    #[error("blob {0} is unknown")]
    BlobUnknown(Digest),
    /// A tag's target manifest is not stored (deleted meanwhile).
    #[error("manifest {0} is unknown")]
    ManifestUnknown(Digest),
    #[error("the client stream failed: {0}")]
    Client(io::Error),
    #[error("storage I/O: {0}")]
    Io(#[from] io::Error),
}

pub type StorageResult<T> = Result<T, StorageError>;

/// The registry's storage. Object-safe (futures are boxed) so a backend is chosen at run
/// time: `Arc<dyn Storage>`.
pub trait Storage: Send + Sync + 'static {
    // --- blobs -------------------------------------------------------------------------

    /// The size of `digest` if the repository links it (and its content exists).
    fn blob_size<'a>(
        &'a self,
        repo: &'a str,
        digest: &'a Digest,
    ) -> BoxFuture<'a, StorageResult<Option<u64>>>;

    /// Reads `range` (inclusive start, exclusive end; None = all) of a blob the repository
    /// links. None when unknown. The caller validates the range against `blob_size` first.
    fn read_blob<'a>(
        &'a self,
        repo: &'a str,
        digest: &'a Digest,
        range: Option<(u64, u64)>,
    ) -> BoxFuture<'a, StorageResult<Option<BlobRead>>>;

    /// Streams a whole blob in (monolithic upload): verified against `digest`, made durable
    /// and linked into `repo`. Nothing is visible on error. Returns the size.
    fn put_blob<'a>(
        &'a self,
        repo: &'a str,
        digest: &'a Digest,
        body: ByteStream,
        limit: u64,
    ) -> BoxFuture<'a, StorageResult<u64>>;

    /// Links a blob that `from` links into `repo` too (cross-repository mount; the caller
    /// checked that `from` is readable). Returns false if not mounted.
    fn mount_blob<'a>(
        &'a self,
        repo: &'a str,
        digest: &'a Digest,
        from: &'a str,
    ) -> BoxFuture<'a, StorageResult<bool>>;

    /// Unlinks a blob from `repo` (the content stays for other repositories until the GC).
    /// False when the repository did not link it.
    fn unlink_blob<'a>(
        &'a self,
        repo: &'a str,
        digest: &'a Digest,
    ) -> BoxFuture<'a, StorageResult<bool>>;

    // --- upload sessions -----------------------------------------------------------------

    fn start_upload<'a>(&'a self, repo: &'a str) -> BoxFuture<'a, StorageResult<UploadStatus>>;

    /// None when the session is unknown (never started, finished or cancelled).
    fn upload_status<'a>(
        &'a self,
        repo: &'a str,
        id: &'a str,
    ) -> BoxFuture<'a, StorageResult<Option<UploadStatus>>>;

    /// Appends a chunk. `start`, when the client said where the chunk goes, must equal the
    /// current offset (else `RangeMismatch`, nothing written); `expected_len` is the announced
    /// length. On any failure the session stays at its previous offset. `limit` caps the
    /// session's total size.
    fn append_upload<'a>(
        &'a self,
        repo: &'a str,
        id: &'a str,
        start: Option<u64>,
        expected_len: Option<u64>,
        body: ByteStream,
        limit: u64,
    ) -> BoxFuture<'a, StorageResult<UploadStatus>>;

    /// Verifies the session's content against `digest`, makes it a durable blob linked into
    /// `repo` and ends the session. On a digest mismatch the session is discarded.
    fn complete_upload<'a>(
        &'a self,
        repo: &'a str,
        id: &'a str,
        digest: &'a Digest,
    ) -> BoxFuture<'a, StorageResult<u64>>;

    /// Ends a session and discards its data. False when unknown.
    fn cancel_upload<'a>(
        &'a self,
        repo: &'a str,
        id: &'a str,
    ) -> BoxFuture<'a, StorageResult<bool>>;

    // --- manifests and tags ----------------------------------------------------------------

    fn get_manifest<'a>(
        &'a self,
        repo: &'a str,
        digest: &'a Digest,
    ) -> BoxFuture<'a, StorageResult<Option<StoredManifest>>>;

    /// Stores a manifest (already validated, its references checked) durably. A manifest
    /// already stored keeps its first `pushed_at`. Before writing, the referenced blobs are
    /// marked as in use so that a concurrent GC cannot free them (see `delete_unreferenced_blobs`);
    /// if one has vanished meanwhile, `BlobUnknown` and nothing is stored.
    fn put_manifest<'a>(
        &'a self,
        repo: &'a str,
        digest: &'a Digest,
        bytes: Bytes,
        record: ManifestRecord,
    ) -> BoxFuture<'a, StorageResult<()>>;

    /// Deletes a manifest, every tag that points at it and its referrer entry. False when
    /// unknown.
    fn delete_manifest<'a>(
        &'a self,
        repo: &'a str,
        digest: &'a Digest,
    ) -> BoxFuture<'a, StorageResult<bool>>;

    fn resolve_tag<'a>(
        &'a self,
        repo: &'a str,
        tag: &'a str,
    ) -> BoxFuture<'a, StorageResult<Option<Digest>>>;

    /// Points `tag` at `digest` (ManifestUnknown unless its manifest is stored). With
    /// `overwrite` false, a tag pointing elsewhere is left alone and `Conflict` returned: the
    /// check and the write are atomic, so two racing pushes cannot both move an immutable tag.
    fn put_tag<'a>(
        &'a self,
        repo: &'a str,
        tag: &'a str,
        digest: &'a Digest,
        overwrite: bool,
    ) -> BoxFuture<'a, StorageResult<TagWrite>>;

    /// Removes a tag (not the manifest). False when unknown.
    fn delete_tag<'a>(&'a self, repo: &'a str, tag: &'a str) -> BoxFuture<'a, StorageResult<bool>>;

    /// Tags of the repository, sorted lexically.
    fn list_tags<'a>(&'a self, repo: &'a str) -> BoxFuture<'a, StorageResult<Vec<String>>>;

    /// Descriptors of the manifests in `repo` whose subject is `subject`.
    fn referrers<'a>(
        &'a self,
        repo: &'a str,
        subject: &'a Digest,
    ) -> BoxFuture<'a, StorageResult<Vec<Descriptor>>>;

    // --- listings and maintenance ---------------------------------------------------------

    /// Repositories holding anything, sorted.
    fn list_repositories(&self) -> BoxFuture<'_, StorageResult<Vec<String>>>;

    /// Records when manifests of `repo` were last pulled (a batch coalesced by `pulls`), for
    /// those still stored. Returns how many were written.
    fn record_pulls<'a>(
        &'a self,
        repo: &'a str,
        pulls: &'a [(Digest, SystemTime)],
    ) -> BoxFuture<'a, StorageResult<usize>>;

    /// The replication records of the repository's images (opaque JSON bytes, see
    /// `ecr::replication`), by digest.
    fn replication_records<'a>(
        &'a self,
        repo: &'a str,
    ) -> BoxFuture<'a, StorageResult<Vec<(Digest, Bytes)>>>;

    /// The replication record of one image.
    fn replication_record<'a>(
        &'a self,
        repo: &'a str,
        digest: &'a Digest,
    ) -> BoxFuture<'a, StorageResult<Option<Bytes>>>;

    /// Replaces the replication record of an image; None deletes it.
    fn put_replication_record<'a>(
        &'a self,
        repo: &'a str,
        digest: &'a Digest,
        record: Option<Bytes>,
    ) -> BoxFuture<'a, StorageResult<()>>;

    /// Every manifest of the repository with its tags, sizes, push and pull times, newest
    /// first.
    fn list_images<'a>(&'a self, repo: &'a str) -> BoxFuture<'a, StorageResult<Vec<ImageInfo>>>;

    /// Frees blobs that no manifest of any repository references and whose content is older
    /// than `grace`; also removes leftover temporary files and upload sessions idle longer than
    /// `grace`. Safe to run while the registry serves pushes.
    fn delete_unreferenced_blobs(&self, grace: Duration) -> BoxFuture<'_, StorageResult<GcReport>>;
}

/// The tags of each digest, from a tag -> digest listing.
pub fn tags_by_digest(tags: &[(String, Digest)]) -> BTreeMap<Digest, Vec<String>> {
    let mut m: BTreeMap<Digest, Vec<String>> = BTreeMap::new();
    for (t, d) in tags {
        m.entry(d.clone()).or_default().push(t.clone());
    }
    for v in m.values_mut() {
        v.sort();
    }
    m
}
