//! `GET /v2/<name>/_kubecs/images`: the one thing the ECR API needs from the registry that the
//! OCI API does not say: every image with its digest, tags, size and push time (ECR's
//! DescribeImages and ListImages). Read-only; authorized like `tags/list`, with
//! `ecr:DescribeImages`, or `ecr:ListImages` for `?view=ids` (digests and tags only, what
//! ListImages reveals).
//!
//! The images are ECR's: platform manifests listed by an index of the repository belong to
//! that index and are not listed, as in Repository status (`imageCount`).

use std::collections::{BTreeSet, HashMap};

use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use k8s_openapi::jiff::Timestamp;
use serde::{Deserialize, Serialize};

use super::digest::Digest;
use super::errors::ApiError;
use super::manifest::{DOCKER_MANIFEST_LIST, OCI_INDEX, parse_manifest};
use super::storage::{ImageInfo, Storage, StorageResult};
use crate::ecr::replication::{FailureCode, ReplicationStatus};

/// The path segment after the repository name.
pub const SEGMENT: &str = "_kubecs";

/// One image of the answer `{"images": [...]}`.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct ImageEntry {
    pub digest: String,
    /// Sorted.
    #[serde(default)]
    pub tags: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub media_type: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub artifact_type: Option<String>,
    /// ECR's imageSizeInBytes: the manifest, its config and layers; for an index, the
    /// largest of the images it lists.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub size_in_bytes: Option<u64>,
    /// RFC 3339.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pushed_at: Option<String>,
    /// ECR's lastRecordedPullTime, RFC 3339; absent when never pulled.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_recorded_pull_time: Option<String>,
    /// The manifest this one refers to (a signature, an SBOM).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subject: Option<String>,
    /// Its replication to each destination of the rules in force when it was pushed.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub replication_statuses: Vec<ReplicationStatusEntry>,
}

/// ECR's `ImageReplicationStatus`.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct ReplicationStatusEntry {
    pub region: String,
    pub registry_id: String,
    pub status: ReplicationStatus,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub failure_code: Option<FailureCode>,
}

/// The answer's body.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
pub struct ImageList {
    pub images: Vec<ImageEntry>,
}

fn is_index(media_type: &str) -> bool {
    media_type == OCI_INDEX || media_type == DOCKER_MANIFEST_LIST
}

fn own_size(i: &ImageInfo) -> u64 {
    i.manifest_size + i.content_size
}

/// The entries of `images` (the store's list), given what each index lists.
pub fn entries(images: &[ImageInfo], listed: &HashMap<Digest, Vec<Digest>>) -> Vec<ImageEntry> {
    let by_digest: HashMap<&Digest, &ImageInfo> = images.iter().map(|i| (&i.digest, i)).collect();
    let children: BTreeSet<&Digest> = listed.values().flatten().collect();
    images
        .iter()
        .filter(|i| !children.contains(&i.digest))
        .map(|i| {
            let size = match listed.get(&i.digest) {
                Some(kids) => kids
                    .iter()
                    .filter_map(|d| by_digest.get(d).map(|c| own_size(c)))
                    .max()
                    .unwrap_or_else(|| own_size(i)),
                None => own_size(i),
            };
            ImageEntry {
                digest: i.digest.to_string(),
                tags: i.tags.clone(),
                media_type: Some(i.media_type.clone()),
                artifact_type: i.artifact_type.clone(),
                size_in_bytes: Some(size),
                pushed_at: Timestamp::try_from(i.pushed_at).ok().map(|t| t.to_string()),
                last_recorded_pull_time: i
                    .last_pulled_at
                    .and_then(|t| Timestamp::try_from(t).ok())
                    .map(|t| t.to_string()),
                subject: i.subject.as_ref().map(Digest::to_string),
                replication_statuses: Vec::new(),
            }
        })
        .collect()
}

/// The repository's images, with the manifests each index lists read from the store.
pub async fn list(storage: &dyn Storage, name: &str) -> StorageResult<Vec<ImageEntry>> {
    let images = storage.list_images(name).await?;
    let mut listed = HashMap::new();
    for i in images.iter().filter(|i| is_index(&i.media_type)) {
        if let Some(m) = storage.get_manifest(name, &i.digest).await?
            && let Ok(parsed) = parse_manifest(&m.bytes, Some(&m.media_type))
        {
            listed.insert(i.digest.clone(), parsed.children);
        }
    }
    let mut out = entries(&images, &listed);
    let replication = super::replication::records(storage, name).await?;
    for e in &mut out {
        if let Some(r) = e
            .digest
            .parse()
            .ok()
            .and_then(|d: Digest| replication.get(&d))
        {
            e.replication_statuses = super::replication::statuses_of(r);
        }
    }
    Ok(out)
}

/// The HTTP answer; `ids`: digests and tags only.
pub async fn answer(storage: &dyn Storage, name: &str, ids: bool) -> Result<Response, ApiError> {
    let mut images = list(storage, name).await.map_err(ApiError::internal)?;
    if ids {
        for i in &mut images {
            *i = ImageEntry {
                digest: std::mem::take(&mut i.digest),
                tags: std::mem::take(&mut i.tags),
                media_type: None,
                artifact_type: None,
                size_in_bytes: None,
                pushed_at: None,
                last_recorded_pull_time: None,
                subject: None,
                replication_statuses: Vec::new(),
            };
        }
    }
    let body = serde_json::to_string(&ImageList { images }).map_err(ApiError::internal)?;
    Ok((
        StatusCode::OK,
        [(header::CONTENT_TYPE, "application/json")],
        body,
    )
        .into_response())
}
