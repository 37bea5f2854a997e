//! The Task controller (ECS RunTask): places and starts `count` tasks once, reports each
//! one's status, containers' exit codes and stop reason, stops a task whose essential
//! container stopped, and removes the run a while after every task stopped.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use super::events::{Event, EventType};
use futures::StreamExt;
use k8s_openapi::jiff::Timestamp;
use kube::api::{Api, DeleteParams};
use kube::runtime::controller::{Action, Controller};
use kube::runtime::watcher;
use kube::{Resource, ResourceExt};
use tracing::warn;

use super::cluster::cluster_name;
use super::conditions::{condition, merge};
use super::launch::{self, TASK_GROUP_LABEL};
use super::preflight;
use super::{Context, Error, Result};
use crate::api::common::condition as cond;
use crate::api::states::DesiredStatus;
use crate::api::task::{Failure, TaskInfo, TaskStatus};
use crate::api::{Task, labels};
use crate::deploy::TaskPod;
use crate::deploy::{self, LastStatus};
use crate::placement::TaskKind;
use crate::placement::engine::family_group;

const CONTROLLER: &str = "task";

pub async fn run(
    ctx: Arc<Context>,
    task_events: impl futures::Stream<Item = Arc<TaskPod>> + Send + 'static,
) {
    let api = Api::<Task>::all(ctx.client.clone());
    Controller::new(api, watcher::Config::default().any_semantic())
        .with_config(
            kube::runtime::controller::Config::default()
                .concurrency(super::service::CONCURRENT_PASSES),
        )
        .reconcile_on(
            task_events.filter_map(|t| {
                futures::future::ready(super::pod_index::owner_of_kind::<Task>(&t))
            }),
        )
        .shutdown_on_signal()
        .run(reconcile, error_policy, ctx)
        .for_each(|res| async move {
            match res {
                Err(kube::runtime::controller::Error::ObjectNotFound(_)) | Ok(_) => {}
                Err(e) => warn!(error = %e, "task reconcile failed"),
            }
        })
        .await;
}

fn error_policy(_t: Arc<Task>, err: &Error, ctx: Arc<Context>) -> Action {
    ctx.metrics.failed(CONTROLLER, err.kind());
    Action::requeue(Duration::from_secs(5))
}

/// `NAME-0` … `NAME-(count-1)`: deterministic, so a crash between creating the pods and
/// recording them never runs a task twice.
fn pod_name(task: &str, i: usize) -> String {
    let base = crate::taskdef::names::dns_label(task);
    let base: String = base.chars().take(55).collect();
    format!("{}-{i}", base.trim_end_matches('-'))
}

