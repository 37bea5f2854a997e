//! Tags of clusters and services: their `spec.tags`. A task definition's tags are part of its
//! registered definition and a task's are fixed when it runs, as in ECS's model they are read
//! here but changed only by registering or running anew.

use kube::api::{Patch, PatchParams};
use serde::Deserialize;
use serde_json::{Value, json};

use super::{Caller, ClusterRef, parse_arn};
use crate::api::common::Tag;
use crate::api::{EcsCluster, Service};
use crate::aws::AwsError;

/// The resource an ARN names.
enum Tagged {
    Cluster(ClusterRef),
    Service(ClusterRef, String),
    TaskDefinition(String),
}

fn tagged(c: &Caller, arn: &str) -> Result<Tagged, AwsError> {
    let (_, resource) = parse_arn(arn)
        .ok_or_else(|| AwsError::invalid_parameter(format!("Invalid resource ARN: {arn}")))?;
    let parts: Vec<&str> = resource.split('/').collect();
    match parts.as_slice() {
        ["cluster", _] => Ok(Tagged::Cluster(ClusterRef::resolve(c, Some(arn))?)),
        ["service", cluster, name] => {
            let account = parse_arn(arn).map(|(a, _)| a).unwrap_or(c.account());
            let cl = ClusterRef::resolve(c, Some(&crate::arn::cluster(account, cluster)))?;
            Ok(Tagged::Service(cl, name.to_string()))
        }
        ["task-definition", _] => Ok(Tagged::TaskDefinition(arn.to_string())),
        _ => Err(AwsError::invalid_parameter(format!(
            "Tags of {arn} are not supported: kubecs tags clusters and services (task definitions and tasks keep the tags they were registered or run with)."
        ))),
    }
}

async fn current(c: &Caller, t: &Tagged) -> Result<Vec<Tag>, AwsError> {
    match t {
        Tagged::Cluster(r) => Ok(super::clusters::get(c, r).await?.spec.tags),
        Tagged::Service(r, name) => {
            let svc = c
                .api::<Service>(&r.namespace)
                .get_opt(name)
                .await
                .map_err(|e| c.kube_error(e, &crate::arn::service(&r.namespace, &r.name, name)))?
                .ok_or_else(AwsError::service_not_found)?;
            Ok(svc.spec.tags)
        }
        Tagged::TaskDefinition(arn) => {
            let out = super::taskdefs::describe_value(c, arn).await?;
            Ok(serde_json::from_value(out["tags"].clone()).unwrap_or_default())
        }
    }
}

async fn write(c: &Caller, t: &Tagged, tags: Vec<Tag>) -> Result<(), AwsError> {
    let patch = Patch::Merge(json!({ "spec": { "tags": tags } }));
    let pp = PatchParams::default();
    match t {
        Tagged::Cluster(r) => c
            .api::<EcsCluster>(&r.namespace)
            .patch(&r.name, &pp, &patch)
            .await
            .map(drop)
            .map_err(|e| c.kube_error(e, &r.arn())),
        Tagged::Service(r, name) => c
            .api::<Service>(&r.namespace)
            .patch(name, &pp, &patch)
            .await
            .map(drop)
            .map_err(|e| c.kube_error(e, &crate::arn::service(&r.namespace, &r.name, name))),
        Tagged::TaskDefinition(arn) => Err(AwsError::invalid_parameter(format!(
            "The tags of {arn} are part of its registered definition: register a new revision with them."
        ))),
    }
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase")]
pub struct TagResource {
    resource_arn: String,
    tags: Vec<Tag>,
}

pub async fn tag(c: &Caller, i: TagResource) -> Result<Value, AwsError> {
    let t = tagged(c, &i.resource_arn)?;
    let mut tags = current(c, &t).await?;
    for new in i.tags {
        match tags.iter_mut().find(|x| x.key == new.key) {
            Some(x) => x.value = new.value,
            None => tags.push(new),
        }
    }
    if tags.len() > 50 {
        return Err(AwsError::invalid_parameter(
            "A resource can have at most 50 tags.",
        ));
    }
    write(c, &t, tags).await?;
    Ok(json!({}))
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase")]
pub struct UntagResource {
    resource_arn: String,
    tag_keys: Vec<String>,
}

pub async fn untag(c: &Caller, i: UntagResource) -> Result<Value, AwsError> {
    let t = tagged(c, &i.resource_arn)?;
    let mut tags = current(c, &t).await?;
    tags.retain(|x| !i.tag_keys.contains(&x.key));
    write(c, &t, tags).await?;
    Ok(json!({}))
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase")]
pub struct ListTagsForResource {
    resource_arn: String,
}

pub async fn list(c: &Caller, i: ListTagsForResource) -> Result<Value, AwsError> {
    let t = tagged(c, &i.resource_arn)?;
    Ok(json!({ "tags": current(c, &t).await? }))
}
