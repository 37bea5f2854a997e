//! Deployment history: what the service's deployments imply for their `ServiceDeployment`
//! records (ECS's ServiceDeployment and ServiceRevision), decided from the deployments the
//! planner just wrote. A rollback deployment has no record of its own: it is the rollback of
//! the failed deployment, whose record follows it to ROLLBACK_SUCCESSFUL or ROLLBACK_FAILED,
//! even after the failed deployment has left the service's status.

use crate::api::service::{Deployment, ServiceSpec};
use crate::api::service_deployment::{
    Rollback, ServiceDeploymentCircuitBreaker, ServiceDeploymentSpec, ServiceDeploymentState,
    ServiceDeploymentStatus, ServiceRevision, ServiceRevisionSummary,
};
use crate::api::states::{DeploymentStatus, RolloutState};
use crate::arn;

use super::deployment_label;

/// The service a set of records belongs to.
pub struct Facts<'a> {
    pub namespace: &'a str,
    pub service: &'a str,
    pub cluster: &'a str,
    pub spec: &'a ServiceSpec,
}

impl Facts<'_> {
    pub fn deployment_arn(&self, id: &str) -> String {
        arn::service_deployment(
            self.namespace,
            self.cluster,
            self.service,
            deployment_label(id),
        )
    }

    pub fn revision_arn(&self, id: &str) -> String {
        arn::service_revision(
            self.namespace,
            self.cluster,
            self.service,
            deployment_label(id),
        )
    }
}

/// The object name of a deployment's record: `SERVICE-DIGITS` (within 253 characters).
pub fn record_name(service: &str, id: &str) -> String {
    let digits = deployment_label(id);
    let keep = 253 - 1 - digits.len();
    let service: String = service.chars().take(keep).collect();
    format!("{}-{digits}", service.trim_end_matches(['-', '.']))
}

/// A deployment's whole record.
#[derive(Clone, Debug, PartialEq)]
pub struct Record {
    pub name: String,
    pub spec: ServiceDeploymentSpec,
    pub status: ServiceDeploymentStatus,
}

/// A record whose deployment has left the service's status, updated from its rollback.
#[derive(Clone, Debug, PartialEq)]
pub struct RollbackUpdate {
    pub name: String,
    pub state: ServiceDeploymentState,
    pub updated_at: Option<String>,
    pub finished_at: Option<String>,
}

/// What the deployments (PRIMARY first) imply.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Decision {
    pub records: Vec<Record>,
    pub rollbacks: Vec<RollbackUpdate>,
}

fn summary(f: &Facts, d: &Deployment) -> ServiceRevisionSummary {
    ServiceRevisionSummary {
        arn: f.revision_arn(&d.id),
        requested_task_count: d.desired_count,
        running_task_count: d.running_count,
        pending_task_count: d.pending_count,
    }
}

/// The state a rollback deployment gives the record of the deployment it undoes.
fn rollback_state(r: &Deployment) -> (ServiceDeploymentState, Option<String>) {
    match r.rollout_state {
        Some(RolloutState::Completed) => (
            ServiceDeploymentState::RollbackSuccessful,
            r.updated_at.clone(),
        ),
        Some(RolloutState::Failed) => {
            (ServiceDeploymentState::RollbackFailed, r.updated_at.clone())
        }
        _ => (ServiceDeploymentState::RollbackInProgress, None),
    }
}

fn status_of(f: &Facts, d: &Deployment, deps: &[Deployment]) -> ServiceDeploymentStatus {
    let newest = &deps[0];
    let rollback = deps
        .iter()
        .find(|r| r.rollback_of.as_deref() == Some(d.id.as_str()));
    let mut s = ServiceDeploymentStatus {
        status_reason: d.rollout_state_reason.clone(),
        lifecycle_stage: d.lifecycle_stage,
        target_service_revision: summary(f, d),
        started_at: d.created_at.clone(),
        updated_at: d.updated_at.clone(),
        deployment_circuit_breaker: d.circuit_breaker.as_ref().map(|cb| {
            ServiceDeploymentCircuitBreaker {
                status: cb.status,
                failure_count: cb.failure_count,
                threshold: cb.threshold,
            }
        }),
        alarms: d.alarms.clone(),
        lifecycle_hook_details: d.lifecycle_hook_details.clone(),
        ..Default::default()
    };
    s.status = match d.rollout_state {
        Some(RolloutState::Completed) => {
            s.finished_at = d.updated_at.clone();
            ServiceDeploymentState::Successful
        }
        Some(RolloutState::Failed) => match &d.rolled_back_to {
            Some(good) => {
                s.rollback = Some(Rollback {
                    reason: d.rollout_state_reason.clone().unwrap_or_default(),
                    started_at: rollback
                        .and_then(|r| r.created_at.clone())
                        .or_else(|| d.updated_at.clone())
                        .unwrap_or_default(),
                    service_revision_arn: f.revision_arn(good),
                });
                match rollback {
                    Some(r) => {
                        let (state, finished) = rollback_state(r);
                        s.finished_at = finished;
                        state
                    }
                    // Blue/green: blue took production back at once.
                    None => {
                        s.finished_at = d.updated_at.clone();
                        ServiceDeploymentState::RollbackSuccessful
                    }
                }
            }
            None => {
                s.stopped_at = d.updated_at.clone();
                ServiceDeploymentState::Stopped
            }
        },
        _ if d.status != DeploymentStatus::Primary => {
            // Superseded before it completed: a newer deployment replaces it.
            s.stopped_at = newest.created_at.clone();
            s.status_reason = Some(format!(
                "Service deployment superseded by deployment {}.",
                newest.id
            ));
            ServiceDeploymentState::Stopped
        }
        _ => ServiceDeploymentState::InProgress,
    };
    s
}

