//! The REPLICA service scheduler: keeps `desiredCount` tasks, rolls new revisions out within
//! the bounds (or blue/green), trips the circuit breaker and rolls back.

use std::collections::{BTreeMap, BTreeSet};

use super::hooks;
use super::task::StopCode;
use super::{
    Bounds, Breaker, DeploymentStatus, EcsEvent, Launch, LifecycleStage, ObservedTask, Plan,
    RolloutState, StopTask, Strategy, deployment_label, task_list,
};
use crate::api::service::{
    CircuitBreakerState, Deployment, DeploymentAlarmsState, DeploymentLifecycleHook, StopType,
};
use crate::api::states::CircuitBreakerStatus;

/// Everything the planner reads: the service as the stores show it now.
#[derive(Clone, Debug)]
pub struct ServiceSnapshot<'a> {
    pub service: &'a str,
    pub bounds: Bounds,
    pub strategy: Strategy,
    pub breaker: Option<Breaker>,
    /// The task definition (`family:revision`) the spec resolves to now.
    pub target: &'a str,
    /// The resolved task definition the last deployment decision was made for.
    pub trigger: Option<&'a str>,
    /// Recorded deployments, PRIMARY first.
    pub deployments: &'a [Deployment],
    pub tasks: &'a [ObservedTask],
    /// Tasks already stopped and counted: a retried stop does not count twice.
    pub counted: &'a BTreeSet<String>,
    /// The deployment with production traffic (blue/green).
    pub production: Option<&'a str>,
    /// Unix seconds, and the same instant in RFC 3339 for status.
    pub now: i64,
    pub now_rfc3339: &'a str,
    /// The id a new deployment gets, if this plan makes one.
    pub new_deployment_id: &'a str,
    /// An AZ rebalance is under way (`deploy::rebalance`): the PRIMARY's one task above
    /// desired is the new task in the emptiest zone, and the excess stop waits until it is
    /// healthy and takes a healthy task (which one, `choose` decides: the fullest zone's).
    pub rebalancing: bool,
    /// UpdateService's `forceNewDeployment` (or the annotation) not yet answered: a new
    /// deployment of the same task definition replaces every task.
    pub force_new: bool,
    /// StopServiceDeployment (the `ecs.kubecs.io/stop-deployment` annotation): the
    /// deployment to stop, and how. It acts only while that deployment is PRIMARY and in
    /// progress, so a lingering request is harmless.
    pub stop_deployment: Option<(&'a str, StopType)>,
    /// Deployment alarms (`deploymentConfiguration.alarms`, enabled): the names watched,
    /// those firing now, and whether a firing one rolls back.
    pub alarms: Option<AlarmWatch<'a>>,
    /// Blue/green lifecycle hooks, and what their runs answered since the last pass (by
    /// hook id).
    pub hooks: &'a [DeploymentLifecycleHook],
    pub hook_outcomes: &'a BTreeMap<String, hooks::Outcome>,
}

/// The deployment alarms as the controller read them.
#[derive(Clone, Copy, Debug)]
pub struct AlarmWatch<'a> {
    pub names: &'a [String],
    pub firing: &'a [String],
    pub rollback: bool,
}

fn new_deployment(id: &str, task_definition: &str, now: &str, reason: String) -> Deployment {
    Deployment {
        id: id.into(),
        status: DeploymentStatus::Primary,
        task_definition: task_definition.into(),
        rollout_state: Some(RolloutState::InProgress),
        rollout_state_reason: Some(reason),
        created_at: Some(now.into()),
        updated_at: Some(now.into()),
        ..Default::default()
    }
}

fn in_progress_reason(id: &str) -> String {
    format!("ECS deployment {id} in progress.")
}

fn set_rollout(d: &mut Deployment, state: RolloutState, reason: String, now: &str) {
    d.rollout_state = Some(state);
    d.rollout_state_reason = Some(reason);
    d.updated_at = Some(now.into());
}

