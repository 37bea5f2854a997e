//! The filesystem storage backend (the embedded default, on a PVC in the chart).
//!
//! Layout under the root: the shared one (`layout`), with an upload session as
//! `repositories/<name>/_uploads/<id>/{data,offset}` (its data and durable offset) and `tmp/`
//! for files being written.
//!
//! Durability ("storage that never lies"): content is written to a temporary file (in `tmp/`
//! or the session directory, on the same filesystem), fsynced, renamed into place, and the
//! directory fsynced. A tag is written only once its manifest is durable and removed before
//! its manifest, so a kill at any moment leaves no partial blob and no tag pointing at nothing.
//! A referrer entry is written before its manifest and ignored while the manifest is missing.
//! An upload's `offset` file is rewritten (atomically) only after the data up to it is
//! fsynced; bytes beyond it are unacknowledged and cut off when the session resumes.

use std::collections::{BTreeSet, HashSet};
use std::fs::{self, File};
use std::io::{self, BufRead, BufReader, Read, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use futures::StreamExt;
use futures::future::BoxFuture;
use tokio::io::{AsyncSeekExt, AsyncWriteExt};

use super::digest::{Algorithm, Digest, Hasher};
use super::layout::{self, ManifestMeta, random_id, valid_upload_id};
use super::manifest::Descriptor;
use super::storage::*;

const READ_BUF: usize = 256 * 1024;

/// The filesystem backend. One process owns a root: temporary files found at open are
/// leftovers of a killed process and are removed.
pub struct FsStorage {
    paths: Paths,
    /// Running hashes of upload sessions (so completing one does not re-read the data), and a
    /// lock per session serialising its chunks. Lost on restart: then the hash is recomputed
    /// from the session's data file.
    uploads: layout::SessionLocks<Option<RunningHash>>,
    /// Makes "check a tag, then write it" atomic (immutable tags) and orders tag removal
    /// before manifest removal.
    tag_lock: tokio::sync::Mutex<()>,
    /// Readers: operations that (re)use blobs (a manifest push checking its references, a blob
    /// put or mount). Writer: the GC deleting one blob. See `delete_unreferenced_blobs`.
    gc_lock: tokio::sync::RwLock<()>,
}

#[derive(Clone)]
struct RunningHash {
    offset: u64,
    hasher: Hasher,
}

fn io_other(e: impl std::fmt::Display) -> io::Error {
    io::Error::other(e.to_string())
}

/// Runs blocking filesystem work off the async threads.
async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> io::Result<T> + Send + 'static,
) -> io::Result<T> {
    tokio::task::spawn_blocking(f).await.map_err(io_other)?
}

/// `blocking` for work that reports storage errors.
async fn blocking_storage<T: Send + 'static>(
    f: impl FnOnce() -> StorageResult<T> + Send + 'static,
) -> StorageResult<T> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| StorageError::Io(io_other(e)))?
}

fn not_found_is_none<T>(r: io::Result<T>) -> io::Result<Option<T>> {
    match r {
        Ok(v) => Ok(Some(v)),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e),
    }
}

/// Removes a temporary file when dropped, whatever happened (a no-op once it was renamed).
struct RemoveOnDrop(PathBuf);

impl Drop for RemoveOnDrop {
    fn drop(&mut self) {
        let _ = fs::remove_file(&self.0);
    }
}

fn fsync_dir(dir: &Path) -> io::Result<()> {
    File::open(dir)?.sync_all()
}

