//! The ECS task placement engine: which container instance each new task goes to, and which
//! running tasks to stop on scale-in. Pure and plain data in, plain data out, so the same code
//! is unit-tested, property-tested and benchmarked without a cluster.
//!
//! Placement follows ECS's documented order for every task of a decision:
//! 1. filter on remaining cpu, memory and host ports (and skip DRAINING instances and those
//!    whose agent is disconnected);
//! 2. constraints, which bind: `distinctInstance` and `memberOf` expressions;
//! 3. strategies, in order, each one a tie-breaker for the one before it: `binpack` (least
//!    remaining cpu|memory), `spread` (fewest tasks of the same group per value of the field),
//!    `random`;
//! 4. select among the instances still tied, at random (from an injectable seed).
//!
//! Remaining resources, ports and spread counts are updated between the tasks of one decision,
//! so a desired count of 10,000 is one call. The per-task work is a scan over precomputed
//! per-instance arrays: constraint expressions that cannot change during a decision are
//! evaluated once per instance, the ones that can (`task:group`, `runningTasksCount`) again
//! only on the instance that just received a task.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::fmt;

use super::instance::ContainerInstance;
use super::query::{InstanceFacts, Query, QueryError};
use crate::api::common::{
    PlacementConstraint, PlacementConstraintType, PlacementStrategy, PlacementStrategyType,
};
use crate::api::taskdef::TaskDefinitionPlacementConstraint;

/// ECS: at most 5 placement strategies per service or task.
pub const MAX_STRATEGIES: usize = 5;
/// ECS: at most 10 placement constraints, the task definition's memberOf ones included.
pub const MAX_CONSTRAINTS: usize = 10;
/// The attribute services spread on by default.
pub const AVAILABILITY_ZONE_ATTRIBUTE: &str = "ecs.availability-zone";

/// The task group of a service's tasks: what spread balances and `task:group` matches.
pub fn service_group(service: &str) -> String {
    format!("service:{service}")
}

/// The default task group of a standalone task (RunTask without `group`).
pub fn family_group(family: &str) -> String {
    format!("family:{family}")
}

/// A task already running on an instance, as placement needs to know it.
///
/// Shared strings: every placement copies what runs on each of its cluster's instances, and
/// a copy must not allocate per task (1,000 services rolling over 20,000 tasks made those
/// copies most of the operator's memory).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RunningTask {
    /// The task id (the pod's uid).
    pub id: std::sync::Arc<str>,
    /// Its task group: `service:NAME`, `family:NAME` or a RunTask `group`.
    pub group: std::sync::Arc<str>,
    /// CPU units it reserves (scale-in under binpack frees them).
    pub cpu: i64,
    /// MiB it reserves.
    pub memory: i64,
}

/// A container instance and what runs on it now: the engine's input.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct InstanceState {
    /// The container instance id (ECS `ec2InstanceId`: the Node's name). Shared, as are the
    /// strings below: every service pass copies its cluster's instances.
    pub id: std::sync::Arc<str>,
    /// ECS attributes (`ecs.availability-zone`, `ecs.instance-type`, custom ones), shared
    /// with the index that parsed them.
    pub attributes: std::sync::Arc<BTreeMap<String, String>>,
    /// CPU units not reserved by any pod bound to the instance (ours or not).
    pub remaining_cpu: i64,
    /// MiB not reserved by any pod bound to the instance.
    pub remaining_memory: i64,
    /// Host ports in use. TCP and UDP share one space here: conservative, and ECS's PORTS
    /// and PORTS_UDP rarely differ in practice.
    pub used_ports: Vec<u16>,
    /// The agent is connected (the Node is Ready); ECS places nothing on other instances.
    pub agent_connected: bool,
    /// DRAINING (the Node is cordoned): ECS places nothing there.
    pub draining: bool,
    /// The agent version, for `agentVersion` queries.
    pub agent_version: Option<std::sync::Arc<str>>,
    /// When it registered (RFC 3339), for `registeredAt` queries.
    pub registered_at: Option<std::sync::Arc<str>>,
    /// The tasks running there (`runningTasksCount`, `task:group`, spread, distinctInstance).
    /// Shared with the index that keeps them: a placement copies no task.
    pub tasks: std::sync::Arc<Vec<RunningTask>>,
}

impl InstanceState {
    /// An idle instance with all its registered resources remaining; the caller then
    /// [`run`](Self::run)s what the Node holds.
    pub fn from_container_instance(ci: &ContainerInstance) -> Self {
        Self {
            id: ci.id.as_str().into(),
            attributes: std::sync::Arc::new(ci.attributes.clone()),
            remaining_cpu: ci.registered_cpu,
            remaining_memory: ci.registered_memory,
            used_ports: Vec::new(),
            agent_connected: ci.agent_connected,
            draining: ci.draining,
            agent_version: None,
            registered_at: ci.registered_at.as_deref().map(Into::into),
            tasks: Default::default(),
        }
    }

    /// Accounts for a task running on the instance: its resources and host ports are taken.
    pub fn run(&mut self, task: RunningTask, host_ports: &[u16]) {
        self.remaining_cpu -= task.cpu;
        self.remaining_memory -= task.memory;
        self.used_ports.extend_from_slice(host_ports);
        std::sync::Arc::make_mut(&mut self.tasks).push(task);
    }

    /// Accounts for all that runs on the instance at once: `tasks` reserving `cpu` and
    /// `memory` in all and using `host_ports`. The list is shared, not copied.
    pub fn run_all(
        &mut self,
        tasks: &std::sync::Arc<Vec<RunningTask>>,
        (cpu, memory): (i64, i64),
        host_ports: &[u16],
    ) {
        self.remaining_cpu -= cpu;
        self.remaining_memory -= memory;
        self.used_ports.extend_from_slice(host_ports);
        if self.tasks.is_empty() {
            self.tasks = tasks.clone();
        } else {
            std::sync::Arc::make_mut(&mut self.tasks).extend(tasks.iter().cloned());
        }
    }
}

impl InstanceFacts for InstanceState {
    fn ec2_instance_id(&self) -> &str {
        &self.id
    }
    fn attribute(&self, name: &str) -> Option<&str> {
        self.attributes.get(name).map(String::as_str)
    }
    fn agent_connected(&self) -> bool {
        self.agent_connected
    }
    fn agent_version(&self) -> Option<&str> {
        self.agent_version.as_deref()
    }
    fn registered_at(&self) -> Option<&str> {
        self.registered_at.as_deref()
    }
    fn running_tasks_count(&self) -> usize {
        self.tasks.len()
    }
    fn any_task_group(&self, test: &mut dyn FnMut(&str) -> bool) -> bool {
        self.tasks.iter().any(|t| test(&t.group))
    }
}

/// An instance as it will be once the tasks placed on it in this decision run: what a
/// `task:group` or `runningTasksCount` constraint sees for the next task.
struct Planned<'a> {
    instance: &'a InstanceState,
    group: &'a str,
    added: usize,
}

impl InstanceFacts for Planned<'_> {
    fn ec2_instance_id(&self) -> &str {
        &self.instance.id
    }
    fn attribute(&self, name: &str) -> Option<&str> {
        self.instance.attribute(name)
    }
    fn agent_connected(&self) -> bool {
        self.instance.agent_connected
    }
    fn agent_version(&self) -> Option<&str> {
        self.instance.agent_version()
    }
    fn registered_at(&self) -> Option<&str> {
        self.instance.registered_at()
    }
    fn running_tasks_count(&self) -> usize {
        self.instance.tasks.len() + self.added
    }
    fn any_task_group(&self, test: &mut dyn FnMut(&str) -> bool) -> bool {
        self.instance.any_task_group(test) || (self.added > 0 && test(self.group))
    }
}

/// The resource a binpack strategy packs on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Resource {
    Cpu,
    Memory,
}

/// What a spread strategy balances across.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SpreadField {
    /// `instanceId` or `host`: each container instance is its own value.
    InstanceId,
    /// `attribute:NAME`; instances without the attribute share one value of their own.
    Attribute(String),
}

/// A placement strategy, validated.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Strategy {
    Random,
    Spread(SpreadField),
    Binpack(Resource),
}

