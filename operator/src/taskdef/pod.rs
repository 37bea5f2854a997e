//! A task definition -> the Pod of one task. The mapping, field by field, is documented in
//! `operator/docs/task-definition-mapping.md`; the dependency plan in [`super::deps`].

use std::collections::{BTreeMap, BTreeSet};

use k8s_openapi::api::core::v1::{
    AppArmorProfile, Capabilities, Container, ContainerPort, ContainerRestartRule,
    ContainerRestartRuleOnExitCodes, EmptyDirVolumeSource, EnvVar, EnvVarSource, ExecAction,
    HostAlias, HostPathVolumeSource, LocalObjectReference, PersistentVolumeClaimVolumeSource, Pod,
    PodDNSConfig, PodSecurityContext, PodSpec, Probe, ResourceRequirements, SELinuxOptions,
    SecretKeySelector, SecurityContext, Sysctl, Volume, VolumeMount,
};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

use crate::api::labels;
use crate::api::taskdef::{
    ContainerCondition, ContainerDefinition, CpuArchitecture, DockerVolumeScope, FirelensType,
    HealthCheck, IpcMode, NetworkMode, PidMode, ResourceRequirementType, TaskDefinitionSpec,
    TransportProtocol,
};

use super::deps::{self, Phase, Plan};
use super::names::{
    dns_label, dns_subdomain, is_dns_subdomain, is_port_name, is_qualified_name, label_value,
    unique,
};
use super::secrets::{parse_value_from, pull_secret_name, service_account_name};
use super::units::{cpu_quantity, memory_quantity};
use super::validate::{task_cpu, task_memory, validate};
use super::{
    ClaimRef, ContainerMeta, DependencyMeta, PodIdentity, RenderOptions, Rendered, Unsupported,
    ValidationErrors, annotations, is_essential, network_mode,
};

/// ECS's health check defaults.
const DEFAULT_INTERVAL: i32 = 30;
const DEFAULT_TIMEOUT: i32 = 5;
const DEFAULT_RETRIES: i32 = 3;
/// Kubernetes allows at most this many nameservers.
const MAX_NAMESERVERS: usize = 3;
/// The loopback address links resolve to: all containers of a pod share its network.
const LOOPBACK: &str = "127.0.0.1";

/// Validates `spec` and renders the pod of one task. This is what the Service and Task
/// controllers call: `identity` names the pod and carries the cluster / family / revision
/// labels, `opts` says what the cluster supports.
pub fn render_pod(
    spec: &TaskDefinitionSpec,
    identity: &PodIdentity,
    opts: &RenderOptions,
) -> Result<Rendered, ValidationErrors> {
    validate(spec)?;
    Ok(translate(spec, identity, opts))
}

/// The fields of `spec` that Kubernetes cannot honour, with what kubecs does instead: for the
/// TaskDefinition's `UnsupportedFields` condition and `status.unsupportedFields`.
pub fn unsupported_fields(spec: &TaskDefinitionSpec) -> Vec<Unsupported> {
    translate(spec, &PodIdentity::default(), &RenderOptions::default()).unsupported
}

/// Escapes `$(` and `$$` so that Kubernetes' `$(VAR)` expansion of command, args and env
/// values leaves ECS's literal strings unchanged.
fn literal(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut chars = s.chars().peekable();
    while let Some(c) = chars.next() {
        out.push(c);
        if c == '$' && matches!(chars.peek(), Some('$') | Some('(')) {
            out.push('$');
        }
    }
    out
}

struct Ctx<'a> {
    spec: &'a TaskDefinitionSpec,
    opts: &'a RenderOptions,
    plan: Plan,
    mode: NetworkMode,
    /// Kubernetes container names by container index.
    names: Vec<String>,
    /// Kubernetes volume name and optional subPath by ECS volume name.
    volumes: BTreeMap<String, (String, Option<String>)>,
    volume_names: BTreeSet<String>,
    pod_volumes: Vec<Volume>,
    claims: Vec<ClaimRef>,
    notes: Vec<Unsupported>,
    pod_annotations: BTreeMap<String, String>,
    odd_docker_labels: BTreeMap<String, String>,
    host_aliases: BTreeMap<String, BTreeSet<String>>,
    pull_secrets: Vec<String>,
    sysctls: Vec<Sysctl>,
    share_process_namespace: bool,
}

impl Ctx<'_> {
    fn note(&mut self, field: impl Into<String>, reason: impl Into<String>) {
        let u = Unsupported {
            field: field.into(),
            reason: reason.into(),
        };
        if !self.notes.contains(&u) {
            self.notes.push(u);
        }
    }

    fn generated_volume(&mut self, base: String, medium_memory: bool, mib: i64) -> String {
        let name = unique(base, &mut self.volume_names);
        self.pod_volumes.push(Volume {
            name: name.clone(),
            empty_dir: Some(EmptyDirVolumeSource {
                medium: medium_memory.then(|| "Memory".to_string()),
                size_limit: (mib > 0).then(|| memory_quantity(mib)),
                ..Default::default()
            }),
            ..Default::default()
        });
        name
    }
}

fn cfield(c: &ContainerDefinition, field: &str) -> String {
    format!("containerDefinitions[{}].{field}", c.name)
}