fn rfc3339_seconds(s: &str) -> Option<i64> {
    s.parse::<k8s_openapi::jiff::Timestamp>()
        .ok()
        .map(|t| t.as_second())
}

/// Plans one step. `choose(candidates, n)` picks `n` healthy tasks to stop among
/// `candidates` (the Service controller uses the placement engine's scale-in rules).
pub(super) fn prepare<'a>(s: &'a ServiceSnapshot) -> Prepared<'a> {
    let svc = s.service;
    let now = s.now_rfc3339;
    let mut deps: Vec<Deployment> = s.deployments.to_vec();
    let mut events: Vec<EcsEvent> = Vec::new();
    let mut production = s.production.map(String::from);
    let mut used_new_id = false;

    // 1. A new deployment when what the spec resolves to changed.
    if deps.is_empty() {
        deps.push(new_deployment(
            s.new_deployment_id,
            s.target,
            now,
            in_progress_reason(s.new_deployment_id),
        ));
        used_new_id = true;
    } else if (s.trigger != Some(s.target) && deps[0].task_definition != s.target) || s.force_new {
        let blue_back = matches!(s.strategy, Strategy::BlueGreen { .. })
            && deps[0].rollout_state == Some(RolloutState::InProgress)
            && deps.len() > 1
            && deps[1].task_definition == s.target
            && s.tasks
                .iter()
                .any(|t| t.is_live() && t.deployment == deployment_label(&deps[1].id));
        if blue_back {
            // Blue/green rollback during the bake: blue is live and still (or again) takes
            // production traffic; green is abandoned.
            let mut green = deps.remove(0);
            green.status = DeploymentStatus::Active;
            set_rollout(
                &mut green,
                RolloutState::Failed,
                format!("Rolled back to deployment {}.", deps[0].id),
                now,
            );
            green.rolled_back_to = Some(deps[0].id.clone());
            deps[0].status = DeploymentStatus::Primary;
            production = Some(deps[0].id.clone());
            events.push(EcsEvent::normal(format!(
                "(service {svc}) rolled back to deployment {}: production traffic is on it.",
                deps[0].id
            )));
            deps.insert(1, green);
        } else {
            for d in deps.iter_mut() {
                d.status = DeploymentStatus::Active;
            }
            deps.insert(
                0,
                new_deployment(
                    s.new_deployment_id,
                    s.target,
                    now,
                    in_progress_reason(s.new_deployment_id),
                ),
            );
            used_new_id = true;
        }
    }
    let index: BTreeMap<String, usize> = deps
        .iter()
        .enumerate()
        .map(|(i, d)| (deployment_label(&d.id).to_string(), i))
        .collect();

    // 2. Tasks that stopped or must stop: stop them, and count failures of deployments
    //    still rolling out.
    let mut stop: Vec<StopTask> = Vec::new();
    let mut stopping: BTreeSet<&str> = BTreeSet::new();
    let mut failed_names: Vec<&str> = Vec::new();
    for t in s.tasks.iter().filter(|t| !t.stopping) {
        let idx = index.get(&t.deployment).copied();
        if let Some(cause) = &t.stop {
            let counted = cause.failure
                && !s.counted.contains(&t.name)
                && idx.is_some_and(|i| deps[i].rollout_state == Some(RolloutState::InProgress));
            if counted {
                let d = &mut deps[idx.unwrap()];
                d.failed_tasks += 1;
                if s.breaker.is_some() {
                    let cb = d
                        .circuit_breaker
                        .get_or_insert_with(CircuitBreakerState::default);
                    cb.failure_count += 1;
                }
            }
            if cause.unhealthy {
                events.push(EcsEvent::warning(format!(
                    "(service {svc}) (task {}) failed container health checks.",
                    t.name
                )));
            }
            // A task that never started says why (CannotPullContainerError...), as the
            // stopped task's reason does in ECS's console.
            if cause.code == StopCode::TaskFailedToStart {
                events.push(EcsEvent::warning(format!(
                    "(service {svc}) (task {}) failed to start: {}",
                    t.name, cause.reason
                )));
            }
            failed_names.push(&t.name);
            stop.push(StopTask {
                name: t.name.clone(),
                deployment: t.deployment.clone(),
                code: cause.code,
                reason: cause.reason.clone(),
                counted_failure: counted,
            });
            stopping.insert(&t.name);
        } else if idx.is_none() {
            // A task of a deployment no longer recorded (crash between writes, or deleted).
            stop.push(StopTask {
                name: t.name.clone(),
                deployment: t.deployment.clone(),
                code: StopCode::ServiceSchedulerInitiated,
                reason: format!("Scaling activity initiated by (deployment {})", deps[0].id),
                counted_failure: false,
            });
            stopping.insert(&t.name);
        }
    }
    if !failed_names.is_empty() {
        events.push(EcsEvent::normal(format!(
            "(service {svc}) has stopped {} running tasks: {}.",
            failed_names.len(),
            task_list(failed_names.iter().copied())
        )));
    }

    // 3. The circuit breaker: its count since a task last reached a healthy state, its
    //    status beside the deployment.
    if let Some(b) = s.breaker
        && deps[0].rollout_state == Some(RolloutState::InProgress)
    {
        let primary = deployment_label(&deps[0].id).to_string();
        let cb = deps[0]
            .circuit_breaker
            .get_or_insert_with(CircuitBreakerState::default);
        cb.threshold = b.threshold;
        cb.status = CircuitBreakerStatus::Monitoring;
        // More healthy tasks than last seen: one reached a healthy state since.
        let healthy = s
            .tasks
            .iter()
            .filter(|t| t.deployment == primary && t.is_live() && t.is_healthy())
            .count() as i32;
        if b.reset_on_healthy_task && healthy > cb.healthy_tasks {
            cb.failure_count = 0;
        }
        cb.healthy_tasks = healthy;
    }
    if let Some(b) = s.breaker
        && deps[0].rollout_state == Some(RolloutState::InProgress)
        && deps[0]
            .circuit_breaker
            .as_ref()
            .is_some_and(|cb| cb.failure_count >= b.threshold)
    {
        if let Some(cb) = deps[0].circuit_breaker.as_mut() {
            cb.status = CircuitBreakerStatus::Triggered;
        }
        let failed_id = deps[0].id.clone();
        fail_primary(
            s,
            &mut deps,
            &mut production,
            &mut events,
            used_new_id,
            Failure {
                reason: "ECS deployment circuit breaker: tasks failed to start.".into(),
                event: format!(
                    "(service {svc}) (deployment {failed_id}) deployment failed: tasks failed to start."
                ),
                rollback_as: b.rollback.then(|| "ECS deployment circuit breaker".into()),
            },
        );
    }

    // 4. Deployment alarms: watched while the PRIMARY rolls out (or bakes); one firing fails
    //    it, and with rollback rolls it back.
    // A rollback is not watched: the alarm that failed the deployment may still fire while
    //    the good revision comes back.
    if let Some(a) = s.alarms
        && deps[0].rollout_state == Some(RolloutState::InProgress)
        && deps[0].rollback_of.is_none()
    {
        let triggered: Vec<String> = a
            .firing
            .iter()
            .filter(|f| a.names.contains(f))
            .cloned()
            .collect();
        let state = deps[0]
            .alarms
            .get_or_insert_with(DeploymentAlarmsState::default);
        state.alarm_names = a.names.to_vec();
        state.status = CircuitBreakerStatus::Monitoring;
        if !triggered.is_empty() {
            state.status = CircuitBreakerStatus::Triggered;
            state.triggered_alarm_names = triggered.clone();
            let failed_id = deps[0].id.clone();
            let names = triggered.join(", ");
            fail_primary(
                s,
                &mut deps,
                &mut production,
                &mut events,
                used_new_id,
                Failure {
                    reason: format!("Failed due to alarm(s) in ALARM state: {names}."),
                    event: format!(
                        "(service {svc}) (deployment {failed_id}) deployment failed: alarm(s) {names} in ALARM state."
                    ),
                    rollback_as: a
                        .rollback
                        .then(|| format!("Alarm(s) {names} in ALARM state")),
                },
            );
        }
    }

    // 5. StopServiceDeployment: a user stops the PRIMARY deployment while it rolls out.
    if let Some((id, how)) = s.stop_deployment
        && deps[0].id == id
        && deps[0].rollout_state == Some(RolloutState::InProgress)
    {
        let reason = match how {
            StopType::Rollback => "Service deployment stopped by request: rolling back.",
            StopType::Abort => "Service deployment stopped by request.",
        };
        fail_primary(
            s,
            &mut deps,
            &mut production,
            &mut events,
            used_new_id,
            Failure {
                reason: reason.into(),
                event: format!("(service {svc}) (deployment {id}) was stopped by request."),
                rollback_as: (how == StopType::Rollback)
                    .then(|| "Service deployment stopped by request".into()),
            },
        );
    }
    // 6. Blue/green stages, in ECS's order: each hook stage waits for its hooks; green's
    //    tasks start at SCALE_UP, production traffic moves at PRODUCTION_TRAFFIC_SHIFT, blue
    //    is cleaned up after the bake.
    if let Strategy::BlueGreen {
        bake_seconds,
        shift,
    } = s.strategy
        && deps[0].rollout_state == Some(RolloutState::InProgress)
        && deps.len() > 1
    {
        let green = deployment_label(&deps[0].id).to_string();
        let stable = s
            .tasks
            .iter()
            .filter(|t| {
                t.deployment == green
                    && t.is_live()
                    && !t.draining
                    && !stopping.contains(t.name.as_str())
                    && t.is_stable(s.now)
            })
            .count() as i32;
        // The pass that moves production traffic stops there: the production Service must
        // select green before anything (blue's clean-up) can follow.
        let mut shifted_now = false;
        loop {
            let stage = deps[0]
                .lifecycle_stage
                .unwrap_or(LifecycleStage::ReconcileService);
            let gate = match stage {
                LifecycleStage::ScaleUp => {
                    if stable >= s.bounds.desired.max(0) {
                        hooks::Gate::Open
                    } else {
                        hooks::Gate::Wait
                    }
                }
                LifecycleStage::BakeTime => {
                    let shifted = deps[0]
                        .production_traffic_shifted_at
                        .as_deref()
                        .and_then(rfc3339_seconds)
                        .unwrap_or(s.now);
                    if s.now - shifted >= bake_seconds {
                        hooks::Gate::Open
                    } else {
                        hooks::Gate::Wait
                    }
                }
                LifecycleStage::CleanUp => hooks::Gate::Wait,
                // Production traffic moves (step by step for LINEAR and CANARY) once this
                // stage's hooks let it.
                LifecycleStage::ProductionTrafficShift => match hooks::gate(
                    &mut deps[0],
                    s.hooks,
                    s.hook_outcomes,
                    LifecycleStage::ProductionTrafficShift,
                    s.now,
                ) {
                    hooks::Gate::Open => {
                        let current = deps[0].production_traffic_percent;
                        let (next, bake) = shift.next(current);
                        let since = deps[0]
                            .traffic_step_at
                            .as_deref()
                            .and_then(rfc3339_seconds)
                            .unwrap_or(s.now);
                        if current.is_some_and(|c| c >= 100.0) {
                            hooks::Gate::Open
                        } else if current.is_none() || s.now - since >= bake {
                            deps[0].production_traffic_percent = Some(next);
                            deps[0].traffic_step_at = Some(now.into());
                            if next >= 100.0 {
                                shifted_now = true;
                                production = Some(deps[0].id.clone());
                                deps[0].production_traffic_shifted_at = Some(now.into());
                                events.push(EcsEvent::normal(format!(
                                    "(service {svc}) (deployment {}) production traffic shifted to the new tasks.",
                                    deps[0].id
                                )));
                                hooks::Gate::Open
                            } else {
                                events.push(EcsEvent::normal(format!(
                                    "(service {svc}) (deployment {}) {next}% of production traffic shifted to the new tasks.",
                                    deps[0].id
                                )));
                                hooks::Gate::Wait
                            }
                        } else {
                            hooks::Gate::Wait
                        }
                    }
                    other => other,
                },
                // RECONCILE_SERVICE happens only with more than one revision running.
                LifecycleStage::ReconcileService if deps.len() <= 2 => hooks::Gate::Open,
                hook_stage => {
                    hooks::gate(&mut deps[0], s.hooks, s.hook_outcomes, hook_stage, s.now)
                }
            };
            match gate {
                hooks::Gate::Wait => {
                    deps[0].lifecycle_stage = Some(stage);
                    break;
                }
                hooks::Gate::Fail(reason) => {
                    let failed_id = deps[0].id.clone();
                    fail_primary(
                        s,
                        &mut deps,
                        &mut production,
                        &mut events,
                        used_new_id,
                        Failure {
                            event: format!(
                                "(service {svc}) (deployment {failed_id}) deployment failed: {reason}"
                            ),
                            reason,
                            rollback_as: Some("ECS deployment lifecycle hook failed".into()),
                        },
                    );
                    break;
                }
                hooks::Gate::Open => {
                    deps[0].lifecycle_stage = Some(hooks::next_stage(stage));
                    if shifted_now {
                        break;
                    }
                }
            }
        }
    }

    Prepared {
        deps,
        events,
        production,
        stop,
        stopping,
    }
}