impl Strategy {
    /// `spread(attribute:ecs.availability-zone)`: the default for service tasks.
    pub fn spread_availability_zone() -> Self {
        Strategy::Spread(SpreadField::Attribute(AVAILABILITY_ZONE_ATTRIBUTE.into()))
    }

    /// Checks a strategy as the API gives it.
    pub fn from_api(s: &PlacementStrategy) -> Result<Self, PlacementConfigError> {
        let field = s.field.as_deref();
        match s.type_ {
            PlacementStrategyType::Random => match field {
                None => Ok(Strategy::Random),
                Some(_) => Err(PlacementConfigError::RandomField),
            },
            PlacementStrategyType::Binpack => match field {
                Some("cpu") => Ok(Strategy::Binpack(Resource::Cpu)),
                Some("memory") => Ok(Strategy::Binpack(Resource::Memory)),
                _ => Err(PlacementConfigError::BinpackField),
            },
            PlacementStrategyType::Spread => match field {
                Some("instanceId" | "host") => Ok(Strategy::Spread(SpreadField::InstanceId)),
                Some(f) => match f.strip_prefix("attribute:") {
                    Some(name) if !name.is_empty() => {
                        Ok(Strategy::Spread(SpreadField::Attribute(name.into())))
                    }
                    _ => Err(PlacementConfigError::SpreadField),
                },
                None => Err(PlacementConfigError::SpreadField),
            },
        }
    }
}

impl fmt::Display for Strategy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Strategy::Random => f.write_str("random"),
            Strategy::Spread(SpreadField::InstanceId) => f.write_str("spread(instanceId)"),
            Strategy::Spread(SpreadField::Attribute(a)) => write!(f, "spread(attribute:{a})"),
            Strategy::Binpack(Resource::Cpu) => f.write_str("binpack(cpu)"),
            Strategy::Binpack(Resource::Memory) => f.write_str("binpack(memory)"),
        }
    }
}

/// A placement constraint, validated.
#[derive(Clone, Debug, PartialEq)]
pub enum Constraint {
    /// Each task of the group on a different container instance.
    DistinctInstance,
    /// Only instances that satisfy the expression.
    MemberOf(Query),
}

impl Constraint {
    /// Checks a constraint as the API gives it, parsing its expression.
    pub fn from_api(c: &PlacementConstraint) -> Result<Self, PlacementConfigError> {
        match (c.type_, c.expression.as_deref()) {
            (PlacementConstraintType::DistinctInstance, None) => Ok(Constraint::DistinctInstance),
            (PlacementConstraintType::DistinctInstance, Some(_)) => {
                Err(PlacementConfigError::UnexpectedExpression)
            }
            (PlacementConstraintType::MemberOf, Some(e)) if !e.trim().is_empty() => member_of(e),
            (PlacementConstraintType::MemberOf, _) => Err(PlacementConfigError::MissingExpression),
        }
    }

    /// A task definition's constraint (always memberOf).
    pub fn from_task_definition(
        c: &TaskDefinitionPlacementConstraint,
    ) -> Result<Self, PlacementConfigError> {
        if c.expression.trim().is_empty() {
            return Err(PlacementConfigError::MissingExpression);
        }
        member_of(&c.expression)
    }
}

fn member_of(expression: &str) -> Result<Constraint, PlacementConfigError> {
    Query::parse(expression)
        .map(Constraint::MemberOf)
        .map_err(|error| PlacementConfigError::InvalidExpression {
            expression: expression.to_string(),
            error,
        })
}

impl fmt::Display for Constraint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Constraint::DistinctInstance => f.write_str("distinctInstance"),
            Constraint::MemberOf(q) => write!(f, "memberOf({q})"),
        }
    }
}

/// Why a service's or task's placement settings are refused. The messages match the CRDs'
/// validation rules, so a user reads the same words whichever layer caught the mistake.
#[derive(Clone, Debug, PartialEq, thiserror::Error)]
pub enum PlacementConfigError {
    #[error("Too many placement strategies: at most 5 are allowed.")]
    TooManyStrategies { count: usize },
    #[error(
        "Too many placement constraints: at most 10 are allowed, counting the task definition's ({given} given, {task_definition} from the task definition)."
    )]
    TooManyConstraints {
        given: usize,
        task_definition: usize,
    },
    #[error("The binpack placement strategy requires field 'cpu' or 'memory'.")]
    BinpackField,
    #[error(
        "The spread placement strategy requires field 'instanceId', 'host' or 'attribute:NAME'."
    )]
    SpreadField,
    #[error("The random placement strategy takes no field.")]
    RandomField,
    #[error("A memberOf placement constraint requires an expression.")]
    MissingExpression,
    #[error("A distinctInstance placement constraint takes no expression.")]
    UnexpectedExpression,
    #[error("Invalid memberOf expression '{expression}': {error}")]
    InvalidExpression {
        expression: String,
        error: QueryError,
    },
}

/// Who launches the tasks: it decides the default strategy.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TaskKind {
    /// A service's tasks: spread across availability zones by default.
    Service,
    /// RunTask: random by default.
    Standalone,
}

/// Validated strategies and constraints, defaults applied: what [`place`] and
/// [`select_tasks_to_stop`] obey.
#[derive(Clone, Debug, PartialEq)]
pub struct PlacementPolicy {
    pub strategies: Vec<Strategy>,
    /// The service's or task's constraints, then the task definition's.
    pub constraints: Vec<Constraint>,
}

impl PlacementPolicy {
    /// Validates the API's strategies and constraints (with the task definition's memberOf
    /// constraints, which count toward the limit of 10) and applies ECS's defaults when no
    /// strategy is given.
    pub fn new(
        kind: TaskKind,
        strategies: &[PlacementStrategy],
        constraints: &[PlacementConstraint],
        task_definition_constraints: &[TaskDefinitionPlacementConstraint],
    ) -> Result<Self, PlacementConfigError> {
        validate_limits(
            strategies.len(),
            constraints.len(),
            task_definition_constraints.len(),
        )?;
        let mut parsed: Vec<Strategy> = strategies
            .iter()
            .map(Strategy::from_api)
            .collect::<Result<_, _>>()?;
        if parsed.is_empty() {
            parsed = Self::default_strategies(kind);
        }
        let constraints = constraints
            .iter()
            .map(Constraint::from_api)
            .chain(
                task_definition_constraints
                    .iter()
                    .map(Constraint::from_task_definition),
            )
            .collect::<Result<_, _>>()?;
        Ok(Self {
            strategies: parsed,
            constraints,
        })
    }

    /// ECS's defaults: services spread on `attribute:ecs.availability-zone`; RunTask is random.
    pub fn default_strategies(kind: TaskKind) -> Vec<Strategy> {
        match kind {
            TaskKind::Service => vec![Strategy::spread_availability_zone()],
            TaskKind::Standalone => vec![Strategy::Random],
        }
    }

    /// The default policy of a kind: default strategies, no constraints.
    pub fn default_for(kind: TaskKind) -> Self {
        Self {
            strategies: Self::default_strategies(kind),
            constraints: Vec::new(),
        }
    }
}

/// Validates everything [`PlacementPolicy::new`] would, without keeping the result: for
/// admission-style checks that only need the first error.
pub fn validate(
    strategies: &[PlacementStrategy],
    constraints: &[PlacementConstraint],
    task_definition_constraints: &[TaskDefinitionPlacementConstraint],
) -> Result<(), PlacementConfigError> {
    PlacementPolicy::new(
        TaskKind::Service,
        strategies,
        constraints,
        task_definition_constraints,
    )
    .map(drop)
}

/// ECS's limits: at most 5 strategies; at most 10 constraints, the task definition's
/// memberOf constraints included (which no single CRD rule can see).
pub fn validate_limits(
    strategies: usize,
    constraints: usize,
    task_definition_constraints: usize,
) -> Result<(), PlacementConfigError> {
    if strategies > MAX_STRATEGIES {
        return Err(PlacementConfigError::TooManyStrategies { count: strategies });
    }
    if constraints + task_definition_constraints > MAX_CONSTRAINTS {
        return Err(PlacementConfigError::TooManyConstraints {
            given: constraints,
            task_definition: task_definition_constraints,
        });
    }
    Ok(())
}

