//! The storage service: every algorithm behind [`Storage`], written once against a
//! [`Backend`] (`fs`, `s3`). Several replicas may share one backend (S3); what one process
//! knows alone (locks) only orders work within it.
//!
//! "Storage that never lies":
//! - A blob's content reaches its key only once the digest computed over it matched: a staged
//!   write committed after the bytes streamed (else aborted), or an upload chunk renamed after
//!   it was hashed. A blob key never holds unverified content. Content already stored is
//!   hashed, not written again.
//! - An upload session lives in the backend, so a PATCH or the final PUT may land on another
//!   replica than the POST. Each chunk is its own object, committed before the session's
//!   `state` (which lists the acknowledged chunks) is replaced with `put_if` on its version:
//!   two replicas appending at once cannot both win, and the loser's chunk is deleted. Bytes
//!   the state does not list were never acknowledged. Completing streams the chunks, in
//!   order, through the hasher into the blob key; a single chunk, where the backend can
//!   rename (a filesystem), is hashed and renamed there instead.
//! - A tag is written only after its manifest exists, and removed before it; it is created
//!   with `put_if` absent and moved with `put_if` on its version, retried on a lost race: the
//!   immutable-tag check and the write are atomic across replicas (on an S3 server without
//!   conditional writes, only within a replica, by the tag lock).
//! - A referrer entry is written before its manifest and ignored while the manifest is missing.
//! - The GC's clock is a blob's modification time, restarted whenever a push reuses the blob:
//!   `touch` where the medium can, else a `uses/` marker (then a blob is fresh if either is).
//!   See `delete_unreferenced_blobs` for the ordering against pushes.

use std::collections::{HashMap, HashSet};
use std::io;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use futures::StreamExt;
use futures::future::BoxFuture;

use super::backend::{Backend, ObjectInfo, StagedWrite};
use super::digest::{Algorithm, Digest, Hasher};
use super::index::Index;
use super::layout::{self, ManifestMeta, SessionPart, SessionState, random_id, valid_upload_id};
use super::manifest::Descriptor;
use super::storage::*;

/// Attempts at a conditional write that keeps losing races before giving up.
const CONDITIONAL_ATTEMPTS: usize = 16;

/// The registry's storage over one backend. See the module documentation.
pub struct Store<B> {
    backend: B,
    /// Serialises the chunks of one upload session within this process.
    sessions: SessionLocks,
    /// Makes "check a tag, then write it" atomic within this process (across processes,
    /// `put_if` does) and orders tag removal before manifest removal.
    tag_lock: tokio::sync::Mutex<()>,
    /// Readers: operations that (re)use blobs (a manifest push checking its references, a blob
    /// put or mount). Writer: the GC deleting one blob. See `delete_unreferenced_blobs`.
    gc_lock: tokio::sync::RwLock<()>,
    /// What the hot reads need, in memory (all of it on a medium this process alone writes,
    /// blob facts for a bounded time on a shared one). Every path below that makes an
    /// indexed fact false tells the index once the medium changed.
    index: Index,
}

/// A lock per upload session within this process. Entries are dropped when a session ends.
#[derive(Default)]
struct SessionLocks(Mutex<HashMap<String, Arc<tokio::sync::Mutex<()>>>>);

impl SessionLocks {
    fn get(&self, id: &str) -> Arc<tokio::sync::Mutex<()>> {
        let mut m = self.0.lock().expect("session locks");
        m.entry(id.to_string()).or_default().clone()
    }

    fn forget(&self, id: &str) {
        self.0.lock().expect("session locks").remove(id);
    }
}

fn other(message: String) -> StorageError {
    StorageError::Io(io::Error::other(message))
}

/// A `.../<alg>/<hex>` key's digest.
pub(crate) fn digest_of_key(key: &str) -> Option<Digest> {
    let mut parts = key.rsplit('/');
    let hex = parts.next()?;
    let alg = parts.next()?;
    layout::digest_from_parts(alg, hex)
}

/// A `blobs/<alg>/<hex[..2]>/<hex>` key's digest.
pub(crate) fn digest_of_blob_key(key: &str) -> Option<Digest> {
    let alg = key.split('/').nth(1)?;
    layout::digest_from_parts(alg, key.rsplit('/').next()?)
}

fn parse_tag(raw: &[u8]) -> io::Result<Digest> {
    let s = String::from_utf8_lossy(raw);
    s.trim().parse().map_err(io::Error::other)
}

