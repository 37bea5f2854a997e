//! The rollout rules, step by step, with a simulated cluster: tasks start PENDING, become
//! RUNNING (and healthy) on the next step unless told to fail.

use std::collections::{BTreeMap, BTreeSet};

use super::*;
use crate::deploy::task::{Health, LastStatus, StopCause, reasons};
use crate::deploy::{EcsEvent, Severity, deployment_id, deployment_label};

fn task(name: &str, dep: &str, status: LastStatus) -> ObservedTask {
    ObservedTask {
        name: name.into(),
        uid: name.into(),
        deployment: deployment_label(dep).into(),
        node: Some("n1".into()),
        last_status: status,
        health: Health::Unknown,
        health_checked: false,
        stopping: false,
        stop: None,
        created_at: 0,
        started_at: None,
        containers: vec![],
        draining: false,
        protected_until: None,
    }
}

/// How new tasks of a task definition behave in the simulation.
#[derive(Clone, Copy, PartialEq)]
enum Fate {
    Healthy,
    Fails,
    /// Every other task fails.
    Flaky,
}

struct Sim {
    bounds: Bounds,
    strategy: Strategy,
    breaker: Option<Breaker>,
    target: String,
    trigger: Option<String>,
    deployments: Vec<Deployment>,
    production: Option<String>,
    tasks: Vec<ObservedTask>,
    counted: BTreeSet<String>,
    fate: std::collections::BTreeMap<String, Fate>,
    seq: u64,
    now: i64,
    events: Vec<EcsEvent>,
    /// (places, healthy) after every step, for the bound checks.
    history: Vec<(i32, i32)>,
    /// A forced new deployment waits for the next step.
    force: bool,
    /// StopServiceDeployment's request.
    stop: Option<(String, crate::api::service::StopType)>,
    /// Deployment alarms: (watched, firing, rollback).
    alarms: Option<(Vec<String>, Vec<String>, bool)>,
    /// Lifecycle hooks, and what their runs answer this step.
    hooks: Vec<crate::api::service::DeploymentLifecycleHook>,
    hook_outcomes: BTreeMap<String, crate::deploy::hooks::Outcome>,
}

impl Sim {
    fn new(desired: i32, min: i32, max: i32) -> Self {
        Self {
            bounds: Bounds {
                desired,
                minimum_healthy_percent: min,
                maximum_percent: max,
            },
            strategy: Strategy::Rolling,
            breaker: None,
            target: "web:1".into(),
            trigger: None,
            deployments: vec![],
            production: None,
            tasks: vec![],
            counted: BTreeSet::new(),
            fate: [("web:1".to_string(), Fate::Healthy)].into(),
            seq: 0,
            now: 1_767_225_600,
            events: vec![],
            history: vec![],
            force: false,
            stop: None,
            alarms: None,
            hooks: vec![],
            hook_outcomes: BTreeMap::new(),
        }
    }

    /// One reconcile: plan, apply, then let the world move one step.
    fn step(&mut self) -> Plan {
        self.seq += 1;
        let id = deployment_id(self.seq);
        let now = k8s_openapi::jiff::Timestamp::from_second(self.now)
            .unwrap()
            .to_string();
        let state = ServiceSnapshot {
            service: "web",
            bounds: self.bounds,
            strategy: self.strategy,
            breaker: self.breaker,
            target: &self.target,
            trigger: self.trigger.as_deref(),
            deployments: &self.deployments,
            tasks: &self.tasks,
            counted: &self.counted,
            production: self.production.as_deref(),
            now: self.now,
            now_rfc3339: &now,
            new_deployment_id: &id,
            rebalancing: false,
            force_new: std::mem::take(&mut self.force),
            stop_deployment: self.stop.as_ref().map(|(id, how)| (id.as_str(), *how)),
            alarms: self
                .alarms
                .as_ref()
                .map(|(names, firing, rollback)| AlarmWatch {
                    names,
                    firing,
                    rollback: *rollback,
                }),
            hooks: &self.hooks,
            hook_outcomes: &self.hook_outcomes,
        };
        let plan = plan(&state, &mut |c, n| {
            c.iter().take(n).map(|t| t.name.clone()).collect()
        });
        self.deployments = plan.deployments.clone();
        self.trigger = Some(plan.trigger.clone());
        self.production = plan.production.clone();
        self.events.extend(plan.events.iter().cloned());
        // Stops: the pods go away (KWOK deletes at once).
        for st in &plan.stop {
            if st.counted_failure {
                self.counted.insert(st.name.clone());
            }
            self.tasks.retain(|t| t.name != st.name);
        }
        // The world moves: pending tasks start (or fail).
        for t in self.tasks.iter_mut() {
            if t.last_status == LastStatus::Pending {
                let td = self
                    .deployments
                    .iter()
                    .find(|d| deployment_label(&d.id) == t.deployment)
                    .map(|d| d.task_definition.clone())
                    .unwrap_or_default();
                let fate = match self.fate.get(&td).copied().unwrap_or(Fate::Healthy) {
                    Fate::Flaky
                        if t.name
                            .trim_start_matches("web-")
                            .parse::<u64>()
                            .unwrap_or(0)
                            % 2
                            == 0 =>
                    {
                        Fate::Fails
                    }
                    Fate::Flaky => Fate::Healthy,
                    f => f,
                };
                match fate {
                    Fate::Healthy | Fate::Flaky => {
                        t.last_status = LastStatus::Running;
                        t.started_at = Some(self.now);
                    }
                    Fate::Fails => {
                        t.stop = Some(StopCause {
                            code: StopCode::EssentialContainerExited,
                            reason: reasons::ESSENTIAL_EXITED.into(),
                            failure: true,
                            unhealthy: false,
                        })
                    }
                }
            }
        }
        for l in &plan.launch {
            for _ in 0..l.count {
                self.seq += 1;
                let name = format!("web-{}", self.seq);
                self.tasks
                    .push(task(&name, &l.deployment, LastStatus::Pending));
            }
        }
        let places = self.tasks.iter().filter(|t| t.holds_place()).count() as i32;
        let healthy = self.tasks.iter().filter(|t| t.is_healthy()).count() as i32;
        self.history.push((places, healthy));
        self.now += 10;
        plan
    }