/// Renders without validating (robust on invalid input, but the pod may then be refused).
pub(crate) fn translate(
    spec: &TaskDefinitionSpec,
    identity: &PodIdentity,
    opts: &RenderOptions,
) -> Rendered {
    let mut used = BTreeSet::new();
    let names: Vec<String> = spec
        .container_definitions
        .iter()
        .map(|c| unique(dns_label(&c.name), &mut used))
        .collect();
    let mut ctx = Ctx {
        spec,
        opts,
        plan: deps::plan(spec),
        mode: network_mode(spec),
        names,
        volumes: BTreeMap::new(),
        volume_names: BTreeSet::new(),
        pod_volumes: Vec::new(),
        claims: Vec::new(),
        notes: Vec::new(),
        pod_annotations: BTreeMap::new(),
        odd_docker_labels: BTreeMap::new(),
        host_aliases: BTreeMap::new(),
        pull_secrets: Vec::new(),
        sysctls: Vec::new(),
        share_process_namespace: false,
    };
    task_volumes(&mut ctx);

    let mut containers: Vec<Option<Container>> = Vec::new();
    for i in 0..spec.container_definitions.len() {
        containers.push(Some(container(&mut ctx, i)));
    }
    let mut take = |i: usize| containers[i].take().expect("each container is placed once");
    let init: Vec<Container> = ctx
        .plan
        .init_order
        .clone()
        .into_iter()
        .map(&mut take)
        .collect();
    let main: Vec<Container> = ctx
        .plan
        .main_order
        .clone()
        .into_iter()
        .map(&mut take)
        .collect();

    let pod_spec = pod_spec(&mut ctx, init, main);
    let metadata = metadata(&mut ctx, identity);
    ctx.notes.sort();
    Rendered {
        pod: Pod {
            metadata,
            spec: Some(pod_spec),
            status: None,
        },
        unsupported: ctx.notes,
        claims: ctx.claims,
    }
}

/// The task definition's volumes.
fn task_volumes(ctx: &mut Ctx) {
    for (vi, v) in ctx.spec.volumes.iter().enumerate() {
        let ecs_name = v.name.clone().unwrap_or_else(|| format!("volume-{vi}"));
        let field = format!("volumes[{ecs_name}]");
        let name = unique(dns_label(&ecs_name), &mut ctx.volume_names);
        let mut volume = Volume {
            name: name.clone(),
            ..Default::default()
        };
        let mut sub_path = None;
        let empty_dir = || Some(EmptyDirVolumeSource::default());
        if let Some(efs) = &v.efs_volume_configuration {
            let claim = dns_subdomain(&efs.file_system_id);
            volume.persistent_volume_claim = Some(PersistentVolumeClaimVolumeSource {
                claim_name: claim.clone(),
                read_only: None,
            });
            sub_path = efs
                .root_directory
                .as_deref()
                .map(|r| r.trim_matches('/').to_string())
                .filter(|r| !r.is_empty());
            if efs.transit_encryption.is_some()
                || efs.transit_encryption_port.is_some()
                || efs.authorization_config.is_some()
            {
                ctx.note(
                    format!("{field}.efsVolumeConfiguration"),
                    format!("transit encryption and access points are the business of the PersistentVolumeClaim '{claim}' (and its PersistentVolume), not of the pod"),
                );
            }
            if !ctx.claims.iter().any(|c| c.name == claim) {
                ctx.claims.push(ClaimRef {
                    name: claim,
                    volume: ecs_name.clone(),
                    source: "efs",
                    storage_class: None,
                    autoprovision: false,
                });
            }
        } else if let Some(d) = &v.docker_volume_configuration {
            if d.scope == Some(DockerVolumeScope::Shared) {
                let claim = dns_subdomain(&ecs_name);
                volume.persistent_volume_claim = Some(PersistentVolumeClaimVolumeSource {
                    claim_name: claim.clone(),
                    read_only: None,
                });
                if !d.driver_opts.is_empty() || !d.labels.is_empty() {
                    ctx.note(
                        format!("{field}.dockerVolumeConfiguration"),
                        format!("driverOpts and labels are not passed on: the PersistentVolumeClaim '{claim}' and its StorageClass decide"),
                    );
                }
                ctx.claims.push(ClaimRef {
                    name: claim,
                    volume: ecs_name.clone(),
                    source: "docker",
                    storage_class: d.driver.clone().filter(|d| d != "local"),
                    autoprovision: d.autoprovision.unwrap_or(false),
                });
            } else {
                volume.empty_dir = empty_dir();
                if d.driver.as_deref().is_some_and(|d| d != "local") || !d.driver_opts.is_empty() {
                    ctx.note(
                        format!("{field}.dockerVolumeConfiguration"),
                        "a task-scoped Docker volume is an emptyDir: its driver and driverOpts are not used",
                    );
                }
            }
        } else if v.fsx_windows_file_server_volume_configuration.is_some() {
            volume.empty_dir = empty_dir();
            ctx.note(
                format!("{field}.fsxWindowsFileServerVolumeConfiguration"),
                "FSx for Windows File Server is not available: an empty directory is mounted instead",
            );
        } else if let Some(path) = v.host.as_ref().and_then(|h| h.source_path.clone()) {
            volume.host_path = Some(HostPathVolumeSource { path, type_: None });
        } else {
            volume.empty_dir = empty_dir();
        }
        if v.configured_at_launch == Some(true) {
            ctx.note(
                format!("{field}.configuredAtLaunch"),
                "volumes configured at launch (EBS) are not supported: the volume is mounted as configured in the task definition",
            );
        }
        ctx.pod_volumes.push(volume);
        ctx.volumes.insert(ecs_name, (name, sub_path));
    }
}

/// The mount points of container `i`, with those of `volumesFrom` containers (transitively).
fn mounts(ctx: &Ctx, i: usize) -> Vec<VolumeMount> {
    let containers = &ctx.spec.container_definitions;
    let mut out = Vec::new();
    let mut stack = vec![(i, false)];
    let mut seen = BTreeSet::new();
    while let Some((ci, force_ro)) = stack.pop() {
        if !seen.insert(ci) {
            continue;
        }
        let c = &containers[ci];
        for m in &c.mount_points {
            let (Some(src), Some(path)) = (&m.source_volume, &m.container_path) else {
                continue;
            };
            let Some((name, sub_path)) = ctx.volumes.get(src) else {
                continue;
            };
            let read_only = force_ro || m.read_only == Some(true);
            out.push(VolumeMount {
                name: name.clone(),
                mount_path: path.clone(),
                read_only: read_only.then_some(true),
                sub_path: sub_path.clone(),
                ..Default::default()
            });
        }
        for v in c.volumes_from.iter().rev() {
            if let Some(j) = v
                .source_container
                .as_deref()
                .and_then(|s| containers.iter().position(|c| c.name == s))
            {
                stack.push((j, force_ro || v.read_only == Some(true)));
            }
        }
    }
    out
}