/// N identical tasks to place in one decision.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct PlacementRequest {
    /// The task group (`service:NAME` for a service): spread balances among, and
    /// distinctInstance separates, the tasks of this group.
    pub group: String,
    /// How many tasks to place.
    pub count: usize,
    /// CPU units each task reserves.
    pub cpu: i64,
    /// MiB each task reserves.
    pub memory: i64,
    /// Host ports each task binds (bridge/host networking); empty for awsvpc.
    pub host_ports: Vec<u16>,
    /// Seeds the random choices, so that a decision can be replayed.
    pub seed: u64,
}

/// What a container instance lacks: the first requirement it failed, in ECS's order.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Shortfall {
    /// No ACTIVE container instance at all.
    NoInstances,
    /// The agent is disconnected.
    Agent,
    Cpu,
    Memory,
    Ports,
    DistinctInstance,
    /// The memberOf expression it does not satisfy.
    MemberOf(String),
}

/// Why (the rest of) a decision could not be placed: the closest matching instance, the one
/// that got furthest through the filters, and what it lacks.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PlacementFailure {
    /// The closest matching container instance; `None` with [`Shortfall::NoInstances`].
    pub closest: Option<String>,
    pub shortfall: Shortfall,
}

impl PlacementFailure {
    /// The service event, in ECS's words: `(service web) was unable to place a task because
    /// no container instance met all of its requirements. The closest matching
    /// (container-instance i-1) has insufficient memory available.`
    pub fn service_event(&self, service: &str) -> String {
        format!(
            "(service {service}) was unable to place a task because no container instance met all of its requirements. {self}"
        )
    }

    /// The RunTask failure reason (ECS `failures[].reason`).
    pub fn reason(&self) -> String {
        match &self.shortfall {
            Shortfall::NoInstances => "No Container Instances were found in your cluster.".into(),
            Shortfall::Agent => "AGENT".into(),
            Shortfall::Cpu => "RESOURCE:CPU".into(),
            Shortfall::Memory => "RESOURCE:MEMORY".into(),
            Shortfall::Ports => "RESOURCE:PORTS".into(),
            Shortfall::DistinctInstance => "DistinctInstance".into(),
            Shortfall::MemberOf(_) => "MemberOf".into(),
        }
    }
}

/// The sentence about the closest instance, as ECS appends it to its events.
impl fmt::Display for PlacementFailure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let id = self.closest.as_deref().unwrap_or_default();
        let closest = format!("The closest matching (container-instance {id})");
        match &self.shortfall {
            Shortfall::NoInstances => {
                f.write_str("Reason: No Container Instances were found in your cluster.")
            }
            Shortfall::Agent => write!(f, "{closest} encountered error \"AGENT\"."),
            Shortfall::Cpu => write!(f, "{closest} has insufficient CPU units available."),
            Shortfall::Memory => write!(f, "{closest} has insufficient memory available."),
            Shortfall::Ports => write!(
                f,
                "{closest} is already using a port required by your task."
            ),
            Shortfall::DistinctInstance => write!(
                f,
                "{closest} encountered error \"DistinctInstance\" placement constraint."
            ),
            Shortfall::MemberOf(e) => write!(
                f,
                "{closest} encountered error \"MemberOf\" placement constraint: {e}."
            ),
        }
    }
}

/// The result of a placement decision.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct PlacementOutcome {
    /// For each task placed, in order, the index of its instance in the input slice.
    pub placed: Vec<usize>,
    /// Set when fewer than `count` tasks were placed: why the next one could not be.
    pub failure: Option<PlacementFailure>,
}

impl PlacementOutcome {
    /// The chosen instances' ids, task by task.
    pub fn instance_ids<'a>(&self, instances: &'a [InstanceState]) -> Vec<&'a str> {
        self.placed.iter().map(|&i| &*instances[i].id).collect()
    }
}

/// SplitMix64: tiny, fast, and good enough for tie-breaking; seeded so tests and replays are
/// deterministic without pulling in `rand`.
#[derive(Clone, Debug)]
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in `0..n` (n > 0).
    fn below(&mut self, n: usize) -> usize {
        ((self.next() as u128 * n as u128) >> 64) as usize
    }
}

/// A strategy compiled against the instances: each gives every instance a key, lower is
/// preferred. `Random` ends the chain (what follows it can no longer break ties).
enum Key {
    /// Tasks of the group on the instance's value of the attribute.
    SpreadAttribute {
        value_of: Vec<u32>,
        counts: Vec<u32>,
    },
    /// Tasks of the group on the instance itself.
    SpreadInstance,
    BinpackCpu,
    BinpackMemory,
}

fn compile_keys(strategies: &[Strategy], instances: &[InstanceState], group: &str) -> Vec<Key> {
    let mut keys = Vec::new();
    for s in strategies.iter().take(MAX_STRATEGIES) {
        keys.push(match s {
            Strategy::Random => break,
            Strategy::Binpack(Resource::Cpu) => Key::BinpackCpu,
            Strategy::Binpack(Resource::Memory) => Key::BinpackMemory,
            Strategy::Spread(SpreadField::InstanceId) => Key::SpreadInstance,
            Strategy::Spread(SpreadField::Attribute(name)) => {
                // Value 0 is "no such attribute".
                let mut ids: HashMap<&str, u32> = HashMap::new();
                let mut counts = vec![0u32];
                let value_of = instances
                    .iter()
                    .map(|inst| {
                        let v = match inst.attributes.get(name) {
                            None => 0,
                            Some(v) => *ids.entry(v).or_insert_with(|| {
                                counts.push(0);
                                (counts.len() - 1) as u32
                            }),
                        };
                        counts[v as usize] +=
                            inst.tasks.iter().filter(|t| *t.group == *group).count() as u32;
                        v
                    })
                    .collect();
                Key::SpreadAttribute { value_of, counts }
            }
        });
    }
    keys
}

/// Per-instance state of one decision, as flat arrays for a fast scan.
struct Board<'a> {
    instances: &'a [InstanceState],
    group: &'a str,
    cpu: Vec<i64>,
    memory: Vec<i64>,
    /// Tasks of the group on the instance (existing and placed now).
    same_group: Vec<u32>,
    /// Tasks placed on the instance in this decision.
    added: Vec<u32>,
}

impl<'a> Board<'a> {
    fn new(instances: &'a [InstanceState], group: &'a str) -> Self {
        Self {
            instances,
            group,
            cpu: instances.iter().map(|i| i.remaining_cpu).collect(),
            memory: instances.iter().map(|i| i.remaining_memory).collect(),
            same_group: instances
                .iter()
                .map(|i| i.tasks.iter().filter(|t| *t.group == *group).count() as u32)
                .collect(),
            added: vec![0; instances.len()],
        }
    }

    fn planned(&self, i: usize) -> Planned<'_> {
        Planned {
            instance: &self.instances[i],
            group: self.group,
            added: self.added[i] as usize,
        }
    }

    fn key(&self, key: &Key, i: usize) -> i64 {
        match key {
            Key::SpreadAttribute { value_of, counts } => counts[value_of[i] as usize] as i64,
            Key::SpreadInstance => self.same_group[i] as i64,
            Key::BinpackCpu => self.cpu[i],
            Key::BinpackMemory => self.memory[i],
        }
    }
}

fn ports_conflict(instance: &InstanceState, ports: &[u16]) -> bool {
    ports.iter().any(|p| instance.used_ports.contains(p))
}

/// Places `request.count` tasks, one after the other, each on the instance ECS would choose;
/// stops at the first task that fits nowhere and says why.
/// An instance takes new tasks: ACTIVE (not DRAINING) with its agent connected.
fn accepts_tasks(inst: &InstanceState) -> bool {
    !inst.draining && inst.agent_connected
}

/// The instances a DAEMON service runs one task on: those that take new tasks and meet every
/// `memberOf` constraint (`distinctInstance` holds by construction). Indexes into `instances`.
pub fn daemon_instances(instances: &[InstanceState], policy: &PlacementPolicy) -> Vec<usize> {
    (0..instances.len())
        .filter(|&i| {
            let inst = &instances[i];
            accepts_tasks(inst)
                && policy.constraints.iter().all(|c| match c {
                    Constraint::MemberOf(q) => q.matches(inst),
                    Constraint::DistinctInstance => true,
                })
        })
        .collect()
}

