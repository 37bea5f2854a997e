//! Replication: the account's `ReplicationConfiguration` object (named `default`) holds the
//! rules PutReplicationConfiguration writes and DescribeRegistry reads; the registry keeps
//! each image's replication status, which DescribeImageReplicationStatus reads from its image
//! list as the caller.

use kube::api::{ObjectMeta, Patch, PatchParams, PostParams};
use serde::Deserialize;
use serde_json::{Value, json};

use super::images::{ImageId, fetch, image_not_found, registry_id_of, resolve};
use super::token::registry;
use super::{Ecr, RepositoryRef, list_repositories, registry_id};
use crate::api::replication_configuration::{
    DEFAULT_NAME, ReplicationConfiguration, ReplicationConfigurationSpec, ReplicationRule,
};
use crate::aws::{AwsError, Caller};

/// ECR's `ReplicationConfiguration` (the rules only: `destinationRegistries` is kubecs').
#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase")]
pub struct RulesOnly {
    rules: Vec<ReplicationRule>,
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase")]
pub struct PutReplicationConfiguration {
    replication_configuration: RulesOnly,
}

fn arn(ns: &str) -> String {
    format!("arn:aws:ecr:kubecs:{ns}:registry/{DEFAULT_NAME}")
}

/// The account's rules (none without an object).
async fn rules(c: &Caller) -> Result<Vec<ReplicationRule>, AwsError> {
    let ns = c.account().to_string();
    Ok(c.api::<ReplicationConfiguration>(&ns)
        .get_opt(DEFAULT_NAME)
        .await
        .map_err(|e| c.kube_error(e, &arn(&ns)))?
        .map(|o| o.spec.rules)
        .unwrap_or_default())
}

/// Replaces the rules of the account's object (creating it), leaving its
/// `destinationRegistries` as they are.
pub async fn put_replication_configuration(
    e: &Ecr<'_>,
    i: PutReplicationConfiguration,
) -> Result<Value, AwsError> {
    let rules = i.replication_configuration.rules;
    crate::ecr::replication::validate(&rules).map_err(AwsError::invalid_parameter)?;
    let ns = e.c.account().to_string();
    let api = e.c.api::<ReplicationConfiguration>(&ns);
    let exists = api
        .get_opt(DEFAULT_NAME)
        .await
        .map_err(|err| e.c.kube_error(err, &arn(&ns)))?
        .is_some();
    let written = match exists {
        true => {
            api.patch(
                DEFAULT_NAME,
                &PatchParams::default(),
                &Patch::Merge(json!({"spec": {"rules": rules}})),
            )
            .await
        }
        false => {
            let object = ReplicationConfiguration {
                metadata: ObjectMeta {
                    name: Some(DEFAULT_NAME.into()),
                    namespace: Some(ns.clone()),
                    ..Default::default()
                },
                spec: ReplicationConfigurationSpec {
                    rules,
                    destination_registries: Vec::new(),
                },
            };
            api.create(&PostParams::default(), &object).await
        }
    }
    .map_err(|err| e.c.kube_error(err, &arn(&ns)))?;
    Ok(json!({"replicationConfiguration": {"rules": written.spec.rules}}))
}

pub async fn describe_registry(e: &Ecr<'_>, _i: Value) -> Result<Value, AwsError> {
    let repos = list_repositories(e.c, e.c.account()).await?;
    Ok(json!({
        "registryId": registry_id(repos.first()),
        "replicationConfiguration": { "rules": rules(e.c).await? },
    }))
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase")]
pub struct DescribeImageReplicationStatus {
    repository_name: String,
    image_id: ImageId,
}

pub async fn describe_image_replication_status(
    e: &Ecr<'_>,
    i: DescribeImageReplicationStatus,
) -> Result<Value, AwsError> {
    let r = RepositoryRef::named(e.c, &i.repository_name)?;
    let images = fetch(registry(e)?, e.c, &r.name, false).await?;
    let found = match resolve(&images, &i.image_id) {
        Ok(found) => found,
        Err(_) => {
            let rid = registry_id_of(e.c, &r.name).await;
            return Err(image_not_found(&i.image_id, &r.name, &rid));
        }
    };
    Ok(json!({
        "repositoryName": r.name,
        "imageId": {"imageDigest": found.digest, "imageTag": i.image_id.image_tag},
        "replicationStatuses": found.replication_statuses,
    }))
}