fn exec_command(h: &HealthCheck) -> Option<Vec<String>> {
    let (kind, rest) = h.command.split_first()?;
    match kind.as_str() {
        "CMD" if !rest.is_empty() => Some(rest.to_vec()),
        "CMD-SHELL" if !rest.is_empty() => {
            Some(vec!["/bin/sh".into(), "-c".into(), rest.join(" ")])
        }
        _ => None,
    }
}

fn probe(command: &[String], h: &HealthCheck, failure_threshold: i32, delay: i32) -> Probe {
    Probe {
        exec: Some(ExecAction {
            command: Some(command.to_vec()),
        }),
        period_seconds: Some(h.interval.unwrap_or(DEFAULT_INTERVAL)),
        timeout_seconds: Some(h.timeout.unwrap_or(DEFAULT_TIMEOUT)),
        failure_threshold: Some(failure_threshold.max(1)),
        success_threshold: Some(1),
        initial_delay_seconds: (delay > 0).then_some(delay),
        ..Default::default()
    }
}

/// Extra failed checks before the kubelet kills an unhealthy essential container.
const LIVENESS_MARGIN: i32 = 2;

/// ECS healthCheck -> probes: readiness (gates deployments and load balancing), liveness for
/// essential containers only (an unhealthy essential container stops the task in ECS; the
/// kubelet kills it and, with restartPolicy Never, it stays stopped), and a startup probe
/// for startPeriod (failures do not count until it passes) or for a HEALTHY dependency
/// target (the kubelet waits for it before starting the next container).
fn probes(ctx: &mut Ctx, i: usize, container: &mut Container) {
    let c = &ctx.spec.container_definitions[i];
    let Some(h) = &c.health_check else { return };
    let Some(command) = exec_command(h) else {
        return; // NONE: the image's HEALTHCHECK is disabled; Kubernetes never runs it.
    };
    let phase = ctx.plan.phase[i];
    if phase == Phase::Init {
        ctx.note(
            cfield(c, "healthCheck"),
            "the container runs to completion before the others start (an init container), where health checks do not apply",
        );
        return;
    }
    let interval = h.interval.unwrap_or(DEFAULT_INTERVAL).max(1);
    let retries = h.retries.unwrap_or(DEFAULT_RETRIES);
    let start_period = h.start_period.unwrap_or(0);
    let healthy_target = ctx
        .plan
        .deps
        .iter()
        .flatten()
        .any(|(t, cond)| *t == i && *cond == ContainerCondition::Healthy);
    let mut delay = 0;
    if healthy_target {
        // Dependents wait at most their startTimeout for HEALTHY.
        let timeout = ctx
            .plan
            .deps
            .iter()
            .enumerate()
            .filter(|(_, d)| d.iter().any(|(t, _)| *t == i))
            .filter_map(|(j, _)| ctx.spec.container_definitions[j].start_timeout)
            .max();
        let threshold = match timeout {
            Some(t) => (t + interval - 1) / interval,
            None => (start_period + interval - 1) / interval + retries,
        };
        container.startup_probe = Some(probe(&command, h, threshold, 0));
    } else if start_period > 0 {
        if phase == Phase::Sidecar {
            // A startup probe would hold the containers that only wait for START.
            delay = start_period;
        } else {
            let threshold = (start_period + interval - 1) / interval + retries;
            container.startup_probe = Some(probe(&command, h, threshold, 0));
        }
    }
    container.readiness_probe = Some(probe(&command, h, retries, delay));
    if is_essential(c) {
        // Two intervals later than readiness: the operator, seeing the task UNHEALTHY, stops
        // it first, as ECS's scheduler does ("Task failed container health checks"); the
        // kubelet's kill is the backstop for when no operator acts. With the same threshold
        // the kill won the race at random, and the task read as an essential container exit.
        container.liveness_probe = Some(probe(&command, h, retries + LIVENESS_MARGIN, delay));
    }
}

/// ECS user (`uid`, `uid:gid`, `user`, `user:group`) -> runAsUser / runAsGroup.
fn user(ctx: &mut Ctx, c: &ContainerDefinition, sc: &mut SecurityContext) {
    let Some(u) = c.user.as_deref() else { return };
    let (user, group) = match u.split_once(':') {
        Some((u, g)) => (u, Some(g)),
        None => (u, None),
    };
    let id = |s: &str| -> Option<i64> { if s == "root" { Some(0) } else { s.parse().ok() } };
    match id(user) {
        Some(uid) => sc.run_as_user = Some(uid),
        None => ctx.note(
            cfield(c, "user"),
            format!(
                "Kubernetes runs containers as numeric ids only: user '{user}' is left to the image"
            ),
        ),
    }
    if let Some(g) = group {
        match id(g) {
            Some(gid) => sc.run_as_group = Some(gid),
            None => ctx.note(
                cfield(c, "user"),
                format!("Kubernetes runs containers as numeric ids only: group '{g}' is left to the image"),
            ),
        }
    }
}