pub fn place(
    instances: &[InstanceState],
    policy: &PlacementPolicy,
    request: &PlacementRequest,
) -> PlacementOutcome {
    let n = instances.len();
    let mut rng = Rng(request.seed);
    let mut board = Board::new(instances, &request.group);
    let needs_ports = !request.host_ports.is_empty();
    let distinct = policy
        .constraints
        .iter()
        .any(|c| matches!(c, Constraint::DistinctInstance));
    let (dynamic, fixed): (Vec<&Query>, Vec<&Query>) = policy
        .constraints
        .iter()
        .filter_map(|c| match c {
            Constraint::MemberOf(q) => Some(q),
            Constraint::DistinctInstance => None,
        })
        .partition(|q| q.depends_on_tasks());

    // What cannot change during the decision is decided once per instance.
    let usable: Vec<bool> = instances
        .iter()
        .map(|inst| {
            accepts_tasks(inst)
                && !(needs_ports && ports_conflict(inst, &request.host_ports))
                && fixed.iter().all(|q| q.matches(inst))
        })
        .collect();
    let mut dynamic_ok: Vec<bool> = if dynamic.is_empty() {
        Vec::new()
    } else {
        (0..n)
            .map(|i| usable[i] && dynamic.iter().all(|q| q.matches(&board.planned(i))))
            .collect()
    };

    let mut keys = compile_keys(&policy.strategies, instances, &request.group);
    let width = keys.len();
    let mut placed = Vec::with_capacity(request.count);
    let mut ties: Vec<usize> = Vec::new();
    let mut best = [0i64; MAX_STRATEGIES];
    let mut current = [0i64; MAX_STRATEGIES];

    for _ in 0..request.count {
        ties.clear();
        for i in 0..n {
            if !usable[i]
                || board.cpu[i] < request.cpu
                || board.memory[i] < request.memory
                || (needs_ports && board.added[i] > 0)
                || (distinct && board.same_group[i] > 0)
                || (!dynamic_ok.is_empty() && !dynamic_ok[i])
            {
                continue;
            }
            for (k, key) in keys.iter().enumerate() {
                current[k] = board.key(key, i);
            }
            if ties.is_empty() {
                best[..width].copy_from_slice(&current[..width]);
                ties.push(i);
                continue;
            }
            match current[..width].cmp(&best[..width]) {
                std::cmp::Ordering::Less => {
                    best[..width].copy_from_slice(&current[..width]);
                    ties.clear();
                    ties.push(i);
                }
                std::cmp::Ordering::Equal => ties.push(i),
                std::cmp::Ordering::Greater => {}
            }
        }
        if ties.is_empty() {
            let failure = closest_failure(&board, policy, request, &usable);
            return PlacementOutcome {
                placed,
                failure: Some(failure),
            };
        }
        let chosen = ties[rng.below(ties.len())];
        board.cpu[chosen] -= request.cpu;
        board.memory[chosen] -= request.memory;
        board.same_group[chosen] += 1;
        board.added[chosen] += 1;
        for key in &mut keys {
            if let Key::SpreadAttribute { value_of, counts } = key {
                counts[value_of[chosen] as usize] += 1;
            }
        }
        if !dynamic_ok.is_empty() {
            let planned = board.planned(chosen);
            dynamic_ok[chosen] = usable[chosen] && dynamic.iter().all(|q| q.matches(&planned));
        }
        placed.push(chosen);
    }
    PlacementOutcome {
        placed,
        failure: None,
    }
}

/// Finds the closest matching instance when nothing fits: the one that passed the most
/// filters (agent, cpu, memory, ports, then each constraint in order), and among those the
/// one that misses by the least; ties go to the first in input order.
fn closest_failure(
    board: &Board<'_>,
    policy: &PlacementPolicy,
    request: &PlacementRequest,
    usable: &[bool],
) -> PlacementFailure {
    let mut best: Option<(usize, i64, usize, Shortfall)> = None;
    for (i, inst) in board.instances.iter().enumerate() {
        if inst.draining {
            continue;
        }
        let (stage, miss, shortfall) = if !inst.agent_connected {
            (0, 0, Shortfall::Agent)
        } else if board.cpu[i] < request.cpu {
            (1, request.cpu - board.cpu[i], Shortfall::Cpu)
        } else if board.memory[i] < request.memory {
            (2, request.memory - board.memory[i], Shortfall::Memory)
        } else if !request.host_ports.is_empty()
            && (board.added[i] > 0 || ports_conflict(inst, &request.host_ports))
        {
            (3, 0, Shortfall::Ports)
        } else {
            let planned = board.planned(i);
            let failed = policy
                .constraints
                .iter()
                .enumerate()
                .find(|(_, c)| match c {
                    Constraint::DistinctInstance => board.same_group[i] > 0,
                    Constraint::MemberOf(q) => !q.matches(&planned),
                });
            match failed {
                Some((j, Constraint::DistinctInstance)) => (4 + j, 0, Shortfall::DistinctInstance),
                Some((j, Constraint::MemberOf(q))) => {
                    (4 + j, 0, Shortfall::MemberOf(q.source().to_string()))
                }
                // Unreachable while the scan and this agree; say memory rather than panic.
                None if usable[i] => (2, 0, Shortfall::Memory),
                None => (0, 0, Shortfall::Agent),
            }
        };
        let better = match &best {
            None => true,
            Some((s, m, _, _)) => stage > *s || (stage == *s && miss < *m),
        };
        if better {
            best = Some((stage, miss, i, shortfall));
        }
    }
    match best {
        Some((_, _, i, shortfall)) => PlacementFailure {
            closest: Some(board.instances[i].id.to_string()),
            shortfall,
        },
        None => PlacementFailure {
            closest: None,
            shortfall: Shortfall::NoInstances,
        },
    }
}

/// Which running tasks to stop on scale-in.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ScaleInRequest {
    /// The group whose tasks are stopped (and balanced).
    pub group: String,
    /// How many to stop.
    pub count: usize,
    /// When set, only these task ids may be stopped (e.g. an old deployment's); the other
    /// tasks of the group still count for the balance.
    pub eligible: Option<BTreeSet<String>>,
    /// Seeds the random choices.
    pub seed: u64,
}

/// A running task: `instances[instance].tasks[task]`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct TaskRef {
    pub instance: usize,
    pub task: usize,
}

/// Chooses the tasks to stop, one at a time, with the strategies read backwards: under
/// spread, from the most loaded value (keeping the balance); under binpack, the task whose
/// instance is left with the most remaining (emptying the emptiest, so the full ones stay
/// packed); random among what stays tied.
pub fn select_tasks_to_stop(
    instances: &[InstanceState],
    strategies: &[Strategy],
    request: &ScaleInRequest,
) -> Vec<TaskRef> {
    let mut rng = Rng(request.seed);
    let mut board = Board::new(instances, &request.group);
    let mut keys = compile_keys(strategies, instances, &request.group);
    let width = keys.len();
    let mut candidates: Vec<TaskRef> = instances
        .iter()
        .enumerate()
        .flat_map(|(i, inst)| {
            inst.tasks
                .iter()
                .enumerate()
                .filter(|(_, t)| {
                    *t.group == *request.group
                        && request.eligible.as_ref().is_none_or(|e| e.contains(&*t.id))
                })
                .map(move |(j, _)| TaskRef {
                    instance: i,
                    task: j,
                })
        })
        .collect();
    let mut stopped = Vec::new();
    let mut best = [0i64; MAX_STRATEGIES];
    let mut current = [0i64; MAX_STRATEGIES];
    let mut ties: Vec<usize> = Vec::new();
    while stopped.len() < request.count && !candidates.is_empty() {
        ties.clear();
        for (c, r) in candidates.iter().enumerate() {
            let task = &instances[r.instance].tasks[r.task];
            for (k, key) in keys.iter().enumerate() {
                // Negated: the most loaded value, the instance left with the most, first.
                current[k] = -match key {
                    Key::BinpackCpu => board.cpu[r.instance] + task.cpu,
                    Key::BinpackMemory => board.memory[r.instance] + task.memory,
                    other => board.key(other, r.instance),
                };
            }
            match current[..width].cmp(&best[..width]) {
                _ if ties.is_empty() => {
                    best[..width].copy_from_slice(&current[..width]);
                    ties.push(c);
                }
                std::cmp::Ordering::Less => {
                    best[..width].copy_from_slice(&current[..width]);
                    ties.clear();
                    ties.push(c);
                }
                std::cmp::Ordering::Equal => ties.push(c),
                std::cmp::Ordering::Greater => {}
            }
        }
        let r = candidates.swap_remove(ties[rng.below(ties.len())]);
        let task = &instances[r.instance].tasks[r.task];
        board.cpu[r.instance] += task.cpu;
        board.memory[r.instance] += task.memory;
        board.same_group[r.instance] -= 1;
        for key in &mut keys {
            if let Key::SpreadAttribute { value_of, counts } = key {
                counts[value_of[r.instance] as usize] -= 1;
            }
        }
        stopped.push(r);
    }
    stopped
}