    fn run_until_steady(&mut self, max_steps: usize) -> usize {
        for i in 0..max_steps {
            if self.step().steady {
                return i;
            }
        }
        panic!(
            "not steady after {max_steps} steps: {:#?}",
            self.deployments
        );
    }

    fn primary(&self) -> &Deployment {
        &self.deployments[0]
    }

    fn live_of(&self, td: &str) -> usize {
        self.tasks
            .iter()
            .filter(|t| {
                t.is_live()
                    && self
                        .deployments
                        .iter()
                        .any(|d| deployment_label(&d.id) == t.deployment && d.task_definition == td)
            })
            .count()
    }
}

#[test]
fn a_new_service_starts_desired_tasks_and_reaches_a_steady_state() {
    let mut sim = Sim::new(3, 100, 200);
    let first = sim.step();
    assert_eq!(first.launch[0].count, 3);
    assert_eq!(first.deployments[0].status, DeploymentStatus::Primary);
    assert_eq!(
        first.deployments[0].rollout_state,
        Some(RolloutState::InProgress)
    );
    sim.run_until_steady(5);
    assert_eq!(sim.primary().rollout_state, Some(RolloutState::Completed));
    assert!(
        sim.events
            .iter()
            .any(|e| e.message.ends_with("deployment completed.")
                && e.message.starts_with("(service web) (deployment ecs-svc/"))
    );
    assert_eq!(sim.live_of("web:1"), 3);
}

#[test]
fn rolling_update_4_50_150_stays_within_6_tasks_and_2_healthy() {
    let mut sim = Sim::new(4, 50, 150);
    sim.run_until_steady(5);
    sim.history.clear();
    sim.target = "web:2".into();
    sim.fate.insert("web:2".into(), Fate::Healthy);
    sim.run_until_steady(20);
    for (places, healthy) in &sim.history {
        assert!(*places <= 6, "{places} tasks > 6: {:?}", sim.history);
        assert!(*healthy >= 2, "{healthy} healthy < 2: {:?}", sim.history);
    }
    assert_eq!(sim.live_of("web:2"), 4);
    assert_eq!(sim.live_of("web:1"), 0);
    assert_eq!(sim.deployments.len(), 1);
    assert_eq!(sim.primary().task_definition, "web:2");
}

#[test]
fn rolling_update_with_max_100_stops_before_it_starts() {
    let mut sim = Sim::new(4, 50, 100);
    sim.run_until_steady(5);
    sim.history.clear();
    sim.target = "web:2".into();
    let first = sim.step();
    assert!(first.launch.is_empty(), "no room at max 100%");
    assert_eq!(first.stop.len(), 2, "down to the healthy floor of 2");
    sim.run_until_steady(20);
    assert!(
        sim.history.iter().all(|(p, h)| *p <= 4 && *h >= 2),
        "{:?}",
        sim.history
    );
}

#[test]
fn default_bounds_keep_every_old_task_until_new_ones_are_healthy() {
    let mut sim = Sim::new(2, 100, 200);
    sim.run_until_steady(5);
    sim.history.clear();
    sim.target = "web:2".into();
    sim.run_until_steady(20);
    assert!(
        sim.history.iter().all(|(p, h)| *p <= 4 && *h >= 2),
        "{:?}",
        sim.history
    );
}