/// Why the PRIMARY deployment fails, and whether (and in whose name) it rolls back.
struct Failure {
    /// Its rolloutStateReason.
    reason: String,
    /// The service event.
    event: String,
    /// Roll back, the new deployment's reason reading `PREFIX: rolling back to ...`.
    rollback_as: Option<String>,
}

/// Fails the PRIMARY (`deps[0]`) and, if asked, rolls it back to the last COMPLETED
/// deployment: blue/green gives production back to blue (still running); rolling starts a
/// new deployment of the good one's task definition and digests. Both are linked to the
/// failed one, whose history record follows the rollback.
fn fail_primary(
    s: &ServiceSnapshot,
    deps: &mut Vec<Deployment>,
    production: &mut Option<String>,
    events: &mut Vec<EcsEvent>,
    used_new_id: bool,
    f: Failure,
) {
    let svc = s.service;
    set_rollout(&mut deps[0], RolloutState::Failed, f.reason, s.now_rfc3339);
    events.push(EcsEvent::warning(f.event));
    let Some(prefix) = f.rollback_as else {
        return;
    };
    let failed_id = deps[0].id.clone();
    let Some(good) = deps[1..]
        .iter()
        .find(|d| d.rollout_state == Some(RolloutState::Completed))
        .cloned()
    else {
        return;
    };
    deps[0].rolled_back_to = Some(good.id.clone());
    if let Strategy::BlueGreen { .. } = s.strategy {
        // Blue still runs: it takes (keeps) production traffic again.
        let pos = deps.iter().position(|d| d.id == good.id).unwrap();
        let mut blue = deps.remove(pos);
        blue.status = DeploymentStatus::Primary;
        deps[0].status = DeploymentStatus::Active;
        *production = Some(blue.id.clone());
        deps.insert(0, blue);
    } else if !used_new_id {
        for d in deps.iter_mut() {
            d.status = DeploymentStatus::Active;
        }
        // The rollback runs what the good deployment ran: its digests, not the tags'
        // current ones.
        let mut back = new_deployment(
            s.new_deployment_id,
            &good.task_definition,
            s.now_rfc3339,
            format!("{prefix}: rolling back to deploymentId {}.", good.id),
        );
        back.container_images = good.container_images.clone();
        back.rollback_of = Some(failed_id.clone());
        deps.insert(0, back);
    }
    events.push(EcsEvent::normal(format!(
        "(service {svc}) (deployment {failed_id}) rolling back to deployment {}.",
        good.id
    )));
}

