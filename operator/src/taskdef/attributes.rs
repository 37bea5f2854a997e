//! What ECS computes for a registered revision: `requiresAttributes` (the container instance
//! capabilities the task needs) and `compatibilities` (the launch types it is valid for).
//!
//! The attribute names follow ECS (`com.amazonaws.ecs.capability.*`, `ecs.capability.*`); in
//! kubecs every node offers them all, so they are informational, shown in the TaskDefinition's
//! status as DescribeTaskDefinition shows them.

use std::collections::BTreeSet;

use crate::api::taskdef::{
    Attribute, Compatibility, DockerVolumeScope, NetworkMode, TaskDefinitionSpec,
};

use super::units::is_fargate_size;
use super::validate::{fargate_problems, task_cpu, task_memory};

const CAP: &str = "com.amazonaws.ecs.capability.";
const ECS_CAP: &str = "ecs.capability.";

/// The container instance attributes a task definition requires, sorted by name.
pub fn requires_attributes(spec: &TaskDefinitionSpec) -> Vec<Attribute> {
    let mut names = BTreeSet::new();
    let mut cap = |s: &str| {
        names.insert(format!("{CAP}{s}"));
    };
    let mut ecs = BTreeSet::new();
    let mut ecs_cap = |s: &str| {
        ecs.insert(format!("{ECS_CAP}{s}"));
    };

    if spec.network_mode == Some(NetworkMode::Awsvpc) {
        ecs_cap("task-eni");
    }
    if spec.task_role_arn.is_some() {
        cap("task-iam-role");
    }
    if spec.proxy_configuration.is_some() {
        ecs_cap("aws-appmesh");
    }
    if spec.pid_mode.is_some() || spec.ipc_mode.is_some() {
        cap("docker-remote-api.1.26");
    }
    for v in &spec.volumes {
        if let Some(efs) = &v.efs_volume_configuration {
            ecs_cap("efs");
            if efs.authorization_config.is_some() {
                ecs_cap("efsAuth");
            }
        }
        if let Some(d) = &v.docker_volume_configuration {
            cap("docker-remote-api.1.25");
            if d.scope == Some(DockerVolumeScope::Shared) || d.driver.is_some() {
                let driver = d.driver.as_deref().unwrap_or("local");
                ecs_cap(&format!("docker-plugin.{driver}"));
            }
        }
    }
    for c in &spec.container_definitions {
        let ecr = c.image.as_deref().is_some_and(|i| i.contains(".dkr.ecr."));
        if ecr {
            cap("ecr-auth");
            if spec.execution_role_arn.is_some() {
                ecs_cap("execution-role-ecr-pull");
            }
        }
        if c.memory_reservation.is_some() {
            cap("docker-remote-api.1.21");
        }
        if !c.docker_labels.is_empty() || !c.ulimits.is_empty() {
            cap("docker-remote-api.1.18");
        }
        if c.privileged == Some(true) {
            cap("privileged-container");
        }
        if c.readonly_root_filesystem.is_some() {
            cap("docker-remote-api.1.17");
        }
        if let Some(log) = &c.log_configuration {
            cap("docker-remote-api.1.18");
            if log.log_driver == "awslogs" {
                cap("docker-remote-api.1.19");
                if spec.execution_role_arn.is_some() {
                    ecs_cap("execution-role-awslogs");
                }
            }
            cap(&format!("logging-driver.{}", log.log_driver));
            if !log.secret_options.is_empty() {
                ecs_cap("secrets.asm.bootstrap.log-driver");
            }
        }
        if let Some(f) = &c.firelens_configuration {
            let kind = match f.type_ {
                crate::api::taskdef::FirelensType::Fluentd => "fluentd",
                crate::api::taskdef::FirelensType::Fluentbit => "fluentbit",
            };
            ecs_cap(&format!("firelens.{kind}"));
            if f.options.contains_key("config-file-type") {
                let t = f.options.get("config-file-type").map(String::as_str);
                ecs_cap(&format!(
                    "firelens.options.config.{}",
                    if t == Some("s3") { "s3" } else { "file" }
                ));
            }
        }
        if c.health_check.is_some() {
            ecs_cap("container-health-check");
            cap("docker-remote-api.1.24");
        }
        if !c.depends_on.is_empty() || c.start_timeout.is_some() || c.stop_timeout.is_some() {
            ecs_cap("container-ordering");
        }
        if !c.secrets.is_empty() {
            for s in &c.secrets {
                if s.value_from.starts_with("arn:aws:secretsmanager:") {
                    ecs_cap("secrets.asm.environment-variables");
                } else {
                    ecs_cap("secrets.ssm.environment-variables");
                }
            }
        }
        if c.repository_credentials.is_some() {
            ecs_cap("private-registry-authentication.secretsmanager");
        }
        if !c.environment_files.is_empty() {
            ecs_cap("env-files.s3");
        }
        if !c.system_controls.is_empty() {
            cap("docker-remote-api.1.38");
        }
        if let Some(l) = &c.linux_parameters {
            if l.init_process_enabled.is_some() {
                cap("docker-remote-api.1.25");
            }
            if l.shared_memory_size.is_some() || !l.tmpfs.is_empty() {
                cap("docker-remote-api.1.22");
            }
            if l.max_swap.is_some() || l.swappiness.is_some() {
                ecs_cap("linux-swap");
            }
        }
    }
    names
        .into_iter()
        .chain(ecs)
        .map(|name| Attribute { name, value: None })
        .collect()
}

