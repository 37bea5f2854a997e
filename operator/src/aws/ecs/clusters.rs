//! Clusters: EcsCluster objects. A cluster created through the API selects the Nodes labelled
//! `ecs.kubecs.io/ecs-cluster=NAME` as its container instances: the label plays the ECS
//! agent's `ECS_CLUSTER` setting.

use std::collections::BTreeMap;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;
use kube::ResourceExt;
use kube::api::{DeleteParams, ListParams, ObjectMeta, Patch, PatchParams, PostParams};
use serde::Deserialize;
use serde_json::{Value, json};

use super::{Caller, ClusterRef};
use crate::api::cluster::ClusterSetting;
use crate::api::common::{CapacityProviderStrategyItem, Tag};
use crate::api::states::ClusterState;
use crate::api::{EcsCluster, EcsClusterSpec, Service};
use crate::aws::AwsError;
use crate::aws::page::page;

/// The Node label that makes a Node a container instance of an API-created cluster.
pub const INSTANCE_LABEL: &str = "ecs.kubecs.io/ecs-cluster";

#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase")]
pub struct CreateCluster {
    cluster_name: Option<String>,
    #[serde(default)]
    tags: Vec<Tag>,
    #[serde(default)]
    settings: Vec<ClusterSetting>,
    #[serde(default)]
    capacity_providers: Vec<String>,
    #[serde(default)]
    default_capacity_provider_strategy: Vec<CapacityProviderStrategyItem>,
}

/// ECS's `Cluster` of an EcsCluster.
pub fn cluster_json(cl: &EcsCluster) -> Value {
    let ns = cl.namespace().unwrap_or_default();
    let status = cl.status.clone().unwrap_or_default();
    let state = if cl.metadata.deletion_timestamp.is_some() {
        ClusterState::Deprovisioning
    } else {
        status.status.unwrap_or(ClusterState::Active)
    };
    json!({
        "clusterArn": crate::arn::cluster(&ns, &cl.name_any()),
        "clusterName": cl.name_any(),
        "status": state,
        "registeredContainerInstancesCount": status.registered_container_instances_count,
        "runningTasksCount": status.running_tasks_count,
        "pendingTasksCount": status.pending_tasks_count,
        "activeServicesCount": status.active_services_count,
        "statistics": [],
        "tags": cl.spec.tags,
        "settings": cl.spec.settings,
        "capacityProviders": cl.spec.capacity_providers,
        "defaultCapacityProviderStrategy": cl.spec.default_capacity_provider_strategy,
        "attachments": [],
    })
}

pub async fn get(c: &Caller, r: &ClusterRef) -> Result<EcsCluster, AwsError> {
    c.api::<EcsCluster>(&r.namespace)
        .get_opt(&r.name)
        .await
        .map_err(|e| c.kube_error(e, &r.arn()))?
        .ok_or_else(AwsError::cluster_not_found)
}

