//! Conversations of ECS operations with the in-process API server (`controllers::testing`):
//! what each call asks the API server, and what it refuses before writing anything.

use axum::http::{Method, StatusCode};
use serde_json::{Value, json};

use super::call;
use crate::aws::keys::{generate, service_account};
use crate::aws::{AwsError, Caller};
use crate::controllers::testing::{Call, World, failure};

const NS: &str = "team-a";

fn path(kind: &str) -> String {
    format!("/apis/ecs.kubecs.io/v1alpha1/namespaces/{NS}/{kind}")
}

fn caller(world: &World) -> Caller {
    let (p, account) = service_account(NS, "ci");
    Caller {
        key: generate(p, account),
        client: world.ctx.client.clone(),
        action: String::new(),
    }
}

async fn ecs(c: &Caller, op: &str, input: Value) -> Result<Value, AwsError> {
    let mut c = c.clone();
    c.action = format!("ecs:{op}");
    call(&c, op, input.to_string().as_bytes()).await
}

fn cluster(name: &str) -> Value {
    json!({"apiVersion": "ecs.kubecs.io/v1alpha1", "kind": "EcsCluster",
           "metadata": {"name": name, "namespace": NS, "uid": "c1", "resourceVersion": "1"},
           "spec": {}, "status": {"status": "ACTIVE", "registeredContainerInstancesCount": 3}})
}

/// The cluster `prod` in the API server.
fn with_prod(world: &World) {
    world
        .api
        .seed(&format!("{}/prod", path("ecsclusters")), cluster("prod"));
}

fn empty_list(kind: &str) -> (StatusCode, Value) {
    (
        StatusCode::OK,
        json!({"apiVersion": "ecs.kubecs.io/v1alpha1", "kind": kind,
               "metadata": {"resourceVersion": "1"}, "items": []}),
    )
}

#[tokio::test]
async fn create_cluster_answers_an_existing_cluster_without_writing() {
    let world = World::plain();
    with_prod(&world);
    let out = ecs(
        &caller(&world),
        "CreateCluster",
        json!({"clusterName": "prod"}),
    )
    .await
    .unwrap();
    assert_eq!(
        out["cluster"]["clusterArn"],
        "arn:aws:ecs:kubecs:team-a:cluster/prod"
    );
    assert_eq!(out["cluster"]["registeredContainerInstancesCount"], 3);
    assert!(
        world
            .api
            .first(&Method::POST, &path("ecsclusters"))
            .is_none()
    );
}

#[tokio::test]
async fn a_new_cluster_selects_the_nodes_labelled_with_its_name() {
    let world = World::plain();
    ecs(
        &caller(&world),
        "CreateCluster",
        json!({"clusterName": "batch"}),
    )
    .await
    .unwrap();
    let posted = &world.api.all(&Method::POST, &path("ecsclusters"))[0].body;
    assert_eq!(
        posted["spec"]["instanceSelector"]["matchLabels"]["ecs.kubecs.io/ecs-cluster"],
        "batch"
    );
}

#[tokio::test]
async fn create_service_in_a_missing_cluster_writes_nothing() {
    let world = World::plain();
    let e = ecs(
        &caller(&world),
        "CreateService",
        json!({"cluster": "nope", "serviceName": "web", "taskDefinition": "web", "desiredCount": 1}),
    )
    .await
    .unwrap_err();
    assert_eq!(
        (e.code, e.message.as_str()),
        ("ClusterNotFoundException", "Cluster not found.")
    );
    assert!(world.api.first(&Method::POST, &path("services")).is_none());
}

