//! Pull through cache rules: PullThroughCacheRule objects in the caller's account
//! (namespace), one per `ecrRepositoryPrefix`, found by their prefix (an object made with
//! `kubectl` may have any name). The registry reads them (`registry::cache_rules`).

use std::time::Duration;

use axum::http::{Method, Request, StatusCode, header};
use bytes::Bytes;
use http_body_util::Full;
use k8s_openapi::api::core::v1::Secret;
use kube::ResourceExt;
use kube::api::{DeleteParams, ObjectMeta, Patch, PatchParams, PostParams};
use serde::Deserialize;
use serde_json::{Value, json};

use super::by_prefix::{self, resource, same as same_prefix};
use super::{DEFAULT_REGISTRY_ID, Ecr};
use crate::api::pull_through_cache_rule::{PullThroughCacheRule, PullThroughCacheRuleSpec};
use crate::aws::time::epoch_of;
use crate::aws::{AwsError, Caller};
use crate::challenge::{self, Unanswered};
use crate::ecr::pull_through::{CacheRule, ROOT, upstream_registry_name};
use crate::registry::cache_rules::credentials_of;
use crate::registry::repositories::object_name;

/// When UpdatePullThroughCacheRule last changed the rule (ECR's `updatedAt`), RFC 3339.
pub const UPDATED_AT: &str = "ecr.kubecs.io/updated-at";

/// How long ValidatePullThroughCacheRule waits for the upstream.
const PROBE_TIMEOUT: Duration = Duration::from_secs(10);

/// ECR's `PullThroughCacheRule` of an object.
pub fn rule_json(r: &PullThroughCacheRule) -> Value {
    let s = &r.spec;
    let created = r.metadata.creation_timestamp.as_ref().map(epoch_of);
    let updated = r
        .annotations()
        .get(UPDATED_AT)
        .and_then(|t| crate::aws::time::epoch(t))
        .or(created);
    json!({
        "ecrRepositoryPrefix": s.ecr_repository_prefix,
        "upstreamRegistryUrl": s.upstream_registry_url,
        "createdAt": created,
        "registryId": DEFAULT_REGISTRY_ID,
        "credentialArn": s.credential_arn,
        "upstreamRepositoryPrefix": s.upstream_repository_prefix.as_deref().unwrap_or(ROOT),
        "upstreamRegistry": upstream_registry_name(&s.upstream_registry_url),
        "updatedAt": updated,
    })
}

const RULE: by_prefix::Kind = by_prefix::Kind {
    what: "pull through cache rule",
    field: "ecrRepositoryPrefix",
    not_found: "PullThroughCacheRuleNotFoundException",
    already_exists: "PullThroughCacheRuleAlreadyExistsException",
};

fn not_found(prefix: &str) -> AwsError {
    RULE.not_found(prefix)
}

fn already_exists(prefix: &str) -> AwsError {
    RULE.already_exists(prefix)
}

/// The rules of the caller's account, by prefix.
async fn rules(c: &Caller) -> Result<Vec<PullThroughCacheRule>, AwsError> {
    by_prefix::list(c, |r: &PullThroughCacheRule| {
        r.spec.ecr_repository_prefix.as_str()
    })
    .await
}

async fn find(c: &Caller, prefix: &str) -> Result<PullThroughCacheRule, AwsError> {
    crate::ecr::pull_through::validate_prefix("ecrRepositoryPrefix", prefix)
        .map_err(AwsError::invalid_parameter)?;
    rules(c)
        .await?
        .into_iter()
        .find(|r| same_prefix(&r.spec.ecr_repository_prefix, prefix))
        .ok_or_else(|| not_found(prefix))
}

/// The rule's fields checked as ECR checks them.
fn check(spec: &PullThroughCacheRuleSpec, ns: &str) -> Result<CacheRule, AwsError> {
    CacheRule::new(
        &spec.ecr_repository_prefix,
        &spec.upstream_registry_url,
        spec.upstream_repository_prefix.as_deref(),
        spec.credential_arn.as_deref(),
        Some(ns),
    )
    .map_err(AwsError::invalid_parameter)
}

/// The credentials Secret a rule names, read as the caller: missing is ECR's
/// SecretNotFoundException, forbidden its UnableToAccessSecretException unless `lenient` (a
/// caller may manage rules without reading Secrets: the registry reads them, not the caller).
async fn read_secret(
    c: &Caller,
    rule: &CacheRule,
    arn: Option<&str>,
    lenient: bool,
) -> Result<Option<(String, String)>, AwsError> {
    let (Some(name), Some(ns), Some(arn)) = (&rule.credential_secret, &rule.namespace, arn) else {
        return Ok(None);
    };
    match c.api::<Secret>(ns).get_opt(name).await {
        Ok(Some(s)) => credentials_of(&s).map(Some).ok_or_else(|| {
            AwsError::bad(
                "UnableToDecryptSecretValueException",
                format!("The secret '{arn}' (the Kubernetes Secret {ns}/{name}) lacks the keys username and accessToken."),
            )
        }),
        Ok(None) => Err(AwsError::bad(
            "SecretNotFoundException",
            format!("The secret '{arn}' was not found: create the Kubernetes Secret {ns}/{name} with the keys username and accessToken."),
        )),
        Err(kube::Error::Api(s)) if s.code == 403 && lenient => Ok(None),
        Err(kube::Error::Api(s)) if s.code == 403 => Err(AwsError::bad(
            "UnableToAccessSecretException",
            format!("The secret '{arn}' (the Kubernetes Secret {ns}/{name}) cannot be read: {}", s.message),
        )),
        Err(e) => Err(c.kube_error(e, arn)),
    }
}

