//! Placement of 10,000 tasks over 2,000 container instances in one decision, with
//! spread(attribute:ecs.availability-zone) + binpack(memory) and one memberOf constraint:
//! the kubecs engine against a named peer in the same run, a naive baseline placer that
//! re-scans everything for every task (the straightforward way to write ECS placement).
//!
//! Run: `cargo bench --bench placement`. Figures are recorded in BENCHMARKS.md.

use std::collections::HashMap;
use std::hint::black_box;
use std::time::Duration;

use criterion::{Criterion, criterion_group, criterion_main};
use kubecs::placement::engine::AVAILABILITY_ZONE_ATTRIBUTE;
use kubecs::placement::{
    Constraint, InstanceState, PlacementPolicy, PlacementRequest, Query, Resource, RunningTask,
    Strategy, place,
};

const INSTANCES: usize = 2_000;
const TASKS: usize = 10_000;
const ZONES: [&str; 3] = ["us-east-1a", "us-east-1b", "us-east-1c"];
/// (instance type, cpu units, MiB): a mixed fleet; the constraint keeps the m5 and c5 ones.
const TYPES: [(&str, i64, i64); 4] = [
    ("m5.large", 2048, 7680),
    ("m5.xlarge", 4096, 15360),
    ("c5.large", 2048, 3840),
    ("t3.medium", 2048, 3840),
];
const MEMBER_OF: &str = "attribute:ecs.instance-type in [m5.large, m5.xlarge, c5.large]";

/// The cluster: 2,000 instances over three zones and four types, each already running some
/// tasks of other services (so remaining memory varies) and a few of this one.
fn cluster() -> Vec<InstanceState> {
    (0..INSTANCES)
        .map(|i| {
            let (kind, cpu, memory) = TYPES[i % TYPES.len()];
            let mut inst = InstanceState {
                id: format!("i-{i:05}").into(),
                attributes: std::sync::Arc::new(
                    [
                        (
                            AVAILABILITY_ZONE_ATTRIBUTE.to_string(),
                            ZONES[i % 3].to_string(),
                        ),
                        ("ecs.instance-type".to_string(), kind.to_string()),
                        ("ecs.os-type".to_string(), "linux".to_string()),
                    ]
                    .into(),
                ),
                remaining_cpu: cpu,
                remaining_memory: memory,
                agent_connected: true,
                ..Default::default()
            };
            for k in 0..(i % 5) {
                let group = if k == 0 && i % 7 == 0 {
                    "service:web"
                } else {
                    "service:other"
                };
                inst.run(
                    RunningTask {
                        id: format!("t-{i}-{k}").into(),
                        group: group.into(),
                        cpu: 128,
                        memory: 256,
                    },
                    &[],
                );
            }
            inst
        })
        .collect()
}

fn policy() -> PlacementPolicy {
    PlacementPolicy {
        strategies: vec![
            Strategy::spread_availability_zone(),
            Strategy::Binpack(Resource::Memory),
        ],
        constraints: vec![Constraint::MemberOf(Query::parse(MEMBER_OF).unwrap())],
    }
}

fn request() -> PlacementRequest {
    PlacementRequest {
        group: "service:web".into(),
        count: TASKS,
        cpu: 128,
        memory: 256,
        host_ports: vec![],
        seed: 42,
    }
}

/// The naive baseline peer: for every task, re-filter every instance (re-evaluating the
/// memberOf expression), recount the group's tasks per zone by scanning every task in the
/// cluster, sort the candidates by (zone count, remaining memory), pick among the ties, and
/// record the task on a cloned copy of the cluster. Same semantics as the engine; none of its
/// precomputation or incremental counts.
fn naive_place(
    instances: &[InstanceState],
    policy: &PlacementPolicy,
    request: &PlacementRequest,
) -> Vec<usize> {
    let mut state = instances.to_vec();
    let mut placed = Vec::with_capacity(request.count);
    let mut seed = request.seed;
    for n in 0..request.count {
        let mut per_zone: HashMap<Option<String>, usize> = HashMap::new();
        for inst in &state {
            let zone = inst.attributes.get(AVAILABILITY_ZONE_ATTRIBUTE).cloned();
            *per_zone.entry(zone).or_default() += inst
                .tasks
                .iter()
                .filter(|t| *t.group == *request.group)
                .count();
        }
        let mut candidates: Vec<(usize, usize, i64)> = state
            .iter()
            .enumerate()
            .filter(|(_, inst)| {
                inst.agent_connected
                    && !inst.draining
                    && inst.remaining_cpu >= request.cpu
                    && inst.remaining_memory >= request.memory
                    && policy.constraints.iter().all(|c| match c {
                        Constraint::MemberOf(q) => q.matches(*inst),
                        Constraint::DistinctInstance => {
                            !inst.tasks.iter().any(|t| *t.group == *request.group)
                        }
                    })
            })
            .map(|(i, inst)| {
                let zone = inst.attributes.get(AVAILABILITY_ZONE_ATTRIBUTE).cloned();
                (i, per_zone[&zone], inst.remaining_memory)
            })
            .collect();
        if candidates.is_empty() {
            break;
        }
        candidates.sort_by_key(|&(_, zone_count, memory)| (zone_count, memory));
        let best = (candidates[0].1, candidates[0].2);
        let tied = candidates.iter().take_while(|c| (c.1, c.2) == best).count();
        seed = seed
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        let chosen = candidates[(seed >> 33) as usize % tied].0;
        state[chosen].run(
            RunningTask {
                id: format!("new-{n}").into(),
                group: request.group.as_str().into(),
                cpu: request.cpu,
                memory: request.memory,
            },
            &request.host_ports,
        );
        placed.push(chosen);
    }
    placed
}

fn bench(c: &mut Criterion) {
    let instances = cluster();
    let policy = policy();
    let request = request();

    // Not a timing assertion: both placers must do the whole job, or the race means nothing.
    let outcome = place(&instances, &policy, &request);
    assert_eq!(outcome.placed.len(), TASKS, "{:?}", outcome.failure);
    assert_eq!(naive_place(&instances, &policy, &request).len(), TASKS);

    let mut group = c.benchmark_group("place 10000 tasks on 2000 instances");
    group.sample_size(10);
    group.warm_up_time(Duration::from_secs(1));
    group.measurement_time(Duration::from_secs(5));
    group.bench_function("kubecs engine", |b| {
        b.iter(|| {
            place(
                black_box(&instances),
                black_box(&policy),
                black_box(&request),
            )
        })
    });
    // The baseline clones the cluster to record its placements: part of its work, as copying
    // the remaining resources into flat arrays is part of the engine's.
    group.measurement_time(Duration::from_secs(45));
    group.bench_function("naive re-scan baseline", |b| {
        b.iter(|| {
            naive_place(
                black_box(&instances),
                black_box(&policy),
                black_box(&request),
            )
        })
    });
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