async fn reconcile(task: Arc<Task>, ctx: Arc<Context>) -> Result<Action> {
    let _timer = ctx.metrics.reconciled(CONTROLLER);
    if task.meta().deletion_timestamp.is_some() {
        ctx.statuses
            .forget(task.uid().as_deref().unwrap_or_default());
        return Ok(Action::await_change());
    }
    let ns = task.namespace().unwrap_or_default();
    let name = task.name_any();
    let cluster = cluster_name(task.spec.cluster.as_deref()).to_string();
    let old: TaskStatus = ctx.statuses.current(&task.metadata, task.status.as_ref());
    let generation = task.metadata.generation;
    let mut status = TaskStatus {
        observed_generation: generation,
        ..old.clone()
    };
    let launched = !old.tasks.is_empty() || !old.failures.is_empty();

    if !launched {
        match launch_tasks(&task, &ctx, &ns, &cluster).await? {
            Ok((td, names, failures)) => {
                status.task_definition = Some(td);
                status.failures = failures;
                status.tasks = names
                    .iter()
                    .map(|n| TaskInfo {
                        task_id: n.clone(),
                        pod_name: Some(n.clone()),
                        last_status: LastStatus::Provisioning,
                        desired_status: DesiredStatus::Running,
                        ..Default::default()
                    })
                    .collect();
            }
            Err((reason, msg)) => {
                status.conditions = merge(
                    &old.conditions,
                    vec![
                        condition(cond::READY, false, reason, msg.clone(), generation),
                        condition(cond::DEGRADED, true, reason, msg.clone(), generation),
                    ],
                );
                ctx.write_status(task.as_ref(), task.status.as_ref(), &status)
                    .await?;
                if old.conditions.iter().all(|c| c.message != msg) {
                    publish(&ctx, &task, EventType::Warning, reason, &msg).await;
                }
                return Ok(Action::requeue(Duration::from_secs(15)));
            }
        }
    }

    // Observe: each recorded task from its pod, or as last recorded once the pod is gone.
    let (now_s, now) = (Timestamp::now().as_second(), Timestamp::now().to_string());
    let pods: BTreeMap<String, Arc<TaskPod>> = ctx
        .stores
        .tasks_owned_by(&task.uid().unwrap_or_default())
        .into_iter()
        .filter(|p| p.task.as_ref() == Some(&name))
        .map(|p| (p.name.clone(), p))
        .collect();
    let mut stop_now = Vec::new();
    for info in status.tasks.iter_mut() {
        let Some(pod) = pods.get(&info.task_id) else {
            if info.last_status != LastStatus::Stopped && launched {
                // The pod vanished (node gone, deleted by hand): the task stopped.
                info.last_status = LastStatus::Stopped;
                info.desired_status = DesiredStatus::Stopped;
                info.stopped_reason
                    .get_or_insert_with(|| "Task stopped: its pod was deleted.".into());
                info.stopped_at.get_or_insert_with(|| now.clone());
            }
            continue;
        };
        let t = deploy::observe(pod, now_s, 0);
        info.task_arn = Some(format!(
            "arn:aws:ecs:{}:{ns}:task/{cluster}/{}",
            crate::arn::REGION,
            t.uid.replace('-', "")
        ));
        info.container_instance = t.node.clone();
        info.last_status = t.last_status;
        info.health_status = Some(t.health);
        if !t.containers.is_empty() {
            info.containers = t.containers.clone();
        }
        info.started_at = t
            .started_at
            .and_then(|s| Timestamp::from_second(s).ok())
            .map(|s| s.to_string());
        if let Some(cause) = &t.stop {
            info.desired_status = DesiredStatus::Stopped;
            info.stop_code = Some(cause.code);
            info.stopped_reason = Some(cause.reason.clone());
            if t.last_status == LastStatus::Stopped {
                info.stopped_at.get_or_insert_with(|| now.clone());
            } else if !t.stopping {
                // An essential container stopped: ECS stops the whole task.
                stop_now.push((t.name.clone(), t.uid.clone()));
            }
        }
    }
    for (n, uid) in &stop_now {
        launch::stop(&ctx, &ns, n, uid).await?;
    }
    // The run's state is its least advanced task's (ECS's lifecycle order).
    status.last_status = Some(
        status
            .tasks
            .iter()
            .map(|t| t.last_status)
            .min()
            .unwrap_or(LastStatus::Stopped),
    );
    let all_stopped = !status.tasks.is_empty()
        && status
            .tasks
            .iter()
            .all(|t| t.last_status == LastStatus::Stopped);
    let ok = status.failures.is_empty();
    status.conditions = merge(
        &old.conditions,
        vec![
            condition(
                cond::READY,
                ok && !status.tasks.is_empty()
                    && status
                        .tasks
                        .iter()
                        .all(|t| t.last_status == LastStatus::Running),
                status.last_status.unwrap_or_default().as_str(),
                format!(
                    "{} of {} tasks RUNNING.",
                    status
                        .tasks
                        .iter()
                        .filter(|t| t.last_status == LastStatus::Running)
                        .count(),
                    task.spec.count.unwrap_or(1)
                ),
                generation,
            ),
            condition(
                cond::DEGRADED,
                !ok,
                if ok { "AsExpected" } else { "PlacementFailed" },
                status
                    .failures
                    .iter()
                    .map(|f| f.reason.clone())
                    .collect::<Vec<_>>()
                    .join(" "),
                generation,
            ),
        ],
    );
    if status != old {
        ctx.write_status(task.as_ref(), task.status.as_ref(), &status)
            .await?;
    }
    if all_stopped || (status.tasks.is_empty() && !status.failures.is_empty()) {
        // Finished runs stay visible for the retention time, then go (their pods with them).
        let last = status
            .tasks
            .iter()
            .filter_map(|t| t.stopped_at.as_deref())
            .filter_map(|s| s.parse::<Timestamp>().ok())
            .map(|t| t.as_second())
            .max()
            .unwrap_or(now_s);
        let left = ctx.stopped_task_retention.as_secs() as i64 - (now_s - last);
        if left <= 0 {
            let api: Api<Task> = Api::namespaced(ctx.client.clone(), &ns);
            let _ = api.delete(&name, &DeleteParams::background()).await;
            return Ok(Action::await_change());
        }
        return Ok(Action::requeue(Duration::from_secs(left.max(1) as u64)));
    }
    Ok(Action::requeue(Duration::from_secs(5)))
}

type Launched = (String, Vec<String>, Vec<Failure>);

