//! The filesystem backend (the embedded default, on a PVC in the chart): a key is a path under
//! the root, and `tmp/` holds files being written (on the same filesystem as every
//! destination).
//!
//! Durability ("storage that never lies"): every write goes to a temporary file, is fsynced,
//! renamed into place, and the directory fsynced (as is each directory created on the way), so
//! a kill at any moment leaves the old object or the new one, never part of one. Removals are
//! fsynced too. One process owns a root: temporary files found at open are a killed process's
//! and are removed, and a lock of this process makes conditional writes atomic.
//!
//! Each of those durable steps first calls `crashpoint::step`, a test hook that can kill the
//! process there (see `crashpoint`).

use std::fs::{self, File};
use std::io::{self, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::SystemTime;

use bytes::Bytes;

use super::backend::{Backend, Listing, ObjectInfo, StagedWrite, Versioned};
use super::crashpoint;
use super::digest::Digest;
use super::file_chunks::FileChunks;
use super::layout::{self, random_id};
use super::storage::BlobRead;
use super::store::Store;

/// The registry on a filesystem.
pub type FsStorage = Store<FsBackend>;

impl Store<FsBackend> {
    /// Opens (creating) a store at `root` and removes temporary files a killed process left.
    pub fn open(root: impl Into<PathBuf>) -> io::Result<FsStorage> {
        Ok(Store::with_backend(FsBackend::open(root)?))
    }

    pub fn root(&self) -> &Path {
        &self.backend().root
    }
}

pub struct FsBackend {
    root: PathBuf,
    /// Held by a conditional write from its check to its rename.
    conditional: Arc<Mutex<()>>,
}

/// Runs blocking filesystem work off the async threads.
async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> io::Result<T> + Send + 'static,
) -> io::Result<T> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| io::Error::other(e.to_string()))?
}

fn not_found_is_none<T>(r: io::Result<T>) -> io::Result<Option<T>> {
    match r {
        Ok(v) => Ok(Some(v)),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e),
    }
}

fn info(md: &fs::Metadata) -> ObjectInfo {
    ObjectInfo {
        size: md.len(),
        // Never unsupported on the platforms served; if it were, the object looks fresh.
        modified: md.modified().unwrap_or_else(|_| SystemTime::now()),
    }
}

/// What `put_if` compares: the content's hash (these objects are small).
fn version_of(bytes: &[u8]) -> String {
    Digest::sha256(bytes).hex().to_string()
}

fn fsync_dir(dir: &Path) -> io::Result<()> {
    let d = File::open(dir)?;
    crashpoint::step("fsync-dir", dir);
    d.sync_all()
}

/// Creates `dir` and missing ancestors, fsyncing each parent whose entries changed.
fn ensure_dir(dir: &Path) -> io::Result<()> {
    if dir.is_dir() {
        return Ok(());
    }
    if let Some(parent) = dir.parent() {
        ensure_dir(parent)?;
    }
    crashpoint::step("mkdir", dir);
    match fs::create_dir(dir) {
        Ok(()) => {
            if let Some(parent) = dir.parent() {
                fsync_dir(parent)?;
            }
            Ok(())
        }
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => Ok(()),
        Err(e) => Err(e),
    }
}

/// Renames a durable file into place and makes the rename durable.
fn commit(tmp: &Path, dest: &Path) -> io::Result<()> {
    let dir = dest.parent().expect("destination has a parent");
    ensure_dir(dir)?;
    crashpoint::step("rename", dest);
    fs::rename(tmp, dest)?;
    fsync_dir(dir)
}

/// Writes `bytes` durably to `dest` through the temporary file `tmp`.
fn write_atomic(tmp: &Path, dest: &Path, bytes: &[u8]) -> io::Result<()> {
    let res = (|| {
        let mut f = File::create(tmp)?;
        f.write_all(bytes)?;
        crashpoint::step("fsync", dest);
        f.sync_all()?;
        commit(tmp, dest)
    })();
    if res.is_err() {
        let _ = fs::remove_file(tmp);
    }
    res
}

/// Removes a file and makes the removal durable. False when it did not exist.
fn remove_durably(path: &Path) -> io::Result<bool> {
    crashpoint::step("unlink", path);
    if not_found_is_none(fs::remove_file(path))?.is_none() {
        return Ok(false);
    }
    if let Some(dir) = path.parent() {
        fsync_dir(dir)?;
    }
    Ok(true)
}

/// The entries of `dir` (sorted), none when it does not exist.
fn entries(dir: &Path) -> io::Result<Vec<(String, fs::Metadata)>> {
    let Some(rd) = not_found_is_none(fs::read_dir(dir))? else {
        return Ok(Vec::new());
    };
    let mut out = Vec::new();
    for e in rd {
        let e = e?;
        let Ok(name) = e.file_name().into_string() else {
            continue;
        };
        if let Some(md) = not_found_is_none(e.metadata())? {
            out.push((name, md));
        }
    }
    out.sort_by(|a, b| a.0.cmp(&b.0));
    Ok(out)
}

