//! The store's in-memory index: what the hot reads (manifest GET by tag or digest, blob HEAD
//! and the link check of a blob GET) need, answered from memory with no trip to the blocking
//! pool or the network, kept true by the store's own write paths.
//!
//! What it holds depends on who else writes the medium (`Scope`):
//! - A medium whose every writer is this process (`Backend::SOLE_WRITER`: a filesystem root,
//!   owned by one registry process): everything, for as long as it is true.
//! - A shared medium (S3, several replicas): only blobs' links and sizes, each for at most
//!   `SHARED_BLOB_TTL` after it was read. Tags and manifests are read from the medium every
//!   time: a tag moved or a manifest deleted on one replica must show on the next request to
//!   another (clients push and pull through different replicas; e2e/registry-replicas.py
//!   checks it), and a tag's staleness would serve another image. A blob's size cannot change
//!   (its digest fixes it); what can is whether it is still linked and stored, when another
//!   replica unlinks it or its GC frees it. That is seen within the bound, as the spec allows
//!   a registry to (it says nothing of replicas); distribution's in-memory blob descriptor
//!   cache, by comparison, never sees another replica's delete. Within the replica itself its
//!   own deletes remove the entry at once, as on a filesystem. A manifest push checks its
//!   blobs' links through the same facts, so a blob unlinked elsewhere in that second may
//!   still be referenced, as by a push racing the unlink without any index; the content is
//!   safe either way, since `put_manifest` marks and checks each blob on the medium itself.
//!
//! How it stays true: entries are only ever facts read from the medium (misses fill it) and
//! every write path that can make one false removes it once the medium has changed. A fill
//! races such a removal: a reader that read the old value before the write may insert it
//! after the removal. So every removal bumps a generation, a reader takes the generation
//! before it reads the medium, and an insert is dropped when the generation moved. Absence is
//! never indexed, so a write that only adds (a push, a link) has nothing to remove.
//!
//! Bounds: entries and manifest bytes are capped; past a cap the index starts over, since
//! dropping entries is always correct.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use super::digest::Digest;
use super::storage::StoredManifest;

/// Past this many entries (tags, links, manifests, sizes) the index starts over.
const MAX_ENTRIES: usize = 200_000;
/// Past this many manifest bytes held, the index starts over.
const MAX_MANIFEST_BYTES: usize = 16 * 1024 * 1024;
/// Larger manifests are read from the medium each time (they are rare, and would crowd out
/// the rest).
const MAX_INDEXED_MANIFEST: usize = 256 * 1024;

/// On a shared medium, how long a blob's link and size read from it are believed.
pub const SHARED_BLOB_TTL: Duration = Duration::from_secs(1);

/// What the index may hold; see the module documentation.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Scope {
    /// Every fact, until a write path of this process removes it.
    Sole,
    /// Blobs' links and sizes only, each for at most this long after it was read.
    Shared(Duration),
}

/// See the module documentation.
pub struct Index {
    scope: Scope,
    inner: Mutex<Inner>,
}

/// What a reader saw before it read the medium; see `Index::generation`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Generation(u64);

#[derive(Default)]
struct Inner {
    generation: u64,
    entries: usize,
    manifest_bytes: usize,
    repos: HashMap<String, Repo>,
    /// A blob's size: its content's, fixed by its digest while it exists.
    sizes: HashMap<Digest, u64>,
}

#[derive(Default)]
struct Repo {
    tags: HashMap<String, Digest>,
    manifests: HashMap<Digest, StoredManifest>,
    /// Blobs linked into the repository, and when that was read.
    links: HashMap<Digest, Instant>,
}

impl Inner {
    fn repo(&mut self, name: &str) -> &mut Repo {
        if !self.repos.contains_key(name) {
            self.repos.insert(name.to_string(), Repo::default());
        }
        self.repos.get_mut(name).expect("just inserted")
    }

    /// Makes room for one more entry (of `bytes` manifest bytes), starting over if full.
    fn admit(&mut self, bytes: usize) {
        if self.entries >= MAX_ENTRIES || self.manifest_bytes + bytes > MAX_MANIFEST_BYTES {
            self.repos.clear();
            self.sizes.clear();
            self.entries = 0;
            self.manifest_bytes = 0;
        }
        self.entries += 1;
        self.manifest_bytes += bytes;
    }

    fn removed(&mut self, entries: usize, bytes: usize) {
        self.entries -= entries;
        self.manifest_bytes -= bytes;
        self.generation += 1;
    }
}

impl Index {
    pub fn new(scope: Scope) -> Index {
        Index {
            scope,
            inner: Mutex::new(Inner::default()),
        }
    }

    /// The index for a medium: `Sole` where this process is its only writer.
    pub fn for_medium(sole_writer: bool) -> Index {
        Index::new(if sole_writer {
            Scope::Sole
        } else {
            Scope::Shared(SHARED_BLOB_TTL)
        })
    }

