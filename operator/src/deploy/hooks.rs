//! Lifecycle hooks (`deploymentConfiguration.lifecycleHooks`): at each stage a hook names,
//! the deployment waits until every such hook has succeeded. A hook that fails, is rolled
//! back by request, or times out with the ROLLBACK action (the default) fails the
//! deployment. What the hooks answered is the controller's I/O ([`Outcome`]s, read before
//! planning); this module only decides.

use std::collections::BTreeMap;

use crate::api::service::{Deployment, DeploymentLifecycleHook, LifecycleHookDetail};
use crate::api::states::{HookAction, HookStatus, HookTargetType, LifecycleStage};

/// ECS's default hook timeout: 24 hours.
pub const DEFAULT_TIMEOUT_MINUTES: i64 = 1440;

/// What the controller learned of one hook run since the last pass.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// The hook URL answered SUCCEEDED.
    Succeeded,
    /// It answered FAILED, or could not be called; why.
    Failed(String),
    /// It answered IN_PROGRESS (or did not answer yet); the last word, if any.
    InProgress(Option<String>),
    /// A PAUSE hook was continued (ContinueServiceDeployment CONTINUE).
    Continue,
    /// A PAUSE hook was told to roll back.
    Rollback,
}

/// Whether the deployment may leave a stage.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Gate {
    Open,
    Wait,
    /// The deployment fails: why, in ECS's words.
    Fail(String),
}

/// The SCREAMING_SNAKE name of a stage.
pub fn stage_name(stage: LifecycleStage) -> String {
    serde_json::to_value(stage)
        .ok()
        .and_then(|v| v.as_str().map(String::from))
        .unwrap_or_default()
}

/// A hook run's id: the deployment's digits, the stage and the hook's place in the list, so
/// a continue meant for one deployment never continues the next.
pub fn hook_id(deployment_id: &str, stage: LifecycleStage, index: usize) -> String {
    let digits = super::deployment_label(deployment_id);
    let stage = stage_name(stage).to_ascii_lowercase().replace('_', "-");
    format!("{digits}-{stage}-{}", index + 1)
}

fn seconds(rfc3339: &str) -> Option<i64> {
    rfc3339
        .parse::<k8s_openapi::jiff::Timestamp>()
        .ok()
        .map(|t| t.as_second())
}

fn rfc3339(secs: i64) -> String {
    k8s_openapi::jiff::Timestamp::from_second(secs)
        .map(|t| t.to_string())
        .unwrap_or_default()
}

fn is_final(s: HookStatus) -> bool {
    matches!(
        s,
        HookStatus::Succeeded | HookStatus::Failed | HookStatus::TimedOut
    )
}

