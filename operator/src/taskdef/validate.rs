//! ECS's rules for a task definition, in ECS's words where ECS's message is known (quoted from
//! ClientException responses), otherwise in the same style. Every violation is returned, not
//! just the first, so a user fixes them in one pass.

use std::collections::{BTreeMap, BTreeSet};

use crate::api::taskdef::{
    Compatibility, ContainerCondition, ContainerDefinition, NetworkMode, ResourceRequirementType,
    TaskDefinitionSpec,
};

use super::units::{EC2_TASK_CPU_RANGE, fargate_memory_options, parse_task_cpu, parse_task_memory};
use super::{is_essential, mode_name, network_mode, secrets};

/// At most this many containers per task definition.
pub const MAX_CONTAINERS: usize = 10;
/// At most this many bytes per task definition.
pub const MAX_TASK_DEFINITION_BYTES: usize = 65_536;
/// Container and family names: letters, digits, hyphens, underscores.
pub const MAX_NAME_LEN: usize = 255;

/// Every rule a task definition breaks, each in ECS's words.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ValidationErrors(pub Vec<String>);

impl std::fmt::Display for ValidationErrors {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0.join("\n"))
    }
}

impl std::error::Error for ValidationErrors {}

impl ValidationErrors {
    /// The messages joined by a space, for a condition message or an event.
    pub fn message(&self) -> String {
        self.0.join(" ")
    }
}

