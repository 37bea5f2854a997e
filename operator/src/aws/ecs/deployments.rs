//! Service deployments and revisions (ListServiceDeployments, DescribeServiceDeployments,
//! DescribeServiceRevisions, StopServiceDeployment) over the `ServiceDeployment` records the
//! Service controller keeps. Stopping one annotates its Service
//! (`ecs.kubecs.io/stop-deployment`); the controller rolls it back (or aborts it).

use kube::ResourceExt;
use kube::api::{ListParams, Patch, PatchParams};
use serde::Deserialize;
use serde_json::{Value, json};

use super::{Caller, ClusterRef, parse_arn};
use crate::api::Service;
use crate::api::labels;
use crate::api::service::{CONTINUE_ANNOTATION, STOP_DEPLOYMENT_ANNOTATION, StopType};
use crate::api::service_deployment::{ServiceDeployment, ServiceDeploymentState};
use crate::api::states::{HookAction, HookStatus};
use crate::aws::page::page;
use crate::aws::time::epoch;
use crate::aws::{AwsError, strip_nulls};
use crate::deploy::history::record_name;

fn time(s: &Option<String>) -> Value {
    json!(s.as_deref().and_then(epoch))
}

/// ECS's ServiceDeployment of a record.
fn deployment_json(r: &ServiceDeployment) -> Value {
    let st = r.status.clone().unwrap_or_default();
    let sp = &r.spec;
    strip_nulls(json!({
        "serviceDeploymentArn": sp.service_deployment_arn,
        "serviceArn": sp.service_arn,
        "clusterArn": sp.cluster_arn,
        "createdAt": epoch(&sp.created_at),
        "startedAt": time(&st.started_at),
        "finishedAt": time(&st.finished_at),
        "stoppedAt": time(&st.stopped_at),
        "updatedAt": time(&st.updated_at),
        "sourceServiceRevisions": sp.source_service_revisions,
        "targetServiceRevision": st.target_service_revision,
        "status": st.status,
        "statusReason": st.status_reason,
        "lifecycleStage": st.lifecycle_stage,
        "deploymentConfiguration": sp.deployment_configuration,
        "rollback": st.rollback.as_ref().map(|rb| json!({
            "reason": rb.reason,
            "startedAt": epoch(&rb.started_at),
            "serviceRevisionArn": rb.service_revision_arn,
        })),
        "deploymentCircuitBreaker": st.deployment_circuit_breaker,
        "alarms": st.alarms,
        "lifecycleHookDetails": st.lifecycle_hook_details.iter().map(|h| json!({
            "hookId": h.hook_id,
            "targetType": h.target_type,
            "targetArn": h.target_arn,
            "status": h.status,
            "expiresAt": epoch(&h.expires_at),
            "timeoutAction": h.timeout_action,
        })).collect::<Vec<_>>(),
    }))
}

/// ECS's ServiceDeploymentBrief.
fn brief_json(r: &ServiceDeployment) -> Value {
    let st = r.status.clone().unwrap_or_default();
    let sp = &r.spec;
    strip_nulls(json!({
        "serviceDeploymentArn": sp.service_deployment_arn,
        "serviceArn": sp.service_arn,
        "clusterArn": sp.cluster_arn,
        "startedAt": time(&st.started_at),
        "createdAt": epoch(&sp.created_at),
        "finishedAt": time(&st.finished_at),
        "targetServiceRevisionArn": sp.target_service_revision.service_revision_arn,
        "status": st.status,
        "statusReason": st.status_reason,
    }))
}

/// ECS's ServiceRevision of a record's target revision.
fn revision_json(r: &ServiceDeployment) -> Value {
    let sp = &r.spec;
    let rev = &sp.target_service_revision;
    strip_nulls(json!({
        "serviceRevisionArn": rev.service_revision_arn,
        "serviceArn": sp.service_arn,
        "clusterArn": sp.cluster_arn,
        "taskDefinition": super::task_definition_arn(&r.namespace().unwrap_or_default(), &rev.task_definition),
        "capacityProviderStrategy": (!rev.capacity_provider_strategy.is_empty()).then_some(&rev.capacity_provider_strategy),
        "launchType": rev.launch_type,
        "loadBalancers": (!rev.load_balancers.is_empty()).then_some(&rev.load_balancers),
        "containerImages": rev.container_images,
        "createdAt": epoch(&rev.created_at),
    }))
}