/// What [`prepare`] decided.
pub(super) struct Prepared<'a> {
    pub deps: Vec<Deployment>,
    pub events: Vec<EcsEvent>,
    pub production: Option<String>,
    pub stop: Vec<StopTask>,
    pub stopping: BTreeSet<&'a str>,
}

/// Plans one step. `choose(candidates, n)` picks `n` healthy tasks to stop among
/// `candidates` (the Service controller uses the placement engine's scale-in rules).
pub fn plan(
    s: &ServiceSnapshot,
    choose: &mut dyn FnMut(&[&ObservedTask], usize) -> Vec<String>,
) -> Plan {
    let svc = s.service;
    let now = s.now_rfc3339;
    let Prepared {
        mut deps,
        mut events,
        mut production,
        mut stop,
        stopping,
    } = prepare(s);
    let trigger = s.target.to_string();

    // Live tasks per deployment, after the stops above.
    let label_of = |d: &Deployment| deployment_label(&d.id).to_string();
    let primary_label = label_of(&deps[0]);
    let live: Vec<&ObservedTask> = s
        .tasks
        .iter()
        .filter(|t| t.is_live() && !stopping.contains(t.name.as_str()))
        .collect();
    let places = s.tasks.iter().filter(|t| t.holds_place()).count() as i32;
    let healthy = live.iter().filter(|t| t.is_healthy()).count() as i32;
    // The PRIMARY's tasks on DRAINING instances are replaced: they do not count toward
    // desiredCount, and stop below as the healthy floor allows (PENDING ones at once).
    let p_live: Vec<&ObservedTask> = live
        .iter()
        .copied()
        .filter(|t| t.deployment == primary_label && !t.draining)
        .collect();
    let p_draining: Vec<&ObservedTask> = live
        .iter()
        .copied()
        .filter(|t| t.deployment == primary_label && t.draining)
        .collect();
    let p_healthy = p_live.iter().filter(|t| t.is_healthy()).count() as i32;
    let p_stable = p_live.iter().filter(|t| t.is_stable(s.now)).count() as i32;
    let desired = s.bounds.desired.max(0);
    let primary_failed = deps[0].rollout_state == Some(RolloutState::Failed);
    let blue_green = match s.strategy {
        Strategy::BlueGreen { bake_seconds, .. } => Some(bake_seconds),
        Strategy::Rolling => None,
    };
    let production_label = production.as_deref().map(deployment_label);

    // 4. Launch for the PRIMARY deployment, within maximumPercent (blue/green runs green at
    //    full size beside blue, as ECS does).
    let mut launch = Vec::new();
    let need = desired - p_live.len() as i32;
    // Blue/green starts green's tasks at SCALE_UP, once the hooks before it let it.
    let before_scale_up = blue_green.is_some()
        && deps.len() > 1
        && deps[0].rollout_state == Some(RolloutState::InProgress)
        && deps[0].lifecycle_stage < Some(LifecycleStage::ScaleUp);
    if need > 0 && !primary_failed && !before_scale_up {
        let room = if blue_green.is_some() {
            need
        } else {
            (s.bounds.max_total() - places).max(0)
        };
        let n = need.min(room);
        if n > 0 {
            launch.push(Launch {
                deployment: deps[0].id.clone(),
                task_definition: deps[0].task_definition.clone(),
                count: n as usize,
                instances: Vec::new(),
            });
        }
    }

    // 5. Stop: the PRIMARY's excess (scale-in), then the old deployments' tasks, never below
    //    the healthy floor.
    let scale_reason = format!("Scaling activity initiated by (deployment {})", deps[0].id);
    let mut to_stop: Vec<String> = Vec::new();
    let mut budget = healthy - s.bounds.min_healthy();
    // A rebalance's stop: its event is the rebalancing one (the controller writes it).
    let mut rebalanced: Vec<String> = Vec::new();
    if need < 0 {
        let excess = (-need) as usize;
        if s.rebalancing && deps.len() == 1 {
            let healthy: Vec<&ObservedTask> =
                p_live.iter().copied().filter(|t| t.is_healthy()).collect();
            rebalanced = pick(&healthy, excess, &mut budget, false, s.now, choose);
            to_stop.extend(rebalanced.iter().cloned());
        } else {
            let mut picked = pick(&p_live, excess, &mut budget, true, s.now, choose);
            to_stop.append(&mut picked);
        }
    }
    // Old tasks: rolling stops them as the healthy floor allows (not after a failed rollout
    // with nothing to roll back to: they are all that serves). Blue/green keeps the
    // production (blue) tasks until clean-up and stops every other old task at once.
    let cleaning_up = deps[0].lifecycle_stage == Some(LifecycleStage::CleanUp);
    // Blue: the last COMPLETED deployment, serving until green has baked.
    let blue_label = deps[1..]
        .iter()
        .find(|d| d.rollout_state == Some(RolloutState::Completed))
        .map(label_of);
    let old: Vec<&ObservedTask> = live
        .iter()
        .copied()
        .filter(|t| t.deployment != primary_label)
        .filter(|t| {
            blue_green.is_none()
                || cleaning_up
                || (production_label != Some(t.deployment.as_str())
                    && blue_label.as_deref() != Some(t.deployment.as_str()))
        })
        .collect();
    if blue_green.is_some() || !primary_failed {
        let mut picked = pick(
            &old,
            old.len(),
            &mut budget,
            blue_green.is_some(),
            s.now,
            choose,
        );
        to_stop.append(&mut picked);
    }
    // Draining (ECS's container instance draining): as the floor allows, replacements first
    // when minimumHealthyPercent is 100.
    let mut drained = pick(
        &p_draining,
        p_draining.len(),
        &mut budget,
        false,
        s.now,
        choose,
    );
    to_stop.append(&mut drained);
    let stopped_now: Vec<String> = to_stop
        .iter()
        .filter(|n| !rebalanced.contains(n))
        .cloned()
        .collect();
    for name in &to_stop {
        let t = s.tasks.iter().find(|t| &t.name == name).unwrap();
        stop.push(StopTask {
            name: name.clone(),
            deployment: t.deployment.clone(),
            code: StopCode::ServiceSchedulerInitiated,
            reason: scale_reason.clone(),
            counted_failure: false,
        });
    }
    if !stopped_now.is_empty() {
        events.push(EcsEvent::normal(format!(
            "(service {svc}) has stopped {} running tasks: {}.",
            stopped_now.len(),
            task_list(stopped_now.iter().map(String::as_str))
        )));
    }

    // 7. Counts, completion, steady state.
    // Old tasks still holding a place (being stopped included): the rollout is not over.
    let remaining_old = s
        .tasks
        .iter()
        .filter(|t| t.deployment != primary_label && t.holds_place())
        .count();
    let launched: usize = launch.iter().map(|l| l.count).sum();
    for d in deps.iter_mut() {
        let l = label_of(d);
        let mine = live
            .iter()
            .filter(|t| t.deployment == l && !to_stop.contains(&t.name));
        let (mut running, mut pending) = (0, 0);
        for t in mine {
            if t.last_status == super::LastStatus::Running {
                running += 1;
            } else {
                pending += 1;
            }
        }
        d.running_count = running;
        d.pending_count = pending;
        d.desired_count = if d.status == DeploymentStatus::Primary {
            if d.rollout_state == Some(RolloutState::Failed) {
                running + pending
            } else {
                desired
            }
        } else {
            running + pending
        };
    }
    let complete = deps[0].rollout_state == Some(RolloutState::InProgress)
        && (blue_green.is_none()
            || deps.len() == 1
            || deps[0].lifecycle_stage == Some(LifecycleStage::CleanUp))
        && p_stable == desired
        && p_live.len() as i32 == desired
        && launched == 0
        && stop.is_empty()
        && remaining_old == 0;
    if complete {
        let id = deps[0].id.clone();
        set_rollout(
            &mut deps[0],
            RolloutState::Completed,
            format!("ECS deployment {id} completed."),
            now,
        );
        deps[0].lifecycle_stage = None;
        if let Some(cb) = deps[0].circuit_breaker.as_mut() {
            cb.status = CircuitBreakerStatus::MonitoringComplete;
        }
        if let Some(a) = deps[0].alarms.as_mut() {
            a.status = CircuitBreakerStatus::MonitoringComplete;
        }
        deps.truncate(1);
        if blue_green.is_some() {
            production = Some(id.clone());
        }
        events.push(EcsEvent::normal(format!(
            "(service {svc}) (deployment {id}) deployment completed."
        )));
    }
    // Drained old deployments leave the list, except the one a rollback would return to,
    // and one that failed and rolled back in this very pass: its history record learns the
    // rollback from it (a stuck deployment may have no task left when it is stopped).
    if deps.len() > 1 {
        let primary_in_progress = deps[0].rollout_state == Some(RolloutState::InProgress);
        let keep_for_rollback = deps[1..]
            .iter()
            .find(|d| d.rollout_state == Some(RolloutState::Completed))
            .map(|d| d.id.clone());
        let holding: BTreeSet<&str> = s
            .tasks
            .iter()
            .filter(|t| t.holds_place())
            .map(|t| t.deployment.as_str())
            .collect();
        let first = deps.remove(0);
        deps.retain(|d| {
            holding.contains(deployment_label(&d.id))
                || (primary_in_progress && keep_for_rollback.as_deref() == Some(d.id.as_str()))
                || (d.rolled_back_to.is_some() && d.updated_at.as_deref() == Some(s.now_rfc3339))
        });
        deps.insert(0, first);
    }
    let steady = deps.len() == 1
        && deps[0].rollout_state == Some(RolloutState::Completed)
        && p_healthy == desired
        && p_live.len() as i32 == desired
        && p_draining.is_empty()
        && launched == 0
        && stop.is_empty();
    if blue_green.is_none() {
        production = None;
    } else if production.is_none() {
        production = deps
            .iter()
            .find(|d| d.rollout_state == Some(RolloutState::Completed))
            .map(|d| d.id.clone());
    }
    let stable_in = p_live
        .iter()
        .filter(|t| t.is_healthy() && !t.is_stable(s.now))
        .filter_map(|t| t.started_at)
        .map(|started| (started + super::task::STABLE_SECONDS - s.now).max(0))
        .min();
    Plan {
        deployments: deps,
        trigger,
        launch,
        stop,
        events,
        production,
        steady,
        stable_in,
    }
}

