//! ECS task placement: container instances (claimed Nodes) and, in later modules, the
//! strategies, constraints and cluster query language. Pure: no Kubernetes I/O.

pub mod instance;
pub mod quantity;

pub use instance::{ClaimPlan, ContainerInstance, NodeView, plan_claims};
