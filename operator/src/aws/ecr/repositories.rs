//! Repositories: Repository objects in the caller's account (namespace). Names are global
//! across the cluster (image references carry no account), so CreateRepository refuses a
//! name any account holds, as far as the caller can see: every namespace when RBAC lets it
//! list them, otherwise its own and what the registry knows.

use std::sync::Arc;

use kube::ResourceExt;
use kube::api::{Api, DeleteParams, ListParams, ObjectMeta, Patch, PatchParams, PostParams};
use serde::Deserialize;
use serde_json::{Value, json};

use super::registry_client::RegistryClient;
use super::{
    Ecr, EcrTag, RepositoryRef, find, ids, list_repositories, object_of, registry_id,
    repository_not_found,
};
use crate::api::common::Tag;
use crate::api::repository::{
    EncryptionConfiguration, ImageScanningConfiguration, ImageTagMutability,
    ImageTagMutabilityExclusionFilter, Repository, RepositorySpec,
};
use crate::aws::AwsError;
use crate::aws::page::page;
use crate::aws::time::epoch_of;
pub use crate::registry::repositories::object_name;
use crate::registry::repositories::{lookup, repository_name};

/// ECR's `Repository` of a Repository object.
pub fn repository_json(r: &Repository, public_host: Option<&str>) -> Value {
    let (registry_id, name) = ids(r);
    let ns = r.namespace().unwrap_or_default();
    let status = r.status.clone().unwrap_or_default();
    let uri = status
        .repository_uri
        .or_else(|| public_host.map(|h| crate::ecr::repository_uri(h, &name)));
    json!({
        "repositoryArn": status.repository_arn.unwrap_or_else(|| crate::arn::repository(&ns, &name)),
        "registryId": registry_id,
        "repositoryName": name,
        "repositoryUri": uri,
        "createdAt": r.metadata.creation_timestamp.as_ref().map(epoch_of),
        "imageTagMutability": r.spec.image_tag_mutability.unwrap_or_default(),
        "imageTagMutabilityExclusionFilters": (!r.spec.image_tag_mutability_exclusion_filters.is_empty())
            .then_some(&r.spec.image_tag_mutability_exclusion_filters),
        "imageScanningConfiguration": r.spec.image_scanning_configuration.clone().unwrap_or_default(),
        "encryptionConfiguration": r.spec.encryption_configuration.clone().unwrap_or_else(|| EncryptionConfiguration {
            encryption_type: "AES256".into(),
            kms_key: None,
        }),
    })
}

