//! Services: Service objects. Their spec is CreateService's input in ECS's own field names,
//! so the input maps onto it directly; DescribeServices reads the deployments, events and
//! counts the Service controller keeps in status.

use kube::ResourceExt;
use kube::api::{DeleteParams, ListParams, ObjectMeta, Patch, PatchParams, PostParams};
use serde::Deserialize;
use serde_json::{Map, Value, json};

use super::{Caller, ClusterRef, object_name, short_name, task_definition_arn};
use crate::api::service::FORCE_NEW_DEPLOYMENT_ANNOTATION;
use crate::api::states::ServiceState;
use crate::api::{Service, ServiceSpec};
use crate::aws::page::page;
use crate::aws::time::epoch;
use crate::aws::{AwsError, strip_nulls};
use crate::controllers::cluster::cluster_name;

/// Fields UpdateService may change; CreateService also takes [`CREATE_ONLY_FIELDS`]. The
/// rest of both inputs is ECS's bookkeeping (serviceName, clientToken, role...).
const UPDATABLE_FIELDS: &[&str] = &[
    "taskDefinition",
    "desiredCount",
    "launchType",
    "capacityProviderStrategy",
    "platformVersion",
    "loadBalancers",
    "serviceRegistries",
    "deploymentConfiguration",
    "placementConstraints",
    "placementStrategy",
    "networkConfiguration",
    "healthCheckGracePeriodSeconds",
    "enableECSManagedTags",
    "propagateTags",
    "enableExecuteCommand",
    "availabilityZoneRebalancing",
];
const CREATE_ONLY_FIELDS: &[&str] = &["schedulingStrategy", "deploymentController", "tags"];

fn spec_part(input: &Map<String, Value>, fields: &[&[&str]]) -> Map<String, Value> {
    input
        .iter()
        .filter(|(k, _)| fields.iter().any(|f| f.contains(&k.as_str())))
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect()
}

fn arn_of(ns: &str, svc: &Service) -> String {
    crate::arn::service(
        ns,
        cluster_name(svc.spec.cluster.as_deref()),
        &svc.name_any(),
    )
}

/// ECS's `Service` of a Service object.
pub fn service_json(svc: &Service) -> Value {
    let ns = svc.namespace().unwrap_or_default();
    let cluster = cluster_name(svc.spec.cluster.as_deref()).to_string();
    let st = svc.status.clone().unwrap_or_default();
    let state = if svc.metadata.deletion_timestamp.is_some() {
        ServiceState::Draining
    } else {
        st.status.unwrap_or(ServiceState::Active)
    };
    let spec = &svc.spec;
    let deployments: Vec<Value> = st
        .deployments
        .iter()
        .map(|d| {
            let mut v = json!({
                "id": d.id,
                "status": d.status,
                "taskDefinition": task_definition_arn(&ns, &d.task_definition),
                "desiredCount": d.desired_count,
                "pendingCount": d.pending_count,
                "runningCount": d.running_count,
                "failedTasks": d.failed_tasks,
                "createdAt": d.created_at.as_deref().and_then(epoch),
                "updatedAt": d.updated_at.as_deref().and_then(epoch),
                "capacityProviderStrategy": spec.capacity_provider_strategy,
                "launchType": d.launch_type,
                "rolloutState": d.rollout_state,
                "rolloutStateReason": d.rollout_state_reason,
            });
            if spec.network_configuration.is_some() {
                v["networkConfiguration"] = json!(spec.network_configuration);
            }
            strip_nulls(v)
        })
        .collect();
    let events: Vec<Value> = st
        .events
        .iter()
        .map(|e| json!({ "id": e.id, "createdAt": epoch(&e.created_at), "message": e.message }))
        .collect();
    let task_definition = st
        .task_definition
        .as_deref()
        .map(|t| task_definition_arn(&ns, t))
        .unwrap_or_else(|| task_definition_arn(&ns, &spec.task_definition));
    let v = json!({
        "serviceArn": arn_of(&ns, svc),
        "serviceName": svc.name_any(),
        "clusterArn": crate::arn::cluster(&ns, &cluster),
        "loadBalancers": spec.load_balancers,
        "serviceRegistries": spec.service_registries,
        "status": state,
        "desiredCount": if st.observed_generation.is_some() { st.desired_count } else { spec.desired_count.unwrap_or(0) },
        "runningCount": st.running_count,
        "pendingCount": st.pending_count,
        "launchType": spec.launch_type,
        "capacityProviderStrategy": spec.capacity_provider_strategy,
        "platformVersion": spec.platform_version,
        "taskDefinition": task_definition,
        "deploymentConfiguration": spec.deployment_configuration,
        "deployments": deployments,
        "events": events,
        "createdAt": svc.metadata.creation_timestamp.as_ref().map(crate::aws::time::epoch_of),
        "placementConstraints": spec.placement_constraints,
        "placementStrategy": spec.placement_strategy,
        "networkConfiguration": spec.network_configuration,
        "healthCheckGracePeriodSeconds": spec.health_check_grace_period_seconds,
        "schedulingStrategy": spec.scheduling_strategy.unwrap_or_default(),
        "deploymentController": spec.deployment_controller.clone().map_or_else(|| json!({ "type": "ECS" }), |d| json!(d)),
        "tags": spec.tags,
        "enableECSManagedTags": spec.enable_ecs_managed_tags.unwrap_or(false),
        "propagateTags": spec.propagate_tags.map_or_else(|| json!("NONE"), |p| json!(p)),
        "enableExecuteCommand": spec.enable_execute_command.unwrap_or(false),
        "availabilityZoneRebalancing": st.availability_zone_rebalancing.or(spec.availability_zone_rebalancing),
    });
    strip_nulls(v)
}