/// Runs the gate of `stage` for deployment `d`: records a run of each hook of that stage
/// (AWAITING_ACTION for a pause, IN_PROGRESS for a call), applies what the hooks answered,
/// times them out, and says whether the deployment may go on.
pub fn gate(
    d: &mut Deployment,
    hooks: &[DeploymentLifecycleHook],
    outcomes: &BTreeMap<String, Outcome>,
    stage: LifecycleStage,
    now: i64,
) -> Gate {
    let mut waiting = false;
    let mut failure = None;
    for (i, h) in hooks
        .iter()
        .enumerate()
        .filter(|(_, h)| h.lifecycle_stages.contains(&stage))
    {
        let id = hook_id(&d.id, stage, i);
        let timeout = h.timeout_configuration.as_ref();
        let minutes = timeout
            .and_then(|t| t.timeout_in_minutes)
            .map_or(DEFAULT_TIMEOUT_MINUTES, i64::from);
        let pos = match d
            .lifecycle_hook_details
            .iter()
            .position(|r| r.hook_id == id)
        {
            Some(p) => p,
            None => {
                d.lifecycle_hook_details.push(LifecycleHookDetail {
                    hook_id: id.clone(),
                    target_type: h.target_type,
                    target_arn: (h.target_type == HookTargetType::AwsLambda)
                        .then(|| h.hook_target_arn.clone())
                        .flatten(),
                    lifecycle_stage: stage,
                    status: match h.target_type {
                        HookTargetType::Pause => HookStatus::AwaitingAction,
                        HookTargetType::AwsLambda => HookStatus::InProgress,
                    },
                    expires_at: rfc3339(now + minutes * 60),
                    timeout_action: timeout.and_then(|t| t.action).unwrap_or_default(),
                    reason: None,
                });
                d.lifecycle_hook_details.len() - 1
            }
        };
        let run = &mut d.lifecycle_hook_details[pos];
        if !is_final(run.status) {
            match outcomes.get(&id) {
                Some(Outcome::Succeeded | Outcome::Continue) => run.status = HookStatus::Succeeded,
                Some(Outcome::Failed(why)) => {
                    run.status = HookStatus::Failed;
                    run.reason = Some(why.clone());
                }
                Some(Outcome::Rollback) => {
                    run.status = HookStatus::Failed;
                    run.reason = Some("Rolled back by request.".into());
                }
                Some(Outcome::InProgress(Some(why))) => run.reason = Some(why.clone()),
                Some(Outcome::InProgress(None)) | None => {}
            }
        }
        if !is_final(run.status) && seconds(&run.expires_at).is_some_and(|e| now >= e) {
            run.status = HookStatus::TimedOut;
        }
        let stage = stage_name(stage);
        match (run.status, run.timeout_action) {
            (HookStatus::Succeeded, _) | (HookStatus::TimedOut, HookAction::Continue) => {}
            (HookStatus::TimedOut, HookAction::Rollback) => {
                failure.get_or_insert(format!(
                    "ECS deployment lifecycle hook {id} at {stage} timed out."
                ));
            }
            (HookStatus::Failed, _) => {
                let why = run.reason.clone().unwrap_or_default();
                failure.get_or_insert(format!(
                    "ECS deployment lifecycle hook {id} at {stage} failed: {why}"
                ));
            }
            _ => waiting = true,
        }
    }
    match (failure, waiting) {
        (Some(f), _) => Gate::Fail(f),
        (None, true) => Gate::Wait,
        (None, false) => Gate::Open,
    }
}

