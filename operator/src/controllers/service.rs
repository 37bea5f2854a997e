//! The Service controller: reads the service, its recorded deployments and its task pods,
//! asks the REPLICA or DAEMON planner what to do, writes the deployments first (so every pod
//! it creates names a recorded deployment), then stops and starts tasks and reports in
//! ECS's words.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Arc;
use std::time::Duration;

use super::events::{Event, EventType};
use futures::StreamExt;
use k8s_openapi::api::core::v1::{Node, Pod, Service as CoreService};
use k8s_openapi::jiff::Timestamp;
use kube::api::{Api, Patch, PatchParams};
use kube::runtime::controller::{Action, Controller};
use kube::runtime::reflector::ObjectRef;
use kube::{Resource, ResourceExt};
use serde_json::json;
use tracing::{info, warn};

use super::cluster::cluster_name;
use super::conditions::{condition, merge};
use super::image_digests;
use super::launch::{self, Resolved};
use super::preflight;
use super::{Context, Error, FIELD_MANAGER, Result};
use crate::api::common::condition as cond;
use crate::api::common::{EnabledDisabled, LaunchType};
use crate::api::service::{
    DeploymentStrategy, SchedulingStrategy, ServiceEvent, StoppedTask, ThresholdType,
};
use crate::api::states::ServiceState;
use crate::api::{EcsCluster, Service, ServiceStatus, labels};
use crate::arn;
use crate::deploy::TaskPod;
use crate::deploy::replica::{AlarmWatch, ServiceSnapshot};
use crate::deploy::{
    self, Bounds, Breaker, ObservedTask, Plan, RolloutState, Strategy, breaker_threshold,
    deployment_id, deployment_label,
};
use crate::deploy::{EcsEvent, Severity, rebalance};
use crate::placement::engine::{ScaleInRequest, service_group};
use crate::placement::instance::CLAIM_ANNOTATION;
use crate::placement::{TaskKind, select_tasks_to_stop};

const CONTROLLER: &str = "service";
/// How long a service's reconcile waits for more events of it before running: task pods of a
/// deployment change state within moments of each other.
const DEBOUNCE: Duration = Duration::from_millis(500);

/// Passes at once. Each holds its copy of its cluster's instances while it waits on the API
/// server: unbounded, a roll of 1,000 services held 1,000 copies (2.3 GiB at 10,000 tasks).
/// The API server, not the number of passes, is the limit well below this.
pub const CONCURRENT_PASSES: u16 = 32;
/// Events kept in status, newest first (ECS shows the last 100).
const MAX_EVENTS: usize = 100;
/// Stopped tasks kept in status.
const MAX_STOPPED: usize = 20;
/// ECS's steady-state message.
fn steady_message(svc: &str) -> String {
    format!("(service {svc}) has reached a steady state.")
}

/// Runs on the shared Service reflector (one watch per kind).
pub async fn run(
    ctx: Arc<Context>,
    service_events: impl futures::Stream<Item = Arc<Service>> + Send + 'static,
    task_events: impl futures::Stream<Item = Arc<TaskPod>> + Send + 'static,
    node_events: impl futures::Stream<Item = Arc<Node>> + Send + 'static,
    cluster_events: impl futures::Stream<Item = Arc<EcsCluster>> + Send + 'static,
    taskdef_events: impl futures::Stream<Item = Arc<crate::api::TaskDefinition>> + Send + 'static,
) {
    let of_family = ctx.stores.services.clone();
    let services = ctx.stores.services.clone();
    let of_cluster = ctx.stores.services.clone();
    let node_changes = super::node_changes::NodeChanges::default();
    // A service's own status writes do not reconcile it again (see spec_changes).
    let spec_changes = super::spec_changes::SpecChanges::default();
    let service_events = service_events
        .filter(move |svc| futures::future::ready(spec_changes.changed(svc.as_ref())));
    // Nor does a cluster's status (its counts change with every task, up to once a second):
    // a service reads only its cluster's spec and existence.
    let cluster_changes = super::spec_changes::SpecChanges::default();
    let cluster_events =
        cluster_events.filter(move |c| futures::future::ready(cluster_changes.changed(c.as_ref())));
    Controller::for_shared_stream(service_events, ctx.stores.services.clone())
        // A burst of task events (ten tasks turning RUNNING within a second) is one pass,
        // and so one status write, not ten.
        .with_config(
            kube::runtime::controller::Config::default()
                .debounce(DEBOUNCE)
                .concurrency(CONCURRENT_PASSES),
        )
        .reconcile_on(
            task_events.filter_map(|t| {
                futures::future::ready(super::pod_index::owner_of_kind::<Service>(&t))
            }),
        )
        // An instance joining, leaving, draining or freeing room concerns its cluster's
        // services (DAEMON ones follow instances; others may be waiting for room). A Node no
        // cluster claims any more concerns every DAEMON service.
        .watches_shared_stream(node_events, move |node: Arc<Node>| {
            if !node_changes.changed(&node) {
                return Vec::new();
            }
            let claim = node.annotations().get(CLAIM_ANNOTATION).cloned();
            services
                .state()
                .iter()
                .filter(|svc| match &claim {
                    Some(key) => {
                        format!(
                            "{}/{}",
                            svc.namespace().unwrap_or_default(),
                            cluster_name(svc.spec.cluster.as_deref())
                        ) == *key
                    }
                    None => svc.spec.scheduling_strategy == Some(SchedulingStrategy::Daemon),
                })
                .map(|svc| ObjectRef::from(svc.as_ref()))
                .collect::<Vec<_>>()
        })
        // A cluster created, changed or deleted concerns its services (capacity providers,
        // a service that was refused for want of it).
        .watches_shared_stream(cluster_events, move |c: Arc<EcsCluster>| {
            let ns = c.namespace().unwrap_or_default();
            let name = c.name_any();
            of_cluster
                .state()
                .iter()
                .filter(|svc| {
                    svc.namespace().as_deref() == Some(ns.as_str())
                        && cluster_name(svc.spec.cluster.as_deref()) == name
                })
                .map(|svc| ObjectRef::from(svc.as_ref()))
                .collect::<Vec<_>>()
        })
        // A family's new revision (or its status) concerns the services that run the family.
        .watches_shared_stream(
            taskdef_events,
            move |td: Arc<crate::api::TaskDefinition>| {
                let ns = td.namespace().unwrap_or_default();
                let family = super::taskdef::family_of(&td);
                of_family
                    .state()
                    .iter()
                    .filter(|svc| svc.namespace().as_deref() == Some(ns.as_str()))
                    .filter(|svc| {
                        super::taskdef::TaskDefinitionRef::parse(&svc.spec.task_definition)
                            .is_ok_and(|r| r.family == family)
                    })
                    .map(|svc| ObjectRef::from(svc.as_ref()))
                    .collect::<Vec<_>>()
            },
        )
        .shutdown_on_signal()
        .run(reconcile, error_policy, ctx)
        .for_each(|res| async move {
            match res {
                Err(kube::runtime::controller::Error::ObjectNotFound(_)) | Ok(_) => {}
                Err(e) => warn!(error = %e, "service reconcile failed"),
            }
        })
        .await;
}

fn error_policy(_s: Arc<Service>, err: &Error, ctx: Arc<Context>) -> Action {
    ctx.metrics.failed(CONTROLLER, err.kind());
    Action::requeue(Duration::from_secs(5))
}

fn now() -> (i64, String) {
    let t = Timestamp::now();
    (t.as_second(), t.to_string())
}

/// The service's task pods (owned by this incarnation of it).
fn tasks_of(ctx: &Context, svc: &Service) -> Vec<Arc<TaskPod>> {
    ctx.stores.tasks_owned_by(&svc.uid().unwrap_or_default())
}

