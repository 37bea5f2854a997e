//! The kubecs CRDs, modelled on ECS's and ECR's own field names: `spec` is the ECS API input,
//! `status` the ECS describe output. Doc comments become `kubectl explain`.

pub mod capacity_provider;
pub mod cluster;
pub mod common;
pub mod pull_through_cache_rule;
pub mod replication_configuration;
pub mod repository;
pub mod repository_creation_template;
pub mod service;
pub mod service_deployment;
pub mod states;
pub mod task;
pub mod taskdef;

use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::CustomResourceExt;

pub use capacity_provider::{CapacityProvider, CapacityProviderSpec};
pub use cluster::{EcsCluster, EcsClusterSpec, EcsClusterStatus};
pub use pull_through_cache_rule::{PullThroughCacheRule, PullThroughCacheRuleSpec};
pub use replication_configuration::{ReplicationConfiguration, ReplicationConfigurationSpec};
pub use repository::{Repository, RepositorySpec, RepositoryStatus};
pub use repository_creation_template::{
    RepositoryCreationTemplate, RepositoryCreationTemplateSpec,
};
pub use service::{Service, ServiceSpec, ServiceStatus};
pub use service_deployment::{ServiceDeployment, ServiceDeploymentSpec, ServiceDeploymentStatus};
pub use task::{Task, TaskSpec, TaskStatus};
pub use taskdef::{TaskDefinition, TaskDefinitionSpec, TaskDefinitionStatus};

/// The API group of the ECS resources.
pub const ECS_GROUP: &str = "ecs.kubecs.io";
/// The API group of the ECR resources.
pub const ECR_GROUP: &str = "ecr.kubecs.io";

/// Every CRD kubecs installs, in a stable order (what `kubecs crdgen` prints).
pub fn all_crds() -> Vec<CustomResourceDefinition> {
    vec![
        EcsCluster::crd(),
        TaskDefinition::crd(),
        Service::crd(),
        Task::crd(),
        Repository::crd(),
        CapacityProvider::crd(),
        ServiceDeployment::crd(),
        PullThroughCacheRule::crd(),
        RepositoryCreationTemplate::crd(),
        ReplicationConfiguration::crd(),
    ]
}

/// All CRDs as one multi-document YAML stream.
pub fn crds_yaml() -> String {
    all_crds()
        .iter()
        .map(|crd| serde_yaml::to_string(crd).expect("a CRD always serializes"))
        .collect::<Vec<_>>()
        .join("---\n")
}

/// A schema that keeps any JSON value (IAM-style fields that are a string or a list).
pub(crate) fn preserve_unknown(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
    schemars::json_schema!({ "x-kubernetes-preserve-unknown-fields": true })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn crds_are_structural_and_named() {
        let names: Vec<_> = all_crds()
            .into_iter()
            .map(|c| c.metadata.name.unwrap())
            .collect();
        assert_eq!(
            names,
            [
                "ecsclusters.ecs.kubecs.io",
                "taskdefinitions.ecs.kubecs.io",
                "services.ecs.kubecs.io",
                "tasks.ecs.kubecs.io",
                "repositories.ecr.kubecs.io",
                "capacityproviders.ecs.kubecs.io",
                "servicedeployments.ecs.kubecs.io",
                "pullthroughcacherules.ecr.kubecs.io",
                "repositorycreationtemplates.ecr.kubecs.io",
                "replicationconfigurations.ecr.kubecs.io",
            ]
        );
    }

    #[test]
    fn service_has_scale_subresource_on_desired_count() {
        let crd = Service::crd();
        let scale = crd.spec.versions[0]
            .subresources
            .as_ref()
            .and_then(|s| s.scale.as_ref())
            .expect("scale subresource");
        assert_eq!(scale.spec_replicas_path, ".spec.desiredCount");
        assert_eq!(scale.status_replicas_path, ".status.runningCount");
    }

    #[test]
    fn ecs_task_definition_json_deserializes_unchanged() {
        let json = r#"{
          "family": "web",
          "networkMode": "awsvpc",
          "requiresCompatibilities": ["FARGATE"],
          "cpu": "256", "memory": "512",
          "containerDefinitions": [{
            "name": "web", "image": "nginx:1.27", "essential": true,
            "portMappings": [{"containerPort": 80, "protocol": "tcp"}],
            "healthCheck": {"command": ["CMD-SHELL", "curl -f http://localhost/ || exit 1"], "interval": 30},
            "secrets": [{"name": "DB_PASSWORD", "valueFrom": "arn:aws:secretsmanager:us-east-1:123456789012:secret:db:password::"}],
            "logConfiguration": {"logDriver": "awslogs", "options": {"awslogs-group": "/ecs/web"}}
          }]
        }"#;
        let spec: TaskDefinitionSpec = serde_json::from_str(json).unwrap();
        assert_eq!(spec.container_definitions.len(), 1);
        let back = serde_json::to_value(&spec).unwrap();
        assert_eq!(
            back,
            serde_json::from_str::<serde_json::Value>(json).unwrap()
        );
    }
}

/// Labels and annotations kubecs puts on the objects it creates.
pub mod labels {
    /// The EcsCluster a task runs in.
    pub const CLUSTER: &str = "ecs.kubecs.io/cluster";
    /// The Service that owns a task.
    pub const SERVICE: &str = "ecs.kubecs.io/service";
    /// The Task (RunTask) that owns a task.
    pub const TASK: &str = "ecs.kubecs.io/task";
    /// The deployment (ECS deployment id) a service task belongs to.
    pub const DEPLOYMENT: &str = "ecs.kubecs.io/deployment";
    /// The capacity provider a task was launched with.
    pub const CAPACITY_PROVIDER: &str = "ecs.kubecs.io/capacity-provider";
    /// The task definition family of a task.
    pub const FAMILY: &str = "ecs.kubecs.io/family";
    /// The task definition revision of a task.
    pub const REVISION: &str = "ecs.kubecs.io/revision";
    /// Set on every pod kubecs creates.
    pub const MANAGED_BY: &str = "app.kubernetes.io/managed-by";
    /// The value of [`MANAGED_BY`].
    pub const MANAGER: &str = "kubecs";
}
