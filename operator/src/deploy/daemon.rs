//! The DAEMON service scheduler: one task on each container instance that meets the
//! constraints. New instances get one; drained, removed or no longer matching ones lose
//! theirs. A new revision replaces tasks instance by instance (ECS's DAEMON defaults:
//! maximumPercent 100, so the old task stops before the new one starts).

use std::collections::{BTreeMap, BTreeSet};

use super::replica::{Prepared, ServiceSnapshot, prepare};
use super::task::StopCode;
use super::{
    EcsEvent, LastStatus, Launch, ObservedTask, Plan, RolloutState, StopTask, deployment_label,
    task_list,
};

/// Plans one step. `eligible`: the claimed, connected, not draining instances that meet the
/// service's constraints.
pub fn plan(s: &ServiceSnapshot, eligible: &[String]) -> Plan {
    let svc = s.service;
    let Prepared {
        mut deps,
        mut events,
        stop: mut stops,
        stopping,
        ..
    } = prepare(s);
    let primary = deployment_label(&deps[0].id).to_string();
    let primary_failed = deps[0].rollout_state == Some(RolloutState::Failed);
    let eligible: BTreeSet<&str> = eligible.iter().map(String::as_str).collect();
    let reason = format!("Scaling activity initiated by (deployment {})", deps[0].id);

    let mut by_node: BTreeMap<&str, Vec<&ObservedTask>> = BTreeMap::new();
    for t in s.tasks.iter().filter(|t| t.holds_place()) {
        by_node
            .entry(t.node.as_deref().unwrap_or_default())
            .or_default()
            .push(t);
    }
    let mut to_stop: Vec<&ObservedTask> = Vec::new();
    let mut targets: Vec<String> = Vec::new();
    for node in eligible.iter().copied() {
        let here: Vec<&ObservedTask> = by_node.get(node).cloned().unwrap_or_default();
        let live: Vec<&ObservedTask> = here
            .iter()
            .copied()
            .filter(|t| t.is_live() && !stopping.contains(t.name.as_str()))
            .collect();
        let mut mine = live.iter().filter(|t| t.deployment == primary);
        if mine.next().is_some() {
            // One is enough: extra copies and old revisions go.
            to_stop.extend(mine.copied());
            to_stop.extend(live.iter().filter(|t| t.deployment != primary).copied());
        } else if !live.is_empty() {
            if !primary_failed {
                to_stop.extend(live.iter().copied());
            }
        } else if here.is_empty() && !primary_failed {
            targets.push(node.to_string());
        }
    }
    // Instances no longer eligible (drained, gone, not matching): their tasks stop.
    for (node, tasks) in &by_node {
        if !eligible.contains(node) {
            to_stop.extend(
                tasks
                    .iter()
                    .filter(|t| t.is_live() && !stopping.contains(t.name.as_str())),
            );
        }
    }
    for t in &to_stop {
        stops.push(StopTask {
            name: t.name.clone(),
            deployment: t.deployment.clone(),
            code: StopCode::ServiceSchedulerInitiated,
            reason: reason.clone(),
            counted_failure: false,
        });
    }
    if !to_stop.is_empty() {
        events.push(EcsEvent::normal(format!(
            "(service {svc}) has stopped {} running tasks: {}.",
            to_stop.len(),
            task_list(to_stop.iter().map(|t| t.name.as_str()))
        )));
    }
    let mut launch = Vec::new();
    if !targets.is_empty() {
        launch.push(Launch {
            deployment: deps[0].id.clone(),
            task_definition: deps[0].task_definition.clone(),
            count: targets.len(),
            instances: targets,
        });
    }

    let stopped: BTreeSet<&str> = stops.iter().map(|t| t.name.as_str()).collect();
    let live_after: Vec<&ObservedTask> = s
        .tasks
        .iter()
        .filter(|t| t.is_live() && !stopped.contains(t.name.as_str()))
        .collect();
    for d in deps.iter_mut() {
        let l = deployment_label(&d.id).to_string();
        let mine: Vec<&&ObservedTask> = live_after.iter().filter(|t| t.deployment == l).collect();
        d.running_count = mine
            .iter()
            .filter(|t| t.last_status == LastStatus::Running)
            .count() as i32;
        d.pending_count = mine.len() as i32 - d.running_count;
        d.desired_count = if l == primary {
            eligible.len() as i32
        } else {
            mine.len() as i32
        };
    }
    let p_healthy = live_after
        .iter()
        .filter(|t| t.deployment == primary && t.is_stable(s.now))
        .count();
    let others = s
        .tasks
        .iter()
        .filter(|t| t.deployment != primary && t.holds_place())
        .count();
    let quiet = launch.is_empty() && stops.is_empty();
    if deps[0].rollout_state == Some(RolloutState::InProgress)
        && quiet
        && others == 0
        && p_healthy == eligible.len()
    {
        let id = deps[0].id.clone();
        deps[0].rollout_state = Some(RolloutState::Completed);
        deps[0].rollout_state_reason = Some(format!("ECS deployment {id} completed."));
        deps[0].updated_at = Some(s.now_rfc3339.into());
        deps.truncate(1);
        events.push(EcsEvent::normal(format!(
            "(service {svc}) (deployment {id}) deployment completed."
        )));
    }
    let steady = deps.len() == 1
        && deps[0].rollout_state == Some(RolloutState::Completed)
        && quiet
        && p_healthy == eligible.len();
    Plan {
        deployments: deps,
        trigger: s.target.to_string(),
        launch,
        stop: stops,
        events,
        production: None,
        steady,
        stable_in: None,
    }
}

