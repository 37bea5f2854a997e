//! ECS `dependsOn` in a pod: which containers start in which phase, in which order.
//!
//! Kubernetes has one per-container start gate: init containers, which start one after the
//! other before the regular containers. kubecs maps ECS's conditions onto it so that the
//! kubelet itself enforces the order:
//!
//! - A container others wait on for **COMPLETE** or **SUCCESS** becomes a regular init
//!   container: it runs to completion before anything after it starts. SUCCESS is exact (a
//!   non-zero exit fails the pod, as the dependent could never start in ECS). COMPLETE
//!   differs: ECS would go on after a non-zero exit, a pod with `restartPolicy: Never` fails;
//!   this is reported as unsupported.
//! - A container others wait on for **START** or **HEALTHY** becomes a native sidecar (an init
//!   container with `restartPolicy: Always`): the kubelet starts the next container once it has
//!   started, or, when it has a startup probe (built from its healthCheck for HEALTHY), once the
//!   probe succeeds — ECS's START and HEALTHY. Sidecars keep running beside the regular
//!   containers and are stopped after them, like ECS's log routers and proxies; unlike ECS, the
//!   kubelet restarts a sidecar that exits, so the owner treats a restart of an essential
//!   sidecar as the essential container stopping.
//! - Every other container is a regular container.
//!
//! Init-phase containers are ordered so that every container comes after the ones it depends
//! on (a dependency target is always init-phase itself, so the order always exists when the
//! graph has no cycle). Containers that ECS would start at once with the init phase wait for it
//! in Kubernetes; that only delays them.
//!
//! As ECS does, a container whose log driver is `awsfirelens` implicitly depends on the FireLens
//! log router (START), so the router starts first and stops last.
//!
//! The graph (with Kubernetes names) is also recorded on the pod, see
//! [`super::annotations::CONTAINERS`].

use std::collections::BTreeSet;

use serde::{Deserialize, Serialize};

use crate::api::taskdef::{ContainerCondition, TaskDefinitionSpec};

/// Where a container runs in the pod.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Phase {
    /// A regular init container: runs to completion before the containers after it.
    Init,
    /// A native sidecar: an init container with `restartPolicy: Always`.
    Sidecar,
    /// A regular container.
    Main,
}

/// The phase and order of every container of a task definition.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Plan {
    /// By container index.
    pub phase: Vec<Phase>,
    /// Init-phase container indexes, in start order.
    pub init_order: Vec<usize>,
    /// Regular container indexes, in start order.
    pub main_order: Vec<usize>,
    /// Dependencies by container index (explicit, then the implicit FireLens one).
    pub deps: Vec<Vec<(usize, ContainerCondition)>>,
    /// `(dependent, target)` of each implicit dependency kubecs added.
    pub implicit: Vec<(usize, usize)>,
}

fn index_of(spec: &TaskDefinitionSpec, name: &str) -> Option<usize> {
    spec.container_definitions
        .iter()
        .position(|c| c.name == name)
}

/// Explicit dependencies with known targets, by container index.
fn explicit_deps(spec: &TaskDefinitionSpec) -> Vec<Vec<(usize, ContainerCondition)>> {
    spec.container_definitions
        .iter()
        .map(|c| {
            c.depends_on
                .iter()
                .filter_map(|d| index_of(spec, &d.container_name).map(|i| (i, d.condition)))
                .collect()
        })
        .collect()
}

/// Whether `from` reaches `to` following dependencies.
fn reaches(deps: &[Vec<(usize, ContainerCondition)>], from: usize, to: usize) -> bool {
    let mut stack = vec![from];
    let mut seen = BTreeSet::new();
    while let Some(i) = stack.pop() {
        if i == to {
            return true;
        }
        if seen.insert(i) {
            stack.extend(deps[i].iter().map(|(t, _)| *t));
        }
    }
    false
}

/// A dependency cycle among the containers, by name, if there is one.
pub(crate) fn find_cycle(spec: &TaskDefinitionSpec) -> Option<Vec<String>> {
    let deps = explicit_deps(spec);
    // 0 = unvisited, 1 = on the stack, 2 = done.
    let mut state = vec![0u8; deps.len()];
    let mut path = Vec::new();
    fn dfs(
        i: usize,
        deps: &[Vec<(usize, ContainerCondition)>],
        state: &mut [u8],
        path: &mut Vec<usize>,
    ) -> Option<Vec<usize>> {
        state[i] = 1;
        path.push(i);
        for &(t, _) in &deps[i] {
            if state[t] == 1 {
                let start = path.iter().position(|&p| p == t).unwrap_or(0);
                return Some(path[start..].to_vec());
            }
            if state[t] == 0
                && let Some(c) = dfs(t, deps, state, path)
            {
                return Some(c);
            }
        }
        path.pop();
        state[i] = 2;
        None
    }
    for i in 0..deps.len() {
        if state[i] == 0
            && let Some(mut cycle) = dfs(i, &deps, &mut state, &mut path)
        {
            cycle.sort_unstable();
            return Some(
                cycle
                    .into_iter()
                    .map(|i| spec.container_definitions[i].name.clone())
                    .collect(),
            );
        }
    }
    None
}