/// A service-deployment or service-revision ARN: account, cluster, service and the id digits.
fn parse_record_arn<'a>(arn: &'a str, kind: &str) -> Option<(&'a str, &'a str, &'a str, &'a str)> {
    let (account, resource) = parse_arn(arn)?;
    let rest = resource.strip_prefix(kind)?.strip_prefix('/')?;
    let mut parts = rest.split('/');
    let (cluster, service, id) = (parts.next()?, parts.next()?, parts.next()?);
    (parts.next().is_none() && !id.is_empty()).then_some((account, cluster, service, id))
}

/// The record an ARN names, if the caller may read it and it belongs to that cluster.
async fn record(c: &Caller, arn: &str, kind: &str) -> Result<Option<ServiceDeployment>, AwsError> {
    let Some((account, cluster, service, id)) = parse_record_arn(arn, kind) else {
        return Ok(None);
    };
    let found = c
        .api::<ServiceDeployment>(account)
        .get_opt(&record_name(service, id))
        .await
        .map_err(|e| c.kube_error(e, arn))?;
    Ok(found.filter(|r| r.spec.cluster == cluster && r.spec.service == service))
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase")]
pub struct CreatedAt {
    before: Option<f64>,
    after: Option<f64>,
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase")]
pub struct ListServiceDeployments {
    service: String,
    cluster: Option<String>,
    #[serde(default)]
    status: Vec<ServiceDeploymentState>,
    created_at: Option<CreatedAt>,
    next_token: Option<String>,
    max_results: Option<i32>,
}

pub async fn list(c: &Caller, i: ListServiceDeployments) -> Result<Value, AwsError> {
    let r = ClusterRef::resolve(c, i.cluster.as_deref())?;
    super::clusters::get(c, &r).await?;
    let svc: Service = super::services::get(c, &r, &i.service).await?;
    let name = svc.name_any();
    let arn = crate::arn::service(&r.namespace, &r.name, &name);
    let all = c
        .api::<ServiceDeployment>(&r.namespace)
        .list(&ListParams::default().labels(&format!("{}={name}", labels::SERVICE)))
        .await
        .map_err(|e| c.kube_error(e, &arn))?
        .items;
    let window = i.created_at.unwrap_or_default();
    let kept: Vec<&ServiceDeployment> = all
        .iter()
        .filter(|d| d.spec.cluster == r.name)
        .filter(|d| {
            i.status.is_empty()
                || i.status
                    .contains(&d.status.as_ref().map(|s| s.status).unwrap_or_default())
        })
        .filter(|d| {
            let at = epoch(&d.spec.created_at).unwrap_or(0.0);
            window.before.is_none_or(|b| at < b) && window.after.is_none_or(|a| at > a)
        })
        .collect();
    // Newest first: the page key sorts by creation time, descending.
    let key = |d: &ServiceDeployment| {
        let ms = (epoch(&d.spec.created_at).unwrap_or(0.0) * 1000.0) as i64;
        format!("{:020}/{}", i64::MAX - ms, d.name_any())
    };
    let keys = kept.iter().map(|d| key(d)).collect();
    let (taken, next) = page(keys, i.max_results, i.next_token.as_deref(), 100)?;
    let briefs: Vec<Value> = taken
        .iter()
        .filter_map(|k| kept.iter().find(|d| &key(d) == k))
        .map(|d| brief_json(d))
        .collect();
    Ok(json!({ "serviceDeployments": briefs, "nextToken": next }))
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase")]
pub struct DescribeServiceDeployments {
    service_deployment_arns: Vec<String>,
}

pub async fn describe(c: &Caller, i: DescribeServiceDeployments) -> Result<Value, AwsError> {
    let (found, failures) = described(
        c,
        &i.service_deployment_arns,
        "service-deployment",
        "serviceDeploymentArns",
        deployment_json,
    )
    .await?;
    Ok(json!({ "serviceDeployments": found, "failures": failures }))
}

/// The records 1 to 20 ARNs of `kind` name, as `to_json` shows them, and MISSING failures.
async fn described(
    c: &Caller,
    arns: &[String],
    kind: &str,
    field: &str,
    to_json: fn(&ServiceDeployment) -> Value,
) -> Result<(Vec<Value>, Vec<Value>), AwsError> {
    if arns.is_empty() || arns.len() > 20 {
        return Err(AwsError::invalid_parameter(format!(
            "{field} must name 1 to 20 ARNs."
        )));
    }
    let (mut found, mut failures) = (Vec::new(), Vec::new());
    for arn in arns {
        match record(c, arn, kind).await? {
            Some(r) => found.push(to_json(&r)),
            None => failures.push(json!({"arn": arn, "reason": "MISSING"})),
        }
    }
    Ok((found, failures))
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase")]
pub struct DescribeServiceRevisions {
    service_revision_arns: Vec<String>,
}

pub async fn describe_revisions(
    c: &Caller,
    i: DescribeServiceRevisions,
) -> Result<Value, AwsError> {
    let (found, failures) = described(
        c,
        &i.service_revision_arns,
        "service-revision",
        "serviceRevisionArns",
        revision_json,
    )
    .await?;
    Ok(json!({ "serviceRevisions": found, "failures": failures }))
}

/// The record an ARN names, or ServiceDeploymentNotFoundException.
async fn existing(c: &Caller, arn: &str) -> Result<ServiceDeployment, AwsError> {
    record(c, arn, "service-deployment").await?.ok_or_else(|| {
        AwsError::bad(
            "ServiceDeploymentNotFoundException",
            "The service deployment does not exist.",
        )
    })
}

/// Sets `key: value` on the record's Service: the controller acts on it.
async fn annotate_service(
    c: &Caller,
    r: &ServiceDeployment,
    key: &str,
    value: String,
) -> Result<(), AwsError> {
    let ns = r.namespace().unwrap_or_default();
    let patch = json!({"metadata": {"annotations": { key: value }}});
    c.api::<Service>(&ns)
        .patch(
            &r.spec.service,
            &PatchParams::default(),
            &Patch::Merge(&patch),
        )
        .await
        .map_err(|e| c.kube_error(e, &r.spec.service_arn))?;
    Ok(())
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase")]
pub struct StopServiceDeployment {
    service_deployment_arn: String,
    #[serde(default)]
    stop_type: Option<StopType>,
}

pub async fn stop(c: &Caller, i: StopServiceDeployment) -> Result<Value, AwsError> {
    let arn = &i.service_deployment_arn;
    let r = existing(c, arn).await?;
    let state = r.status.as_ref().map(|s| s.status).unwrap_or_default();
    if state != ServiceDeploymentState::InProgress {
        return Err(AwsError::bad(
            "ConflictException",
            format!(
                "The service deployment is {}: only an IN_PROGRESS service deployment can be stopped.",
                serde_json::to_value(state)
                    .ok()
                    .and_then(|v| v.as_str().map(String::from))
                    .unwrap_or_default()
            ),
        ));
    }
    let how = match i.stop_type.unwrap_or_default() {
        StopType::Rollback => "ROLLBACK",
        StopType::Abort => "ABORT",
    };
    annotate_service(
        c,
        &r,
        STOP_DEPLOYMENT_ANNOTATION,
        format!("{}:{how}", r.spec.deployment_id),
    )
    .await?;
    Ok(json!({ "serviceDeploymentArn": arn }))
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase")]
pub struct ContinueServiceDeployment {
    service_deployment_arn: String,
    hook_id: String,
    #[serde(default)]
    action: Option<HookAction>,
}

pub async fn continue_deployment(
    c: &Caller,
    i: ContinueServiceDeployment,
) -> Result<Value, AwsError> {
    let arn = &i.service_deployment_arn;
    let r = existing(c, arn).await?;
    let paused = r.status.as_ref().is_some_and(|s| {
        s.lifecycle_hook_details
            .iter()
            .any(|h| h.hook_id == i.hook_id && h.status == HookStatus::AwaitingAction)
    });
    if !paused {
        return Err(AwsError::invalid_parameter(format!(
            "The service deployment is not paused at lifecycle hook {}.",
            i.hook_id
        )));
    }
    let action = match i.action.unwrap_or(HookAction::Continue) {
        HookAction::Continue => "CONTINUE",
        HookAction::Rollback => "ROLLBACK",
    };
    annotate_service(
        c,
        &r,
        CONTINUE_ANNOTATION,
        format!("{}:{action}", i.hook_id),
    )
    .await?;
    Ok(json!({ "serviceDeploymentArn": arn }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn record_arns_name_account_cluster_service_and_id() {
        assert_eq!(
            parse_record_arn(
                "arn:aws:ecs:kubecs:team:service-deployment/prod/web/123",
                "service-deployment"
            ),
            Some(("team", "prod", "web", "123"))
        );
        assert_eq!(
            parse_record_arn(
                "arn:aws:ecs:kubecs:team:service-revision/prod/web/123",
                "service-deployment"
            ),
            None
        );
        assert_eq!(
            parse_record_arn(
                "arn:aws:ecs:kubecs:team:service-deployment/prod/web",
                "service-deployment"
            ),
            None
        );
    }
}
