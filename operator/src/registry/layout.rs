//! What the storage service (`store`) keeps where, whatever the medium: the key layout
//! (relative paths, `/`-separated: a file path under the filesystem root, an object key under
//! the S3 prefix), the stored formats (manifests, upload sessions) and the pure bookkeeping
//! decisions (tag writes, image listings).
//!
//! ```text
//! blobs/<alg>/<hex[..2]>/<hex>                            blob content, shared by repositories
//! uses/<alg>/<hex>                                        empty: the blob was just (re)used (GC
//!                                                         clock), where modification times
//!                                                         cannot be set (S3)
//! repositories/<name>/_layers/<alg>/<hex>                 empty: the repository links the blob
//! repositories/<name>/_manifests/<alg>/<hex>              one JSON metadata line, then the manifest bytes
//! repositories/<name>/_tags/<tag>                         the digest the tag points at
//! repositories/<name>/_pulls/<alg>/<hex>                  when the manifest was last pulled
//!                                                         (unix milliseconds, text), written
//!                                                         in batches (`pulls`)
//! repositories/<name>/_replication/<alg>/<hex>          the image's replication state per
//!                                                         destination (JSON, `ecr::replication`):
//!                                                         written by its push, settled by the
//!                                                         replicator (`replication`)
//! repositories/<name>/_referrers/<alg>/<hex>/<alg>-<hex>  referrer descriptor (JSON), by subject
//! repositories/<name>/_uploads/<id>/state                 upload session: JSON {offset, parts}
//! repositories/<name>/_uploads/<id>/parts/<start>-<rand>  one acknowledged chunk of it
//! ```
//! Names cannot collide with the `_` directories: a name component starts with `[a-z0-9]`.
//! The filesystem also keeps `tmp/` for files being written (see `fs`). Filesystem sessions
//! of earlier versions (`_uploads/<id>/{data,offset}`) are not resumed; the GC removes them.

use std::collections::BTreeMap;
use std::io;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use serde::{Deserialize, Serialize};

use super::digest::Digest;
use super::storage::{ImageInfo, ManifestRecord, StoredManifest, TagWrite};

pub const BLOBS: &str = "blobs";
pub const REPOSITORIES: &str = "repositories";
pub const USES: &str = "uses";

pub fn blob(d: &Digest) -> String {
    format!(
        "{BLOBS}/{}/{}/{}",
        d.algorithm().as_str(),
        &d.hex()[..2],
        d.hex()
    )
}

/// The "just used" marker of a blob.
pub fn marker(d: &Digest) -> String {
    by_digest(USES, d)
}

pub fn repo(name: &str) -> String {
    format!("{REPOSITORIES}/{name}")
}

fn by_digest(dir: &str, d: &Digest) -> String {
    format!("{dir}/{}/{}", d.algorithm().as_str(), d.hex())
}

pub fn links(name: &str) -> String {
    format!("{}/_layers", repo(name))
}

pub fn link(name: &str, d: &Digest) -> String {
    by_digest(&links(name), d)
}

pub fn manifests(name: &str) -> String {
    format!("{}/_manifests", repo(name))
}

pub fn manifest(name: &str, d: &Digest) -> String {
    by_digest(&manifests(name), d)
}

pub fn pulls(name: &str) -> String {
    format!("{}/_pulls", repo(name))
}

/// The last recorded pull time of manifest `d`.
pub fn pull(name: &str, d: &Digest) -> String {
    by_digest(&pulls(name), d)
}

pub fn replications(name: &str) -> String {
    format!("{}/_replication", repo(name))
}

/// The replication record of manifest `d`.
pub fn replication(name: &str, d: &Digest) -> String {
    by_digest(&replications(name), d)
}

pub fn tags(name: &str) -> String {
    format!("{}/_tags", repo(name))
}

pub fn tag(name: &str, tag: &str) -> String {
    format!("{}/{tag}", tags(name))
}

pub fn referrers(name: &str, subject: &Digest) -> String {
    by_digest(&format!("{}/_referrers", repo(name)), subject)
}