/// Plans the phases and start order. Assumes no cycle (see [`find_cycle`]); should one exist,
/// the containers in it are started as regular containers.
pub(crate) fn plan(spec: &TaskDefinitionSpec) -> Plan {
    let containers = &spec.container_definitions;
    let n = containers.len();
    let mut deps = explicit_deps(spec);
    let mut implicit = Vec::new();

    // FireLens: log-routed containers wait for the router to START.
    if let Some(router) = containers
        .iter()
        .position(|c| c.firelens_configuration.is_some())
    {
        for (i, c) in containers.iter().enumerate() {
            let routed = c
                .log_configuration
                .as_ref()
                .is_some_and(|l| l.log_driver == "awsfirelens");
            if routed
                && i != router
                && !deps[i].iter().any(|(t, _)| *t == router)
                && !reaches(&deps, router, i)
            {
                deps[i].push((router, ContainerCondition::Start));
                implicit.push((i, router));
            }
        }
    }

    // Phases from the conditions others wait on.
    let mut phase = vec![Phase::Main; n];
    for d in deps.iter() {
        for &(t, cond) in d {
            phase[t] = match (phase[t], cond) {
                (_, ContainerCondition::Complete | ContainerCondition::Success) => Phase::Init,
                (Phase::Init, _) => Phase::Init,
                _ => Phase::Sidecar,
            };
        }
    }

    // Topological order of the init phase, original order as the tie-break.
    let init: Vec<usize> = (0..n).filter(|&i| phase[i] != Phase::Main).collect();
    let mut placed = BTreeSet::new();
    let mut init_order = Vec::with_capacity(init.len());
    while init_order.len() < init.len() {
        let next = init.iter().copied().find(|&i| {
            !placed.contains(&i)
                && deps[i]
                    .iter()
                    .all(|(t, _)| placed.contains(t) || phase[*t] == Phase::Main)
        });
        match next {
            Some(i) => {
                placed.insert(i);
                init_order.push(i);
            }
            None => break, // a cycle: leave the rest to the regular phase
        }
    }
    for &i in &init {
        if !placed.contains(&i) {
            phase[i] = Phase::Main;
        }
    }
    let main_order = (0..n).filter(|&i| phase[i] == Phase::Main).collect();
    Plan {
        phase,
        init_order,
        main_order,
        deps,
        implicit,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn spec(v: serde_json::Value) -> TaskDefinitionSpec {
        serde_json::from_value(v).unwrap()
    }

    #[test]
    fn no_dependencies_all_regular() {
        let p = plan(&spec(json!({"containerDefinitions": [
            {"name": "a"}, {"name": "b"}]})));
        assert_eq!(p.phase, [Phase::Main, Phase::Main]);
        assert_eq!(p.main_order, [0, 1]);
        assert!(p.init_order.is_empty());
    }

    #[test]
    fn success_targets_are_init_containers_in_order() {
        // app waits for migrate (SUCCESS), migrate waits for db (HEALTHY),
        // db waits for secrets (COMPLETE).
        let p = plan(&spec(json!({"containerDefinitions": [
            {"name": "app", "dependsOn": [{"containerName": "migrate", "condition": "SUCCESS"}]},
            {"name": "migrate", "essential": false, "dependsOn": [{"containerName": "db", "condition": "HEALTHY"}]},
            {"name": "db", "dependsOn": [{"containerName": "secrets", "condition": "COMPLETE"}]},
            {"name": "secrets", "essential": false}]})));
        assert_eq!(
            p.phase,
            [Phase::Main, Phase::Init, Phase::Sidecar, Phase::Init]
        );
        assert_eq!(p.init_order, [3, 2, 1]);
        assert_eq!(p.main_order, [0]);
    }

    #[test]
    fn start_and_healthy_targets_are_sidecars() {
        let p = plan(&spec(json!({"containerDefinitions": [
            {"name": "app", "dependsOn": [{"containerName": "envoy", "condition": "HEALTHY"},
                                          {"containerName": "xray", "condition": "START"}]},
            {"name": "envoy"}, {"name": "xray"}]})));
        assert_eq!(p.phase, [Phase::Main, Phase::Sidecar, Phase::Sidecar]);
        assert_eq!(p.init_order, [1, 2]);
    }

    #[test]
    fn a_target_of_both_start_and_success_runs_to_completion() {
        let p = plan(&spec(json!({"containerDefinitions": [
            {"name": "a", "dependsOn": [{"containerName": "c", "condition": "START"}]},
            {"name": "b", "dependsOn": [{"containerName": "c", "condition": "SUCCESS"}]},
            {"name": "c", "essential": false}]})));
        assert_eq!(p.phase[2], Phase::Init);
    }

    #[test]
    fn firelens_router_is_an_implicit_start_dependency() {
        let p = plan(&spec(json!({"containerDefinitions": [
            {"name": "app", "logConfiguration": {"logDriver": "awsfirelens"}},
            {"name": "log_router", "firelensConfiguration": {"type": "fluentbit"}}]})));
        assert_eq!(p.phase, [Phase::Main, Phase::Sidecar]);
        assert_eq!(p.implicit, [(0, 1)]);
        assert_eq!(p.deps[0], [(1, ContainerCondition::Start)]);
    }

    #[test]
    fn cycles_are_found() {
        let s = spec(json!({"containerDefinitions": [
            {"name": "a", "dependsOn": [{"containerName": "b", "condition": "START"}]},
            {"name": "b", "dependsOn": [{"containerName": "c", "condition": "START"}]},
            {"name": "c", "dependsOn": [{"containerName": "a", "condition": "START"}]}]}));
        assert_eq!(find_cycle(&s).unwrap(), ["a", "b", "c"]);
        let p = plan(&s);
        assert_eq!(p.main_order, [0, 1, 2]);
        let selfdep = spec(json!({"containerDefinitions": [
            {"name": "a", "dependsOn": [{"containerName": "a", "condition": "START"}]}]}));
        assert_eq!(find_cycle(&selfdep).unwrap(), ["a"]);
        assert!(
            find_cycle(&spec(json!({"containerDefinitions": [
            {"name": "a", "dependsOn": [{"containerName": "b", "condition": "START"}]}, {"name": "b"}]})))
            .is_none()
        );
    }
}