fn no_custom_role(custom_role_arn: &Option<String>) -> Result<(), AwsError> {
    match custom_role_arn {
        Some(_) => Err(AwsError::invalid_parameter(
            "kubecs assumes no IAM roles: leave customRoleArn out and name the upstream's credentials with credentialArn.",
        )),
        None => Ok(()),
    }
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase")]
pub struct CreatePullThroughCacheRule {
    ecr_repository_prefix: String,
    upstream_registry_url: String,
    upstream_registry: Option<String>,
    credential_arn: Option<String>,
    custom_role_arn: Option<String>,
    upstream_repository_prefix: Option<String>,
}

pub async fn create(e: &Ecr<'_>, i: CreatePullThroughCacheRule) -> Result<Value, AwsError> {
    let c = e.c;
    let ns = c.account().to_string();
    no_custom_role(&i.custom_role_arn)?;
    let spec = PullThroughCacheRuleSpec {
        ecr_repository_prefix: i.ecr_repository_prefix.trim_end_matches('/').to_string(),
        upstream_registry_url: i.upstream_registry_url,
        upstream_repository_prefix: i.upstream_repository_prefix,
        credential_arn: i.credential_arn,
    };
    let rule = check(&spec, &ns)?;
    if let Some(named) = &i.upstream_registry
        && upstream_registry_name(&rule.upstream_registry_url).is_some_and(|n| n != named)
    {
        return Err(AwsError::bad(
            "UnsupportedUpstreamRegistryException",
            format!(
                "The upstream registry '{named}' does not match the URL '{}'.",
                spec.upstream_registry_url
            ),
        ));
    }
    if rules(c)
        .await?
        .iter()
        .any(|r| same_prefix(&r.spec.ecr_repository_prefix, &spec.ecr_repository_prefix))
    {
        return Err(already_exists(&spec.ecr_repository_prefix));
    }
    read_secret(c, &rule, spec.credential_arn.as_deref(), true).await?;
    let prefix = spec.ecr_repository_prefix.clone();
    let object = PullThroughCacheRule {
        metadata: ObjectMeta {
            name: Some(object_name(&prefix)),
            namespace: Some(ns.clone()),
            ..Default::default()
        },
        spec,
    };
    let created = c
        .api::<PullThroughCacheRule>(&ns)
        .create(&PostParams::default(), &object)
        .await
        .map_err(|err| match err {
            kube::Error::Api(s) if s.code == 409 => already_exists(&prefix),
            err => c.kube_error(err, &resource(&ns, &prefix)),
        })?;
    let mut out = rule_json(&created);
    if let Value::Object(m) = &mut out {
        m.remove("updatedAt");
    }
    Ok(out)
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase")]
pub struct DescribePullThroughCacheRules {
    ecr_repository_prefixes: Option<Vec<String>>,
    next_token: Option<String>,
    max_results: Option<i32>,
}

pub async fn describe(e: &Ecr<'_>, i: DescribePullThroughCacheRules) -> Result<Value, AwsError> {
    let all = rules(e.c).await?;
    if let Some(prefixes) = i.ecr_repository_prefixes.filter(|p| !p.is_empty()) {
        let mut found = Vec::new();
        for p in prefixes {
            let r = all
                .iter()
                .find(|r| same_prefix(&r.spec.ecr_repository_prefix, &p))
                .ok_or_else(|| not_found(&p))?;
            found.push(rule_json(r));
        }
        return Ok(json!({ "pullThroughCacheRules": found }));
    }
    let (taken, next) = crate::aws::page::page_by(
        &all,
        |r| r.spec.ecr_repository_prefix.clone(),
        Some(i.max_results.unwrap_or(100)),
        i.next_token.as_deref(),
        1000,
    )?;
    let out: Vec<Value> = taken.into_iter().map(rule_json).collect();
    Ok(json!({ "pullThroughCacheRules": out, "nextToken": next }))
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase")]
pub struct PrefixOnly {
    ecr_repository_prefix: String,
}

pub async fn delete(e: &Ecr<'_>, i: PrefixOnly) -> Result<Value, AwsError> {
    let c = e.c;
    let r = find(c, &i.ecr_repository_prefix).await?;
    let ns = r.namespace().unwrap_or_default();
    c.api::<PullThroughCacheRule>(&ns)
        .delete(&r.name_any(), &DeleteParams::default())
        .await
        .map_err(|err| c.kube_error(err, &resource(&ns, &i.ecr_repository_prefix)))?;
    let mut out = rule_json(&r);
    if let Value::Object(m) = &mut out {
        m.remove("updatedAt");
        m.remove("upstreamRegistry");
    }
    Ok(out)
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase")]
pub struct UpdatePullThroughCacheRule {
    ecr_repository_prefix: String,
    credential_arn: Option<String>,
    custom_role_arn: Option<String>,
    upstream_repository_prefix: Option<String>,
}

pub async fn update(e: &Ecr<'_>, i: UpdatePullThroughCacheRule) -> Result<Value, AwsError> {
    let c = e.c;
    no_custom_role(&i.custom_role_arn)?;
    let r = find(c, &i.ecr_repository_prefix).await?;
    let ns = r.namespace().unwrap_or_default();
    let mut spec = r.spec.clone();
    if i.credential_arn.is_some() {
        spec.credential_arn = i.credential_arn;
    }
    if i.upstream_repository_prefix.is_some() {
        spec.upstream_repository_prefix = i.upstream_repository_prefix;
    }
    let rule = check(&spec, &ns)?;
    read_secret(c, &rule, spec.credential_arn.as_deref(), true).await?;
    let now = k8s_openapi::jiff::Timestamp::now().to_string();
    let updated = c
        .api::<PullThroughCacheRule>(&ns)
        .patch(
            &r.name_any(),
            &PatchParams::default(),
            &Patch::Merge(json!({
                "metadata": {"annotations": {UPDATED_AT: now}},
                "spec": {
                    "credentialArn": spec.credential_arn,
                    "upstreamRepositoryPrefix": spec.upstream_repository_prefix,
                },
            })),
        )
        .await
        .map_err(|err| c.kube_error(err, &resource(&ns, &i.ecr_repository_prefix)))?;
    let mut out = rule_json(&updated);
    if let Value::Object(m) = &mut out {
        for k in ["upstreamRegistryUrl", "createdAt", "upstreamRegistry"] {
            m.remove(k);
        }
    }
    Ok(out)
}

pub async fn validate(e: &Ecr<'_>, i: PrefixOnly) -> Result<Value, AwsError> {
    let c = e.c;
    let r = find(c, &i.ecr_repository_prefix).await?;
    let ns = r.namespace().unwrap_or_default();
    let failure = match check(&r.spec, &ns) {
        Err(e) => Some(e.message),
        Ok(rule) => match read_secret(c, &rule, r.spec.credential_arn.as_deref(), false).await {
            Err(e) => Some(e.message),
            Ok(credentials) => probe(&rule.upstream_registry_url, credentials.as_ref())
                .await
                .err(),
        },
    };
    let mut out = rule_json(&r);
    if let Value::Object(m) = &mut out {
        for k in ["createdAt", "updatedAt", "upstreamRegistry"] {
            m.remove(k);
        }
        m.insert("isValid".into(), json!(failure.is_none()));
        m.insert("failure".into(), json!(failure));
    }
    Ok(out)
}

/// Whether the upstream answers its API root `/v2/`, with the credentials when it asks for
/// them: ValidatePullThroughCacheRule's check. Err: why not.
async fn probe(base: &str, credentials: Option<&(String, String)>) -> Result<(), String> {
    let url = format!("{base}/v2/");
    let get = |authorization: Option<String>| {
        let mut b = Request::builder().method(Method::GET).uri(&url);
        if let Some(a) = authorization {
            b = b.header(header::AUTHORIZATION, a);
        }
        async move {
            let req = b.body(Full::new(Bytes::new())).map_err(|e| e.to_string())?;
            crate::http::send(req, "the upstream registry", PROBE_TIMEOUT)
                .await
                .map_err(|e| e.to_string())
        }
    };
    let mut answer = get(None).await?;
    if answer.status == StatusCode::UNAUTHORIZED {
        let challenge = answer
            .headers
            .get(header::WWW_AUTHENTICATE)
            .and_then(|v| v.to_str().ok());
        match challenge::answer(challenge, None, credentials).await {
            Ok(Some(a)) => answer = get(Some(a)).await?,
            Ok(None) => {}
            Err(Unanswered::NeedsCredentials) => {
                return Err(
                    "The upstream registry asks for credentials and the rule has no credentialArn."
                        .into(),
                );
            }
            Err(Unanswered::Token(e)) => {
                return Err(format!("The upstream registry's token service: {e}."));
            }
        }
    }
    match answer.status {
        s if s.is_success() => Ok(()),
        s => Err(format!("The upstream registry answered {s} at {url}.")),
    }
}
