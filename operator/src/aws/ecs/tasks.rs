//! Tasks: a task is a pod (a service's, or one of a Task object's for RunTask). Its ECS id is
//! the pod's uid without dashes (32 hex digits, like ECS's), as the Task controller's ARNs
//! already say; the pod name is accepted too. A RunTask task whose pod is gone is still
//! described from the Task object's status.

use std::time::Duration;

use k8s_openapi::api::core::v1::Pod;
use kube::ResourceExt;
use kube::api::{DeleteParams, ListParams, ObjectMeta, Patch, PatchParams, PostParams};
use serde::Deserialize;
use serde_json::{Map, Value, json};

use super::{Caller, ClusterRef, task_definition_arn};
use crate::api::labels;
use crate::api::states::{DesiredStatus, LastStatus};
use crate::api::task::TaskInfo;
use crate::api::{Task, TaskSpec};
use crate::aws::page::page;
use crate::aws::time::{epoch, epoch_of};
use crate::aws::{AwsError, strip_nulls};
use crate::controllers::image_digests;
use crate::deploy::TaskPod;
use crate::deploy::task::observe;
use crate::taskdef::annotations;

/// How long RunTask waits for the Task controller to place the tasks.
const RUN_WAIT: Duration = Duration::from_secs(20);
/// StopTask's reason when the caller gives none (ECS's console words).
const DEFAULT_STOP_REASON: &str = "Task stopped by user";

pub(super) fn task_id(uid: &str) -> String {
    uid.replace('-', "")
}

pub(super) fn task_arn(ns: &str, cluster: &str, id: &str) -> String {
    format!(
        "arn:aws:ecs:{}:{ns}:task/{cluster}/{id}",
        crate::arn::REGION
    )
}

fn now() -> i64 {
    k8s_openapi::jiff::Timestamp::now().as_second()
}

/// What the caller may read of a cluster's tasks: its pods and its RunTask objects.
pub(super) struct Seen {
    pub(super) pods: Vec<Pod>,
    runs: Vec<Task>,
}

pub(super) async fn seen(c: &Caller, r: &ClusterRef) -> Result<Seen, AwsError> {
    let pods = c
        .api::<Pod>(&r.namespace)
        .list(&ListParams::default().labels(&format!("{}={}", labels::CLUSTER, r.name)))
        .await
        .map_err(|e| c.kube_error(e, &task_arn(&r.namespace, &r.name, "*")))?
        .items;
    let runs = c
        .api::<Task>(&r.namespace)
        .list(&ListParams::default())
        .await
        .map_err(|e| c.kube_error(e, &task_arn(&r.namespace, &r.name, "*")))?
        .items
        .into_iter()
        .filter(|t| crate::controllers::cluster::cluster_name(t.spec.cluster.as_deref()) == r.name)
        .collect();
    Ok(Seen { pods, runs })
}

impl Seen {
    fn run_of(&self, pod: &Pod) -> Option<&Task> {
        let name = pod.labels().get(labels::TASK)?;
        self.runs.iter().find(|t| &t.name_any() == name)
    }

    /// The pod of id `id` (uid hex or pod name).
    pub(super) fn pod(&self, id: &str) -> Option<&Pod> {
        self.pods
            .iter()
            .find(|p| p.uid().is_some_and(|u| task_id(&u) == id) || p.name_any() == id)
    }

    /// A RunTask task whose pod is gone.
    fn recorded(&self, id: &str) -> Option<(&Task, &TaskInfo)> {
        self.runs.iter().find_map(|t| {
            let infos = t.status.as_ref()?.tasks.iter();
            infos
                .clone()
                .find(|i| {
                    i.task_id == id
                        || i.task_arn
                            .as_deref()
                            .is_some_and(|a| a.ends_with(&format!("/{id}")))
                })
                .map(|i| (t, i))
        })
    }