    /// Whether tags and manifests are indexed.
    fn whole(&self) -> bool {
        self.scope == Scope::Sole
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().expect("registry index")
    }

    /// Taken before reading the medium, handed to the insert of what was read.
    pub fn generation(&self) -> Generation {
        Generation(self.lock().generation)
    }

    /// Runs `f` on the index if `seen` is still current.
    fn fill(&self, seen: Generation, f: impl FnOnce(&mut Inner)) {
        let mut inner = self.lock();
        if inner.generation == seen.0 {
            f(&mut inner);
        }
    }

    pub fn tag(&self, repo: &str, tag: &str) -> Option<Digest> {
        if !self.whole() {
            return None;
        }
        self.lock().repos.get(repo)?.tags.get(tag).cloned()
    }

    pub fn insert_tag(&self, seen: Generation, repo: &str, tag: &str, digest: &Digest) {
        if !self.whole() {
            return;
        }
        self.fill(seen, |inner| {
            inner.admit(0);
            let old = inner
                .repo(repo)
                .tags
                .insert(tag.to_string(), digest.clone());
            if old.is_some() {
                inner.entries -= 1;
            }
        });
    }

    /// Removes what `f` removes from one repository's entries (true: one entry), and moves
    /// the generation on whether or not there was anything.
    fn forget_in(&self, repo: &str, f: impl FnOnce(&mut Repo) -> bool) {
        let mut inner = self.lock();
        let n = inner.repos.get_mut(repo).map_or(0, |r| usize::from(f(r)));
        inner.removed(n, 0);
    }

    /// After a tag was written or deleted.
    pub fn forget_tag(&self, repo: &str, tag: &str) {
        self.forget_in(repo, |r| r.tags.remove(tag).is_some());
    }

    pub fn manifest(&self, repo: &str, digest: &Digest) -> Option<StoredManifest> {
        if !self.whole() {
            return None;
        }
        self.lock().repos.get(repo)?.manifests.get(digest).cloned()
    }

    pub fn insert_manifest(&self, seen: Generation, repo: &str, m: &StoredManifest) {
        let bytes = m.bytes.len();
        if bytes > MAX_INDEXED_MANIFEST || !self.whole() {
            return;
        }
        self.fill(seen, |inner| {
            inner.admit(bytes);
            if let Some(old) = inner
                .repo(repo)
                .manifests
                .insert(m.digest.clone(), m.clone())
            {
                inner.entries -= 1;
                inner.manifest_bytes -= old.bytes.len();
            }
        });
    }

    /// After a manifest was deleted (or a delete failed midway): the manifest and every tag
    /// that pointed at it.
    pub fn forget_manifest(&self, repo: &str, digest: &Digest) {
        let mut inner = self.lock();
        let (mut n, mut bytes) = (0, 0);
        if let Some(r) = inner.repos.get_mut(repo) {
            if let Some(m) = r.manifests.remove(digest) {
                n += 1;
                bytes += m.bytes.len();
            }
            let before = r.tags.len();
            r.tags.retain(|_, d| d != digest);
            n += before - r.tags.len();
        }
        inner.removed(n, bytes);
    }

    /// The size of a blob the repository links, if both facts are indexed (and, on a shared
    /// medium, the link was read recently enough).
    pub fn blob_size(&self, repo: &str, digest: &Digest) -> Option<u64> {
        let inner = self.lock();
        let read = inner.repos.get(repo)?.links.get(digest)?;
        if let Scope::Shared(ttl) = self.scope
            && read.elapsed() > ttl
        {
            return None;
        }
        inner.sizes.get(digest).copied()
    }

    /// A blob read to be linked into `repo` and of `size` bytes.
    pub fn insert_blob(&self, seen: Generation, repo: &str, digest: &Digest, size: u64) {
        self.fill(seen, |inner| {
            if !inner.sizes.contains_key(digest) {
                inner.admit(0);
                inner.sizes.insert(digest.clone(), size);
            }
            if !inner.repo(repo).links.contains_key(digest) {
                inner.admit(0);
            }
            // Read again (a shared medium's entry had expired): believed anew from now.
            inner
                .repo(repo)
                .links
                .insert(digest.clone(), Instant::now());
        });
    }

    /// After a link was removed.
    pub fn forget_link(&self, repo: &str, digest: &Digest) {
        self.forget_in(repo, |r| r.links.remove(digest).is_some());
    }

