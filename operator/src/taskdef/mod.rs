//! ECS task definitions, with ECS's rules, and the pods they become. Pure: no Kubernetes API
//! calls, so controllers, `kubecs render` and the tests share one translation.
//!
//! - [`validate`] checks a [`TaskDefinitionSpec`] with ECS's rules and returns every violation
//!   in ECS's words ("Too many containers.", "Invalid 'cpu' setting for task."...).
//! - [`requires_attributes`] and [`compatibilities`] compute what ECS reports for a revision.
//! - [`render_pod`] turns a task definition (plus who runs it: [`PodIdentity`]) into the
//!   [`Pod`] of one task; [`unsupported_fields`] lists what Kubernetes cannot honour, for the
//!   TaskDefinition's `UnsupportedFields` condition (never dropped silently).
//! - [`apply_overrides`] applies RunTask-style overrides before rendering.
//! - [`input::parse_task_definition`] reads what users have: the JSON of
//!   `aws ecs register-task-definition --cli-input-json`, the output of
//!   `describe-task-definition`, or a TaskDefinition YAML.
//!
//! The field-by-field mapping is documented in `operator/docs/task-definition-mapping.md`.
//!
//! # What the owner of a task pod reads back
//!
//! ECS semantics that Kubernetes does not enforce by itself are recorded on the pod for the
//! Service / Task controllers: [`annotations::ESSENTIAL_CONTAINERS`] (stop the task when one of
//! them stops) and [`annotations::CONTAINERS`] (each container's ECS name, essential flag,
//! phase, `dependsOn` and `startTimeout`; parse it with [`container_metadata`]).

pub mod input;
pub mod names;
pub mod secrets;
pub mod units;

mod attributes;
mod deps;
mod overrides;
mod pod;
mod validate;

#[cfg(test)]
mod input_props;

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{Pod, PodTemplateSpec};
use serde::{Deserialize, Serialize};

pub use crate::api::taskdef::{ContainerCondition, TaskDefinitionSpec};
pub use attributes::{compatibilities, requires_attributes};
pub use deps::Phase;
pub use overrides::apply_overrides;
pub use pod::{render_pod, unsupported_fields};
pub use validate::{ValidationErrors, validate};

/// Annotations kubecs puts on task pods.
pub mod annotations {
    /// Comma-separated Kubernetes names of the essential containers: when one of them stops
    /// (or, for a sidecar, restarts), the owner stops the task (`Essential container in task
    /// exited`).
    pub const ESSENTIAL_CONTAINERS: &str = "ecs.kubecs.io/essential-containers";
    /// JSON list of [`super::ContainerMeta`]: per container its ECS name, essential flag,
    /// phase (init / sidecar / main), dependencies and startTimeout.
    pub const CONTAINERS: &str = "ecs.kubecs.io/containers";
    /// `family:revision` of the task definition the pod was rendered from.
    pub const TASK_DEFINITION: &str = "ecs.kubecs.io/task-definition";
    /// JSON map container -> ECS `logConfiguration` (drivers are not run by kubecs).
    pub const LOG_CONFIGURATION: &str = "ecs.kubecs.io/log-configuration";
    /// JSON map container -> ECS `firelensConfiguration`.
    pub const FIRELENS_CONFIGURATION: &str = "ecs.kubecs.io/firelens-configuration";
    /// JSON map of Docker labels that are not valid annotation keys.
    pub const DOCKER_LABELS: &str = "ecs.kubecs.io/docker-labels";
    /// `; `-separated list of the fields Kubernetes cannot honour, with the reason.
    pub const UNSUPPORTED_FIELDS: &str = "ecs.kubecs.io/unsupported-fields";
    /// The task definition's `executionRoleArn`, kept for reference (the operator pulls with
    /// its own registry credentials).
    pub const EXECUTION_ROLE: &str = "ecs.kubecs.io/execution-role";
    /// JSON map of the task definition's `proxyConfiguration` (App Mesh; not programmed).
    pub const PROXY_CONFIGURATION: &str = "ecs.kubecs.io/proxy-configuration";
    /// Set by StopTask before the pod is deleted: the user's `reason` (ECS's stopCode
    /// UserInitiated). The owner stops a pod that has it, should the deletion not follow.
    pub const STOPPED_REASON: &str = "ecs.kubecs.io/stopped-reason";
    /// Task scale-in protection (UpdateTaskProtection): until this RFC 3339 time, neither
    /// scale-in nor a deployment stops the task.
    pub const PROTECTED_UNTIL: &str = "ecs.kubecs.io/protected-until";
}

/// Who runs the task: the names and labels of the pod. Everything is optional; `kubecs
/// render` leaves most of it empty.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct PodIdentity {
    /// The pod name; when `None`, `generateName` is `FAMILY-`.
    pub name: Option<String>,
    /// The namespace (the ECS account).
    pub namespace: Option<String>,
    /// The EcsCluster: label [`crate::api::labels::CLUSTER`].
    pub cluster: Option<String>,
    /// The family; defaults to `spec.family`. Label [`crate::api::labels::FAMILY`].
    pub family: Option<String>,
    /// The revision: label [`crate::api::labels::REVISION`].
    pub revision: Option<i64>,
    /// More labels (service, deployment, task...), applied last.
    pub labels: BTreeMap<String, String>,
    /// More annotations, applied last.
    pub annotations: BTreeMap<String, String>,
}

