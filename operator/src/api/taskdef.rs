//! `TaskDefinition`: one ECS task definition family. `spec` is the input of ECS
//! `RegisterTaskDefinition` in ECS's own JSON field names, so an existing `task-def.json`
//! applies unchanged as YAML under `spec`. Each change of `spec` registers a new immutable
//! revision (a `ControllerRevision`).

use std::collections::BTreeMap;

use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use kube::{CustomResource, KubeSchema};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::common::{Condition, KeyValuePair, Tag};
use super::states::RevisionState;

/// An ECS task definition family: the blueprint of a task (containers, resources, volumes,
/// network mode). Every change of `spec` registers a new revision, numbered 1, 2, 3... as ECS
/// does; services and tasks refer to `family` (latest ACTIVE revision) or `family:N`.
#[derive(CustomResource, Serialize, Deserialize, Clone, Debug, PartialEq, KubeSchema)]
#[kube(
    group = "ecs.kubecs.io",
    version = "v1alpha1",
    kind = "TaskDefinition",
    plural = "taskdefinitions",
    singular = "taskdefinition",
    shortname = "td",
    shortname = "taskdef",
    category = "ecs",
    namespaced,
    status = "TaskDefinitionStatus",
    doc = "An ECS task definition family. spec is the RegisterTaskDefinition input; every change registers a new immutable revision.",
    printcolumn(
        name = "Family",
        type_ = "string",
        json_path = ".status.family",
        description = "The task definition family"
    ),
    printcolumn(
        name = "Revision",
        type_ = "integer",
        json_path = ".status.latestRevision",
        description = "The latest registered revision"
    ),
    printcolumn(
        name = "Network",
        type_ = "string",
        json_path = ".spec.networkMode",
        description = "The Docker network mode"
    ),
    printcolumn(
        name = "CPU",
        type_ = "string",
        json_path = ".spec.cpu",
        description = "Task-level CPU units"
    ),
    printcolumn(
        name = "Memory",
        type_ = "string",
        json_path = ".spec.memory",
        description = "Task-level memory (MiB)"
    ),
    printcolumn(
        name = "Compatibilities",
        type_ = "string",
        json_path = ".status.compatibilities",
        priority = 1
    ),
    printcolumn(
        name = "Ready",
        type_ = "string",
        json_path = ".status.conditions[?(@.type=='Ready')].status"
    ),
    printcolumn(
        name = "Age",
        type_ = "date",
        json_path = ".metadata.creationTimestamp"
    )
)]
#[x_kube(validation = Rule::new("self.containerDefinitions.size() <= 10").message("Too many containers."))]
#[x_kube(validation = Rule::new("self.containerDefinitions.exists(c, !has(c.essential) || c.essential)").message("Task definition doesn't have any essential container."))]
#[x_kube(validation = Rule::new("has(self.memory) || self.containerDefinitions.all(c, has(c.memory) || has(c.memoryReservation))").message(kube::core::cel::Message::Expression("'Invalid setting for container \\'' + self.containerDefinitions.map(c, !has(c.memory) && !has(c.memoryReservation), c.name)[0] + '\\'. At least one of \\'memory\\' or \\'memoryReservation\\' must be specified.'".into())))]
#[x_kube(validation = Rule::new("!has(self.placementConstraints) || self.placementConstraints.size() <= 10").message("Too many placement constraints: at most 10 are allowed."))]
#[x_kube(validation = Rule::new("!has(self.family) || !has(oldSelf.family) || self.family == oldSelf.family").message("family cannot be changed: a TaskDefinition object is one family."))]
#[serde(rename_all = "camelCase")]
pub struct TaskDefinitionSpec {
    /// The family name of the task definition (up to 255 letters, numbers, hyphens and
    /// underscores). Defaults to `metadata.name`; it cannot change once set.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(regex(pattern = r"^[a-zA-Z0-9_-]{1,255}$"))]
    pub family: Option<String>,
    /// The IAM role its containers assume. In kubecs: `arn:aws:iam::ACCOUNT:role/NAME` or a
    /// plain NAME, both meaning the ServiceAccount NAME the task pod runs as.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub task_role_arn: Option<String>,
    /// The role the ECS agent uses to pull images and fetch secrets. kubecs pulls with the
    /// operator's own credentials for its registry; the value is kept for reference.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub execution_role_arn: Option<String>,
    /// The Docker networking mode: `awsvpc` (the default for Fargate, and kubecs' model: a pod
    /// network namespace per task), `bridge` (host ports mapped), `host` or `none`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub network_mode: Option<NetworkMode>,
    /// The containers of the task, 1 to 10, with unique names.
    #[schemars(length(min = 1, max = 100), extend("x-kubernetes-list-type" = "map", "x-kubernetes-list-map-keys" = ["name"]))]
    pub container_definitions: Vec<ContainerDefinition>,
    /// The data volumes that containers may mount.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 64))]
    pub volumes: Vec<Volume>,
    /// memberOf placement constraints of the task definition (they count toward the limit of
    /// 10 constraints of a service or task).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 40))]
    pub placement_constraints: Vec<TaskDefinitionPlacementConstraint>,
    /// The launch types the task definition is validated against: EC2, FARGATE, EXTERNAL,
    /// MANAGED_INSTANCES.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 4))]
    pub requires_compatibilities: Vec<Compatibility>,
    /// Task-level CPU units (1024 = 1 vCPU) as ECS takes it: "256", "1024", "1 vCPU". Required
    /// for Fargate, where it must be one of the Fargate sizes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cpu: Option<IntOrString>,
    /// Task-level memory in MiB as ECS takes it: "512", "2048", "2 GB". Required for Fargate.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub memory: Option<IntOrString>,
    /// Metadata tags for the task definition.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 50))]
    pub tags: Vec<Tag>,
    /// The process namespace: `host` or `task`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pid_mode: Option<PidMode>,
    /// The IPC namespace: `host`, `task` or `none`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ipc_mode: Option<IpcMode>,
    /// App Mesh proxy configuration (accepted; reported as unsupported).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub proxy_configuration: Option<ProxyConfiguration>,
    /// Elastic Inference accelerators (accepted; reported as unsupported).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub inference_accelerators: Vec<InferenceAccelerator>,
    /// The ephemeral storage of the task (Fargate: 21-200 GiB).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ephemeral_storage: Option<EphemeralStorage>,
    /// The operating system and CPU architecture the task runs on.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub runtime_platform: Option<RuntimePlatform>,
    /// Whether fault injection is enabled (accepted; reported as unsupported).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub enable_fault_injection: Option<bool>,
}