/// The records of `deps` (the planner's deployments, PRIMARY first).
pub fn decide(f: &Facts, deps: &[Deployment]) -> Decision {
    let mut out = Decision::default();
    if deps.is_empty() {
        return out;
    }
    for d in deps.iter().filter(|d| d.rollback_of.is_none()) {
        let sources = deps
            .iter()
            .filter(|o| o.id != d.id && o.rollback_of.is_none())
            .filter(|o| o.created_at <= d.created_at)
            .map(|o| summary(f, o))
            .collect();
        out.records.push(Record {
            name: record_name(f.service, &d.id),
            spec: ServiceDeploymentSpec {
                service: f.service.into(),
                cluster: f.cluster.into(),
                deployment_id: d.id.clone(),
                service_deployment_arn: f.deployment_arn(&d.id),
                service_arn: arn::service(f.namespace, f.cluster, f.service),
                cluster_arn: arn::cluster(f.namespace, f.cluster),
                created_at: d.created_at.clone().unwrap_or_default(),
                target_service_revision: ServiceRevision {
                    service_revision_arn: f.revision_arn(&d.id),
                    task_definition: d.task_definition.clone(),
                    container_images: d.container_images.clone(),
                    launch_type: d.launch_type.or(f.spec.launch_type),
                    capacity_provider_strategy: f.spec.capacity_provider_strategy.clone(),
                    load_balancers: f.spec.load_balancers.clone(),
                    created_at: d.created_at.clone().unwrap_or_default(),
                },
                source_service_revisions: sources,
                deployment_configuration: f.spec.deployment_configuration.clone(),
            },
            status: status_of(f, d, deps),
        });
    }
    for r in deps {
        if let Some(failed) = &r.rollback_of
            && !deps.iter().any(|d| &d.id == failed)
        {
            let (state, finished_at) = rollback_state(r);
            out.rollbacks.push(RollbackUpdate {
                name: record_name(f.service, failed),
                state,
                updated_at: r.updated_at.clone(),
                finished_at,
            });
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dep(id: &str, status: DeploymentStatus, state: RolloutState, at: &str) -> Deployment {
        Deployment {
            id: format!("ecs-svc/{id}"),
            status,
            task_definition: "web:1".into(),
            rollout_state: Some(state),
            created_at: Some(at.into()),
            updated_at: Some(at.into()),
            desired_count: 2,
            running_count: 1,
            ..Default::default()
        }
    }

    fn facts(spec: &ServiceSpec) -> Facts<'_> {
        Facts {
            namespace: "team",
            service: "web",
            cluster: "prod",
            spec,
        }
    }

    fn state_of(d: &Decision, id: &str) -> ServiceDeploymentState {
        d.records
            .iter()
            .find(|r| r.spec.deployment_id == format!("ecs-svc/{id}"))
            .unwrap()
            .status
            .status
    }

    #[test]
    fn a_rollout_is_in_progress_then_successful_and_supersedes_the_one_it_replaced() {
        let spec: ServiceSpec =
            serde_json::from_value(serde_json::json!({"taskDefinition": "web"})).unwrap();
        let f = facts(&spec);
        let one = dep(
            "1",
            DeploymentStatus::Primary,
            RolloutState::Completed,
            "2026-01-01T00:00:00Z",
        );
        let d = decide(&f, std::slice::from_ref(&one));
        assert_eq!(state_of(&d, "1"), ServiceDeploymentState::Successful);
        let r = &d.records[0];
        assert_eq!(r.name, "web-1");
        assert_eq!(
            r.spec.service_deployment_arn,
            "arn:aws:ecs:kubecs:team:service-deployment/prod/web/1"
        );
        assert_eq!(
            r.spec.target_service_revision.service_revision_arn,
            "arn:aws:ecs:kubecs:team:service-revision/prod/web/1"
        );
        assert_eq!(
            r.status.finished_at.as_deref(),
            Some("2026-01-01T00:00:00Z")
        );

        // Deployment 2 starts; 1 (completed) is its source.
        let mut old = one.clone();
        old.status = DeploymentStatus::Active;
        let two = dep(
            "2",
            DeploymentStatus::Primary,
            RolloutState::InProgress,
            "2026-01-01T00:05:00Z",
        );
        let d = decide(&f, &[two.clone(), old.clone()]);
        assert_eq!(state_of(&d, "2"), ServiceDeploymentState::InProgress);
        assert_eq!(state_of(&d, "1"), ServiceDeploymentState::Successful);
        let r2 = d.records.iter().find(|r| r.name == "web-2").unwrap();
        assert_eq!(r2.spec.source_service_revisions.len(), 1);
        assert_eq!(r2.spec.source_service_revisions[0].running_task_count, 1);

        // Deployment 3 starts before 2 completed: 2 is STOPPED, superseded.
        let mut two_old = two.clone();
        two_old.status = DeploymentStatus::Active;
        let three = dep(
            "3",
            DeploymentStatus::Primary,
            RolloutState::InProgress,
            "2026-01-01T00:06:00Z",
        );
        let d = decide(&f, &[three, two_old, old]);
        let r2 = d.records.iter().find(|r| r.name == "web-2").unwrap();
        assert_eq!(r2.status.status, ServiceDeploymentState::Stopped);
        assert_eq!(
            r2.status.stopped_at.as_deref(),
            Some("2026-01-01T00:06:00Z")
        );
        assert_eq!(
            r2.status.status_reason.as_deref(),
            Some("Service deployment superseded by deployment ecs-svc/3.")
        );
    }

    #[test]
    fn a_rollback_is_tracked_by_the_failed_deployments_record() {
        let spec: ServiceSpec =
            serde_json::from_value(serde_json::json!({"taskDefinition": "web"})).unwrap();
        let f = facts(&spec);
        let mut good = dep(
            "1",
            DeploymentStatus::Active,
            RolloutState::Completed,
            "2026-01-01T00:00:00Z",
        );
        good.status = DeploymentStatus::Active;
        let mut failed = dep(
            "2",
            DeploymentStatus::Active,
            RolloutState::Failed,
            "2026-01-01T00:05:00Z",
        );
        failed.rollout_state_reason =
            Some("ECS deployment circuit breaker: tasks failed to start.".into());
        failed.rolled_back_to = Some(good.id.clone());
        let mut back = dep(
            "3",
            DeploymentStatus::Primary,
            RolloutState::InProgress,
            "2026-01-01T00:07:00Z",
        );
        back.rollback_of = Some(failed.id.clone());
        let d = decide(&f, &[back.clone(), failed.clone(), good.clone()]);
        assert!(
            d.records.iter().all(|r| r.name != "web-3"),
            "a rollback has no record"
        );
        let r2 = d.records.iter().find(|r| r.name == "web-2").unwrap();
        assert_eq!(r2.status.status, ServiceDeploymentState::RollbackInProgress);
        let rb = r2.status.rollback.as_ref().unwrap();
        assert_eq!(rb.started_at, "2026-01-01T00:07:00Z");
        assert_eq!(rb.service_revision_arn, f.revision_arn("ecs-svc/1"));
        assert_eq!(
            rb.reason,
            "ECS deployment circuit breaker: tasks failed to start."
        );

        // The failed deployment drained away; the rollback completes.
        back.rollout_state = Some(RolloutState::Completed);
        back.updated_at = Some("2026-01-01T00:09:00Z".into());
        let d = decide(&f, &[back, good]);
        assert_eq!(
            d.rollbacks,
            vec![RollbackUpdate {
                name: "web-2".into(),
                state: ServiceDeploymentState::RollbackSuccessful,
                updated_at: Some("2026-01-01T00:09:00Z".into()),
                finished_at: Some("2026-01-01T00:09:00Z".into()),
            }]
        );

        // Failed without rollback: STOPPED.
        let mut alone = dep(
            "4",
            DeploymentStatus::Primary,
            RolloutState::Failed,
            "2026-01-01T00:10:00Z",
        );
        alone.rollout_state_reason = Some("Service deployment stopped by request.".into());
        let d = decide(&f, &[alone]);
        assert_eq!(state_of(&d, "4"), ServiceDeploymentState::Stopped);
    }

    #[test]
    fn record_names_fit_in_an_object_name() {
        let long = "s".repeat(253);
        let n = record_name(&long, "ecs-svc/1234567890123456789");
        assert_eq!(n.len(), 253);
        assert!(n.ends_with("-1234567890123456789"));
    }
}
