//! Repository creation templates: RepositoryCreationTemplate objects in the caller's account
//! (namespace), one per `prefix`, found by their prefix (an object made with `kubectl` may
//! have any name). The registry reads them (`registry::creation`).

use kube::ResourceExt;
use kube::api::{DeleteParams, ObjectMeta, Patch, PatchParams, PostParams};
use serde::Deserialize;
use serde_json::{Value, json};

use super::by_prefix::{self, resource, same as same_prefix};
use super::policies::{
    lifecycle_policy_text, parse_lifecycle_policy, parse_repository_policy, repository_policy_text,
};
use super::{DEFAULT_REGISTRY_ID, Ecr, EcrTag};
use crate::api::repository::{
    EncryptionConfiguration, ImageTagMutability, ImageTagMutabilityExclusionFilter,
};
use crate::api::repository_creation_template::{
    RctAppliedFor, RepositoryCreationTemplate, RepositoryCreationTemplateSpec,
};
use crate::aws::time::epoch_of;
use crate::aws::{AwsError, Caller};
use crate::ecr::creation_templates::validate_prefix;
use crate::registry::repositories::object_name;

/// When UpdateRepositoryCreationTemplate last changed the template (ECR's `updatedAt`).
pub const UPDATED_AT: &str = "ecr.kubecs.io/updated-at";

/// ECR's `RepositoryCreationTemplate` of an object.
pub fn template_json(t: &RepositoryCreationTemplate) -> Value {
    let s = &t.spec;
    let created = t.metadata.creation_timestamp.as_ref().map(epoch_of);
    let updated = t
        .annotations()
        .get(UPDATED_AT)
        .and_then(|u| crate::aws::time::epoch(u))
        .or(created);
    let tags: Vec<EcrTag> = s.resource_tags.iter().map(EcrTag::from).collect();
    json!({
        "prefix": s.prefix,
        "description": s.description,
        "encryptionConfiguration": s.encryption_configuration,
        "resourceTags": tags,
        "imageTagMutability": s.image_tag_mutability.unwrap_or_default(),
        "imageTagMutabilityExclusionFilters": (!s.image_tag_mutability_exclusion_filters.is_empty())
            .then_some(&s.image_tag_mutability_exclusion_filters),
        "repositoryPolicy": s.repository_policy.as_ref().map(repository_policy_text),
        "lifecyclePolicy": s.lifecycle_policy.as_ref().map(lifecycle_policy_text),
        "appliedFor": s.applied_for,
        "createdAt": created,
        "updatedAt": updated,
    })
}

fn answer(t: &RepositoryCreationTemplate) -> Value {
    json!({"registryId": DEFAULT_REGISTRY_ID, "repositoryCreationTemplate": template_json(t)})
}

const TEMPLATE: by_prefix::Kind = by_prefix::Kind {
    what: "repository creation template",
    field: "prefix",
    not_found: "TemplateNotFoundException",
    already_exists: "TemplateAlreadyExistsException",
};

/// The templates of the caller's account, by prefix.
async fn templates(c: &Caller) -> Result<Vec<RepositoryCreationTemplate>, AwsError> {
    by_prefix::list(c, |t: &RepositoryCreationTemplate| t.spec.prefix.as_str()).await
}

async fn find(c: &Caller, prefix: &str) -> Result<RepositoryCreationTemplate, AwsError> {
    validate_prefix(prefix).map_err(AwsError::invalid_parameter)?;
    templates(c)
        .await?
        .into_iter()
        .find(|t| same_prefix(&t.spec.prefix, prefix))
        .ok_or_else(|| TEMPLATE.not_found(prefix))
}

/// The settable fields of Create and Update, as ECR sends them (policies as JSON text).
#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase")]
pub struct TemplateInput {
    prefix: String,
    description: Option<String>,
    encryption_configuration: Option<EncryptionConfiguration>,
    resource_tags: Option<Vec<EcrTag>>,
    image_tag_mutability: Option<ImageTagMutability>,
    image_tag_mutability_exclusion_filters: Option<Vec<ImageTagMutabilityExclusionFilter>>,
    repository_policy: Option<String>,
    lifecycle_policy: Option<String>,
    applied_for: Option<Vec<RctAppliedFor>>,
    custom_role_arn: Option<String>,
}

impl TemplateInput {
    /// `base` with the given fields replaced, checked as ECR checks them.
    fn apply(
        self,
        mut base: RepositoryCreationTemplateSpec,
    ) -> Result<RepositoryCreationTemplateSpec, AwsError> {
        if self.custom_role_arn.is_some() {
            return Err(AwsError::invalid_parameter(
                "kubecs assumes no IAM roles: leave customRoleArn out.",
            ));
        }
        if let Some(d) = self.description {
            base.description = Some(d);
        }
        if let Some(e) = self.encryption_configuration {
            base.encryption_configuration = Some(e);
        }
        if let Some(tags) = self.resource_tags {
            base.resource_tags = tags.into_iter().map(Into::into).collect();
        }
        if let Some(m) = self.image_tag_mutability {
            base.image_tag_mutability = Some(m);
        }
        if let Some(f) = self.image_tag_mutability_exclusion_filters {
            base.image_tag_mutability_exclusion_filters = f;
        }
        if let Some(p) = self.repository_policy {
            base.repository_policy = Some(parse_repository_policy(&p)?);
        }
        if let Some(p) = self.lifecycle_policy {
            base.lifecycle_policy = Some(parse_lifecycle_policy(&p)?);
        }
        if let Some(a) = self.applied_for {
            base.applied_for = a;
        }
        if base.applied_for.is_empty() {
            return Err(AwsError::invalid_parameter(
                "Invalid parameter at 'appliedFor' failed to satisfy constraint: 'Member must have length greater than or equal to 1'",
            ));
        }
        // Mutability and its filters: the CRD's CEL rules answer, as for CreateRepository.
        Ok(base)
    }
}

