//! Image operations, over the registry's HTTP API as the caller (its repository policies
//! decide): BatchGetImage is a manifest GET, PutImage a manifest PUT, BatchDeleteImage
//! manifest DELETEs, BatchCheckLayerAvailability blob HEADs; DescribeImages and ListImages
//! read the registry's image list (`registry::images`).
//!
//! ECR deletes an image when its last tag is deleted, where the OCI API only drops the tag:
//! BatchDeleteImage deletes the manifest too when no tag is left.

use axum::http::{Method, StatusCode};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use super::registry_client::{RegistryClient, Reply, common_error, unexpected};
use super::token::registry;
use super::{DEFAULT_REGISTRY_ID, Ecr, RepositoryRef, list_repositories, registry_id};
use crate::aws::page::page_by;
use crate::aws::registry::RegistryLink;
use crate::aws::{AwsError, Caller};
use crate::registry::digest::Digest;
use crate::registry::images::{ImageEntry, ImageList};
use crate::registry::manifest::{DOCKER_MANIFEST, DOCKER_MANIFEST_LIST, OCI_INDEX, OCI_MANIFEST};

/// The most images one batch call names (the model's list bound).
const MAX_BATCH: usize = 100;

/// The registry's images of repository `name`; `ids`: digests and tags only (ListImages).
pub async fn fetch(
    link: &RegistryLink,
    c: &Caller,
    name: &str,
    ids: bool,
) -> Result<Vec<ImageEntry>, AwsError> {
    let path = format!(
        "/v2/{name}/{}/images{}",
        crate::registry::images::SEGMENT,
        if ids { "?view=ids" } else { "" }
    );
    let reply = RegistryClient::new(link, c)
        .bodiless(Method::GET, &path)
        .await?;
    if !reply.ok() {
        return Err(unexpected(&reply));
    }
    let list: ImageList = serde_json::from_slice(&reply.body)
        .map_err(|e| AwsError::server(format!("the registry's image list: {e}")))?;
    Ok(list.images)
}

/// The registry id in image answers: the repository's, when the caller's account holds it
/// and may read it; otherwise the default (image operations need only registry rights).
pub(super) async fn registry_id_of(c: &Caller, name: &str) -> String {
    match list_repositories(c, c.account()).await {
        Ok(repos) => {
            let arcs: Vec<std::sync::Arc<_>> = repos.into_iter().map(std::sync::Arc::new).collect();
            registry_id(crate::registry::repositories::lookup(&arcs, name).map(|r| &**r))
        }
        Err(_) => DEFAULT_REGISTRY_ID.to_string(),
    }
}

/// ECR's `ImageIdentifier`.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct ImageId {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image_digest: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image_tag: Option<String>,
}

impl ImageId {
    /// `{imageDigest:'D', imageTag:'T'}` as ECR's messages print an image id.
    fn describe(&self) -> String {
        format!(
            "{{imageDigest:'{}', imageTag:'{}'}}",
            self.image_digest.as_deref().unwrap_or("null"),
            self.image_tag.as_deref().unwrap_or("null")
        )
    }
}

pub(super) fn image_not_found(id: &ImageId, name: &str, registry_id: &str) -> AwsError {
    AwsError::bad(
        "ImageNotFoundException",
        format!(
            "The image with imageId {} does not exist within the repository with name '{name}' in the registry with id '{registry_id}'",
            id.describe()
        ),
    )
}

/// ECR's `ImageFailure`.
fn failure(id: &ImageId, code: &str, reason: &str) -> Value {
    json!({ "imageId": id, "failureCode": code, "failureReason": reason })
}