fn host<'a>(e: &'a Ecr<'_>) -> Option<&'a str> {
    e.registry.map(|l| l.public_host.as_str())
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase")]
pub struct CreateRepository {
    repository_name: String,
    #[serde(default)]
    tags: Vec<EcrTag>,
    image_tag_mutability: Option<ImageTagMutability>,
    #[serde(default)]
    image_tag_mutability_exclusion_filters: Vec<ImageTagMutabilityExclusionFilter>,
    image_scanning_configuration: Option<ImageScanningConfiguration>,
    encryption_configuration: Option<EncryptionConfiguration>,
}

fn already_exists(name: &str, registry_id: &str) -> AwsError {
    AwsError::bad(
        "RepositoryAlreadyExistsException",
        format!(
            "The repository with name '{name}' already exists in the registry with id '{registry_id}'"
        ),
    )
}

/// Who else holds `name`: every account's objects when the caller may list them all, else its
/// own account's and the registry's word (any answer but NAME_UNKNOWN means it exists).
async fn holder(e: &Ecr<'_>, r: &RepositoryRef) -> Result<Option<String>, AwsError> {
    let c = e.c;
    let all = Api::<Repository>::all(c.client.clone())
        .list(&ListParams::default())
        .await;
    let repos = match all {
        Ok(l) => l.items,
        Err(kube::Error::Api(s)) if s.code == 403 => {
            let own = list_repositories(c, &r.namespace).await?;
            if lookup_in(&own, &r.name).is_none()
                && let Some(link) = e.registry
                && RegistryClient::new(link, c)
                    .repository_known(&r.name)
                    .await?
            {
                return Ok(Some(super::DEFAULT_REGISTRY_ID.to_string()));
            }
            own
        }
        Err(e) => return Err(c.kube_error(e, &r.arn())),
    };
    Ok(lookup_in(&repos, &r.name).map(|o| registry_id(Some(&o))))
}

fn lookup_in(repos: &[Repository], name: &str) -> Option<Repository> {
    let arcs: Vec<Arc<Repository>> = repos.iter().cloned().map(Arc::new).collect();
    lookup(&arcs, name).map(|r| (**r).clone())
}

pub async fn create(e: &Ecr<'_>, i: CreateRepository) -> Result<Value, AwsError> {
    let c = e.c;
    let r = RepositoryRef::named(c, &i.repository_name)?;
    if let Some(id) = holder(e, &r).await? {
        return Err(already_exists(&r.name, &id));
    }
    let repo = Repository {
        metadata: ObjectMeta {
            name: Some(object_name(&r.name)),
            namespace: Some(r.namespace.clone()),
            ..Default::default()
        },
        spec: RepositorySpec {
            repository_name: Some(r.name.clone()),
            image_tag_mutability: i.image_tag_mutability,
            image_tag_mutability_exclusion_filters: i.image_tag_mutability_exclusion_filters,
            image_scanning_configuration: i.image_scanning_configuration,
            encryption_configuration: i.encryption_configuration,
            lifecycle_policy: None,
            repository_policy: None,
            force: None,
            tags: i.tags.into_iter().map(Tag::from).collect(),
        },
        status: None,
    };
    let created = c
        .api::<Repository>(&r.namespace)
        .create(&PostParams::default(), &repo)
        .await
        .map_err(|err| match err {
            kube::Error::Api(s) if s.code == 409 => {
                already_exists(&r.name, super::DEFAULT_REGISTRY_ID)
            }
            err => c.kube_error(err, &r.arn()),
        })?;
    Ok(json!({ "repository": repository_json(&created, host(e)) }))
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase")]
pub struct DeleteRepository {
    repository_name: String,
    #[serde(default)]
    force: bool,
}

/// ECR's RepositoryNotEmptyException (the Repository controller's words).
fn not_empty(name: &str, registry_id: &str) -> AwsError {
    AwsError::bad(
        "RepositoryNotEmptyException",
        crate::controllers::repository::not_empty_message(name, registry_id),
    )
}

/// Whether the repository holds images: the registry's list as the caller when a registry
/// is configured, else (or when the caller may not list them) the count its status reports.
/// A repository the registry does not know yet has none.
async fn has_images(e: &Ecr<'_>, r: &Repository) -> Result<bool, AwsError> {
    let counted = r.status.as_ref().is_some_and(|s| s.image_count > 0);
    let Some(link) = e.registry else {
        return Ok(counted);
    };
    match super::images::fetch(link, e.c, &repository_name(r), true).await {
        Ok(images) => Ok(!images.is_empty()),
        Err(err) if err.code == "RepositoryNotFoundException" => Ok(false),
        Err(err) if err.code == "AccessDeniedException" => Ok(counted),
        Err(err) => Err(err),
    }
}

pub async fn delete(e: &Ecr<'_>, i: DeleteRepository) -> Result<Value, AwsError> {
    let c = e.c;
    let r = RepositoryRef::named(c, &i.repository_name)?;
    let repo = find(c, &r).await?;
    let (ns, object) = object_of(&repo);
    let api = c.api::<Repository>(&ns);
    if i.force {
        // The registry's Repository controller deletes the images, then lets the object go.
        api.patch(
            &object,
            &PatchParams::default(),
            &Patch::Merge(json!({ "spec": { "force": true } })),
        )
        .await
        .map_err(|err| c.kube_error(err, &r.arn()))?;
    } else if has_images(e, &repo).await? {
        return Err(not_empty(&r.name, &registry_id(Some(&repo))));
    }
    api.delete(&object, &DeleteParams::default())
        .await
        .map_err(|err| c.kube_error(err, &r.arn()))?;
    Ok(json!({ "repository": repository_json(&repo, host(e)) }))
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase")]
pub struct DescribeRepositories {
    repository_names: Option<Vec<String>>,
    next_token: Option<String>,
    max_results: Option<i32>,
}

pub async fn describe(e: &Ecr<'_>, i: DescribeRepositories) -> Result<Value, AwsError> {
    let c = e.c;
    let repos = list_repositories(c, c.account()).await?;
    let arcs: Vec<Arc<Repository>> = repos.iter().cloned().map(Arc::new).collect();
    if let Some(names) = i.repository_names.filter(|n| !n.is_empty()) {
        if i.next_token.is_some() || i.max_results.is_some() {
            return Err(AwsError::invalid_parameter(
                "Invalid parameter: nextToken and maxResults cannot be used with repositoryNames",
            ));
        }
        let mut found = Vec::new();
        for n in names {
            RepositoryRef::named(c, &n)?;
            match lookup(&arcs, &n) {
                Some(r) => found.push(repository_json(r, host(e))),
                None => return Err(repository_not_found(&n, &registry_id(repos.first()))),
            }
        }
        return Ok(json!({ "repositories": found }));
    }
    let names: Vec<String> = arcs.iter().map(|r| repository_name(r)).collect();
    let (names, next) = page(
        names,
        Some(i.max_results.unwrap_or(100)),
        i.next_token.as_deref(),
        1000,
    )?;
    let out: Vec<Value> = names
        .iter()
        .filter_map(|n| lookup(&arcs, n))
        .map(|r| repository_json(r, host(e)))
        .collect();
    Ok(json!({ "repositories": out, "nextToken": next }))
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase")]
pub struct PutImageTagMutability {
    repository_name: String,
    image_tag_mutability: ImageTagMutability,
    #[serde(default)]
    image_tag_mutability_exclusion_filters: Vec<ImageTagMutabilityExclusionFilter>,
}

/// Merges `spec` into the Repository's spec.
pub async fn patch_spec(
    e: &Ecr<'_>,
    repo: &Repository,
    spec: Value,
) -> Result<Repository, AwsError> {
    let (ns, object) = object_of(repo);
    e.c.api::<Repository>(&ns)
        .patch(
            &object,
            &PatchParams::default(),
            &Patch::Merge(json!({ "spec": spec })),
        )
        .await
        .map_err(|err| {
            e.c.kube_error(err, &crate::arn::repository(&ns, &repository_name(repo)))
        })
}

pub async fn put_image_tag_mutability(
    e: &Ecr<'_>,
    i: PutImageTagMutability,
) -> Result<Value, AwsError> {
    let repo = find(e.c, &RepositoryRef::named(e.c, &i.repository_name)?).await?;
    let filters = (!i.image_tag_mutability_exclusion_filters.is_empty())
        .then_some(&i.image_tag_mutability_exclusion_filters);
    let updated = patch_spec(
        e,
        &repo,
        json!({
            "imageTagMutability": i.image_tag_mutability,
            // null removes the filters (merge patch).
            "imageTagMutabilityExclusionFilters": filters,
        }),
    )
    .await?;
    let (registry_id, name) = ids(&updated);
    Ok(json!({
        "registryId": registry_id,
        "repositoryName": name,
        "imageTagMutability": updated.spec.image_tag_mutability.unwrap_or_default(),
        "imageTagMutabilityExclusionFilters": (!updated.spec.image_tag_mutability_exclusion_filters.is_empty())
            .then_some(&updated.spec.image_tag_mutability_exclusion_filters),
    }))
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase")]
pub struct TagResource {
    resource_arn: String,
    tags: Vec<EcrTag>,
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase")]
pub struct UntagResource {
    resource_arn: String,
    tag_keys: Vec<String>,
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase")]
pub struct ListTagsForResource {
    resource_arn: String,
}

/// ECR's tag limits, checked before the CRD's schema would say it less clearly.
fn check_tags(tags: &[Tag]) -> Result<(), AwsError> {
    if tags.len() > 50 {
        return Err(AwsError::bad(
            "TooManyTagsException",
            "The repository can have at most 50 tags.",
        ));
    }
    if let Some(t) = tags
        .iter()
        .find(|t| t.key.is_empty() || t.key.len() > 128 || t.key.starts_with("aws:"))
    {
        return Err(AwsError::bad(
            "InvalidTagParameterException",
            format!(
                "Invalid tag key '{}': a key has 1 to 128 characters and does not start with 'aws:'.",
                t.key
            ),
        ));
    }
    Ok(())
}

/// `tags` after setting `new` (by key, in place or appended).
pub fn merge_tags(mut tags: Vec<Tag>, new: Vec<Tag>) -> Vec<Tag> {
    for t in new {
        match tags.iter_mut().find(|o| o.key == t.key) {
            Some(o) => o.value = t.value,
            None => tags.push(t),
        }
    }
    tags
}

pub async fn tag_resource(e: &Ecr<'_>, i: TagResource) -> Result<Value, AwsError> {
    let repo = find(e.c, &RepositoryRef::from_arn(&i.resource_arn)?).await?;
    let tags = merge_tags(
        repo.spec.tags.clone(),
        i.tags.into_iter().map(Tag::from).collect(),
    );
    check_tags(&tags)?;
    patch_spec(e, &repo, json!({ "tags": tags })).await?;
    Ok(json!({}))
}

pub async fn untag_resource(e: &Ecr<'_>, i: UntagResource) -> Result<Value, AwsError> {
    let repo = find(e.c, &RepositoryRef::from_arn(&i.resource_arn)?).await?;
    let tags: Vec<Tag> = repo
        .spec
        .tags
        .iter()
        .filter(|t| !i.tag_keys.contains(&t.key))
        .cloned()
        .collect();
    patch_spec(e, &repo, json!({ "tags": tags })).await?;
    Ok(json!({}))
}

pub async fn list_tags_for_resource(
    e: &Ecr<'_>,
    i: ListTagsForResource,
) -> Result<Value, AwsError> {
    let repo = find(e.c, &RepositoryRef::from_arn(&i.resource_arn)?).await?;
    let tags: Vec<EcrTag> = repo.spec.tags.iter().map(EcrTag::from).collect();
    Ok(json!({ "tags": tags }))
}