async fn reconcile(svc: Arc<Service>, ctx: Arc<Context>) -> Result<Action> {
    let _timer = ctx.metrics.reconciled(CONTROLLER);
    if svc.meta().deletion_timestamp.is_some() {
        ctx.statuses
            .forget(svc.uid().as_deref().unwrap_or_default());
        // Its tasks are owned: the garbage collector stops them.
        return Ok(Action::await_change());
    }
    let ns = svc.namespace().unwrap_or_default();
    let name = svc.name_any();
    let key = format!("{ns}/Service/{name}");
    if !ctx.expectations_met(&key, &ns) {
        ctx.settle_uncertain(&key, &ns).await;
        return Ok(Action::requeue(Duration::from_millis(500)));
    }
    let cluster = cluster_name(svc.spec.cluster.as_deref()).to_string();
    let old: ServiceStatus = ctx.statuses.current(&svc.metadata, svc.status.as_ref());
    let generation = svc.metadata.generation;

    let daemon = svc.spec.scheduling_strategy == Some(SchedulingStrategy::Daemon);
    let cluster_object = ctx.stores.cluster(&ns, &cluster);
    let running: Vec<String> = old
        .deployments
        .iter()
        .map(|d| d.task_definition.clone())
        .collect();
    let ask = preflight::Ask {
        cluster: cluster_object.as_deref(),
        task_definition: &svc.spec.task_definition,
        already_running: &running,
        launch_type: svc.spec.launch_type,
        capacity_provider_strategy: &svc.spec.capacity_provider_strategy,
        daemon,
        kind: TaskKind::Service,
        strategies: &svc.spec.placement_strategy,
        constraints: &svc.spec.placement_constraints,
    };
    let preflight::Cleared {
        resolved,
        policy,
        launch_type,
        providers,
    } = match preflight::check(&ctx.stores, &ns, &ask) {
        Ok(c) => c,
        Err(r) => return refuse(&svc, &ctx, &old, r.reason(), r.message()).await,
    };

    let (now_s, now) = now();
    let grace = svc.spec.health_check_grace_period_seconds.unwrap_or(0) as i64;
    let pods = tasks_of(&ctx, &svc);
    let instances = {
        let mut ledger = ctx.ledger.lock().await;
        launch::instances(&ctx.stores, &mut ledger, &ns, &cluster)
    };
    let draining: BTreeSet<&str> = instances
        .iter()
        .filter(|i| i.draining)
        .map(|i| &*i.id)
        .collect();
    let tasks: Vec<ObservedTask> = pods
        .iter()
        .map(|p| {
            let mut t = deploy::observe(p, now_s, grace);
            t.draining = t.node.as_deref().is_some_and(|n| draining.contains(n));
            t
        })
        .collect();
    // The instances a task of this service may use: a DAEMON runs one on each.
    let usable: Vec<usize> = crate::placement::daemon_instances(&instances, &policy);
    let eligible = if daemon {
        usable
            .iter()
            .map(|&i| instances[i].id.to_string())
            .collect::<Vec<_>>()
    } else {
        Vec::new()
    };
    let Settings {
        bounds,
        mut strategy,
        breaker,
    } = settings(&svc.spec, eligible.len());
    // LINEAR and CANARY move traffic by an HTTPRoute's weights: without one, all at once.
    let route = super::traffic::route_target(&svc.spec.load_balancers);
    let mut no_route = false;
    if let Strategy::BlueGreen { shift, .. } = &mut strategy
        && *shift != deploy::TrafficShift::AllAtOnce
    {
        let found = match &route {
            Some(t) => super::traffic::route_exists(&ctx.client, &ns, t).await,
            None => false,
        };
        if !found {
            *shift = deploy::TrafficShift::AllAtOnce;
            no_route = true;
        }
    }
    let desired = bounds.desired;
    let counted: BTreeSet<String> = old
        .stopped_tasks
        .iter()
        .map(|t| t.task_id.clone())
        .collect();
    let seed = Timestamp::now().as_nanosecond() as u64;
    let new_id = deployment_id(seed);
    // AZ rebalancing (EC2 REPLICA services), and whether one is under way.
    // ECS rebalances services whose first placement strategy spreads over zones.
    let rebalancing = svc.spec.availability_zone_rebalancing != Some(EnabledDisabled::Disabled)
        && !daemon
        && launch_type != LaunchType::Fargate
        && policy.strategies.first()
            == Some(&crate::placement::Strategy::spread_availability_zone());
    let under_way = rebalancing && old.az_rebalancing_in_progress && old.deployments.len() <= 1;
    let force_token = svc
        .annotations()
        .get(crate::api::service::FORCE_NEW_DEPLOYMENT_ANNOTATION)
        .cloned();
    let force_new = force_token.is_some() && force_token != old.forced_deployment;
    // Deployment alarms: the listed alerts firing in Alertmanager, read while a deployment
    // rolls out (an unreachable Alertmanager is logged and watched again next pass).
    let alarm_config = svc
        .spec
        .deployment_configuration
        .as_ref()
        .and_then(|c| c.alarms.as_ref())
        .filter(|a| a.enable && !a.alarm_names.is_empty());
    let rolling_out = old
        .deployments
        .first()
        .is_none_or(|d| d.rollout_state == Some(deploy::RolloutState::InProgress));
    let alarm_watch = match (alarm_config, &ctx.alertmanager) {
        (Some(a), Some(am)) => {
            let firing = if rolling_out {
                am.firing().await.unwrap_or_else(|e| {
                    warn!(service = %name, error = %e, "could not read the deployment alarms");
                    Vec::new()
                })
            } else {
                Vec::new()
            };
            Some((a.alarm_names.clone(), firing, a.rollback))
        }
        _ => None,
    };
    // Lifecycle hooks (blue/green): what the PRIMARY's open hook runs answered.
    let hook_config: &[crate::api::service::DeploymentLifecycleHook] = svc
        .spec
        .deployment_configuration
        .as_ref()
        .map_or(&[], |c| c.lifecycle_hooks.as_slice());
    let history_facts = deploy::history::Facts {
        namespace: &ns,
        service: &name,
        cluster: &cluster,
        spec: &svc.spec,
    };
    let hook_outcomes = super::lifecycle_hooks::outcomes(
        &svc,
        &history_facts,
        old.deployments.first(),
        hook_config,
    )
    .await;
    let stop_request = svc
        .annotations()
        .get(crate::api::service::STOP_DEPLOYMENT_ANNOTATION)
        .and_then(|v| crate::api::service::parse_stop_request(v));
    let state = ServiceSnapshot {
        service: &name,
        bounds,
        strategy,
        breaker,
        target: &resolved.name(),
        trigger: old.requested_task_definition.as_deref(),
        deployments: &old.deployments,
        tasks: &tasks,
        counted: &counted,
        production: old.production_deployment.as_deref(),
        now: now_s,
        now_rfc3339: &now,
        new_deployment_id: &new_id,
        rebalancing: under_way,
        force_new,
        stop_deployment: stop_request.as_ref().map(|(id, how)| (id.as_str(), *how)),
        alarms: alarm_watch
            .as_ref()
            .map(|(names, firing, rollback)| AlarmWatch {
                names,
                firing,
                rollback: *rollback,
            }),
        hooks: hook_config,
        hook_outcomes: &hook_outcomes,
    };
    // Borrowed: a pass reads every instance of its cluster, and must not copy their names.
    let zone_of: HashMap<&str, &str> = instances
        .iter()
        .filter_map(|i| {
            Some((
                &*i.id,
                i.attributes
                    .get(crate::placement::engine::AVAILABILITY_ZONE_ATTRIBUTE)?
                    .as_str(),
            ))
        })
        .collect();
    let mut rebalance_stops: Vec<(String, String)> = Vec::new();
    let mut plan = if daemon {
        deploy::daemon::plan(&state, &eligible)
    } else {
        let group = service_group(&name);
        let strategies = policy.strategies.clone();
        let provider_of = providers_of(&pods);
        let task_zone = |t: &ObservedTask| {
            t.node
                .as_deref()
                .and_then(|n| zone_of.get(n))
                .map(|z| z.to_string())
        };
        let stops = &mut rebalance_stops;
        deploy::replica::plan(&state, &mut |candidates, n| {
            // A rebalance stops its excess task in the fullest zone.
            let zoned: Vec<&ObservedTask> = if under_way {
                rebalance::in_fullest_zones(candidates, |t| task_zone(t))
            } else {
                candidates.to_vec()
            };
            let picked = match &providers {
                Some(p) => {
                    choose_to_stop_by_provider(&p.shares, &provider_of, &zoned, n, |c, k| {
                        choose_to_stop(&instances, &strategies, &group, c, k, seed)
                    })
                }
                None => choose_to_stop(&instances, &strategies, &group, &zoned, n, seed),
            };
            if under_way {
                for name in &picked {
                    if let Some(t) = candidates.iter().find(|t| &t.name == name) {
                        stops.push((name.clone(), task_zone(t).unwrap_or_default()));
                    }
                }
            }
            picked
        })
    };
    for (task, zone) in &rebalance_stops {
        plan.events.push(EcsEvent::normal(rebalance::stopped(
            &name,
            zone,
            [task.as_str()],
        )));
    }
    let rebalance = if rebalancing {
        let primary = plan
            .deployments
            .first()
            .map(|d| deployment_label(&d.id).to_string());
        let stopping: BTreeSet<&str> = plan.stop.iter().map(|s| s.name.as_str()).collect();
        let mut zones = rebalance::ZoneTasks::new();
        for z in usable
            .iter()
            .filter_map(|&i| zone_of.get(&*instances[i].id))
        {
            if !zones.contains_key(*z) {
                zones.insert(z.to_string(), 0);
            }
        }
        for t in tasks.iter().filter(|t| {
            t.is_live()
                && Some(&t.deployment) == primary.as_ref()
                && !stopping.contains(t.name.as_str())
        }) {
            if let Some(z) = t.node.as_deref().and_then(|n| zone_of.get(n))
                && let Some(c) = zones.get_mut(*z)
            {
                *c += 1;
            }
        }
        let places = tasks.iter().filter(|t| t.holds_place()).count() as i32;
        rebalance::decide(&rebalance::Snapshot {
            service: &name,
            enabled: true,
            in_progress: old.az_rebalancing_in_progress,
            steady: plan.steady && plan.launch.is_empty() && plan.stop.is_empty(),
            zones: &zones,
            room: places < bounds.max_total(),
        })
    } else {
        rebalance::Decision::default()
    };
    plan.events.extend(rebalance.events.iter().cloned());
    // The task that moves: one more for the PRIMARY deployment, in the emptiest zone.
    let rebalance_zone_nodes: Option<BTreeSet<String>> = rebalance.start_in.as_ref().map(|zone| {
        usable
            .iter()
            .map(|&i| &*instances[i].id)
            .filter(|id| zone_of.get(id) == Some(&zone.as_str()))
            .map(str::to_string)
            .collect()
    });
    if let (Some(_), Some(primary)) = (&rebalance.start_in, plan.deployments.first()) {
        plan.launch.push(deploy::Launch {
            deployment: primary.id.clone(),
            task_definition: primary.task_definition.clone(),
            count: 1,
            instances: Vec::new(),
        });
        plan.steady = false;
    }

    // Version consistency: a deployment's images resolve once, at its start, before any of
    // its tasks exists (a rollback carries the digests of the deployment it returns to).
    let kubecs_registry = ctx
        .registry_pull
        .as_ref()
        .map(|pull| image_digests::KubecsRegistry {
            pull,
            url: &pull.url,
        });
    for d in plan
        .deployments
        .iter_mut()
        .filter(|d| d.container_images.is_empty())
    {
        let spec = if d.task_definition == resolved.name() {
            Some(resolved.spec.clone())
        } else {
            launch::resolve(&ctx.stores, &ns, &d.task_definition)
                .ok()
                .map(|r| r.spec)
        };
        if no_route && d.rollback_of.is_none() {
            plan.events.push(EcsEvent::warning(format!(
                "(service {name}) (deployment {}) traffic weights need a Gateway API HTTPRoute named by loadBalancers[].advancedConfiguration.productionListenerRule: production traffic moves all at once, as with BLUE_GREEN.",
                d.id
            )));
        }
        if alarm_config.is_some() && ctx.alertmanager.is_none() && d.rollback_of.is_none() {
            plan.events.push(EcsEvent::warning(format!(
                "(service {name}) (deployment {}) deployment alarms are not watched: the operator has no --alertmanager-url.",
                d.id
            )));
        }
        let Some(spec) = spec else { continue };
        let (images, unresolved) = image_digests::resolve_task_definition(
            &ctx.client,
            &ns,
            &spec,
            kubecs_registry.as_ref(),
        )
        .await;
        for u in &unresolved {
            plan.events
                .push(EcsEvent::warning(image_digests::unresolved_event(&name, u)));
        }
        d.container_images = images;
    }

    // 1. Record deployments (and counted failures) before any pod names them.
    let mut status = ServiceStatus {
        service_arn: Some(arn::service(&ns, &cluster, &name)),
        cluster_arn: Some(arn::cluster(&ns, &cluster)),
        status: Some(ServiceState::Active),
        task_definition: plan.deployments.first().map(|d| d.task_definition.clone()),
        requested_task_definition: Some(plan.trigger.clone()),
        forced_deployment: force_token.or(old.forced_deployment.clone()),
        production_deployment: plan.production.clone(),
        desired_count: desired,
        selector: Some(format!("{}={name}", labels::SERVICE)),
        observed_generation: generation,
        ..old.clone()
    };
    status.deployments = plan.deployments.clone();
    status.az_rebalancing_in_progress = rebalance.in_progress;
    status.availability_zone_rebalancing = Some(if rebalancing {
        EnabledDisabled::Enabled
    } else {
        EnabledDisabled::Disabled
    });
    record_stops(&mut status, &plan, &tasks, &now);
    let mut messages = plan.events.clone();
    if must_record_first(&old, &plan) {
        push_events(&mut status, &messages, &now);
        for m in messages.drain(..) {
            publish(&ctx, &svc, &m).await;
        }
        ctx.write_status(svc.as_ref(), svc.status.as_ref(), &status)
            .await?;
    }

    // 2. Stop, then start. Whatever was written (or may have been) is expected before an
    // error returns: the next pass must not redo it from a store that has not seen it yet
    // (the API server restarting mid-pass).
    let mut writes = super::Expectation::default();
    for s in &plan.stop {
        let uid = tasks
            .iter()
            .find(|t| t.name == s.name)
            .map(|t| t.uid.clone())
            .unwrap_or_default();
        match launch::stop(&ctx, &ns, &s.name, &uid).await {
            Ok(()) => writes.deleted.push(s.name.clone()),
            Err(e) => {
                if launch::may_have_happened(&e) {
                    writes.deleted.push(s.name.clone());
                }
                ctx.expect(&key, writes);
                return Err(e.into());
            }
        }
    }
    let mut created = Vec::new();
    let mut placement_problem = None;
    let started: std::result::Result<(), kube::Error> = async {
        for l in &plan.launch {
            let dep_label = deployment_label(&l.deployment).to_string();
            let revision = if l.task_definition == resolved.name() {
                resolved.clone()
            } else {
                // A rollback: the deployment runs an older revision.
                match launch::resolve(&ctx.stores, &ns, &l.task_definition) {
                    Ok(r) => r,
                    Err(msg) => {
                        placement_problem = Some(msg);
                        continue;
                    }
                }
            };
            let options = launch::render_options(&ctx, &ns, &revision.spec).await?;
            let pod = match task_pod(&svc, &revision, &dep_label, launch_type, &options) {
                Ok(mut p) => {
                    if let Some(d) = plan.deployments.iter().find(|d| d.id == l.deployment) {
                        image_digests::pin_pod(&mut p, &d.container_images);
                    }
                    p
                }
                Err(msg) => {
                    placement_problem = Some(msg);
                    continue;
                }
            };
            let fixed = daemon.then_some(l.instances.as_slice());
            let group = service_group(&name);
            // With a capacity provider strategy, the deployment's new tasks are split among the
            // providers (counting the tasks it runs already), each batch on its provider.
            let batches: Vec<(Option<String>, usize)> = match &providers {
                Some(p) => {
                    let running = deployment_providers(&pods, &dep_label);
                    p.groups(&running, l.count)
                        .into_iter()
                        .map(|(provider, k)| (Some(provider), k))
                        .collect()
                }
                None => vec![(None, l.count)],
            };
            let mut names = Vec::new();
            for (provider, count) in batches {
                let kind = provider
                    .as_ref()
                    .and_then(|pr| providers.as_ref().and_then(|p| p.kinds.get(pr)));
                let mut pod = pod.clone();
                if let Some(pr) = &provider {
                    pod.labels_mut()
                        .insert(labels::CAPACITY_PROVIDER.into(), pr.clone());
                }
                let how = launch::Placement {
                    cluster: &cluster,
                    group: &group,
                    count,
                    policy: &policy,
                    launch_type: match kind {
                        Some(launch::ProviderKind::Fargate) => LaunchType::Fargate,
                        Some(launch::ProviderKind::Instances(_)) => LaunchType::Ec2,
                        None => launch_type,
                    },
                    fixed_nodes: fixed,
                    only_on: match kind {
                        Some(launch::ProviderKind::Instances(nodes)) => Some(nodes),
                        _ => None,
                    },
                };
                let how = match (&rebalance.start_in, &rebalance_zone_nodes) {
                    (Some(_), Some(nodes)) if how.only_on.is_none() => launch::Placement {
                        only_on: Some(nodes),
                        ..how
                    },
                    _ => how,
                };
                let launched = launch::place_and_create(&ctx, &pod, &how).await;
                writes.uncertain.extend(launched.uncertain);
                created.extend(launched.created.iter().cloned());
                if let Some(e) = launched.error {
                    return Err(e);
                }
                let (made, failure) = (launched.created, launched.outcome);
                if let Some(zone) = &rebalance.start_in {
                    if made.is_empty() {
                        let msg = rebalance::unable_to_place(&name, zone);
                        if status.events.first().map(|e| &e.message) != Some(&msg) {
                            messages.push(EcsEvent::warning(msg));
                        }
                    } else {
                        messages.push(EcsEvent::normal(rebalance::started(
                            &name,
                            zone,
                            made.iter().map(String::as_str),
                        )));
                    }
                    continue;
                }
                names.extend(made);
                if let Some(f) = failure.and_then(|o| o.failure) {
                    let msg = f.service_event(&name);
                    if status.events.first().map(|e| &e.message) != Some(&msg) {
                        messages.push(EcsEvent::warning(msg.clone()));
                    }
                    placement_problem = Some(msg);
                }
            }
            if !names.is_empty() {
                messages.push(EcsEvent::normal(format!(
                    "(service {name}) has started {} tasks: {}.",
                    names.len(),
                    deploy::task_list(names.iter().map(String::as_str))
                )));
            }
        }
        Ok(())
    }
    .await;
    let stopped = writes.deleted.len();
    writes.created = created.clone();
    ctx.expect(&key, writes);
    started?;
    if plan.steady
        && status.events.first().map(|e| e.message.clone()) != Some(steady_message(&name))
    {
        messages.push(EcsEvent::normal(steady_message(&name)));
    }
    for m in &messages {
        publish(&ctx, &svc, m).await;
    }
    push_events(&mut status, &messages, &now);

    // 3. Load balancers: core Services over the healthy tasks; LINEAR and CANARY weights.
    sync_load_balancers(&ctx, &svc, &plan).await?;
    if let (Some(t), Strategy::BlueGreen { shift, .. }) = (&route, strategy)
        && shift != deploy::TrafficShift::AllAtOnce
    {
        let green = plan
            .deployments
            .first()
            .filter(|d| d.rollout_state == Some(deploy::RolloutState::InProgress))
            .filter(|d| plan.production.as_deref() != Some(d.id.as_str()))
            .and_then(|d| d.production_traffic_percent)
            .unwrap_or(0.0);
        super::traffic::set_weights(&ctx.client, &ns, t, green).await?;
    }

    // 4. Counts and conditions.
    let running = tasks
        .iter()
        .filter(|t| t.is_live() && t.last_status == deploy::LastStatus::Running)
        .count() as i32;
    let live = tasks.iter().filter(|t| t.is_live()).count() as i32;
    status.running_count = running;
    status.pending_count = (live - running).max(0) + created.len() as i32;
    let conditions = conditions(
        &name,
        &plan,
        running,
        desired,
        placement_problem,
        generation,
    );
    status.conditions = merge(&old.conditions, conditions);
    ctx.write_status(svc.as_ref(), svc.status.as_ref(), &status)
        .await?;

    // 5. The deployment history, from what status now holds.
    let records = deploy::history::decide(&history_facts, &status.deployments);
    super::service_deployments::sync(&ctx.client, &ctx.deployment_records, &svc, records).await;
    if !created.is_empty() || stopped > 0 {
        let deployment = plan.deployments.first().map(|d| d.id.as_str());
        info!(service = %name, ?deployment, started = created.len(), stopped, az_rebalancing = rebalance.in_progress, "tasks started and stopped");
    }
    Ok(if plan.steady {
        Action::requeue(Duration::from_secs(60))
    } else {
        // Seconds are whole: a task turns stable within the second after `stable_in`.
        let poll = Duration::from_secs(3);
        let stable = plan
            .stable_in
            .map(|s| Duration::from_millis(s as u64 * 1000 + 100));
        Action::requeue(stable.map_or(poll, |s| s.min(poll)))
    })
}