/// The image of `images` an id names: by digest and, when both are given, only if the tag
/// is one of its tags. Err is the failure code and reason.
pub fn resolve<'a>(
    images: &'a [ImageEntry],
    id: &ImageId,
) -> Result<&'a ImageEntry, (&'static str, String)> {
    let by_digest = id
        .image_digest
        .as_ref()
        .map(|d| images.iter().find(|i| i.digest == *d));
    let by_tag = id
        .image_tag
        .as_ref()
        .map(|t| images.iter().find(|i| i.tags.contains(t)));
    let not_found = || ("ImageNotFound", "Requested image not found".to_string());
    match (by_digest, by_tag) {
        (None, None) => Err((
            "MissingDigestAndTag",
            "Invalid request parameters: both tag and digest cannot be null".into(),
        )),
        (Some(Some(d)), Some(Some(t))) if d.digest != t.digest => Err((
            "ImageTagDoesNotMatchDigest",
            "Invalid request parameters: image tag does not match digest".into(),
        )),
        (Some(Some(d)), Some(Some(_)) | None) => Ok(d),
        (None, Some(Some(t))) => Ok(t),
        _ => Err(not_found()),
    }
}

/// ECR's `ImageDetail`.
pub fn image_detail(i: &ImageEntry, registry_id: &str, name: &str) -> Value {
    json!({
        "registryId": registry_id,
        "repositoryName": name,
        "imageDigest": i.digest,
        "imageTags": (!i.tags.is_empty()).then_some(&i.tags),
        "imageSizeInBytes": i.size_in_bytes,
        "imagePushedAt": i.pushed_at.as_deref().and_then(crate::aws::time::epoch),
        "lastRecordedPullTime": i
            .last_recorded_pull_time
            .as_deref()
            .and_then(crate::aws::time::epoch),
        "imageManifestMediaType": i.media_type,
        "artifactMediaType": i.artifact_type,
        "subjectManifestDigest": i.subject,
        "imageStatus": "ACTIVE",
    })
}

/// Does the image pass a `filter.tagStatus`? (None and ANY: every image.)
pub fn tag_status_matches(i: &ImageEntry, tag_status: Option<&str>) -> bool {
    match tag_status {
        Some("TAGGED") => !i.tags.is_empty(),
        Some("UNTAGGED") => i.tags.is_empty(),
        _ => true,
    }
}