/// Where bytes go while they arrive: a hasher (when verifying) and a staged write (unless
/// the content is stored already).
struct Incoming<W> {
    hasher: Option<Hasher>,
    writer: Option<W>,
}

impl<W: StagedWrite> Incoming<W> {
    async fn take(&mut self, chunk: Bytes) -> io::Result<()> {
        if let Some(h) = &mut self.hasher {
            h.update(&chunk);
        }
        if let Some(w) = &mut self.writer {
            w.write(chunk).await?;
        }
        Ok(())
    }

    async fn abort(self) {
        if let Some(w) = self.writer {
            w.abort().await;
        }
    }
}

/// Streams a client's body into `into`, refusing it once `offset` plus what arrived exceeds
/// `limit`. Returns the bytes received.
async fn receive<W: StagedWrite>(
    mut body: ByteStream,
    into: &mut Incoming<W>,
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
        into.take(chunk).await?;
    }
    Ok(n)
}

impl<B: Backend> Store<B> {
    pub fn with_backend(backend: B) -> Store<B> {
        Store {
            backend,
            sessions: SessionLocks::default(),
            tag_lock: tokio::sync::Mutex::new(()),
            gc_lock: tokio::sync::RwLock::new(()),
            index: Index::for_medium(B::SOLE_WRITER),
        }
    }

    pub fn backend(&self) -> &B {
        &self.backend
    }

    #[cfg(test)]
    pub fn into_backend(self) -> B {
        self.backend
    }

    async fn exists(&self, key: &str) -> io::Result<bool> {
        Ok(self.backend.head(key).await?.is_some())
    }

    /// A whole (small) object.
    async fn read_all(&self, key: &str) -> io::Result<Option<Bytes>> {
        let Some(r) = self.backend.get(key, None).await? else {
            return Ok(None);
        };
        let mut buf = Vec::new();
        let mut s = r.stream;
        while let Some(chunk) = s.next().await {
            buf.extend_from_slice(&chunk?);
        }
        Ok(Some(Bytes::from(buf)))
    }

    /// The metadata line of a stored manifest.
    async fn read_meta(&self, key: &str) -> io::Result<Option<ManifestMeta>> {
        let Some(raw) = self.read_all(key).await? else {
            return Ok(None);
        };
        let (meta, _) =
            layout::decode_manifest(raw).map_err(|e| io::Error::other(format!("{key}: {e}")))?;
        Ok(Some(meta))
    }

    /// Where a tag points, and the version of the tag object.
    async fn read_tag(
        &self,
        repo: &str,
        tag: &str,
    ) -> io::Result<Option<(Digest, Option<String>)>> {
        let Some(v) = self.backend.read(&layout::tag(repo, tag)).await? else {
            return Ok(None);
        };
        Ok(Some((parse_tag(&v.bytes)?, v.version)))
    }

    async fn read_state(
        &self,
        repo: &str,
        id: &str,
    ) -> io::Result<Option<(SessionState, Option<String>)>> {
        let Some(v) = self.backend.read(&layout::upload_state(repo, id)).await? else {
            return Ok(None);
        };
        Ok(Some((SessionState::decode(&v.bytes)?, v.version)))
    }

    /// Removes a session: its state first (from then on it is unknown), then its parts.
    async fn delete_session(&self, repo: &str, id: &str) -> io::Result<()> {
        self.backend.delete(&layout::upload_state(repo, id)).await?;
        self.backend.delete_all(&layout::upload(repo, id)).await
    }

    /// Restarts a blob's GC clock; false when the blob does not exist. The mark comes before
    /// the existence check: a GC that then still sees the blob also sees it fresh.
    async fn mark_used(&self, d: &Digest) -> io::Result<bool> {
        if B::CAN_TOUCH {
            return self.backend.touch(&layout::blob(d)).await;
        }
        self.backend.put(&layout::marker(d), Bytes::new()).await?;
        self.exists(&layout::blob(d)).await
    }

    async fn linked(&self, repo: &str, d: &Digest) -> io::Result<bool> {
        self.exists(&layout::link(repo, d)).await
    }

    async fn link(&self, repo: &str, d: &Digest) -> io::Result<()> {
        if !self.linked(repo, d).await? {
            self.backend
                .put(&layout::link(repo, d), Bytes::new())
                .await?;
        }
        Ok(())
    }