/// Creates `dir` and missing ancestors, fsyncing each parent whose entries changed.
fn ensure_dir(dir: &Path) -> io::Result<()> {
    if dir.is_dir() {
        return Ok(());
    }
    if let Some(parent) = dir.parent() {
        ensure_dir(parent)?;
    }
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

/// Renames a durable temporary file into place and makes the rename durable.
fn commit(tmp: &Path, dest: &Path) -> io::Result<()> {
    let dir = dest.parent().expect("destination has a parent");
    ensure_dir(dir)?;
    fs::rename(tmp, dest)?;
    fsync_dir(dir)
}

/// Removes a file and makes the removal durable. False when it did not exist.
fn remove_durably(path: &Path) -> io::Result<bool> {
    match fs::remove_file(path) {
        Ok(()) => {
            if let Some(dir) = path.parent() {
                fsync_dir(dir)?;
            }
            Ok(true)
        }
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(false),
        Err(e) => Err(e),
    }
}

/// Marks a blob as just used (its modification time is the GC's grace clock). False when the
/// blob does not exist.
fn touch(path: &Path) -> io::Result<bool> {
    match File::options().write(true).open(path) {
        Ok(f) => {
            f.set_modified(SystemTime::now())?;
            Ok(true)
        }
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(false),
        Err(e) => Err(e),
    }
}

/// Hashes the first `len` bytes of a file.
fn hash_file(path: &Path, algorithm: Algorithm, len: u64) -> io::Result<Digest> {
    let mut f = File::open(path)?.take(len);
    let mut h = algorithm.hasher();
    let mut buf = vec![0u8; READ_BUF];
    loop {
        let n = f.read(&mut buf)?;
        if n == 0 {
            break;
        }
        h.update(&buf[..n]);
    }
    Ok(h.finish())
}

/// Reads the metadata line of a manifest file.
fn read_meta(path: &Path) -> io::Result<Option<ManifestMeta>> {
    let Some(f) = not_found_is_none(File::open(path))? else {
        return Ok(None);
    };
    let mut line = Vec::new();
    BufReader::new(f)
        .take(super::manifest::MAX_MANIFEST_BYTES as u64 * 2)
        .read_until(b'\n', &mut line)?;
    serde_json::from_slice(&line).map(Some).map_err(io_other)
}

/// Subdirectories of `dir` (sorted), empty when it does not exist.
fn list_dir(dir: &Path) -> io::Result<Vec<(String, fs::Metadata)>> {
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

/// Digests stored as `<dir>/<alg>/<hex>`.
fn list_digests(dir: &Path) -> io::Result<Vec<(Digest, fs::Metadata)>> {
    let mut out = Vec::new();
    for (alg, md) in list_dir(dir)? {
        if !md.is_dir() {
            continue;
        }
        for (hex, md) in list_dir(&dir.join(&alg))? {
            if let Some(d) = layout::digest_from_parts(&alg, &hex) {
                out.push((d, md));
            }
        }
    }
    Ok(out)
}

impl FsStorage {
    /// Opens (creating) a store at `root` and removes temporary files a killed process left.
    pub fn open(root: impl Into<PathBuf>) -> io::Result<FsStorage> {
        let root = root.into();
        for d in ["blobs", "repositories", "tmp"] {
            ensure_dir(&root.join(d))?;
        }
        for (name, _) in list_dir(&root.join("tmp"))? {
            let _ = fs::remove_file(root.join("tmp").join(name));
        }
        Ok(FsStorage {
            paths: Paths { root },
            uploads: layout::SessionLocks::new(),
            tag_lock: tokio::sync::Mutex::new(()),
            gc_lock: tokio::sync::RwLock::new(()),
        })
    }

    pub fn root(&self) -> &Path {
        &self.paths.root
    }

    /// Installs a durable, verified file as the blob `d` (or keeps the existing identical one)
    /// and links it into `repo`. Holds the GC read lock: the blob cannot be freed between the
    /// install and the link.
    async fn install_blob(&self, repo: &str, d: &Digest, verified: PathBuf) -> io::Result<()> {
        let _gc = self.gc_lock.read().await;
        let (paths, repo, d) = (self.paths.clone(), repo.to_string(), d.clone());
        blocking(move || {
            let dest = paths.blob(&d);
            if touch(&dest)? {
                // Content-addressed: the existing file has the same bytes.
                let _ = fs::remove_file(&verified);
            } else {
                commit(&verified, &dest)?;
            }
            paths.link(&repo, &d)
        })
        .await
    }

    /// Streams `body` to `file` from `offset`, updating `hasher`; returns the bytes written.
    async fn stream_to(
        file: &mut tokio::fs::File,
        mut body: ByteStream,
        mut hasher: Option<&mut Hasher>,
        offset: u64,
        limit: u64,
    ) -> StorageResult<u64> {
        let mut written = 0u64;
        while let Some(chunk) = body.next().await {
            let chunk = chunk.map_err(StorageError::Client)?;
            written += chunk.len() as u64;
            if offset + written > limit {
                return Err(StorageError::TooLarge { limit });
            }
            if let Some(h) = hasher.as_deref_mut() {
                h.update(&chunk);
            }
            file.write_all(&chunk).await?;
        }
        file.flush().await?;
        Ok(written)
    }
}

/// Where things live under the root. Cheap to clone into blocking closures.
#[derive(Clone)]
struct Paths {
    root: PathBuf,
}

impl Paths {
    fn at(&self, rel: String) -> PathBuf {
        self.root.join(rel)
    }

    fn blob(&self, d: &Digest) -> PathBuf {
        self.at(layout::blob(d))
    }

    fn repo(&self, repo: &str) -> PathBuf {
        self.at(layout::repo(repo))
    }

    fn link_path(&self, repo: &str, d: &Digest) -> PathBuf {
        self.at(layout::link(repo, d))
    }

    fn manifest(&self, repo: &str, d: &Digest) -> PathBuf {
        self.at(layout::manifest(repo, d))
    }

    fn tag(&self, repo: &str, tag: &str) -> PathBuf {
        self.at(layout::tag(repo, tag))
    }

    fn referrers(&self, repo: &str, subject: &Digest) -> PathBuf {
        self.at(layout::referrers(repo, subject))
    }

    fn upload(&self, repo: &str, id: &str) -> PathBuf {
        self.at(layout::upload(repo, id))
    }

    /// A fresh temporary path in `tmp/` (same filesystem as every destination).
    fn tmp(&self) -> io::Result<PathBuf> {
        Ok(self.root.join("tmp").join(random_id()?))
    }

    /// Writes `bytes` durably to `dest` through a temporary file.
    fn write_atomic(&self, dest: &Path, bytes: &[u8]) -> io::Result<()> {
        let tmp = self.tmp()?;
        let res = (|| {
            let mut f = File::create(&tmp)?;
            f.write_all(bytes)?;
            f.sync_all()?;
            commit(&tmp, dest)
        })();
        if res.is_err() {
            let _ = fs::remove_file(&tmp);
        }
        res
    }

    /// Links a blob into a repository durably.
    fn link(&self, repo: &str, d: &Digest) -> io::Result<()> {
        let link = self.link_path(repo, d);
        if link.exists() {
            return Ok(());
        }
        self.write_atomic(&link, b"")
    }
}

fn read_offset(dir: &Path) -> io::Result<Option<u64>> {
    match fs::read_to_string(dir.join("offset")) {
        Ok(s) => s.trim().parse().map(Some).map_err(io_other),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e),
    }
}

/// Records a session's durable offset: temp file, fsync, rename, fsync the directory.
fn write_offset(dir: &Path, offset: u64) -> io::Result<()> {
    let tmp = dir.join("offset.tmp");
    let mut f = File::create(&tmp)?;
    f.write_all(offset.to_string().as_bytes())?;
    f.sync_all()?;
    fs::rename(&tmp, dir.join("offset"))?;
    fsync_dir(dir)
}

impl Storage for FsStorage {
    fn blob_size<'a>(
        &'a self,
        repo: &'a str,
        digest: &'a Digest,
    ) -> BoxFuture<'a, StorageResult<Option<u64>>> {
        Box::pin(async move {
            if tokio::fs::metadata(self.paths.link_path(repo, digest))
                .await
                .is_err()
            {
                return Ok(None);
            }
            Ok(
                not_found_is_none(tokio::fs::metadata(self.paths.blob(digest)).await)?
                    .map(|m| m.len()),
            )
        })
    }

    fn read_blob<'a>(
        &'a self,
        repo: &'a str,
        digest: &'a Digest,
        range: Option<(u64, u64)>,
    ) -> BoxFuture<'a, StorageResult<Option<BlobRead>>> {
        Box::pin(async move {
            if tokio::fs::metadata(self.paths.link_path(repo, digest))
                .await
                .is_err()
            {
                return Ok(None);
            }
            let Some(mut f) =
                not_found_is_none(tokio::fs::File::open(self.paths.blob(digest)).await)?
            else {
                return Ok(None);
            };
            let size = f.metadata().await?.len();
            let (start, end) = range.unwrap_or((0, size));
            let end = end.min(size);
            if start > 0 {
                f.seek(SeekFrom::Start(start)).await?;
            }
            use tokio::io::AsyncReadExt;
            let reader = f.take(end.saturating_sub(start));
            let stream = tokio_util::io::ReaderStream::with_capacity(reader, 64 * 1024);
            Ok(Some(BlobRead {
                size,
                stream: Box::pin(stream),
            }))
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
            let tmp = self.paths.tmp()?;
            // Also when the request is dropped mid-body (client gone): no file left behind.
            let _cleanup = RemoveOnDrop(tmp.clone());
            let mut file = tokio::fs::File::create(&tmp).await?;
            let mut hasher = digest.algorithm().hasher();
            let size = Self::stream_to(&mut file, body, Some(&mut hasher), 0, limit).await?;
            let actual = hasher.finish();
            if &actual != digest {
                return Err(StorageError::DigestMismatch {
                    expected: digest.clone(),
                    actual,
                });
            }
            file.sync_all().await?;
            drop(file);
            self.install_blob(repo, digest, tmp.clone()).await?;
            Ok(size)
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
                && tokio::fs::metadata(self.paths.link_path(from, digest))
                    .await
                    .is_err()
            {
                return Ok(false);
            }
            let _gc = self.gc_lock.read().await;
            let blob = self.paths.blob(digest);
            let paths = self.paths.clone();
            let (repo, d) = (repo.to_string(), digest.clone());
            Ok(blocking(move || {
                if !touch(&blob)? {
                    return Ok(false);
                }
                paths.link(&repo, &d)?;
                Ok(true)
            })
            .await?)
        })
    }

    fn unlink_blob<'a>(
        &'a self,
        repo: &'a str,
        digest: &'a Digest,
    ) -> BoxFuture<'a, StorageResult<bool>> {
        let link = self.paths.link_path(repo, digest);
        Box::pin(async move { Ok(blocking(move || remove_durably(&link)).await?) })
    }

    fn start_upload<'a>(&'a self, repo: &'a str) -> BoxFuture<'a, StorageResult<UploadStatus>> {
        Box::pin(async move {
            let id = random_id()?;
            let dir = self.paths.upload(repo, &id);
            blocking(move || {
                ensure_dir(&dir)?;
                File::create(dir.join("data"))?.sync_all()?;
                write_offset(&dir, 0)
            })
            .await?;
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
            let dir = self.paths.upload(repo, id);
            let offset = blocking(move || read_offset(&dir)).await?;
            Ok(offset.map(|offset| UploadStatus {
                id: id.to_string(),
                offset,
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
            let mut running = lock.lock().await;
            let dir = self.paths.upload(repo, id);
            let d2 = dir.clone();
            let Some(offset) = blocking(move || read_offset(&d2)).await? else {
                drop(running);
                self.uploads.forget(id);
                return Err(StorageError::UploadUnknown(id.to_string()));
            };
            if let Some(requested) = start
                && requested != offset
            {
                return Err(StorageError::RangeMismatch { offset, requested });
            }
            // The hash continues only from exactly where it stopped; else it is recomputed
            // from the data file when the upload completes.
            let mut hash = match running.take() {
                Some(r) if r.offset == offset => Some(r.hasher),
                _ if offset == 0 => Some(Algorithm::Sha256.hasher()),
                _ => None,
            };
            let before = hash.clone();
            let data = dir.join("data");
            let mut file = tokio::fs::OpenOptions::new()
                .write(true)
                .open(&data)
                .await?;
            // Bytes past the durable offset were never acknowledged: drop them.
            file.set_len(offset).await?;
            file.seek(SeekFrom::Start(offset)).await?;
            let result = async {
                let n = Self::stream_to(&mut file, body, hash.as_mut(), offset, limit).await?;
                if let Some(expected) = expected_len
                    && n != expected
                {
                    return Err(StorageError::SizeMismatch {
                        expected,
                        received: n,
                    });
                }
                file.sync_all().await?;
                let d3 = dir.clone();
                blocking(move || write_offset(&d3, offset + n)).await?;
                Ok(offset + n)
            }
            .await;
            match result {
                Ok(new_offset) => {
                    *running = hash.map(|hasher| RunningHash {
                        offset: new_offset,
                        hasher,
                    });
                    Ok(UploadStatus {
                        id: id.to_string(),
                        offset: new_offset,
                    })
                }
                Err(e) => {
                    // Back to the last acknowledged state.
                    let _ = file.set_len(offset).await;
                    *running = before.map(|hasher| RunningHash { offset, hasher });
                    Err(e)
                }
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
            let mut running = lock.lock().await;
            let dir = self.paths.upload(repo, id);
            let d2 = dir.clone();
            let Some(offset) = blocking(move || read_offset(&d2)).await? else {
                drop(running);
                self.uploads.forget(id);
                return Err(StorageError::UploadUnknown(id.to_string()));
            };
            let data = dir.join("data");
            let actual = match running.take() {
                Some(r) if r.offset == offset && r.hasher.algorithm() == digest.algorithm() => {
                    let f = tokio::fs::OpenOptions::new()
                        .write(true)
                        .open(&data)
                        .await?;
                    f.set_len(offset).await?;
                    f.sync_all().await?;
                    r.hasher.finish()
                }
                _ => {
                    let (data, alg) = (data.clone(), digest.algorithm());
                    blocking(move || {
                        let f = File::options().write(true).open(&data)?;
                        f.set_len(offset)?;
                        f.sync_all()?;
                        hash_file(&data, alg, offset)
                    })
                    .await?
                }
            };
            drop(running);
            self.uploads.forget(id);
            if &actual != digest {
                // Refused content is discarded with its session.
                let _ = blocking(move || fs::remove_dir_all(&dir)).await;
                return Err(StorageError::DigestMismatch {
                    expected: digest.clone(),
                    actual,
                });
            }
            // Move the data out of the session first: a kill after this leaves a session
            // without data (reported unknown), never a session whose data became a blob.
            let verified = self.paths.tmp()?;
            let _cleanup = RemoveOnDrop(verified.clone());
            let (d4, v2) = (dir.clone(), verified.clone());
            blocking(move || {
                fs::rename(d4.join("data"), &v2)?;
                fs::remove_dir_all(&d4)?;
                if let Some(p) = d4.parent() {
                    fsync_dir(p)?;
                }
                Ok(())
            })
            .await?;
            self.install_blob(repo, digest, verified).await?;
            Ok(offset)
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
            let _running = lock.lock().await;
            let dir = self.paths.upload(repo, id);
            let existed = blocking(move || {
                if read_offset(&dir)?.is_none() {
                    return Ok(false);
                }
                fs::remove_dir_all(&dir)?;
                Ok(true)
            })
            .await?;
            drop(_running);
            self.uploads.forget(id);
            Ok(existed)
        })
    }

    fn get_manifest<'a>(
        &'a self,
        repo: &'a str,
        digest: &'a Digest,
    ) -> BoxFuture<'a, StorageResult<Option<StoredManifest>>> {
        let path = self.paths.manifest(repo, digest);
        let digest = digest.clone();
        Box::pin(async move {
            let Some(raw) = not_found_is_none(tokio::fs::read(&path).await)? else {
                return Ok(None);
            };
            let m = layout::stored_manifest(digest, Bytes::from(raw))
                .map_err(|e| io_other(format!("{}: {e}", path.display())))?;
            Ok(Some(m))
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
            // Held while the referenced blobs are touched and the manifest written: a GC
            // deleting one of them runs wholly before (then `touch` finds it gone and the push
            // fails) or wholly after (then it sees a fresh modification time and keeps it).
            let _gc = self.gc_lock.read().await;
            let path = self.paths.manifest(repo, digest);
            let blob_paths: Vec<(Digest, PathBuf)> = record
                .blobs
                .iter()
                .map(|d| (d.clone(), self.paths.blob(d)))
                .collect();
            let referrer = record.subject.as_ref().map(|(s, desc)| {
                (
                    self.paths.at(layout::referrer(repo, s, digest)),
                    desc.clone(),
                )
            });
            let this = self.paths.clone();
            blocking_storage(move || {
                for (d, p) in &blob_paths {
                    if !touch(p)? {
                        return Err(StorageError::BlobUnknown(d.clone()));
                    }
                }
                // The referrer entry first: readers skip it until the manifest exists.
                if let Some((entry, desc)) = &referrer {
                    let json = serde_json::to_vec(desc).map_err(io_other)?;
                    this.write_atomic(entry, &json)?;
                }
                if path.exists() {
                    // Already stored: identical bytes (content-addressed), first push time kept.
                    return Ok(());
                }
                let meta = ManifestMeta::new(record, bytes.len(), SystemTime::now());
                let buf = layout::encode_manifest(&meta, &bytes)?;
                this.write_atomic(&path, &buf)?;
                Ok(())
            })
            .await
        })
    }

    fn delete_manifest<'a>(
        &'a self,
        repo: &'a str,
        digest: &'a Digest,
    ) -> BoxFuture<'a, StorageResult<bool>> {
        Box::pin(async move {
            let _tags = self.tag_lock.lock().await;
            let path = self.paths.manifest(repo, digest);
            let tags_dir = self.paths.repo(repo).join("_tags");
            let referrers_root = self.paths.repo(repo).join("_referrers");
            let digest = digest.clone();
            Ok(blocking(move || {
                let Some(meta) = read_meta(&path)? else {
                    return Ok(false);
                };
                // Tags first, so no tag ever points at a missing manifest.
                let want = digest.to_string();
                for (tag, _) in list_dir(&tags_dir)? {
                    let p = tags_dir.join(&tag);
                    if fs::read_to_string(&p).is_ok_and(|s| s.trim() == want) {
                        remove_durably(&p)?;
                    }
                }
                if let Some(subject) = meta.subject {
                    let entry = referrers_root
                        .join(subject.algorithm().as_str())
                        .join(subject.hex())
                        .join(layout::referrer_name(&digest));
                    remove_durably(&entry)?;
                }
                remove_durably(&path)
            })
            .await?)
        })
    }

    fn resolve_tag<'a>(
        &'a self,
        repo: &'a str,
        tag: &'a str,
    ) -> BoxFuture<'a, StorageResult<Option<Digest>>> {
        let path = self.paths.tag(repo, tag);
        Box::pin(async move {
            let Some(s) = not_found_is_none(tokio::fs::read_to_string(&path).await)? else {
                return Ok(None);
            };
            Ok(Some(s.trim().parse().map_err(io_other)?))
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
            let current = self.resolve_tag(repo, tag).await?;
            let outcome = match layout::plan_tag(current.as_ref(), digest, overwrite) {
                layout::TagPlan::Done(outcome) => return Ok(outcome),
                layout::TagPlan::Write(outcome) => outcome,
            };
            let (path, manifest) = (self.paths.tag(repo, tag), self.paths.manifest(repo, digest));
            let paths = self.paths.clone();
            let value = digest.to_string();
            blocking(move || {
                if !manifest.exists() {
                    return Err(io_other("tag target manifest is not stored"));
                }
                paths.write_atomic(&path, value.as_bytes())
            })
            .await?;
            Ok(outcome)
        })
    }

    fn delete_tag<'a>(&'a self, repo: &'a str, tag: &'a str) -> BoxFuture<'a, StorageResult<bool>> {
        Box::pin(async move {
            let _tags = self.tag_lock.lock().await;
            let path = self.paths.tag(repo, tag);
            Ok(blocking(move || remove_durably(&path)).await?)
        })
    }

    fn list_tags<'a>(&'a self, repo: &'a str) -> BoxFuture<'a, StorageResult<Vec<String>>> {
        let dir = self.paths.repo(repo).join("_tags");
        Box::pin(async move {
            Ok(blocking(move || {
                Ok(list_dir(&dir)?
                    .into_iter()
                    .filter(|(_, md)| md.is_file())
                    .map(|(n, _)| n)
                    .collect())
            })
            .await?)
        })
    }

    fn referrers<'a>(
        &'a self,
        repo: &'a str,
        subject: &'a Digest,
    ) -> BoxFuture<'a, StorageResult<Vec<Descriptor>>> {
        let dir = self.paths.referrers(repo, subject);
        let manifests = self.paths.repo(repo).join("_manifests");
        Box::pin(async move {
            Ok(blocking(move || {
                let mut out = Vec::new();
                for (name, _) in list_dir(&dir)? {
                    let Some((alg, hex)) = name.split_once('-') else {
                        continue;
                    };
                    // Entries are written before their manifest: only count stored ones.
                    if !manifests.join(alg).join(hex).exists() {
                        continue;
                    }
                    let Some(raw) = not_found_is_none(fs::read(dir.join(&name)))? else {
                        continue;
                    };
                    if let Ok(d) = serde_json::from_slice::<Descriptor>(&raw) {
                        out.push(d);
                    }
                }
                Ok(out)
            })
            .await?)
        })
    }

    fn list_repositories(&self) -> BoxFuture<'_, StorageResult<Vec<String>>> {
        let root = self.paths.root.join("repositories");
        Box::pin(async move {
            Ok(blocking(move || {
                let mut out = Vec::new();
                walk_repositories(&root, "", &mut out)?;
                out.sort();
                Ok(out)
            })
            .await?)
        })
    }

    fn list_images<'a>(&'a self, repo: &'a str) -> BoxFuture<'a, StorageResult<Vec<ImageInfo>>> {
        let dir = self.paths.repo(repo);
        Box::pin(async move { Ok(blocking(move || list_images_in(&dir)).await?) })
    }

    /// The collector, safe online:
    ///
    /// 1. List the blobs and keep as candidates those whose modification time is older than
    ///    the grace period. A blob being uploaded or just uploaded is fresh, and so is one a
    ///    push just reused (blob put, mount and manifest put all `touch` the blobs they use).
    /// 2. Only then read every manifest of every repository and mark what they reference.
    ///    Reading manifests after listing blobs means a manifest stored before the listing
    ///    is seen; a manifest stored after it touched its blobs under the GC read lock, so...
    /// 3. ...each unmarked candidate is deleted under the GC write lock after re-checking its
    ///    modification time. A manifest push holds the read lock from touching its blobs to
    ///    writing the manifest, so it is either wholly before the re-check (the blob looks
    ///    fresh: kept) or wholly after the deletion (its touch finds the blob gone and the push
    ///    fails with MANIFEST_BLOB_UNKNOWN): no stored manifest ever references a freed blob.
    fn delete_unreferenced_blobs(&self, grace: Duration) -> BoxFuture<'_, StorageResult<GcReport>> {
        Box::pin(async move {
            let now = SystemTime::now();
            let cutoff = now.checked_sub(grace).unwrap_or(UNIX_EPOCH);
            let old = move |md: &fs::Metadata| md.modified().is_ok_and(|m| m < cutoff);
            let mut report = GcReport::default();

            // 1. Candidates.
            let blobs_root = self.paths.root.join("blobs");
            let listed = blocking(move || {
                let mut out = Vec::new();
                for (alg, md) in list_dir(&blobs_root)? {
                    if !md.is_dir() {
                        continue;
                    }
                    for (prefix, _) in list_dir(&blobs_root.join(&alg))? {
                        for (hex, md) in list_dir(&blobs_root.join(&alg).join(&prefix))? {
                            if let Some(d) = layout::digest_from_parts(&alg, &hex) {
                                out.push((d, md));
                            }
                        }
                    }
                }
                Ok(out)
            })
            .await?;
            let mut candidates = Vec::new();
            for (d, md) in listed {
                if old(&md) {
                    candidates.push(d);
                } else {
                    report.blobs_kept_fresh += 1;
                }
            }

            // 2. Mark, after the listing.
            let repos_root = self.paths.root.join("repositories");
            let (marked, links) = blocking(move || {
                let mut repos = Vec::new();
                walk_repositories(&repos_root, "", &mut repos)?;
                let mut marked = HashSet::new();
                let mut links: Vec<(String, Digest)> = Vec::new();
                for r in &repos {
                    let dir = repos_root.join(r);
                    for (d, _) in list_digests(&dir.join("_manifests"))? {
                        let path = dir
                            .join("_manifests")
                            .join(d.algorithm().as_str())
                            .join(d.hex());
                        if let Some(meta) = read_meta(&path)? {
                            marked.extend(meta.blobs);
                        }
                    }
                    for (d, _) in list_digests(&dir.join("_layers"))? {
                        links.push((r.clone(), d));
                    }
                }
                Ok((marked, links))
            })
            .await?;

            // 3. Sweep, one blob at a time under the write lock.
            let mut deleted = HashSet::new();
            for d in candidates {
                if marked.contains(&d) {
                    report.blobs_kept_referenced += 1;
                    continue;
                }
                let _gc = self.gc_lock.write().await;
                let path = self.paths.blob(&d);
                let freed = blocking(move || {
                    let Some(md) = not_found_is_none(fs::metadata(&path))? else {
                        return Ok(None);
                    };
                    if !old(&md) {
                        return Ok(None);
                    }
                    remove_durably(&path)?;
                    Ok(Some(md.len()))
                })
                .await?;
                match freed {
                    Some(len) => {
                        report.blobs_deleted += 1;
                        report.bytes_freed += len;
                        deleted.insert(d);
                    }
                    None => report.blobs_kept_fresh += 1,
                }
            }
            // Links to freed content would only be noise: drop them.
            for (repo, d) in links {
                if deleted.contains(&d) {
                    let link = self.paths.link_path(&repo, &d);
                    let _ = blocking(move || remove_durably(&link)).await;
                }
            }

            // Leftover temporary files and idle upload sessions.
            let tmp = self.paths.root.join("tmp");
            let repos_root = self.paths.root.join("repositories");
            let (tmp_deleted, idle_sessions) = blocking(move || {
                let mut t = 0;
                for (name, md) in list_dir(&tmp)? {
                    if old(&md) && fs::remove_file(tmp.join(name)).is_ok() {
                        t += 1;
                    }
                }
                let mut repos = Vec::new();
                walk_repositories(&repos_root, "", &mut repos)?;
                let mut idle = Vec::new();
                for r in repos {
                    let uploads = repos_root.join(&r).join("_uploads");
                    for (id, _) in list_dir(&uploads)? {
                        let dir = uploads.join(&id);
                        // Idle: neither data nor offset written within the grace period.
                        let mut quiet = true;
                        for f in ["data", "offset"] {
                            if let Some(md) = not_found_is_none(fs::metadata(dir.join(f)))? {
                                quiet &= old(&md);
                            }
                        }
                        if quiet {
                            idle.push((id, dir));
                        }
                    }
                }
                Ok((t, idle))
            })
            .await?;
            let mut uploads_expired = 0;
            for (id, dir) in idle_sessions {
                // A session whose lock is held has a chunk streaming in: not idle.
                let lock = self.uploads.get(&id);
                let Ok(_session) = lock.try_lock() else {
                    continue;
                };
                if blocking(move || fs::remove_dir_all(&dir)).await.is_ok() {
                    uploads_expired += 1;
                }
                drop(_session);
                self.uploads.forget(&id);
            }
            report.temp_files_deleted = tmp_deleted;
            report.uploads_expired = uploads_expired;
            Ok(report)
        })
    }
}