/// What a Service spec asks of the planner, defaults applied (ECS's: 100/200 percent, or
/// 0/100 for DAEMON). A DAEMON service's desired count is the number of instances it covers.
#[derive(Clone, Copy, Debug, PartialEq)]
struct Settings {
    bounds: Bounds,
    strategy: Strategy,
    breaker: Option<Breaker>,
}

fn settings(spec: &crate::api::ServiceSpec, daemon_instances: usize) -> Settings {
    let config = spec.deployment_configuration.clone().unwrap_or_default();
    let daemon = spec.scheduling_strategy == Some(SchedulingStrategy::Daemon);
    let desired = if daemon {
        daemon_instances as i32
    } else {
        spec.desired_count.unwrap_or(0)
    };
    let bounds = Bounds {
        desired,
        minimum_healthy_percent: config.minimum_healthy_percent.unwrap_or(if daemon {
            0
        } else {
            100
        }),
        maximum_percent: config
            .maximum_percent
            .unwrap_or(if daemon { 100 } else { 200 }),
    };
    let strategy = match config.strategy {
        Some(
            kind @ (DeploymentStrategy::BlueGreen
            | DeploymentStrategy::Linear
            | DeploymentStrategy::Canary),
        ) => Strategy::BlueGreen {
            bake_seconds: config.bake_time_in_minutes.unwrap_or(0) as i64 * 60,
            shift: traffic_shift(kind, &config),
        },
        _ => Strategy::Rolling,
    };
    let breaker = config
        .deployment_circuit_breaker
        .as_ref()
        .filter(|b| b.enable)
        .map(|b| {
            let t = b.threshold_configuration.as_ref();
            let value = t.and_then(|t| t.value);
            let (count, percent) = match t.and_then(|t| t.type_) {
                Some(ThresholdType::Percent) => (None, value),
                _ => (value, None),
            };
            Breaker {
                rollback: b.rollback,
                threshold: breaker_threshold(desired, count, percent),
                reset_on_healthy_task: b.reset_on_healthy_task.unwrap_or(true),
            }
        });
    Settings {
        bounds,
        strategy,
        breaker,
    }
}

