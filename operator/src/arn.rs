//! ECS-style ARNs for kubecs objects. The namespace plays the ECS account, as DESIGN.md maps
//! "account + region" to a namespace; the region is a fixed partition name.

/// The region part of every kubecs ARN.
pub const REGION: &str = "kubecs";

/// `arn:aws:ecs:kubecs:NAMESPACE:cluster/NAME`
pub fn cluster(namespace: &str, name: &str) -> String {
    format!("arn:aws:ecs:{REGION}:{namespace}:cluster/{name}")
}

/// `arn:aws:ecs:kubecs:NAMESPACE:container-instance/CLUSTER/NODE`
pub fn container_instance(namespace: &str, cluster: &str, node: &str) -> String {
    format!("arn:aws:ecs:{REGION}:{namespace}:container-instance/{cluster}/{node}")
}

/// `arn:aws:ecs:kubecs:NAMESPACE:service/CLUSTER/NAME`
pub fn service(namespace: &str, cluster: &str, name: &str) -> String {
    format!("arn:aws:ecs:{REGION}:{namespace}:service/{cluster}/{name}")
}

/// `arn:aws:ecs:kubecs:NAMESPACE:service-deployment/CLUSTER/SERVICE/ID` (ID: the digits of
/// the deployment id).
pub fn service_deployment(namespace: &str, cluster: &str, service: &str, id: &str) -> String {
    format!("arn:aws:ecs:{REGION}:{namespace}:service-deployment/{cluster}/{service}/{id}")
}

/// `arn:aws:ecs:kubecs:NAMESPACE:service-revision/CLUSTER/SERVICE/ID`: each deployment
/// deploys a revision of its own, numbered as the deployment.
pub fn service_revision(namespace: &str, cluster: &str, service: &str, id: &str) -> String {
    format!("arn:aws:ecs:{REGION}:{namespace}:service-revision/{cluster}/{service}/{id}")
}

/// `arn:aws:ecs:kubecs:NAMESPACE:task-definition/FAMILY:REVISION`
pub fn task_definition(namespace: &str, family: &str, revision: i64) -> String {
    format!("arn:aws:ecs:{REGION}:{namespace}:task-definition/{family}:{revision}")
}

/// `arn:aws:ecr:kubecs:NAMESPACE:repository/NAME`: an ECR repository, same account mapping.
pub fn repository(namespace: &str, name: &str) -> String {
    crate::ecr::names::repository_arn(REGION, namespace, name)
}

#[cfg(test)]
mod tests {
    #[test]
    fn arns_follow_ecs_shapes() {
        assert_eq!(
            super::cluster("prod", "default"),
            "arn:aws:ecs:kubecs:prod:cluster/default"
        );
        assert_eq!(
            super::task_definition("prod", "web", 3),
            "arn:aws:ecs:kubecs:prod:task-definition/web:3"
        );
    }
}
