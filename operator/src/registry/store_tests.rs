//! The storage service and its backends' contract, each test on the filesystem and on S3
//! (in memory). "Replicas" are several stores on one medium: on S3, what several registry
//! processes are; on a filesystem, a restarted process (one process owns a root).

use std::io;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use futures::StreamExt;
use object_store::ObjectStore;
use object_store::memory::InMemory;

use super::backend::{Backend, Listing, ObjectInfo, StagedWrite, Versioned};
use super::digest::Digest;
use super::layout::{self, SessionState};
use super::storage::*;
use super::store::Store;
use super::{FsStorage, S3Storage};

#[derive(Clone, Copy, Debug)]
enum Kind {
    Fs,
    S3,
}

const BOTH: [Kind; 2] = [Kind::Fs, Kind::S3];

/// One medium, opened as often as needed.
enum Medium {
    Dir(tempfile::TempDir),
    Bucket(Arc<dyn ObjectStore>),
}

impl Medium {
    fn new(kind: Kind) -> Medium {
        match kind {
            Kind::Fs => Medium::Dir(tempfile::tempdir().unwrap()),
            Kind::S3 => Medium::Bucket(Arc::new(InMemory::new())),
        }
    }

    fn fs(&self) -> FsStorage {
        match self {
            Medium::Dir(d) => FsStorage::open(d.path()).unwrap(),
            Medium::Bucket(_) => unreachable!("not a directory"),
        }
    }

    fn s3(&self) -> S3Storage {
        match self {
            Medium::Bucket(b) => S3Storage::new(b.clone(), "/reg/istry/", true),
            Medium::Dir(_) => unreachable!("not a bucket"),
        }
    }

    fn replica(&self) -> Arc<dyn Storage> {
        match self {
            Medium::Dir(_) => Arc::new(self.fs()),
            Medium::Bucket(_) => Arc::new(self.s3()),
        }
    }
}

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