fn security_context(ctx: &mut Ctx, i: usize) -> Option<SecurityContext> {
    let c = &ctx.spec.container_definitions[i];
    let mut sc = SecurityContext {
        privileged: c.privileged.filter(|p| *p),
        read_only_root_filesystem: c.readonly_root_filesystem.filter(|r| *r),
        ..Default::default()
    };
    user(ctx, c, &mut sc);
    let mut sys_admin = false;
    if let Some(caps) = c
        .linux_parameters
        .as_ref()
        .and_then(|l| l.capabilities.as_ref())
    {
        let norm = |v: &[String]| -> Option<Vec<String>> {
            (!v.is_empty()).then(|| {
                v.iter()
                    .map(|s| s.trim_start_matches("CAP_").to_string())
                    .collect()
            })
        };
        let add = norm(&caps.add);
        sys_admin = add
            .as_ref()
            .is_some_and(|a| a.iter().any(|c| c == "SYS_ADMIN"));
        if add.is_some() || !caps.drop.is_empty() {
            sc.capabilities = Some(Capabilities {
                add,
                drop: norm(&caps.drop),
            });
        }
    }
    for opt in &c.docker_security_options {
        let field = cfield(c, "dockerSecurityOptions");
        if opt == "no-new-privileges" {
            if sc.privileged == Some(true) || sys_admin {
                ctx.note(field, "no-new-privileges cannot be combined with privileged or SYS_ADMIN in Kubernetes: ignored");
            } else {
                sc.allow_privilege_escalation = Some(false);
            }
        } else if let Some(label) = opt.strip_prefix("label:") {
            let se = sc
                .se_linux_options
                .get_or_insert_with(SELinuxOptions::default);
            match label.split_once(':') {
                Some(("user", v)) => se.user = Some(v.into()),
                Some(("role", v)) => se.role = Some(v.into()),
                Some(("type", v)) => se.type_ = Some(v.into()),
                Some(("level", v)) => se.level = Some(v.into()),
                _ => ctx.note(
                    field,
                    format!("SELinux option '{opt}' has no Kubernetes equivalent"),
                ),
            }
        } else if let Some(profile) = opt.strip_prefix("apparmor:") {
            sc.app_armor_profile = Some(match profile {
                "unconfined" => AppArmorProfile {
                    type_: "Unconfined".into(),
                    localhost_profile: None,
                },
                "runtime/default" | "docker-default" => AppArmorProfile {
                    type_: "RuntimeDefault".into(),
                    localhost_profile: None,
                },
                p => AppArmorProfile {
                    type_: "Localhost".into(),
                    localhost_profile: Some(p.into()),
                },
            });
        } else {
            ctx.note(field, format!("'{opt}' has no Kubernetes equivalent"));
        }
    }
    if sc.se_linux_options == Some(SELinuxOptions::default()) {
        sc.se_linux_options = None;
    }
    (sc != SecurityContext::default()).then_some(sc)
}

/// Container and (when pod-level resources are off) task resources.
fn resources(ctx: &mut Ctx, i: usize) -> Option<ResourceRequirements> {
    let spec = ctx.spec;
    let c = &spec.container_definitions[i];
    let mut requests = BTreeMap::new();
    let mut limits = BTreeMap::new();
    if let Some(cpu) = c.cpu.filter(|c| *c > 0) {
        requests.insert("cpu".to_string(), cpu_quantity(i64::from(cpu)));
    }
    if let Some(mem) = c.memory_reservation.or(c.memory) {
        requests.insert("memory".to_string(), memory_quantity(i64::from(mem)));
    }
    if let Some(mem) = c.memory {
        limits.insert("memory".to_string(), memory_quantity(i64::from(mem)));
    }
    if !ctx.opts.pod_level_resources {
        // Without pod-level resources: the task size is shared by the containers that set
        // none, and caps each container.
        let containers = &spec.container_definitions;
        if let Some(task) = task_cpu(spec) {
            let without: Vec<_> = containers
                .iter()
                .filter(|c| c.cpu.unwrap_or(0) <= 0)
                .collect();
            let set: i64 = containers
                .iter()
                .map(|c| i64::from(c.cpu.unwrap_or(0).max(0)))
                .sum();
            if c.cpu.unwrap_or(0) <= 0 && !without.is_empty() {
                let share = ((task - set) / without.len() as i64).max(1);
                requests.insert("cpu".to_string(), cpu_quantity(share));
            }
            limits.insert("cpu".to_string(), cpu_quantity(task));
        }
        if let Some(task) = task_memory(spec) {
            let reserved = |c: &ContainerDefinition| c.memory_reservation.or(c.memory);
            let without: Vec<_> = containers
                .iter()
                .filter(|c| reserved(c).is_none())
                .collect();
            let set: i64 = containers.iter().filter_map(reserved).map(i64::from).sum();
            if reserved(c).is_none() && !without.is_empty() {
                let share = ((task - set) / without.len() as i64).max(6);
                requests.insert("memory".to_string(), memory_quantity(share));
            }
            limits
                .entry("memory".to_string())
                .or_insert_with(|| memory_quantity(task));
        }
    }
    for r in &c.resource_requirements {
        match r.type_ {
            ResourceRequirementType::Gpu => {
                limits.insert(
                    "nvidia.com/gpu".to_string(),
                    Quantity(r.value.trim().to_string()),
                );
            }
            ResourceRequirementType::InferenceAccelerator => ctx.note(
                cfield(c, "resourceRequirements"),
                "Elastic Inference accelerators do not exist in Kubernetes",
            ),
        }
    }
    (!requests.is_empty() || !limits.is_empty()).then(|| ResourceRequirements {
        requests: (!requests.is_empty()).then_some(requests),
        limits: (!limits.is_empty()).then_some(limits),
        claims: None,
    })
}

fn ports(ctx: &mut Ctx, i: usize) -> Option<Vec<ContainerPort>> {
    let c = &ctx.spec.container_definitions[i];
    let mut out = Vec::new();
    let mut port_names = BTreeSet::new();
    for p in &c.port_mappings {
        if let Some(range) = &p.container_port_range {
            ctx.note(
                cfield(c, "portMappings.containerPortRange"),
                format!("port ranges ('{range}') are not declared on the pod (the container still listens on them)"),
            );
        }
        let Some(cp) = p.container_port.filter(|p| (1..=65535).contains(p)) else {
            continue;
        };
        let host_port = match ctx.mode {
            NetworkMode::Bridge => p.host_port.filter(|h| *h > 0),
            NetworkMode::Host => Some(cp),
            NetworkMode::Awsvpc | NetworkMode::None => None,
        };
        let name = match p.name.as_deref() {
            Some(n) if is_port_name(n) && port_names.insert(n.to_string()) => Some(n.to_string()),
            Some(n) => {
                ctx.note(
                    cfield(c, "portMappings.name"),
                    format!("'{n}' is not a valid Kubernetes port name (at most 15 lowercase letters, digits and '-'): the port is unnamed"),
                );
                None
            }
            None => None,
        };
        if p.app_protocol.is_some() {
            ctx.note(
                cfield(c, "portMappings.appProtocol"),
                "Service Connect is not supported (set appProtocol on the Kubernetes Service port instead)",
            );
        }
        out.push(ContainerPort {
            container_port: cp,
            host_port,
            name,
            protocol: Some(
                match p.protocol {
                    Some(TransportProtocol::Udp) => "UDP",
                    _ => "TCP",
                }
                .to_string(),
            ),
            host_ip: None,
        });
    }
    (!out.is_empty()).then_some(out)
}

