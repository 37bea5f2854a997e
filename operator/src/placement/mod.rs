//! ECS task placement: container instances (claimed Nodes), the cluster query language of
//! `memberOf` constraints, and the engine that applies strategies and constraints. Pure: no
//! Kubernetes I/O, so all of it is unit-, property-tested and benchmarked on plain data.

pub mod capacity;
pub mod engine;
pub mod instance;
pub mod quantity;
pub mod query;

pub use engine::{
    Constraint, InstanceState, PlacementConfigError, PlacementFailure, PlacementOutcome,
    PlacementPolicy, PlacementRequest, Resource, RunningTask, ScaleInRequest, Shortfall,
    SpreadField, Strategy, TaskKind, TaskRef, daemon_instances, place, select_tasks_to_stop,
    validate,
};
pub use instance::{ClaimPlan, ContainerInstance, NodeView, plan_claims};
pub use query::{InstanceFacts, Query, QueryError};
