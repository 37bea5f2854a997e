//! Container instances: the Nodes a cluster has claimed (annotation `ecs.kubecs.io/cluster:
//! NAMESPACE/NAME`). Custom attributes are Node labels under `attribute.ecs.kubecs.io/`, the
//! ones the placement engine and the cluster query language read; DRAINING is a cordon.

use k8s_openapi::api::core::v1::{Node, Pod};
use kube::ResourceExt;
use kube::api::{ListParams, Patch, PatchParams};
use serde::Deserialize;
use serde_json::{Value, json};

use super::{Caller, ClusterRef};
use crate::api::labels;
use crate::aws::AwsError;
use crate::aws::page::page;
use crate::aws::time::epoch;
use crate::placement::instance::{
    ATTRIBUTE_LABEL_PREFIX, CLAIM_ANNOTATION, ContainerInstance, pod_is_active, pod_requests,
};
use crate::placement::query::{InstanceFacts, Query};

/// A claimed Node with what the query language and DescribeContainerInstances need.
struct Instance {
    node: Node,
    ci: ContainerInstance,
    /// Active pods of the cluster on it (that the caller may read).
    tasks: Vec<Pod>,
}

impl InstanceFacts for Instance {
    fn ec2_instance_id(&self) -> &str {
        &self.ci.id
    }
    fn attribute(&self, name: &str) -> Option<&str> {
        self.ci.attributes.get(name).map(String::as_str)
    }
    fn agent_connected(&self) -> bool {
        self.ci.agent_connected
    }
    fn agent_version(&self) -> Option<&str> {
        self.node
            .status
            .as_ref()?
            .node_info
            .as_ref()
            .map(|i| i.kubelet_version.as_str())
    }
    fn registered_at(&self) -> Option<&str> {
        self.ci.registered_at.as_deref()
    }
    fn running_tasks_count(&self) -> usize {
        self.tasks.len()
    }
    fn any_task_group(&self, test: &mut dyn FnMut(&str) -> bool) -> bool {
        self.tasks.iter().any(|p| {
            let l = p.labels();
            let group = match l.get(labels::SERVICE) {
                Some(s) => format!("service:{s}"),
                None => format!(
                    "family:{}",
                    l.get(labels::FAMILY).cloned().unwrap_or_default()
                ),
            };
            test(&group)
        })
    }
}

async fn instances(c: &Caller, r: &ClusterRef) -> Result<Vec<Instance>, AwsError> {
    let claim = format!("{}/{}", r.namespace, r.name);
    let arn = crate::arn::container_instance(&r.namespace, &r.name, "*");
    let nodes = c
        .cluster_api::<Node>()
        .list(&ListParams::default())
        .await
        .map_err(|e| c.kube_error(e, &arn))?
        .items;
    let pods = c
        .api::<Pod>(&r.namespace)
        .list(&ListParams::default().labels(&format!("{}={}", labels::CLUSTER, r.name)))
        .await
        .map_err(|e| c.kube_error(e, &arn))?
        .items;
    Ok(nodes
        .into_iter()
        .filter(|n| n.annotations().get(CLAIM_ANNOTATION) == Some(&claim))
        .map(|node| {
            let ci = ContainerInstance::from_node(&node);
            let tasks = pods
                .iter()
                .filter(|p| {
                    pod_is_active(p)
                        && p.spec.as_ref().and_then(|s| s.node_name.as_deref()) == Some(&ci.id)
                })
                .cloned()
                .collect();
            Instance { node, ci, tasks }
        })
        .collect())
}

fn resource(name: &str, v: i64) -> Value {
    json!({ "name": name, "type": "INTEGER", "integerValue": v, "doubleValue": 0.0, "longValue": 0 })
}

fn instance_json(r: &ClusterRef, i: &Instance) -> Value {
    let (cpu, mem) = i
        .tasks
        .iter()
        .map(pod_requests)
        .fold((0, 0), |(a, b), (c, m)| (a + c, b + m));
    let attributes: Vec<Value> =
        i.ci.attributes
            .iter()
            .map(|(k, v)| json!({ "name": k, "value": v }))
            .collect();
    let pending = i
        .tasks
        .iter()
        .filter(|p| p.status.as_ref().and_then(|s| s.phase.as_deref()) == Some("Pending"))
        .count();
    let mut v = json!({
        "containerInstanceArn": crate::arn::container_instance(&r.namespace, &r.name, &i.ci.id),
        "ec2InstanceId": i.ci.id,
        "version": 1,
        "versionInfo": { "agentVersion": i.agent_version().unwrap_or_default() },
        "remainingResources": [resource("CPU", i.ci.registered_cpu - cpu), resource("MEMORY", i.ci.registered_memory - mem)],
        "registeredResources": [resource("CPU", i.ci.registered_cpu), resource("MEMORY", i.ci.registered_memory)],
        "status": i.ci.status(),
        "agentConnected": i.ci.agent_connected,
        "runningTasksCount": i.tasks.len() - pending,
        "pendingTasksCount": pending,
        "attributes": attributes,
        "tags": [],
    });
    if let Some(t) = i.ci.registered_at.as_deref().and_then(epoch) {
        v["registeredAt"] = json!(t);
    }
    v
}