/// Environment, legacy link variables and secrets.
fn env(ctx: &mut Ctx, i: usize) -> Option<Vec<EnvVar>> {
    let spec = ctx.spec;
    let c = &spec.container_definitions[i];
    let mut out: Vec<EnvVar> = c
        .environment
        .iter()
        .filter_map(|kv| {
            Some(EnvVar {
                name: kv.name.clone()?,
                value: Some(literal(kv.value.as_deref().unwrap_or_default())),
                value_from: None,
            })
        })
        .collect();
    if !c.environment_files.is_empty() {
        ctx.note(
            cfield(c, "environmentFiles"),
            "S3 environment files are not read: put the variables in 'environment' or a Secret",
        );
    }
    // Docker's legacy link variables (ALIAS_PORT_80_TCP=tcp://127.0.0.1:80...).
    if ctx.mode == NetworkMode::Bridge {
        for link in &c.links {
            let (target, alias) = match link.split_once(':') {
                Some((t, a)) => (t, a),
                None => (link.as_str(), link.as_str()),
            };
            let Some(t) = spec.container_definitions.iter().find(|c| c.name == target) else {
                continue;
            };
            let prefix: String = alias
                .chars()
                .map(|ch| {
                    if ch.is_ascii_alphanumeric() {
                        ch.to_ascii_uppercase()
                    } else {
                        '_'
                    }
                })
                .collect();
            let mut vars = vec![(format!("{prefix}_NAME"), format!("/{}/{alias}", c.name))];
            let mut first = true;
            let mut mapped: Vec<_> = t
                .port_mappings
                .iter()
                .filter_map(|p| Some((p.container_port?, p.protocol)))
                .collect();
            mapped.sort_by_key(|(p, _)| *p);
            for (port, proto) in mapped {
                let proto = if proto == Some(TransportProtocol::Udp) {
                    "udp"
                } else {
                    "tcp"
                };
                let url = format!("{proto}://{LOOPBACK}:{port}");
                let base = format!("{prefix}_PORT_{port}_{}", proto.to_uppercase());
                if first {
                    vars.push((format!("{prefix}_PORT"), url.clone()));
                    first = false;
                }
                vars.push((base.clone(), url));
                vars.push((format!("{base}_ADDR"), LOOPBACK.into()));
                vars.push((format!("{base}_PORT"), port.to_string()));
                vars.push((format!("{base}_PROTO"), proto.into()));
            }
            for (name, value) in vars {
                if !out.iter().any(|e| e.name == name) {
                    out.push(EnvVar {
                        name,
                        value: Some(value),
                        value_from: None,
                    });
                }
            }
        }
    }
    for s in &c.secrets {
        match parse_value_from(&s.value_from) {
            Ok(r) => {
                if let Some(why) = &r.unsupported {
                    ctx.note(
                        cfield(c, &format!("secrets[{}].valueFrom", s.name)),
                        why.clone(),
                    );
                }
                out.push(EnvVar {
                    name: s.name.clone(),
                    value: None,
                    value_from: Some(EnvVarSource {
                        secret_key_ref: Some(SecretKeySelector {
                            name: r.name,
                            key: r.key,
                            optional: None,
                        }),
                        ..Default::default()
                    }),
                });
            }
            Err(e) => ctx.note(cfield(c, &format!("secrets[{}]", s.name)), e),
        }
    }
    (!out.is_empty()).then_some(out)
}