#[test]
fn scale_in_and_out_without_a_new_deployment() {
    let mut sim = Sim::new(3, 100, 200);
    sim.run_until_steady(5);
    let id = sim.primary().id.clone();
    sim.bounds.desired = 1;
    let p = sim.step();
    assert_eq!(p.stop.len(), 2);
    assert!(
        p.stop[0]
            .reason
            .starts_with("Scaling activity initiated by (deployment ecs-svc/")
    );
    sim.run_until_steady(5);
    sim.bounds.desired = 5;
    sim.run_until_steady(5);
    assert_eq!(sim.primary().id, id, "scaling is not a deployment");
    assert_eq!(sim.live_of("web:1"), 5);
}

#[test]
fn circuit_breaker_trips_at_the_threshold_and_rolls_back() {
    let mut sim = Sim::new(4, 50, 150);
    sim.breaker = Some(Breaker {
        rollback: true,
        threshold: 3,
        reset_on_healthy_task: true,
    });
    sim.run_until_steady(5);
    let good = sim.primary().id.clone();
    // The controller resolved web:1's tag at its start.
    let pinned = vec![crate::api::service::ContainerImage {
        container_name: "app".into(),
        image: "h/app:live".into(),
        image_digest: Some("sha256:1".into()),
    }];
    sim.deployments[0].container_images = pinned.clone();
    sim.history.clear();
    sim.target = "web:2".into();
    sim.fate.insert("web:2".into(), Fate::Fails);
    sim.run_until_steady(40);
    // Rolled back: a new deployment of web:1, the failed one gone once it completed; it runs
    // the digests web:1 ran, whatever the tag names now.
    assert_eq!(sim.primary().task_definition, "web:1");
    assert_eq!(sim.primary().container_images, pinned);
    assert_ne!(sim.primary().id, good);
    assert_eq!(
        sim.trigger.as_deref(),
        Some("web:2"),
        "no new attempt of web:2"
    );
    assert!(sim.events.iter().any(|e| {
        e.severity == Severity::Warning
            && e.message
                .contains("deployment failed: tasks failed to start.")
    }));
    assert!(sim.events.iter().any(|e| {
        e.message
            .contains(&format!("rolling back to deployment {good}."))
    }));
    assert!(
        sim.history.iter().all(|(p, h)| *p <= 6 && *h >= 2),
        "{:?}",
        sim.history
    );
    assert_eq!(sim.live_of("web:1"), 4);
}

#[test]
fn circuit_breaker_counts_each_failed_task_once() {
    let mut sim = Sim::new(10, 100, 200);
    sim.breaker = Some(Breaker {
        rollback: false,
        threshold: 5,
        reset_on_healthy_task: true,
    });
    sim.fate.insert("web:1".into(), Fate::Fails);
    for _ in 0..6 {
        sim.step();
    }
    let p = sim.primary();
    assert_eq!(p.rollout_state, Some(RolloutState::Failed));
    assert_eq!(
        p.rollout_state_reason.as_deref(),
        Some("ECS deployment circuit breaker: tasks failed to start.")
    );
    // A FAILED deployment launches no more tasks.
    let before = sim.seq;
    let plan = sim.step();
    assert!(plan.launch.is_empty());
    assert!(sim.seq - before <= 1);
    // The failed count stops at what tripped it plus what was already in flight.
    let again = sim.step();
    assert!(again.stop.iter().all(|s| !s.counted_failure));
}

#[test]
fn a_retried_stop_is_not_counted_twice() {
    let failed = ObservedTask {
        stop: Some(StopCause {
            code: StopCode::EssentialContainerExited,
            reason: reasons::ESSENTIAL_EXITED.into(),
            failure: true,
            unhealthy: false,
        }),
        ..task("web-9", "ecs-svc/0000000000000000001", LastStatus::Running)
    };
    let deps = vec![Deployment {
        id: "ecs-svc/0000000000000000001".into(),
        status: DeploymentStatus::Primary,
        task_definition: "web:1".into(),
        rollout_state: Some(RolloutState::InProgress),
        ..Default::default()
    }];
    let counted: BTreeSet<String> = ["web-9".to_string()].into();
    let tasks = [failed];
    let state = ServiceSnapshot {
        service: "web",
        bounds: Bounds {
            desired: 1,
            minimum_healthy_percent: 100,
            maximum_percent: 200,
        },
        strategy: Strategy::Rolling,
        breaker: None,
        target: "web:1",
        trigger: Some("web:1"),
        deployments: &deps,
        tasks: &tasks,
        counted: &counted,
        production: None,
        now: 0,
        now_rfc3339: "1970-01-01T00:00:00Z",
        new_deployment_id: "ecs-svc/2",
        rebalancing: false,
        force_new: false,
        stop_deployment: None,
        alarms: None,
        hooks: &[],
        hook_outcomes: &Default::default(),
    };
    let plan = plan(&state, &mut |c, n| {
        c.iter().take(n).map(|t| t.name.clone()).collect()
    });
    assert_eq!(plan.stop.len(), 1);
    assert!(!plan.stop[0].counted_failure);
    assert_eq!(plan.deployments[0].failed_tasks, 0);
}

