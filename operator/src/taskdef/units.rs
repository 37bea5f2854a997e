//! Task-level cpu and memory in the forms ECS accepts, the Fargate size table, and their
//! Kubernetes quantities.
//!
//! ECS takes task `cpu` as CPU units (`"256"`, `1024`) or vCPUs (`"1 vCPU"`, `"0.25 vcpu"`),
//! and task `memory` as MiB (`"512"`, `2048`) or GB (`"1GB"`, `"2 GB"`, where 1 GB = 1024 MiB,
//! as ECS converts it). 1024 CPU units are one vCPU (one Kubernetes core).

use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;

/// CPU units per vCPU.
pub const UNITS_PER_VCPU: i64 = 1024;

/// The Fargate task sizes: task cpu units and the memory values (MiB) allowed with each.
pub const FARGATE_SIZES: [(i64, i64, i64, i64); 7] = [
    // (cpu, min memory, max memory, step); 256 is special-cased below (512, 1024, 2048).
    (256, 512, 2048, 512),
    (512, 1024, 4096, 1024),
    (1024, 2048, 8192, 1024),
    (2048, 4096, 16384, 1024),
    (4096, 8192, 30720, 1024),
    (8192, 16384, 61440, 4096),
    (16384, 32768, 122880, 8192),
];

/// The smallest and largest task-level CPU for the EC2 launch type (0.125 to 192 vCPUs).
pub const EC2_TASK_CPU_RANGE: (i64, i64) = (128, 196_608);

/// Parses a task-level `cpu` value into CPU units: `256`, `"256"`, `"1 vCPU"`, `"0.25 vcpu"`.
/// `None` when the value is not one of ECS's forms or not a whole number of units.
pub fn parse_task_cpu(value: &IntOrString) -> Option<i64> {
    match value {
        IntOrString::Int(n) => (*n > 0).then_some(i64::from(*n)),
        IntOrString::String(s) => {
            let s = s.trim();
            let lower = s.to_ascii_lowercase();
            if let Some(num) = lower.strip_suffix("vcpu") {
                let vcpus: f64 = num.trim().parse().ok()?;
                let units = vcpus * UNITS_PER_VCPU as f64;
                (units > 0.0 && units.fract() == 0.0 && units.is_finite()).then_some(units as i64)
            } else {
                let n: i64 = s.parse().ok()?;
                (n > 0).then_some(n)
            }
        }
    }
}

/// Parses a task-level `memory` value into MiB: `512`, `"512"`, `"1GB"`, `"2 GB"`, `"0.5GB"`.
pub fn parse_task_memory(value: &IntOrString) -> Option<i64> {
    match value {
        IntOrString::Int(n) => (*n > 0).then_some(i64::from(*n)),
        IntOrString::String(s) => {
            let s = s.trim();
            let lower = s.to_ascii_lowercase();
            let (num, factor) = if let Some(n) = lower.strip_suffix("gb") {
                (n, 1024.0)
            } else if let Some(n) = lower.strip_suffix("mb") {
                (n, 1.0)
            } else if let Some(n) = lower.strip_suffix("mib") {
                (n, 1.0)
            } else {
                (lower.as_str(), 1.0)
            };
            let v: f64 = num.trim().parse().ok()?;
            let mib = v * factor;
            (mib > 0.0 && mib.fract() == 0.0 && mib.is_finite()).then_some(mib as i64)
        }
    }
}

/// The memory values (MiB) Fargate allows with `cpu` units, or `None` when `cpu` is not a
/// Fargate size.
pub fn fargate_memory_options(cpu: i64) -> Option<Vec<i64>> {
    if cpu == 256 {
        return Some(vec![512, 1024, 2048]);
    }
    FARGATE_SIZES
        .iter()
        .find(|(c, ..)| *c == cpu)
        .map(|&(_, min, max, step)| (min..=max).step_by(step as usize).collect())
}

/// Whether `cpu` units and `memory` MiB form a Fargate task size.
pub fn is_fargate_size(cpu: i64, memory: i64) -> bool {
    fargate_memory_options(cpu).is_some_and(|m| m.contains(&memory))
}