/// The referrer entry of manifest `d` under its subject's directory.
pub fn referrer(name: &str, subject: &Digest, d: &Digest) -> String {
    format!("{}/{}", referrers(name, subject), referrer_name(d))
}

pub fn referrer_name(d: &Digest) -> String {
    format!("{}-{}", d.algorithm().as_str(), d.hex())
}

/// The manifest digest a referrer entry's name stands for.
pub fn parse_referrer_name(name: &str) -> Option<Digest> {
    let (alg, hex) = name.split_once('-')?;
    digest_from_parts(alg, hex)
}

pub fn uploads(name: &str) -> String {
    format!("{}/_uploads", repo(name))
}

pub fn upload(name: &str, id: &str) -> String {
    format!("{}/{id}", uploads(name))
}

pub fn upload_state(name: &str, id: &str) -> String {
    format!("{}/state", upload(name, id))
}

pub fn upload_part(name: &str, id: &str, part: &str) -> String {
    format!("{}/parts/{part}", upload(name, id))
}

/// `<alg>` and `<hex>` path components back to a digest; None for anything else.
pub fn digest_from_parts(alg: &str, hex: &str) -> Option<Digest> {
    format!("{alg}:{hex}").parse().ok()
}

/// A path component that marks its parent as a repository (`_tags`, `_layers`...).
pub fn is_repository_marker(component: &str) -> bool {
    component.starts_with('_')
}

pub fn millis(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

/// 128 random bits in hex: upload session ids and temporary names.
pub fn random_id() -> io::Result<String> {
    let mut b = [0u8; 16];
    getrandom::fill(&mut b).map_err(|e| io::Error::other(e.to_string()))?;
    Ok(super::digest::to_hex(&b))
}

pub fn valid_upload_id(id: &str) -> bool {
    id.len() == 32 && id.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
}

/// The first line of a stored manifest: what listings and the GC need without parsing the
/// manifest again.
#[derive(Serialize, Deserialize, Debug, Clone, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct ManifestMeta {
    pub media_type: String,
    /// Milliseconds since the Unix epoch.
    pub pushed_at: u64,
    #[serde(default)]
    pub blobs: Vec<Digest>,
    #[serde(default)]
    pub children: Vec<Digest>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subject: Option<Digest>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub artifact_type: Option<String>,
    #[serde(default)]
    pub content_size: u64,
    /// Manifest bytes.
    #[serde(default)]
    pub size: u64,
}

impl ManifestMeta {
    pub fn new(record: ManifestRecord, size: usize, pushed_at: SystemTime) -> ManifestMeta {
        ManifestMeta {
            media_type: record.media_type,
            pushed_at: millis(pushed_at),
            blobs: record.blobs,
            children: record.children,
            subject: record.subject.map(|(s, _)| s),
            artifact_type: record.artifact_type,
            content_size: record.content_size,
            size: size as u64,
        }
    }

    pub fn pushed_at(&self) -> SystemTime {
        UNIX_EPOCH + Duration::from_millis(self.pushed_at)
    }
}

/// The stored form of a manifest: the metadata line, then the bytes as pushed.
pub fn encode_manifest(meta: &ManifestMeta, bytes: &[u8]) -> io::Result<Vec<u8>> {
    let mut buf = serde_json::to_vec(meta).map_err(io::Error::other)?;
    buf.push(b'\n');
    buf.extend_from_slice(bytes);
    Ok(buf)
}

/// Splits a stored manifest into its metadata and its bytes (sharing `raw`).
pub fn decode_manifest(raw: Bytes) -> io::Result<(ManifestMeta, Bytes)> {
    let nl = raw
        .iter()
        .position(|&b| b == b'\n')
        .ok_or_else(|| io::Error::other("stored manifest has no metadata line"))?;
    let meta: ManifestMeta = serde_json::from_slice(&raw[..nl]).map_err(io::Error::other)?;
    Ok((meta, raw.slice(nl + 1..)))
}