/// Crash safety: a new deployment is written to status before any pod names it, and a
/// counted failure before its task is stopped, so a restart neither loses the deployment its
/// pods point to nor counts the failure twice.
fn must_record_first(old: &ServiceStatus, plan: &Plan) -> bool {
    let new_deployment = plan
        .deployments
        .iter()
        .any(|d| !old.deployments.iter().any(|o| o.id == d.id));
    new_deployment || plan.stop.iter().any(|s| s.counted_failure)
}

/// How production traffic moves, ECS's defaults applied (LINEAR 10% every 6 minutes, CANARY
/// 5% for 10 minutes).
fn traffic_shift(
    kind: DeploymentStrategy,
    config: &crate::api::service::DeploymentConfiguration,
) -> deploy::TrafficShift {
    match kind {
        DeploymentStrategy::Linear => {
            let c = config.linear_configuration.clone().unwrap_or_default();
            deploy::TrafficShift::Linear {
                step_percent: c.step_percent.unwrap_or(10.0),
                step_bake_seconds: c.step_bake_time_in_minutes.unwrap_or(6) as i64 * 60,
            }
        }
        DeploymentStrategy::Canary => {
            let c = config.canary_configuration.clone().unwrap_or_default();
            deploy::TrafficShift::Canary {
                canary_percent: c.canary_percent.unwrap_or(5.0),
                canary_bake_seconds: c.canary_bake_time_in_minutes.unwrap_or(10) as i64 * 60,
            }
        }
        _ => deploy::TrafficShift::AllAtOnce,
    }
}

/// Ready (steady state), Progressing (the PRIMARY deployment rolls out) and Degraded (it
/// failed, or tasks cannot be placed) after a pass.
fn conditions(
    name: &str,
    plan: &Plan,
    running: i32,
    desired: i32,
    placement_problem: Option<String>,
    generation: Option<i64>,
) -> Vec<k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition> {
    let primary = plan.deployments.first();
    let failed = primary.and_then(|d| d.rollout_state) == Some(RolloutState::Failed);
    let progressing = primary.and_then(|d| d.rollout_state) == Some(RolloutState::InProgress);
    vec![
        condition(
            cond::READY,
            plan.steady,
            if plan.steady {
                "SteadyState"
            } else {
                "NotSteady"
            },
            if plan.steady {
                steady_message(name)
            } else {
                format!("{running} of {desired} tasks running.")
            },
            generation,
        ),
        condition(
            cond::PROGRESSING,
            progressing,
            if progressing {
                "RolloutInProgress"
            } else {
                "RolloutDone"
            },
            primary
                .and_then(|d| d.rollout_state_reason.clone())
                .unwrap_or_default(),
            generation,
        ),
        condition(
            cond::DEGRADED,
            failed || placement_problem.is_some(),
            if failed {
                "DeploymentFailed"
            } else if placement_problem.is_some() {
                "UnableToPlaceTask"
            } else {
                "AsExpected"
            },
            placement_problem
                .or_else(|| {
                    failed
                        .then(|| primary.and_then(|d| d.rollout_state_reason.clone()))
                        .flatten()
                })
                .unwrap_or_default(),
            generation,
        ),
    ]
}

/// The capacity provider of each task (by name), from its pod's label.
fn providers_of(pods: &[Arc<TaskPod>]) -> BTreeMap<String, String> {
    pods.iter()
        .filter_map(|p| Some((p.name.clone(), p.capacity_provider.clone()?)))
        .collect()
}

/// How many live tasks of a deployment (its label value) each capacity provider runs.
fn deployment_providers(pods: &[Arc<TaskPod>], deployment: &str) -> BTreeMap<String, u64> {
    let mut m = BTreeMap::new();
    for p in pods {
        if !p.deleting
            && p.deployment.as_deref() == Some(deployment)
            && let Some(provider) = &p.capacity_provider
        {
            *m.entry(provider.clone()).or_default() += 1;
        }
    }
    m
}

/// Scale-in under a capacity provider strategy: one task at a time, from the provider
/// furthest above its share of what remains; `pick` (the placement engine's scale-in rules)
/// chooses the task within that provider.
fn choose_to_stop_by_provider(
    shares: &[crate::placement::capacity::Share],
    provider_of: &BTreeMap<String, String>,
    candidates: &[&ObservedTask],
    n: usize,
    mut pick: impl FnMut(&[&ObservedTask], usize) -> Vec<String>,
) -> Vec<String> {
    let mut left: Vec<&ObservedTask> = candidates.to_vec();
    let mut out = Vec::new();
    while out.len() < n && !left.is_empty() {
        let mut running: BTreeMap<String, u64> = BTreeMap::new();
        for t in &left {
            let p = provider_of.get(&t.name).cloned().unwrap_or_default();
            *running.entry(p).or_default() += 1;
        }
        let from = crate::placement::capacity::to_shrink(shares, &running).unwrap_or_default();
        let pool: Vec<&ObservedTask> = left
            .iter()
            .copied()
            .filter(|t| provider_of.get(&t.name).cloned().unwrap_or_default() == from)
            .collect();
        let chosen = pick(if pool.is_empty() { &left } else { &pool }, 1);
        let Some(c) = chosen.into_iter().next() else {
            break;
        };
        left.retain(|t| t.name != c);
        out.push(c);
    }
    out
}