/// CPU units as a Kubernetes quantity: whole cores when exact (`"1"`), else millicores
/// rounded down, at least `1m` (`256` -> `"250m"`, `64` -> `"62m"`). Rounding down keeps
/// the containers' requests within the task's (pod-level) cpu, as the API server requires.
pub fn cpu_quantity(units: i64) -> Quantity {
    if units % UNITS_PER_VCPU == 0 {
        Quantity((units / UNITS_PER_VCPU).to_string())
    } else {
        let milli = (units * 1000 / UNITS_PER_VCPU).max(1);
        Quantity(format!("{milli}m"))
    }
}

/// MiB as a Kubernetes quantity (`512` -> `"512Mi"`).
pub fn memory_quantity(mib: i64) -> Quantity {
    Quantity(format!("{mib}Mi"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(v: &str) -> IntOrString {
        IntOrString::String(v.into())
    }

    #[test]
    fn task_cpu_accepts_units_and_vcpus() {
        assert_eq!(parse_task_cpu(&s("256")), Some(256));
        assert_eq!(parse_task_cpu(&IntOrString::Int(1024)), Some(1024));
        assert_eq!(parse_task_cpu(&s("1 vCPU")), Some(1024));
        assert_eq!(parse_task_cpu(&s("0.25 vcpu")), Some(256));
        assert_eq!(parse_task_cpu(&s("2vCPU")), Some(2048));
        assert_eq!(parse_task_cpu(&s(".5 VCPU")), Some(512));
        assert_eq!(parse_task_cpu(&s("lots")), None);
        assert_eq!(parse_task_cpu(&s("0")), None);
        assert_eq!(parse_task_cpu(&s("0.0001 vCPU")), None);
    }

    #[test]
    fn task_memory_accepts_mib_and_gb() {
        assert_eq!(parse_task_memory(&s("512")), Some(512));
        assert_eq!(parse_task_memory(&IntOrString::Int(2048)), Some(2048));
        assert_eq!(parse_task_memory(&s("1GB")), Some(1024));
        assert_eq!(parse_task_memory(&s("2 GB")), Some(2048));
        assert_eq!(parse_task_memory(&s("0.5GB")), Some(512));
        assert_eq!(parse_task_memory(&s("3 gb")), Some(3072));
        assert_eq!(parse_task_memory(&s("a lot")), None);
        assert_eq!(parse_task_memory(&s("-1")), None);
    }

    #[test]
    fn fargate_table_matches_ecs() {
        assert_eq!(fargate_memory_options(256).unwrap(), vec![512, 1024, 2048]);
        assert_eq!(
            fargate_memory_options(512).unwrap(),
            vec![1024, 2048, 3072, 4096]
        );
        assert_eq!(fargate_memory_options(1024).unwrap().len(), 7);
        assert_eq!(fargate_memory_options(2048).unwrap().len(), 13);
        assert_eq!(fargate_memory_options(4096).unwrap().len(), 23);
        assert_eq!(
            fargate_memory_options(8192).unwrap(),
            (16384..=61440).step_by(4096).collect::<Vec<_>>()
        );
        assert_eq!(fargate_memory_options(16384).unwrap().first(), Some(&32768));
        assert_eq!(fargate_memory_options(16384).unwrap().last(), Some(&122880));
        assert!(fargate_memory_options(300).is_none());
        assert!(is_fargate_size(256, 512));
        assert!(!is_fargate_size(256, 1536));
        assert!(is_fargate_size(4096, 30720));
        assert!(!is_fargate_size(4096, 31744));
        assert!(!is_fargate_size(8192, 17408));
    }

    #[test]
    fn quantities() {
        assert_eq!(cpu_quantity(1024).0, "1");
        assert_eq!(cpu_quantity(2048).0, "2");
        assert_eq!(cpu_quantity(256).0, "250m");
        assert_eq!(cpu_quantity(10).0, "9m");
        assert_eq!(cpu_quantity(64).0, "62m");
        assert_eq!(cpu_quantity(1).0, "1m");
        assert_eq!(memory_quantity(512).0, "512Mi");
    }
}