    /// Prepares to receive blob `d`: marks it used, and stages a write unless it exists.
    async fn begin_blob(&self, d: &Digest) -> io::Result<Incoming<B::Writer>> {
        let writer = if self.mark_used(d).await? {
            None
        } else {
            Some(self.backend.begin(&layout::blob(d)).await?)
        };
        Ok(Incoming {
            hasher: Some(d.algorithm().hasher()),
            writer,
        })
    }

    /// Ends what `begin_blob` started once the bytes are in (`received`): verifies the digest,
    /// commits and links the blob under the GC read lock (it cannot be freed in between).
    async fn finish_blob(
        &self,
        repo: &str,
        digest: &Digest,
        mut incoming: Incoming<B::Writer>,
        received: StorageResult<u64>,
    ) -> StorageResult<u64> {
        let size = match received {
            Ok(n) => n,
            Err(e) => {
                incoming.abort().await;
                return Err(e);
            }
        };
        let actual = incoming.hasher.take().expect("blobs are hashed").finish();
        if &actual != digest {
            incoming.abort().await;
            return Err(StorageError::DigestMismatch {
                expected: digest.clone(),
                actual,
            });
        }
        let _gc = self.gc_lock.read().await;
        match incoming.writer {
            Some(w) => w.commit().await?,
            // It existed: make sure a GC did not free it meanwhile.
            None if !self.exists(&layout::blob(digest)).await? => {
                return Err(other(format!(
                    "blob {digest} was collected during the upload; retry"
                )));
            }
            None => {}
        }
        self.link(repo, digest).await?;
        Ok(size)
    }

    /// Streams a session's parts, in order, into `into`; UploadUnknown if one is gone.
    async fn copy_parts(
        &self,
        repo: &str,
        id: &str,
        parts: &[SessionPart],
        into: &mut Incoming<B::Writer>,
    ) -> StorageResult<u64> {
        let mut total = 0u64;
        for p in parts {
            let key = layout::upload_part(repo, id, &p.name);
            let Some(r) = self.backend.get(&key, None).await? else {
                // Moved into its blob by a process killed before it removed the session.
                return Err(StorageError::UploadUnknown(id.to_string()));
            };
            let mut s = r.stream;
            let mut n = 0u64;
            while let Some(chunk) = s.next().await {
                let chunk = chunk?;
                n += chunk.len() as u64;
                into.take(chunk).await?;
            }
            if n != p.size {
                return Err(other(format!(
                    "upload {id}: part {} has {n} bytes, {} recorded",
                    p.name, p.size
                )));
            }
            total += n;
        }
        Ok(total)
    }

    /// Completes a session of one part (a client that sent the whole blob in one PATCH or
    /// PUT) on a backend that renames: the part is verified, then moved into place rather
    /// than copied. Verified by the digest recorded while it streamed in when there is one
    /// (the part was hashed as it was written: no second read), else by hashing it now.
    async fn complete_by_rename(
        &self,
        repo: &str,
        id: &str,
        part: &SessionPart,
        digest: &Digest,
    ) -> StorageResult<u64> {
        let part_key = layout::upload_part(repo, id, &part.name);
        if !self.exists(&part_key).await? {
            // Moved into its blob by a process killed before it removed the session.
            return self.complete_moved(repo, id, part, digest).await;
        }
        let size = if part.sha256.as_deref() == Some(digest.to_string().as_str()) {
            part.size
        } else {
            let mut hashing = Incoming::<B::Writer> {
                hasher: Some(digest.algorithm().hasher()),
                writer: None,
            };
            let parts = std::slice::from_ref(part);
            let size = self.copy_parts(repo, id, parts, &mut hashing).await?;
            let actual = hashing.hasher.expect("hashing").finish();
            if &actual != digest {
                return Err(StorageError::DigestMismatch {
                    expected: digest.clone(),
                    actual,
                });
            }
            size
        };
        let _gc = self.gc_lock.read().await;
        if !self.mark_used(digest).await? {
            self.backend
                .rename(&part_key, &layout::blob(digest))
                .await?;
            // The part may be older than the grace period: the blob is fresh.
            self.mark_used(digest).await?;
        }
        self.link(repo, digest).await?;
        Ok(size)
    }