/// The stage after `stage` in a blue/green deployment.
pub fn next_stage(stage: LifecycleStage) -> LifecycleStage {
    use LifecycleStage::*;
    match stage {
        ReconcileService => PreScaleUp,
        PreScaleUp => ScaleUp,
        ScaleUp => PostScaleUp,
        PostScaleUp => TestTrafficShift,
        TestTrafficShift => PostTestTrafficShift,
        PostTestTrafficShift => PreProductionTrafficShift,
        PreProductionTrafficShift => ProductionTrafficShift,
        ProductionTrafficShift => PostProductionTrafficShift,
        PostProductionTrafficShift => BakeTime,
        BakeTime | CleanUp => CleanUp,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::service::HookTimeout;

    fn pause(stage: LifecycleStage) -> DeploymentLifecycleHook {
        DeploymentLifecycleHook {
            target_type: HookTargetType::Pause,
            lifecycle_stages: vec![stage],
            ..Default::default()
        }
    }

    fn deployment() -> Deployment {
        Deployment {
            id: "ecs-svc/42".into(),
            ..Default::default()
        }
    }

    #[test]
    fn a_stage_without_hooks_is_open_and_a_pause_waits_until_continued() {
        let hooks = vec![pause(LifecycleStage::PostScaleUp)];
        let mut d = deployment();
        let none = BTreeMap::new();
        assert_eq!(
            gate(&mut d, &hooks, &none, LifecycleStage::PreScaleUp, 0),
            Gate::Open
        );
        assert!(d.lifecycle_hook_details.is_empty());
        assert_eq!(
            gate(&mut d, &hooks, &none, LifecycleStage::PostScaleUp, 0),
            Gate::Wait
        );
        let run = &d.lifecycle_hook_details[0];
        assert_eq!(run.hook_id, "42-post-scale-up-1");
        assert_eq!(run.status, HookStatus::AwaitingAction);
        assert_eq!(run.expires_at, "1970-01-02T00:00:00Z");
        // Another deployment's continue does nothing; this one's opens the gate.
        let other = BTreeMap::from([("41-post-scale-up-1".to_string(), Outcome::Continue)]);
        assert_eq!(
            gate(&mut d, &hooks, &other, LifecycleStage::PostScaleUp, 5),
            Gate::Wait
        );
        let mine = BTreeMap::from([("42-post-scale-up-1".to_string(), Outcome::Continue)]);
        assert_eq!(
            gate(&mut d, &hooks, &mine, LifecycleStage::PostScaleUp, 6),
            Gate::Open
        );
        assert_eq!(d.lifecycle_hook_details[0].status, HookStatus::Succeeded);
        // Final: a later rollback request changes nothing.
        let back = BTreeMap::from([("42-post-scale-up-1".to_string(), Outcome::Rollback)]);
        assert_eq!(
            gate(&mut d, &hooks, &back, LifecycleStage::PostScaleUp, 7),
            Gate::Open
        );
    }

    #[test]
    fn a_failed_call_or_a_timeout_fails_the_deployment_unless_told_to_continue() {
        let call = DeploymentLifecycleHook {
            hook_target_arn: Some("http://127.0.0.1:9/hook".into()),
            lifecycle_stages: vec![LifecycleStage::PostProductionTrafficShift],
            ..Default::default()
        };
        let stage = LifecycleStage::PostProductionTrafficShift;
        let mut d = deployment();
        let id = hook_id(&d.id, stage, 0);
        let busy = BTreeMap::from([(id.clone(), Outcome::InProgress(Some("warming up".into())))]);
        assert_eq!(
            gate(&mut d, std::slice::from_ref(&call), &busy, stage, 0),
            Gate::Wait
        );
        assert_eq!(d.lifecycle_hook_details[0].status, HookStatus::InProgress);
        let failed = BTreeMap::from([(id.clone(), Outcome::Failed("error rate 7%".into()))]);
        assert_eq!(
            gate(&mut d, std::slice::from_ref(&call), &failed, stage, 1),
            Gate::Fail(format!(
                "ECS deployment lifecycle hook {id} at POST_PRODUCTION_TRAFFIC_SHIFT failed: error rate 7%"
            ))
        );

        // A pause of one minute: ROLLBACK (the default) fails, CONTINUE goes on.
        let mut timed = pause(LifecycleStage::PreScaleUp);
        timed.timeout_configuration = Some(HookTimeout {
            timeout_in_minutes: Some(1),
            action: None,
        });
        let mut d = deployment();
        let none = BTreeMap::new();
        let hooks = std::slice::from_ref(&timed);
        assert_eq!(
            gate(&mut d, hooks, &none, LifecycleStage::PreScaleUp, 0),
            Gate::Wait
        );
        assert!(matches!(
            gate(&mut d, hooks, &none, LifecycleStage::PreScaleUp, 60),
            Gate::Fail(m) if m.ends_with("at PRE_SCALE_UP timed out.")
        ));
        timed.timeout_configuration.as_mut().unwrap().action = Some(HookAction::Continue);
        let mut d = deployment();
        let hooks = std::slice::from_ref(&timed);
        assert_eq!(
            gate(&mut d, hooks, &none, LifecycleStage::PreScaleUp, 0),
            Gate::Wait
        );
        assert_eq!(
            gate(&mut d, hooks, &none, LifecycleStage::PreScaleUp, 61),
            Gate::Open
        );
        assert_eq!(d.lifecycle_hook_details[0].status, HookStatus::TimedOut);
    }
}