    /// Whether any of the cluster's tasks is not STOPPED, read as DescribeTasks reads them:
    /// from the pods, then from RunTask records whose pods are gone. A RunTask the controller
    /// has not placed yet counts as active. (The Task objects' own status follows the pods,
    /// so it may still say RUNNING for a task DescribeTasks already shows STOPPED.)
    pub(super) fn any_active(&self) -> bool {
        let pod_active = self
            .pods
            .iter()
            .any(|p| observe(&TaskPod::from_pod(p), now(), 0).last_status != LastStatus::Stopped);
        let record_active = self.runs.iter().any(|t| match &t.status {
            None => true,
            Some(s) => s.tasks.iter().any(|i| {
                let covered = self.pods.iter().any(|p| p.name_any() == i.task_id);
                !covered && i.last_status != LastStatus::Stopped
            }),
        });
        pod_active || record_active
    }

    fn all_ids(&self) -> Vec<(String, Value)> {
        let mut out: Vec<(String, Value)> = self
            .pods
            .iter()
            .map(|p| {
                (
                    p.uid().map(|u| task_id(&u)).unwrap_or_default(),
                    pod_task(p, self.run_of(p)),
                )
            })
            .collect();
        for t in &self.runs {
            for i in t.status.iter().flat_map(|s| &s.tasks) {
                let covered = self.pods.iter().any(|p| p.name_any() == i.task_id);
                if !covered && let Some(arn) = &i.task_arn {
                    let id = arn.rsplit('/').next().unwrap_or_default().to_string();
                    out.push((id, recorded_task(t, i)));
                }
            }
        }
        out
    }
}

/// ECS's `Task` of a task pod.
fn pod_task(pod: &Pod, run: Option<&Task>) -> Value {
    let ns = pod.namespace().unwrap_or_default();
    let l = pod.labels();
    let cluster = l.get(labels::CLUSTER).cloned().unwrap_or_default();
    let id = pod.uid().map(|u| task_id(&u)).unwrap_or_default();
    let arn = task_arn(&ns, &cluster, &id);
    let t = observe(&TaskPod::from_pod(pod), now(), 0);
    let family = l.get(labels::FAMILY).cloned().unwrap_or_default();
    let td = pod
        .annotations()
        .get(annotations::TASK_DEFINITION)
        .cloned()
        .unwrap_or_else(|| {
            format!(
                "{family}:{}",
                l.get(labels::REVISION).cloned().unwrap_or_default()
            )
        });
    let desired = if t.stopping || t.stop.is_some() || t.last_status == LastStatus::Stopped {
        DesiredStatus::Stopped
    } else {
        DesiredStatus::Running
    };
    let spec = pod.spec.as_ref();
    let status = pod.status.as_ref();
    let image_of = |name: &str| {
        spec.and_then(|s| {
            s.containers
                .iter()
                .chain(s.init_containers.iter().flatten())
                .find(|c| c.name == name)
                .and_then(|c| c.image.clone())
        })
    };
    let image_id_of = |name: &str| {
        status.and_then(|s| {
            s.container_statuses
                .iter()
                .flatten()
                .chain(s.init_container_statuses.iter().flatten())
                .find(|c| c.name == name)
                .map(|c| c.image_id.as_str())
                .filter(|i| !i.is_empty())
        })
    };
    let containers: Vec<Value> = t
        .containers
        .iter()
        .map(|ci| {
            strip_nulls(json!({
                "containerArn": format!("arn:aws:ecs:{}:{ns}:container/{cluster}/{id}/{}", crate::arn::REGION, ci.name),
                "taskArn": arn,
                "name": ci.name,
                "image": image_of(&ci.name).as_deref().map(image_digests::unpinned),
                "imageDigest": image_digests::running_digest(image_id_of(&ci.name), image_of(&ci.name).as_deref()),
                "lastStatus": ci.last_status,
                "exitCode": ci.exit_code,
                "reason": ci.reason,
                "healthStatus": ci.health_status,
            }))
        })
        .collect();
    let attachments: Vec<Value> = status
        .and_then(|s| s.pod_ip.clone())
        .map(|ip| {
            vec![json!({
                "id": pod.uid().unwrap_or_default(),
                "type": "ElasticNetworkInterface",
                "status": "ATTACHED",
                "details": [
                    {"name": "networkInterfaceId", "value": format!("eni-{}", &id[..17.min(id.len())])},
                    {"name": "privateIPv4Address", "value": ip},
                ],
            })]
        })
        .unwrap_or_default();
    let stopped_at = status
        .into_iter()
        .flat_map(|s| s.container_statuses.iter().flatten())
        .filter_map(|c| c.state.as_ref()?.terminated.as_ref()?.finished_at.as_ref())
        .map(epoch_of)
        .fold(None, |m: Option<f64>, x| Some(m.map_or(x, |m| m.max(x))));
    let group = match (l.get(labels::SERVICE), run) {
        (Some(s), _) => format!("service:{s}"),
        (None, Some(r)) => r
            .spec
            .group
            .clone()
            .unwrap_or_else(|| format!("family:{family}")),
        (None, None) => format!("family:{family}"),
    };
    let started_by = match (l.get(labels::DEPLOYMENT), run) {
        (Some(d), _) => Some(d.clone()),
        (None, Some(r)) => r.spec.started_by.clone(),
        _ => None,
    };
    strip_nulls(json!({
        "taskArn": arn,
        "clusterArn": crate::arn::cluster(&ns, &cluster),
        "taskDefinitionArn": task_definition_arn(&ns, &td),
        "containerInstanceArn": t.node.as_ref().map(|n| crate::arn::container_instance(&ns, &cluster, n)),
        "lastStatus": t.last_status,
        "desiredStatus": desired,
        "healthStatus": t.health,
        "containers": containers,
        "attachments": attachments,
        "group": group,
        "startedBy": started_by,
        "stopCode": t.stop.as_ref().filter(|_| desired == DesiredStatus::Stopped).map(|s| s.code),
        "stoppedReason": t.stop.as_ref().filter(|_| desired == DesiredStatus::Stopped).map(|s| s.reason.clone()),
        "createdAt": pod.metadata.creation_timestamp.as_ref().map(epoch_of),
        "startedAt": t.started_at.map(|s| s as f64),
        "stoppingAt": pod.metadata.deletion_timestamp.as_ref().map(epoch_of),
        "stoppedAt": stopped_at.filter(|_| t.last_status == LastStatus::Stopped),
        "launchType": run.and_then(|r| r.spec.launch_type),
        "capacityProviderName": l.get(labels::CAPACITY_PROVIDER),
        "tags": run.map(|r| r.spec.tags.clone()).unwrap_or_default(),
        "version": 1,
    }))
}