fn node_name(s: &str) -> &str {
    s.rsplit('/').next().unwrap_or(s)
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase")]
pub struct ListContainerInstances {
    cluster: Option<String>,
    filter: Option<String>,
    next_token: Option<String>,
    max_results: Option<i32>,
    status: Option<crate::api::states::InstanceState>,
}

pub async fn list(c: &Caller, i: ListContainerInstances) -> Result<Value, AwsError> {
    let r = ClusterRef::resolve(c, i.cluster.as_deref())?;
    super::clusters::get(c, &r).await?;
    let query = match i.filter.as_deref().filter(|f| !f.trim().is_empty()) {
        Some(f) => Some(Query::parse(f).map_err(|e| AwsError::invalid_parameter(e.to_string()))?),
        None => None,
    };
    let arns: Vec<String> = instances(c, &r)
        .await?
        .iter()
        .filter(|x| i.status.is_none_or(|s| x.ci.status() == s))
        .filter(|x| query.as_ref().is_none_or(|q| q.matches(*x)))
        .map(|x| crate::arn::container_instance(&r.namespace, &r.name, &x.ci.id))
        .collect();
    let (arns, next) = page(arns, i.max_results, i.next_token.as_deref(), 100)?;
    Ok(json!({ "containerInstanceArns": arns, "nextToken": next }))
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase")]
pub struct DescribeContainerInstances {
    cluster: Option<String>,
    container_instances: Vec<String>,
}

pub async fn describe(c: &Caller, i: DescribeContainerInstances) -> Result<Value, AwsError> {
    if i.container_instances.is_empty() || i.container_instances.len() > 100 {
        return Err(AwsError::invalid_parameter(
            "containerInstances must list 1 to 100 container instances.",
        ));
    }
    let r = ClusterRef::resolve(c, i.cluster.as_deref())?;
    super::clusters::get(c, &r).await?;
    let all = instances(c, &r).await?;
    let (mut found, mut failures) = (Vec::new(), Vec::new());
    for want in &i.container_instances {
        match all.iter().find(|x| x.ci.id == node_name(want)) {
            Some(x) => found.push(instance_json(&r, x)),
            None => failures.push(json!({
                "arn": crate::arn::container_instance(&r.namespace, &r.name, node_name(want)),
                "reason": "MISSING",
            })),
        }
    }
    Ok(json!({ "containerInstances": found, "failures": failures }))
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase")]
pub struct UpdateContainerInstancesState {
    cluster: Option<String>,
    container_instances: Vec<String>,
    status: crate::api::states::InstanceState,
}

/// DRAINING cordons the Node (no new task is placed there; the Service controller replaces
/// service tasks on it); ACTIVE uncordons it.
pub async fn update_state(c: &Caller, i: UpdateContainerInstancesState) -> Result<Value, AwsError> {
    use crate::api::states::InstanceState;
    if !matches!(i.status, InstanceState::Active | InstanceState::Draining) {
        return Err(AwsError::invalid_parameter(
            "Container instances can only be set to ACTIVE or DRAINING.",
        ));
    }
    let r = ClusterRef::resolve(c, i.cluster.as_deref())?;
    super::clusters::get(c, &r).await?;
    let all = instances(c, &r).await?;
    let (mut found, mut failures) = (Vec::new(), Vec::new());
    for want in &i.container_instances {
        let name = node_name(want);
        let arn = crate::arn::container_instance(&r.namespace, &r.name, name);
        let Some(x) = all.iter().find(|x| x.ci.id == name) else {
            failures.push(json!({ "arn": arn, "reason": "MISSING" }));
            continue;
        };
        let cordon = i.status == InstanceState::Draining;
        let node = c
            .cluster_api::<Node>()
            .patch(
                name,
                &PatchParams::default(),
                &Patch::Merge(json!({ "spec": { "unschedulable": cordon } })),
            )
            .await
            .map_err(|e| c.kube_error(e, &arn))?;
        let updated = Instance {
            ci: ContainerInstance::from_node(&node),
            node,
            tasks: x.tasks.clone(),
        };
        found.push(instance_json(&r, &updated));
    }
    Ok(json!({ "containerInstances": found, "failures": failures }))
}

#[derive(Deserialize, Clone, Default)]
#[serde(rename_all = "camelCase")]
pub struct Attribute {
    name: String,
    value: Option<String>,
    target_type: Option<String>,
    target_id: Option<String>,
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase")]
pub struct Attributes {
    cluster: Option<String>,
    attributes: Vec<Attribute>,
}

/// The Node label of custom attribute `name`, refused in ECS's words when Kubernetes cannot
/// hold it.
fn attribute_label(a: &Attribute) -> Result<String, AwsError> {
    let label = format!("{ATTRIBUTE_LABEL_PREFIX}{}", a.name);
    let name_ok = !a.name.is_empty()
        && a.name.len() <= 63
        && a.name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b))
        && !a.name.starts_with("ecs.");
    let value_ok = a.value.as_deref().is_none_or(|v| {
        v.len() <= 63
            && v.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b))
    });
    if !name_ok || !value_ok {
        return Err(AwsError::invalid_parameter(format!(
            "Attribute {}={} is not supported: kubecs keeps custom attributes as Node labels (up to 63 letters, numbers, '-', '_' and '.'; names not starting with 'ecs.').",
            a.name,
            a.value.as_deref().unwrap_or_default()
        )));
    }
    if a.target_type
        .as_deref()
        .is_some_and(|t| t != "container-instance")
    {
        return Err(AwsError::invalid_parameter(
            "Attributes can only target container instances.",
        ));
    }
    Ok(label)
}