    /// After the GC freed a blob: its size and its links everywhere.
    pub fn forget_blob(&self, digest: &Digest) {
        let mut inner = self.lock();
        let mut n = usize::from(inner.sizes.remove(digest).is_some());
        for r in inner.repos.values_mut() {
            n += usize::from(r.links.remove(digest).is_some());
        }
        inner.removed(n, 0);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;
    use std::time::UNIX_EPOCH;

    fn digest(s: &str) -> Digest {
        Digest::sha256(s.as_bytes())
    }

    fn manifest(s: &str) -> StoredManifest {
        StoredManifest {
            digest: digest(s),
            media_type: "application/vnd.oci.image.manifest.v1+json".into(),
            bytes: Bytes::from(s.to_string()),
            pushed_at: UNIX_EPOCH,
        }
    }

    /// On a shared medium: no tags or manifests, blob facts within their bound only (a bound
    /// of zero has passed by the time of the next read; an hour has not).
    #[test]
    fn a_shared_index_holds_blob_facts_for_a_bounded_time_only() {
        let ix = Index::new(Scope::Shared(Duration::from_secs(3600)));
        let g = ix.generation();
        ix.insert_tag(g, "r", "t", &digest("a"));
        ix.insert_manifest(g, "r", &manifest("m"));
        ix.insert_blob(g, "r", &digest("b"), 3);
        assert_eq!(ix.tag("r", "t"), None);
        assert!(ix.manifest("r", &digest("m")).is_none());
        assert_eq!(ix.blob_size("r", &digest("b")), Some(3));
        ix.forget_link("r", &digest("b"));
        assert_eq!(
            ix.blob_size("r", &digest("b")),
            None,
            "this replica's own unlink"
        );

        let expired = Index::new(Scope::Shared(Duration::ZERO));
        expired.insert_blob(expired.generation(), "r", &digest("b"), 3);
        std::thread::sleep(Duration::from_millis(1));
        assert_eq!(expired.blob_size("r", &digest("b")), None);
    }

    /// A reader that read the medium before a write must not put the old value back after
    /// the write's removal.
    #[test]
    fn a_fill_that_raced_a_removal_is_dropped() {
        let ix = Index::new(Scope::Sole);
        let before = ix.generation();
        ix.forget_tag("r", "t");
        ix.insert_tag(before, "r", "t", &digest("old"));
        assert_eq!(ix.tag("r", "t"), None);
        let after = ix.generation();
        ix.insert_tag(after, "r", "t", &digest("new"));
        assert_eq!(ix.tag("r", "t"), Some(digest("new")));
    }

    #[test]
    fn deleting_a_manifest_forgets_it_and_its_tags_only() {
        let ix = Index::new(Scope::Sole);
        let (m, other) = (manifest("m"), manifest("o"));
        let g = ix.generation();
        ix.insert_manifest(g, "r", &m);
        ix.insert_manifest(g, "r", &other);
        ix.insert_tag(g, "r", "a", &m.digest);
        ix.insert_tag(g, "r", "b", &other.digest);
        ix.forget_manifest("r", &m.digest);
        assert!(ix.manifest("r", &m.digest).is_none());
        assert_eq!(ix.tag("r", "a"), None);
        assert_eq!(ix.tag("r", "b"), Some(other.digest.clone()));
        assert!(ix.manifest("r", &other.digest).is_some());
    }

    #[test]
    fn a_blob_is_known_per_repository_until_unlinked_or_freed() {
        let ix = Index::new(Scope::Sole);
        let d = digest("blob");
        let g = ix.generation();
        ix.insert_blob(g, "a", &d, 4);
        ix.insert_blob(g, "b", &d, 4);
        assert_eq!(ix.blob_size("a", &d), Some(4));
        assert_eq!(ix.blob_size("c", &d), None, "not linked into c");
        ix.forget_link("a", &d);
        assert_eq!(ix.blob_size("a", &d), None);
        assert_eq!(ix.blob_size("b", &d), Some(4));
        ix.forget_blob(&d);
        assert_eq!(ix.blob_size("b", &d), None);
    }

    /// Past its caps the index starts over rather than grow: what it drops is read again.
    #[test]
    fn a_full_index_starts_over() {
        let ix = Index::new(Scope::Sole);
        let g = ix.generation();
        for i in 0..MAX_ENTRIES + 10 {
            ix.insert_tag(g, "r", &format!("t{i}"), &digest("m"));
        }
        let inner = ix.lock();
        assert!(inner.entries <= MAX_ENTRIES, "{}", inner.entries);
        assert_eq!(inner.entries, inner.repos["r"].tags.len());
    }

    /// A manifest too large to index is read from the medium each time.
    #[test]
    fn large_manifests_are_not_indexed() {
        let ix = Index::new(Scope::Sole);
        let big = "x".repeat(MAX_INDEXED_MANIFEST + 1);
        let m = manifest(&big);
        ix.insert_manifest(ix.generation(), "r", &m);
        assert!(ix.manifest("r", &m.digest).is_none());
    }
}