#[test]
fn blue_green_shifts_production_only_when_green_is_healthy_then_bakes() {
    let mut sim = Sim::new(2, 100, 200);
    sim.strategy = Strategy::BlueGreen {
        bake_seconds: 30,
        shift: crate::deploy::TrafficShift::AllAtOnce,
    };
    sim.run_until_steady(6);
    let blue = sim.primary().id.clone();
    assert_eq!(sim.production.as_deref(), Some(blue.as_str()));
    sim.target = "web:2".into();
    let first = sim.step();
    assert_eq!(first.launch[0].count, 2, "green at full size beside blue");
    assert_eq!(
        sim.production.as_deref(),
        Some(blue.as_str()),
        "green not healthy yet"
    );
    let green = sim.primary().id.clone();
    sim.step(); // green becomes healthy in the world; the next plan shifts
    let shift = sim.step();
    assert_eq!(sim.production.as_deref(), Some(green.as_str()));
    assert!(
        shift
            .events
            .iter()
            .any(|e| e.message.contains("production traffic shifted"))
    );
    assert!(
        shift
            .stop
            .iter()
            .all(|t| t.deployment != deployment_label(&blue)),
        "blue stops only after the pass that moved production: {:?}",
        shift.stop
    );
    assert_eq!(sim.live_of("web:1"), 2, "blue runs during the bake");
    sim.run_until_steady(10);
    assert_eq!(sim.live_of("web:1"), 0);
    assert_eq!(sim.primary().id, green);
}

#[test]
fn blue_green_rollback_during_bake_puts_production_back_on_blue() {
    let mut sim = Sim::new(2, 100, 200);
    sim.strategy = Strategy::BlueGreen {
        bake_seconds: 600,
        shift: crate::deploy::TrafficShift::AllAtOnce,
    };
    sim.run_until_steady(6);
    let blue = sim.primary().id.clone();
    sim.target = "web:2".into();
    for _ in 0..4 {
        sim.step();
    }
    assert_eq!(
        sim.primary().lifecycle_stage,
        Some(LifecycleStage::BakeTime)
    );
    sim.target = "web:1".into();
    sim.step();
    assert_eq!(sim.production.as_deref(), Some(blue.as_str()));
    assert_eq!(sim.primary().id, blue);
    sim.run_until_steady(6);
    assert_eq!(sim.live_of("web:2"), 0);
    assert_eq!(sim.live_of("web:1"), 2);
}

#[test]
fn tasks_that_just_started_do_not_complete_a_rollout() {
    let id = "ecs-svc/0000000000000000001";
    let deps = vec![Deployment {
        id: id.into(),
        status: DeploymentStatus::Primary,
        task_definition: "web:1".into(),
        rollout_state: Some(RolloutState::InProgress),
        ..Default::default()
    }];
    let now = 1_000;
    let young = ObservedTask {
        started_at: Some(now - 1),
        ..task("web-1", id, LastStatus::Running)
    };
    let counted = BTreeSet::new();
    let mut state = ServiceSnapshot {
        service: "web",
        bounds: Bounds {
            desired: 1,
            minimum_healthy_percent: 100,
            maximum_percent: 200,
        },
        strategy: Strategy::Rolling,
        breaker: None,
        target: "web:1",
        trigger: Some("web:1"),
        deployments: &deps,
        tasks: std::slice::from_ref(&young),
        counted: &counted,
        production: None,
        now,
        now_rfc3339: "1970-01-01T00:16:40Z",
        new_deployment_id: "ecs-svc/2",
        rebalancing: false,
        force_new: false,
        stop_deployment: None,
        alarms: None,
        hooks: &[],
        hook_outcomes: &Default::default(),
    };
    let mut first = |c: &[&ObservedTask], n: usize| -> Vec<String> {
        c.iter().take(n).map(|t| t.name.clone()).collect()
    };
    let p = plan(&state, &mut first);
    assert_eq!(
        p.deployments[0].rollout_state,
        Some(RolloutState::InProgress)
    );
    state.now = now + crate::deploy::task::STABLE_SECONDS;
    let p = plan(&state, &mut first);
    assert_eq!(
        p.deployments[0].rollout_state,
        Some(RolloutState::Completed)
    );
}