/// The Docker networking mode of a task.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum NetworkMode {
    Bridge,
    Host,
    Awsvpc,
    None,
}

/// A launch type a task definition is compatible with.
#[derive(
    Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, JsonSchema,
)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum Compatibility {
    Ec2,
    Fargate,
    External,
    ManagedInstances,
}

#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum PidMode {
    Host,
    Task,
}

#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum IpcMode {
    Host,
    Task,
    None,
}

/// A memberOf constraint of a task definition.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
pub struct TaskDefinitionPlacementConstraint {
    /// Always `memberOf` for a task definition.
    #[serde(rename = "type")]
    pub type_: TaskDefinitionPlacementConstraintType,
    /// A cluster query language expression.
    #[schemars(length(min = 1, max = 2000))]
    pub expression: String,
}

#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, JsonSchema)]
pub enum TaskDefinitionPlacementConstraintType {
    #[serde(rename = "memberOf")]
    MemberOf,
}

/// One container of a task (ECS `ContainerDefinition`).
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, KubeSchema)]
#[x_kube(validation = Rule::new("has(self.image) && self.image != ''").message("Container.image should not be null or empty."))]
#[x_kube(validation = Rule::new("!has(self.memory) || !has(self.memoryReservation) || self.memory >= self.memoryReservation").message(kube::core::cel::Message::Expression("'Invalid setting for container \\'' + self.name + '\\'. The memory reservation must be less than or equal to the memory limit.'".into())))]
#[serde(rename_all = "camelCase")]
pub struct ContainerDefinition {
    /// The name of the container: up to 255 letters, numbers, hyphens and underscores, unique
    /// in the task definition. `links` and `dependsOn` refer to it.
    #[schemars(length(max = 255), regex(pattern = r"^[a-zA-Z0-9_-]{1,255}$"))]
    pub name: String,
    /// The image: `repository-url/image:tag` or `@digest`. Images of the kubecs registry are
    /// pulled with credentials the operator injects.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 1024))]
    pub image: Option<String>,
    /// Private registry credentials: `credentialsParameter` names a Kubernetes Secret of type
    /// kubernetes.io/dockerconfigjson (or a Secrets Manager ARN whose secret name is that).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub repository_credentials: Option<RepositoryCredentials>,
    /// CPU units reserved for the container (1024 = 1 vCPU): a relative share, not a limit.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0))]
    pub cpu: Option<i32>,
    /// The hard memory limit in MiB: the container is killed above it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 6))]
    pub memory: Option<i32>,
    /// The soft memory limit in MiB: reserved for placement, the container may use more.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 6))]
    pub memory_reservation: Option<i32>,
    /// Links to other containers (`name` or `name:alias`), bridge network mode only.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub links: Vec<String>,
    /// Ports on the container to expose.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 100))]
    pub port_mappings: Vec<PortMapping>,
    /// If true (the default), the task stops when this container stops. At least one container
    /// of a task must be essential.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub essential: Option<bool>,
    /// The container restart policy (restart in place on exit).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub restart_policy: Option<ContainerRestartPolicy>,
    /// The entry point (Docker ENTRYPOINT); becomes the container's `command`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub entry_point: Vec<String>,
    /// The command (Docker CMD); becomes the container's `args`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub command: Vec<String>,
    /// Environment variables.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub environment: Vec<KeyValuePair>,
    /// Files of environment variables (S3 objects in ECS; accepted, reported as unsupported).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub environment_files: Vec<EnvironmentFile>,
    /// Volumes to mount into the container.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub mount_points: Vec<MountPoint>,
    /// Mount all the volumes of another container.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub volumes_from: Vec<VolumeFrom>,
    /// Linux-specific settings (capabilities, devices, init process, /dev/shm, tmpfs).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub linux_parameters: Option<LinuxParameters>,
    /// Secrets exposed as environment variables: `valueFrom` is `secret-name:key`, a Secrets
    /// Manager ARN (`arn:aws:secretsmanager:REGION:ACCOUNT:secret:NAME[:json-key[:stage[:id]]]`),
    /// an SSM parameter ARN or a bare parameter name; each maps to a Kubernetes Secret.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub secrets: Vec<Secret>,
    /// Containers that must reach a condition before this one starts.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 10))]
    pub depends_on: Vec<ContainerDependency>,
    /// Seconds to wait for `dependsOn` conditions before giving up on the container.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0))]
    pub start_timeout: Option<i32>,
    /// Seconds between SIGTERM and SIGKILL (the pod's termination grace period; ECS max 120).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0, max = 120))]
    pub stop_timeout: Option<i32>,
    /// Whether the image tag is resolved to a digest at deployment (`enabled`, `disabled`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version_consistency: Option<VersionConsistency>,
    /// The container's hostname (not with awsvpc).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hostname: Option<String>,
    /// The user to run as: `uid`, `uid:gid`, `user`, `user:group`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user: Option<String>,
    /// The working directory.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub working_directory: Option<String>,
    /// Disables networking inside the container.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub disable_networking: Option<bool>,
    /// Elevated privileges on the host (not on Fargate).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub privileged: Option<bool>,
    /// A read-only root file system.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub readonly_root_filesystem: Option<bool>,
    /// DNS servers for the container.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub dns_servers: Vec<String>,
    /// DNS search domains for the container.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub dns_search_domains: Vec<String>,
    /// Entries appended to /etc/hosts.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub extra_hosts: Vec<HostEntry>,
    /// SELinux, AppArmor and seccomp options, `label:...`, `apparmor:...`, `no-new-privileges`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub docker_security_options: Vec<String>,
    /// Keep stdin open (docker run -i).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub interactive: Option<bool>,
    /// Allocate a TTY (docker run -t).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pseudo_terminal: Option<bool>,
    /// Docker labels; they become pod annotations.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub docker_labels: BTreeMap<String, String>,
    /// Resource limits (nofile, nproc, ...). Accepted; Kubernetes sets them per node.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub ulimits: Vec<Ulimit>,
    /// The log driver (awslogs, fluentd, awsfirelens, ...) and its options.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub log_configuration: Option<LogConfiguration>,
    /// The container health check; it becomes a probe and gates deployments.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub health_check: Option<HealthCheck>,
    /// Namespaced kernel parameters (sysctls).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub system_controls: Vec<SystemControl>,
    /// GPUs or inference accelerators reserved for the container.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub resource_requirements: Vec<ResourceRequirement>,
    /// FireLens log router configuration.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub firelens_configuration: Option<FirelensConfiguration>,
    /// Active Directory credential specs (Windows; accepted, reported as unsupported).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub credential_specs: Vec<String>,
}