/// One container, plus what it contributes to the pod.
fn container(ctx: &mut Ctx, i: usize) -> Container {
    let spec = ctx.spec;
    let c = &spec.container_definitions[i];
    let phase = ctx.plan.phase[i];
    let mut k = Container {
        name: ctx.names[i].clone(),
        image: c.image.clone(),
        command: (!c.entry_point.is_empty())
            .then(|| c.entry_point.iter().map(|s| literal(s)).collect()),
        args: (!c.command.is_empty()).then(|| c.command.iter().map(|s| literal(s)).collect()),
        working_dir: c.working_directory.clone(),
        stdin: c.interactive.filter(|b| *b),
        tty: c.pseudo_terminal.filter(|b| *b),
        ..Default::default()
    };
    k.env = env(ctx, i);
    k.ports = ports(ctx, i);
    k.resources = resources(ctx, i);
    k.security_context = security_context(ctx, i);
    probes(ctx, i, &mut k);

    // Volumes, /dev/shm and tmpfs.
    let mut mounts = mounts(ctx, i);
    if let Some(l) = &c.linux_parameters {
        if let Some(shm) = l.shared_memory_size.filter(|s| *s > 0) {
            let v = ctx.generated_volume(format!("kubecs-shm-{i}"), true, i64::from(shm));
            mounts.push(VolumeMount {
                name: v,
                mount_path: "/dev/shm".into(),
                ..Default::default()
            });
        }
        for (j, t) in l.tmpfs.iter().enumerate() {
            let v = ctx.generated_volume(format!("kubecs-tmpfs-{i}-{j}"), true, i64::from(t.size));
            if !t.mount_options.is_empty() {
                ctx.note(
                    cfield(c, "linuxParameters.tmpfs.mountOptions"),
                    "tmpfs mount options are not supported: a memory-backed emptyDir is mounted",
                );
            }
            mounts.push(VolumeMount {
                name: v,
                mount_path: t.container_path.clone(),
                ..Default::default()
            });
        }
        if l.init_process_enabled == Some(true) {
            ctx.share_process_namespace = true;
        }
        if !l.devices.is_empty() {
            ctx.note(
                cfield(c, "linuxParameters.devices"),
                "host devices cannot be passed to a container (use a device plugin)",
            );
        }
        if l.max_swap.is_some() || l.swappiness.is_some() {
            ctx.note(
                cfield(c, "linuxParameters.maxSwap"),
                "swap is configured per node (NodeSwap), not per container",
            );
        }
    }
    let mut paths = BTreeSet::new();
    mounts.retain(|m| {
        let fresh = paths.insert(m.mount_path.clone());
        if !fresh {
            ctx.notes.push(Unsupported {
                field: cfield(c, "mountPoints"),
                reason: format!(
                    "'{}' is mounted twice: only the first mount is kept",
                    m.mount_path
                ),
            });
        }
        fresh
    });
    k.volume_mounts = (!mounts.is_empty()).then_some(mounts);

    // Restart policies.
    if phase == Phase::Sidecar {
        k.restart_policy = Some("Always".into());
    }
    if let Some(rp) = c.restart_policy.as_ref().filter(|r| r.enabled) {
        if ctx.opts.container_restart_rules && phase == Phase::Main {
            if rp.ignored_exit_codes.is_empty() {
                k.restart_policy = Some("Always".into());
            } else {
                k.restart_policy = Some("Never".into());
                k.restart_policy_rules = Some(vec![ContainerRestartRule {
                    action: "Restart".into(),
                    exit_codes: Some(ContainerRestartRuleOnExitCodes {
                        operator: "NotIn".into(),
                        values: Some(rp.ignored_exit_codes.clone()),
                    }),
                }]);
            }
            if rp.restart_attempt_period.is_some() {
                ctx.note(
                    cfield(c, "restartPolicy.restartAttemptPeriod"),
                    "the kubelet restarts with its own back-off",
                );
            }
        } else {
            ctx.note(
                cfield(c, "restartPolicy"),
                "containers are not restarted in place (needs the ContainerRestartRules feature, or the container runs in the init phase): the task stops as if the policy were off",
            );
        }
    }

    // Pod-wide settings from the container.
    if let Some(rc) = &c.repository_credentials {
        let s = pull_secret_name(&rc.credentials_parameter);
        if !ctx.pull_secrets.contains(&s) {
            ctx.pull_secrets.push(s);
        }
    }
    for h in &c.extra_hosts {
        let host = h.hostname.to_ascii_lowercase();
        if is_dns_subdomain(&host) {
            ctx.host_aliases
                .entry(h.ip_address.clone())
                .or_default()
                .insert(host);
        } else {
            ctx.note(
                cfield(c, "extraHosts"),
                format!(
                    "'{}' is not a valid host name for Kubernetes host aliases",
                    h.hostname
                ),
            );
        }
    }
    if ctx.mode == NetworkMode::Bridge {
        for link in &c.links {
            let (target, alias) = link.split_once(':').unwrap_or((link, link));
            for host in [alias, target] {
                let host = host.to_ascii_lowercase();
                if is_dns_subdomain(&host) {
                    ctx.host_aliases
                        .entry(LOOPBACK.to_string())
                        .or_default()
                        .insert(host);
                } else {
                    ctx.note(
                        cfield(c, "links"),
                        format!("'{host}' is not a valid host name: the link has no host alias"),
                    );
                }
            }
        }
    }
    for s in &c.system_controls {
        let (Some(name), Some(value)) = (&s.namespace, &s.value) else {
            continue;
        };
        match ctx.sysctls.iter().find(|x| &x.name == name) {
            Some(x) if &x.value != value => {
                let kept = x.value.clone();
                ctx.note(
                    cfield(c, "systemControls"),
                    format!("sysctls are set for the whole pod: '{name}' keeps '{kept}'"),
                );
            }
            Some(_) => {}
            None => ctx.sysctls.push(Sysctl {
                name: name.clone(),
                value: value.clone(),
            }),
        }
    }
    for (key, value) in &c.docker_labels {
        if is_qualified_name(key) && !key.starts_with("ecs.kubecs.io/") {
            match ctx.pod_annotations.get(key) {
                Some(v) if v != value => ctx.note(
                    cfield(c, "dockerLabels"),
                    format!("Docker labels become pod annotations: '{key}' keeps the value of an earlier container"),
                ),
                Some(_) => {}
                None => {
                    ctx.pod_annotations.insert(key.clone(), value.clone());
                }
            }
        } else {
            ctx.odd_docker_labels
                .entry(key.clone())
                .or_insert_with(|| value.clone());
        }
    }
    if let Some(log) = &c.log_configuration {
        ctx.note(
            cfield(c, "logConfiguration"),
            format!("the '{}' log driver is not run: logs go to the node (kubectl logs), the configuration is kept in the {} annotation", log.log_driver, annotations::LOG_CONFIGURATION),
        );
    }
    if let Some(f) = &c.firelens_configuration {
        ctx.note(
            cfield(c, "firelensConfiguration"),
            format!(
                "the {} log router runs as a sidecar, but no log driver sends it the other containers' output",
                match f.type_ {
                    FirelensType::Fluentbit => "Fluent Bit",
                    FirelensType::Fluentd => "Fluentd",
                }
            ),
        );
    }
    if !c.ulimits.is_empty() {
        ctx.note(
            cfield(c, "ulimits"),
            "ulimits are set by the container runtime of the node, not per container",
        );
    }
    if c.disable_networking == Some(true) {
        ctx.note(
            cfield(c, "disableNetworking"),
            "a container cannot leave the pod's network namespace",
        );
    }
    if !c.credential_specs.is_empty() {
        ctx.note(
            cfield(c, "credentialSpecs"),
            "Active Directory credential specs (gMSA) are not supported",
        );
    }
    for d in &c.depends_on {
        if d.condition == ContainerCondition::Complete {
            ctx.note(
                cfield(c, &format!("dependsOn[{}]", d.container_name)),
                format!("COMPLETE runs '{}' as an init container first: a non-zero exit fails the task, where ECS would go on", d.container_name),
            );
        }
    }
    k
}

