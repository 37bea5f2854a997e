//! Task scale-in protection (UpdateTaskProtection, GetTaskProtection): the pod annotation
//! `ecs.kubecs.io/protected-until`, which the service planner honours (neither scale-in nor a
//! deployment stops a protected task). Only service tasks can be protected, as in ECS.

use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::jiff::{SignedDuration, Timestamp};
use kube::ResourceExt;
use kube::api::{Patch, PatchParams};
use serde::Deserialize;
use serde_json::{Value, json};

use super::tasks::{id_of, seen, task_arn, task_id};
use super::{Caller, ClusterRef};
use crate::api::labels;
use crate::aws::AwsError;
use crate::taskdef::annotations::PROTECTED_UNTIL;

/// ECS's default and bounds of `expiresInMinutes`.
const DEFAULT_MINUTES: i64 = 120;
const MAX_MINUTES: i64 = 2880;

fn protected(pod: &Pod, ns: &str, cluster: &str) -> Value {
    let arn = task_arn(ns, cluster, &task_id(&pod.uid().unwrap_or_default()));
    let until = pod
        .annotations()
        .get(PROTECTED_UNTIL)
        .and_then(|t| t.parse::<Timestamp>().ok())
        .filter(|t| *t > Timestamp::now());
    match until {
        Some(t) => json!({
            "taskArn": arn,
            "protectionEnabled": true,
            "expirationDate": t.as_millisecond() as f64 / 1000.0,
        }),
        None => json!({ "taskArn": arn, "protectionEnabled": false }),
    }
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase")]
pub struct UpdateTaskProtection {
    cluster: String,
    tasks: Vec<String>,
    protection_enabled: bool,
    expires_in_minutes: Option<i64>,
}

pub async fn update(c: &Caller, i: UpdateTaskProtection) -> Result<Value, AwsError> {
    if i.tasks.is_empty() || i.tasks.len() > 10 {
        return Err(AwsError::invalid_parameter(
            "tasks must list 1 to 10 tasks.",
        ));
    }
    let minutes = i.expires_in_minutes.unwrap_or(DEFAULT_MINUTES);
    if !(1..=MAX_MINUTES).contains(&minutes) {
        return Err(AwsError::invalid_parameter(format!(
            "expiresInMinutes must be between 1 and {MAX_MINUTES}."
        )));
    }
    let r = ClusterRef::resolve(c, Some(&i.cluster))?;
    super::clusters::get(c, &r).await?;
    let all = seen(c, &r).await?;
    let pods = c.api::<Pod>(&r.namespace);
    let (mut done, mut failures) = (Vec::new(), Vec::new());
    for t in &i.tasks {
        let id = id_of(t);
        let arn = task_arn(&r.namespace, &r.name, id);
        let Some(pod) = all.pod(id) else {
            failures.push(json!({ "arn": arn, "reason": "MISSING" }));
            continue;
        };
        if !pod.labels().contains_key(labels::SERVICE) {
            failures.push(json!({
                "arn": arn,
                "reason": "TASK_NOT_VALID",
                "detail": "Task scale-in protection is only for tasks of a service.",
            }));
            continue;
        }
        let value = if i.protection_enabled {
            json!((Timestamp::now() + SignedDuration::from_mins(minutes)).to_string())
        } else {
            Value::Null
        };
        let patched = pods
            .patch(
                &pod.name_any(),
                &PatchParams::default(),
                &Patch::Merge(json!({ "metadata": { "annotations": { PROTECTED_UNTIL: value } } })),
            )
            .await
            .map_err(|e| c.kube_error(e, &arn))?;
        done.push(protected(&patched, &r.namespace, &r.name));
    }
    Ok(json!({ "protectedTasks": done, "failures": failures }))
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase")]
pub struct GetTaskProtection {
    cluster: String,
    #[serde(default)]
    tasks: Vec<String>,
}

pub async fn get(c: &Caller, i: GetTaskProtection) -> Result<Value, AwsError> {
    let r = ClusterRef::resolve(c, Some(&i.cluster))?;
    super::clusters::get(c, &r).await?;
    let all = seen(c, &r).await?;
    let (mut found, mut failures) = (Vec::new(), Vec::new());
    if i.tasks.is_empty() {
        for p in all
            .pods
            .iter()
            .filter(|p| p.labels().contains_key(labels::SERVICE))
        {
            found.push(protected(p, &r.namespace, &r.name));
        }
    }
    for t in &i.tasks {
        let id = id_of(t);
        match all.pod(id) {
            Some(p) => found.push(protected(p, &r.namespace, &r.name)),
            None => failures
                .push(json!({ "arn": task_arn(&r.namespace, &r.name, id), "reason": "MISSING" })),
        }
    }
    Ok(json!({ "protectedTasks": found, "failures": failures }))
}