/// Every file below `dir` (whose key is `key`), recursively.
fn walk(dir: &Path, key: &str, out: &mut Vec<(String, ObjectInfo)>) -> io::Result<()> {
    for (name, md) in entries(dir)? {
        let child = format!("{key}/{name}");
        if md.is_dir() {
            walk(&dir.join(&name), &child, out)?;
        } else if md.is_file() {
            out.push((child, info(&md)));
        }
    }
    Ok(())
}

impl FsBackend {
    /// Opens (creating) a root, relative to the working directory unless absolute; an error
    /// names the root.
    pub fn open(root: impl Into<PathBuf>) -> io::Result<FsBackend> {
        let root = root.into();
        let named = |e: io::Error| {
            io::Error::new(
                e.kind(),
                format!("storage directory {}: {e}", root.display()),
            )
        };
        let root = std::path::absolute(&root).map_err(named)?;
        for d in [layout::BLOBS, layout::REPOSITORIES, "tmp"] {
            ensure_dir(&root.join(d)).map_err(named)?;
        }
        for (name, _) in entries(&root.join("tmp")).map_err(named)? {
            let _ = fs::remove_file(root.join("tmp").join(name));
        }
        Ok(FsBackend {
            root,
            conditional: Arc::new(Mutex::new(())),
        })
    }

    fn path(&self, key: &str) -> PathBuf {
        self.root.join(key)
    }

    /// A fresh temporary path.
    fn tmp(&self) -> io::Result<PathBuf> {
        Ok(self.root.join("tmp").join(random_id()?))
    }
}

impl Backend for FsBackend {
    type Writer = FsWriter;
    const CAN_TOUCH: bool = true;
    const CAN_RENAME: bool = true;
    const SOLE_WRITER: bool = true;

    async fn head(&self, key: &str) -> io::Result<Option<ObjectInfo>> {
        let md = not_found_is_none(tokio::fs::metadata(self.path(key)).await)?;
        Ok(md.filter(|m| m.is_file()).map(|m| info(&m)))
    }

    /// Served by seeking: a range costs no more than its bytes. Opening, sizing, seeking and
    /// the first chunk are one trip to the blocking pool (see `FileChunks`).
    async fn get(&self, key: &str, range: Option<(u64, u64)>) -> io::Result<Option<BlobRead>> {
        let path = self.path(key);
        let opened = blocking(move || {
            let Some(mut f) = not_found_is_none(File::open(&path))? else {
                return Ok(None);
            };
            let size = f.metadata()?.len();
            let (start, end) = range.unwrap_or((0, size));
            if start > 0 {
                f.seek(SeekFrom::Start(start))?;
            }
            Ok(Some((f, size, end.min(size).saturating_sub(start))))
        });
        let Some((file, size, len)) = opened.await? else {
            return Ok(None);
        };
        Ok(Some(BlobRead {
            size,
            stream: Box::pin(FileChunks::start(file, len)),
        }))
    }

    async fn read(&self, key: &str) -> io::Result<Option<Versioned>> {
        let raw = not_found_is_none(tokio::fs::read(self.path(key)).await)?;
        Ok(raw.map(|raw| Versioned {
            version: Some(version_of(&raw)),
            bytes: Bytes::from(raw),
        }))
    }

    async fn put(&self, key: &str, bytes: Bytes) -> io::Result<()> {
        let (tmp, dest) = (self.tmp()?, self.path(key));
        blocking(move || write_atomic(&tmp, &dest, &bytes)).await
    }

    async fn put_if(&self, key: &str, bytes: Bytes, version: Option<&str>) -> io::Result<bool> {
        let (tmp, dest) = (self.tmp()?, self.path(key));
        let (lock, expected) = (self.conditional.clone(), version.map(str::to_string));
        blocking(move || {
            let _held = lock.lock().expect("conditional write lock");
            let current = not_found_is_none(fs::read(&dest))?.map(|c| version_of(&c));
            if current != expected {
                return Ok(false);
            }
            write_atomic(&tmp, &dest, &bytes)?;
            Ok(true)
        })
        .await
    }

    async fn delete(&self, key: &str) -> io::Result<bool> {
        let path = self.path(key);
        blocking(move || remove_durably(&path)).await
    }

    async fn delete_all(&self, prefix: &str) -> io::Result<()> {
        let dir = self.path(prefix);
        blocking(move || {
            crashpoint::step("rmdir", &dir);
            if not_found_is_none(fs::remove_dir_all(&dir))?.is_some()
                && let Some(parent) = dir.parent()
            {
                fsync_dir(parent)?;
            }
            Ok(())
        })
        .await
    }

    async fn list(&self, prefix: &str) -> io::Result<Vec<(String, ObjectInfo)>> {
        let (dir, key) = (self.path(prefix), prefix.to_string());
        blocking(move || {
            let mut out = Vec::new();
            walk(&dir, &key, &mut out)?;
            Ok(out)
        })
        .await
    }