/// A stored manifest from its stored form.
pub fn stored_manifest(digest: Digest, raw: Bytes) -> io::Result<StoredManifest> {
    let (meta, bytes) = decode_manifest(raw)?;
    Ok(StoredManifest {
        digest,
        pushed_at: meta.pushed_at(),
        media_type: meta.media_type,
        bytes,
    })
}

/// An upload session as stored in its `state` object: each chunk is its own object, and the
/// state lists the acknowledged ones (so that replicas can append in turn, see `store`).
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
    /// The part's sha256 digest, computed while it streamed in. Only a session's first part
    /// has one: when it is the only part (a client that sent the whole blob in one request),
    /// completing the session verifies the blob without reading it again.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sha256: Option<String>,
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

    /// The state after acknowledging one more part (and its digest, if it was hashed).
    pub fn with_part(&self, name: String, size: u64, sha256: Option<&Digest>) -> SessionState {
        let mut next = self.clone();
        next.offset += size;
        next.parts.push(SessionPart {
            name,
            size,
            sha256: sha256.map(Digest::to_string),
        });
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

/// What a tag write does, given where the tag points now.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum TagPlan {
    /// Nothing to write: the answer is final (`Unchanged` or `Conflict`).
    Done(TagWrite),
    /// Write the tag; the answer once written.
    Write(TagWrite),
}

pub fn plan_tag(current: Option<&Digest>, digest: &Digest, overwrite: bool) -> TagPlan {
    match current {
        Some(c) if c == digest => TagPlan::Done(TagWrite::Unchanged),
        Some(c) if !overwrite => TagPlan::Done(TagWrite::Conflict(c.clone())),
        Some(c) => TagPlan::Write(TagWrite::Moved(c.clone())),
        None => TagPlan::Write(TagWrite::Created),
    }
}

/// A stored pull time: unix milliseconds as text.
pub fn encode_pull(t: SystemTime) -> Bytes {
    Bytes::from(millis(t).to_string())
}

/// None for anything but a stored pull time.
pub fn decode_pull(raw: &[u8]) -> Option<SystemTime> {
    let ms: u64 = std::str::from_utf8(raw).ok()?.trim().parse().ok()?;
    Some(UNIX_EPOCH + Duration::from_millis(ms))
}