/// The service `name` of cluster `r`: ServiceNotFoundException when it is absent or belongs
/// to another cluster.
pub(super) async fn get(c: &Caller, r: &ClusterRef, name: &str) -> Result<Service, AwsError> {
    let name = short_name(name);
    let arn = crate::arn::service(&r.namespace, &r.name, name);
    let svc = c
        .api::<Service>(&r.namespace)
        .get_opt(name)
        .await
        .map_err(|e| c.kube_error(e, &arn))?
        .ok_or_else(AwsError::service_not_found)?;
    if cluster_name(svc.spec.cluster.as_deref()) != r.name {
        return Err(AwsError::service_not_found());
    }
    Ok(svc)
}

pub async fn create(c: &Caller, input: Map<String, Value>) -> Result<Value, AwsError> {
    let r = ClusterRef::resolve(c, input.get("cluster").and_then(Value::as_str))?;
    super::clusters::get(c, &r).await?;
    let name = input
        .get("serviceName")
        .and_then(Value::as_str)
        .ok_or_else(|| AwsError::invalid_parameter("serviceName is required."))?;
    let name = object_name("service", name)?;
    let mut spec = spec_part(&input, &[UPDATABLE_FIELDS, CREATE_ONLY_FIELDS]);
    spec.insert("cluster".into(), json!(r.name));
    if !spec.contains_key("taskDefinition") {
        return Err(AwsError::invalid_parameter(
            "TaskDefinition can not be blank.",
        ));
    }
    let spec: ServiceSpec = serde_json::from_value(Value::Object(spec))
        .map_err(|e| AwsError::invalid_parameter(e.to_string()))?;
    super::taskdefs::exists(c, &spec.task_definition).await?;
    let arn = crate::arn::service(&r.namespace, &r.name, &name);
    let api = c.api::<Service>(&r.namespace);
    if api
        .get_opt(&name)
        .await
        .map_err(|e| c.kube_error(e, &arn))?
        .is_some()
    {
        return Err(AwsError::invalid_parameter(
            "Creation of service was not idempotent.",
        ));
    }
    let svc = Service {
        metadata: ObjectMeta {
            name: Some(name),
            namespace: Some(r.namespace.clone()),
            ..Default::default()
        },
        spec,
        status: None,
    };
    let created = api
        .create(&PostParams::default(), &svc)
        .await
        .map_err(|e| c.kube_error(e, &arn))?;
    Ok(json!({ "service": service_json(&created) }))
}