/// Resolves, renders, places and creates the run's pods. The inner `Err` is a refusal
/// (reason, ECS message) reported in status.
async fn launch_tasks(
    task: &Task,
    ctx: &Context,
    ns: &str,
    cluster: &str,
) -> Result<std::result::Result<Launched, (&'static str, String)>> {
    let name = task.name_any();
    let cluster_object = ctx.stores.cluster(ns, cluster);
    let ask = preflight::Ask {
        cluster: cluster_object.as_deref(),
        task_definition: &task.spec.task_definition,
        already_running: &[],
        launch_type: task.spec.launch_type,
        capacity_provider_strategy: &task.spec.capacity_provider_strategy,
        daemon: false,
        kind: TaskKind::Standalone,
        strategies: &task.spec.placement_strategy,
        constraints: &task.spec.placement_constraints,
    };
    let preflight::Cleared {
        resolved,
        policy,
        launch_type,
        providers,
    } = match preflight::check(&ctx.stores, ns, &ask) {
        Ok(c) => c,
        Err(r) => return Ok(Err((r.reason(), r.message()))),
    };
    let spec = match &task.spec.overrides {
        Some(o) => match crate::taskdef::apply_overrides(&resolved.spec, o) {
            Ok(s) => s,
            Err(e) => return Ok(Err(("InvalidOverrides", e.0.join(" ")))),
        },
        None => (*resolved.spec).clone(),
    };
    let group = task
        .spec
        .group
        .clone()
        .unwrap_or_else(|| family_group(&resolved.family));
    let count = task.spec.count.unwrap_or(1).clamp(1, 10) as usize;
    let options = launch::render_options(ctx, ns, &spec).await?;
    // With a capacity provider strategy: the provider of each task, split ECS's way.
    let provider_of_index: Vec<String> = providers
        .as_ref()
        .map(|p| crate::placement::capacity::assign(&p.shares, &BTreeMap::new(), count))
        .unwrap_or_default();
    let mut created = Vec::new();
    let mut failures = Vec::new();
    // One pod per index: deterministic names, placed one decision at a time so each gets
    // the next free instance.
    for i in 0..count {
        let mut labels: BTreeMap<String, String> = [
            (labels::TASK.to_string(), name.clone()),
            (
                TASK_GROUP_LABEL.to_string(),
                crate::taskdef::names::label_value(&group),
            ),
        ]
        .into();
        let provider = provider_of_index.get(i);
        let kind = provider.and_then(|pr| providers.as_ref().and_then(|p| p.kinds.get(pr)));
        if let Some(pr) = provider {
            labels.insert(labels::CAPACITY_PROVIDER.into(), pr.clone());
        }
        if let Some(by) = &task.spec.started_by {
            labels.insert(
                "ecs.kubecs.io/started-by".into(),
                crate::taskdef::names::label_value(by),
            );
        }
        let pod = match launch::render(&launch::PodToRender {
            namespace: ns,
            cluster,
            resolved: &resolved,
            spec: &spec,
            generate_name: None,
            name: Some(pod_name(&name, i)),
            labels,
            owner: task.controller_owner_ref(&()).expect("stored object"),
            launch_type,
            options: &options,
        }) {
            Ok(p) => p,
            Err(m) => return Ok(Err(("InvalidTaskDefinition", m))),
        };
        let how = launch::Placement {
            cluster,
            group: &group,
            count: 1,
            policy: &policy,
            launch_type,
            fixed_nodes: None,
            only_on: match kind {
                Some(launch::ProviderKind::Instances(nodes)) => Some(nodes),
                _ => None,
            },
        };
        // RunTask's names are its own: a create whose answer was lost is tried again by the
        // next pass, and answers 409 if it had been made.
        let launched = launch::place_and_create(ctx, &pod, &how).await;
        if let Some(e) = launched.error {
            return Err(e.into());
        }
        let (names, outcome) = (launched.created, launched.outcome);
        if names.is_empty() {
            // 409: created before a crash; or placement failed.
            if let Some(f) = outcome.and_then(|o| o.failure) {
                failures.push(Failure {
                    arn: None,
                    reason: f.reason(),
                    detail: Some(f.to_string()),
                });
            } else {
                created.push(pod_name(&name, i));
            }
        } else {
            created.extend(names);
        }
    }
    if !created.is_empty() {
        publish(
            ctx,
            task,
            EventType::Normal,
            "Started",
            &format!(
                "Started {} tasks: {}.",
                created.len(),
                deploy::task_list(created.iter().map(String::as_str))
            ),
        )
        .await;
    }
    for f in &failures {
        publish(
            ctx,
            task,
            EventType::Warning,
            "PlacementFailed",
            &format!("{}: {}", f.reason, f.detail.clone().unwrap_or_default()),
        )
        .await;
    }
    Ok(Ok((resolved.name(), created, failures)))
}

async fn publish(ctx: &Context, task: &Task, type_: EventType, reason: &str, note: &str) {
    let ev = Event {
        type_,
        reason: reason.into(),
        note: Some(note.chars().take(1000).collect()),
        action: "RunTask".into(),
        secondary: None,
    };
    if let Err(e) = ctx.recorder.publish(&ev, &task.object_ref(&())).await {
        warn!(error = %e, "could not publish event");
    }
}