#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct RepositoryCredentials {
    /// The secret holding the registry credentials.
    pub credentials_parameter: String,
}

/// A port mapping of a container.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct PortMapping {
    /// The port the container listens on.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0, max = 65535))]
    pub container_port: Option<i32>,
    /// The port on the container instance. With awsvpc it must be omitted or equal
    /// containerPort; with bridge, 0 or omitted means an ephemeral port.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0, max = 65535))]
    pub host_port: Option<i32>,
    /// `tcp` (the default) or `udp`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub protocol: Option<TransportProtocol>,
    /// A name for the mapping (Service Connect); becomes the container port name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// The application protocol: `http`, `http2` or `grpc`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub app_protocol: Option<AppProtocol>,
    /// A range of container ports, e.g. `8000-8010` (accepted; reported as unsupported).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub container_port_range: Option<String>,
}

#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum TransportProtocol {
    Tcp,
    Udp,
}

#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum AppProtocol {
    Http,
    Http2,
    Grpc,
}

#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum VersionConsistency {
    Enabled,
    Disabled,
}

#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ContainerRestartPolicy {
    /// Whether the container restarts in place when it exits.
    pub enabled: bool,
    /// Exit codes that do not trigger a restart (up to 50).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 50))]
    pub ignored_exit_codes: Vec<i32>,
    /// Seconds the container must run before a restart is attempted (60-1800).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 60, max = 1800))]
    pub restart_attempt_period: Option<i32>,
}

