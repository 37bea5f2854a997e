//! Lifecycle and repository policies. The API carries them as JSON text; the CRD holds them
//! typed (`spec.lifecyclePolicy`, `spec.repositoryPolicy`), so text is parsed and checked
//! with ECR's rules and words on the way in and rendered as JSON on the way out.
//!
//! Lifecycle previews: the Repository controller keeps `status.lifecyclePolicyPreview` for
//! the repository's own policy. StartLifecyclePolicyPreview records the policy to preview in
//! the annotation [`PREVIEW_ANNOTATION`]; GetLifecyclePolicyPreview answers the status when
//! that is the repository's policy, and otherwise evaluates the recorded one over the
//! registry's images (the same pure evaluation the controller runs).

use std::time::{SystemTime, UNIX_EPOCH};

use kube::api::{Patch, PatchParams};
use serde::Deserialize;
use serde_json::{Value, json};

use super::repositories::patch_spec;
use super::{Ecr, RepositoryRef, find, ids, object_of};
use crate::api::repository::{
    LifecyclePolicy, LifecyclePreviewResult, Repository, RepositoryPolicy,
};
use crate::aws::AwsError;
use crate::aws::page::page;
use crate::ecr::lifecycle::{self, ImageRecord};
use crate::ecr::policy::INVALID_POLICY;
use crate::registry::images::ImageEntry;

/// The lifecycle policy (JSON) the last StartLifecyclePolicyPreview asked for.
pub const PREVIEW_ANNOTATION: &str = "ecr.kubecs.io/lifecycle-policy-preview";

