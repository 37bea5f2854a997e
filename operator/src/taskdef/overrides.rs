//! RunTask-style overrides (ECS `TaskOverride`) applied to a task definition before it is
//! rendered: the same rules as ECS, then the result is validated again.

use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;

use crate::api::common::KeyValuePair;
use crate::api::task::TaskOverride;
use crate::api::taskdef::TaskDefinitionSpec;

use super::{ValidationErrors, validate};

/// `spec` with `overrides` applied: a container's `command` is replaced, its `environment`
/// entries replace same-named variables or are added, `cpu` / `memory` /
/// `memoryReservation` replace the container's; task `cpu` / `memory` / roles replace the
/// task's. The result must still be a valid task definition.
pub fn apply_overrides(
    spec: &TaskDefinitionSpec,
    overrides: &TaskOverride,
) -> Result<TaskDefinitionSpec, ValidationErrors> {
    let mut out = spec.clone();
    let mut errs = Vec::new();
    for o in &overrides.container_overrides {
        let Some(c) = out
            .container_definitions
            .iter_mut()
            .find(|c| c.name == o.name)
        else {
            errs.push(format!(
                "Override for container named {} is not a container in the TaskDefinition.",
                o.name
            ));
            continue;
        };
        if !o.command.is_empty() {
            c.command = o.command.clone();
        }
        for kv in &o.environment {
            match c
                .environment
                .iter_mut()
                .find(|e| e.name.is_some() && e.name == kv.name)
            {
                Some(e) => e.value = kv.value.clone(),
                None => c.environment.push(KeyValuePair {
                    name: kv.name.clone(),
                    value: kv.value.clone(),
                }),
            }
        }
        if o.cpu.is_some() {
            c.cpu = o.cpu;
        }
        if o.memory.is_some() {
            c.memory = o.memory;
        }
        if o.memory_reservation.is_some() {
            c.memory_reservation = o.memory_reservation;
        }
    }
    if let Some(cpu) = &overrides.cpu {
        out.cpu = Some(IntOrString::String(cpu.clone()));
    }
    if let Some(memory) = &overrides.memory {
        out.memory = Some(IntOrString::String(memory.clone()));
    }
    if overrides.task_role_arn.is_some() {
        out.task_role_arn = overrides.task_role_arn.clone();
    }
    if overrides.execution_role_arn.is_some() {
        out.execution_role_arn = overrides.execution_role_arn.clone();
    }
    if !errs.is_empty() {
        return Err(ValidationErrors(errs));
    }
    validate(&out)?;
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn spec() -> TaskDefinitionSpec {
        serde_json::from_value(json!({"family": "job", "cpu": "256", "memory": "512",
            "containerDefinitions": [{"name": "job", "image": "busybox", "command": ["echo", "hi"],
                "environment": [{"name": "MODE", "value": "full"}, {"name": "KEEP", "value": "1"}]}]}))
        .unwrap()
    }

    #[test]
    fn container_overrides_replace_and_add() {
        let o: TaskOverride = serde_json::from_value(json!({
            "containerOverrides": [{"name": "job", "command": ["echo", "bye"],
                "environment": [{"name": "MODE", "value": "quick"}, {"name": "NEW", "value": "x"}],
                "memory": 256}],
            "cpu": "512", "memory": "1GB", "taskRoleArn": "arn:aws:iam::1:role/batch"}))
        .unwrap();
        let s = apply_overrides(&spec(), &o).unwrap();
        let c = &s.container_definitions[0];
        assert_eq!(c.command, ["echo", "bye"]);
        let env: Vec<_> = c
            .environment
            .iter()
            .map(|e| (e.name.clone().unwrap(), e.value.clone().unwrap()))
            .collect();
        assert_eq!(
            env,
            [
                ("MODE".into(), "quick".into()),
                ("KEEP".into(), "1".into()),
                ("NEW".into(), "x".into())
            ]
        );
        assert_eq!(c.memory, Some(256));
        assert_eq!(s.cpu, Some(IntOrString::String("512".into())));
        assert_eq!(
            s.task_role_arn.as_deref(),
            Some("arn:aws:iam::1:role/batch")
        );
    }

    #[test]
    fn unknown_containers_and_invalid_results_are_refused() {
        let o: TaskOverride =
            serde_json::from_value(json!({"containerOverrides": [{"name": "nope"}]})).unwrap();
        assert_eq!(
            apply_overrides(&spec(), &o).unwrap_err().0,
            ["Override for container named nope is not a container in the TaskDefinition."]
        );
        let o: TaskOverride = serde_json::from_value(
            json!({"containerOverrides": [{"name": "job", "memory": 1024}]}),
        )
        .unwrap();
        assert_eq!(
            apply_overrides(&spec(), &o).unwrap_err().0,
            [
                "Invalid setting for container 'job'. The memory limit (1024 MiB) must be less than or equal to the task memory (512 MiB).",
                "Invalid 'memory' setting for task. The containers reserve 1024 MiB in all, more than the task's 512 MiB."
            ]
        );
    }
}