    /// Completes a one-part session whose part is gone: a process was killed between moving
    /// it into its blob (verified) and removing the session, whose state still says it holds
    /// the bytes. The client retrying its PUT is told the truth: done, when the blob at
    /// `digest` is this session's content, which the sha256 recorded as the part streamed in
    /// proves (the blob key holds only verified content, so a recorded sha256 that is
    /// `digest` itself needs no read; otherwise the blob is hashed). Unknown otherwise (no
    /// recorded hash, another digest than the session's content, the blob gone): the client
    /// starts again, and learns nothing of a blob whose bytes it did not send.
    async fn complete_moved(
        &self,
        repo: &str,
        id: &str,
        part: &SessionPart,
        digest: &Digest,
    ) -> StorageResult<u64> {
        let unknown = || Err(StorageError::UploadUnknown(id.to_string()));
        let Some(recorded) = part.sha256.as_deref() else {
            return unknown();
        };
        let _gc = self.gc_lock.read().await;
        if recorded != digest.to_string() {
            let Some(r) = self.backend.get(&layout::blob(digest), None).await? else {
                return unknown();
            };
            let mut hasher = Algorithm::Sha256.hasher();
            let mut s = r.stream;
            while let Some(chunk) = s.next().await {
                hasher.update(&chunk?);
            }
            if hasher.finish().to_string() != recorded {
                return unknown();
            }
        }
        if !self.mark_used(digest).await? {
            return unknown();
        }
        self.link(repo, digest).await?;
        Ok(part.size)
    }

    /// Drops the links of a blob the GC just freed (links to freed content are only noise).
    /// Another replica may have pushed the blob again meanwhile and found a link still
    /// there: if the blob is back once the links are gone, they are restored.
    async fn unlink_freed(&self, d: &Digest, repos: &[String]) -> io::Result<()> {
        for repo in repos {
            let deleted = self.backend.delete(&layout::link(repo, d)).await;
            self.index.forget_link(repo, d);
            deleted?;
        }
        if !repos.is_empty() && self.exists(&layout::blob(d)).await? {
            for repo in repos {
                self.link(repo, d).await?;
            }
        }
        Ok(())
    }

    /// `delete_manifest` under the tag lock.
    async fn delete_manifest_locked(&self, repo: &str, digest: &Digest) -> StorageResult<bool> {
        let key = layout::manifest(repo, digest);
        let Some(meta) = self.read_meta(&key).await? else {
            return Ok(false);
        };
        // Tags first, so no tag ever points at a missing manifest.
        for tag in self.list_tags(repo).await? {
            if self
                .read_tag(repo, &tag)
                .await?
                .is_some_and(|(d, _)| &d == digest)
            {
                self.backend.delete(&layout::tag(repo, &tag)).await?;
            }
        }
        if let Some(subject) = meta.subject {
            let entry = layout::referrer(repo, &subject, digest);
            self.backend.delete(&entry).await?;
        }
        // So that the same digest pushed again starts as never pulled.
        self.backend.delete(&layout::pull(repo, digest)).await?;
        Ok(self.backend.delete(&key).await?)
    }

    /// `put_tag` under the tag lock.
    async fn put_tag_locked(
        &self,
        repo: &str,
        tag: &str,
        digest: &Digest,
        overwrite: bool,
    ) -> StorageResult<TagWrite> {
        let key = layout::tag(repo, tag);
        for _ in 0..CONDITIONAL_ATTEMPTS {
            let (current, version) = self.read_tag(repo, tag).await?.unzip();
            let outcome = match layout::plan_tag(current.as_ref(), digest, overwrite) {
                layout::TagPlan::Done(outcome) => return Ok(outcome),
                layout::TagPlan::Write(outcome) => outcome,
            };
            if !self.exists(&layout::manifest(repo, digest)).await? {
                // Deleted meanwhile (a DELETE racing this push).
                return Err(StorageError::ManifestUnknown(digest.clone()));
            }
            let value = Bytes::from(digest.to_string());
            if self
                .backend
                .put_if(&key, value, version.flatten().as_deref())
                .await?
            {
                return Ok(outcome);
            }
            // Another replica wrote the tag meanwhile: decide again on its value.
        }
        Err(other(format!(
            "tag {tag} kept changing under concurrent writes"
        )))
    }

    /// The session lock, and the session's state; UploadUnknown (forgetting the lock) when
    /// there is none.
    async fn open_session(
        &self,
        repo: &str,
        id: &str,
    ) -> StorageResult<(
        tokio::sync::OwnedMutexGuard<()>,
        SessionState,
        Option<String>,
    )> {
        let unknown = || StorageError::UploadUnknown(id.to_string());
        if !valid_upload_id(id) {
            return Err(unknown());
        }
        let guard = self.sessions.get(id).lock_owned().await;
        match self.read_state(repo, id).await? {
            Some((state, version)) => Ok((guard, state, version)),
            None => {
                drop(guard);
                self.sessions.forget(id);
                Err(unknown())
            }
        }
    }
}