#[cfg(test)]
mod tests {
    use super::super::{Bounds, Strategy, deployment_id};
    use super::*;
    use crate::deploy::Health;
    use crate::deploy::replica::ServiceSnapshot;

    struct World {
        deployments: Vec<crate::api::service::Deployment>,
        trigger: Option<String>,
        tasks: Vec<ObservedTask>,
        target: String,
        seq: u64,
    }

    impl World {
        fn step(&mut self, nodes: &[&str]) -> Plan {
            self.seq += 1;
            let id = deployment_id(self.seq);
            let counted = BTreeSet::new();
            let eligible: Vec<String> = nodes.iter().map(|n| n.to_string()).collect();
            let plan = {
                let s = ServiceSnapshot {
                    service: "agent",
                    bounds: Bounds {
                        desired: nodes.len() as i32,
                        minimum_healthy_percent: 0,
                        maximum_percent: 100,
                    },
                    strategy: Strategy::Rolling,
                    breaker: None,
                    target: &self.target,
                    trigger: self.trigger.as_deref(),
                    deployments: &self.deployments,
                    tasks: &self.tasks,
                    counted: &counted,
                    production: None,
                    now: 0,
                    now_rfc3339: "1970-01-01T00:00:00Z",
                    new_deployment_id: &id,
                    rebalancing: false,
                    force_new: false,
                    stop_deployment: None,
                    alarms: None,
                    hooks: &[],
                    hook_outcomes: &Default::default(),
                };
                plan(&s, &eligible)
            };
            self.deployments = plan.deployments.clone();
            self.trigger = Some(plan.trigger.clone());
            for st in &plan.stop {
                self.tasks.retain(|t| t.name != st.name);
            }
            for t in self.tasks.iter_mut() {
                t.last_status = LastStatus::Running;
            }
            for l in &plan.launch {
                for node in &l.instances {
                    self.seq += 1;
                    self.tasks.push(ObservedTask {
                        name: format!("agent-{}", self.seq),
                        uid: String::new(),
                        deployment: deployment_label(&l.deployment).into(),
                        node: Some(node.clone()),
                        last_status: LastStatus::Pending,
                        health: Health::Unknown,
                        health_checked: false,
                        stopping: false,
                        stop: None,
                        created_at: 0,
                        started_at: None,
                        containers: vec![],
                        draining: false,
                        protected_until: None,
                    });
                }
            }
            plan
        }

        fn nodes_of(&self) -> Vec<String> {
            let mut v: Vec<String> = self.tasks.iter().filter_map(|t| t.node.clone()).collect();
            v.sort();
            v
        }
    }

    fn world() -> World {
        World {
            deployments: vec![],
            trigger: None,
            tasks: vec![],
            target: "agent:1".into(),
            seq: 0,
        }
    }

    #[test]
    fn one_task_per_eligible_instance_following_nodes() {
        let mut w = world();
        let p = w.step(&["a", "b"]);
        assert_eq!(p.launch[0].instances, vec!["a", "b"]);
        w.step(&["a", "b"]);
        assert!(w.step(&["a", "b"]).steady);
        // A new instance gets a task; a drained one loses its task.
        let p = w.step(&["a", "b", "c"]);
        assert_eq!(p.launch[0].instances, vec!["c"]);
        let p = w.step(&["a", "c"]);
        assert_eq!(p.stop.len(), 1);
        w.step(&["a", "c"]);
        assert_eq!(w.nodes_of(), vec!["a", "c"]);
        assert!(w.step(&["a", "c"]).steady);
        assert_eq!(w.nodes_of(), vec!["a", "c"]);
    }

    #[test]
    fn a_new_revision_replaces_each_instance_task_stop_first() {
        let mut w = world();
        w.step(&["a", "b"]);
        w.step(&["a", "b"]);
        w.target = "agent:2".into();
        let p = w.step(&["a", "b"]);
        assert!(p.launch.is_empty(), "max 100%: stop before start");
        assert_eq!(p.stop.len(), 2);
        let p = w.step(&["a", "b"]);
        assert_eq!(p.launch[0].instances.len(), 2);
        w.step(&["a", "b"]);
        let p = w.step(&["a", "b"]);
        assert!(p.steady, "{p:#?}");
        assert_eq!(p.deployments.len(), 1);
        assert_eq!(p.deployments[0].task_definition, "agent:2");
        assert_eq!(w.nodes_of(), vec!["a", "b"]);
    }
}