/// Picks `n` tasks to stop with the placement engine's scale-in rules.
fn choose_to_stop(
    instances: &[crate::placement::InstanceState],
    strategies: &[crate::placement::Strategy],
    group: &str,
    candidates: &[&ObservedTask],
    n: usize,
    seed: u64,
) -> Vec<String> {
    let by_uid: BTreeMap<&str, &str> = candidates
        .iter()
        .map(|t| (t.uid.as_str(), t.name.as_str()))
        .collect();
    let req = ScaleInRequest {
        group: group.to_string(),
        count: n,
        eligible: Some(by_uid.keys().map(|u| u.to_string()).collect()),
        seed,
    };
    let mut out: Vec<String> = select_tasks_to_stop(instances, strategies, &req)
        .into_iter()
        .filter_map(|r| by_uid.get(&*instances[r.instance].tasks[r.task].id))
        .map(|n| n.to_string())
        .collect();
    // Tasks the engine cannot see (not bound yet): any order.
    for t in candidates {
        if out.len() >= n {
            break;
        }
        if !out.contains(&t.name) {
            out.push(t.name.clone());
        }
    }
    out.truncate(n);
    out
}

fn task_pod(
    svc: &Service,
    revision: &Resolved,
    deployment: &str,
    launch_type: LaunchType,
    options: &crate::taskdef::RenderOptions,
) -> Result<Pod, String> {
    let ns = svc.namespace().unwrap_or_default();
    let name = svc.name_any();
    let labels: BTreeMap<String, String> = [
        (labels::SERVICE.to_string(), name.clone()),
        (labels::DEPLOYMENT.to_string(), deployment.to_string()),
    ]
    .into();
    launch::render(&launch::PodToRender {
        namespace: &ns,
        cluster: cluster_name(svc.spec.cluster.as_deref()),
        resolved: revision,
        spec: &revision.spec,
        generate_name: Some(format!("{}-", crate::taskdef::names::dns_label(&name))),
        name: None,
        labels,
        owner: svc.controller_owner_ref(&()).expect("stored object"),
        launch_type,
        options,
    })
}

/// Records the stopped tasks (newest first), for the UI and so a retried stop of a counted
/// failure is not counted again.
fn record_stops(status: &mut ServiceStatus, plan: &Plan, tasks: &[ObservedTask], now: &str) {
    for s in &plan.stop {
        if status.stopped_tasks.iter().any(|t| t.task_id == s.name) {
            continue;
        }
        let exit_codes = tasks
            .iter()
            .find(|t| t.name == s.name)
            .map(|t| {
                t.containers
                    .iter()
                    .filter_map(|c| c.exit_code.map(|e| format!("{}={e}", c.name)))
                    .collect()
            })
            .unwrap_or_default();
        status.stopped_tasks.insert(
            0,
            StoppedTask {
                task_id: s.name.clone(),
                // The deployment's ECS id (`ecs-svc/N`), as status.deployments names it; the
                // pod label holds only N.
                deployment_id: (!s.deployment.is_empty())
                    .then(|| format!("ecs-svc/{}", s.deployment)),
                stop_code: s.code,
                stopped_reason: s.reason.clone(),
                exit_codes,
                stopped_at: now.into(),
            },
        );
    }
    status.stopped_tasks.truncate(MAX_STOPPED);
}

fn push_events(status: &mut ServiceStatus, events: &[EcsEvent], now: &str) {
    for e in events {
        let id = format!(
            "{:x}",
            Timestamp::now().as_nanosecond() as u64 ^ fnv(&e.message)
        );
        status.events.insert(
            0,
            ServiceEvent {
                id,
                created_at: now.into(),
                message: e.message.clone(),
            },
        );
    }
    status.events.truncate(MAX_EVENTS);
}

/// The Kubernetes Event `action` of a service event. The event recorder folds events of one
/// object with the same type, reason and action into a series and keeps the first note, so
/// each distinct message gets an action of its own (the same message repeated is one series).
fn event_action(message: &str) -> String {
    format!("Schedule-{:016x}", fnv(message))
}

fn fnv(s: &str) -> u64 {
    s.bytes().fold(0xcbf29ce484222325u64, |h, b| {
        (h ^ b as u64).wrapping_mul(0x100000001b3)
    })
}

async fn publish(ctx: &Context, svc: &Service, event: &EcsEvent) {
    let warning = event.severity == Severity::Warning;
    let message = &event.message;
    let ev = Event {
        type_: if warning {
            EventType::Warning
        } else {
            EventType::Normal
        },
        reason: if warning {
            "ServiceWarning"
        } else {
            "ServiceEvent"
        }
        .into(),
        note: Some(message.chars().take(1000).collect()),
        action: event_action(message),
        secondary: None,
    };
    if let Err(e) = ctx.recorder.publish(&ev, &svc.object_ref(&())).await {
        warn!(error = %e, "could not publish event");
    }
}

/// A failure before planning (cluster, task definition, placement configuration): status
/// says it in ECS's words, an event too, and the controller retries.
async fn refuse(
    svc: &Service,
    ctx: &Context,
    old: &ServiceStatus,
    reason: &str,
    message: String,
) -> Result<Action> {
    let mut status = old.clone();
    status.observed_generation = svc.metadata.generation;
    status.conditions = merge(
        &old.conditions,
        vec![
            condition(
                cond::READY,
                false,
                reason,
                message.clone(),
                svc.metadata.generation,
            ),
            condition(
                cond::DEGRADED,
                true,
                reason,
                message.clone(),
                svc.metadata.generation,
            ),
        ],
    );
    ctx.write_status(svc, svc.status.as_ref(), &status).await?;
    if old.conditions.iter().all(|c| c.message != message) {
        let ev = Event {
            type_: EventType::Warning,
            reason: reason.into(),
            action: event_action(&message),
            note: Some(message),
            secondary: None,
        };
        let _ = ctx.recorder.publish(&ev, &svc.object_ref(&())).await;
    }
    Ok(Action::requeue(Duration::from_secs(15)))
}

/// The target group name of an ELB target group ARN (`...:targetgroup/NAME/ID`), or the
/// value itself.
pub fn target_group_name(arn_or_name: &str) -> String {
    let name = arn_or_name
        .split_once(":targetgroup/")
        .map(|(_, rest)| rest.split('/').next().unwrap_or(rest))
        .unwrap_or(arn_or_name);
    crate::taskdef::names::dns_label(name)
}

/// A core Service standing for a target group: which deployment's tasks it selects (`None`:
/// all of the service's tasks) on which port.
#[derive(Clone, Debug, PartialEq, Eq)]
struct LbTarget {
    service: String,
    deployment: Option<String>,
    port: i32,
}

/// The target groups of `loadBalancers`: the production one selects the production
/// deployment (blue/green; all tasks otherwise); the alternate (test) one the newest.
fn lb_targets(lbs: &[crate::api::service::LoadBalancer], plan: &Plan) -> Vec<LbTarget> {
    let mut out = Vec::new();
    for lb in lbs {
        let Some(target) = lb
            .target_group_arn
            .as_deref()
            .or(lb.load_balancer_name.as_deref())
        else {
            continue;
        };
        let port = lb.container_port.unwrap_or(80);
        out.push(LbTarget {
            service: target_group_name(target),
            deployment: plan.production.clone(),
            port,
        });
        if let Some(alt) = lb
            .advanced_configuration
            .as_ref()
            .and_then(|a| a.alternate_target_group_arn.as_deref())
        {
            out.push(LbTarget {
                service: target_group_name(alt),
                deployment: plan.deployments.first().map(|d| d.id.clone()),
                port,
            });
        }
    }
    out
}