#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
pub struct EnvironmentFile {
    /// The ARN of the S3 object.
    pub value: String,
    /// Always `s3`.
    #[serde(rename = "type")]
    pub type_: String,
}

/// A volume mounted into a container.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct MountPoint {
    /// The name of a volume of the task definition.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source_volume: Option<String>,
    /// The path in the container.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub container_path: Option<String>,
    /// Mount read-only (default false).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub read_only: Option<bool>,
}

#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct VolumeFrom {
    /// The container whose volumes are mounted.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source_container: Option<String>,
    /// Mount read-only (default false).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub read_only: Option<bool>,
}

#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct LinuxParameters {
    /// Linux capabilities added to or dropped from the Docker default set.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub capabilities: Option<KernelCapabilities>,
    /// Host devices exposed to the container (accepted; reported as unsupported).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub devices: Vec<Device>,
    /// Run an init process (PID 1) that forwards signals and reaps processes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub init_process_enabled: Option<bool>,
    /// The size of /dev/shm in MiB.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0))]
    pub shared_memory_size: Option<i32>,
    /// tmpfs mounts.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tmpfs: Vec<Tmpfs>,
    /// Swap memory in MiB (accepted; reported as unsupported).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_swap: Option<i32>,
    /// Swappiness 0-100 (accepted; reported as unsupported).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0, max = 100))]
    pub swappiness: Option<i32>,
}

#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
pub struct KernelCapabilities {
    /// Capabilities to add, e.g. `NET_ADMIN`, `SYS_PTRACE`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub add: Vec<String>,
    /// Capabilities to drop, e.g. `ALL`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub drop: Vec<String>,
}

#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Device {
    /// The path of the device on the host.
    pub host_path: String,
    /// The path inside the container.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub container_path: Option<String>,
    /// `read`, `write`, `mknod`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub permissions: Vec<String>,
}

#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Tmpfs {
    /// The path of the tmpfs mount.
    pub container_path: String,
    /// The maximum size in MiB.
    #[schemars(range(min = 1))]
    pub size: i32,
    /// Mount options such as `noexec`, `nosuid`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub mount_options: Vec<String>,
}

