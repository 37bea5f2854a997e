//! Lifecycle hooks' I/O, read before planning: what each hook run of the PRIMARY deployment
//! answered since the last pass. A call hook (ECS's AWS_LAMBDA) is an HTTP(S) URL that gets
//! ECS's hook payload by POST and answers `{"hookStatus": "SUCCEEDED" | "FAILED" |
//! "IN_PROGRESS"}`, polled each pass while IN_PROGRESS, as ECS polls its Lambda function. A
//! PAUSE hook is continued (or rolled back) by the Service annotation
//! `ecs.kubecs.io/continue=HOOK_ID[:CONTINUE|:ROLLBACK]`, which ContinueServiceDeployment sets.

use std::collections::BTreeMap;
use std::time::Duration;

use axum::http::{Method, Request, header};
use bytes::Bytes;
use http_body_util::Full;
use kube::ResourceExt;
use serde_json::{Value, json};

use crate::api::Service;
use crate::api::service::{
    CONTINUE_ANNOTATION, Deployment, DeploymentLifecycleHook, parse_continue,
};
use crate::api::states::{HookAction, HookStatus, HookTargetType};
use crate::deploy::history::Facts;
use crate::deploy::hooks::{Outcome, stage_name};

/// How long one hook call may take.
const TIMEOUT: Duration = Duration::from_secs(10);

/// The hook a run id names: the last `-N` is its 1-based place in the list.
fn hook_of<'a>(
    id: &str,
    hooks: &'a [DeploymentLifecycleHook],
) -> Option<&'a DeploymentLifecycleHook> {
    let n: usize = id.rsplit('-').next()?.parse().ok()?;
    hooks.get(n.checked_sub(1)?)
}

/// ECS's hook payload (what its Lambda function receives).
pub fn payload(
    f: &Facts,
    d: &Deployment,
    hook: &DeploymentLifecycleHook,
    run_id: &str,
    stage: &str,
) -> Value {
    json!({
        "executionId": run_id,
        "lifecycleStage": stage,
        "resourceArn": f.deployment_arn(&d.id),
        "executionDetails": {
            "serviceArn": crate::arn::service(f.namespace, f.cluster, f.service),
            "targetServiceRevisionArn": f.revision_arn(&d.id),
            "testTrafficWeights": {},
            "productionTrafficWeights": {},
        },
        "hookDetails": hook.hook_details,
    })
}

/// What a hook's answer says.
pub fn answer_outcome(status: u16, body: &[u8]) -> Outcome {
    if !(200..300).contains(&status) {
        return Outcome::Failed(format!("the hook answered HTTP {status}"));
    }
    let v: Value = match serde_json::from_slice(body) {
        Ok(v) => v,
        Err(e) => return Outcome::Failed(format!("the hook's answer is not JSON: {e}")),
    };
    let why = v
        .get("reason")
        .or_else(|| v.get("message"))
        .and_then(Value::as_str)
        .map(String::from);
    match v.get("hookStatus").and_then(Value::as_str) {
        Some("SUCCEEDED") => Outcome::Succeeded,
        Some("FAILED") => Outcome::Failed(why.unwrap_or_else(|| "the hook answered FAILED".into())),
        Some("IN_PROGRESS") => Outcome::InProgress(why),
        other => Outcome::Failed(format!(
            "the hook answered hookStatus {}, not SUCCEEDED, FAILED or IN_PROGRESS",
            other.unwrap_or("(none)")
        )),
    }
}

async fn call(url: &str, body: &Value) -> Outcome {
    if !(url.starts_with("http://") || url.starts_with("https://")) {
        return Outcome::Failed(format!(
            "kubecs calls lifecycle hooks at HTTP(S) URLs; '{url}' is not one"
        ));
    }
    let req = match Request::builder()
        .method(Method::POST)
        .uri(url)
        .header(header::CONTENT_TYPE, "application/json")
        .body(Full::new(Bytes::from(body.to_string())))
    {
        Ok(r) => r,
        Err(e) => return Outcome::Failed(format!("'{url}': {e}")),
    };
    match crate::http::send(req, "the lifecycle hook", TIMEOUT).await {
        Ok(a) => answer_outcome(a.status.as_u16(), &a.body),
        // Unreachable for now: tried again next pass, until the hook times out.
        Err(e) => Outcome::InProgress(Some(e.to_string())),
    }
}

/// What the PRIMARY deployment's open hook runs answered (by run id).
pub async fn outcomes(
    svc: &Service,
    f: &Facts<'_>,
    primary: Option<&Deployment>,
    hooks: &[DeploymentLifecycleHook],
) -> BTreeMap<String, Outcome> {
    let mut out = BTreeMap::new();
    let Some(d) = primary else { return out };
    let asked = svc
        .annotations()
        .get(CONTINUE_ANNOTATION)
        .and_then(|v| parse_continue(v));
    for run in &d.lifecycle_hook_details {
        match (run.target_type, run.status) {
            (HookTargetType::Pause, HookStatus::AwaitingAction) => {
                if let Some((id, action)) = &asked
                    && *id == run.hook_id
                {
                    out.insert(
                        run.hook_id.clone(),
                        match action {
                            HookAction::Continue => Outcome::Continue,
                            HookAction::Rollback => Outcome::Rollback,
                        },
                    );
                }
            }
            (HookTargetType::AwsLambda, HookStatus::InProgress) => {
                let Some(hook) = hook_of(&run.hook_id, hooks) else {
                    continue;
                };
                let url = run.target_arn.clone().unwrap_or_default();
                let body = payload(f, d, hook, &run.hook_id, &stage_name(run.lifecycle_stage));
                out.insert(run.hook_id.clone(), call(&url, &body).await);
            }
            _ => {}
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn answers_are_read_as_ecs_reads_its_lambda_functions() {
        assert_eq!(
            answer_outcome(200, br#"{"hookStatus":"SUCCEEDED"}"#),
            Outcome::Succeeded
        );
        assert_eq!(
            answer_outcome(200, br#"{"hookStatus":"FAILED","reason":"p99 too high"}"#),
            Outcome::Failed("p99 too high".into())
        );
        assert_eq!(
            answer_outcome(200, br#"{"hookStatus":"IN_PROGRESS"}"#),
            Outcome::InProgress(None)
        );
        assert!(matches!(
            answer_outcome(200, br#"{"hookStatus":"MAYBE"}"#),
            Outcome::Failed(_)
        ));
        assert!(matches!(answer_outcome(500, b""), Outcome::Failed(m) if m.contains("500")));
        let hooks = vec![
            DeploymentLifecycleHook::default(),
            DeploymentLifecycleHook {
                hook_target_arn: Some("http://x".into()),
                ..Default::default()
            },
        ];
        assert_eq!(
            hook_of("42-post-scale-up-2", &hooks).and_then(|h| h.hook_target_arn.as_deref()),
            Some("http://x")
        );
        assert!(hook_of("42-post-scale-up-3", &hooks).is_none());
        assert!(hook_of("42-post-scale-up-0", &hooks).is_none());
    }
}