#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase")]
pub struct RepositoryOnly {
    repository_name: String,
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase")]
pub struct PutLifecyclePolicy {
    repository_name: String,
    lifecycle_policy_text: String,
}

/// Lifecycle policy text as ECR checks it.
pub fn parse_lifecycle_policy(text: &str) -> Result<LifecyclePolicy, AwsError> {
    lifecycle::parse(text).map_err(|m| {
        AwsError::invalid_parameter(format!(
            "Invalid parameter at 'LifecyclePolicyText' failed to satisfy constraint: '{m}'"
        ))
    })
}

pub fn lifecycle_policy_text(p: &LifecyclePolicy) -> String {
    serde_json::to_string(p).expect("a policy serializes")
}

fn lifecycle_not_found(name: &str, registry_id: &str) -> AwsError {
    AwsError::bad(
        "LifecyclePolicyNotFoundException",
        format!(
            "Lifecycle policy does not exist for the repository with name '{name}' in the registry with id '{registry_id}'"
        ),
    )
}

async fn repository(e: &Ecr<'_>, name: &str) -> Result<Repository, AwsError> {
    find(e.c, &RepositoryRef::named(e.c, name)?).await
}

fn own_lifecycle_policy(r: &Repository) -> Result<&LifecyclePolicy, AwsError> {
    let (registry_id, name) = ids(r);
    r.spec
        .lifecycle_policy
        .as_ref()
        .ok_or_else(|| lifecycle_not_found(&name, &registry_id))
}

pub async fn get_lifecycle_policy(e: &Ecr<'_>, i: RepositoryOnly) -> Result<Value, AwsError> {
    let r = repository(e, &i.repository_name).await?;
    let text = lifecycle_policy_text(own_lifecycle_policy(&r)?);
    let (registry_id, name) = ids(&r);
    Ok(json!({ "registryId": registry_id, "repositoryName": name, "lifecyclePolicyText": text }))
}

pub async fn put_lifecycle_policy(e: &Ecr<'_>, i: PutLifecyclePolicy) -> Result<Value, AwsError> {
    let policy = parse_lifecycle_policy(&i.lifecycle_policy_text)?;
    let r = repository(e, &i.repository_name).await?;
    patch_spec(e, &r, json!({ "lifecyclePolicy": policy })).await?;
    let (registry_id, name) = ids(&r);
    Ok(json!({
        "registryId": registry_id,
        "repositoryName": name,
        "lifecyclePolicyText": i.lifecycle_policy_text,
    }))
}

pub async fn delete_lifecycle_policy(e: &Ecr<'_>, i: RepositoryOnly) -> Result<Value, AwsError> {
    let r = repository(e, &i.repository_name).await?;
    let text = lifecycle_policy_text(own_lifecycle_policy(&r)?);
    patch_spec(e, &r, json!({ "lifecyclePolicy": null })).await?;
    let (registry_id, name) = ids(&r);
    Ok(json!({ "registryId": registry_id, "repositoryName": name, "lifecyclePolicyText": text }))
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase")]
pub struct StartLifecyclePolicyPreview {
    repository_name: String,
    lifecycle_policy_text: Option<String>,
}

pub async fn start_lifecycle_policy_preview(
    e: &Ecr<'_>,
    i: StartLifecyclePolicyPreview,
) -> Result<Value, AwsError> {
    let r = repository(e, &i.repository_name).await?;
    let policy = match i.lifecycle_policy_text.as_deref() {
        Some(t) => parse_lifecycle_policy(t)?,
        None => own_lifecycle_policy(&r)?.clone(),
    };
    let text = lifecycle_policy_text(&policy);
    let (ns, object) = object_of(&r);
    e.c.api::<Repository>(&ns)
        .patch(
            &object,
            &PatchParams::default(),
            &Patch::Merge(json!({ "metadata": { "annotations": { PREVIEW_ANNOTATION: text } } })),
        )
        .await
        .map_err(|err| {
            e.c.kube_error(err, &crate::arn::repository(&ns, &ids(&r).1))
        })?;
    let (registry_id, name) = ids(&r);
    Ok(json!({
        "registryId": registry_id,
        "repositoryName": name,
        "lifecyclePolicyText": text,
        "status": "IN_PROGRESS",
    }))
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase")]
pub struct ImageIdFilter {
    image_digest: Option<String>,
    image_tag: Option<String>,
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase")]
pub struct PreviewFilter {
    tag_status: Option<String>,
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase")]
pub struct GetLifecyclePolicyPreview {
    repository_name: String,
    #[serde(default)]
    image_ids: Vec<ImageIdFilter>,
    next_token: Option<String>,
    max_results: Option<i32>,
    filter: Option<PreviewFilter>,
}

/// The lifecycle input of the registry's images.
pub fn records(images: &[ImageEntry]) -> Vec<ImageRecord> {
    images
        .iter()
        .map(|i| ImageRecord {
            digest: i.digest.clone(),
            tags: i.tags.clone(),
            pushed_at: i
                .pushed_at
                .as_deref()
                .and_then(crate::aws::time::epoch)
                .map_or(0, |s| (s * 1000.0) as i64),
            last_pulled_at: i
                .last_recorded_pull_time
                .as_deref()
                .and_then(crate::aws::time::epoch)
                .map(|s| (s * 1000.0) as i64),
            size_bytes: i.size_in_bytes.unwrap_or(0),
        })
        .collect()
}

/// ECR's `LifecyclePolicyPreviewResult`.
pub fn preview_result_json(p: &LifecyclePreviewResult) -> Value {
    json!({
        "imageTags": p.image_tags,
        "imageDigest": p.image_digest,
        "imagePushedAt": p.image_pushed_at.as_deref().and_then(crate::aws::time::epoch),
        "action": { "type": "EXPIRE" },
        "appliedRulePriority": p.applied_rule_priority,
    })
}

/// Whether a preview result passes the request's image ids and tag status filter.
pub fn preview_selected(
    p: &LifecyclePreviewResult,
    ids: &[ImageIdFilter],
    tag_status: Option<&str>,
) -> bool {
    let by_id = ids.is_empty()
        || ids.iter().any(|id| {
            id.image_digest
                .as_ref()
                .is_none_or(|d| *d == p.image_digest)
                && id
                    .image_tag
                    .as_ref()
                    .is_none_or(|t| p.image_tags.contains(t))
        });
    let by_status = match tag_status {
        Some("TAGGED") => !p.image_tags.is_empty(),
        Some("UNTAGGED") => p.image_tags.is_empty(),
        _ => true,
    };
    by_id && by_status
}

pub async fn get_lifecycle_policy_preview(
    e: &Ecr<'_>,
    i: GetLifecyclePolicyPreview,
) -> Result<Value, AwsError> {
    let r = repository(e, &i.repository_name).await?;
    let (registry_id, name) = ids(&r);
    let recorded = r
        .metadata
        .annotations
        .as_ref()
        .and_then(|a| a.get(PREVIEW_ANNOTATION))
        .and_then(|t| serde_json::from_str::<LifecyclePolicy>(t).ok());
    let own = r.spec.lifecycle_policy.as_ref();
    let (policy, results) = match (recorded, own) {
        (Some(p), own) if Some(&p) != own => {
            let link = super::token::registry(e)?;
            let images = super::images::fetch(link, e.c, &name, false).await?;
            let now = SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map_or(0, |d| d.as_millis() as i64);
            let expired = lifecycle::evaluate(&p, &records(&images), now);
            (p, lifecycle::preview(&expired))
        }
        (_, Some(own)) => (
            own.clone(),
            r.status
                .as_ref()
                .map(|s| s.lifecycle_policy_preview.clone())
                .unwrap_or_default(),
        ),
        _ => {
            return Err(AwsError::bad(
                "LifecyclePolicyPreviewNotFoundException",
                format!(
                    "There is no lifecycle policy preview for the repository with name '{name}' in the registry with id '{registry_id}'"
                ),
            ));
        }
    };
    let expiring = results.len();
    let tag_status = i.filter.as_ref().and_then(|f| f.tag_status.as_deref());
    let selected: Vec<&LifecyclePreviewResult> = results
        .iter()
        .filter(|p| preview_selected(p, &i.image_ids, tag_status))
        .collect();
    // Keys keep the evaluation's order (oldest first) through the sorting pager.
    let keys: Vec<String> = (0..selected.len()).map(|n| format!("{n:08}")).collect();
    let (keys, next) = page(keys, i.max_results, i.next_token.as_deref(), 100)?;
    let out: Vec<Value> = keys
        .iter()
        .filter_map(|k| k.parse::<usize>().ok())
        .map(|n| preview_result_json(selected[n]))
        .collect();
    Ok(json!({
        "registryId": registry_id,
        "repositoryName": name,
        "lifecyclePolicyText": lifecycle_policy_text(&policy),
        "status": "COMPLETE",
        "nextToken": next,
        "previewResults": out,
        "summary": { "expiringImageTotalCount": expiring },
    }))
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase")]
pub struct SetRepositoryPolicy {
    repository_name: String,
    policy_text: String,
}

/// Repository policy text as ECR checks it. IAM allows one statement without the list.
pub fn parse_repository_policy(text: &str) -> Result<RepositoryPolicy, AwsError> {
    let invalid =
        |detail: String| AwsError::invalid_parameter(format!("{INVALID_POLICY}: {detail}"));
    let mut v: Value =
        serde_json::from_str(text).map_err(|e| invalid(format!("invalid JSON: {e}")))?;
    if let Some(st) = v.get_mut("Statement")
        && st.is_object()
    {
        *st = Value::Array(vec![st.take()]);
    }
    let policy: RepositoryPolicy = serde_json::from_value(v).map_err(|e| invalid(e.to_string()))?;
    crate::ecr::policy::validate(&policy).map_err(AwsError::invalid_parameter)?;
    Ok(policy)
}

pub fn repository_policy_text(p: &RepositoryPolicy) -> String {
    serde_json::to_string(p).expect("a policy serializes")
}

fn own_repository_policy(r: &Repository) -> Result<&RepositoryPolicy, AwsError> {
    let (registry_id, name) = ids(r);
    r.spec.repository_policy.as_ref().ok_or_else(|| {
        AwsError::bad(
            "RepositoryPolicyNotFoundException",
            format!(
                "Repository policy does not exist for the repository with name '{name}' in the registry with id '{registry_id}'"
            ),
        )
    })
}

pub async fn set_repository_policy(e: &Ecr<'_>, i: SetRepositoryPolicy) -> Result<Value, AwsError> {
    let policy = parse_repository_policy(&i.policy_text)?;
    let r = repository(e, &i.repository_name).await?;
    // A merge patch keeps members the new policy leaves out: name them all.
    let mut v = serde_json::to_value(&policy).expect("a policy serializes");
    if v.get("Version").is_none() {
        v["Version"] = Value::Null;
    }
    patch_spec(e, &r, json!({ "repositoryPolicy": v })).await?;
    let (registry_id, name) = ids(&r);
    Ok(json!({ "registryId": registry_id, "repositoryName": name, "policyText": i.policy_text }))
}

pub async fn get_repository_policy(e: &Ecr<'_>, i: RepositoryOnly) -> Result<Value, AwsError> {
    let r = repository(e, &i.repository_name).await?;
    let text = repository_policy_text(own_repository_policy(&r)?);
    let (registry_id, name) = ids(&r);
    Ok(json!({ "registryId": registry_id, "repositoryName": name, "policyText": text }))
}

pub async fn delete_repository_policy(e: &Ecr<'_>, i: RepositoryOnly) -> Result<Value, AwsError> {
    let r = repository(e, &i.repository_name).await?;
    let text = repository_policy_text(own_repository_policy(&r)?);
    patch_spec(e, &r, json!({ "repositoryPolicy": null })).await?;
    let (registry_id, name) = ids(&r);
    Ok(json!({ "registryId": registry_id, "repositoryName": name, "policyText": text }))
}