/// A repository's images from its manifests' metadata, its tags and its recorded pull times,
/// newest first.
pub fn images(
    manifests: Vec<(Digest, ManifestMeta)>,
    tags: &[(String, Digest)],
    pulls: &BTreeMap<Digest, SystemTime>,
) -> Vec<ImageInfo> {
    let by_digest: BTreeMap<Digest, Vec<String>> = super::storage::tags_by_digest(tags);
    let mut out: Vec<ImageInfo> = manifests
        .into_iter()
        .map(|(d, meta)| ImageInfo {
            tags: by_digest.get(&d).cloned().unwrap_or_default(),
            pushed_at: meta.pushed_at(),
            last_pulled_at: pulls.get(&d).copied(),
            digest: d,
            media_type: meta.media_type,
            artifact_type: meta.artifact_type,
            manifest_size: meta.size,
            content_size: meta.content_size,
            subject: meta.subject,
        })
        .collect();
    out.sort_by(|a, b| b.pushed_at.cmp(&a.pushed_at).then(a.digest.cmp(&b.digest)));
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn d(s: &str) -> Digest {
        Digest::sha256(s.as_bytes())
    }

    #[test]
    fn keys_follow_the_documented_layout() {
        let x = d("x");
        let h = x.hex().to_string();
        assert_eq!(blob(&x), format!("blobs/sha256/{}/{h}", &h[..2]));
        assert_eq!(
            link("a/b", &x),
            format!("repositories/a/b/_layers/sha256/{h}")
        );
        assert_eq!(
            manifest("a", &x),
            format!("repositories/a/_manifests/sha256/{h}")
        );
        assert_eq!(tag("a/b", "v1.0"), "repositories/a/b/_tags/v1.0");
        assert_eq!(pull("a", &x), format!("repositories/a/_pulls/sha256/{h}"));
        let m = d("m");
        assert_eq!(
            referrer("a", &x, &m),
            format!("repositories/a/_referrers/sha256/{h}/sha256-{}", m.hex())
        );
        assert_eq!(parse_referrer_name(&referrer_name(&m)), Some(m));
        assert_eq!(parse_referrer_name("sha256-zz"), None);
        assert_eq!(upload("a", "ff"), "repositories/a/_uploads/ff");
        assert_eq!(upload_state("a", "ff"), "repositories/a/_uploads/ff/state");
        assert_eq!(
            upload_part("a", "ff", "p"),
            "repositories/a/_uploads/ff/parts/p"
        );
        assert_eq!(marker(&x), format!("uses/sha256/{h}"));
        // sha512 digests keep their own algorithm directory.
        let s = Digest::of(super::super::digest::Algorithm::Sha512, b"x");
        assert!(blob(&s).starts_with("blobs/sha512/"));
        assert_eq!(digest_from_parts("sha512", s.hex()), Some(s));
    }

    #[test]
    fn manifest_encoding_round_trips() {
        let meta = ManifestMeta {
            media_type: "application/vnd.oci.image.manifest.v1+json".into(),
            pushed_at: 1234,
            blobs: vec![d("a")],
            subject: Some(d("s")),
            size: 2,
            ..Default::default()
        };
        let raw = encode_manifest(&meta, b"{}").unwrap();
        let (back, bytes) = decode_manifest(Bytes::from(raw)).unwrap();
        assert_eq!(back, meta);
        assert_eq!(&bytes[..], b"{}");
        assert!(decode_manifest(Bytes::from_static(b"{}")).is_err());
    }

    #[test]
    fn session_state_encoding() {
        let s = SessionState::default()
            .with_part(part_name(0, "ab12cd34"), 5, Some(&Digest::sha256(b"12345")))
            .with_part(part_name(5, "0011aabb"), 7, None);
        assert_eq!(s.offset, 12);
        assert_eq!(s.parts[1].name, "00000000000000000005-0011aabb");
        assert_eq!(SessionState::decode(&s.encode()).unwrap(), s);
        // A state stored before parts carried their digest still reads.
        let old = br#"{"offset":5,"parts":[{"name":"00000000000000000000-ab12cd34","size":5}]}"#;
        assert_eq!(SessionState::decode(old).unwrap().parts[0].sha256, None);
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
    fn tag_plans() {
        let (a, b) = (d("a"), d("b"));
        assert_eq!(plan_tag(None, &a, false), TagPlan::Write(TagWrite::Created));
        assert_eq!(
            plan_tag(Some(&a), &a, false),
            TagPlan::Done(TagWrite::Unchanged)
        );
        assert_eq!(
            plan_tag(Some(&b), &a, false),
            TagPlan::Done(TagWrite::Conflict(b.clone()))
        );
        assert_eq!(
            plan_tag(Some(&b), &a, true),
            TagPlan::Write(TagWrite::Moved(b))
        );
    }

    #[test]
    fn images_are_newest_first_with_their_tags() {
        let (a, b) = (d("a"), d("b"));
        let meta = |t| ManifestMeta {
            pushed_at: t,
            ..Default::default()
        };
        let tags = vec![("z".to_string(), a.clone()), ("y".to_string(), a.clone())];
        let pulled = UNIX_EPOCH + Duration::from_millis(7);
        let pulls = BTreeMap::from([(a.clone(), pulled)]);
        let out = images(
            vec![(a.clone(), meta(1)), (b.clone(), meta(2))],
            &tags,
            &pulls,
        );
        assert_eq!(out[0].digest, b);
        assert!(out[0].tags.is_empty());
        assert_eq!(out[0].last_pulled_at, None);
        assert_eq!(out[1].tags, vec!["y", "z"]);
        assert_eq!(out[1].last_pulled_at, Some(pulled));
    }

    #[test]
    fn pull_times_round_trip_and_garbage_is_none() {
        let t = UNIX_EPOCH + Duration::from_millis(1_700_000_000_123);
        assert_eq!(decode_pull(&encode_pull(t)), Some(t));
        assert_eq!(decode_pull(b"soon"), None);
    }
}