/// Each `loadBalancers` entry is a core Service over the service's tasks (endpoints hold
/// only ready, i.e. healthy, tasks). Blue/green: the production Service selects the
/// production deployment; the alternate (test) one selects the newest deployment.
async fn sync_load_balancers(ctx: &Context, svc: &Service, plan: &Plan) -> Result<()> {
    let ns = svc.namespace().unwrap_or_default();
    let name = svc.name_any();
    let api: Api<CoreService> = Api::namespaced(ctx.client.clone(), &ns);
    let owner = svc.controller_owner_ref(&()).expect("stored object");
    for LbTarget {
        service: svc_name,
        deployment,
        port,
    } in lb_targets(&svc.spec.load_balancers, plan)
    {
        let mut selector = json!({ labels::SERVICE: name });
        if let Some(d) = deployment {
            selector[labels::DEPLOYMENT] = json!(deployment_label(&d));
        }
        let body = json!({
            "apiVersion": "v1",
            "kind": "Service",
            "metadata": {
                "name": svc_name,
                "namespace": ns,
                "labels": { labels::SERVICE: name, labels::MANAGED_BY: labels::MANAGER },
                "ownerReferences": [owner],
            },
            "spec": {
                "selector": selector,
                "ports": [{ "name": "traffic", "port": port, "targetPort": port, "protocol": "TCP" }],
            },
        });
        api.patch(
            &svc_name,
            &PatchParams::apply(FIELD_MANAGER).force(),
            &Patch::Apply(&body),
        )
        .await?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::service::Deployment;
    use crate::api::states::StopCode;
    use crate::deploy::StopTask;

    fn spec(v: serde_json::Value) -> crate::api::ServiceSpec {
        serde_json::from_value(v).expect("a valid ServiceSpec")
    }

    fn deployment(id: &str, state: RolloutState, reason: &str) -> Deployment {
        Deployment {
            id: id.into(),
            rollout_state: Some(state),
            rollout_state_reason: Some(reason.into()),
            ..Default::default()
        }
    }

    #[test]
    fn settings_take_ecs_defaults() {
        let s = settings(
            &spec(json!({"taskDefinition": "web", "desiredCount": 4})),
            9,
        );
        assert_eq!(
            s.bounds,
            Bounds {
                desired: 4,
                minimum_healthy_percent: 100,
                maximum_percent: 200
            }
        );
        assert_eq!(s.strategy, Strategy::Rolling);
        assert_eq!(s.breaker, None);
    }

    #[test]
    fn a_daemon_wants_one_task_per_covered_instance_and_may_stop_them_all() {
        let s = settings(
            &spec(json!({"taskDefinition": "agent", "schedulingStrategy": "DAEMON"})),
            3,
        );
        assert_eq!(
            s.bounds,
            Bounds {
                desired: 3,
                minimum_healthy_percent: 0,
                maximum_percent: 100
            }
        );
    }

    #[test]
    fn blue_green_bakes_and_the_breaker_threshold_follows_its_type() {
        let s = settings(
            &spec(json!({
                "taskDefinition": "web", "desiredCount": 10,
                "deploymentConfiguration": {
                    "strategy": "BLUE_GREEN", "bakeTimeInMinutes": 2,
                    "minimumHealthyPercent": 50, "maximumPercent": 150,
                    "deploymentCircuitBreaker": {"enable": true, "rollback": true,
                        "thresholdConfiguration": {"type": "PERCENT", "value": 25}}
                }
            })),
            0,
        );
        assert_eq!(
            s.strategy,
            Strategy::BlueGreen {
                bake_seconds: 120,
                shift: deploy::TrafficShift::AllAtOnce
            }
        );
        assert_eq!(
            (s.bounds.minimum_healthy_percent, s.bounds.maximum_percent),
            (50, 150)
        );
        assert_eq!(
            s.breaker,
            Some(Breaker {
                rollback: true,
                threshold: 3,
                reset_on_healthy_task: true,
            })
        );
        // Disabled: no breaker whatever its threshold says.
        let off = settings(
            &spec(json!({"taskDefinition": "web", "desiredCount": 10,
                "deploymentConfiguration": {"deploymentCircuitBreaker": {"enable": false, "rollback": true}}})),
            0,
        );
        assert_eq!(off.breaker, None);
    }

    #[test]
    fn a_new_deployment_and_a_counted_failure_are_recorded_before_pods_change() {
        let old = ServiceStatus {
            deployments: vec![deployment("ecs-svc/1", RolloutState::Completed, "")],
            ..Default::default()
        };
        let same = Plan {
            deployments: old.deployments.clone(),
            ..Default::default()
        };
        assert!(!must_record_first(&old, &same));
        let new = Plan {
            deployments: vec![
                deployment("ecs-svc/2", RolloutState::InProgress, ""),
                deployment("ecs-svc/1", RolloutState::Completed, ""),
            ],
            ..Default::default()
        };
        assert!(must_record_first(&old, &new));
        let failure = Plan {
            stop: vec![StopTask {
                name: "web-abc".into(),
                deployment: "1".into(),
                code: StopCode::EssentialContainerExited,
                reason: "Essential container in task exited".into(),
                counted_failure: true,
            }],
            ..same.clone()
        };
        assert!(must_record_first(&old, &failure));
        let scale_in = Plan {
            stop: vec![StopTask {
                counted_failure: false,
                ..failure.stop[0].clone()
            }],
            ..same
        };
        assert!(!must_record_first(&old, &scale_in));
    }

    fn by_type<'a>(
        c: &'a [k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition],
        t: &str,
    ) -> (&'a str, &'a str, &'a str) {
        let c = c.iter().find(|c| c.type_ == t).expect("condition present");
        (c.status.as_str(), c.reason.as_str(), c.message.as_str())
    }

    #[test]
    fn conditions_say_steady_progressing_or_degraded() {
        let steady = Plan {
            deployments: vec![deployment("ecs-svc/1", RolloutState::Completed, "done")],
            steady: true,
            ..Default::default()
        };
        let c = conditions("web", &steady, 2, 2, None, Some(3));
        assert_eq!(
            by_type(&c, cond::READY),
            (
                "True",
                "SteadyState",
                "(service web) has reached a steady state."
            )
        );
        assert_eq!(by_type(&c, cond::DEGRADED), ("False", "AsExpected", ""));
        assert!(c.iter().all(|c| c.observed_generation == Some(3)));

        let rolling = Plan {
            deployments: vec![deployment("ecs-svc/2", RolloutState::InProgress, "rolling")],
            ..Default::default()
        };
        let c = conditions("web", &rolling, 1, 2, None, None);
        assert_eq!(
            by_type(&c, cond::READY),
            ("False", "NotSteady", "1 of 2 tasks running.")
        );
        assert_eq!(
            by_type(&c, cond::PROGRESSING),
            ("True", "RolloutInProgress", "rolling")
        );

        let failed = Plan {
            deployments: vec![deployment(
                "ecs-svc/2",
                RolloutState::Failed,
                "tasks failed to start",
            )],
            ..Default::default()
        };
        let c = conditions("web", &failed, 0, 2, None, None);
        assert_eq!(
            by_type(&c, cond::DEGRADED),
            ("True", "DeploymentFailed", "tasks failed to start")
        );
        let c = conditions("web", &rolling, 1, 2, Some("no room".into()), None);
        assert_eq!(
            by_type(&c, cond::DEGRADED),
            ("True", "UnableToPlaceTask", "no room")
        );
    }

    fn task(name: &str, exit: Option<i32>) -> ObservedTask {
        ObservedTask {
            name: name.into(),
            uid: format!("uid-{name}"),
            deployment: "42".into(),
            node: None,
            last_status: deploy::LastStatus::Stopped,
            health: deploy::Health::Unknown,
            health_checked: false,
            stopping: false,
            stop: None,
            created_at: 0,
            started_at: None,
            containers: vec![crate::api::task::ContainerInfo {
                name: "app".into(),
                exit_code: exit,
                ..Default::default()
            }],
            draining: false,
            protected_until: None,
        }
    }

    fn stop(name: &str) -> StopTask {
        StopTask {
            name: name.into(),
            deployment: "42".into(),
            code: StopCode::EssentialContainerExited,
            reason: "Essential container in task exited".into(),
            counted_failure: true,
        }
    }

    #[test]
    fn stopped_tasks_are_recorded_once_newest_first_with_exit_codes() {
        let plan = Plan {
            stop: vec![stop("web-a"), stop("web-b")],
            ..Default::default()
        };
        let tasks = [task("web-a", Some(3)), task("web-b", None)];
        let mut status = ServiceStatus::default();
        record_stops(&mut status, &plan, &tasks, "2026-12-01T10:00:00Z");
        let ids: Vec<&str> = status
            .stopped_tasks
            .iter()
            .map(|t| t.task_id.as_str())
            .collect();
        assert_eq!(ids, ["web-b", "web-a"]);
        let a = &status.stopped_tasks[1];
        assert_eq!(a.exit_codes, ["app=3"]);
        // ECS's deployment id, as status.deployments names it (the label holds the digits).
        assert_eq!(a.deployment_id.as_deref(), Some("ecs-svc/42"));
        // A retried stop is not recorded (nor counted) twice.
        record_stops(&mut status, &plan, &tasks, "2026-12-01T10:00:05Z");
        assert_eq!(status.stopped_tasks.len(), 2);
        // Bounded.
        let many = Plan {
            stop: (0..30).map(|i| stop(&format!("t{i}"))).collect(),
            ..Default::default()
        };
        record_stops(&mut status, &many, &[], "now");
        assert_eq!(status.stopped_tasks.len(), MAX_STOPPED);
        assert_eq!(status.stopped_tasks[0].task_id, "t29");
    }

    #[test]
    fn events_are_kept_newest_first_and_bounded() {
        let mut status = ServiceStatus::default();
        let events: Vec<EcsEvent> = (0..MAX_EVENTS + 5)
            .map(|i| EcsEvent::normal(format!("event {i}")))
            .collect();
        push_events(&mut status, &events, "now");
        assert_eq!(status.events.len(), MAX_EVENTS);
        assert_eq!(
            status.events[0].message,
            format!("event {}", MAX_EVENTS + 4)
        );
        let ids: BTreeSet<&str> = status.events.iter().map(|e| e.id.as_str()).collect();
        assert_eq!(ids.len(), MAX_EVENTS, "ids are distinct");
    }

    #[test]
    fn tasks_the_engine_cannot_see_are_stopped_when_it_picks_too_few() {
        // No instance knows these tasks (not bound yet): any of them go.
        let (a, b, c) = (task("a", None), task("b", None), task("c", None));
        let picked = choose_to_stop(&[], &[], "service:web", &[&a, &b, &c], 2, 1);
        assert_eq!(picked.len(), 2);
        assert!(picked.iter().all(|p| ["a", "b", "c"].contains(&p.as_str())));
    }

    fn pod(name: &str, deployment: &str, provider: &str, deleting: bool) -> Arc<TaskPod> {
        let mut v = json!({"metadata": {"name": name, "labels": {
            labels::DEPLOYMENT: deployment, labels::CAPACITY_PROVIDER: provider}}});
        if deleting {
            v["metadata"]["deletionTimestamp"] = json!("2026-12-01T10:00:00Z");
        }
        Arc::new(TaskPod::from_pod(&serde_json::from_value(v).unwrap()))
    }

    #[test]
    fn a_deployments_tasks_are_counted_by_provider_without_the_stopping_ones() {
        let pods = [
            pod("a", "1", "spot", false),
            pod("b", "1", "spot", true),
            pod("c", "1", "on-demand", false),
            pod("d", "2", "spot", false),
        ];
        let m = deployment_providers(&pods, "1");
        assert_eq!(
            m,
            [("on-demand".to_string(), 1), ("spot".to_string(), 1)].into()
        );
        assert_eq!(providers_of(&pods)["d"], "spot");
    }

    #[test]
    fn scale_in_under_a_strategy_takes_from_the_provider_above_its_share() {
        let shares = crate::placement::capacity::shares(
            &serde_json::from_value::<Vec<crate::api::common::CapacityProviderStrategyItem>>(
                json!([{"capacityProvider": "A", "base": 2, "weight": 1},
                       {"capacityProvider": "B", "weight": 3}]),
            )
            .unwrap(),
        );
        // 10 tasks split 4/6; scaling in to 5 leaves the split of 5: A 3, B 2.
        let tasks: Vec<ObservedTask> = (0..10).map(|i| task(&format!("t{i}"), None)).collect();
        let provider_of: BTreeMap<String, String> = (0..10)
            .map(|i| (format!("t{i}"), if i < 4 { "A" } else { "B" }.to_string()))
            .collect();
        let refs: Vec<&ObservedTask> = tasks.iter().collect();
        let stopped = choose_to_stop_by_provider(&shares, &provider_of, &refs, 5, |c, k| {
            c.iter().take(k).map(|t| t.name.clone()).collect()
        });
        let from = |p: &str| stopped.iter().filter(|t| provider_of[*t] == p).count();
        assert_eq!((from("A"), from("B")), (1, 4));
    }

    #[test]
    fn blue_green_targets_select_production_and_the_newest_deployment() {
        let lbs: Vec<crate::api::service::LoadBalancer> = serde_json::from_value(json!([
            {"targetGroupArn": "arn:aws:elasticloadbalancing:us-east-1:1:targetgroup/web-prod/73e2",
             "containerPort": 8080,
             "advancedConfiguration": {"alternateTargetGroupArn": "arn:aws:elasticloadbalancing:us-east-1:1:targetgroup/web-test/11aa"}},
            {"loadBalancerName": "classic"},
            {}
        ]))
        .unwrap();
        let plan = Plan {
            deployments: vec![
                deployment("ecs-svc/2", RolloutState::InProgress, ""),
                deployment("ecs-svc/1", RolloutState::Completed, ""),
            ],
            production: Some("ecs-svc/1".into()),
            ..Default::default()
        };
        let t = lb_targets(&lbs, &plan);
        let got: Vec<(&str, Option<&str>, i32)> = t
            .iter()
            .map(|t| (t.service.as_str(), t.deployment.as_deref(), t.port))
            .collect();
        assert_eq!(
            got,
            [
                ("web-prod", Some("ecs-svc/1"), 8080),
                ("web-test", Some("ecs-svc/2"), 8080),
                ("classic", Some("ecs-svc/1"), 80),
            ]
        );
        // Rolling: one production target over every task.
        let rolling = Plan {
            production: None,
            ..plan
        };
        assert_eq!(lb_targets(&lbs[1..2], &rolling)[0].deployment, None);
    }

    #[test]
    fn target_group_names_come_from_elb_arns() {
        assert_eq!(
            super::target_group_name(
                "arn:aws:elasticloadbalancing:us-east-1:123456789012:targetgroup/web-prod/73e2d6bc24d8a067"
            ),
            "web-prod"
        );
        assert_eq!(super::target_group_name("web-test"), "web-test");
    }
}

