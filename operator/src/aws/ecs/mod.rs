//! The ECS API (`AmazonEC2ContainerServiceV20141113`) over the ECS objects: one module per
//! resource, each operation a function of the caller and its typed input.

mod capacity;
mod clusters;
#[cfg(test)]
mod conversations;
mod deployments;
mod instances;
mod protection;
mod services;
mod tags;
mod taskdefs;
mod tasks;

use serde_json::Value;

use super::{AwsError, Caller};

/// The operations served.
pub const OPERATIONS: &[&str] = &[
    "CreateCluster",
    "DeleteCluster",
    "DescribeClusters",
    "ListClusters",
    "UpdateCluster",
    "PutClusterCapacityProviders",
    "DescribeCapacityProviders",
    "RegisterTaskDefinition",
    "DeregisterTaskDefinition",
    "DescribeTaskDefinition",
    "ListTaskDefinitions",
    "ListTaskDefinitionFamilies",
    "DeleteTaskDefinitions",
    "CreateService",
    "UpdateService",
    "DeleteService",
    "DescribeServices",
    "ListServices",
    "ListServicesByNamespace",
    "RunTask",
    "StartTask",
    "StopTask",
    "DescribeTasks",
    "ListTasks",
    "ListContainerInstances",
    "DescribeContainerInstances",
    "UpdateContainerInstancesState",
    "PutAttributes",
    "DeleteAttributes",
    "ListAttributes",
    "TagResource",
    "UntagResource",
    "ListTagsForResource",
    "UpdateTaskProtection",
    "GetTaskProtection",
    "UpdateClusterSettings",
    "ListServiceDeployments",
    "DescribeServiceDeployments",
    "DescribeServiceRevisions",
    "StopServiceDeployment",
    "ContinueServiceDeployment",
];

pub async fn call(c: &Caller, op: &str, body: &[u8]) -> Result<Value, AwsError> {
    crate::aws_operations!(c, op, body, {
        "CreateCluster" => clusters::create,
        "DeleteCluster" => clusters::delete,
        "DescribeClusters" => clusters::describe,
        "ListClusters" => clusters::list,
        "UpdateCluster" => clusters::update,
        "PutClusterCapacityProviders" => clusters::put_capacity_providers,
        "DescribeCapacityProviders" => capacity::describe,
        "RegisterTaskDefinition" => taskdefs::register,
        "DeregisterTaskDefinition" => taskdefs::deregister,
        "DescribeTaskDefinition" => taskdefs::describe,
        "ListTaskDefinitions" => taskdefs::list,
        "ListTaskDefinitionFamilies" => taskdefs::list_families,
        "DeleteTaskDefinitions" => taskdefs::delete,
        "CreateService" => services::create,
        "UpdateService" => services::update,
        "DeleteService" => services::delete,
        "DescribeServices" => services::describe,
        "ListServices" => services::list,
        "ListServicesByNamespace" => services::list_by_namespace,
        "RunTask" => tasks::run,
        "StartTask" => tasks::start,
        "StopTask" => tasks::stop,
        "DescribeTasks" => tasks::describe,
        "ListTasks" => tasks::list,
        "ListContainerInstances" => instances::list,
        "DescribeContainerInstances" => instances::describe,
        "UpdateContainerInstancesState" => instances::update_state,
        "PutAttributes" => instances::put_attributes,
        "DeleteAttributes" => instances::delete_attributes,
        "ListAttributes" => instances::list_attributes,
        "TagResource" => tags::tag,
        "UntagResource" => tags::untag,
        "ListTagsForResource" => tags::list,
        "UpdateTaskProtection" => protection::update,
        "GetTaskProtection" => protection::get,
        "UpdateClusterSettings" => clusters::update_settings,
        "ListServiceDeployments" => deployments::list,
        "DescribeServiceDeployments" => deployments::describe,
        "DescribeServiceRevisions" => deployments::describe_revisions,
        "StopServiceDeployment" => deployments::stop,
        "ContinueServiceDeployment" => deployments::continue_deployment,
    })
}