/// A rebalance runs one task above desired: the excess stop waits until the new task is
/// healthy (the healthy floor counts it) and takes a healthy task, never the new one.
#[test]
fn a_rebalance_stops_the_excess_only_once_the_new_task_is_healthy() {
    let dep = "ecs-svc/0000000000000000001";
    let deps = vec![Deployment {
        id: dep.into(),
        status: DeploymentStatus::Primary,
        task_definition: "web:1".into(),
        rollout_state: Some(RolloutState::Completed),
        ..Default::default()
    }];
    let healthy = |name: &str| ObservedTask {
        health: Health::Healthy,
        health_checked: true,
        ..task(name, dep, LastStatus::Running)
    };
    let counted = BTreeSet::new();
    let snapshot = |tasks: &[ObservedTask]| -> Plan {
        let state = ServiceSnapshot {
            service: "web",
            bounds: Bounds {
                desired: 3,
                minimum_healthy_percent: 100,
                maximum_percent: 200,
            },
            strategy: Strategy::Rolling,
            breaker: None,
            target: "web:1",
            trigger: Some("web:1"),
            deployments: &deps,
            tasks,
            counted: &counted,
            production: None,
            now: 100,
            now_rfc3339: "1970-01-01T00:01:40Z",
            new_deployment_id: "ecs-svc/2",
            rebalancing: true,
            force_new: false,
            stop_deployment: None,
            alarms: None,
            hooks: &[],
            hook_outcomes: &Default::default(),
        };
        plan(&state, &mut |c, n| {
            c.iter().take(n).map(|t| t.name.clone()).collect()
        })
    };
    let new_pending = task("web-new", dep, LastStatus::Pending);
    let waiting = snapshot(&[healthy("a1"), healthy("a2"), healthy("b1"), new_pending]);
    assert!(
        waiting.stop.is_empty(),
        "stopped before the new task is healthy"
    );
    let ready = snapshot(&[
        healthy("a1"),
        healthy("a2"),
        healthy("b1"),
        healthy("web-new"),
    ]);
    let stopped: Vec<&str> = ready.stop.iter().map(|s| s.name.as_str()).collect();
    assert_eq!(
        stopped,
        ["a1"],
        "one healthy task goes (choose picks which)"
    );
    // The controller writes ECS's rebalancing event for it instead of the scale-in one.
    assert!(
        ready
            .events
            .iter()
            .all(|e| !e.message.contains("has stopped")),
        "{:?}",
        ready.events
    );
}

/// ECS's resetOnHealthyTask (default true): a task that reaches a healthy state resets the
/// failure count, so a rollout where every other task fails keeps going; without the reset
/// the same rollout trips the breaker.
#[test]
fn a_healthy_task_resets_the_breakers_count_unless_told_not_to() {
    for reset in [true, false] {
        let mut sim = Sim::new(6, 50, 200);
        sim.breaker = Some(Breaker {
            rollback: false,
            threshold: 4,
            reset_on_healthy_task: reset,
        });
        sim.run_until_steady(5);
        sim.target = "web:2".into();
        sim.fate.insert("web:2".into(), Fate::Flaky);
        for _ in 0..12 {
            sim.step();
        }
        let p = sim.primary();
        let cb = p
            .circuit_breaker
            .clone()
            .expect("the breaker's state is recorded");
        assert_eq!(cb.threshold, 4);
        if reset {
            assert_ne!(p.rollout_state, Some(RolloutState::Failed), "{p:#?}");
            assert!(cb.failure_count < 4, "{cb:?}");
            assert!(
                p.failed_tasks >= 4,
                "failedTasks still counts every failure: {p:#?}"
            );
        } else {
            assert_eq!(p.rollout_state, Some(RolloutState::Failed), "{p:#?}");
            assert_eq!(
                cb.status,
                crate::api::states::CircuitBreakerStatus::Triggered
            );
        }
    }
}

#[test]
fn a_forced_new_deployment_replaces_every_task_with_the_same_task_definition() {
    let mut sim = Sim::new(4, 50, 200);
    sim.run_until_steady(20);
    let first = sim.primary().id.clone();
    let old: BTreeSet<String> = sim.tasks.iter().map(|t| t.name.clone()).collect();
    sim.history.clear();
    sim.force = true;
    sim.run_until_steady(30);
    assert_ne!(sim.primary().id, first, "a new PRIMARY deployment");
    assert_eq!(sim.primary().task_definition, "web:1");
    assert_eq!(sim.primary().rollout_state, Some(RolloutState::Completed));
    assert_eq!(sim.deployments.len(), 1);
    assert!(
        sim.tasks.iter().all(|t| !old.contains(&t.name)),
        "every old task replaced"
    );
    assert!(
        sim.history
            .iter()
            .all(|&(places, healthy)| places <= 8 && healthy >= 2)
    );
}