impl<B: Backend> Storage for Store<B> {
    fn blob_size<'a>(
        &'a self,
        repo: &'a str,
        digest: &'a Digest,
    ) -> BoxFuture<'a, StorageResult<Option<u64>>> {
        Box::pin(async move {
            if let Some(size) = self.index.blob_size(repo, digest) {
                return Ok(Some(size));
            }
            let seen = self.index.generation();
            if !self.linked(repo, digest).await? {
                return Ok(None);
            }
            let size = self
                .backend
                .head(&layout::blob(digest))
                .await?
                .map(|i| i.size);
            if let Some(size) = size {
                self.index.insert_blob(seen, repo, digest, size);
            }
            Ok(size)
        })
    }

    fn read_blob<'a>(
        &'a self,
        repo: &'a str,
        digest: &'a Digest,
        range: Option<(u64, u64)>,
    ) -> BoxFuture<'a, StorageResult<Option<BlobRead>>> {
        Box::pin(async move {
            if self.index.blob_size(repo, digest).is_none() && !self.linked(repo, digest).await? {
                return Ok(None);
            }
            Ok(self.backend.get(&layout::blob(digest), range).await?)
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
            let mut incoming = self.begin_blob(digest).await?;
            let received = receive(body, &mut incoming, 0, limit).await;
            self.finish_blob(repo, digest, incoming, received).await
        })
    }

    fn mount_blob<'a>(
        &'a self,
        repo: &'a str,
        digest: &'a Digest,
        from: &'a str,
    ) -> BoxFuture<'a, StorageResult<bool>> {
        Box::pin(async move {
            if !self.linked(from, digest).await? {
                return Ok(false);
            }
            let _gc = self.gc_lock.read().await;
            if !self.mark_used(digest).await? {
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
        Box::pin(async move {
            let deleted = self.backend.delete(&layout::link(repo, digest)).await;
            self.index.forget_link(repo, digest);
            Ok(deleted?)
        })
    }

    fn start_upload<'a>(&'a self, repo: &'a str) -> BoxFuture<'a, StorageResult<UploadStatus>> {
        Box::pin(async move {
            let id = random_id()?;
            let state = SessionState::default().encode();
            self.backend
                .put(&layout::upload_state(repo, &id), state.into())
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
            let (_session, state, version) = self.open_session(repo, id).await?;
            let offset = state.offset;
            if let Some(requested) = start
                && requested != offset
            {
                return Err(StorageError::RangeMismatch { offset, requested });
            }
            let name = layout::part_name(offset, &random_id()?[..8]);
            let part = layout::upload_part(repo, id, &name);
            // Where completing renames, the first part is hashed as it streams: if it is the
            // only one, completing needs no second read (see `complete_by_rename`). sha256, as
            // nearly every client uses.
            let mut incoming = Incoming {
                hasher: (offset == 0 && B::CAN_RENAME).then(|| Algorithm::Sha256.hasher()),
                writer: Some(self.backend.begin(&part).await?),
            };
            let n = match receive(body, &mut incoming, offset, limit).await {
                Ok(n) => n,
                Err(e) => {
                    incoming.abort().await;
                    return Err(e);
                }
            };
            if let Some(expected) = expected_len
                && n != expected
            {
                incoming.abort().await;
                return Err(StorageError::SizeMismatch {
                    expected,
                    received: n,
                });
            }
            let status = |offset| UploadStatus {
                id: id.to_string(),
                offset,
            };
            let sha256 = incoming.hasher.take().map(Hasher::finish);
            let Some(writer) = incoming.writer.filter(|_| n > 0) else {
                return Ok(status(offset));
            };
            writer.commit().await?;
            let next = state.with_part(name, n, sha256.as_ref());
            let state_key = layout::upload_state(repo, id);
            if self
                .backend
                .put_if(&state_key, next.encode().into(), version.as_deref())
                .await?
            {
                return Ok(status(next.offset));
            }
            // Another replica moved the session (or ended it) meanwhile: our part is not
            // part of it.
            let _ = self.backend.delete(&part).await;
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
            let (session, state, _) = self.open_session(repo, id).await?;
            let result = match state.parts.as_slice() {
                [part] if B::CAN_RENAME => self.complete_by_rename(repo, id, part, digest).await,
                parts => {
                    let mut incoming = self.begin_blob(digest).await?;
                    let copied = self.copy_parts(repo, id, parts, &mut incoming).await;
                    self.finish_blob(repo, digest, incoming, copied).await
                }
            };
            if matches!(
                result,
                Ok(_) | Err(StorageError::DigestMismatch { .. } | StorageError::UploadUnknown(_))
            ) {
                // Done, refused content, or a part gone: the session ends either way.
                self.delete_session(repo, id).await?;
                drop(session);
                self.sessions.forget(id);
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
            match self.open_session(repo, id).await {
                Ok((session, _, _)) => {
                    self.delete_session(repo, id).await?;
                    drop(session);
                    self.sessions.forget(id);
                    Ok(true)
                }
                Err(StorageError::UploadUnknown(_)) => Ok(false),
                Err(e) => Err(e),
            }
        })
    }

    fn get_manifest<'a>(
        &'a self,
        repo: &'a str,
        digest: &'a Digest,
    ) -> BoxFuture<'a, StorageResult<Option<StoredManifest>>> {
        Box::pin(async move {
            if let Some(m) = self.index.manifest(repo, digest) {
                return Ok(Some(m));
            }
            let seen = self.index.generation();
            let key = layout::manifest(repo, digest);
            let Some(raw) = self.read_all(&key).await? else {
                return Ok(None);
            };
            let m = layout::stored_manifest(digest.clone(), raw)
                .map_err(|e| io::Error::other(format!("{key}: {e}")))?;
            self.index.insert_manifest(seen, repo, &m);
            Ok(Some(m))
        })
    }

    /// Holds the GC read lock while the referenced blobs are marked and the manifest written:
    /// a GC deleting one of them within this process runs wholly before (the mark finds it
    /// gone and the push fails) or wholly after (it sees the blob fresh and keeps it). Across
    /// replicas there is no such lock: the blobs are checked again once the manifest is
    /// written, and the manifest withdrawn if one vanished.
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
                if !self.mark_used(d).await? {
                    return Err(StorageError::BlobUnknown(d.clone()));
                }
            }
            // The referrer entry first: readers skip it until the manifest exists.
            if let Some((subject, desc)) = &record.subject {
                let json = serde_json::to_vec(desc).map_err(io::Error::other)?;
                let key = layout::referrer(repo, subject, digest);
                self.backend.put(&key, json.into()).await?;
            }
            let key = layout::manifest(repo, digest);
            if self.exists(&key).await? {
                // Already stored: identical bytes (content-addressed), first push time kept.
                return Ok(());
            }
            let blobs = record.blobs.clone();
            let meta = ManifestMeta::new(record, bytes.len(), SystemTime::now());
            let raw = layout::encode_manifest(&meta, &bytes)?;
            if !self.backend.put_if(&key, raw.into(), None).await? {
                // Another replica stored it first (same bytes): keep its push time.
                return Ok(());
            }
            for d in &blobs {
                if !self.exists(&layout::blob(d)).await? {
                    self.backend.delete(&key).await?;
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
            let deleted = self.delete_manifest_locked(repo, digest).await;
            // Also when the delete failed midway: some of it may be done.
            self.index.forget_manifest(repo, digest);
            deleted
        })
    }

    fn resolve_tag<'a>(
        &'a self,
        repo: &'a str,
        tag: &'a str,
    ) -> BoxFuture<'a, StorageResult<Option<Digest>>> {
        Box::pin(async move {
            if let Some(d) = self.index.tag(repo, tag) {
                return Ok(Some(d));
            }
            let seen = self.index.generation();
            let d = self.read_tag(repo, tag).await?.map(|(d, _)| d);
            if let Some(d) = &d {
                self.index.insert_tag(seen, repo, tag, d);
            }
            Ok(d)
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
            let written = self.put_tag_locked(repo, tag, digest, overwrite).await;
            self.index.forget_tag(repo, tag);
            written
        })
    }

    fn delete_tag<'a>(&'a self, repo: &'a str, tag: &'a str) -> BoxFuture<'a, StorageResult<bool>> {
        Box::pin(async move {
            let _tags = self.tag_lock.lock().await;
            let deleted = self.backend.delete(&layout::tag(repo, tag)).await;
            self.index.forget_tag(repo, tag);
            Ok(deleted?)
        })
    }
    fn list_tags<'a>(&'a self, repo: &'a str) -> BoxFuture<'a, StorageResult<Vec<String>>> {
        Box::pin(async move { Ok(self.backend.list_dir(&layout::tags(repo)).await?.objects) })
    }

    fn referrers<'a>(
        &'a self,
        repo: &'a str,
        subject: &'a Digest,
    ) -> BoxFuture<'a, StorageResult<Vec<Descriptor>>> {
        Box::pin(async move {
            let dir = layout::referrers(repo, subject);
            let mut out = Vec::new();
            for name in self.backend.list_dir(&dir).await?.objects {
                let Some(d) = layout::parse_referrer_name(&name) else {
                    continue;
                };
                // Entries are written before their manifest: only count stored ones.
                if !self.exists(&layout::manifest(repo, &d)).await? {
                    continue;
                }
                let Some(raw) = self.read_all(&format!("{dir}/{name}")).await? else {
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
            // Walk the directories: one that holds a `_` child is a repository, and may hold
            // nested ones too (`a` and `a/b` are both valid).
            let mut out = Vec::new();
            let mut todo = vec![String::new()];
            while let Some(name) = todo.pop() {
                let dir = if name.is_empty() {
                    layout::REPOSITORIES.to_string()
                } else {
                    layout::repo(&name)
                };
                for child in self.backend.list_dir(&dir).await?.dirs {
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
                if let Some((d, _)) = self.read_tag(repo, &tag).await? {
                    tags.push((tag, d));
                }
            }
            let mut manifests = Vec::new();
            for (key, _) in self.backend.list(&layout::manifests(repo)).await? {
                if let Some(d) = digest_of_key(&key)
                    && let Some(meta) = self.read_meta(&key).await?
                {
                    manifests.push((d, meta));
                }
            }
            let mut pulls = std::collections::BTreeMap::new();
            for (key, _) in self.backend.list(&layout::pulls(repo)).await? {
                if let Some(d) = digest_of_key(&key)
                    && let Some(raw) = self.read_all(&key).await?
                    && let Some(t) = layout::decode_pull(&raw)
                {
                    pulls.insert(d, t);
                }
            }
            Ok(layout::images(manifests, &tags, &pulls))
        })
    }

    fn replication_records<'a>(
        &'a self,
        repo: &'a str,
    ) -> BoxFuture<'a, StorageResult<Vec<(Digest, Bytes)>>> {
        Box::pin(async move {
            let mut out = Vec::new();
            for (key, _) in self.backend.list(&layout::replications(repo)).await? {
                if let Some(d) = digest_of_key(&key)
                    && let Some(raw) = self.read_all(&key).await?
                {
                    out.push((d, raw));
                }
            }
            Ok(out)
        })
    }

    fn replication_record<'a>(
        &'a self,
        repo: &'a str,
        digest: &'a Digest,
    ) -> BoxFuture<'a, StorageResult<Option<Bytes>>> {
        Box::pin(async move { Ok(self.read_all(&layout::replication(repo, digest)).await?) })
    }

    /// One small object per image, replaced whole (the replicator alone settles it; a push
    /// re-queues it).
    fn put_replication_record<'a>(
        &'a self,
        repo: &'a str,
        digest: &'a Digest,
        record: Option<Bytes>,
    ) -> BoxFuture<'a, StorageResult<()>> {
        Box::pin(async move {
            let key = layout::replication(repo, digest);
            match record {
                Some(bytes) => self.backend.put(&key, bytes).await?,
                None => {
                    self.backend.delete(&key).await?;
                }
            }
            Ok(())
        })
    }

    /// One small object per image, replaced whole: the last writer wins, which across
    /// replicas is at most one flush interval off (ECR's own time is approximate too). A
    /// manifest deleted meanwhile gets no record.
    fn record_pulls<'a>(
        &'a self,
        repo: &'a str,
        pulls: &'a [(Digest, SystemTime)],
    ) -> BoxFuture<'a, StorageResult<usize>> {
        Box::pin(async move {
            let mut written = 0;
            for (d, at) in pulls {
                if self.exists(&layout::manifest(repo, d)).await? {
                    let key = layout::pull(repo, d);
                    self.backend.put(&key, layout::encode_pull(*at)).await?;
                    written += 1;
                }
            }
            Ok(written)
        })
    }

    /// The collector, safe online:
    ///
    /// 1. List the blobs and keep as candidates those older than the grace period. A blob
    ///    being uploaded or just uploaded is fresh, and so is one a push just reused (blob
    ///    put, mount and manifest put all mark the blobs they use).
    /// 2. Only then read every manifest of every repository and mark what they reference.
    ///    Reading manifests after listing blobs means a manifest stored before the listing is
    ///    seen; a manifest stored after it marked its blobs under the GC read lock, so...
    /// 3. ...each unmarked candidate is deleted under the GC write lock after re-checking its
    ///    clock. A manifest push holds the read lock from marking its blobs to writing the
    ///    manifest, so it is either wholly before the re-check (the blob looks fresh: kept) or
    ///    wholly after the deletion (its mark finds the blob gone and the push fails with
    ///    MANIFEST_BLOB_UNKNOWN): no stored manifest ever references a freed blob. Across
    ///    replicas, what remains is a push whose mark, blob check, manifest write and re-check
    ///    all fall between the GC's last look at that blob and its delete (one request apart),
    ///    for a blob unused for the whole grace period.
    fn delete_unreferenced_blobs(&self, grace: Duration) -> BoxFuture<'_, StorageResult<GcReport>> {
        Box::pin(async move {
            let cutoff = SystemTime::now().checked_sub(grace).unwrap_or(UNIX_EPOCH);
            let old = |i: &ObjectInfo| i.modified < cutoff;
            let mut report = GcReport::default();

            // 1. Candidates: the blob and its marker (if any) both older than the grace period.
            let markers: HashMap<Digest, ObjectInfo> = (self.backend.list(layout::USES).await?)
                .into_iter()
                .filter_map(|(k, i)| Some((digest_of_key(&k)?, i)))
                .collect();
            let mut candidates = Vec::new();
            let mut present = HashSet::new();
            for (key, info) in self.backend.list(layout::BLOBS).await? {
                let Some(d) = digest_of_blob_key(&key) else {
                    continue;
                };
                present.insert(d.clone());
                if old(&info) && markers.get(&d).is_none_or(old) {
                    candidates.push(d);
                } else {
                    report.blobs_kept_fresh += 1;
                }
            }

            // 2. Mark, after the listing.
            let repos = self.list_repositories().await?;
            let mut marked = HashSet::new();
            let mut links: HashMap<Digest, Vec<String>> = HashMap::new();
            for r in &repos {
                for (key, _) in self.backend.list(&layout::manifests(r)).await? {
                    if let Some(meta) = self.read_meta(&key).await? {
                        marked.extend(meta.blobs);
                    }
                }
                for (key, _) in self.backend.list(&layout::links(r)).await? {
                    if let Some(d) = digest_of_key(&key) {
                        links.entry(d).or_default().push(r.clone());
                    }
                }
            }

            // 3. Sweep, one blob at a time under the write lock, re-checking its clock. Its
            //    links go under the same lock: a push of the blob waits for both, then links it.
            for d in candidates {
                if marked.contains(&d) {
                    report.blobs_kept_referenced += 1;
                    continue;
                }
                let _gc = self.gc_lock.write().await;
                let (key, marker_key) = (layout::blob(&d), layout::marker(&d));
                let marker = self.backend.head(&marker_key).await?;
                match self.backend.head(&key).await? {
                    Some(b) if old(&b) && marker.as_ref().is_none_or(old) => {
                        let deleted = self.backend.delete(&key).await;
                        self.index.forget_blob(&d);
                        deleted?;
                        self.backend.delete(&marker_key).await?;
                        report.blobs_deleted += 1;
                        report.bytes_freed += b.size;
                        self.unlink_freed(&d, links.get(&d).map_or(&[], Vec::as_slice))
                            .await?;
                    }
                    _ => report.blobs_kept_fresh += 1,
                }
            }

            // Markers of blobs that never completed (or were freed elsewhere), and what staged
            // writes a killed process left.
            for (d, m) in markers {
                if !present.contains(&d)
                    && old(&m)
                    && self.backend.delete(&layout::marker(&d)).await?
                {
                    report.temp_files_deleted += 1;
                }
            }
            report.temp_files_deleted += self.backend.sweep_staging(cutoff).await?;

            // 4. Upload sessions idle longer than the grace period: all their objects old.
            for r in &repos {
                for id in self.backend.list_dir(&layout::uploads(r)).await?.dirs {
                    let objects = self.backend.list(&layout::upload(r, &id)).await?;
                    if objects.is_empty() || !objects.iter().all(|(_, i)| old(i)) {
                        continue;
                    }
                    // A session whose lock is held here has a chunk streaming in.
                    let lock = self.sessions.get(&id);
                    let Ok(session) = lock.try_lock() else {
                        continue;
                    };
                    self.delete_session(r, &id).await?;
                    report.uploads_expired += 1;
                    drop(session);
                    self.sessions.forget(&id);
                }
            }
            Ok(report)
        })
    }
}