/// The API conversation of the Service reconciler (see `controllers::testing`).
#[cfg(test)]
mod conversation {
    use super::*;
    use crate::controllers::taskdef::OWNER_UID_LABEL;
    use crate::controllers::testing::{World, node};
    use axum::http::Method;

    const SERVICE: &str = "/apis/ecs.kubecs.io/v1alpha1/namespaces/shop/services/web";
    const PODS: &str = "/api/v1/namespaces/shop/pods";

    /// Cluster `shop/prod` with `spec`, in the API server and the reflector's store.
    fn prod_cluster(world: &mut World, spec: serde_json::Value) {
        let cluster = json!({"apiVersion": "ecs.kubecs.io/v1alpha1", "kind": "EcsCluster",
               "metadata": {"name": "prod", "namespace": "shop", "uid": "cluster-1"},
               "spec": spec});
        world.api.seed(
            "/apis/ecs.kubecs.io/v1alpha1/namespaces/shop/ecsclusters/prod",
            cluster.clone(),
        );
        world.cluster(serde_json::from_value(cluster).expect("an EcsCluster"));
    }

    /// Cluster `shop/prod` with two instances, and task definition `web:1`.
    fn world() -> World {
        world_answering(Box::new(|_| None))
    }

    /// The same, on an API server that answers `script` first.
    fn world_answering(script: crate::controllers::testing::Script) -> World {
        let mut world = World::new(script);
        prod_cluster(&mut world, json!({}));
        world.node(node("n1", "us-east-1a", Some("shop/prod")));
        world.node(node("n2", "us-east-1b", Some("shop/prod")));
        world.taskdef(
            serde_json::from_value(json!({
                "apiVersion": "ecs.kubecs.io/v1alpha1", "kind": "TaskDefinition",
                "metadata": {"name": "web", "namespace": "shop", "uid": "td-1"},
                "spec": {"containerDefinitions": [{"name": "app", "image": "nginx", "memory": 256}]},
            }))
            .expect("a TaskDefinition"),
        );
        world.revision(
            serde_json::from_value(json!({
                "metadata": {"name": "web-1", "namespace": "shop", "uid": "rev-1",
                             "labels": {OWNER_UID_LABEL: "td-1"}},
                "revision": 1,
                "data": {"family": "web",
                         "containerDefinitions": [{"name": "app", "image": "nginx", "memory": 256}]},
            }))
            .expect("a ControllerRevision"),
        );
        world
    }

    fn service(desired: i32) -> Service {
        serde_json::from_value(json!({
            "apiVersion": "ecs.kubecs.io/v1alpha1", "kind": "Service",
            "metadata": {"name": "web", "namespace": "shop", "uid": "svc-1", "generation": 1},
            "spec": {"cluster": "prod", "taskDefinition": "web", "desiredCount": desired},
        }))
        .expect("a Service")
    }

    #[tokio::test]
    async fn a_new_deployment_is_in_status_before_any_task_pod_names_it() {
        let world = world();
        let svc = service(2);
        world
            .api
            .seed(SERVICE, serde_json::to_value(&svc).expect("json"));
        reconcile(Arc::new(svc), world.ctx.clone())
            .await
            .expect("reconciled");

        let status_path = format!("{SERVICE}/status");
        let first_status = world
            .api
            .first(&Method::PATCH, &status_path)
            .expect("status written");
        let first_pod = world.api.first(&Method::POST, PODS).expect("tasks started");
        assert!(
            first_status < first_pod,
            "the deployment must be recorded before a pod names it: {:?}",
            world
                .api
                .calls()
                .iter()
                .map(|c| format!("{} {}", c.method, c.path))
                .collect::<Vec<_>>()
        );
        let recorded = &world.api.calls()[first_status].body["status"]["deployments"];
        assert_eq!(recorded[0]["status"], "PRIMARY");
        assert_eq!(recorded[0]["taskDefinition"], "web:1");
        assert_eq!(recorded[0]["rolloutState"], "IN_PROGRESS");
        let id = recorded[0]["id"].as_str().expect("an id").to_string();

        // Both tasks: labelled with that deployment, bound to the two instances.
        let pods = world.api.all(&Method::POST, PODS);
        assert_eq!(pods.len(), 2);
        let mut nodes: Vec<&str> = pods
            .iter()
            .map(|p| p.body["spec"]["nodeName"].as_str().expect("bound"))
            .collect();
        nodes.sort();
        assert_eq!(nodes, ["n1", "n2"]);
        for p in &pods {
            assert_eq!(
                p.body["metadata"]["labels"][labels::DEPLOYMENT],
                deployment_label(&id)
            );
            assert_eq!(p.body["metadata"]["ownerReferences"][0]["uid"], "svc-1");
        }
        // The cluster, the instances and the pods came from the stores: nothing was read.
        let reads: Vec<String> = world
            .api
            .calls()
            .iter()
            .filter(|c| c.method == Method::GET)
            .map(|c| c.path.clone())
            .collect();
        assert!(
            reads
                .iter()
                .all(|p| !p.contains("/ecsclusters") && !p.ends_with("/pods")),
            "{reads:?}"
        );
        // The last status write counts them as pending, and says ECS's event.
        let last = world.api.all(&Method::PATCH, &status_path);
        let last = &last.last().expect("written").body["status"];
        assert_eq!(last["pendingCount"], 2);
        let events = last["events"].as_array().expect("events");
        assert!(
            events.iter().any(|e| e["message"]
                .as_str()
                .unwrap()
                .starts_with("(service web) has started 2 tasks:")),
            "{events:?}"
        );
    }