/// How to render, where clusters differ.
#[derive(Clone, Debug, PartialEq)]
pub struct RenderOptions {
    /// Put task-level cpu/memory in pod-level resources (`spec.resources`, the
    /// PodLevelResources feature, beta and on by default since Kubernetes 1.34). When false,
    /// the task size is divided among the containers that set none.
    pub pod_level_resources: bool,
    /// Map a container `restartPolicy` to container-level `restartPolicy: Always` and
    /// `restartPolicyRules` (the ContainerRestartRules feature). When false it is reported
    /// as unsupported.
    pub container_restart_rules: bool,
    /// A dockerconfigjson Secret added to every pod's `imagePullSecrets`: the operator's
    /// credentials for the kubecs registry (what the execution role does in ECS).
    pub registry_pull_secret: Option<String>,
}

impl Default for RenderOptions {
    fn default() -> Self {
        Self {
            pod_level_resources: true,
            container_restart_rules: false,
            registry_pull_secret: None,
        }
    }
}

/// A field Kubernetes cannot honour: accepted, reported, never dropped silently.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct Unsupported {
    /// The ECS path: `containerDefinitions[web].ulimits`, `ipcMode`.
    pub field: String,
    /// What kubecs does instead.
    pub reason: String,
}

impl std::fmt::Display for Unsupported {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.field, self.reason)
    }
}

/// A PersistentVolumeClaim the pod mounts; it must exist (or be created by the owner) for the
/// pod to start.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ClaimRef {
    /// The claim name.
    pub name: String,
    /// The task definition volume it comes from.
    pub volume: String,
    /// `efs` or `docker`.
    pub source: &'static str,
    /// The Docker volume driver, a StorageClass name (`local` means the default class).
    pub storage_class: Option<String>,
    /// `dockerVolumeConfiguration.autoprovision`: create the claim when it is missing.
    pub autoprovision: bool,
}

/// The result of [`render_pod`].
#[derive(Clone, Debug, PartialEq)]
pub struct Rendered {
    /// The task's pod.
    pub pod: Pod,
    /// Fields Kubernetes cannot honour.
    pub unsupported: Vec<Unsupported>,
    /// Claims the pod mounts.
    pub claims: Vec<ClaimRef>,
}

impl Rendered {
    /// The pod as a template (for owners that stamp pods out).
    pub fn template(&self) -> PodTemplateSpec {
        PodTemplateSpec {
            metadata: Some(self.pod.metadata.clone()),
            spec: self.pod.spec.clone(),
        }
    }
}

/// What the owner needs to know about one container of a task pod (annotation
/// [`annotations::CONTAINERS`]).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ContainerMeta {
    /// The Kubernetes container name.
    pub name: String,
    /// The ECS container name.
    pub ecs_name: String,
    /// Whether the task stops when this container stops.
    pub essential: bool,
    /// Where the container runs in the pod.
    pub phase: Phase,
    /// ECS `dependsOn`, with Kubernetes container names.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub depends_on: Vec<DependencyMeta>,
    /// ECS `startTimeout`: seconds to wait for the dependencies.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub start_timeout: Option<i32>,
    /// The container has an ECS `restartPolicy` mapped to a container restart policy: the
    /// kubelet restarts it in place, and an exit is not the task stopping.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub restart_in_place: bool,
}

/// One `dependsOn` entry.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DependencyMeta {
    /// The Kubernetes name of the container depended upon.
    pub container_name: String,
    pub condition: ContainerCondition,
}

/// Reads [`annotations::CONTAINERS`] back from a task pod.
pub fn container_metadata(pod: &Pod) -> Option<Vec<ContainerMeta>> {
    let raw = pod
        .metadata
        .annotations
        .as_ref()?
        .get(annotations::CONTAINERS)?;
    serde_json::from_str(raw).ok()
}

/// Whether an ECS container is essential (the default).
pub(crate) fn is_essential(c: &crate::api::taskdef::ContainerDefinition) -> bool {
    c.essential.unwrap_or(true)
}

/// The task's network mode: `bridge` when omitted, as ECS on Linux.
pub(crate) fn network_mode(spec: &TaskDefinitionSpec) -> crate::api::taskdef::NetworkMode {
    spec.network_mode
        .unwrap_or(crate::api::taskdef::NetworkMode::Bridge)
}

/// The ECS spelling of a network mode.
pub(crate) fn mode_name(mode: crate::api::taskdef::NetworkMode) -> &'static str {
    use crate::api::taskdef::NetworkMode::*;
    match mode {
        Bridge => "bridge",
        Host => "host",
        Awsvpc => "awsvpc",
        None => "none",
    }
}
