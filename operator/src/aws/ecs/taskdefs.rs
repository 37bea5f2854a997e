//! Task definitions: one TaskDefinition object per family, its revisions the
//! ControllerRevisions the TaskDefinition controller registers. RegisterTaskDefinition
//! writes the family's spec and waits for the controller to register the revision, so the
//! answer carries its number, as ECS's does. kubecs registers a revision only when the
//! definition changes: registering the same definition twice answers the existing revision.

use std::time::Duration;

use k8s_openapi::api::apps::v1::ControllerRevision;
use kube::ResourceExt;
use kube::api::{ListParams, ObjectMeta, PostParams};
use serde::Deserialize;
use serde_json::{Map, Value, json};

use super::Caller;
use crate::api::common::Tag;
use crate::api::states::RevisionState;
use crate::api::taskdef::TaskDefinitionRevision;
use crate::api::{TaskDefinition, TaskDefinitionSpec};
use crate::aws::AwsError;
use crate::aws::page::page;
use crate::aws::time::epoch;
use crate::controllers::taskdef::{
    DEREGISTERED_AT_ANNOTATION, STATUS_ANNOTATION, TaskDefinitionRef, family_of,
};

/// How long RegisterTaskDefinition waits for the controller to register the revision.
const REGISTER_WAIT: Duration = Duration::from_secs(20);

/// The members of ECS's `TaskDefinition` shape (the answer has no others).
const SHAPE_MEMBERS: &[&str] = &[
    "taskDefinitionArn",
    "containerDefinitions",
    "family",
    "taskRoleArn",
    "executionRoleArn",
    "networkMode",
    "revision",
    "volumes",
    "status",
    "requiresAttributes",
    "placementConstraints",
    "compatibilities",
    "runtimePlatform",
    "requiresCompatibilities",
    "cpu",
    "memory",
    "inferenceAccelerators",
    "pidMode",
    "ipcMode",
    "proxyConfiguration",
    "registeredAt",
    "deregisteredAt",
    "registeredBy",
    "ephemeralStorage",
    "enableFaultInjection",
];

/// All TaskDefinition objects of `ns`, readable by the caller.
async fn families(c: &Caller, ns: &str) -> Result<Vec<TaskDefinition>, AwsError> {
    Ok(c.api::<TaskDefinition>(ns)
        .list(&ListParams::default())
        .await
        .map_err(|e| c.kube_error(e, &format!("arn:aws:ecs:kubecs:{ns}:task-definition/*")))?
        .items)
}

async fn family_object(
    c: &Caller,
    ns: &str,
    family: &str,
) -> Result<Option<TaskDefinition>, AwsError> {
    Ok(families(c, ns)
        .await?
        .into_iter()
        .find(|td| family_of(td) == family))
}

/// A revision's answer: its stored definition with its read-only fields.
async fn revision_json(
    c: &Caller,
    td: &TaskDefinition,
    rev: &TaskDefinitionRevision,
) -> Result<Value, AwsError> {
    let ns = td.namespace().unwrap_or_default();
    let family = family_of(td);
    let arn = crate::arn::task_definition(&ns, &family, rev.revision);
    let cr_name = rev.controller_revision.clone().unwrap_or_else(|| {
        crate::controllers::taskdef::revision_name(&td.name_any(), rev.revision)
    });
    let cr = c
        .api::<ControllerRevision>(&ns)
        .get(&cr_name)
        .await
        .map_err(|e| c.kube_error(e, &arn))?;
    let spec: TaskDefinitionSpec = serde_json::from_value(cr.data.0.clone())
        .map_err(|e| AwsError::server(format!("revision {arn} is unreadable: {e}")))?;
    let state = crate::controllers::taskdef::revision_state(&cr);
    let mut out = match serde_json::to_value(&spec) {
        Ok(Value::Object(m)) => m,
        _ => Map::new(),
    };
    out.retain(|k, _| SHAPE_MEMBERS.contains(&k.as_str()));
    out.insert("taskDefinitionArn".into(), json!(arn));
    out.insert("revision".into(), json!(rev.revision));
    out.insert("status".into(), json!(state));
    out.insert(
        "requiresAttributes".into(),
        json!(crate::taskdef::requires_attributes(&spec)),
    );
    out.insert(
        "compatibilities".into(),
        json!(crate::taskdef::compatibilities(&spec)),
    );
    if let Some(t) = cr.metadata.creation_timestamp.as_ref() {
        out.insert("registeredAt".into(), json!(crate::aws::time::epoch_of(t)));
    }
    if let Some(t) = cr
        .annotations()
        .get(DEREGISTERED_AT_ANNOTATION)
        .and_then(|t| epoch(t))
    {
        out.insert("deregisteredAt".into(), json!(t));
    }
    Ok(Value::Object(out))
}