fn check_tag_status(s: Option<&str>) -> Result<(), AwsError> {
    match s {
        None | Some("TAGGED" | "UNTAGGED" | "ANY") => Ok(()),
        Some(other) => Err(AwsError::invalid_parameter(format!(
            "Invalid parameter at 'filter.tagStatus' failed to satisfy constraint: 'Member must satisfy enum value set: [TAGGED, UNTAGGED, ANY]' ({other})"
        ))),
    }
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase")]
pub struct TagStatusFilter {
    tag_status: Option<String>,
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase")]
pub struct DescribeImages {
    repository_name: String,
    image_ids: Option<Vec<ImageId>>,
    next_token: Option<String>,
    max_results: Option<i32>,
    filter: Option<TagStatusFilter>,
}

pub async fn describe_images(e: &Ecr<'_>, i: DescribeImages) -> Result<Value, AwsError> {
    let r = RepositoryRef::named(e.c, &i.repository_name)?;
    let tag_status = i.filter.as_ref().and_then(|f| f.tag_status.as_deref());
    check_tag_status(tag_status)?;
    let images = fetch(registry(e)?, e.c, &r.name, false).await?;
    let rid = registry_id_of(e.c, &r.name).await;
    if let Some(ids) = i.image_ids.filter(|v| !v.is_empty()) {
        if ids.len() > MAX_BATCH {
            return Err(too_many_ids());
        }
        let mut out = Vec::new();
        for id in &ids {
            let found = resolve(&images, id).map_err(|_| image_not_found(id, &r.name, &rid))?;
            out.push(image_detail(found, &rid, &r.name));
        }
        return Ok(json!({ "imageDetails": out }));
    }
    let selected: Vec<&ImageEntry> = images
        .iter()
        .filter(|im| tag_status_matches(im, tag_status))
        .collect();
    let (taken, next) = page_by(
        &selected,
        |im| im.digest.clone(),
        Some(i.max_results.unwrap_or(100)),
        i.next_token.as_deref(),
        1000,
    )?;
    let out: Vec<Value> = taken
        .into_iter()
        .map(|im| image_detail(im, &rid, &r.name))
        .collect();
    Ok(json!({ "imageDetails": out, "nextToken": next }))
}

fn too_many_ids() -> AwsError {
    AwsError::invalid_parameter(format!(
        "Invalid parameter at 'imageIds' failed to satisfy constraint: 'Member must have length less than or equal to {MAX_BATCH}'"
    ))
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase")]
pub struct ListImages {
    repository_name: String,
    next_token: Option<String>,
    max_results: Option<i32>,
    filter: Option<TagStatusFilter>,
}

/// ListImages' ids: one per tag, and one without a tag for an untagged image.
pub fn image_ids(images: &[ImageEntry], tag_status: Option<&str>) -> Vec<ImageId> {
    let mut out = Vec::new();
    for i in images.iter().filter(|i| tag_status_matches(i, tag_status)) {
        if i.tags.is_empty() {
            out.push(ImageId {
                image_digest: Some(i.digest.clone()),
                image_tag: None,
            });
        }
        for t in &i.tags {
            out.push(ImageId {
                image_digest: Some(i.digest.clone()),
                image_tag: Some(t.clone()),
            });
        }
    }
    out
}

pub async fn list_images(e: &Ecr<'_>, i: ListImages) -> Result<Value, AwsError> {
    let r = RepositoryRef::named(e.c, &i.repository_name)?;
    let tag_status = i.filter.as_ref().and_then(|f| f.tag_status.as_deref());
    check_tag_status(tag_status)?;
    let images = fetch(registry(e)?, e.c, &r.name, true).await?;
    let ids = image_ids(&images, tag_status);
    // Page keys: digest, then tag (a tab sorts before every tag character).
    let key = |id: &ImageId| {
        format!(
            "{}\t{}",
            id.image_digest.as_deref().unwrap_or_default(),
            id.image_tag.as_deref().unwrap_or_default()
        )
    };
    let (out, next) = page_by(
        &ids,
        key,
        Some(i.max_results.unwrap_or(100)),
        i.next_token.as_deref(),
        1000,
    )?;
    Ok(json!({ "imageIds": out, "nextToken": next }))
}

/// What BatchGetImage accepts when the caller names no media types.
const DEFAULT_ACCEPT: &[&str] = &[
    OCI_MANIFEST,
    OCI_INDEX,
    DOCKER_MANIFEST,
    DOCKER_MANIFEST_LIST,
];

#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase")]
pub struct BatchGetImage {
    repository_name: String,
    image_ids: Vec<ImageId>,
    accepted_media_types: Option<Vec<String>>,
}

/// An image id's manifest reference: its digest, else its tag.
fn reference(id: &ImageId) -> Option<&str> {
    id.image_digest.as_deref().or(id.image_tag.as_deref())
}

/// A failure for a registry refusal of one image (not found, invalid reference); Err for a
/// refusal of the whole call (denied, no repository).
fn image_failure(id: &ImageId, reply: &Reply) -> Result<Value, AwsError> {
    if let Some(e) = common_error(reply) {
        return Err(e);
    }
    match reply.code().as_deref() {
        Some("MANIFEST_UNKNOWN") => Ok(failure(id, "ImageNotFound", "Requested image not found")),
        Some("DIGEST_INVALID") => Ok(failure(id, "InvalidImageDigest", "Invalid image digest")),
        Some("MANIFEST_INVALID" | "TAG_INVALID") => {
            Ok(failure(id, "InvalidImageTag", "Invalid image tag"))
        }
        _ => Err(unexpected(reply)),
    }
}

/// A manifest GET or HEAD accepting `accept`.
async fn manifest(
    client: &RegistryClient<'_>,
    method: Method,
    name: &str,
    reference: &str,
    accept: &str,
) -> Result<Reply, AwsError> {
    client
        .send(
            method,
            &format!("/v2/{name}/manifests/{reference}"),
            &[("accept", accept)],
            Vec::new(),
        )
        .await
}

pub async fn batch_get_image(e: &Ecr<'_>, i: BatchGetImage) -> Result<Value, AwsError> {
    let r = RepositoryRef::named(e.c, &i.repository_name)?;
    if i.image_ids.len() > MAX_BATCH {
        return Err(too_many_ids());
    }
    let client = RegistryClient::new(registry(e)?, e.c);
    let accept = match &i.accepted_media_types {
        Some(types) if !types.is_empty() => types.join(", "),
        _ => DEFAULT_ACCEPT.join(", "),
    };
    let rid = registry_id_of(e.c, &r.name).await;
    let (mut images, mut failures) = (Vec::new(), Vec::new());
    for id in &i.image_ids {
        let Some(reference) = reference(id) else {
            failures.push(failure(
                id,
                "MissingDigestAndTag",
                "Invalid request parameters: both tag and digest cannot be null",
            ));
            continue;
        };
        let reply = manifest(&client, Method::GET, &r.name, reference, &accept).await?;
        if !reply.ok() {
            failures.push(image_failure(id, &reply)?);
            continue;
        }
        let digest = reply.header("docker-content-digest").unwrap_or_default();
        if let (Some(want), Some(tag)) = (&id.image_digest, &id.image_tag) {
            // Fetched by digest: the tag must point at it.
            let tagged = manifest(&client, Method::HEAD, &r.name, tag, &accept).await?;
            if tagged.header("docker-content-digest") != Some(want.as_str()) {
                failures.push(failure(
                    id,
                    "ImageTagDoesNotMatchDigest",
                    "Invalid request parameters: image tag does not match digest",
                ));
                continue;
            }
        }
        let media_type = reply.header("content-type").unwrap_or_default().to_string();
        // The registry stores one form of each manifest and converts none: an image of a
        // type the caller does not accept is not found for it, as a registry answers such
        // an Accept.
        if let Some(types) = i.accepted_media_types.as_ref().filter(|t| !t.is_empty())
            && !types.contains(&media_type)
        {
            failures.push(failure(id, "ImageNotFound", "Requested image not found"));
            continue;
        }
        images.push(json!({
            "registryId": rid,
            "repositoryName": r.name,
            "imageId": { "imageDigest": digest, "imageTag": id.image_tag },
            "imageManifest": String::from_utf8_lossy(&reply.body),
            "imageManifestMediaType": media_type,
        }));
    }
    Ok(json!({ "images": images, "failures": failures }))
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase")]
pub struct BatchDeleteImage {
    repository_name: String,
    image_ids: Vec<ImageId>,
}

pub async fn batch_delete_image(e: &Ecr<'_>, i: BatchDeleteImage) -> Result<Value, AwsError> {
    let r = RepositoryRef::named(e.c, &i.repository_name)?;
    if i.image_ids.len() > MAX_BATCH {
        return Err(too_many_ids());
    }
    let link = registry(e)?;
    let client = RegistryClient::new(link, e.c);
    let mut images = fetch(link, e.c, &r.name, true).await?;
    let (mut deleted, mut failures) = (Vec::<ImageId>::new(), Vec::new());
    for id in &i.image_ids {
        let target = match resolve(&images, id) {
            Ok(t) => t.clone(),
            Err(("ImageNotFound", _)) if id.image_digest.is_some() => {
                // Not an image of its own, but maybe a platform manifest of an index.
                let reply = client
                    .bodiless(
                        Method::HEAD,
                        &format!(
                            "/v2/{}/manifests/{}",
                            r.name,
                            id.image_digest.as_deref().unwrap_or_default()
                        ),
                    )
                    .await?;
                failures.push(if reply.status == StatusCode::OK {
                    failure(
                        id,
                        "ImageReferencedByManifestList",
                        "Requested image referenced by a manifest list",
                    )
                } else {
                    failure(id, "ImageNotFound", "Requested image not found")
                });
                continue;
            }
            Err((code, reason)) => {
                failures.push(failure(id, code, &reason));
                continue;
            }
        };
        // By digest: the image and all its tags. By tag: the tag, and the image with its last.
        let (remove_tag, remove_image) = match (&id.image_digest, &id.image_tag) {
            (Some(_), _) => (None, true),
            (None, Some(t)) => (Some(t.clone()), target.tags.len() == 1),
            (None, None) => unreachable!("resolve refuses an empty id"),
        };
        if let Some(t) = &remove_tag {
            let reply = client
                .bodiless(Method::DELETE, &format!("/v2/{}/manifests/{t}", r.name))
                .await?;
            if !reply.ok() {
                failures.push(image_failure(id, &reply)?);
                continue;
            }
        }
        if remove_image {
            let reply = client
                .bodiless(
                    Method::DELETE,
                    &format!("/v2/{}/manifests/{}", r.name, target.digest),
                )
                .await?;
            if !reply.ok() && reply.code().as_deref() != Some("MANIFEST_UNKNOWN") {
                failures.push(image_failure(id, &reply)?);
                continue;
            }
        }
        match remove_tag {
            Some(t) => deleted.push(ImageId {
                image_digest: Some(target.digest.clone()),
                image_tag: Some(t),
            }),
            None if target.tags.is_empty() => deleted.push(ImageId {
                image_digest: Some(target.digest.clone()),
                image_tag: None,
            }),
            None => deleted.extend(target.tags.iter().map(|t| ImageId {
                image_digest: Some(target.digest.clone()),
                image_tag: Some(t.clone()),
            })),
        }
        // What later ids of this batch see.
        for im in &mut images {
            if im.digest == target.digest {
                match &id.image_tag {
                    Some(t) if id.image_digest.is_none() && !remove_image => {
                        im.tags.retain(|x| x != t)
                    }
                    _ => im.tags.clear(),
                }
            }
        }
        if remove_image {
            images.retain(|im| im.digest != target.digest);
        }
    }
    Ok(json!({ "imageIds": deleted, "failures": failures }))
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase")]
pub struct PutImage {
    repository_name: String,
    image_manifest: String,
    image_manifest_media_type: Option<String>,
    image_tag: Option<String>,
    image_digest: Option<String>,
}

/// The manifest's media type: the request's, else its own `mediaType`, else OCI's.
pub fn manifest_media_type(given: Option<&str>, manifest: &str) -> String {
    given
        .map(str::to_string)
        .or_else(|| {
            serde_json::from_str::<Value>(manifest)
                .ok()?
                .get("mediaType")?
                .as_str()
                .map(str::to_string)
        })
        .unwrap_or_else(|| OCI_MANIFEST.to_string())
}

pub async fn put_image(e: &Ecr<'_>, i: PutImage) -> Result<Value, AwsError> {
    let r = RepositoryRef::named(e.c, &i.repository_name)?;
    let link = registry(e)?;
    let client = RegistryClient::new(link, e.c);
    let bytes = i.image_manifest.as_bytes();
    let digest = match &i.image_digest {
        Some(d) => {
            let given: Digest = d.parse().map_err(|_| {
                AwsError::invalid_parameter(format!("Invalid parameter at 'imageDigest' failed to satisfy constraint: 'Invalid digest {d}'"))
            })?;
            if Digest::of(given.algorithm(), bytes) != given {
                return Err(AwsError::bad(
                    "ImageDigestDoesNotMatchException",
                    format!("Provided digest {d} does not match the digest of the image manifest"),
                ));
            }
            given.to_string()
        }
        None => Digest::sha256(bytes).to_string(),
    };
    let reference = i.image_tag.clone().unwrap_or_else(|| digest.clone());
    let rid = registry_id_of(e.c, &r.name).await;
    // ECR refuses a push that changes nothing.
    let existing = client
        .bodiless(
            Method::HEAD,
            &format!("/v2/{}/manifests/{reference}", r.name),
        )
        .await?;
    if existing.ok() && existing.header("docker-content-digest") == Some(digest.as_str()) {
        return Err(AwsError::bad(
            "ImageAlreadyExistsException",
            match &i.image_tag {
                Some(t) => format!(
                    "Image with digest '{digest}' and tag '{t}' already exists in the repository with name '{}' in registry with id '{rid}'",
                    r.name
                ),
                None => format!(
                    "Image with digest '{digest}' already exists in the repository with name '{}' in registry with id '{rid}'",
                    r.name
                ),
            },
        ));
    }
    let media_type = manifest_media_type(i.image_manifest_media_type.as_deref(), &i.image_manifest);
    let reply = client
        .send(
            Method::PUT,
            &format!("/v2/{}/manifests/{reference}", r.name),
            &[("content-type", &media_type)],
            bytes.to_vec(),
        )
        .await?;
    if !reply.ok() {
        return Err(put_error(&reply, &r.name, &rid));
    }
    Ok(json!({ "image": {
        "registryId": rid,
        "repositoryName": r.name,
        "imageId": { "imageDigest": digest, "imageTag": i.image_tag },
        "imageManifest": i.image_manifest,
        "imageManifestMediaType": media_type,
    }}))
}

/// A refused manifest push as ECR says it.
fn put_error(reply: &Reply, name: &str, registry_id: &str) -> AwsError {
    if let Some(e) = common_error(reply) {
        return e;
    }
    let message = reply.message().unwrap_or_default();
    match reply.code().as_deref() {
        // The registry words an immutable tag as ECR does.
        Some("TAG_INVALID") if message.contains("immutable") => {
            AwsError::bad("ImageTagAlreadyExistsException", message)
        }
        Some("MANIFEST_BLOB_UNKNOWN") => AwsError::bad(
            "LayersNotFoundException",
            format!(
                "The image manifest references layers that do not exist in the repository with name '{name}' in the registry with id '{registry_id}': {message}"
            ),
        ),
        Some("MANIFEST_UNKNOWN") => AwsError::bad(
            "ReferencedImagesNotFoundException",
            format!(
                "The image index references images that do not exist in the repository with name '{name}': {message}"
            ),
        ),
        Some("DIGEST_INVALID") => AwsError::bad("ImageDigestDoesNotMatchException", message),
        Some("MANIFEST_INVALID" | "TAG_INVALID") => AwsError::invalid_parameter(format!(
            "Invalid parameter at 'ImageManifest' failed to satisfy constraint: '{message}'"
        )),
        _ => unexpected(reply),
    }
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase")]
pub struct BatchCheckLayerAvailability {
    repository_name: String,
    layer_digests: Vec<String>,
}

pub async fn batch_check_layer_availability(
    e: &Ecr<'_>,
    i: BatchCheckLayerAvailability,
) -> Result<Value, AwsError> {
    let r = RepositoryRef::named(e.c, &i.repository_name)?;
    if i.layer_digests.len() > MAX_BATCH {
        return Err(AwsError::invalid_parameter(format!(
            "Invalid parameter at 'layerDigests' failed to satisfy constraint: 'Member must have length less than or equal to {MAX_BATCH}'"
        )));
    }
    let client = RegistryClient::new(registry(e)?, e.c);
    let (mut layers, mut failures) = (Vec::new(), Vec::new());
    for d in &i.layer_digests {
        if d.is_empty() {
            failures.push(json!({ "layerDigest": d, "failureCode": "MissingLayerDigest", "failureReason": "The layer digest is missing" }));
            continue;
        }
        if d.parse::<Digest>().is_err() {
            failures.push(json!({ "layerDigest": d, "failureCode": "InvalidLayerDigest", "failureReason": format!("Invalid layer digest {d}") }));
            continue;
        }
        let reply = client
            .bodiless(Method::HEAD, &format!("/v2/{}/blobs/{d}", r.name))
            .await?;
        match reply.status {
            StatusCode::OK => layers.push(json!({
                "layerDigest": d,
                "layerAvailability": "AVAILABLE",
                "layerSize": reply.header("content-length").and_then(|v| v.parse::<u64>().ok()),
            })),
            StatusCode::NOT_FOUND => {
                layers.push(json!({ "layerDigest": d, "layerAvailability": "UNAVAILABLE" }))
            }
            _ => return Err(unexpected(&reply)),
        }
    }
    // A HEAD's 404 carries no body to tell an unknown blob from an unknown repository.
    if layers
        .iter()
        .any(|l| l["layerAvailability"] == "UNAVAILABLE")
        && !client.repository_known(&r.name).await?
    {
        return Err(super::repository_not_found(
            &r.name,
            &registry_id_of(e.c, &r.name).await,
        ));
    }
    Ok(json!({ "layers": layers, "failures": failures }))
}