pub async fn create(c: &Caller, i: CreateCluster) -> Result<Value, AwsError> {
    let r = ClusterRef::resolve(c, i.cluster_name.as_deref())?;
    let api = c.api::<EcsCluster>(&r.namespace);
    // ECS answers a CreateCluster of an existing cluster with that cluster.
    if let Some(existing) = api
        .get_opt(&r.name)
        .await
        .map_err(|e| c.kube_error(e, &r.arn()))?
    {
        return Ok(json!({ "cluster": cluster_json(&existing) }));
    }
    let cl = EcsCluster {
        metadata: ObjectMeta {
            name: Some(r.name.clone()),
            namespace: Some(r.namespace.clone()),
            ..Default::default()
        },
        spec: EcsClusterSpec {
            instance_selector: Some(LabelSelector {
                match_labels: Some(BTreeMap::from([(
                    INSTANCE_LABEL.to_string(),
                    r.name.clone(),
                )])),
                ..Default::default()
            }),
            settings: i.settings,
            capacity_providers: i.capacity_providers,
            default_capacity_provider_strategy: i.default_capacity_provider_strategy,
            tags: i.tags,
        },
        status: None,
    };
    let created = match api.create(&PostParams::default(), &cl).await {
        Ok(c) => c,
        Err(kube::Error::Api(s)) if s.code == 409 => get(c, &r).await?,
        Err(e) => return Err(c.kube_error(e, &r.arn())),
    };
    Ok(json!({ "cluster": cluster_json(&created) }))
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase")]
pub struct DescribeClusters {
    #[serde(default)]
    clusters: Vec<String>,
}

pub async fn describe(c: &Caller, i: DescribeClusters) -> Result<Value, AwsError> {
    let names = if i.clusters.is_empty() {
        vec!["default".to_string()]
    } else {
        i.clusters
    };
    if names.len() > 100 {
        return Err(AwsError::invalid_parameter(
            "At most 100 clusters can be described at once.",
        ));
    }
    let (mut found, mut failures) = (Vec::new(), Vec::new());
    for n in names {
        let r = ClusterRef::resolve(c, Some(&n))?;
        match get(c, &r).await {
            Ok(cl) => found.push(cluster_json(&cl)),
            Err(e) if e.code == "ClusterNotFoundException" => {
                failures.push(json!({ "arn": r.arn(), "reason": "MISSING" }))
            }
            Err(e) => return Err(e),
        }
    }
    Ok(json!({ "clusters": found, "failures": failures }))
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase")]
pub struct ListClusters {
    next_token: Option<String>,
    max_results: Option<i32>,
}

pub async fn list(c: &Caller, i: ListClusters) -> Result<Value, AwsError> {
    let arns: Vec<String> = c
        .api::<EcsCluster>(c.account())
        .list(&ListParams::default())
        .await
        .map_err(|e| c.kube_error(e, &crate::arn::cluster(c.account(), "*")))?
        .items
        .iter()
        .map(|cl| crate::arn::cluster(c.account(), &cl.name_any()))
        .collect();
    let (arns, next) = page(arns, i.max_results, i.next_token.as_deref(), 100)?;
    Ok(json!({ "clusterArns": arns, "nextToken": next }))
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase")]
pub struct DeleteCluster {
    cluster: String,
}

pub async fn delete(c: &Caller, i: DeleteCluster) -> Result<Value, AwsError> {
    let r = ClusterRef::resolve(c, Some(&i.cluster))?;
    let cl = get(c, &r).await?;
    let in_cluster = |spec_cluster: Option<&str>| {
        crate::controllers::cluster::cluster_name(spec_cluster) == r.name
    };
    let services = c
        .api::<Service>(&r.namespace)
        .list(&ListParams::default())
        .await
        .map_err(|e| c.kube_error(e, &r.arn()))?;
    if services
        .items
        .iter()
        .any(|s| in_cluster(s.spec.cluster.as_deref()))
    {
        return Err(AwsError::bad(
            "ClusterContainsServicesException",
            crate::controllers::cluster::HAS_SERVICES,
        ));
    }
    let running = super::tasks::seen(c, &r).await?.any_active();
    if running {
        return Err(AwsError::bad(
            "ClusterContainsTasksException",
            crate::controllers::cluster::HAS_TASKS,
        ));
    }
    c.api::<EcsCluster>(&r.namespace)
        .delete(&r.name, &DeleteParams::default())
        .await
        .map_err(|e| c.kube_error(e, &r.arn()))?;
    let mut out = cluster_json(&cl);
    out["status"] = json!(ClusterState::Inactive);
    Ok(json!({ "cluster": out }))
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase")]
pub struct UpdateCluster {
    cluster: String,
    settings: Option<Vec<ClusterSetting>>,
}

pub async fn update(c: &Caller, i: UpdateCluster) -> Result<Value, AwsError> {
    let r = ClusterRef::resolve(c, Some(&i.cluster))?;
    get(c, &r).await?;
    patch_spec(c, &r, json!({ "settings": i.settings.unwrap_or_default() })).await
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase")]
pub struct UpdateClusterSettings {
    cluster: String,
    settings: Vec<ClusterSetting>,
}

/// UpdateClusterSettings: the same settings UpdateCluster sets.
pub async fn update_settings(c: &Caller, i: UpdateClusterSettings) -> Result<Value, AwsError> {
    update(
        c,
        UpdateCluster {
            cluster: i.cluster,
            settings: Some(i.settings),
        },
    )
    .await
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase")]
pub struct PutClusterCapacityProviders {
    cluster: String,
    capacity_providers: Vec<String>,
    default_capacity_provider_strategy: Vec<CapacityProviderStrategyItem>,
}

pub async fn put_capacity_providers(
    c: &Caller,
    i: PutClusterCapacityProviders,
) -> Result<Value, AwsError> {
    let r = ClusterRef::resolve(c, Some(&i.cluster))?;
    get(c, &r).await?;
    patch_spec(
        c,
        &r,
        json!({
            "capacityProviders": i.capacity_providers,
            "defaultCapacityProviderStrategy": i.default_capacity_provider_strategy,
        }),
    )
    .await
}

async fn patch_spec(c: &Caller, r: &ClusterRef, spec: Value) -> Result<Value, AwsError> {
    let cl = c
        .api::<EcsCluster>(&r.namespace)
        .patch(
            &r.name,
            &PatchParams::default(),
            &Patch::Merge(json!({ "spec": spec })),
        )
        .await
        .map_err(|e| c.kube_error(e, &r.arn()))?;
    Ok(json!({ "cluster": cluster_json(&cl) }))
}