#[test]
fn tasks_on_a_draining_instance_are_replaced_within_the_bounds() {
    // ECS: RUNNING service tasks on a DRAINING instance stop and are replaced according to
    // minimumHealthyPercent and maximumPercent.
    for (min, max) in [(50, 200), (100, 150), (0, 100)] {
        let mut sim = Sim::new(4, min, max);
        sim.run_until_steady(20);
        let drained: Vec<String> = sim.tasks.iter().take(2).map(|t| t.name.clone()).collect();
        for t in sim.tasks.iter_mut().take(2) {
            t.draining = true;
        }
        sim.history.clear();
        sim.run_until_steady(30);
        assert!(
            sim.tasks.iter().all(|t| !drained.contains(&t.name)),
            "({min}, {max}): the drained tasks are gone"
        );
        assert_eq!(sim.tasks.iter().filter(|t| t.is_healthy()).count(), 4);
        let floor = (4 * min + 99) / 100;
        let ceiling = 4 * max / 100;
        assert!(
            sim.history
                .iter()
                .all(|&(places, healthy)| places <= ceiling && healthy >= floor),
            "({min}, {max}): {:?}",
            sim.history
        );
    }
}

#[test]
fn a_protected_task_survives_scale_in_and_a_deployment_waits_for_its_protection() {
    let mut sim = Sim::new(4, 50, 200);
    sim.run_until_steady(20);
    let kept = sim.tasks[2].name.clone();
    let until = sim.now + 300;
    sim.tasks[2].protected_until = Some(until);
    // Scale-in from 4 to 1 keeps the protected task.
    sim.bounds.desired = 1;
    sim.run_until_steady(20);
    assert_eq!(
        sim.tasks.iter().map(|t| t.name.clone()).collect::<Vec<_>>(),
        vec![kept.clone()]
    );
    // A new deployment starts its task but stops the protected one only once protection ends.
    sim.target = "web:2".into();
    let mut waited_past = false;
    for _ in 0..60 {
        let plan = sim.step();
        let old_alive = sim.tasks.iter().any(|t| t.name == kept);
        if sim.now < until {
            assert!(
                old_alive,
                "stopped at {} while protected until {until}",
                sim.now
            );
            assert_ne!(
                plan.deployments[0].rollout_state,
                Some(RolloutState::Completed),
                "the rollout waits for the protected task"
            );
        } else if !old_alive {
            waited_past = true;
        }
        if plan.steady {
            break;
        }
    }
    assert!(
        waited_past,
        "the old task stopped once its protection ended"
    );
    assert_eq!(sim.primary().task_definition, "web:2");
    assert_eq!(sim.primary().rollout_state, Some(RolloutState::Completed));
}

#[test]
fn a_deployment_stopped_by_request_rolls_back_or_stays_as_it_is() {
    use crate::api::service::StopType;
    let mut sim = Sim::new(4, 50, 200);
    sim.run_until_steady(5);
    let good = sim.primary().id.clone();
    sim.target = "web:2".into();
    sim.step();
    let stopped = sim.primary().id.clone();
    assert_ne!(stopped, good);
    sim.stop = Some((stopped.clone(), StopType::Rollback));
    sim.run_until_steady(40);
    assert_eq!(sim.primary().task_definition, "web:1");
    assert_eq!(sim.primary().rollback_of.as_deref(), Some(stopped.as_str()));
    assert_eq!(sim.live_of("web:1"), 4);
    assert!(
        sim.events.iter().any(|e| e.message
            == format!("(service web) (deployment {stopped}) was stopped by request."))
    );
    assert!(sim.events.iter().any(|e| {
        e.message
            .contains(&format!("rolling back to deployment {good}."))
    }));

    // A stuck deployment with no task left when it is stopped: the pass that rolls it back
    // still lists it, rolled back to the good one (its history record reads that), and the
    // next pass lets it go.
    let mut sim = Sim::new(4, 50, 200);
    sim.run_until_steady(5);
    let good = sim.primary().id.clone();
    sim.target = "web:2".into();
    sim.step();
    let stuck = sim.primary().id.clone();
    let stuck_label = crate::deploy::deployment_label(&stuck).to_string();
    sim.tasks.retain(|t| t.deployment != stuck_label);
    sim.stop = Some((stuck.clone(), StopType::Rollback));
    let plan = sim.step();
    let failed = plan
        .deployments
        .iter()
        .find(|d| d.id == stuck)
        .expect("the stopped deployment is listed in the pass that rolls it back");
    assert_eq!(failed.rolled_back_to.as_deref(), Some(good.as_str()));
    sim.now += 1;
    let plan = sim.step();
    assert!(plan.deployments.iter().all(|d| d.id != stuck));

    // ABORT: the deployment stops where it is; nothing rolls back.
    let mut sim = Sim::new(4, 50, 200);
    sim.run_until_steady(5);
    sim.target = "web:2".into();
    sim.step();
    let stopped = sim.primary().id.clone();
    sim.stop = Some((stopped.clone(), StopType::Abort));
    sim.step();
    sim.step();
    assert_eq!(sim.primary().id, stopped);
    assert_eq!(sim.primary().rollout_state, Some(RolloutState::Failed));
    assert_eq!(sim.primary().rolled_back_to, None);
    assert!(sim.deployments.iter().all(|d| d.rollback_of.is_none()));
    // How the annotation reads.
    assert_eq!(
        crate::api::service::parse_stop_request("ecs-svc/123:ABORT"),
        Some(("ecs-svc/123".into(), StopType::Abort))
    );
    assert_eq!(
        crate::api::service::parse_stop_request("123"),
        Some(("ecs-svc/123".into(), StopType::Rollback))
    );
    assert_eq!(crate::api::service::parse_stop_request("x:HALT"), None);
}