fn pod_spec(ctx: &mut Ctx, init: Vec<Container>, main: Vec<Container>) -> PodSpec {
    let spec = ctx.spec;
    let mut pod = PodSpec {
        containers: main,
        init_containers: (!init.is_empty()).then_some(init),
        restart_policy: Some("Never".into()),
        enable_service_links: Some(false),
        ..Default::default()
    };
    if !ctx.pod_volumes.is_empty() {
        pod.volumes = Some(std::mem::take(&mut ctx.pod_volumes));
    }

    // Network mode.
    match ctx.mode {
        NetworkMode::Host => {
            pod.host_network = Some(true);
            pod.dns_policy = Some("ClusterFirstWithHostNet".into());
        }
        NetworkMode::None => ctx.note(
            "networkMode",
            "'none': Kubernetes gives every pod a network interface, the containers are not isolated from the network",
        ),
        NetworkMode::Bridge | NetworkMode::Awsvpc => {}
    }

    // Process and IPC namespaces.
    match spec.pid_mode {
        Some(PidMode::Host) => pod.host_pid = Some(true),
        Some(PidMode::Task) => ctx.share_process_namespace = true,
        None => {}
    }
    match spec.ipc_mode {
        Some(IpcMode::Host) => pod.host_ipc = Some(true),
        Some(IpcMode::None) => ctx.note(
            "ipcMode",
            "'none': the containers of a pod always share an IPC namespace",
        ),
        Some(IpcMode::Task) | None => {}
    }
    if ctx.share_process_namespace {
        if pod.host_pid == Some(true) {
            ctx.note(
                "containerDefinitions.linuxParameters.initProcessEnabled",
                "with pidMode 'host' the pod cannot also share a process namespace with an init process",
            );
        } else {
            pod.share_process_namespace = Some(true);
        }
    }

    // Host names, DNS, host aliases.
    let mut hostnames = spec
        .container_definitions
        .iter()
        .filter_map(|c| c.hostname.as_deref().map(|h| (c, h)));
    if let Some((c, h)) = hostnames.next() {
        let first = h.split('.').next().unwrap_or(h);
        pod.hostname = Some(dns_label(first));
        if first != h || dns_label(first) != first {
            ctx.note(
                cfield(c, "hostname"),
                format!(
                    "the pod's host name is '{}' (a single DNS label)",
                    dns_label(first)
                ),
            );
        }
        for (c, other) in hostnames {
            if other != h {
                ctx.note(
                    cfield(c, "hostname"),
                    format!(
                        "containers of a pod share one host name: '{}'",
                        dns_label(first)
                    ),
                );
            }
        }
    }
    let mut servers: Vec<String> = Vec::new();
    let mut searches: Vec<String> = Vec::new();
    for c in &spec.container_definitions {
        for s in &c.dns_servers {
            if !servers.contains(s) {
                servers.push(s.clone());
            }
        }
        for s in &c.dns_search_domains {
            if !searches.contains(s) {
                searches.push(s.clone());
            }
        }
    }
    if !servers.is_empty() || !searches.is_empty() {
        let uneven = spec.container_definitions.iter().any(|c| {
            c.dns_servers.len() != servers.len() || c.dns_search_domains.len() != searches.len()
        });
        if uneven && spec.container_definitions.len() > 1 {
            ctx.note(
                "containerDefinitions.dnsServers",
                "DNS servers and search domains apply to every container of the pod",
            );
        }
        if servers.len() > MAX_NAMESERVERS {
            ctx.note(
                "containerDefinitions.dnsServers",
                format!(
                    "Kubernetes allows at most {MAX_NAMESERVERS} nameservers: the rest are dropped"
                ),
            );
            servers.truncate(MAX_NAMESERVERS);
        }
        if !servers.is_empty() {
            pod.dns_policy = Some("None".into());
        }
        pod.dns_config = Some(PodDNSConfig {
            nameservers: (!servers.is_empty()).then_some(servers),
            searches: (!searches.is_empty()).then_some(searches),
            options: None,
        });
    }
    if !ctx.host_aliases.is_empty() {
        pod.host_aliases = Some(
            std::mem::take(&mut ctx.host_aliases)
                .into_iter()
                .map(|(ip, names)| HostAlias {
                    ip,
                    hostnames: Some(names.into_iter().collect()),
                })
                .collect(),
        );
    }

    // Sysctls: net.* are not allowed with the host network, IPC ones not with host IPC.
    let mut sysctls = std::mem::take(&mut ctx.sysctls);
    sysctls.retain(|s| {
        let net = s.name.starts_with("net.");
        let ipc = s.name.starts_with("kernel.shm")
            || s.name.starts_with("kernel.msg")
            || s.name == "kernel.sem"
            || s.name.starts_with("fs.mqueue.");
        let refused =
            (net && pod.host_network == Some(true)) || (ipc && pod.host_ipc == Some(true));
        if refused {
            ctx.notes.push(Unsupported {
                field: "containerDefinitions.systemControls".into(),
                reason: format!(
                    "'{}' cannot be set on a pod that uses the host's namespace",
                    s.name
                ),
            });
        }
        !refused
    });
    if !sysctls.is_empty() {
        pod.security_context = Some(PodSecurityContext {
            sysctls: Some(sysctls),
            ..Default::default()
        });
    }

    // Identity and credentials.
    if let Some(role) = &spec.task_role_arn {
        pod.service_account_name = Some(service_account_name(role));
    }
    if let Some(s) = &ctx.opts.registry_pull_secret
        && !ctx.pull_secrets.contains(s)
    {
        ctx.pull_secrets.push(s.clone());
    }
    if !ctx.pull_secrets.is_empty() {
        pod.image_pull_secrets = Some(
            ctx.pull_secrets
                .iter()
                .map(|name| LocalObjectReference { name: name.clone() })
                .collect(),
        );
    }

    // Task size.
    if ctx.opts.pod_level_resources {
        let mut r = BTreeMap::new();
        if let Some(cpu) = task_cpu(spec) {
            r.insert("cpu".to_string(), cpu_quantity(cpu));
        }
        if let Some(mem) = task_memory(spec) {
            r.insert("memory".to_string(), memory_quantity(mem));
        }
        if !r.is_empty() {
            pod.resources = Some(ResourceRequirements {
                requests: Some(r.clone()),
                limits: Some(r),
                claims: None,
            });
        }
    }
    if let Some(storage) = &spec.ephemeral_storage {
        ctx.note(
            "ephemeralStorage",
            format!("{} GiB: ephemeral storage is the node's (set ephemeral-storage requests on the containers if it matters)", storage.size_in_gi_b),
        );
    }

    // Stop timeout: the longest one bounds the pod's grace period.
    if let Some(t) = spec
        .container_definitions
        .iter()
        .filter_map(|c| c.stop_timeout)
        .max()
    {
        pod.termination_grace_period_seconds = Some(i64::from(t));
    }

    // Platform.
    if let Some(p) = &spec.runtime_platform {
        let mut sel = BTreeMap::new();
        if let Some(os) = &p.operating_system_family {
            let os = if os.starts_with("WINDOWS") {
                "windows"
            } else {
                "linux"
            };
            sel.insert("kubernetes.io/os".to_string(), os.to_string());
        }
        if let Some(arch) = p.cpu_architecture {
            let arch = match arch {
                CpuArchitecture::X8664 => "amd64",
                CpuArchitecture::Arm64 => "arm64",
            };
            sel.insert("kubernetes.io/arch".to_string(), arch.to_string());
        }
        if !sel.is_empty() {
            pod.node_selector = Some(sel);
        }
    }

    // Task-level fields with no pod equivalent.
    if let Some(proxy) = &spec.proxy_configuration {
        ctx.note(
            "proxyConfiguration",
            format!("App Mesh traffic redirection to '{}' is not programmed: the proxy runs, but traffic is not routed through it", proxy.container_name),
        );
    }
    if !spec.inference_accelerators.is_empty() {
        ctx.note(
            "inferenceAccelerators",
            "Elastic Inference accelerators do not exist in Kubernetes",
        );
    }
    if spec.enable_fault_injection == Some(true) {
        ctx.note(
            "enableFaultInjection",
            "fault injection endpoints are not provided",
        );
    }
    pod
}