/// A secret exposed to a container as an environment variable.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Secret {
    /// The environment variable name.
    pub name: String,
    /// Where the value comes from: `secret-name:key`, a Secrets Manager ARN, an SSM parameter
    /// ARN or name.
    #[schemars(length(min = 1))]
    pub value_from: String,
}

#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ContainerDependency {
    /// The container depended upon.
    pub container_name: String,
    /// START (started), COMPLETE (exited), SUCCESS (exited 0) or HEALTHY (health check passed).
    pub condition: ContainerCondition,
}

#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum ContainerCondition {
    Start,
    Complete,
    Success,
    Healthy,
}

#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct HostEntry {
    pub hostname: String,
    pub ip_address: String,
}

#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Ulimit {
    /// core, cpu, data, fsize, locks, memlock, msgqueue, nice, nofile, nproc, rss, rtprio,
    /// rttime, sigpending, stack.
    pub name: String,
    pub soft_limit: i64,
    pub hard_limit: i64,
}

#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct LogConfiguration {
    /// awslogs, fluentd, gelf, json-file, journald, logentries, syslog, splunk, awsfirelens.
    pub log_driver: String,
    /// Options of the log driver.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub options: BTreeMap<String, String>,
    /// Secrets passed to the log driver.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub secret_options: Vec<Secret>,
}

/// A container health check (Docker HEALTHCHECK), with ECS's ranges and defaults.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, KubeSchema)]
#[x_kube(validation = Rule::new("self.command.size() >= 1 && self.command[0] in ['CMD', 'CMD-SHELL', 'NONE']").message("healthCheck.command must start with CMD or CMD-SHELL."))]
#[serde(rename_all = "camelCase")]
pub struct HealthCheck {
    /// `["CMD", "exe", "arg"...]` or `["CMD-SHELL", "shell command"]`.
    #[schemars(length(min = 1))]
    pub command: Vec<String>,
    /// Seconds between checks, 5-300 (default 30).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 5, max = 300))]
    pub interval: Option<i32>,
    /// Seconds a check may take before it fails, 2-60 (default 5).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 2, max = 60))]
    pub timeout: Option<i32>,
    /// Consecutive failures before the container is unhealthy, 1-10 (default 3).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1, max = 10))]
    pub retries: Option<i32>,
    /// Grace seconds before failures count, 0-300 (default off).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0, max = 300))]
    pub start_period: Option<i32>,
}

#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
pub struct SystemControl {
    /// The namespaced kernel parameter, e.g. `net.core.somaxconn`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
    /// Its value.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub value: Option<String>,
}

#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
pub struct ResourceRequirement {
    /// The number of GPUs, or the accelerator's device name.
    pub value: String,
    /// `GPU` or `InferenceAccelerator`.
    #[serde(rename = "type")]
    pub type_: ResourceRequirementType,
}

#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, JsonSchema)]
pub enum ResourceRequirementType {
    #[serde(rename = "GPU")]
    Gpu,
    InferenceAccelerator,
}

#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
pub struct FirelensConfiguration {
    /// `fluentd` or `fluentbit`.
    #[serde(rename = "type")]
    pub type_: FirelensType,
    /// Options of the log router.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub options: BTreeMap<String, String>,
}

#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum FirelensType {
    Fluentd,
    Fluentbit,
}

/// A data volume of the task.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Volume {
    /// The name that mountPoints refer to.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(regex(pattern = r"^[a-zA-Z0-9_-]{1,255}$"))]
    pub name: Option<String>,
    /// A bind mount of a host path (or, without `sourcePath`, an empty scratch volume).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub host: Option<HostVolumeProperties>,
    /// A Docker volume: `task` scope becomes an emptyDir, `shared` a PersistentVolumeClaim.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub docker_volume_configuration: Option<DockerVolumeConfiguration>,
    /// An Amazon EFS file system: a PersistentVolumeClaim named after the file system id.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub efs_volume_configuration: Option<EfsVolumeConfiguration>,
    /// An FSx for Windows File Server volume (accepted; reported as unsupported).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fsx_windows_file_server_volume_configuration:
        Option<FsxWindowsFileServerVolumeConfiguration>,
    /// Whether the volume is configured at launch (service or RunTask volumeConfigurations).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub configured_at_launch: Option<bool>,
}