/// Collects repository names under `dir`: a directory holding any `_` directory is one, and
/// may also have nested repositories (`a` and `a/b` are both valid).
fn walk_repositories(dir: &Path, prefix: &str, out: &mut Vec<String>) -> io::Result<()> {
    let mut is_repo = false;
    for (name, md) in list_dir(dir)? {
        if !md.is_dir() {
            continue;
        }
        if layout::is_repository_marker(&name) {
            is_repo = true;
            continue;
        }
        let child = if prefix.is_empty() {
            name.clone()
        } else {
            format!("{prefix}/{name}")
        };
        walk_repositories(&dir.join(&name), &child, out)?;
    }
    if is_repo && !prefix.is_empty() {
        out.push(prefix.to_string());
    }
    Ok(())
}

fn list_images_in(dir: &Path) -> io::Result<Vec<ImageInfo>> {
    let tags_dir = dir.join("_tags");
    let mut tags = Vec::new();
    for (tag, _) in list_dir(&tags_dir)? {
        if let Some(s) = not_found_is_none(fs::read_to_string(tags_dir.join(&tag)))?
            && let Ok(d) = s.trim().parse::<Digest>()
        {
            tags.push((tag, d));
        }
    }
    let mut manifests = Vec::new();
    for (d, _) in list_digests(&dir.join("_manifests"))? {
        let path = dir
            .join("_manifests")
            .join(d.algorithm().as_str())
            .join(d.hex());
        if let Some(meta) = read_meta(&path)? {
            manifests.push((d, meta));
        }
    }
    Ok(layout::images(manifests, &tags))
}

/// Digests of all blobs in the store (for tests and diagnostics).
pub fn stored_blobs(root: &Path) -> io::Result<BTreeSet<Digest>> {
    let mut out = BTreeSet::new();
    let blobs = root.join("blobs");
    for (alg, _) in list_dir(&blobs)? {
        for (prefix, _) in list_dir(&blobs.join(&alg))? {
            for (hex, _) in list_dir(&blobs.join(&alg).join(&prefix))? {
                if let Some(d) = layout::digest_from_parts(&alg, &hex) {
                    out.insert(d);
                }
            }
        }
    }
    Ok(out)
}