/// The revision a reference picks in the family's status, or ECS's refusal.
fn pick<'a>(td: &'a TaskDefinition, r: &TaskDefinitionRef) -> Option<&'a TaskDefinitionRevision> {
    let revisions = td
        .status
        .as_ref()
        .map(|s| s.revisions.as_slice())
        .unwrap_or_default();
    match r.revision {
        Some(n) => revisions.iter().find(|x| x.revision == n),
        None => revisions
            .iter()
            .filter(|x| x.status == RevisionState::Active)
            .max_by_key(|x| x.revision),
    }
}

fn not_found() -> AwsError {
    AwsError::client("Unable to describe task definition.")
}

/// The family object and revision a reference names (in the caller's account unless an ARN
/// names another).
async fn resolve(
    c: &Caller,
    reference: &str,
) -> Result<(TaskDefinition, TaskDefinitionRevision), AwsError> {
    let ns = super::parse_arn(reference)
        .map(|(a, _)| a.to_string())
        .unwrap_or_else(|| c.account().to_string());
    let r = TaskDefinitionRef::parse(reference).map_err(AwsError::client)?;
    let td = family_object(c, &ns, &r.family)
        .await?
        .ok_or_else(not_found)?;
    let rev = pick(&td, &r).cloned().ok_or_else(not_found)?;
    Ok((td, rev))
}