    async fn list_dir(&self, prefix: &str) -> io::Result<Listing> {
        let dir = self.path(prefix);
        blocking(move || {
            let mut out = Listing::default();
            for (name, md) in entries(&dir)? {
                if md.is_dir() {
                    out.dirs.push(name);
                } else if md.is_file() {
                    out.objects.push(name);
                }
            }
            Ok(out)
        })
        .await
    }

    async fn begin(&self, key: &str) -> io::Result<FsWriter> {
        let tmp = self.tmp()?;
        let file = blocking({
            let tmp = tmp.clone();
            move || File::create(tmp)
        })
        .await?;
        Ok(FsWriter {
            file: Some(file),
            pending: None,
            batch: Vec::new(),
            batched: 0,
            tmp,
            dest: self.path(key),
        })
    }

    async fn touch(&self, key: &str) -> io::Result<bool> {
        let path = self.path(key);
        blocking(move || {
            let Some(f) = not_found_is_none(File::options().write(true).open(&path))? else {
                return Ok(false);
            };
            f.set_modified(SystemTime::now())?;
            Ok(true)
        })
        .await
    }

    async fn rename(&self, from: &str, to: &str) -> io::Result<()> {
        let (from, to) = (self.path(from), self.path(to));
        blocking(move || commit(&from, &to)).await
    }

    async fn sweep_staging(&self, cutoff: SystemTime) -> io::Result<u64> {
        let tmp = self.root.join("tmp");
        blocking(move || {
            let mut n = 0;
            for (name, md) in entries(&tmp)? {
                if info(&md).modified < cutoff && fs::remove_file(tmp.join(name)).is_ok() {
                    n += 1;
                }
            }
            Ok(n)
        })
        .await
    }
}

/// Bytes gathered before one write: a blocking-pool round trip per client chunk (hyper's are
/// often 16-64 KiB) would cost more than the copy.
const WRITE_BATCH: usize = 1024 * 1024;

/// A file being written in `tmp/`, renamed to its key on commit. Dropped uncommitted (the
/// request gone mid-body, say), it removes its file.
///
/// Writes go to the blocking pool a batch at a time while the caller goes on (hashing the
/// next chunks, reading the socket): a write waits only for the previous one, so hashing and
/// writing overlap.
pub struct FsWriter {
    /// The file, here between writes; `None` while a write has it.
    file: Option<File>,
    pending: Option<tokio::task::JoinHandle<(File, io::Result<()>)>>,
    batch: Vec<Bytes>,
    batched: usize,
    tmp: PathBuf,
    dest: PathBuf,
}

impl FsWriter {
    /// Waits for the write in flight, taking the file back.
    async fn settle(&mut self) -> io::Result<()> {
        if let Some(write) = self.pending.take() {
            let (file, written) = write.await.map_err(|e| io::Error::other(e.to_string()))?;
            self.file = Some(file);
            written?;
        }
        Ok(())
    }

    /// Sends the batch to the blocking pool, once the previous write is done.
    async fn send_batch(&mut self) -> io::Result<()> {
        self.settle().await?;
        if self.batch.is_empty() {
            return Ok(());
        }
        let file = (self.file.take()).ok_or_else(|| io::Error::other("an earlier write failed"))?;
        let batch = std::mem::take(&mut self.batch);
        self.batched = 0;
        self.pending = Some(tokio::task::spawn_blocking(move || {
            let written = batch.iter().try_for_each(|b| (&file).write_all(b));
            (file, written)
        }));
        Ok(())
    }
}

impl StagedWrite for FsWriter {
    async fn write(&mut self, chunk: Bytes) -> io::Result<()> {
        self.batched += chunk.len();
        self.batch.push(chunk);
        if self.batched >= WRITE_BATCH {
            self.send_batch().await?;
        }
        Ok(())
    }

    async fn commit(mut self) -> io::Result<()> {
        self.send_batch().await?;
        self.settle().await?;
        let file = (self.file.take()).ok_or_else(|| io::Error::other("an earlier write failed"))?;
        let (tmp, dest) = (self.tmp.clone(), self.dest.clone());
        blocking(move || {
            crashpoint::step("fsync", &dest);
            file.sync_all()?;
            drop(file);
            commit(&tmp, &dest)
        })
        .await
    }

    async fn abort(self) {}
}

impl Drop for FsWriter {
    fn drop(&mut self) {
        // A no-op once committed: the file was renamed. A write still in flight writes to
        // the unlinked file and ends.
        let _ = fs::remove_file(&self.tmp);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A relative root (`--storage-dir store`) opens, relative to the working directory.
    #[test]
    fn a_relative_root_opens() {
        let rel = format!("kubecs-test-store-{}", random_id().unwrap());
        let opened = FsBackend::open(&rel);
        let cleanup = fs::remove_dir_all(&rel);
        let b = opened.unwrap();
        assert!(b.root.is_absolute(), "{}", b.root.display());
        cleanup.unwrap();
    }

    #[test]
    fn an_unusable_root_is_named_in_the_error() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("a-file");
        fs::write(&file, b"").unwrap();
        let e = FsBackend::open(file.join("store"))
            .err()
            .expect("not a directory");
        assert!(e.to_string().contains(&file.display().to_string()), "{e}");
    }
}