async fn manifest(s: &dyn Storage, repo: &str, blob: &Digest, salt: &str) -> Digest {
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

/// What the store relies on from every backend.
async fn backend_contract<B: Backend>(b: &B) {
    // Conditional writes: create only if absent, replace only the version read.
    assert!(b.put_if("x/k", Bytes::from("1"), None).await.unwrap());
    assert!(!b.put_if("x/k", Bytes::from("2"), None).await.unwrap());
    let v1 = b.read("x/k").await.unwrap().unwrap();
    assert_eq!(&v1.bytes[..], b"1");
    let version = v1.version.unwrap();
    assert!(
        b.put_if("x/k", Bytes::from("3"), Some(&version))
            .await
            .unwrap()
    );
    assert!(
        !b.put_if("x/k", Bytes::from("4"), Some(&version))
            .await
            .unwrap()
    );
    assert_eq!(&b.read("x/k").await.unwrap().unwrap().bytes[..], b"3");
    // Staged writes: nothing visible until committed; aborted or dropped, nothing at all.
    let mut w = b.begin("x/staged").await.unwrap();
    w.write(Bytes::from("abc")).await.unwrap();
    assert!(b.head("x/staged").await.unwrap().is_none());
    w.commit().await.unwrap();
    assert_eq!(b.head("x/staged").await.unwrap().unwrap().size, 3);
    let mut w = b.begin("x/aborted").await.unwrap();
    w.write(Bytes::from("abc")).await.unwrap();
    w.abort().await;
    let mut w = b.begin("x/dropped").await.unwrap();
    w.write(Bytes::from("abc")).await.unwrap();
    drop(w);
    // Listings: recursive with info, or one level.
    b.put("x/d/e/f", Bytes::from("deep")).await.unwrap();
    let mut all: Vec<String> = b
        .list("x")
        .await
        .unwrap()
        .into_iter()
        .map(|(k, _)| k)
        .collect();
    all.sort();
    assert_eq!(all, vec!["x/d/e/f", "x/k", "x/staged"]);
    let top = b.list_dir("x").await.unwrap();
    assert_eq!(
        (top.objects, top.dirs),
        (vec!["k".into(), "staged".into()], vec!["d".into()])
    );
    // Ranges, and what is not there.
    let r = b.get("x/d/e/f", Some((1, 3))).await.unwrap().unwrap();
    assert_eq!(r.size, 4);
    assert_eq!(read_all(r).await, b"ee");
    assert!(b.get("x/none", None).await.unwrap().is_none());
    assert!(b.read("x/none").await.unwrap().is_none());
    assert!(b.delete("x/k").await.unwrap());
    assert!(!b.delete("x/k").await.unwrap());
    b.delete_all("x/d").await.unwrap();
    assert!(b.list("x/d").await.unwrap().is_empty());
    if B::CAN_TOUCH {
        assert!(b.touch("x/staged").await.unwrap());
        assert!(!b.touch("x/none").await.unwrap());
    }
}

#[tokio::test]
async fn backends_keep_the_contract() {
    let m = Medium::new(Kind::Fs);
    backend_contract(m.fs().backend()).await;
    let m = Medium::new(Kind::S3);
    backend_contract(m.s3().backend()).await;
}

#[tokio::test]
async fn blob_round_trip_ranges_and_digest_mismatch() {
    for k in BOTH {
        let m = Medium::new(k);
        let s = m.replica();
        let content = b"hello, object storage";
        let d = Digest::sha256(content);
        let n = s
            .put_blob("r", &d, body(vec![&content[..5], &content[5..]]), 1 << 20)
            .await
            .unwrap();
        assert_eq!(n, content.len() as u64);
        assert_eq!(s.blob_size("r", &d).await.unwrap(), Some(n));
        assert_eq!(s.blob_size("other", &d).await.unwrap(), None);
        let r = s.read_blob("r", &d, Some((7, 13))).await.unwrap().unwrap();
        assert_eq!(r.size, content.len() as u64);
        assert_eq!(read_all(r).await, b"object", "{k:?}");
        // An empty range, at the end.
        let r = s.read_blob("r", &d, Some((n, n))).await.unwrap().unwrap();
        assert!(read_all(r).await.is_empty());

        // Wrong content under a digest: refused, nothing stored under that key.
        let wrong = Digest::sha256(b"other");
        let e = s.put_blob("r", &wrong, body(vec![b"nope"]), 1 << 20).await;
        assert!(matches!(e, Err(StorageError::DigestMismatch { .. })));
        assert_eq!(s.blob_size("r", &wrong).await.unwrap(), None);
        assert!(!s.mount_blob("x", &wrong, "r").await.unwrap(), "{k:?}");
    }
}

#[tokio::test]
async fn large_blob_streams_and_verifies() {
    for k in BOTH {
        let m = Medium::new(k);
        let s = m.replica();
        // Three S3 parts' worth, in uneven chunks.
        let content: Vec<u8> = (0..(10 * 1024 * 1024 + 12345))
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
        assert!(read_all(r).await == content, "{k:?}");
    }
}

/// The session started on one replica continues on the other.
#[tokio::test]
async fn upload_session_spans_replicas() {
    for k in BOTH {
        let m = Medium::new(k);
        let (a, b) = (m.replica(), m.replica());
        let st = a.start_upload("r").await.unwrap();
        a.append_upload("r", &st.id, Some(0), Some(3), body(vec![b"abc"]), 100)
            .await
            .unwrap();
        let status = b.upload_status("r", &st.id).await.unwrap().unwrap();
        assert_eq!(status.offset, 3);
        // Out of order on the other replica: refused, nothing changes.
        let e = b
            .append_upload("r", &st.id, Some(1), None, body(vec![b"x"]), 100)
            .await;
        assert!(matches!(
            e,
            Err(StorageError::RangeMismatch { offset: 3, .. })
        ));
        // A short body, or one over the limit: refused, the session stays at 3.
        let e = b
            .append_upload("r", &st.id, Some(3), Some(5), body(vec![b"de"]), 100)
            .await;
        assert!(matches!(e, Err(StorageError::SizeMismatch { .. })));
        let e = b
            .append_upload("r", &st.id, None, None, body(vec![b"defg"]), 6)
            .await;
        assert!(matches!(e, Err(StorageError::TooLarge { limit: 6 })));
        b.append_upload("r", &st.id, Some(3), None, body(vec![b"def"]), 100)
            .await
            .unwrap();
        let d = Digest::sha256(b"abcdef");
        assert_eq!(a.complete_upload("r", &st.id, &d).await.unwrap(), 6);
        let r = b.read_blob("r", &d, None).await.unwrap().unwrap();
        assert_eq!(read_all(r).await, b"abcdef");
        // The session is gone everywhere, parts included.
        assert!(b.upload_status("r", &st.id).await.unwrap().is_none());
        assert!(!a.cancel_upload("r", &st.id).await.unwrap());
        let report = a.delete_unreferenced_blobs(Duration::ZERO).await.unwrap();
        assert_eq!(report.uploads_expired, 0, "{k:?}: nothing left of it");
    }
}

async fn stale_state_loses<B: Backend>(s: &Store<B>) {
    let st = s.start_upload("r").await.unwrap();
    let key = layout::upload_state("r", &st.id);
    let stale = s.backend().read(&key).await.unwrap().unwrap().version;
    s.append_upload("r", &st.id, None, None, body(vec![b"ab"]), 100)
        .await
        .unwrap();
    // A replica that read the state before that append cannot overwrite it.
    let next = SessionState::default().with_part(layout::part_name(0, "ff"), 1, None);
    let wrote = s
        .backend()
        .put_if(&key, next.encode().into(), stale.as_deref());
    assert!(!wrote.await.unwrap());
    let status = s.upload_status("r", &st.id).await.unwrap().unwrap();
    assert_eq!(status.offset, 2);
}

#[tokio::test]
async fn a_stale_session_state_loses_the_race() {
    stale_state_loses(&Medium::new(Kind::Fs).fs()).await;
    stale_state_loses(&Medium::new(Kind::S3).s3()).await;
}

#[tokio::test]
async fn complete_with_the_wrong_digest_discards_the_session() {
    for k in BOTH {
        let m = Medium::new(k);
        let s = m.replica();
        let st = s.start_upload("r").await.unwrap();
        s.append_upload("r", &st.id, None, None, body(vec![b"abc"]), 100)
            .await
            .unwrap();
        let wrong = Digest::sha256(b"xyz");
        let e = s.complete_upload("r", &st.id, &wrong).await;
        assert!(matches!(e, Err(StorageError::DigestMismatch { .. })));
        assert!(s.upload_status("r", &st.id).await.unwrap().is_none());
        assert!(!s.mount_blob("x", &wrong, "r").await.unwrap(), "{k:?}");
    }
}

#[tokio::test]
async fn tags_manifests_listings_and_gc() {
    for k in BOTH {
        let m = Medium::new(k);
        let (a, b) = (m.replica(), m.replica());
        let layer = Digest::sha256(b"layer");
        a.put_blob("team/app", &layer, body(vec![b"layer"]), 100)
            .await
            .unwrap();
        let m1 = manifest(&*a, "team/app", &layer, "1").await;
        let m2 = manifest(&*a, "team/app", &layer, "2").await;
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
            b.put_tag("team/app", "v1", &m2, true).await.unwrap(),
            TagWrite::Unchanged
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
        assert!(!a.delete_manifest("team/app", &m2).await.unwrap());
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
        assert_eq!((r.blobs_deleted, r.blobs_kept_referenced), (1, 1), "{k:?}");
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
}

/// A DELETE of the manifest that lands between a push's manifest write and its tag write:
/// the tag write finds no manifest and says so (MANIFEST_UNKNOWN), not an I/O failure.
#[tokio::test]
async fn tagging_a_manifest_deleted_meanwhile_is_manifest_unknown() {
    for k in BOTH {
        let m = Medium::new(k);
        let s = m.replica();
        let layer = Digest::sha256(b"layer");
        s.put_blob("r", &layer, body(vec![b"layer"]), 100)
            .await
            .unwrap();
        let d = manifest(&*s, "r", &layer, "1").await;
        assert!(s.delete_manifest("r", &d).await.unwrap());
        let e = s.put_tag("r", "v1", &d, true).await;
        assert!(
            matches!(e, Err(StorageError::ManifestUnknown(_))),
            "{k:?} {e:?}"
        );
        assert_eq!(s.resolve_tag("r", "v1").await.unwrap(), None);
    }
}

/// Pushes racing to create one immutable tag with different manifests: exactly one wins,
/// every other sees the winner as a conflict. On S3, from four replicas over a store whose
/// requests take a while (as over a network), so that the races are real.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn racing_pushes_cannot_both_set_an_immutable_tag() {
    use object_store::throttle::{ThrottleConfig, ThrottledStore};
    let config = ThrottleConfig {
        wait_get_per_call: Duration::from_millis(3),
        wait_put_per_call: Duration::from_millis(3),
        ..Default::default()
    };
    let bucket = Medium::Bucket(Arc::new(ThrottledStore::new(InMemory::new(), config)));
    let dir = Medium::new(Kind::Fs);
    let fs = dir.replica();
    let setups: Vec<Vec<Arc<dyn Storage>>> = vec![
        (0..4).map(|_| bucket.replica()).collect(),
        // One process owns a root: its pushes race within it.
        vec![fs; 4],
    ];
    for replicas in setups {
        let layer = Digest::sha256(b"l");
        replicas[0]
            .put_blob("r", &layer, body(vec![b"l"]), 10)
            .await
            .unwrap();
        let mut digests = Vec::new();
        for i in 0..8 {
            digests.push(manifest(&*replicas[0], "r", &layer, &i.to_string()).await);
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
}

#[tokio::test]
async fn gc_expires_idle_sessions() {
    for k in BOTH {
        let m = Medium::new(k);
        let s = m.replica();
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
        assert_eq!(r.uploads_expired, 1, "{k:?}");
        assert!(s.upload_status("r", &st.id).await.unwrap().is_none());
    }
}

/// Sessions of one part and of several, for content stored or not yet: the same blob.
#[tokio::test]
async fn sessions_complete_whether_or_not_the_blob_exists() {
    for k in BOTH {
        let m = Medium::new(k);
        let s = m.replica();
        let d = Digest::sha256(b"abcdef");
        for (repo, chunks) in [
            ("one", vec![&b"abcdef"[..]]),
            ("two", vec![&b"abcdef"[..]]),
            ("three", vec![&b"abc"[..], &b"def"[..]]),
        ] {
            let st = s.start_upload(repo).await.unwrap();
            for c in chunks {
                s.append_upload(repo, &st.id, None, None, body(vec![c]), 100)
                    .await
                    .unwrap();
            }
            assert_eq!(s.complete_upload(repo, &st.id, &d).await.unwrap(), 6);
            let r = s.read_blob(repo, &d, None).await.unwrap().unwrap();
            assert_eq!(read_all(r).await, b"abcdef", "{k:?} {repo}");
        }
        // Just stored or just reused: fresh.
        let r = s
            .delete_unreferenced_blobs(Duration::from_secs(3600))
            .await
            .unwrap();
        assert_eq!((r.blobs_deleted, r.blobs_kept_fresh), (0, 1), "{k:?}");
    }
}

/// A backend that, once armed, stops at the first delete of a key containing `at` until the
/// test lets it go: to interleave a request into the middle of a GC.
struct Paused<B> {
    inner: B,
    at: &'static str,
    armed: std::sync::atomic::AtomicBool,
    reached: tokio::sync::Notify,
    go: tokio::sync::Notify,
}

impl<B: Backend> Paused<B> {
    fn new(inner: B, at: &'static str) -> Paused<B> {
        Paused {
            inner,
            at,
            armed: false.into(),
            reached: tokio::sync::Notify::new(),
            go: tokio::sync::Notify::new(),
        }
    }
}

impl<B: Backend> Backend for Paused<B> {
    type Writer = B::Writer;
    const CAN_TOUCH: bool = B::CAN_TOUCH;
    const CAN_RENAME: bool = B::CAN_RENAME;
    const SOLE_WRITER: bool = B::SOLE_WRITER;

    async fn head(&self, key: &str) -> io::Result<Option<ObjectInfo>> {
        self.inner.head(key).await
    }
    async fn get(&self, key: &str, range: Option<(u64, u64)>) -> io::Result<Option<BlobRead>> {
        self.inner.get(key, range).await
    }
    async fn read(&self, key: &str) -> io::Result<Option<Versioned>> {
        self.inner.read(key).await
    }
    async fn put(&self, key: &str, bytes: Bytes) -> io::Result<()> {
        self.inner.put(key, bytes).await
    }
    async fn put_if(&self, key: &str, bytes: Bytes, version: Option<&str>) -> io::Result<bool> {
        self.inner.put_if(key, bytes, version).await
    }
    async fn delete(&self, key: &str) -> io::Result<bool> {
        use std::sync::atomic::Ordering;
        if key.contains(self.at) && self.armed.swap(false, Ordering::SeqCst) {
            self.reached.notify_one();
            self.go.notified().await;
        }
        self.inner.delete(key).await
    }
    async fn delete_all(&self, prefix: &str) -> io::Result<()> {
        self.inner.delete_all(prefix).await
    }
    async fn list(&self, prefix: &str) -> io::Result<Vec<(String, ObjectInfo)>> {
        self.inner.list(prefix).await
    }
    async fn list_dir(&self, prefix: &str) -> io::Result<Listing> {
        self.inner.list_dir(prefix).await
    }
    async fn begin(&self, key: &str) -> io::Result<Self::Writer> {
        self.inner.begin(key).await
    }
    async fn touch(&self, key: &str) -> io::Result<bool> {
        self.inner.touch(key).await
    }
    async fn rename(&self, from: &str, to: &str) -> io::Result<()> {
        self.inner.rename(from, to).await
    }
    async fn sweep_staging(&self, cutoff: std::time::SystemTime) -> io::Result<u64> {
        self.inner.sweep_staging(cutoff).await
    }
}

/// The GC frees a blob, and the same blob is pushed again (201) before the GC is done: the
/// layer stays readable. Its link is deleted with the blob, so a push after the sweep of that
/// blob creates the link again.
async fn repush_during_gc_stays_readable<B: Backend>(backend: B) {
    let s = Arc::new(Store::with_backend(Paused::new(backend, "/_layers/")));
    let d = Digest::sha256(b"layer");
    s.put_blob("r", &d, body(vec![b"layer"]), 100)
        .await
        .unwrap();
    // Old enough to be freed; what the GC's staged writes start after it is not (a grace of
    // zero would be finer than the filesystem's clock).
    tokio::time::sleep(Duration::from_millis(60)).await;
    s.backend()
        .armed
        .store(true, std::sync::atomic::Ordering::SeqCst);
    let gc = tokio::spawn({
        let s = s.clone();
        async move { s.delete_unreferenced_blobs(Duration::from_millis(30)).await }
    });
    s.backend().reached.notified().await;
    // The GC is about to delete the link: push again meanwhile (it may have to wait).
    let mut push = tokio::spawn({
        let s = s.clone();
        let d = d.clone();
        async move { s.put_blob("r", &d, body(vec![b"layer"]), 100).await }
    });
    let early = tokio::time::timeout(Duration::from_millis(200), &mut push)
        .await
        .ok();
    s.backend().go.notify_one();
    assert_eq!(gc.await.unwrap().unwrap().blobs_deleted, 1);
    let pushed = match early {
        Some(done) => done,
        None => push.await,
    };
    assert_eq!(pushed.unwrap().unwrap(), 5);
    let r = s.read_blob("r", &d, None).await.unwrap();
    assert_eq!(
        read_all(r.expect("the re-pushed layer is readable")).await,
        b"layer"
    );
}

#[tokio::test]
async fn a_blob_pushed_again_during_gc_stays_readable() {
    let m = Medium::new(Kind::Fs);
    repush_during_gc_stays_readable(m.fs().into_backend()).await;
    let m = Medium::new(Kind::S3);
    repush_during_gc_stays_readable(m.s3().into_backend()).await;
}

/// A session whose part is gone, as a process killed between moving a session's only part
/// into its blob and removing the session leaves it: the blob stored, the state still
/// listing the part.
async fn session_whose_part_moved<B: Backend>(s: &Store<B>, content: &'static [u8]) -> String {
    let st = s.start_upload("r").await.unwrap();
    s.append_upload("r", &st.id, None, None, body(vec![content]), 100)
        .await
        .unwrap();
    let parts = format!("{}/parts", layout::upload("r", &st.id));
    for (key, _) in s.backend().list(&parts).await.unwrap() {
        assert!(s.backend().delete(&key).await.unwrap());
    }
    st.id
}

/// Where completing renames (a filesystem), the client retrying its PUT after that crash is
/// told the truth: the session said it held the bytes, and the blob is those bytes, so the
/// upload completes (crash point of e2e/registry-crashpoints: it used to answer 404 after a
/// status of 3 bytes). Proven by the sha256 recorded as the part streamed in: directly for
/// a sha256 digest, by hashing the blob for another algorithm. A digest whose blob is not
/// the session's content, or a blob gone too, ends the session unknown, linking nothing.
/// Where nothing renames (S3), a part never moves, and one gone is unknown.
async fn complete_after_a_crash_mid_completion<B: Backend>(s: &Store<B>) {
    let d = Digest::sha256(b"abc");
    s.put_blob("other", &d, body(vec![b"abc"]), 100)
        .await
        .unwrap();
    let id = session_whose_part_moved(s, b"abc").await;
    let done = s.complete_upload("r", &id, &d).await;
    if B::CAN_RENAME {
        assert_eq!(done.unwrap(), 3);
        let r = s.read_blob("r", &d, None).await.unwrap().unwrap();
        assert_eq!(read_all(r).await, b"abc");
    } else {
        assert!(
            matches!(done, Err(StorageError::UploadUnknown(_))),
            "{done:?}"
        );
        assert!(s.read_blob("r", &d, None).await.unwrap().is_none());
    }
    assert!(s.upload_status("r", &id).await.unwrap().is_none());

    // Another algorithm: the blob is hashed to check it.
    let d512 = Digest::of(super::digest::Algorithm::Sha512, b"def");
    s.put_blob("other", &d512, body(vec![b"def"]), 100)
        .await
        .unwrap();
    let id = session_whose_part_moved(s, b"def").await;
    let done = s.complete_upload("r", &id, &d512).await;
    assert_eq!(done.is_ok(), B::CAN_RENAME, "{done:?}");

    // Someone else's blob, named by a session that never held its bytes: unknown, not linked.
    let theirs = Digest::sha256(b"secret");
    s.put_blob("other", &theirs, body(vec![b"secret"]), 100)
        .await
        .unwrap();
    let id = session_whose_part_moved(s, b"ghi").await;
    let done = s.complete_upload("r", &id, &theirs).await;
    assert!(
        matches!(done, Err(StorageError::UploadUnknown(_))),
        "{done:?}"
    );
    assert!(s.read_blob("r", &theirs, None).await.unwrap().is_none());
    assert!(s.upload_status("r", &id).await.unwrap().is_none());

    // The blob gone as well (collected): unknown, the client pushes anew.
    let id = session_whose_part_moved(s, b"jkl").await;
    let done = s.complete_upload("r", &id, &Digest::sha256(b"jkl")).await;
    assert!(
        matches!(done, Err(StorageError::UploadUnknown(_))),
        "{done:?}"
    );
    assert!(s.upload_status("r", &id).await.unwrap().is_none());
}

#[tokio::test]
async fn completing_a_session_whose_part_moved_into_its_blob() {
    complete_after_a_crash_mid_completion(&Medium::new(Kind::Fs).fs()).await;
    complete_after_a_crash_mid_completion(&Medium::new(Kind::S3).s3()).await;
}

/// A PATCH racing the final PUT of its session: the PUT holds the session from hashing its
/// bytes to removing it, so the PATCH waits and then finds the session gone; the committed
/// blob is what was verified.
async fn patch_racing_completion_cannot_change_the_blob<B: Backend>(backend: B) {
    let s = Arc::new(Store::with_backend(Paused::new(backend, "/state")));
    let d = Digest::sha256(b"abc");
    let st = s.start_upload("r").await.unwrap();
    s.append_upload("r", &st.id, None, None, body(vec![b"abc"]), 100)
        .await
        .unwrap();
    s.backend()
        .armed
        .store(true, std::sync::atomic::Ordering::SeqCst);
    let complete = tokio::spawn({
        let (s, id, d) = (s.clone(), st.id.clone(), d.clone());
        async move { s.complete_upload("r", &id, &d).await }
    });
    // The blob is in place; the session is about to be removed.
    s.backend().reached.notified().await;
    let mut patch = tokio::spawn({
        let (s, id) = (s.clone(), st.id.clone());
        async move {
            s.append_upload("r", &id, None, None, body(vec![b"evil"]), 100)
                .await
        }
    });
    let early = tokio::time::timeout(Duration::from_millis(200), &mut patch)
        .await
        .ok();
    assert!(early.is_none(), "the PATCH waits for the completion");
    s.backend().go.notify_one();
    assert_eq!(complete.await.unwrap().unwrap(), 3);
    let patched = patch.await.unwrap();
    assert!(
        matches!(patched, Err(StorageError::UploadUnknown(_))),
        "{patched:?}"
    );
    let r = s.read_blob("r", &d, None).await.unwrap().unwrap();
    assert_eq!(read_all(r).await, b"abc");
}

#[tokio::test]
async fn a_patch_racing_the_final_put_cannot_change_the_blob() {
    let m = Medium::new(Kind::Fs);
    patch_racing_completion_cannot_change_the_blob(m.fs().into_backend()).await;
    let m = Medium::new(Kind::S3);
    patch_racing_completion_cannot_change_the_blob(m.s3().into_backend()).await;
}

/// fsck: a store pushed to is clean; a blob changed behind the store's back and a tag whose
/// manifest is gone are found, each once, named by key.
async fn fsck_finds_what_was_planted<B: Backend>(s: &Store<B>) {
    let blob = Digest::sha256(b"layer");
    s.put_blob("app", &blob, body(vec![b"layer"]), 1 << 20)
        .await
        .unwrap();
    let m = manifest(s, "app", &blob, "a").await;
    s.put_tag("app", "v1", &m, true).await.unwrap();
    let clean = super::fsck::check(s).await.unwrap();
    assert!(clean.clean(), "{:?}", clean.findings);
    assert_eq!((clean.blobs, clean.manifests, clean.tags), (1, 1, 1));

    s.backend()
        .put(&layout::blob(&blob), Bytes::from_static(b"tampered"))
        .await
        .unwrap();
    let gone = Digest::sha256(b"never pushed");
    s.backend()
        .put(&layout::tag("app", "stale"), Bytes::from(gone.to_string()))
        .await
        .unwrap();
    let r = super::fsck::check(s).await.unwrap();
    assert_eq!(r.findings.len(), 2, "{:?}", r.findings);
    assert!(r.findings.iter().any(|f| matches!(f,
        super::fsck::Finding::CorruptBlob { key, .. } if *key == layout::blob(&blob))));
    assert!(r.findings.iter().any(|f| matches!(f,
        super::fsck::Finding::DanglingTag { tag, .. } if tag == "stale")));
}

#[tokio::test]
async fn fsck_reports_a_clean_store_and_finds_planted_faults() {
    for kind in BOTH {
        let medium = Medium::new(kind);
        match kind {
            Kind::Fs => fsck_finds_what_was_planted(&medium.fs()).await,
            Kind::S3 => fsck_finds_what_was_planted(&medium.s3()).await,
        }
    }
}