/// ECS's `Task` of a RunTask task whose pod is gone, from the Task's status.
fn recorded_task(run: &Task, i: &TaskInfo) -> Value {
    let ns = run.namespace().unwrap_or_default();
    let cluster =
        crate::controllers::cluster::cluster_name(run.spec.cluster.as_deref()).to_string();
    let td = run
        .status
        .as_ref()
        .and_then(|s| s.task_definition.clone())
        .unwrap_or_else(|| run.spec.task_definition.clone());
    let arn = i
        .task_arn
        .clone()
        .unwrap_or_else(|| task_arn(&ns, &cluster, &i.task_id));
    let containers: Vec<Value> = i
        .containers
        .iter()
        .map(|ci| {
            strip_nulls(json!({
                "taskArn": arn,
                "name": ci.name,
                "lastStatus": ci.last_status,
                "exitCode": ci.exit_code,
                "reason": ci.reason,
                "healthStatus": ci.health_status,
            }))
        })
        .collect();
    strip_nulls(json!({
        "taskArn": arn,
        "clusterArn": crate::arn::cluster(&ns, &cluster),
        "taskDefinitionArn": task_definition_arn(&ns, &td),
        "containerInstanceArn": i.container_instance.as_ref().map(|n| crate::arn::container_instance(&ns, &cluster, n)),
        "availabilityZone": i.availability_zone,
        "lastStatus": i.last_status,
        "desiredStatus": i.desired_status,
        "healthStatus": i.health_status,
        "containers": containers,
        "group": run.spec.group.clone().unwrap_or_else(|| format!("family:{}", td.split(':').next().unwrap_or_default())),
        "startedBy": run.spec.started_by,
        "stopCode": i.stop_code,
        "stoppedReason": i.stopped_reason,
        "createdAt": run.metadata.creation_timestamp.as_ref().map(epoch_of),
        "startedAt": i.started_at.as_deref().and_then(epoch),
        "stoppedAt": i.stopped_at.as_deref().and_then(epoch),
        "launchType": run.spec.launch_type,
        "tags": run.spec.tags,
        "version": 1,
    }))
}