async fn set_attributes(c: &Caller, i: Attributes, put: bool) -> Result<Value, AwsError> {
    if i.attributes.is_empty() || i.attributes.len() > 10 {
        return Err(AwsError::invalid_parameter(
            "attributes must list 1 to 10 attributes.",
        ));
    }
    let r = ClusterRef::resolve(c, i.cluster.as_deref())?;
    super::clusters::get(c, &r).await?;
    let all = instances(c, &r).await?;
    for a in &i.attributes {
        let label = attribute_label(a)?;
        let id = a
            .target_id
            .as_deref()
            .map(node_name)
            .ok_or_else(|| AwsError::invalid_parameter("targetId is required."))?;
        let arn = crate::arn::container_instance(&r.namespace, &r.name, id);
        if !all.iter().any(|x| x.ci.id == id) {
            return Err(AwsError::bad(
                "TargetNotFoundException",
                format!("Could not find {arn}."),
            ));
        }
        let value = if put {
            json!(a.value.clone().unwrap_or_default())
        } else {
            Value::Null
        };
        c.cluster_api::<Node>()
            .patch(
                id,
                &PatchParams::default(),
                &Patch::Merge(json!({ "metadata": { "labels": { label: value } } })),
            )
            .await
            .map_err(|e| c.kube_error(e, &arn))?;
    }
    let echoed: Vec<Value> = i
        .attributes
        .iter()
        .map(|a| {
            json!({
                "name": a.name,
                "value": a.value,
                "targetType": "container-instance",
                "targetId": a.target_id,
            })
        })
        .collect();
    Ok(json!({ "attributes": echoed }))
}

pub async fn put_attributes(c: &Caller, i: Attributes) -> Result<Value, AwsError> {
    set_attributes(c, i, true).await
}

pub async fn delete_attributes(c: &Caller, i: Attributes) -> Result<Value, AwsError> {
    set_attributes(c, i, false).await
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase")]
pub struct ListAttributes {
    cluster: Option<String>,
    target_type: String,
    attribute_name: Option<String>,
    attribute_value: Option<String>,
    next_token: Option<String>,
    max_results: Option<i32>,
}

pub async fn list_attributes(c: &Caller, i: ListAttributes) -> Result<Value, AwsError> {
    if i.target_type != "container-instance" {
        return Err(AwsError::invalid_parameter(
            "targetType must be container-instance.",
        ));
    }
    let r = ClusterRef::resolve(c, i.cluster.as_deref())?;
    super::clusters::get(c, &r).await?;
    let mut rows = Vec::new();
    for x in instances(c, &r).await? {
        let arn = crate::arn::container_instance(&r.namespace, &r.name, &x.ci.id);
        for (k, v) in &x.ci.attributes {
            let wanted = i.attribute_name.as_ref().is_none_or(|n| n == k)
                && i.attribute_value.as_ref().is_none_or(|w| w == v);
            if wanted {
                rows.push(
                    serde_json::to_string(&json!({
                        "name": k, "value": v, "targetType": "container-instance", "targetId": arn,
                    }))
                    .unwrap_or_default(),
                );
            }
        }
    }
    let (rows, next) = page(rows, i.max_results, i.next_token.as_deref(), 100)?;
    let attributes: Vec<Value> = rows
        .iter()
        .filter_map(|r| serde_json::from_str(r).ok())
        .collect();
    Ok(json!({ "attributes": attributes, "nextToken": next }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn custom_attributes_must_fit_a_node_label() {
        let a = |n: &str, v: &str| Attribute {
            name: n.into(),
            value: Some(v.into()),
            ..Default::default()
        };
        assert_eq!(
            attribute_label(&a("stack", "prod")).unwrap(),
            "attribute.ecs.kubecs.io/stack"
        );
        assert!(attribute_label(&a("ecs.instance-type", "x")).is_err());
        assert!(attribute_label(&a("stack", "has space")).is_err());
        assert!(attribute_label(&a("", "x")).is_err());
    }
}