pub async fn update(c: &Caller, input: Map<String, Value>) -> Result<Value, AwsError> {
    let r = ClusterRef::resolve(c, input.get("cluster").and_then(Value::as_str))?;
    super::clusters::get(c, &r).await?;
    let name = input
        .get("service")
        .and_then(Value::as_str)
        .ok_or_else(|| AwsError::invalid_parameter("service is required."))?;
    let svc = get(c, &r, name).await?;
    let spec = spec_part(&input, &[UPDATABLE_FIELDS]);
    if let Some(td) = spec.get("taskDefinition").and_then(Value::as_str) {
        super::taskdefs::exists(c, td).await?;
    }
    let mut patch = json!({ "spec": spec });
    if input.get("forceNewDeployment").and_then(Value::as_bool) == Some(true) {
        let token = k8s_openapi::jiff::Timestamp::now()
            .as_nanosecond()
            .to_string();
        patch["metadata"] = json!({ "annotations": { FORCE_NEW_DEPLOYMENT_ANNOTATION: token } });
    }
    let arn = arn_of(&r.namespace, &svc);
    let updated = c
        .api::<Service>(&r.namespace)
        .patch(
            &svc.name_any(),
            &PatchParams::default(),
            &Patch::Merge(patch),
        )
        .await
        .map_err(|e| c.kube_error(e, &arn))?;
    Ok(json!({ "service": service_json(&updated) }))
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase")]
pub struct DeleteService {
    cluster: Option<String>,
    service: String,
    force: Option<bool>,
}

pub async fn delete(c: &Caller, i: DeleteService) -> Result<Value, AwsError> {
    let r = ClusterRef::resolve(c, i.cluster.as_deref())?;
    super::clusters::get(c, &r).await?;
    let svc = get(c, &r, &i.service).await?;
    let replica = svc.spec.scheduling_strategy.unwrap_or_default()
        == crate::api::service::SchedulingStrategy::Replica;
    if replica && svc.spec.desired_count.unwrap_or(0) > 0 && i.force != Some(true) {
        return Err(AwsError::invalid_parameter(
            "The service cannot be stopped while it is scaled above 0.",
        ));
    }
    let arn = arn_of(&r.namespace, &svc);
    c.api::<Service>(&r.namespace)
        .delete(&svc.name_any(), &DeleteParams::default())
        .await
        .map_err(|e| c.kube_error(e, &arn))?;
    let mut out = service_json(&svc);
    out["status"] = json!(ServiceState::Draining);
    Ok(json!({ "service": out }))
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase")]
pub struct DescribeServices {
    cluster: Option<String>,
    services: Vec<String>,
}

pub async fn describe(c: &Caller, i: DescribeServices) -> Result<Value, AwsError> {
    if i.services.is_empty() || i.services.len() > 10 {
        return Err(AwsError::invalid_parameter(
            "services must list 1 to 10 services.",
        ));
    }
    let r = ClusterRef::resolve(c, i.cluster.as_deref())?;
    super::clusters::get(c, &r).await?;
    let (mut found, mut failures) = (Vec::new(), Vec::new());
    for s in &i.services {
        match get(c, &r, s).await {
            Ok(svc) => found.push(service_json(&svc)),
            Err(e) if e.code == "ServiceNotFoundException" => failures.push(json!({
                "arn": crate::arn::service(&r.namespace, &r.name, short_name(s)),
                "reason": "MISSING",
            })),
            Err(e) => return Err(e),
        }
    }
    Ok(json!({ "services": found, "failures": failures }))
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase")]
pub struct ListServices {
    cluster: Option<String>,
    next_token: Option<String>,
    max_results: Option<i32>,
    launch_type: Option<crate::api::common::LaunchType>,
    scheduling_strategy: Option<crate::api::service::SchedulingStrategy>,
}

pub async fn list(c: &Caller, i: ListServices) -> Result<Value, AwsError> {
    let r = ClusterRef::resolve(c, i.cluster.as_deref())?;
    super::clusters::get(c, &r).await?;
    let arns: Vec<String> = c
        .api::<Service>(&r.namespace)
        .list(&ListParams::default())
        .await
        .map_err(|e| c.kube_error(e, &r.arn()))?
        .items
        .iter()
        .filter(|s| cluster_name(s.spec.cluster.as_deref()) == r.name)
        .filter(|s| i.launch_type.is_none_or(|l| s.spec.launch_type == Some(l)))
        .filter(|s| {
            i.scheduling_strategy
                .is_none_or(|l| s.spec.scheduling_strategy.unwrap_or_default() == l)
        })
        .map(|s| arn_of(&r.namespace, s))
        .collect();
    let (arns, next) = page(arns, i.max_results, i.next_token.as_deref(), 100)?;
    Ok(json!({ "serviceArns": arns, "nextToken": next }))
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase")]
pub struct ListServicesByNamespace {
    namespace: String,
}

/// Service Connect namespaces (Cloud Map) do not exist in kubecs: no service is in one.
pub async fn list_by_namespace(_c: &Caller, i: ListServicesByNamespace) -> Result<Value, AwsError> {
    Err(AwsError::bad(
        "NamespaceNotFoundException",
        format!(
            "The specified namespace '{}' does not exist: kubecs has no Service Connect (Cloud Map) namespaces.",
            i.namespace
        ),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn svc(yaml: &str) -> Service {
        serde_yaml::from_str(yaml).unwrap()
    }

    #[test]
    fn describe_services_reads_status_in_ecs_shapes() {
        let s = svc(r#"
apiVersion: ecs.kubecs.io/v1alpha1
kind: Service
metadata: {name: web, namespace: team-a, creationTimestamp: "2026-12-01T00:00:00Z"}
spec: {cluster: prod, taskDefinition: web, desiredCount: 2}
status:
  status: ACTIVE
  desiredCount: 2
  runningCount: 2
  taskDefinition: "web:3"
  observedGeneration: 1
  deployments:
    - {id: ecs-svc/1, status: PRIMARY, taskDefinition: "web:3", desiredCount: 2, runningCount: 2, rolloutState: COMPLETED, createdAt: "2026-12-01T00:00:01Z"}
  events:
    - {id: e1, createdAt: "2026-12-01T00:00:02Z", message: "(service web) has reached a steady state."}
"#);
        let v = service_json(&s);
        assert_eq!(
            v["serviceArn"],
            "arn:aws:ecs:kubecs:team-a:service/prod/web"
        );
        assert_eq!(v["clusterArn"], "arn:aws:ecs:kubecs:team-a:cluster/prod");
        assert_eq!(
            v["taskDefinition"],
            "arn:aws:ecs:kubecs:team-a:task-definition/web:3"
        );
        assert_eq!(v["deployments"][0]["rolloutState"], "COMPLETED");
        assert_eq!(
            v["deployments"][0]["taskDefinition"],
            "arn:aws:ecs:kubecs:team-a:task-definition/web:3"
        );
        assert!(v["deployments"][0]["createdAt"].is_f64());
        assert_eq!(
            v["events"][0]["message"],
            "(service web) has reached a steady state."
        );
        assert_eq!(v["schedulingStrategy"], "REPLICA");
        assert!(
            v.get("platformVersion").is_none(),
            "absent members are omitted"
        );
    }

    #[test]
    fn create_input_keeps_only_spec_fields() {
        let input: Map<String, Value> = serde_json::from_str(
            r#"{"serviceName": "web", "clientToken": "x", "role": "r", "taskDefinition": "web:1", "desiredCount": 3}"#,
        )
        .unwrap();
        let spec = spec_part(&input, &[UPDATABLE_FIELDS, CREATE_ONLY_FIELDS]);
        assert_eq!(spec.len(), 2);
        assert_eq!(spec["desiredCount"], 3);
    }
}