#[test]
fn a_firing_alarm_fails_the_rollout_and_rolls_back_without_watching_the_rollback() {
    let mut sim = Sim::new(4, 50, 200);
    sim.alarms = Some((vec!["HighErrorRate".into()], vec![], true));
    sim.run_until_steady(5);
    let good = sim.primary().id.clone();
    assert_eq!(
        sim.primary().alarms.as_ref().map(|a| a.status),
        Some(CircuitBreakerStatus::MonitoringComplete)
    );
    sim.target = "web:2".into();
    sim.step();
    let bad = sim.primary().id.clone();
    // Another alert fires: not one of the service's.
    sim.alarms = Some((vec!["HighErrorRate".into()], vec!["DiskFull".into()], true));
    sim.step();
    assert_eq!(sim.primary().id, bad);
    // Its alarm fires, and keeps firing while the good revision comes back.
    sim.alarms = Some((
        vec!["HighErrorRate".into()],
        vec!["HighErrorRate".into(), "DiskFull".into()],
        true,
    ));
    sim.run_until_steady(40);
    assert_eq!(sim.primary().task_definition, "web:1");
    assert_eq!(sim.primary().rollback_of.as_deref(), Some(bad.as_str()));
    assert_eq!(sim.primary().rollout_state, Some(RolloutState::Completed));
    assert_eq!(sim.live_of("web:1"), 4);
    assert!(sim.events.iter().any(|e| e.message
        == format!("(service web) (deployment {bad}) deployment failed: alarm(s) HighErrorRate in ALARM state.")));
    assert!(sim.events.iter().any(|e| {
        e.message
            .contains(&format!("rolling back to deployment {good}."))
    }));
}

#[test]
fn a_firing_alarm_without_rollback_leaves_the_failed_deployment_as_it_is() {
    let mut sim = Sim::new(2, 50, 200);
    sim.run_until_steady(5);
    sim.target = "web:2".into();
    sim.step();
    let bad = sim.primary().id.clone();
    sim.alarms = Some((vec!["Latency".into()], vec!["Latency".into()], false));
    sim.step();
    let d = sim.primary();
    assert_eq!(
        (d.id.as_str(), d.rollout_state),
        (bad.as_str(), Some(RolloutState::Failed))
    );
    let a = d.alarms.as_ref().unwrap();
    assert_eq!(a.status, CircuitBreakerStatus::Triggered);
    assert_eq!(a.triggered_alarm_names, vec!["Latency".to_string()]);
    assert_eq!(
        d.rollout_state_reason.as_deref(),
        Some("Failed due to alarm(s) in ALARM state: Latency.")
    );
}