/// The id a request names (`arn:...:task/CLUSTER/ID` or `ID`).
pub(super) fn id_of(s: &str) -> &str {
    s.rsplit('/').next().unwrap_or(s)
}

pub async fn run(c: &Caller, input: Map<String, Value>) -> Result<Value, AwsError> {
    let r = ClusterRef::resolve(c, input.get("cluster").and_then(Value::as_str))?;
    super::clusters::get(c, &r).await?;
    let mut spec: Map<String, Value> = input
        .into_iter()
        .filter(|(k, _)| !matches!(k.as_str(), "cluster" | "clientToken"))
        .collect();
    spec.insert("cluster".into(), json!(r.name));
    let spec: TaskSpec = serde_json::from_value(Value::Object(spec))
        .map_err(|e| AwsError::invalid_parameter(e.to_string()))?;
    if !(1..=10).contains(&spec.count.unwrap_or(1)) {
        return Err(AwsError::invalid_parameter(
            "count must be between 1 and 10.",
        ));
    }
    super::taskdefs::exists(c, &spec.task_definition).await?;
    let family = crate::controllers::taskdef::TaskDefinitionRef::parse(&spec.task_definition)
        .map_err(AwsError::client)?
        .family;
    let mut suffix = [0u8; 4];
    getrandom::fill(&mut suffix).expect("the OS provides randomness");
    let base: String = crate::taskdef::names::dns_label(&family)
        .chars()
        .take(40)
        .collect();
    let name = format!(
        "{}-{}",
        base.trim_end_matches('-'),
        suffix
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect::<String>()
    );
    let api = c.api::<Task>(&r.namespace);
    let task = Task {
        metadata: ObjectMeta {
            name: Some(name.clone()),
            namespace: Some(r.namespace.clone()),
            ..Default::default()
        },
        spec,
        status: None,
    };
    api.create(&PostParams::default(), &task)
        .await
        .map_err(|e| c.kube_error(e, &task_arn(&r.namespace, &r.name, &name)))?;
    // The Task controller places the tasks (or says why not): wait for its answer.
    let deadline = tokio::time::Instant::now() + RUN_WAIT;
    loop {
        let t = api
            .get(&name)
            .await
            .map_err(|e| c.kube_error(e, &task_arn(&r.namespace, &r.name, &name)))?;
        let st = t.status.clone().unwrap_or_default();
        let launched = st.tasks.iter().all(|i| i.task_arn.is_some()) && !st.tasks.is_empty();
        if launched || !st.failures.is_empty() {
            let all = seen(c, &r).await?;
            let tasks: Vec<Value> = st
                .tasks
                .iter()
                .map(
                    |i| match all.pods.iter().find(|p| p.name_any() == i.task_id) {
                        Some(p) => pod_task(p, Some(&t)),
                        None => recorded_task(&t, i),
                    },
                )
                .collect();
            return Ok(json!({ "tasks": tasks, "failures": st.failures }));
        }
        if tokio::time::Instant::now() > deadline {
            return Err(AwsError::server(
                "The task was stored but not placed in time: is the kubecs operator running?",
            ));
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// StartTask: one task on each named container instance. Each is a RunTask (a Task object)
/// placed with `memberOf(ec2InstanceId == ID)`, so the placement engine still checks the
/// room there and says why in ECS's words when there is none.
pub async fn start(c: &Caller, mut input: Map<String, Value>) -> Result<Value, AwsError> {
    let instances: Vec<String> = input
        .remove("containerInstances")
        .and_then(|v| serde_json::from_value(v).ok())
        .unwrap_or_default();
    if instances.is_empty() || instances.len() > 10 {
        return Err(AwsError::invalid_parameter(
            "containerInstances must list 1 to 10 container instances.",
        ));
    }
    let constraints: Vec<Value> = input
        .remove("placementConstraints")
        .and_then(|v| serde_json::from_value(v).ok())
        .unwrap_or_default();
    input.insert("count".into(), json!(1));
    input.insert("launchType".into(), json!("EC2"));
    let (mut tasks, mut failures) = (Vec::new(), Vec::new());
    for instance in &instances {
        let mut one = input.clone();
        let mut on = constraints.clone();
        let id = id_of(instance).replace('\'', "");
        on.push(json!({ "type": "memberOf", "expression": format!("ec2InstanceId == '{id}'") }));
        one.insert("placementConstraints".into(), json!(on));
        let out = run(c, one).await?;
        tasks.extend(out["tasks"].as_array().cloned().unwrap_or_default());
        failures.extend(out["failures"].as_array().cloned().unwrap_or_default());
    }
    Ok(json!({ "tasks": tasks, "failures": failures }))
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase")]
pub struct StopTask {
    cluster: Option<String>,
    task: String,
    reason: Option<String>,
}

pub async fn stop(c: &Caller, i: StopTask) -> Result<Value, AwsError> {
    let r = ClusterRef::resolve(c, i.cluster.as_deref())?;
    super::clusters::get(c, &r).await?;
    let all = seen(c, &r).await?;
    let id = id_of(&i.task);
    let Some(pod) = all.pod(id) else {
        return match all.recorded(id) {
            Some((t, info)) => Ok(json!({ "task": recorded_task(t, info) })),
            None => Err(AwsError::invalid_parameter(
                "The referenced task was not found.",
            )),
        };
    };
    let arn = task_arn(&r.namespace, &r.name, id);
    let reason = i
        .reason
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| DEFAULT_STOP_REASON.into());
    let pods = c.api::<Pod>(&r.namespace);
    // The reason first, so whoever sees the pod go knows it was the user's stop.
    let marked = pods
        .patch(
            &pod.name_any(),
            &PatchParams::default(),
            &Patch::Merge(
                json!({ "metadata": { "annotations": { annotations::STOPPED_REASON: reason } } }),
            ),
        )
        .await
        .map_err(|e| c.kube_error(e, &arn))?;
    let stopping = match pods.delete(&pod.name_any(), &DeleteParams::default()).await {
        Ok(either) => either.left().unwrap_or(marked),
        Err(kube::Error::Api(s)) if s.code == 404 => marked,
        Err(e) => return Err(c.kube_error(e, &arn)),
    };
    Ok(json!({ "task": pod_task(&stopping, all.run_of(pod)) }))
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase")]
pub struct DescribeTasks {
    cluster: Option<String>,
    tasks: Vec<String>,
}

pub async fn describe(c: &Caller, i: DescribeTasks) -> Result<Value, AwsError> {
    if i.tasks.is_empty() || i.tasks.len() > 100 {
        return Err(AwsError::invalid_parameter(
            "tasks must list 1 to 100 tasks.",
        ));
    }
    let r = ClusterRef::resolve(c, i.cluster.as_deref())?;
    super::clusters::get(c, &r).await?;
    let all = seen(c, &r).await?;
    let (mut found, mut failures) = (Vec::new(), Vec::new());
    for t in &i.tasks {
        let id = id_of(t);
        if let Some(p) = all.pod(id) {
            found.push(pod_task(p, all.run_of(p)));
        } else if let Some((run, info)) = all.recorded(id) {
            found.push(recorded_task(run, info));
        } else {
            failures
                .push(json!({ "arn": task_arn(&r.namespace, &r.name, id), "reason": "MISSING" }));
        }
    }
    Ok(json!({ "tasks": found, "failures": failures }))
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase")]
pub struct ListTasks {
    cluster: Option<String>,
    container_instance: Option<String>,
    family: Option<String>,
    next_token: Option<String>,
    max_results: Option<i32>,
    started_by: Option<String>,
    service_name: Option<String>,
    desired_status: Option<DesiredStatus>,
    launch_type: Option<crate::api::common::LaunchType>,
}

pub async fn list(c: &Caller, i: ListTasks) -> Result<Value, AwsError> {
    let r = ClusterRef::resolve(c, i.cluster.as_deref())?;
    super::clusters::get(c, &r).await?;
    let all = seen(c, &r).await?;
    let want = i.desired_status.unwrap_or(DesiredStatus::Running);
    let arns: Vec<String> = all
        .all_ids()
        .into_iter()
        .filter(|(_, t)| t["desiredStatus"] == json!(want))
        .filter(|(_, t)| {
            i.family.as_ref().is_none_or(|f| {
                t["taskDefinitionArn"]
                    .as_str()
                    .and_then(|a| a.rsplit('/').next())
                    .and_then(|fr| fr.split(':').next())
                    == Some(f.as_str())
            })
        })
        .filter(|(_, t)| {
            i.service_name
                .as_ref()
                .is_none_or(|s| t["group"] == json!(format!("service:{}", super::short_name(s))))
        })
        .filter(|(_, t)| {
            i.started_by
                .as_ref()
                .is_none_or(|s| t["startedBy"] == json!(s))
        })
        .filter(|(_, t)| {
            i.container_instance.as_ref().is_none_or(|ci| {
                t["containerInstanceArn"]
                    .as_str()
                    .is_some_and(|a| a.rsplit('/').next() == Some(id_of(ci)))
            })
        })
        .filter(|(_, t)| i.launch_type.is_none_or(|l| t["launchType"] == json!(l)))
        .filter_map(|(_, t)| t["taskArn"].as_str().map(String::from))
        .collect();
    let (arns, next) = page(arns, i.max_results, i.next_token.as_deref(), 100)?;
    Ok(json!({ "taskArns": arns, "nextToken": next }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_stopped_pod_is_described_with_its_exit_code_reason_and_address() {
        let pod: Pod = serde_json::from_value(json!({
            "metadata": {"name": "nightly-0", "namespace": "batch", "uid": "0a1b2c3d-0000-4000-8000-000000000001",
                "creationTimestamp": "2026-12-01T00:00:00Z",
                "labels": {"ecs.kubecs.io/cluster": "real", "ecs.kubecs.io/task": "nightly",
                           "ecs.kubecs.io/family": "etl", "ecs.kubecs.io/revision": "1"},
                "annotations": {"ecs.kubecs.io/essential-containers": "etl", "ecs.kubecs.io/task-definition": "etl:1"}},
            "spec": {"nodeName": "node-a", "containers": [{"name": "etl", "image": "busybox"}]},
            "status": {"phase": "Failed", "podIP": "10.253.0.7", "containerStatuses": [
                {"name": "etl", "image": "busybox", "imageID": "", "ready": false, "restartCount": 0,
                 "state": {"terminated": {"exitCode": 5, "reason": "Error", "finishedAt": "2026-12-01T00:00:09Z"}}}]}
        }))
        .unwrap();
        let t = pod_task(&pod, None);
        assert_eq!(
            t["taskArn"],
            "arn:aws:ecs:kubecs:batch:task/real/0a1b2c3d000040008000000000000001"
        );
        assert_eq!(
            t["taskDefinitionArn"],
            "arn:aws:ecs:kubecs:batch:task-definition/etl:1"
        );
        assert_eq!(t["lastStatus"], "STOPPED");
        assert_eq!(t["desiredStatus"], "STOPPED");
        assert_eq!(t["containers"][0]["exitCode"], 5);
        assert_eq!(t["stopCode"], "EssentialContainerExited");
        assert_eq!(t["stoppedReason"], "Essential container in task exited");
        assert_eq!(t["attachments"][0]["details"][1]["value"], "10.253.0.7");
        assert_eq!(
            t["containerInstanceArn"],
            "arn:aws:ecs:kubecs:batch:container-instance/real/node-a"
        );
        assert_eq!(t["group"], "family:etl");
        assert!(t["stoppedAt"].is_f64());
    }

    #[test]
    fn ids_come_from_arns_or_stand_alone() {
        assert_eq!(id_of("arn:aws:ecs:kubecs:ns:task/prod/abc"), "abc");
        assert_eq!(id_of("abc"), "abc");
    }
}