#[cfg(test)]
mod tests {
    use super::*;

    fn instance(id: &str, zone: &str, cpu: i64, memory: i64) -> InstanceState {
        InstanceState {
            id: id.into(),
            attributes: std::sync::Arc::new(
                [
                    ("ecs.availability-zone".to_string(), zone.to_string()),
                    ("ecs.instance-type".to_string(), "m5.large".to_string()),
                ]
                .into(),
            ),
            remaining_cpu: cpu,
            remaining_memory: memory,
            agent_connected: true,
            ..Default::default()
        }
    }

    fn task(id: &str, group: &str) -> RunningTask {
        RunningTask {
            id: id.into(),
            group: group.into(),
            cpu: 256,
            memory: 512,
        }
    }

    fn request(count: usize) -> PlacementRequest {
        PlacementRequest {
            group: "service:web".into(),
            count,
            cpu: 256,
            memory: 512,
            host_ports: vec![],
            seed: 7,
        }
    }

    fn policy(strategies: Vec<Strategy>, constraints: Vec<Constraint>) -> PlacementPolicy {
        PlacementPolicy {
            strategies,
            constraints,
        }
    }

    fn member_of(e: &str) -> Constraint {
        Constraint::MemberOf(Query::parse(e).unwrap())
    }

    fn ids<'a>(o: &PlacementOutcome, instances: &'a [InstanceState]) -> Vec<&'a str> {
        o.instance_ids(instances)
    }

    #[test]
    fn daemon_instances_are_the_active_connected_members() {
        let mut all = vec![
            instance("a", "us-east-1a", 1024, 2048),
            instance("b", "us-east-1b", 1024, 2048),
            instance("c", "us-east-1a", 1024, 2048),
            instance("d", "us-east-1a", 1024, 2048),
        ];
        all[2].draining = true;
        all[3].agent_connected = false;
        let everywhere = policy(vec![], vec![Constraint::DistinctInstance]);
        assert_eq!(daemon_instances(&all, &everywhere), vec![0, 1]);
        let zone_a = policy(
            vec![],
            vec![member_of("attribute:ecs.availability-zone == us-east-1a")],
        );
        assert_eq!(daemon_instances(&all, &zone_a), vec![0]);
        // A task-dependent expression is judged on what runs there now.
        all[1].run(task("t1", "service:db"), &[]);
        let beside_db = policy(vec![], vec![member_of("task:group == service:db")]);
        assert_eq!(daemon_instances(&all, &beside_db), vec![1]);
    }

    #[test]
    fn binpack_memory_fills_the_fullest_instance_that_still_fits() {
        let instances = [
            instance("a", "z1", 4096, 4096),
            instance("b", "z1", 4096, 1024),
            instance("c", "z1", 4096, 256),
        ];
        let p = policy(vec![Strategy::Binpack(Resource::Memory)], vec![]);
        let o = place(&instances, &p, &request(4));
        // c cannot hold 512 MiB; b holds two, then a.
        assert_eq!(ids(&o, &instances), ["b", "b", "a", "a"]);
        assert_eq!(o.failure, None);
    }

    #[test]
    fn binpack_cpu_packs_on_cpu() {
        let instances = [
            instance("a", "z1", 512, 8192),
            instance("b", "z1", 2048, 1024),
        ];
        let p = policy(vec![Strategy::Binpack(Resource::Cpu)], vec![]);
        let o = place(&instances, &p, &request(3));
        assert_eq!(ids(&o, &instances), ["a", "a", "b"]);
    }

    #[test]
    fn spread_balances_against_the_groups_existing_tasks() {
        let mut instances = vec![
            instance("a1", "us-east-1a", 8192, 8192),
            instance("b1", "us-east-1b", 8192, 8192),
            instance("c1", "us-east-1c", 8192, 8192),
        ];
        instances[0].tasks = vec![task("t1", "service:web"), task("t2", "service:web")].into();
        instances[1].tasks = vec![task("t3", "service:web"), task("x", "service:other")].into();
        let p = PlacementPolicy::default_for(TaskKind::Service);
        // a has 2, b 1, c 0: c first, then b and c once more each, whatever the ties.
        let o = place(&instances, &p, &request(3));
        let chosen = ids(&o, &instances);
        assert_eq!(chosen[0], "c1");
        let mut rest = chosen[1..].to_vec();
        rest.sort();
        assert_eq!(rest, ["b1", "c1"]);
        // The other service's task does not count.
        std::sync::Arc::make_mut(&mut instances[1].tasks).pop();
        let o = place(&instances, &p, &request(1));
        assert_eq!(ids(&o, &instances), ["c1"]);
    }

    #[test]
    fn spread_then_binpack_breaks_ties_within_a_zone() {
        let instances = [
            instance("a-big", "us-east-1a", 8192, 8192),
            instance("a-small", "us-east-1a", 8192, 1024),
            instance("b-big", "us-east-1b", 8192, 8192),
            instance("b-small", "us-east-1b", 8192, 2048),
        ];
        let p = policy(
            vec![
                Strategy::spread_availability_zone(),
                Strategy::Binpack(Resource::Memory),
            ],
            vec![],
        );
        let o = place(&instances, &p, &request(4));
        let chosen = ids(&o, &instances);
        let mut first_two = chosen[..2].to_vec();
        first_two.sort();
        assert_eq!(first_two, ["a-small", "b-small"]);
        let mut next_two = chosen[2..].to_vec();
        next_two.sort();
        assert_eq!(next_two, ["a-small", "b-small"]);
    }

    #[test]
    fn spread_on_instance_id_uses_every_instance() {
        let instances: Vec<_> = (0..5)
            .map(|i| instance(&format!("i-{i}"), "z", 4096, 4096))
            .collect();
        let p = policy(vec![Strategy::Spread(SpreadField::InstanceId)], vec![]);
        let o = place(&instances, &p, &request(10));
        let mut per = [0; 5];
        o.placed.iter().for_each(|&i| per[i] += 1);
        assert_eq!(per, [2; 5]);
    }

    #[test]
    fn random_is_deterministic_for_a_seed_and_varies_across_seeds() {
        let instances: Vec<_> = (0..20)
            .map(|i| instance(&format!("i-{i}"), "z", 65536, 65536))
            .collect();
        let p = PlacementPolicy::default_for(TaskKind::Standalone);
        let mut r = request(10);
        let a = place(&instances, &p, &r);
        assert_eq!(a, place(&instances, &p, &r));
        r.seed = 8;
        assert_ne!(a.placed, place(&instances, &p, &r).placed);
        // Random first: binpack after it breaks no tie any more.
        let p = policy(
            vec![Strategy::Random, Strategy::Binpack(Resource::Memory)],
            vec![],
        );
        let o = place(&instances, &p, &request(10));
        let distinct: BTreeSet<_> = o.placed.iter().collect();
        assert!(distinct.len() > 1);
    }

    #[test]
    fn distinct_instance_never_colocates_the_group() {
        let mut instances = vec![
            instance("a", "z", 8192, 8192),
            instance("b", "z", 8192, 8192),
            instance("c", "z", 8192, 8192),
        ];
        instances[2].tasks = vec![task("t", "service:web")].into();
        let p = policy(
            vec![Strategy::Binpack(Resource::Memory)],
            vec![Constraint::DistinctInstance],
        );
        let o = place(&instances, &p, &request(3));
        let mut chosen = ids(&o, &instances);
        chosen.sort();
        assert_eq!(chosen, ["a", "b"]);
        let f = o.failure.unwrap();
        assert_eq!(f.shortfall, Shortfall::DistinctInstance);
        assert_eq!(
            f.service_event("web"),
            "(service web) was unable to place a task because no container instance met all of its requirements. The closest matching (container-instance a) encountered error \"DistinctInstance\" placement constraint."
        );
    }

    #[test]
    fn member_of_restricts_and_task_group_follows_placements() {
        let mut instances = vec![
            instance("t2-a", "z", 8192, 8192),
            instance("m5-a", "z", 8192, 8192),
            instance("m5-b", "z", 8192, 8192),
        ];
        std::sync::Arc::make_mut(&mut instances[0].attributes)
            .insert("ecs.instance-type".into(), "t2.micro".into());
        instances[2].tasks = vec![task("db", "service:db")].into();
        let p = policy(
            vec![Strategy::Spread(SpreadField::InstanceId)],
            vec![member_of("attribute:ecs.instance-type =~ m5.*")],
        );
        let o = place(&instances, &p, &request(4));
        assert!(o.placed.iter().all(|&i| i != 0));
        // Co-locate with the database.
        let p = policy(
            vec![Strategy::Spread(SpreadField::InstanceId)],
            vec![member_of("task:group == service:db")],
        );
        let o = place(&instances, &p, &request(3));
        assert_eq!(ids(&o, &instances), ["m5-b", "m5-b", "m5-b"]);
        // At most two tasks per instance, counting what this decision placed.
        let p = policy(
            vec![Strategy::Binpack(Resource::Memory)],
            vec![member_of("runningTasksCount < 2")],
        );
        let o = place(&instances, &p, &request(6));
        assert_eq!(o.placed.len(), 5);
        let mut per = [0; 3];
        o.placed.iter().for_each(|&i| per[i] += 1);
        assert_eq!(per, [2, 2, 1]);
        let f = o.failure.unwrap();
        assert_eq!(
            f.shortfall,
            Shortfall::MemberOf("runningTasksCount < 2".into())
        );
        assert_eq!(
            f.to_string(),
            "The closest matching (container-instance t2-a) encountered error \"MemberOf\" placement constraint: runningTasksCount < 2."
        );
    }

    #[test]
    fn host_ports_allow_one_task_per_instance() {
        let mut instances = vec![
            instance("a", "z", 8192, 8192),
            instance("b", "z", 8192, 8192),
            instance("c", "z", 8192, 8192),
        ];
        instances[1].used_ports = vec![80];
        let mut r = request(3);
        r.host_ports = vec![80];
        let p = PlacementPolicy::default_for(TaskKind::Service);
        let o = place(&instances, &p, &r);
        let mut chosen = ids(&o, &instances);
        chosen.sort();
        assert_eq!(chosen, ["a", "c"]);
        let f = o.failure.unwrap();
        assert_eq!(f.shortfall, Shortfall::Ports);
        assert_eq!(f.reason(), "RESOURCE:PORTS");
        assert_eq!(
            f.service_event("web"),
            "(service web) was unable to place a task because no container instance met all of its requirements. The closest matching (container-instance a) is already using a port required by your task."
        );
    }

    #[test]
    fn no_fit_names_the_closest_instance_and_what_it_lacks() {
        let instances = [
            instance("far", "z", 8192, 100),
            instance("close", "z", 8192, 400),
            instance("no-cpu", "z", 100, 8192),
        ];
        let p = PlacementPolicy::default_for(TaskKind::Service);
        let o = place(&instances, &p, &request(1));
        assert!(o.placed.is_empty());
        let f = o.failure.unwrap();
        assert_eq!(f.closest.as_deref(), Some("close"));
        assert_eq!(f.shortfall, Shortfall::Memory);
        assert_eq!(f.reason(), "RESOURCE:MEMORY");
        assert_eq!(
            f.service_event("web"),
            "(service web) was unable to place a task because no container instance met all of its requirements. The closest matching (container-instance close) has insufficient memory available."
        );

        let o = place(&instances[2..], &p, &request(1));
        let f = o.failure.unwrap();
        assert_eq!(f.shortfall, Shortfall::Cpu);
        assert!(
            f.to_string()
                .ends_with("has insufficient CPU units available.")
        );
    }

    #[test]
    fn memory_runs_out_part_way_through_a_decision() {
        let instances = [
            instance("a", "z", 8192, 1024),
            instance("b", "z", 8192, 512),
        ];
        let p = PlacementPolicy::default_for(TaskKind::Service);
        let o = place(&instances, &p, &request(5));
        assert_eq!(o.placed.len(), 3);
        let f = o.failure.unwrap();
        assert_eq!(f.shortfall, Shortfall::Memory);
    }

    #[test]
    fn draining_and_disconnected_instances_take_nothing() {
        let mut instances = vec![instance("drain", "z", 8192, 8192)];
        instances[0].draining = true;
        let p = PlacementPolicy::default_for(TaskKind::Service);
        let f = place(&instances, &p, &request(1)).failure.unwrap();
        assert_eq!(
            f,
            PlacementFailure {
                closest: None,
                shortfall: Shortfall::NoInstances
            }
        );
        assert_eq!(
            f.service_event("web"),
            "(service web) was unable to place a task because no container instance met all of its requirements. Reason: No Container Instances were found in your cluster."
        );
        let f = place(&[], &p, &request(1)).failure.unwrap();
        assert_eq!(f.shortfall, Shortfall::NoInstances);

        let mut instances = vec![instance("lost", "z", 8192, 8192)];
        instances[0].agent_connected = false;
        let f = place(&instances, &p, &request(1)).failure.unwrap();
        assert_eq!(f.shortfall, Shortfall::Agent);
        assert!(f.to_string().ends_with("encountered error \"AGENT\"."));
    }

    #[test]
    fn a_constraint_failure_beats_a_resource_failure_as_closest() {
        let mut instances = vec![
            instance("full", "z", 8192, 100),
            instance("wrong-type", "z", 8192, 8192),
        ];
        std::sync::Arc::make_mut(&mut instances[1].attributes)
            .insert("ecs.instance-type".into(), "t2.micro".into());
        let p = policy(
            vec![Strategy::Random],
            vec![member_of("attribute:ecs.instance-type == m5.large")],
        );
        let f = place(&instances, &p, &request(1)).failure.unwrap();
        assert_eq!(f.closest.as_deref(), Some("wrong-type"));
        assert_eq!(f.reason(), "MemberOf");
    }

    #[test]
    fn zero_tasks_is_a_successful_empty_decision() {
        let p = PlacementPolicy::default_for(TaskKind::Service);
        assert_eq!(place(&[], &p, &request(0)), PlacementOutcome::default());
    }

    #[test]
    fn policy_validates_limits_fields_and_expressions() {
        use PlacementConstraintType as C;
        use PlacementStrategyType as S;
        let strat = |t, f: Option<&str>| PlacementStrategy {
            type_: t,
            field: f.map(str::to_string),
        };
        let cons = |t, e: Option<&str>| PlacementConstraint {
            type_: t,
            expression: e.map(str::to_string),
        };
        let td = |e: &str| TaskDefinitionPlacementConstraint {
            type_: crate::api::taskdef::TaskDefinitionPlacementConstraintType::MemberOf,
            expression: e.into(),
        };

        let p = PlacementPolicy::new(
            TaskKind::Service,
            &[
                strat(S::Spread, Some("attribute:ecs.availability-zone")),
                strat(S::Spread, Some("host")),
                strat(S::Binpack, Some("memory")),
            ],
            &[
                cons(C::DistinctInstance, None),
                cons(C::MemberOf, Some("attribute:ecs.instance-type =~ t2.*")),
            ],
            &[td("attribute:ecs.os-type == linux")],
        )
        .unwrap();
        assert_eq!(
            p.strategies,
            [
                Strategy::spread_availability_zone(),
                Strategy::Spread(SpreadField::InstanceId),
                Strategy::Binpack(Resource::Memory)
            ]
        );
        assert_eq!(p.constraints.len(), 3);
        assert_eq!(
            p.constraints[2].to_string(),
            "memberOf(attribute:ecs.os-type == linux)"
        );

        // Defaults.
        let svc = PlacementPolicy::new(TaskKind::Service, &[], &[], &[]).unwrap();
        assert_eq!(svc.strategies, [Strategy::spread_availability_zone()]);
        assert_eq!(
            svc.strategies[0].to_string(),
            "spread(attribute:ecs.availability-zone)"
        );
        let run = PlacementPolicy::new(TaskKind::Standalone, &[], &[], &[]).unwrap();
        assert_eq!(run.strategies, [Strategy::Random]);

        // Limits: 5 strategies, 10 constraints with the task definition's.
        let six = vec![strat(S::Random, None); 6];
        let e = validate(&six, &[], &[]).unwrap_err();
        assert_eq!(e, PlacementConfigError::TooManyStrategies { count: 6 });
        assert_eq!(
            e.to_string(),
            "Too many placement strategies: at most 5 are allowed."
        );
        assert!(validate(&six[..5], &[], &[]).is_ok());
        let seven = vec![cons(C::DistinctInstance, None); 7];
        let four = vec![td("attribute:a exists"); 4];
        let e = validate(&[], &seven, &four).unwrap_err();
        assert_eq!(
            e.to_string(),
            "Too many placement constraints: at most 10 are allowed, counting the task definition's (7 given, 4 from the task definition)."
        );
        assert!(validate(&[], &seven, &four[..3]).is_ok());

        // Fields and expressions.
        assert_eq!(
            validate(&[strat(S::Binpack, Some("disk"))], &[], &[]),
            Err(PlacementConfigError::BinpackField)
        );
        assert_eq!(
            validate(&[strat(S::Spread, None)], &[], &[]),
            Err(PlacementConfigError::SpreadField)
        );
        assert_eq!(
            validate(&[strat(S::Spread, Some("attribute:"))], &[], &[]),
            Err(PlacementConfigError::SpreadField)
        );
        assert_eq!(
            validate(&[strat(S::Random, Some("cpu"))], &[], &[]),
            Err(PlacementConfigError::RandomField)
        );
        assert_eq!(
            validate(&[], &[cons(C::MemberOf, None)], &[]),
            Err(PlacementConfigError::MissingExpression)
        );
        assert_eq!(
            validate(&[], &[cons(C::DistinctInstance, Some("x"))], &[]),
            Err(PlacementConfigError::UnexpectedExpression)
        );
        let e = validate(&[], &[], &[td("attribute:ecs.instance-type t2.micro")]).unwrap_err();
        assert_eq!(
            e.to_string(),
            "Invalid memberOf expression 'attribute:ecs.instance-type t2.micro': expected an operator (==, !=, >, >=, <, <=, exists, !exists, in, !in, =~, !~) at column 29, found 't2.micro'"
        );
    }

    #[test]
    fn instance_state_comes_from_a_container_instance() {
        let ci = ContainerInstance {
            id: "node-1".into(),
            attributes: [("ecs.availability-zone".to_string(), "z1".to_string())].into(),
            registered_cpu: 2048,
            registered_memory: 8192,
            agent_connected: true,
            draining: false,
            registered_at: Some("2024-01-01T00:00:00Z".into()),
        };
        let mut s = InstanceState::from_container_instance(&ci);
        s.run(task("t", "service:web"), &[8080]);
        assert_eq!((s.remaining_cpu, s.remaining_memory), (1792, 7680));
        assert_eq!(s.used_ports, [8080]);
        assert!(
            Query::parse(
                "registeredAt > 2023-12-31 and runningTasksCount == 1 and task:group == service:web"
            )
            .unwrap()
            .matches(&s)
        );
    }

    #[test]
    fn scale_in_under_binpack_empties_the_emptiest_instance() {
        let mut instances = vec![
            instance("full", "z", 256, 512),
            instance("half", "z", 4096, 4096),
            instance("empty", "z", 8000, 8000),
        ];
        for (i, inst) in instances.iter_mut().enumerate() {
            inst.tasks = vec![
                task(&format!("t{i}a"), "service:web"),
                task(&format!("t{i}b"), "service:web"),
            ]
            .into();
        }
        let r = ScaleInRequest {
            group: "service:web".into(),
            count: 3,
            eligible: None,
            seed: 1,
        };
        let stop = select_tasks_to_stop(&instances, &[Strategy::Binpack(Resource::Memory)], &r);
        let on: Vec<usize> = stop.iter().map(|t| t.instance).collect();
        assert_eq!(on, [2, 2, 1]);
    }

    #[test]
    fn scale_in_under_spread_keeps_the_balance() {
        let mut instances = vec![
            instance("a", "us-east-1a", 8192, 8192),
            instance("b", "us-east-1b", 8192, 8192),
            instance("c", "us-east-1c", 8192, 8192),
        ];
        let counts = [4, 2, 3];
        for (i, inst) in instances.iter_mut().enumerate() {
            inst.tasks = std::sync::Arc::new(
                (0..counts[i])
                    .map(|j| task(&format!("t{i}{j}"), "service:web"))
                    .collect(),
            );
            std::sync::Arc::make_mut(&mut inst.tasks).push(task(&format!("o{i}"), "service:other"));
        }
        let r = ScaleInRequest {
            group: "service:web".into(),
            count: 3,
            eligible: None,
            seed: 3,
        };
        let stop = select_tasks_to_stop(&instances, &[Strategy::spread_availability_zone()], &r);
        let mut left = counts;
        for t in &stop {
            assert_eq!(&*instances[t.instance].tasks[t.task].group, "service:web");
            left[t.instance] -= 1;
        }
        assert_eq!(left, [2, 2, 2]);
        // Only eligible tasks are stopped, and never more than there are.
        let r = ScaleInRequest {
            eligible: Some(["t00".to_string(), "t10".to_string()].into()),
            count: 5,
            ..r
        };
        let stop = select_tasks_to_stop(&instances, &[Strategy::spread_availability_zone()], &r);
        assert_eq!(
            stop,
            [
                TaskRef {
                    instance: 0,
                    task: 0
                },
                TaskRef {
                    instance: 1,
                    task: 0
                }
            ]
        );
    }

    mod properties {
        use super::*;
        use proptest::prelude::*;
        // proptest's Strategy, not ours (which is `super::Strategy` here).
        use proptest::strategy::Strategy;

        const ZONES: [&str; 3] = ["us-east-1a", "us-east-1b", "us-east-1c"];
        const TYPES: [&str; 3] = ["t2.micro", "m5.large", "c5.xlarge"];

        fn arb_instance() -> impl Strategy<Value = InstanceState> {
            (
                0..3usize,
                0..3usize,
                0i64..4096,
                0i64..8192,
                proptest::collection::vec(0..3u8, 0..4),
                proptest::bool::weighted(0.9),
                proptest::bool::weighted(0.1),
                proptest::option::of(prop_oneof![Just(80u16), Just(443u16)]),
            )
                .prop_map(|(z, t, cpu, mem, groups, connected, draining, port)| {
                    InstanceState {
                        id: "".into(),
                        attributes: std::sync::Arc::new(
                            [
                                ("ecs.availability-zone".to_string(), ZONES[z].to_string()),
                                ("ecs.instance-type".to_string(), TYPES[t].to_string()),
                            ]
                            .into(),
                        ),
                        remaining_cpu: cpu,
                        remaining_memory: mem,
                        used_ports: port.into_iter().collect(),
                        agent_connected: connected,
                        draining,
                        tasks: std::sync::Arc::new(
                            groups
                                .iter()
                                .map(|g| {
                                    task(
                                        "t",
                                        ["service:web", "service:db", "family:x"][*g as usize],
                                    )
                                })
                                .collect(),
                        ),
                        ..Default::default()
                    }
                })
        }

        fn arb_instances() -> impl Strategy<Value = Vec<InstanceState>> {
            proptest::collection::vec(arb_instance(), 0..25).prop_map(|mut v| {
                for (i, inst) in v.iter_mut().enumerate() {
                    inst.id = format!("i-{i}").into();
                }
                v
            })
        }

        fn arb_strategy() -> impl Strategy<Value = super::Strategy> {
            prop_oneof![
                Just(super::Strategy::Random),
                Just(super::Strategy::Binpack(Resource::Cpu)),
                Just(super::Strategy::Binpack(Resource::Memory)),
                Just(super::Strategy::Spread(SpreadField::InstanceId)),
                Just(super::Strategy::spread_availability_zone()),
                Just(super::Strategy::Spread(SpreadField::Attribute(
                    "ecs.instance-type".into()
                ))),
            ]
        }

        fn arb_member_of() -> impl Strategy<Value = Constraint> {
            prop_oneof![
                Just("attribute:ecs.instance-type =~ m5.*"),
                Just("attribute:ecs.availability-zone in [us-east-1a, us-east-1b]"),
                Just("not(attribute:ecs.instance-type == t2.micro)"),
                Just("attribute:ecs.availability-zone != us-east-1c and attribute:ecs.instance-type != c5.xlarge"),
                Just("task:group != service:db"),
                Just("runningTasksCount <= 3"),
                Just("task:group == service:web or runningTasksCount == 0"),
            ]
            .prop_map(member_of)
        }

        fn arb_policy() -> impl Strategy<Value = PlacementPolicy> {
            (
                proptest::collection::vec(arb_strategy(), 0..=5),
                proptest::option::of(arb_member_of()),
                any::<bool>(),
            )
                .prop_map(|(strategies, member, distinct)| {
                    let mut constraints: Vec<Constraint> = member.into_iter().collect();
                    if distinct {
                        constraints.push(Constraint::DistinctInstance);
                    }
                    PlacementPolicy {
                        strategies,
                        constraints,
                    }
                })
        }

        fn arb_request() -> impl Strategy<Value = PlacementRequest> {
            (
                0..40usize,
                0i64..1024,
                0i64..2048,
                proptest::option::of(Just(80u16)),
                any::<u64>(),
            )
                .prop_map(|(count, cpu, memory, port, seed)| PlacementRequest {
                    group: "service:web".into(),
                    count,
                    cpu,
                    memory,
                    host_ports: port.into_iter().collect(),
                    seed,
                })
        }

        /// Replays a decision onto the instances, checking each placement against the state
        /// it was made in (a constraint that depends on tasks must hold when the task lands).
        fn replay(
            instances: &[InstanceState],
            policy: &PlacementPolicy,
            request: &PlacementRequest,
            outcome: &PlacementOutcome,
        ) -> Result<Vec<InstanceState>, TestCaseError> {
            let mut state = instances.to_vec();
            for (n, &i) in outcome.placed.iter().enumerate() {
                let inst = &state[i];
                prop_assert!(inst.agent_connected && !inst.draining);
                prop_assert!(
                    inst.remaining_cpu >= request.cpu,
                    "cpu over-committed on {}",
                    inst.id
                );
                prop_assert!(
                    inst.remaining_memory >= request.memory,
                    "memory over-committed on {}",
                    inst.id
                );
                prop_assert!(
                    !ports_conflict(inst, &request.host_ports),
                    "port reused on {}",
                    inst.id
                );
                for c in &policy.constraints {
                    match c {
                        Constraint::DistinctInstance => prop_assert!(
                            !inst.tasks.iter().any(|t| *t.group == *request.group),
                            "distinctInstance co-located on {}",
                            inst.id
                        ),
                        Constraint::MemberOf(q) => {
                            prop_assert!(q.matches(inst), "{} violated on {}", q, inst.id)
                        }
                    }
                }
                let t = RunningTask {
                    id: format!("new-{n}").into(),
                    group: request.group.as_str().into(),
                    cpu: request.cpu,
                    memory: request.memory,
                };
                state[i].run(t, &request.host_ports);
            }
            Ok(state)
        }

        /// Whether one more task fits on the instance: the filters and constraints alone.
        fn fits(
            inst: &InstanceState,
            policy: &PlacementPolicy,
            request: &PlacementRequest,
        ) -> bool {
            inst.agent_connected
                && !inst.draining
                && inst.remaining_cpu >= request.cpu
                && inst.remaining_memory >= request.memory
                && !ports_conflict(inst, &request.host_ports)
                && policy.constraints.iter().all(|c| match c {
                    Constraint::DistinctInstance => {
                        !inst.tasks.iter().any(|t| *t.group == *request.group)
                    }
                    Constraint::MemberOf(q) => q.matches(inst),
                })
        }

        proptest! {
            /// No strategy over-commits cpu, memory or ports, or breaks a constraint
            /// (distinctInstance never co-locates, memberOf always holds); and placement
            /// stops short only when nothing fits any more.
            #[test]
            fn placement_respects_resources_and_constraints(
                instances in arb_instances(),
                policy in arb_policy(),
                request in arb_request(),
            ) {
                let outcome = place(&instances, &policy, &request);
                prop_assert!(outcome.placed.len() <= request.count);
                let state = replay(&instances, &policy, &request, &outcome)?;
                if outcome.placed.len() < request.count {
                    let failure = outcome.failure.as_ref().expect("a failure says why");
                    prop_assert!(!state.iter().any(|i| fits(i, &policy, &request)),
                        "stopped short though something fits: {failure:?}");
                    if let Some(id) = &failure.closest {
                        prop_assert!(state.iter().any(|i| *i.id == **id));
                    }
                } else {
                    prop_assert!(outcome.failure.is_none());
                }
            }

            /// Binpack packs: the chosen instance has the least remaining of the resource
            /// among those that fit.
            #[test]
            fn binpack_picks_the_least_remaining_that_fits(
                instances in arb_instances(),
                request in arb_request(),
                cpu in any::<bool>(),
            ) {
                let resource = if cpu { Resource::Cpu } else { Resource::Memory };
                let policy = PlacementPolicy { strategies: vec![super::Strategy::Binpack(resource)], constraints: vec![] };
                let request = PlacementRequest { count: 1, ..request };
                let outcome = place(&instances, &policy, &request);
                let remaining = |i: &InstanceState| if cpu { i.remaining_cpu } else { i.remaining_memory };
                if let Some(&chosen) = outcome.placed.first() {
                    let least = instances.iter().filter(|i| fits(i, &policy, &request)).map(remaining).min();
                    prop_assert_eq!(Some(remaining(&instances[chosen])), least);
                }
            }

            /// With room everywhere, spread keeps the zones within one task of each other.
            #[test]
            fn spread_stays_balanced_when_capacity_allows(
                per_zone in proptest::collection::vec(1..6usize, 3),
                count in 0..60usize,
                seed in any::<u64>(),
                then_binpack in any::<bool>(),
            ) {
                let mut instances = Vec::new();
                for (z, n) in per_zone.iter().enumerate() {
                    for k in 0..*n {
                        instances.push(instance(&format!("{z}-{k}"), ZONES[z], 1 << 20, 1 << 20));
                    }
                }
                let mut strategies = vec![super::Strategy::spread_availability_zone()];
                if then_binpack {
                    strategies.push(super::Strategy::Binpack(Resource::Memory));
                }
                let policy = PlacementPolicy { strategies, constraints: vec![] };
                let outcome = place(&instances, &policy, &PlacementRequest { count, seed, ..request(count) });
                prop_assert_eq!(outcome.placed.len(), count);
                let mut per = [0usize; 3];
                for &i in &outcome.placed {
                    let z = ZONES.iter().position(|z| *z == instances[i].attributes["ecs.availability-zone"]).unwrap();
                    per[z] += 1;
                }
                prop_assert!(per.iter().max().unwrap() - per.iter().min().unwrap() <= 1, "{per:?}");
            }

            /// Scale-in under spread from a balanced service stays balanced.
            #[test]
            fn spread_scale_in_stays_balanced(
                running in 0..10usize,
                stop in 0..30usize,
                seed in any::<u64>(),
            ) {
                let mut instances: Vec<_> = ZONES.iter().map(|z| instance(z, z, 8192, 8192)).collect();
                for inst in &mut instances {
                    inst.tasks = std::sync::Arc::new((0..running).map(|j| task(&format!("{}-{j}", inst.id), "service:web")).collect());
                }
                let r = ScaleInRequest { group: "service:web".into(), count: stop, eligible: None, seed };
                let stopped = select_tasks_to_stop(&instances, &[super::Strategy::spread_availability_zone()], &r);
                prop_assert_eq!(stopped.len(), stop.min(3 * running));
                let unique: BTreeSet<_> = stopped.iter().collect();
                prop_assert_eq!(unique.len(), stopped.len());
                let mut left = [running; 3];
                for t in &stopped {
                    left[t.instance] -= 1;
                }
                prop_assert!(left.iter().max().unwrap() - left.iter().min().unwrap() <= 1, "{left:?}");
            }
        }
    }
}