pub async fn create(e: &Ecr<'_>, i: TemplateInput) -> Result<Value, AwsError> {
    let c = e.c;
    let ns = c.account().to_string();
    let prefix = i.prefix.trim_end_matches('/').to_string();
    validate_prefix(&i.prefix).map_err(AwsError::invalid_parameter)?;
    let spec = i.apply(RepositoryCreationTemplateSpec {
        prefix: prefix.clone(),
        description: None,
        applied_for: Vec::new(),
        image_tag_mutability: None,
        image_tag_mutability_exclusion_filters: Vec::new(),
        repository_policy: None,
        lifecycle_policy: None,
        resource_tags: Vec::new(),
        encryption_configuration: None,
    })?;
    if templates(c)
        .await?
        .iter()
        .any(|t| same_prefix(&t.spec.prefix, &prefix))
    {
        return Err(TEMPLATE.already_exists(&prefix));
    }
    let object = RepositoryCreationTemplate {
        metadata: ObjectMeta {
            name: Some(object_name(&prefix.to_lowercase())),
            namespace: Some(ns.clone()),
            ..Default::default()
        },
        spec,
    };
    let created = c
        .api::<RepositoryCreationTemplate>(&ns)
        .create(&PostParams::default(), &object)
        .await
        .map_err(|err| match err {
            kube::Error::Api(s) if s.code == 409 => TEMPLATE.already_exists(&prefix),
            err => c.kube_error(err, &resource(&ns, &prefix)),
        })?;
    Ok(answer(&created))
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase")]
pub struct DescribeRepositoryCreationTemplates {
    prefixes: Option<Vec<String>>,
    next_token: Option<String>,
    max_results: Option<i32>,
}

pub async fn describe(
    e: &Ecr<'_>,
    i: DescribeRepositoryCreationTemplates,
) -> Result<Value, AwsError> {
    let all = templates(e.c).await?;
    // Unlike the cache rules, ECR lists only the templates found among `prefixes`.
    let wanted: Vec<&RepositoryCreationTemplate> = match i.prefixes.filter(|p| !p.is_empty()) {
        Some(prefixes) => {
            for p in &prefixes {
                validate_prefix(p).map_err(AwsError::invalid_parameter)?;
            }
            all.iter()
                .filter(|t| prefixes.iter().any(|p| same_prefix(&t.spec.prefix, p)))
                .collect()
        }
        None => all.iter().collect(),
    };
    let (taken, next) = crate::aws::page::page_by(
        &wanted,
        |t| t.spec.prefix.clone(),
        Some(i.max_results.unwrap_or(100)),
        i.next_token.as_deref(),
        1000,
    )?;
    let out: Vec<Value> = taken.into_iter().map(|t| template_json(t)).collect();
    Ok(json!({
        "registryId": DEFAULT_REGISTRY_ID,
        "repositoryCreationTemplates": out,
        "nextToken": next,
    }))
}

pub async fn update(e: &Ecr<'_>, i: TemplateInput) -> Result<Value, AwsError> {
    let c = e.c;
    let t = find(c, &i.prefix).await?;
    let ns = t.namespace().unwrap_or_default();
    let spec = i.apply(t.spec.clone())?;
    // A merge patch: what apply() set replaces, lists wholesale (an emptied list too).
    let mut patch_spec = serde_json::to_value(&spec).expect("a template spec serializes");
    patch_spec["imageTagMutabilityExclusionFilters"] =
        json!(spec.image_tag_mutability_exclusion_filters);
    patch_spec["resourceTags"] = json!(spec.resource_tags);
    let now = k8s_openapi::jiff::Timestamp::now().to_string();
    let updated = c
        .api::<RepositoryCreationTemplate>(&ns)
        .patch(
            &t.name_any(),
            &PatchParams::default(),
            &Patch::Merge(json!({
                "metadata": {"annotations": {UPDATED_AT: now}},
                "spec": patch_spec,
            })),
        )
        .await
        .map_err(|err| c.kube_error(err, &resource(&ns, &t.spec.prefix)))?;
    Ok(answer(&updated))
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase")]
pub struct PrefixOnly {
    prefix: String,
}

pub async fn delete(e: &Ecr<'_>, i: PrefixOnly) -> Result<Value, AwsError> {
    let c = e.c;
    let t = find(c, &i.prefix).await?;
    let ns = t.namespace().unwrap_or_default();
    c.api::<RepositoryCreationTemplate>(&ns)
        .delete(&t.name_any(), &DeleteParams::default())
        .await
        .map_err(|err| c.kube_error(err, &resource(&ns, &t.spec.prefix)))?;
    Ok(answer(&t))
}