#[test]
fn a_pause_hook_holds_blue_green_until_continued_and_a_failed_hook_rolls_back() {
    use crate::api::service::DeploymentLifecycleHook;
    use crate::api::states::{HookStatus, HookTargetType};
    use crate::deploy::hooks::{Outcome, hook_id};
    let mut sim = Sim::new(2, 100, 200);
    sim.strategy = Strategy::BlueGreen {
        bake_seconds: 0,
        shift: crate::deploy::TrafficShift::AllAtOnce,
    };
    sim.hooks = vec![
        DeploymentLifecycleHook {
            target_type: HookTargetType::Pause,
            lifecycle_stages: vec![LifecycleStage::PreScaleUp, LifecycleStage::PostScaleUp],
            ..Default::default()
        },
        DeploymentLifecycleHook {
            hook_target_arn: Some("http://127.0.0.1:9/check".into()),
            lifecycle_stages: vec![LifecycleStage::PostProductionTrafficShift],
            ..Default::default()
        },
    ];
    sim.run_until_steady(6);
    let blue = sim.primary().id.clone();
    sim.target = "web:2".into();
    // PRE_SCALE_UP: green does not start until continued.
    let held = sim.step();
    let green = sim.primary().id.clone();
    assert!(held.launch.is_empty(), "{:?}", held.launch);
    assert_eq!(
        sim.primary().lifecycle_stage,
        Some(LifecycleStage::PreScaleUp)
    );
    assert_eq!(
        sim.primary().lifecycle_hook_details[0].status,
        HookStatus::AwaitingAction
    );
    sim.hook_outcomes = BTreeMap::from([(
        hook_id(&green, LifecycleStage::PreScaleUp, 0),
        Outcome::Continue,
    )]);
    assert_eq!(sim.step().launch[0].count, 2, "green starts once continued");
    // POST_SCALE_UP: healthy green waits for its pause; production stays on blue.
    for _ in 0..4 {
        sim.step();
    }
    assert_eq!(
        sim.primary().lifecycle_stage,
        Some(LifecycleStage::PostScaleUp)
    );
    assert_eq!(sim.production.as_deref(), Some(blue.as_str()));
    sim.hook_outcomes = BTreeMap::from([(
        hook_id(&green, LifecycleStage::PostScaleUp, 0),
        Outcome::Continue,
    )]);
    sim.step();
    // Production moved; the call hook after the shift answers IN_PROGRESS, then FAILED.
    assert_eq!(sim.production.as_deref(), Some(green.as_str()));
    let check = hook_id(&green, LifecycleStage::PostProductionTrafficShift, 1);
    sim.hook_outcomes = BTreeMap::from([(check.clone(), Outcome::InProgress(None))]);
    sim.step();
    assert_eq!(
        sim.primary().lifecycle_stage,
        Some(LifecycleStage::PostProductionTrafficShift)
    );
    sim.hook_outcomes = BTreeMap::from([(check.clone(), Outcome::Failed("p99 4s".into()))]);
    sim.step();
    assert_eq!(
        sim.production.as_deref(),
        Some(blue.as_str()),
        "back on blue"
    );
    assert_eq!(sim.primary().id, blue);
    let failed = sim.deployments.iter().find(|d| d.id == green).unwrap();
    assert_eq!(failed.rollout_state, Some(RolloutState::Failed));
    assert_eq!(
        failed.rollout_state_reason.as_deref(),
        Some(
            format!(
                "ECS deployment lifecycle hook {check} at POST_PRODUCTION_TRAFFIC_SHIFT failed: p99 4s"
            )
            .as_str()
        )
    );
    sim.hook_outcomes.clear();
    sim.run_until_steady(10);
    assert_eq!(sim.live_of("web:2"), 0);
    assert_eq!(sim.live_of("web:1"), 2);
}

#[test]
fn a_linear_deployment_moves_production_traffic_step_by_step_after_each_bake() {
    let mut sim = Sim::new(2, 100, 200);
    sim.strategy = Strategy::BlueGreen {
        bake_seconds: 0,
        shift: crate::deploy::TrafficShift::Linear {
            step_percent: 25.0,
            step_bake_seconds: 25,
        },
    };
    sim.run_until_steady(6);
    let blue = sim.primary().id.clone();
    sim.target = "web:2".into();
    let mut seen: Vec<f64> = Vec::new();
    for _ in 0..40 {
        sim.step();
        if let Some(p) = sim
            .deployments
            .iter()
            .find(|d| d.task_definition == "web:2")
            .and_then(|d| d.production_traffic_percent)
            && seen.last() != Some(&p)
        {
            seen.push(p);
            // Blue keeps production until green has all of it.
            let expected = if p < 100.0 { &blue } else { &sim.primary().id };
            assert_eq!(
                sim.production.as_deref(),
                Some(expected.as_str()),
                "at {p}%"
            );
        }
    }
    assert_eq!(seen, vec![25.0, 50.0, 75.0, 100.0]);
    assert_eq!(sim.primary().task_definition, "web:2");
    assert_eq!(sim.primary().rollout_state, Some(RolloutState::Completed));
    assert_eq!(sim.live_of("web:1"), 0);
    // Each step waited its bake (the simulation's clock moves 10 s a step).
    let steps: Vec<&EcsEvent> = sim
        .events
        .iter()
        .filter(|e| e.message.contains("of production traffic shifted"))
        .collect();
    assert_eq!(steps.len(), 3, "{steps:?}");
    assert_eq!(
        crate::deploy::TrafficShift::Canary {
            canary_percent: 10.0,
            canary_bake_seconds: 600
        }
        .next(Some(10.0)),
        (100.0, 600)
    );
}

#[test]
fn with_no_bake_blue_stops_only_in_the_pass_after_production_moved() {
    let mut sim = Sim::new(2, 100, 200);
    sim.strategy = Strategy::BlueGreen {
        bake_seconds: 0,
        shift: crate::deploy::TrafficShift::AllAtOnce,
    };
    sim.run_until_steady(6);
    let blue = deployment_label(&sim.primary().id).to_string();
    sim.target = "web:2".into();
    for _ in 0..10 {
        let before = sim.production.clone();
        let plan = sim.step();
        if plan.production != before {
            assert!(
                plan.stop.iter().all(|t| t.deployment != blue),
                "{:?}",
                plan.stop
            );
        }
    }
    assert_eq!(sim.live_of("web:1"), 0);
}