fn metadata(ctx: &mut Ctx, identity: &PodIdentity) -> ObjectMeta {
    let spec = ctx.spec;
    let family = identity.family.clone().or_else(|| spec.family.clone());
    let mut labels =
        BTreeMap::from([(labels::MANAGED_BY.to_string(), labels::MANAGER.to_string())]);
    if let Some(cluster) = &identity.cluster {
        labels.insert(labels::CLUSTER.into(), label_value(cluster));
    }
    if let Some(f) = &family {
        labels.insert(labels::FAMILY.into(), label_value(f));
    }
    if let Some(r) = identity.revision {
        labels.insert(labels::REVISION.into(), r.to_string());
    }
    labels.extend(identity.labels.clone());

    let mut ann = std::mem::take(&mut ctx.pod_annotations);
    if let (Some(f), Some(r)) = (&family, identity.revision) {
        ann.insert(annotations::TASK_DEFINITION.into(), format!("{f}:{r}"));
    }
    let containers = &spec.container_definitions;
    let essential: Vec<&str> = containers
        .iter()
        .enumerate()
        .filter(|(_, c)| is_essential(c))
        .map(|(i, _)| ctx.names[i].as_str())
        .collect();
    ann.insert(
        annotations::ESSENTIAL_CONTAINERS.into(),
        essential.join(","),
    );
    let metas: Vec<ContainerMeta> = containers
        .iter()
        .enumerate()
        .map(|(i, c)| ContainerMeta {
            name: ctx.names[i].clone(),
            ecs_name: c.name.clone(),
            essential: is_essential(c),
            phase: ctx.plan.phase[i],
            depends_on: ctx.plan.deps[i]
                .iter()
                .map(|(t, cond)| DependencyMeta {
                    container_name: ctx.names[*t].clone(),
                    condition: *cond,
                })
                .collect(),
            start_timeout: c.start_timeout,
            restart_in_place: ctx.opts.container_restart_rules
                && ctx.plan.phase[i] == Phase::Main
                && c.restart_policy.as_ref().is_some_and(|r| r.enabled),
        })
        .collect();
    ann.insert(
        annotations::CONTAINERS.into(),
        serde_json::to_string(&metas).expect("container metadata serializes"),
    );
    let logs: BTreeMap<&str, _> = containers
        .iter()
        .enumerate()
        .filter_map(|(i, c)| Some((ctx.names[i].as_str(), c.log_configuration.as_ref()?)))
        .collect();
    if !logs.is_empty() {
        ann.insert(
            annotations::LOG_CONFIGURATION.into(),
            serde_json::to_string(&logs).expect("log configuration serializes"),
        );
    }
    let firelens: BTreeMap<&str, _> = containers
        .iter()
        .enumerate()
        .filter_map(|(i, c)| Some((ctx.names[i].as_str(), c.firelens_configuration.as_ref()?)))
        .collect();
    if !firelens.is_empty() {
        ann.insert(
            annotations::FIRELENS_CONFIGURATION.into(),
            serde_json::to_string(&firelens).expect("firelens configuration serializes"),
        );
    }
    if !ctx.odd_docker_labels.is_empty() {
        ann.insert(
            annotations::DOCKER_LABELS.into(),
            serde_json::to_string(&ctx.odd_docker_labels).expect("labels serialize"),
        );
    }
    if let Some(role) = &spec.execution_role_arn {
        ann.insert(annotations::EXECUTION_ROLE.into(), role.clone());
    }
    if let Some(proxy) = &spec.proxy_configuration {
        ann.insert(
            annotations::PROXY_CONFIGURATION.into(),
            serde_json::to_string(proxy).expect("proxy configuration serializes"),
        );
    }
    if !ctx.notes.is_empty() {
        let mut notes = ctx.notes.clone();
        notes.sort();
        ann.insert(
            annotations::UNSUPPORTED_FIELDS.into(),
            notes
                .iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>()
                .join("; "),
        );
    }
    ann.extend(identity.annotations.clone());

    let (name, generate_name) = match &identity.name {
        Some(n) => (Some(n.clone()), None),
        None => (
            None,
            Some(format!(
                "{}-",
                dns_label(family.as_deref().unwrap_or("task"))
            )),
        ),
    };
    ObjectMeta {
        name,
        generate_name,
        namespace: identity.namespace.clone(),
        labels: Some(labels),
        annotations: Some(ann),
        ..Default::default()
    }
}

#[cfg(test)]
#[path = "pod_tests.rs"]
mod tests;