/// The launch types a task definition is valid for: EC2 always; EXTERNAL unless it uses
/// awsvpc or EFS; FARGATE when it has awsvpc, a Fargate size and nothing Fargate lacks;
/// MANAGED_INSTANCES when asked for. Sorted as ECS lists them.
pub fn compatibilities(spec: &TaskDefinitionSpec) -> Vec<Compatibility> {
    let mut out = BTreeSet::from([Compatibility::Ec2]);
    let efs = spec
        .volumes
        .iter()
        .any(|v| v.efs_volume_configuration.is_some());
    if spec.network_mode != Some(NetworkMode::Awsvpc) && !efs {
        out.insert(Compatibility::External);
    }
    let fargate_size =
        matches!((task_cpu(spec), task_memory(spec)), (Some(c), Some(m)) if is_fargate_size(c, m));
    if spec.network_mode == Some(NetworkMode::Awsvpc)
        && fargate_size
        && fargate_problems(spec).is_empty()
    {
        out.insert(Compatibility::Fargate);
    }
    if spec
        .requires_compatibilities
        .contains(&Compatibility::ManagedInstances)
    {
        out.insert(Compatibility::ManagedInstances);
    }
    out.into_iter().collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn spec(v: serde_json::Value) -> TaskDefinitionSpec {
        serde_json::from_value(v).unwrap()
    }

    fn names(s: &TaskDefinitionSpec) -> Vec<String> {
        requires_attributes(s).into_iter().map(|a| a.name).collect()
    }

    #[test]
    fn fargate_web_app_attributes() {
        let s = spec(json!({
            "networkMode": "awsvpc", "cpu": "256", "memory": "512",
            "executionRoleArn": "arn:aws:iam::1:role/exec", "taskRoleArn": "arn:aws:iam::1:role/app",
            "containerDefinitions": [{"name": "web",
                "image": "123456789012.dkr.ecr.us-east-1.amazonaws.com/web:1",
                "logConfiguration": {"logDriver": "awslogs"},
                "healthCheck": {"command": ["CMD-SHELL", "true"]},
                "secrets": [{"name": "A", "valueFrom": "arn:aws:secretsmanager:us-east-1:1:secret:a"},
                            {"name": "B", "valueFrom": "/prod/b"}]}]}));
        assert_eq!(
            names(&s),
            [
                "com.amazonaws.ecs.capability.docker-remote-api.1.18",
                "com.amazonaws.ecs.capability.docker-remote-api.1.19",
                "com.amazonaws.ecs.capability.docker-remote-api.1.24",
                "com.amazonaws.ecs.capability.ecr-auth",
                "com.amazonaws.ecs.capability.logging-driver.awslogs",
                "com.amazonaws.ecs.capability.task-iam-role",
                "ecs.capability.container-health-check",
                "ecs.capability.execution-role-awslogs",
                "ecs.capability.execution-role-ecr-pull",
                "ecs.capability.secrets.asm.environment-variables",
                "ecs.capability.secrets.ssm.environment-variables",
                "ecs.capability.task-eni",
            ]
        );
        assert_eq!(
            compatibilities(&s),
            [Compatibility::Ec2, Compatibility::Fargate]
        );
    }

    #[test]
    fn bridge_task_is_ec2_and_external() {
        let s = spec(json!({"containerDefinitions": [{"name": "a", "image": "x", "memory": 128}]}));
        assert!(names(&s).is_empty());
        assert_eq!(
            compatibilities(&s),
            [Compatibility::Ec2, Compatibility::External]
        );
    }

    #[test]
    fn awsvpc_without_fargate_size_is_ec2_only() {
        let s = spec(
            json!({"networkMode": "awsvpc", "cpu": "300", "memory": "512",
            "containerDefinitions": [{"name": "a", "image": "x"}]}),
        );
        assert_eq!(compatibilities(&s), [Compatibility::Ec2]);
        let privileged = spec(
            json!({"networkMode": "awsvpc", "cpu": "256", "memory": "512",
            "containerDefinitions": [{"name": "a", "image": "x", "privileged": true}]}),
        );
        assert_eq!(compatibilities(&privileged), [Compatibility::Ec2]);
    }

    #[test]
    fn efs_and_ordering_attributes() {
        let s = spec(
            json!({"volumes": [{"name": "d", "efsVolumeConfiguration": {"fileSystemId": "fs-1",
            "authorizationConfig": {"iam": "ENABLED"}}}],
            "containerDefinitions": [{"name": "a", "image": "x", "memory": 128,
                "dependsOn": [{"containerName": "b", "condition": "START"}]},
                {"name": "b", "image": "x", "memory": 128}]}),
        );
        let n = names(&s);
        assert!(n.contains(&"ecs.capability.efs".to_string()));
        assert!(n.contains(&"ecs.capability.efsAuth".to_string()));
        assert!(n.contains(&"ecs.capability.container-ordering".to_string()));
        assert_eq!(compatibilities(&s), [Compatibility::Ec2]);
    }
}