/// Picks up to `n` tasks to stop among `candidates`: those that are not healthy first (they
/// hold up nothing), then healthy ones while `budget` (healthy tasks above the floor) lasts,
/// chosen by `choose`. `unbounded` ignores the budget (blue/green clean-up, scale-in beyond
/// desired).
fn pick(
    candidates: &[&ObservedTask],
    n: usize,
    budget: &mut i32,
    unbounded: bool,
    now: i64,
    choose: &mut dyn FnMut(&[&ObservedTask], usize) -> Vec<String>,
) -> Vec<String> {
    // Task scale-in protection: neither scale-in nor a deployment stops a protected task (a
    // rollout waits for its protection to end); a task that fails still stops (`prepare`).
    let candidates: Vec<&ObservedTask> = candidates
        .iter()
        .copied()
        .filter(|t| !t.is_protected(now))
        .collect();
    let mut out: Vec<String> = candidates
        .iter()
        .filter(|t| !t.is_healthy())
        .take(n)
        .map(|t| t.name.clone())
        .collect();
    let healthy: Vec<&ObservedTask> = candidates
        .iter()
        .copied()
        .filter(|t| t.is_healthy())
        .collect();
    let want = n.saturating_sub(out.len()).min(healthy.len());
    let allowed = if unbounded {
        want
    } else {
        want.min((*budget).max(0) as usize)
    };
    if allowed > 0 {
        let chosen = choose(&healthy, allowed);
        *budget -= chosen.len() as i32;
        out.extend(chosen);
    }
    out
}

#[cfg(test)]
mod tests;