/// An ECS ARN's account (namespace) and resource (`cluster/prod`, `service/prod/web`...).
pub fn parse_arn(s: &str) -> Option<(&str, &str)> {
    let rest = s.strip_prefix("arn:")?;
    let mut parts = rest.splitn(5, ':');
    let (_partition, service, _region, account, resource) = (
        parts.next()?,
        parts.next()?,
        parts.next()?,
        parts.next()?,
        parts.next()?,
    );
    (service == "ecs").then_some((account, resource))
}

/// A cluster named by a request: its account and name.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ClusterRef {
    pub namespace: String,
    pub name: String,
}

impl ClusterRef {
    /// `NAME`, a cluster ARN, or nothing (`default`), in the caller's account unless the ARN
    /// names another (RBAC then decides).
    pub fn resolve(c: &Caller, cluster: Option<&str>) -> Result<Self, AwsError> {
        let cluster = cluster.filter(|s| !s.is_empty()).unwrap_or("default");
        if let Some((account, resource)) = parse_arn(cluster) {
            let name = resource
                .strip_prefix("cluster/")
                .ok_or_else(|| AwsError::invalid_parameter("Invalid cluster ARN."))?;
            return Self::named(account, name);
        }
        Self::named(c.account(), cluster)
    }

    fn named(namespace: &str, name: &str) -> Result<Self, AwsError> {
        if !crate::taskdef::names::is_dns_label(name) {
            return Err(AwsError::invalid_parameter(format!(
                "Cluster name '{name}' is not supported: kubecs clusters are Kubernetes objects, named with up to 63 lowercase letters, numbers and hyphens."
            )));
        }
        Ok(Self {
            namespace: namespace.to_string(),
            name: name.to_string(),
        })
    }

    pub fn arn(&self) -> String {
        crate::arn::cluster(&self.namespace, &self.name)
    }
}

/// A resource name (service, task) that must be a Kubernetes object name, or ECS's refusal.
pub fn object_name(kind: &str, name: &str) -> Result<String, AwsError> {
    if crate::taskdef::names::is_dns_label(name) {
        Ok(name.to_string())
    } else {
        Err(AwsError::invalid_parameter(format!(
            "{kind} name '{name}' is not supported: kubecs {kind}s are Kubernetes objects, named with up to 63 lowercase letters, numbers and hyphens."
        )))
    }
}

/// The last path part of an ARN or the name itself (`service/prod/web` -> `web`).
pub fn short_name(s: &str) -> &str {
    match parse_arn(s) {
        Some((_, resource)) => resource.rsplit('/').next().unwrap_or(resource),
        None => s,
    }
}

/// `family:revision` as the task definition ARN in `namespace`.
pub fn task_definition_arn(namespace: &str, family_revision: &str) -> String {
    match family_revision.rsplit_once(':') {
        Some((f, r)) => match r.parse::<i64>() {
            Ok(n) => crate::arn::task_definition(namespace, f, n),
            Err(_) => family_revision.to_string(),
        },
        None => family_revision.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn arns_split_into_account_and_resource() {
        assert_eq!(
            parse_arn("arn:aws:ecs:kubecs:team-a:service/prod/web"),
            Some(("team-a", "service/prod/web"))
        );
        assert_eq!(parse_arn("arn:aws:ecr:kubecs:team-a:repository/x"), None);
        assert_eq!(parse_arn("web"), None);
        assert_eq!(
            short_name("arn:aws:ecs:us-east-1:1:service/prod/web"),
            "web"
        );
        assert_eq!(short_name("web"), "web");
        assert_eq!(
            task_definition_arn("ns", "web:3"),
            "arn:aws:ecs:kubecs:ns:task-definition/web:3"
        );
    }
}