    #[tokio::test]
    async fn a_foreign_pod_on_an_instance_uses_its_room() {
        let mut world = world();
        // Not kubecs': a Deployment's pod that takes all of n1's memory.
        world.pod(
            serde_json::from_value(json!({
                "metadata": {"name": "other-1", "namespace": "elsewhere", "uid": "other-1"},
                "spec": {"nodeName": "n1", "containers": [{"name": "c", "image": "x",
                         "resources": {"requests": {"cpu": "100m", "memory": "4Gi"}}}]},
                "status": {"phase": "Running"},
            }))
            .expect("a Pod"),
        );
        let svc = service(2);
        world
            .api
            .seed(SERVICE, serde_json::to_value(&svc).expect("json"));
        reconcile(Arc::new(svc), world.ctx.clone())
            .await
            .expect("reconciled");
        let pods = world.api.all(&Method::POST, PODS);
        let nodes: Vec<&str> = pods
            .iter()
            .map(|p| p.body["spec"]["nodeName"].as_str().expect("bound"))
            .collect();
        assert_eq!(nodes, ["n2", "n2"]);
    }

    fn with_providers(world: &mut World, strategy: serde_json::Value) -> Service {
        prod_cluster(world, json!({"capacityProviders": ["on-demand", "spot"]}));
        for (n, zone, kind) in [("n3", "us-east-1a", "spot"), ("n4", "us-east-1b", "spot")] {
            let mut nd = node(n, zone, Some("shop/prod"));
            nd.labels_mut().insert("pool".into(), kind.into());
            world.node(nd);
        }
        for (name, pool) in [("on-demand", None), ("spot", Some("spot"))] {
            let selector = match pool {
                Some(p) => json!({"matchLabels": {"pool": p}}),
                None => json!({"matchExpressions": [{"key": "pool", "operator": "DoesNotExist"}]}),
            };
            world.capacity_provider(
                serde_json::from_value(json!({
                    "apiVersion": "ecs.kubecs.io/v1alpha1", "kind": "CapacityProvider",
                    "metadata": {"name": name, "namespace": "shop"},
                    "spec": {"instanceSelector": selector},
                }))
                .unwrap(),
            );
        }
        let svc: Service = serde_json::from_value(json!({
            "apiVersion": "ecs.kubecs.io/v1alpha1", "kind": "Service",
            "metadata": {"name": "web", "namespace": "shop", "uid": "svc-1", "generation": 1},
            "spec": {"cluster": "prod", "taskDefinition": "web", "desiredCount": 10,
                     "capacityProviderStrategy": strategy},
        }))
        .unwrap();
        world
            .api
            .seed(SERVICE, serde_json::to_value(&svc).expect("json"));
        svc
    }

    #[tokio::test]
    async fn a_capacity_provider_strategy_splits_tasks_base_first_then_by_weight() {
        let mut world = world();
        let svc = with_providers(
            &mut world,
            json!([{"capacityProvider": "on-demand", "base": 2, "weight": 1},
                   {"capacityProvider": "spot", "weight": 3}]),
        );
        reconcile(Arc::new(svc), world.ctx.clone())
            .await
            .expect("reconciled");
        let pods = world.api.all(&Method::POST, PODS);
        let on = |provider: &str| -> Vec<String> {
            pods.iter()
                .filter(|p| p.body["metadata"]["labels"][labels::CAPACITY_PROVIDER] == provider)
                .map(|p| p.body["spec"]["nodeName"].as_str().unwrap().to_string())
                .collect()
        };
        let (on_demand, spot) = (on("on-demand"), on("spot"));
        assert_eq!((on_demand.len(), spot.len()), (4, 6), "ECS's split of 10");
        assert!(
            on_demand.iter().all(|n| n == "n1" || n == "n2"),
            "{on_demand:?}"
        );
        assert!(spot.iter().all(|n| n == "n3" || n == "n4"), "{spot:?}");
    }

    #[tokio::test]
    async fn a_provider_the_cluster_lacks_is_refused_in_ecs_words() {
        let mut world = world();
        let svc = with_providers(
            &mut world,
            json!([{"capacityProvider": "gpu", "weight": 1}]),
        );
        assert_refused(
            &world,
            svc,
            "InvalidCapacityProviderStrategy",
            launch::NOT_ASSOCIATED,
        )
        .await;
    }

    /// The reconcile refuses `svc`: no pod, and Ready=False with this reason and message.
    async fn assert_refused(world: &World, svc: Service, reason: &str, message: &str) {
        reconcile(Arc::new(svc), world.ctx.clone())
            .await
            .expect("refused, not failed");
        assert_eq!(world.api.first(&Method::POST, PODS), None);
        let written = world.api.all(&Method::PATCH, &format!("{SERVICE}/status"));
        let ready = &written[0].body["status"]["conditions"][0];
        assert_eq!(ready["reason"], reason);
        assert_eq!(ready["message"], message);
    }

    #[tokio::test]
    async fn a_service_of_a_missing_cluster_is_refused_in_ecs_words_and_starts_nothing() {
        let world = World::plain();
        let svc = service(1);
        world
            .api
            .seed(SERVICE, serde_json::to_value(&svc).expect("json"));
        assert_refused(
            &world,
            svc,
            "ClusterNotFound",
            "ClusterNotFoundException: Cluster not found.",
        )
        .await;
    }

    /// The API server fails in the middle of a pass: the task it created, and the one whose
    /// create may have been committed (a 500), are expected; the next pass, on a store that
    /// shows neither yet, starts no other task: it settles the uncertain one by creating it
    /// again under the same name.
    #[tokio::test]
    async fn a_pass_cut_short_by_the_api_server_starts_nothing_twice() {
        let posts = std::sync::atomic::AtomicUsize::new(0);
        let world = world_answering(Box::new(move |call| {
            (call.is(&Method::POST, PODS)
                && posts.fetch_add(1, std::sync::atomic::Ordering::SeqCst) == 1)
                .then(|| {
                    crate::controllers::testing::failure(
                        500,
                        "InternalError",
                        "etcdserver: request timed out",
                    )
                })
        }));
        let svc = Arc::new(service(2));
        world
            .api
            .seed(SERVICE, serde_json::to_value(&*svc).expect("json"));
        assert!(reconcile(svc.clone(), world.ctx.clone()).await.is_err());
        let names = |world: &World| -> Vec<String> {
            world
                .api
                .all(&Method::POST, PODS)
                .iter()
                .map(|c| {
                    c.body["metadata"]["name"]
                        .as_str()
                        .expect("named here")
                        .to_string()
                })
                .collect()
        };
        let first = names(&world);
        assert_eq!(first.len(), 2, "{first:?}");

        // The store has seen neither pod: the next passes wait, and create only the
        // uncertain one again.
        for _ in 0..3 {
            reconcile(svc.clone(), world.ctx.clone())
                .await
                .expect("waits");
        }
        let all = names(&world);
        assert_eq!(all.len(), 3, "{all:?}");
        assert_eq!(
            all[2], first[1],
            "the uncertain task is created again by name"
        );
    }

    #[tokio::test]
    async fn a_pass_that_changes_nothing_writes_no_status() {
        let world = World::plain();
        let svc = Arc::new(service(1));
        world
            .api
            .seed(SERVICE, serde_json::to_value(&*svc).expect("json"));
        let status_path = format!("{SERVICE}/status");
        for _ in 0..3 {
            reconcile(svc.clone(), world.ctx.clone())
                .await
                .expect("refused, not failed");
        }
        assert_eq!(world.api.all(&Method::PATCH, &status_path).len(), 1);

        // A restarted operator remembers nothing: the stored status is what it compares with.
        let stored: Service =
            serde_json::from_value(world.api.get(SERVICE).expect("the service is held"))
                .expect("a Service");
        let restarted = World::plain();
        restarted
            .api
            .seed(SERVICE, serde_json::to_value(&stored).expect("json"));
        reconcile(Arc::new(stored), restarted.ctx.clone())
            .await
            .expect("refused, not failed");
        assert!(restarted.api.all(&Method::PATCH, &status_path).is_empty());
    }
}