#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct HostVolumeProperties {
    /// The path on the host.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source_path: Option<String>,
}

#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct DockerVolumeConfiguration {
    /// `task` (removed with the task) or `shared` (persists).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scope: Option<DockerVolumeScope>,
    /// Create the shared volume if it does not exist.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub autoprovision: Option<bool>,
    /// The volume driver (a StorageClass for shared volumes).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub driver: Option<String>,
    /// Driver options.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub driver_opts: BTreeMap<String, String>,
    /// Volume labels.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub labels: BTreeMap<String, String>,
}

#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum DockerVolumeScope {
    Task,
    Shared,
}

#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct EfsVolumeConfiguration {
    /// The EFS file system id; kubecs mounts the PersistentVolumeClaim of that name.
    pub file_system_id: String,
    /// The directory of the file system to mount as the root (a subPath).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub root_directory: Option<String>,
    /// ENABLED or DISABLED (accepted).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub transit_encryption: Option<super::common::EnabledDisabled>,
    /// The port for encrypted transit (accepted).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub transit_encryption_port: Option<i32>,
    /// Access point and IAM authorization (accepted).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub authorization_config: Option<EfsAuthorizationConfig>,
}

#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct EfsAuthorizationConfig {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub access_point_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub iam: Option<super::common::EnabledDisabled>,
}

#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct FsxWindowsFileServerVolumeConfiguration {
    pub file_system_id: String,
    pub root_directory: String,
    pub authorization_config: FsxWindowsFileServerAuthorizationConfig,
}

#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct FsxWindowsFileServerAuthorizationConfig {
    pub credentials_parameter: String,
    pub domain: String,
}

#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ProxyConfiguration {
    /// Always `APPMESH`.
    #[serde(default, rename = "type", skip_serializing_if = "Option::is_none")]
    pub type_: Option<String>,
    /// The name of the proxy container.
    pub container_name: String,
    /// The proxy properties.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub properties: Vec<KeyValuePair>,
}

#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct InferenceAccelerator {
    pub device_name: String,
    pub device_type: String,
}

#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct EphemeralStorage {
    /// GiB of ephemeral storage (21-200 on Fargate).
    #[schemars(range(min = 1))]
    pub size_in_gi_b: i32,
}

#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct RuntimePlatform {
    /// LINUX, WINDOWS_SERVER_2019_FULL, ... (matched against `ecs.os-type`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub operating_system_family: Option<String>,
    /// X86_64 or ARM64 (matched against `ecs.cpu-architecture`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cpu_architecture: Option<CpuArchitecture>,
}

#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum CpuArchitecture {
    #[serde(rename = "X86_64")]
    X8664,
    #[serde(rename = "ARM64")]
    Arm64,
}

/// The registered revisions of the family and what ECS computes for them.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct TaskDefinitionStatus {
    /// The family these revisions belong to.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub family: Option<String>,
    /// The number of the newest revision (1, 2, 3...).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub latest_revision: Option<i64>,
    /// The ARN of the newest revision.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub task_definition_arn: Option<String>,
    /// Every registered revision, newest first (bounded; older ones stay as ControllerRevisions).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub revisions: Vec<TaskDefinitionRevision>,
    /// Container instance attributes the latest revision requires.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub requires_attributes: Vec<Attribute>,
    /// The launch types the latest revision is valid for.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub compatibilities: Vec<Compatibility>,
    /// Fields Kubernetes cannot honour: accepted, named here, never dropped silently.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub unsupported_fields: Vec<String>,
    /// The generation of spec the status describes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
    /// Ready, Degraded, UnsupportedFields.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub conditions: Vec<Condition>,
}

/// One registered revision.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct TaskDefinitionRevision {
    /// The revision number.
    pub revision: i64,
    /// ACTIVE or INACTIVE (deregistered: running services keep it, new ones cannot use it).
    pub status: RevisionState,
    /// The ControllerRevision that holds the normalised task definition.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub controller_revision: Option<String>,
    /// When it was registered.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub registered_at: Option<String>,
    /// When it was deregistered.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub deregistered_at: Option<String>,
}

/// A container instance attribute (ECS `Attribute`).
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Attribute {
    pub name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub value: Option<String>,
}