fn valid_name(s: &str) -> bool {
    s.bytes()
        .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

/// The task-level cpu in CPU units, if set and valid.
pub fn task_cpu(spec: &TaskDefinitionSpec) -> Option<i64> {
    spec.cpu.as_ref().and_then(parse_task_cpu)
}

/// The task-level memory in MiB, if set and valid.
pub fn task_memory(spec: &TaskDefinitionSpec) -> Option<i64> {
    spec.memory.as_ref().and_then(parse_task_memory)
}

/// Checks `spec` with ECS's rules; `Err` holds every violation.
pub fn validate(spec: &TaskDefinitionSpec) -> Result<(), ValidationErrors> {
    let mut errs = Vec::new();
    let containers = &spec.container_definitions;
    let mode = network_mode(spec);
    let fargate = spec
        .requires_compatibilities
        .contains(&Compatibility::Fargate);

    // Size and counts.
    if containers.is_empty() {
        errs.push("Container list cannot be empty.".to_string());
    }
    if containers.len() > MAX_CONTAINERS {
        errs.push("Too many containers.".to_string());
    }
    let len = serde_json::to_vec(spec).map(|v| v.len()).unwrap_or(0);
    if len > MAX_TASK_DEFINITION_BYTES {
        errs.push(format!(
            "Actual length: '{len}'. Max allowed length is '{MAX_TASK_DEFINITION_BYTES}' bytes."
        ));
    }

    // Family.
    if let Some(family) = &spec.family {
        if family.is_empty() {
            errs.push("Family should not be null or empty.".into());
        } else if !valid_name(family) {
            errs.push("Family contains invalid characters.".into());
        } else if family.len() > MAX_NAME_LEN {
            errs.push(format!(
                "Family name is too long: at most {MAX_NAME_LEN} characters are allowed."
            ));
        }
    }

    // Task size.
    let cpu = match &spec.cpu {
        Some(v) => match parse_task_cpu(v) {
            Some(units) => Some(units),
            None => {
                errs.push("Invalid 'cpu' setting for task.".into());
                None
            }
        },
        None => None,
    };
    let memory = match &spec.memory {
        Some(v) => match parse_task_memory(v) {
            Some(mib) => Some(mib),
            None => {
                errs.push("Invalid 'memory' setting for task.".into());
                None
            }
        },
        None => None,
    };
    if fargate {
        if spec.cpu.is_none() {
            errs.push("Fargate requires that 'cpu' be defined at the task level.".into());
        }
        if spec.memory.is_none() {
            errs.push("Fargate requires that 'memory' be defined at the task level.".into());
        }
        if mode != NetworkMode::Awsvpc || spec.network_mode.is_none() {
            errs.push("Fargate only supports network mode \u{2018}awsvpc\u{2019}.".into());
        }
        if let Some(cpu) = cpu {
            match fargate_memory_options(cpu) {
                None => errs.push("Invalid 'cpu' setting for task.".into()),
                Some(options) => {
                    if memory.is_some_and(|m| !options.contains(&m)) {
                        errs.push("No Fargate configuration exists for given values.".into());
                    }
                }
            }
        }
        errs.extend(fargate_problems(spec));
    } else if let Some(cpu) = cpu
        && !(EC2_TASK_CPU_RANGE.0..=EC2_TASK_CPU_RANGE.1).contains(&cpu)
    {
        errs.push("Invalid 'cpu' setting for task.".into());
    }

    // Names.
    let mut seen = BTreeSet::new();
    let mut duplicate = false;
    for c in containers {
        if !seen.insert(c.name.as_str()) {
            duplicate = true;
        }
    }
    if duplicate {
        errs.push("Container names must be unique within a Task Definition.".into());
    }
    let by_name: BTreeMap<&str, &ContainerDefinition> =
        containers.iter().map(|c| (c.name.as_str(), c)).collect();

    // Volumes.
    let mut volume_names = BTreeSet::new();
    for v in &spec.volumes {
        match v.name.as_deref() {
            None | Some("") => errs.push("Volume.name should not be null or empty.".into()),
            Some(n) => {
                if !valid_name(n) || n.len() > MAX_NAME_LEN {
                    errs.push(format!("Invalid volume name '{n}': up to 255 letters (uppercase and lowercase), numbers, underscores, and hyphens are allowed."));
                }
                if !volume_names.insert(n) {
                    errs.push(format!(
                        "Volume names must be unique within a Task Definition: '{n}'."
                    ));
                }
            }
        }
        let kinds = [
            v.host.is_some(),
            v.docker_volume_configuration.is_some(),
            v.efs_volume_configuration.is_some(),
            v.fsx_windows_file_server_volume_configuration.is_some(),
        ]
        .iter()
        .filter(|k| **k)
        .count();
        if kinds > 1 {
            errs.push(format!(
                "Invalid setting for volume '{}'. Only one of 'host', 'dockerVolumeConfiguration', 'efsVolumeConfiguration' or 'fsxWindowsFileServerVolumeConfiguration' may be specified.",
                v.name.as_deref().unwrap_or_default()
            ));
        }
    }

    // Containers.
    if !containers.is_empty() && !containers.iter().any(is_essential) {
        errs.push("Task definition doesn't have any essential container.".into());
    }
    let mut total_cpu: i64 = 0;
    let mut total_reserved: i64 = 0;
    for c in containers {
        let name = c.name.as_str();
        if name.is_empty() {
            errs.push("Container.name should not be null or empty.".into());
        } else if !valid_name(name) {
            errs.push("Container.name contains invalid characters.".into());
        } else if name.len() > MAX_NAME_LEN {
            errs.push(format!(
                "Container.name is too long: at most {MAX_NAME_LEN} characters are allowed."
            ));
        }
        if c.image.as_deref().is_none_or(|i| i.trim().is_empty()) {
            errs.push("Container.image should not be null or empty.".into());
        }

        // Memory and cpu.
        if spec.memory.is_none() && c.memory.is_none() && c.memory_reservation.is_none() {
            errs.push(format!("Invalid setting for container '{name}'. At least one of 'memory' or 'memoryReservation' must be specified."));
        }
        if c.memory.is_some_and(|m| m < 6) {
            errs.push(format!(
                "Invalid setting for container '{name}'. The memory limit must be at least 6 MiB."
            ));
        }
        if c.memory_reservation.is_some_and(|m| m < 6) {
            errs.push(format!("Invalid setting for container '{name}'. The memory reservation must be at least 6 MiB."));
        }
        if let (Some(m), Some(r)) = (c.memory, c.memory_reservation)
            && r > m
        {
            errs.push(format!("Invalid setting for container '{name}'. The memory reservation must be less than or equal to the memory limit."));
        }
        if let (Some(task_mem), Some(m)) = (memory, c.memory)
            && i64::from(m) > task_mem
        {
            errs.push(format!("Invalid setting for container '{name}'. The memory limit ({m} MiB) must be less than or equal to the task memory ({task_mem} MiB)."));
        }
        if c.cpu.is_some_and(|c| c < 0) {
            errs.push(format!("Invalid 'cpu' setting for container '{name}'."));
        }
        total_cpu += i64::from(c.cpu.unwrap_or(0).max(0));
        total_reserved += i64::from(c.memory_reservation.or(c.memory).unwrap_or(0).max(0));

        // Ports.
        for p in &c.port_mappings {
            let cp = p.container_port;
            if cp.is_none() && p.container_port_range.is_none() {
                errs.push(format!(
                    "Invalid 'containerPort' setting for container '{name}'."
                ));
                continue;
            }
            if cp.is_some_and(|cp| !(1..=65535).contains(&cp)) {
                errs.push(format!(
                    "Invalid 'containerPort' setting for container '{name}'."
                ));
            }
            if p.host_port.is_some_and(|hp| !(0..=65535).contains(&hp)) {
                errs.push(format!(
                    "Invalid 'hostPort' setting for container '{name}'."
                ));
            }
            match mode {
                NetworkMode::Awsvpc | NetworkMode::Host => {
                    if let (Some(hp), Some(cp)) = (p.host_port, cp)
                        && hp != 0
                        && hp != cp
                    {
                        errs.push(format!("When networkMode={}, the host ports and container ports in port mappings must match.", mode_name(mode)));
                    }
                }
                NetworkMode::None => errs.push(format!(
                    "Invalid setting for container '{name}'. Port mappings are not supported when networkMode=none."
                )),
                NetworkMode::Bridge => {}
            }
        }

        // Links.
        if !c.links.is_empty() {
            if mode != NetworkMode::Bridge {
                errs.push(format!(
                    "Links are not supported when networkMode={}.",
                    mode_name(mode)
                ));
            }
            for l in &c.links {
                let target = l.split(':').next().unwrap_or_default();
                if !by_name.contains_key(target) {
                    errs.push(format!("Invalid 'links' setting for container '{name}'. Container '{target}' does not exist."));
                }
            }
        }
        if c.hostname.is_some() && mode == NetworkMode::Awsvpc {
            errs.push("hostname is not supported on container when networkMode=awsvpc.".into());
        }

        // Dependencies.
        for d in &c.depends_on {
            let Some(target) = by_name.get(d.container_name.as_str()) else {
                // ECS's message, stray `+` included.
                errs.push(format!(
                    "Cannot depend on container + '{}' because it does not exist",
                    d.container_name
                ));
                continue;
            };
            match d.condition {
                ContainerCondition::Complete | ContainerCondition::Success
                    if is_essential(target) =>
                {
                    errs.push("A dependency container with SUCCESS or COMPLETE condition cannot be an essential container".into());
                }
                ContainerCondition::Healthy
                    if target
                        .health_check
                        .as_ref()
                        .is_none_or(|h| h.command.first().map(String::as_str) == Some("NONE")) =>
                {
                    errs.push(format!("Invalid 'dependsOn' setting for container '{name}'. Container '{}' has no healthCheck, so it can never be HEALTHY.", d.container_name));
                }
                _ => {}
            }
        }

        // Health check.
        if let Some(h) = &c.health_check {
            let kind = h.command.first().map(String::as_str);
            match kind {
                Some("CMD") | Some("CMD-SHELL") if h.command.len() >= 2 => {}
                Some("NONE") => {}
                _ => errs.push(format!("Invalid 'healthCheck' setting for container '{name}'. The command must be [\"CMD\", \"executable\", \"arg\"...] or [\"CMD-SHELL\", \"command\"].")),
            }
            let ranges = [
                ("interval", h.interval, 5, 300),
                ("timeout", h.timeout, 2, 60),
                ("retries", h.retries, 1, 10),
                ("startPeriod", h.start_period, 0, 300),
            ];
            for (field, value, min, max) in ranges {
                if let Some(v) = value
                    && !(min..=max).contains(&v)
                {
                    let unit = if field == "retries" { "" } else { " seconds" };
                    errs.push(format!("Invalid 'healthCheck' setting for container '{name}'. '{field}' must be between {min} and {max}{unit}."));
                }
            }
        }

        // Volumes.
        for m in &c.mount_points {
            match m.source_volume.as_deref() {
                Some(v) if volume_names.contains(v) => {}
                Some(v) => errs.push(format!("Invalid 'mountPoints' setting for container '{name}'. Unknown volume '{v}'.")),
                None => errs.push(format!("Invalid 'mountPoints' setting for container '{name}'. 'sourceVolume' should not be null or empty.")),
            }
            if m.container_path
                .as_deref()
                .is_none_or(|p| !p.starts_with('/'))
            {
                errs.push(format!("Invalid 'mountPoints' setting for container '{name}'. 'containerPath' must be an absolute path."));
            }
        }
        for v in &c.volumes_from {
            match v.source_container.as_deref() {
                Some(s) if s != name && by_name.contains_key(s) => {}
                Some(s) => errs.push(format!("Invalid 'volumesFrom' setting for container '{name}'. Container '{s}' does not exist.")),
                None => errs.push(format!("Invalid 'volumesFrom' setting for container '{name}'. 'sourceContainer' should not be null or empty.")),
            }
        }

        // Secrets.
        for s in &c.secrets {
            if let Err(e) = secrets::parse_value_from(&s.value_from) {
                errs.push(format!(
                    "Invalid 'secrets' setting for container '{name}'. {e}"
                ));
            }
        }

        // GPUs.
        for r in &c.resource_requirements {
            if r.type_ == ResourceRequirementType::Gpu
                && r.value.parse::<u32>().map_or(true, |n| n == 0)
            {
                errs.push(format!("Invalid 'resourceRequirements' setting for container '{name}'. The GPU value must be a positive whole number."));
            }
        }
    }

    // Dependency cycles.
    if let Some(cycle) = super::deps::find_cycle(spec) {
        errs.push(format!(
            "Invalid 'dependsOn' setting: the containers {} depend on each other.",
            cycle
                .iter()
                .map(|c| format!("'{c}'"))
                .collect::<Vec<_>>()
                .join(", ")
        ));
    }

    // Totals against the task size.
    if let Some(cpu) = cpu
        && total_cpu > cpu
    {
        errs.push(format!("Invalid 'cpu' setting for task. The containers reserve {total_cpu} CPU units in all, more than the task's {cpu}."));
    }
    if let Some(mem) = memory
        && total_reserved > mem
    {
        errs.push(format!("Invalid 'memory' setting for task. The containers reserve {total_reserved} MiB in all, more than the task's {mem} MiB."));
    }

    if errs.is_empty() {
        Ok(())
    } else {
        Err(ValidationErrors(errs))
    }
}

/// What keeps a task definition off Fargate (besides network mode and size), in ECS's words.
pub(crate) fn fargate_problems(spec: &TaskDefinitionSpec) -> Vec<String> {
    let mut out = Vec::new();
    let not = |what: &str| format!("Tasks using the Fargate launch type do not support {what}.");
    if spec.ipc_mode.is_some() {
        out.push(not("ipcMode"));
    }
    if spec.pid_mode == Some(crate::api::taskdef::PidMode::Host) {
        out.push(not("pidMode 'host'"));
    }
    if spec
        .volumes
        .iter()
        .any(|v| v.host.as_ref().is_some_and(|h| h.source_path.is_some()))
    {
        out.push(not("host volumes with a sourcePath"));
    }
    if spec
        .volumes
        .iter()
        .any(|v| v.docker_volume_configuration.is_some())
    {
        out.push(not("Docker volumes"));
    }
    let any = |f: &dyn Fn(&ContainerDefinition) -> bool| spec.container_definitions.iter().any(f);
    if any(&|c| c.privileged == Some(true)) {
        out.push(not("privileged containers"));
    }
    if any(&|c| {
        c.resource_requirements
            .iter()
            .any(|r| r.type_ == ResourceRequirementType::Gpu)
    }) {
        out.push(not("GPUs"));
    }
    if any(&|c| {
        c.linux_parameters
            .as_ref()
            .is_some_and(|l| !l.devices.is_empty())
    }) {
        out.push(not("devices"));
    }
    if any(&|c| {
        c.linux_parameters
            .as_ref()
            .is_some_and(|l| l.shared_memory_size.is_some())
    }) {
        out.push(not("sharedMemorySize"));
    }
    if any(&|c| {
        c.linux_parameters
            .as_ref()
            .is_some_and(|l| !l.tmpfs.is_empty())
    }) {
        out.push(not("tmpfs"));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn spec(v: serde_json::Value) -> TaskDefinitionSpec {
        serde_json::from_value(v).expect("a task definition")
    }

    fn errors(v: serde_json::Value) -> Vec<String> {
        validate(&spec(v)).err().map(|e| e.0).unwrap_or_default()
    }

    fn container(name: &str) -> serde_json::Value {
        json!({"name": name, "image": "nginx", "memory": 128})
    }

    #[test]
    fn a_plain_task_definition_is_valid() {
        assert_eq!(
            errors(json!({"family": "web", "containerDefinitions": [container("web")]})),
            Vec::<String>::new()
        );
    }

    #[test]
    fn too_many_containers() {
        let cs: Vec<_> = (0..11).map(|i| container(&format!("c{i}"))).collect();
        let errs = errors(json!({"containerDefinitions": cs}));
        assert_eq!(errs, ["Too many containers."]);
        let cs: Vec<_> = (0..10).map(|i| container(&format!("c{i}"))).collect();
        assert!(errors(json!({"containerDefinitions": cs})).is_empty());
    }

    #[test]
    fn empty_container_list() {
        assert_eq!(
            errors(json!({"containerDefinitions": []})),
            ["Container list cannot be empty."]
        );
    }

    #[test]
    fn sixty_four_kib_limit() {
        let mut c = container("web");
        c["environment"] = json!([{"name": "BIG", "value": "x".repeat(70_000)}]);
        let s = spec(json!({"containerDefinitions": [c]}));
        let len = serde_json::to_vec(&s).unwrap().len();
        assert_eq!(
            validate(&s).unwrap_err().0,
            [format!(
                "Actual length: '{len}'. Max allowed length is '65536' bytes."
            )]
        );
    }

    #[test]
    fn memory_or_reservation_without_task_memory() {
        let errs = errors(json!({"containerDefinitions": [{"name": "web", "image": "nginx"}]}));
        assert_eq!(
            errs,
            [
                "Invalid setting for container 'web'. At least one of 'memory' or 'memoryReservation' must be specified."
            ]
        );
        // With task-level memory the container may omit both.
        assert!(
            errors(json!({"memory": "512", "containerDefinitions": [{"name": "web", "image": "nginx"}]}))
                .is_empty()
        );
        assert!(errors(json!({"containerDefinitions": [{"name": "web", "image": "nginx", "memoryReservation": 64}]})).is_empty());
    }

    #[test]
    fn reservation_above_limit() {
        let errs = errors(
            json!({"containerDefinitions": [{"name": "web", "image": "nginx", "memory": 128, "memoryReservation": 256}]}),
        );
        assert_eq!(
            errs,
            [
                "Invalid setting for container 'web'. The memory reservation must be less than or equal to the memory limit."
            ]
        );
    }

    #[test]
    fn empty_image() {
        let errs =
            errors(json!({"containerDefinitions": [{"name": "web", "image": "", "memory": 128}]}));
        assert_eq!(errs, ["Container.image should not be null or empty."]);
        let errs = errors(json!({"containerDefinitions": [{"name": "web", "memory": 128}]}));
        assert_eq!(errs, ["Container.image should not be null or empty."]);
    }

    #[test]
    fn container_names() {
        let errs = errors(json!({"containerDefinitions": [container("web"), container("web")]}));
        assert_eq!(
            errs,
            ["Container names must be unique within a Task Definition."]
        );
        let errs = errors(json!({"containerDefinitions": [container("my web")]}));
        assert_eq!(errs, ["Container.name contains invalid characters."]);
        let errs = errors(json!({"containerDefinitions": [container("")]}));
        assert_eq!(errs, ["Container.name should not be null or empty."]);
        let errs = errors(json!({"family": "a b", "containerDefinitions": [container("web")]}));
        assert_eq!(errs, ["Family contains invalid characters."]);
    }

    #[test]
    fn at_least_one_essential_container() {
        let mut c = container("web");
        c["essential"] = json!(false);
        assert_eq!(
            errors(json!({"containerDefinitions": [c]})),
            ["Task definition doesn't have any essential container."]
        );
    }

    #[test]
    fn fargate_sizes() {
        let base = |cpu: &str, mem: &str| {
            json!({"requiresCompatibilities": ["FARGATE"], "networkMode": "awsvpc",
                   "cpu": cpu, "memory": mem, "containerDefinitions": [{"name": "a", "image": "x"}]})
        };
        assert!(errors(base("256", "512")).is_empty());
        assert!(errors(base("1 vCPU", "2 GB")).is_empty());
        assert!(errors(base(".25 vCPU", "0.5GB")).is_empty());
        assert!(errors(base("16384", "122880")).is_empty());
        assert_eq!(
            errors(base("300", "512")),
            ["Invalid 'cpu' setting for task."]
        );
        assert_eq!(
            errors(base("many", "512")),
            ["Invalid 'cpu' setting for task."]
        );
        assert_eq!(
            errors(base("256", "4096")),
            ["No Fargate configuration exists for given values."]
        );
        assert_eq!(
            errors(base("8192", "17408")),
            ["No Fargate configuration exists for given values."]
        );
        assert_eq!(
            errors(base("256", "lots")),
            ["Invalid 'memory' setting for task."]
        );
    }

    #[test]
    fn fargate_requires_awsvpc_and_a_task_size() {
        let errs = errors(json!({"requiresCompatibilities": ["FARGATE"],
            "containerDefinitions": [{"name": "a", "image": "x", "memory": 512}]}));
        assert_eq!(
            errs,
            [
                "Fargate requires that 'cpu' be defined at the task level.",
                "Fargate requires that 'memory' be defined at the task level.",
                "Fargate only supports network mode \u{2018}awsvpc\u{2019}."
            ]
        );
        let errs = errors(
            json!({"requiresCompatibilities": ["FARGATE"], "networkMode": "bridge",
            "cpu": "256", "memory": "512", "containerDefinitions": [{"name": "a", "image": "x"}]}),
        );
        assert_eq!(
            errs,
            ["Fargate only supports network mode \u{2018}awsvpc\u{2019}."]
        );
        let errs = errors(
            json!({"requiresCompatibilities": ["FARGATE"], "networkMode": "awsvpc", "ipcMode": "host",
            "cpu": "256", "memory": "512", "containerDefinitions": [{"name": "a", "image": "x", "privileged": true}]}),
        );
        assert_eq!(
            errs,
            [
                "Tasks using the Fargate launch type do not support ipcMode.",
                "Tasks using the Fargate launch type do not support privileged containers."
            ]
        );
    }

    #[test]
    fn ec2_task_cpu_range() {
        let errs = errors(json!({"cpu": "64", "containerDefinitions": [container("a")]}));
        assert_eq!(errs, ["Invalid 'cpu' setting for task."]);
        assert!(errors(json!({"cpu": "128", "containerDefinitions": [container("a")]})).is_empty());
    }

    #[test]
    fn container_totals_within_the_task() {
        let errs = errors(
            json!({"cpu": "256", "memory": "512", "containerDefinitions": [
            {"name": "a", "image": "x", "cpu": 200, "memory": 1024},
            {"name": "b", "image": "x", "cpu": 200}]}),
        );
        assert_eq!(
            errs,
            [
                "Invalid setting for container 'a'. The memory limit (1024 MiB) must be less than or equal to the task memory (512 MiB).",
                "Invalid 'cpu' setting for task. The containers reserve 400 CPU units in all, more than the task's 256.",
                "Invalid 'memory' setting for task. The containers reserve 1024 MiB in all, more than the task's 512 MiB."
            ]
        );
    }

    #[test]
    fn awsvpc_host_ports() {
        let c = |hp: serde_json::Value| {
            json!({"networkMode": "awsvpc", "containerDefinitions": [
                {"name": "a", "image": "x", "memory": 128, "portMappings": [{"containerPort": 80, "hostPort": hp}]}]})
        };
        assert!(errors(c(json!(80))).is_empty());
        assert!(errors(c(json!(null))).is_empty());
        assert_eq!(
            errors(c(json!(8080))),
            [
                "When networkMode=awsvpc, the host ports and container ports in port mappings must match."
            ]
        );
        // bridge maps any host port.
        let mut b = c(json!(8080));
        b["networkMode"] = json!("bridge");
        assert!(errors(b).is_empty());
        let mut h = c(json!(8080));
        h["networkMode"] = json!("host");
        assert_eq!(
            errors(h),
            [
                "When networkMode=host, the host ports and container ports in port mappings must match."
            ]
        );
    }

    #[test]
    fn ports_need_a_container_port() {
        let errs = errors(json!({"containerDefinitions": [
            {"name": "a", "image": "x", "memory": 128, "portMappings": [{"hostPort": 80}]}]}));
        assert_eq!(errs, ["Invalid 'containerPort' setting for container 'a'."]);
        let errs = errors(json!({"networkMode": "none", "containerDefinitions": [
            {"name": "a", "image": "x", "memory": 128, "portMappings": [{"containerPort": 80}]}]}));
        assert_eq!(
            errs,
            [
                "Invalid setting for container 'a'. Port mappings are not supported when networkMode=none."
            ]
        );
    }

    #[test]
    fn depends_on_rules() {
        let errs = errors(json!({"containerDefinitions": [
            {"name": "app", "image": "x", "memory": 128, "dependsOn": [{"containerName": "sidecar", "condition": "START"}]}]}));
        assert_eq!(
            errs,
            ["Cannot depend on container + 'sidecar' because it does not exist"]
        );
        let errs = errors(json!({"containerDefinitions": [
            {"name": "app", "image": "x", "memory": 128, "dependsOn": [{"containerName": "init", "condition": "SUCCESS"}]},
            {"name": "init", "image": "x", "memory": 128}]}));
        assert_eq!(
            errs,
            [
                "A dependency container with SUCCESS or COMPLETE condition cannot be an essential container"
            ]
        );
        let errs = errors(json!({"containerDefinitions": [
            {"name": "app", "image": "x", "memory": 128, "dependsOn": [{"containerName": "init", "condition": "COMPLETE"}]},
            {"name": "init", "image": "x", "memory": 128, "essential": false}]}));
        assert!(errs.is_empty());
        let errs = errors(json!({"containerDefinitions": [
            {"name": "app", "image": "x", "memory": 128, "dependsOn": [{"containerName": "db", "condition": "HEALTHY"}]},
            {"name": "db", "image": "x", "memory": 128}]}));
        assert_eq!(
            errs,
            [
                "Invalid 'dependsOn' setting for container 'app'. Container 'db' has no healthCheck, so it can never be HEALTHY."
            ]
        );
    }

    #[test]
    fn dependency_cycles() {
        let errs = errors(json!({"containerDefinitions": [
            {"name": "a", "image": "x", "memory": 128, "dependsOn": [{"containerName": "b", "condition": "START"}]},
            {"name": "b", "image": "x", "memory": 128, "dependsOn": [{"containerName": "a", "condition": "START"}]}]}));
        assert_eq!(
            errs,
            ["Invalid 'dependsOn' setting: the containers 'a', 'b' depend on each other."]
        );
    }

    #[test]
    fn links_only_in_bridge_mode() {
        let td = |mode: &str| {
            json!({"networkMode": mode, "containerDefinitions": [
                {"name": "wordpress", "image": "wordpress", "memory": 128, "links": ["mysql"]},
                {"name": "mysql", "image": "mysql", "memory": 128}]})
        };
        assert!(errors(td("bridge")).is_empty());
        assert_eq!(
            errors(td("awsvpc")),
            ["Links are not supported when networkMode=awsvpc."]
        );
        let errs = errors(json!({"containerDefinitions": [
            {"name": "wordpress", "image": "wordpress", "memory": 128, "links": ["db:mysql"]}]}));
        assert_eq!(
            errs,
            ["Invalid 'links' setting for container 'wordpress'. Container 'db' does not exist."]
        );
    }

    #[test]
    fn hostname_not_with_awsvpc() {
        let errs = errors(json!({"networkMode": "awsvpc", "containerDefinitions": [
            {"name": "a", "image": "x", "memory": 128, "hostname": "a"}]}));
        assert_eq!(
            errs,
            ["hostname is not supported on container when networkMode=awsvpc."]
        );
    }

    #[test]
    fn health_check_ranges() {
        let hc = |h: serde_json::Value| json!({"containerDefinitions": [{"name": "a", "image": "x", "memory": 128, "healthCheck": h}]});
        assert!(errors(hc(json!({"command": ["CMD-SHELL", "true"]}))).is_empty());
        assert!(
            errors(hc(
                json!({"command": ["CMD", "curl", "-f", "http://localhost"],
                "interval": 5, "timeout": 60, "retries": 10, "startPeriod": 300})
            ))
            .is_empty()
        );
        assert_eq!(
            errors(hc(
                json!({"command": ["CMD-SHELL", "true"], "interval": 4, "timeout": 61, "retries": 0, "startPeriod": 301})
            )),
            [
                "Invalid 'healthCheck' setting for container 'a'. 'interval' must be between 5 and 300 seconds.",
                "Invalid 'healthCheck' setting for container 'a'. 'timeout' must be between 2 and 60 seconds.",
                "Invalid 'healthCheck' setting for container 'a'. 'retries' must be between 1 and 10.",
                "Invalid 'healthCheck' setting for container 'a'. 'startPeriod' must be between 0 and 300 seconds."
            ]
        );
        assert_eq!(
            errors(hc(json!({"command": ["curl", "localhost"]}))),
            [
                "Invalid 'healthCheck' setting for container 'a'. The command must be [\"CMD\", \"executable\", \"arg\"...] or [\"CMD-SHELL\", \"command\"]."
            ]
        );
    }

    #[test]
    fn volumes_and_mounts() {
        let errs = errors(
            json!({"volumes": [{"name": "data"}], "containerDefinitions": [
            {"name": "a", "image": "x", "memory": 128,
             "mountPoints": [{"sourceVolume": "logs", "containerPath": "/logs"}],
             "volumesFrom": [{"sourceContainer": "b"}]}]}),
        );
        assert_eq!(
            errs,
            [
                "Invalid 'mountPoints' setting for container 'a'. Unknown volume 'logs'.",
                "Invalid 'volumesFrom' setting for container 'a'. Container 'b' does not exist."
            ]
        );
    }

    #[test]
    fn secrets_must_parse() {
        let errs = errors(
            json!({"containerDefinitions": [{"name": "a", "image": "x", "memory": 128,
            "secrets": [{"name": "X", "valueFrom": "arn:aws:s3:::bucket/key"}]}]}),
        );
        assert_eq!(errs.len(), 1);
        assert!(
            errs[0].starts_with("Invalid 'secrets' setting for container 'a'. Invalid valueFrom")
        );
    }

    #[test]
    fn gpu_values() {
        let errs = errors(
            json!({"containerDefinitions": [{"name": "a", "image": "x", "memory": 128,
            "resourceRequirements": [{"type": "GPU", "value": "two"}]}]}),
        );
        assert_eq!(
            errs,
            [
                "Invalid 'resourceRequirements' setting for container 'a'. The GPU value must be a positive whole number."
            ]
        );
    }

    #[test]
    fn all_errors_are_returned() {
        let errs = errors(json!({"networkMode": "awsvpc", "containerDefinitions": [
            {"name": "a", "image": "", "links": ["b"], "essential": false}]}));
        assert_eq!(
            errs,
            [
                "Task definition doesn't have any essential container.",
                "Container.image should not be null or empty.",
                "Invalid setting for container 'a'. At least one of 'memory' or 'memoryReservation' must be specified.",
                "Links are not supported when networkMode=awsvpc.",
                "Invalid 'links' setting for container 'a'. Container 'b' does not exist."
            ]
        );
    }
}