#[tokio::test]
async fn rbac_refusals_come_back_as_access_denied_naming_action_and_resource() {
    let svc_path = path("services");
    let world = World::new(Box::new(move |call: &Call| {
        (call.method == Method::POST && call.path == svc_path).then(|| {
            failure(
                403,
                "Forbidden",
                "services.ecs.kubecs.io is forbidden: User \"system:serviceaccount:team-a:ci\" cannot create resource \"services\"",
            )
        })
    }));
    with_prod(&world);
    let td_path = path("taskdefinitions");
    // The task definition exists (a family object with revision 1).
    world.api.seed(
        &td_path,
        json!({"apiVersion": "ecs.kubecs.io/v1alpha1", "kind": "TaskDefinitionList", "metadata": {},
               "items": [{"apiVersion": "ecs.kubecs.io/v1alpha1", "kind": "TaskDefinition",
                          "metadata": {"name": "web", "namespace": NS},
                          "spec": {"containerDefinitions": [{"name": "web", "image": "nginx", "memory": 64}]},
                          "status": {"latestRevision": 1, "revisions": [{"revision": 1, "status": "ACTIVE"}]}}]}),
    );
    let e = ecs(
        &caller(&world),
        "CreateService",
        json!({"cluster": "prod", "serviceName": "web", "taskDefinition": "web", "desiredCount": 1}),
    )
    .await
    .unwrap_err();
    assert_eq!(e.code, "AccessDeniedException", "{e}");
    assert!(
        e.message.starts_with("User: system:serviceaccount:team-a:ci is not authorized to perform: ecs:CreateService on resource: arn:aws:ecs:kubecs:team-a:service/prod/web"),
        "{}",
        e.message
    );
}

#[tokio::test]
async fn a_scaled_service_is_not_deleted_without_force() {
    let world = World::plain();
    with_prod(&world);
    world.api.seed(
        &format!("{}/web", path("services")),
        json!({"apiVersion": "ecs.kubecs.io/v1alpha1", "kind": "Service",
               "metadata": {"name": "web", "namespace": NS},
               "spec": {"cluster": "prod", "taskDefinition": "web", "desiredCount": 2}}),
    );
    let c = caller(&world);
    let e = ecs(
        &c,
        "DeleteService",
        json!({"cluster": "prod", "service": "web"}),
    )
    .await
    .unwrap_err();
    assert_eq!(
        e.message,
        "The service cannot be stopped while it is scaled above 0."
    );
    assert!(
        world
            .api
            .first(&Method::DELETE, &format!("{}/web", path("services")))
            .is_none()
    );
    let out = ecs(
        &c,
        "DeleteService",
        json!({"cluster": "prod", "service": "web", "force": true}),
    )
    .await
    .unwrap();
    assert_eq!(out["service"]["status"], "DRAINING");
    assert!(
        world
            .api
            .first(&Method::DELETE, &format!("{}/web", path("services")))
            .is_some()
    );
}

#[tokio::test]
async fn an_invalid_task_definition_is_refused_in_ecs_words_before_any_write() {
    let list_path = path("taskdefinitions");
    let world = World::new(Box::new(move |call: &Call| {
        (call.method == Method::GET && call.path == list_path)
            .then(|| empty_list("TaskDefinitionList"))
    }));
    let e = ecs(
        &caller(&world),
        "RegisterTaskDefinition",
        json!({"family": "web", "containerDefinitions": [{"name": "web", "image": "nginx", "essential": false, "memory": 64}]}),
    )
    .await
    .unwrap_err();
    assert_eq!(e.code, "ClientException");
    assert!(e.message.contains("essential"), "{}", e.message);
    assert!(world.api.calls().iter().all(|c| c.method == Method::GET));
}

#[tokio::test]
async fn missing_services_are_failures_not_errors() {
    let world = World::plain();
    with_prod(&world);
    let out = ecs(
        &caller(&world),
        "DescribeServices",
        json!({"cluster": "prod", "services": ["gone"]}),
    )
    .await
    .unwrap();
    assert_eq!(out["services"], json!([]));
    assert_eq!(
        out["failures"],
        json!([{"arn": "arn:aws:ecs:kubecs:team-a:service/prod/gone", "reason": "MISSING"}])
    );
}
