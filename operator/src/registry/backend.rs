//! What a storage medium offers the registry: the primitives of an object store over the
//! `/`-separated keys of `layout`, and nothing the registry decides. Digests, links, upload
//! sessions, tags, referrers and the GC are `store`'s, written once against this trait.
//!
//! A backend keeps its medium's promises: a `put` is all-or-nothing and durable when it
//! returns; a staged write is invisible until `commit` makes it visible at once, and leaves
//! nothing when aborted or dropped; `put_if` is atomic against other conditional writes.

use std::future::Future;
use std::io;
use std::time::SystemTime;

use bytes::Bytes;

use super::storage::BlobRead;

/// What `head` and `list` report of an object.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ObjectInfo {
    pub size: u64,
    /// The GC's clock: when the object was written, or last touched.
    pub modified: SystemTime,
}

/// A small object read whole, with the version a conditional write names.
#[derive(Clone, Debug)]
pub struct Versioned {
    pub bytes: Bytes,
    /// None when the medium reported none (then only a create can be conditional).
    pub version: Option<String>,
}

/// The direct children of a key prefix, each sorted: object names and "directory" names.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Listing {
    pub objects: Vec<String>,
    pub dirs: Vec<String>,
}

/// An object being written in pieces. Dropping it uncommitted aborts it.
pub trait StagedWrite: Send {
    fn write(&mut self, chunk: Bytes) -> impl Future<Output = io::Result<()>> + Send;
    /// Makes the whole object visible at its key, durably.
    fn commit(self) -> impl Future<Output = io::Result<()>> + Send;
    /// Discards what was written.
    fn abort(self) -> impl Future<Output = ()> + Send;
}

/// A storage medium. Keys are relative (`blobs/...`, `repositories/...`); "not found" is
/// `None` or `false`, never an error.
pub trait Backend: Send + Sync + 'static {
    type Writer: StagedWrite;

    /// Whether `touch` works: a file's modification time can be set, an S3 object's cannot
    /// (the store then records use in `uses/` marker objects).
    const CAN_TOUCH: bool;

    /// Whether `rename` works: in place on a filesystem; S3 could only copy (through the
    /// server, and at most 5 GiB at once), so the store copies itself there.
    const CAN_RENAME: bool;

    /// Whether this process is the medium's only writer (a filesystem root is owned by one
    /// registry process; an S3 bucket is shared by replicas): then the store indexes all it
    /// reads in memory (`index`), else only blob facts, for a bounded time.
    const SOLE_WRITER: bool;

    fn head(&self, key: &str) -> impl Future<Output = io::Result<Option<ObjectInfo>>> + Send;

    /// Streams `range` (start inclusive, end exclusive; None = all) of an object, with the
    /// object's total size. The range lies within the object (the caller checked).
    fn get(
        &self,
        key: &str,
        range: Option<(u64, u64)>,
    ) -> impl Future<Output = io::Result<Option<BlobRead>>> + Send;

    /// A small object whole, with its version.
    fn read(&self, key: &str) -> impl Future<Output = io::Result<Option<Versioned>>> + Send;

    /// Writes a small object whole, replacing any.
    fn put(&self, key: &str, bytes: Bytes) -> impl Future<Output = io::Result<()>> + Send;

    /// A conditional `put`: with `version` None only if the key is absent, else only if the
    /// object still has that version. False, writing nothing, when the condition fails.
    fn put_if(
        &self,
        key: &str,
        bytes: Bytes,
        version: Option<&str>,
    ) -> impl Future<Output = io::Result<bool>> + Send;

    /// False when there was nothing to delete.
    fn delete(&self, key: &str) -> impl Future<Output = io::Result<bool>> + Send;

    /// Deletes every object under `prefix`.
    fn delete_all(&self, prefix: &str) -> impl Future<Output = io::Result<()>> + Send;

    /// Every object under `prefix`, at any depth: its full key and info.
    fn list(
        &self,
        prefix: &str,
    ) -> impl Future<Output = io::Result<Vec<(String, ObjectInfo)>>> + Send;

    /// The direct children of `prefix`.
    fn list_dir(&self, prefix: &str) -> impl Future<Output = io::Result<Listing>> + Send;

    /// Starts a staged write of `key`.
    fn begin(&self, key: &str) -> impl Future<Output = io::Result<Self::Writer>> + Send;

    /// Sets an object's modification time to now. False when it does not exist. Only called
    /// when `CAN_TOUCH`.
    fn touch(&self, key: &str) -> impl Future<Output = io::Result<bool>> + Send;

    /// Moves an object to another key at once, replacing any. Only called when `CAN_RENAME`.
    fn rename(&self, from: &str, to: &str) -> impl Future<Output = io::Result<()>> + Send;

    /// Removes leftovers of staged writes older than `cutoff` (a killed process's); returns
    /// how many.
    fn sweep_staging(&self, cutoff: SystemTime) -> impl Future<Output = io::Result<u64>> + Send;
}