pub async fn register(c: &Caller, input: Value) -> Result<Value, AwsError> {
    let text = input.to_string();
    let parsed = crate::taskdef::input::parse_task_definition(&text)
        .map_err(|e| AwsError::client(e.to_string()))?;
    let spec = parsed.spec;
    let family = spec
        .family
        .clone()
        .ok_or_else(|| AwsError::client("Family is required."))?;
    crate::taskdef::validate(&spec).map_err(|e| AwsError::client(e.message()))?;
    let ns = c.account().to_string();
    let api = c.api::<TaskDefinition>(&ns);
    let arn = format!("arn:aws:ecs:kubecs:{ns}:task-definition/{family}");
    let written = match family_object(c, &ns, &family).await? {
        Some(mut td) => {
            td.spec = spec.clone();
            td.status = None;
            api.replace(&td.name_any(), &PostParams::default(), &td)
                .await
                .map_err(|e| c.kube_error(e, &arn))?
        }
        None => {
            let td = TaskDefinition {
                metadata: ObjectMeta {
                    name: Some(crate::taskdef::names::dns_label(&family)),
                    namespace: Some(ns.clone()),
                    ..Default::default()
                },
                spec: spec.clone(),
                status: None,
            };
            api.create(&PostParams::default(), &td)
                .await
                .map_err(|e| c.kube_error(e, &arn))?
        }
    };
    // The controller registers the revision; wait for its status to describe this generation.
    let name = written.name_any();
    let generation = written.metadata.generation;
    let deadline = tokio::time::Instant::now() + REGISTER_WAIT;
    loop {
        let td = api.get(&name).await.map_err(|e| c.kube_error(e, &arn))?;
        let status = td.status.clone().unwrap_or_default();
        if status.observed_generation >= generation && generation.is_some() {
            let ready = status
                .conditions
                .iter()
                .find(|x| x.type_ == crate::api::common::condition::READY);
            if let Some(cond) = ready.filter(|x| x.status == "False") {
                return Err(AwsError::client(cond.message.clone()));
            }
            if let Some(rev) = status
                .latest_revision
                .and_then(|n| status.revisions.iter().find(|r| r.revision == n).cloned())
            {
                let out = revision_json(c, &td, &rev).await?;
                return Ok(json!({ "taskDefinition": out, "tags": td.spec.tags }));
            }
        }
        if tokio::time::Instant::now() > deadline {
            return Err(AwsError::server(
                "The task definition was stored but no revision was registered in time: is the kubecs operator running?",
            ));
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase")]
pub struct DescribeTaskDefinition {
    task_definition: String,
    #[serde(default)]
    include: Vec<String>,
}

/// InvalidParameterException unless the reference names a registered revision (what
/// CreateService, UpdateService and RunTask check first).
pub async fn exists(c: &Caller, reference: &str) -> Result<(), AwsError> {
    match resolve(c, reference).await {
        Ok(_) => Ok(()),
        Err(e) if e.code == "ClientException" => {
            Err(AwsError::invalid_parameter("TaskDefinition not found."))
        }
        Err(e) => Err(e),
    }
}

/// DescribeTaskDefinition's answer with tags.
pub async fn describe_value(c: &Caller, reference: &str) -> Result<Value, AwsError> {
    describe(
        c,
        DescribeTaskDefinition {
            task_definition: reference.to_string(),
            include: vec!["TAGS".into()],
        },
    )
    .await
}

pub async fn describe(c: &Caller, i: DescribeTaskDefinition) -> Result<Value, AwsError> {
    let (td, rev) = resolve(c, &i.task_definition).await?;
    let out = revision_json(c, &td, &rev).await?;
    let tags: &[Tag] = if i.include.iter().any(|x| x == "TAGS") {
        &td.spec.tags
    } else {
        &[]
    };
    Ok(json!({ "taskDefinition": out, "tags": tags }))
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase")]
pub struct ListTaskDefinitions {
    family_prefix: Option<String>,
    status: Option<RevisionState>,
    sort: Option<String>,
    next_token: Option<String>,
    max_results: Option<i32>,
}

pub async fn list(c: &Caller, i: ListTaskDefinitions) -> Result<Value, AwsError> {
    let ns = c.account().to_string();
    let want = i.status.unwrap_or(RevisionState::Active);
    let mut found: Vec<(String, i64)> = Vec::new();
    for td in families(c, &ns).await? {
        let family = family_of(&td);
        if let Some(p) = &i.family_prefix
            && &family != p
        {
            continue;
        }
        for r in td.status.iter().flat_map(|s| &s.revisions) {
            if r.status == want {
                found.push((family.clone(), r.revision));
            }
        }
    }
    // ECS lists by family, then revision; DESC reverses. Tokens are positions in that order.
    found.sort();
    if i.sort.as_deref() == Some("DESC") {
        found.reverse();
    }
    let keyed: Vec<String> = found
        .iter()
        .enumerate()
        .map(|(n, (f, r))| format!("{n:08}|{}", crate::arn::task_definition(&ns, f, *r)))
        .collect();
    let (arns, next) = page(keyed, i.max_results, i.next_token.as_deref(), 100)?;
    let arns: Vec<String> = arns
        .into_iter()
        .map(|k| k.split_once('|').map(|(_, a)| a.to_string()).unwrap_or(k))
        .collect();
    Ok(json!({ "taskDefinitionArns": arns, "nextToken": next }))
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase")]
pub struct ListTaskDefinitionFamilies {
    family_prefix: Option<String>,
    status: Option<String>,
    next_token: Option<String>,
    max_results: Option<i32>,
}

pub async fn list_families(c: &Caller, i: ListTaskDefinitionFamilies) -> Result<Value, AwsError> {
    let status = i.status.as_deref().unwrap_or("ACTIVE");
    let names: Vec<String> = families(c, c.account())
        .await?
        .iter()
        .filter(|td| {
            let revisions = td.status.iter().flat_map(|s| &s.revisions);
            let active = revisions.clone().any(|r| r.status == RevisionState::Active);
            match status {
                "ALL" => true,
                "INACTIVE" => !active,
                _ => active,
            }
        })
        .map(family_of)
        .filter(|f| {
            i.family_prefix
                .as_ref()
                .is_none_or(|p| f.starts_with(p.as_str()))
        })
        .collect();
    let (families, next) = page(names, i.max_results, i.next_token.as_deref(), 100)?;
    Ok(json!({ "families": families, "nextToken": next }))
}

/// Marks a revision's ControllerRevision with an ECS status (INACTIVE, DELETE_IN_PROGRESS).
async fn mark(
    c: &Caller,
    td: &TaskDefinition,
    rev: &TaskDefinitionRevision,
    state: &str,
) -> Result<(), AwsError> {
    let ns = td.namespace().unwrap_or_default();
    let arn = crate::arn::task_definition(&ns, &family_of(td), rev.revision);
    let cr = rev.controller_revision.clone().unwrap_or_else(|| {
        crate::controllers::taskdef::revision_name(&td.name_any(), rev.revision)
    });
    let api = c.api::<ControllerRevision>(&ns);
    // A conflict (the controller stamped it meanwhile) is retried once on a fresh read.
    for attempt in 0..2 {
        let current = api.get(&cr).await.map_err(|e| c.kube_error(e, &arn))?;
        match crate::controllers::taskdef::annotate_revision(
            &api,
            current,
            STATUS_ANNOTATION,
            state,
        )
        .await
        {
            Ok(_) => break,
            Err(kube::Error::Api(s)) if s.code == 409 && attempt == 0 => continue,
            Err(e) => return Err(c.kube_error(e, &arn)),
        }
    }
    Ok(())
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase")]
pub struct DeregisterTaskDefinition {
    task_definition: String,
}

pub async fn deregister(c: &Caller, i: DeregisterTaskDefinition) -> Result<Value, AwsError> {
    let r = TaskDefinitionRef::parse(&i.task_definition).map_err(AwsError::client)?;
    if r.revision.is_none() {
        return Err(AwsError::client(
            "Invalid revision number. Number: none: deregistration takes family:revision.",
        ));
    }
    let (td, rev) = resolve(c, &i.task_definition).await?;
    if rev.status == RevisionState::Active {
        mark(c, &td, &rev, "INACTIVE").await?;
    }
    let mut out = revision_json(c, &td, &rev).await?;
    out["status"] = json!(RevisionState::Inactive);
    Ok(json!({ "taskDefinition": out }))
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase")]
pub struct DeleteTaskDefinitions {
    task_definitions: Vec<String>,
}

/// ECS deletes only INACTIVE revisions: they go DELETE_IN_PROGRESS. kubecs keeps the
/// ControllerRevision (so the number is never reused) and marks it.
pub async fn delete(c: &Caller, i: DeleteTaskDefinitions) -> Result<Value, AwsError> {
    if i.task_definitions.is_empty() || i.task_definitions.len() > 10 {
        return Err(AwsError::invalid_parameter(
            "taskDefinitions must list 1 to 10 task definitions.",
        ));
    }
    let (mut done, mut failures) = (Vec::new(), Vec::new());
    for reference in &i.task_definitions {
        let failure = |reason: &str| json!({ "arn": reference, "reason": reason });
        let (td, rev) = match resolve(c, reference).await {
            Ok(x) => x,
            Err(e) if e.code == "ClientException" => {
                failures.push(failure("TASK_DEFINITION_NOT_FOUND"));
                continue;
            }
            Err(e) => return Err(e),
        };
        if rev.status == RevisionState::Active {
            failures.push(failure("The specified task definition is still in ACTIVE status. Please deregister the target and try again."));
            continue;
        }
        mark(c, &td, &rev, "DELETE_IN_PROGRESS").await?;
        let mut out = revision_json(c, &td, &rev).await?;
        out["status"] = json!(RevisionState::DeleteInProgress);
        done.push(out);
    }
    Ok(json!({ "taskDefinitions": done, "failures": failures }))
}
