//! Types shared by several ECS/ECR resources: tags, key-value pairs, placement, conditions.

use kube::KubeSchema;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

pub use k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition;

/// A metadata tag, as in every ECS and ECR API (`key`/`value`).
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
pub struct Tag {
    /// One part of a key-value pair that make up a tag. Up to 128 characters.
    #[schemars(length(min = 1, max = 128))]
    pub key: String,
    /// The optional part of a key-value pair that make up a tag. Up to 256 characters.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 256))]
    pub value: Option<String>,
}

/// A name-value pair (environment variables, proxy properties, system controls).
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
pub struct KeyValuePair {
    /// The name of the key-value pair. For environment variables, the name of the variable.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// The value of the key-value pair. For environment variables, the value of the variable.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub value: Option<String>,
}

/// The kind of a placement constraint.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, JsonSchema)]
pub enum PlacementConstraintType {
    /// Place each task on a different container instance.
    #[serde(rename = "distinctInstance")]
    DistinctInstance,
    /// Place tasks on container instances that satisfy the cluster query language expression.
    #[serde(rename = "memberOf")]
    MemberOf,
}

/// A placement constraint for a service or a RunTask (ECS `PlacementConstraint`).
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, KubeSchema)]
#[x_kube(validation = Rule::new("self.type != 'memberOf' || (has(self.expression) && self.expression != '')").message("A memberOf placement constraint requires an expression."))]
#[x_kube(validation = Rule::new("self.type != 'distinctInstance' || !has(self.expression)").message("A distinctInstance placement constraint takes no expression."))]
pub struct PlacementConstraint {
    /// The type of constraint: `distinctInstance` ensures that each task in a group runs on a
    /// different container instance; `memberOf` restricts selection to the container instances
    /// that satisfy `expression`.
    #[serde(rename = "type")]
    pub type_: PlacementConstraintType,
    /// A cluster query language expression, e.g. `attribute:ecs.instance-type =~ t2.*` or
    /// `attribute:ecs.availability-zone in [us-east-1a, us-east-1b]`. Up to 2000 characters.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 2000))]
    pub expression: Option<String>,
}

/// The kind of a placement strategy.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, JsonSchema)]
pub enum PlacementStrategyType {
    /// Place tasks randomly.
    #[serde(rename = "random")]
    Random,
    /// Place tasks evenly across the values of `field`.
    #[serde(rename = "spread")]
    Spread,
    /// Place tasks on the instances with the least available amount of `field` (cpu or memory).
    #[serde(rename = "binpack")]
    Binpack,
}

/// A task placement strategy (ECS `PlacementStrategy`). Strategies apply in order, each one a
/// tie-breaker for the one before it.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, KubeSchema)]
#[x_kube(validation = Rule::new("self.type != 'binpack' || (has(self.field) && self.field in ['cpu', 'memory'])").message("The binpack placement strategy requires field 'cpu' or 'memory'."))]
#[x_kube(validation = Rule::new("self.type != 'spread' || (has(self.field) && (self.field in ['instanceId', 'host'] || self.field.startsWith('attribute:')))").message("The spread placement strategy requires field 'instanceId', 'host' or 'attribute:NAME'."))]
#[x_kube(validation = Rule::new("self.type != 'random' || !has(self.field)").message("The random placement strategy takes no field."))]
pub struct PlacementStrategy {
    /// The type of placement strategy: `random`, `spread` or `binpack`.
    #[serde(rename = "type")]
    pub type_: PlacementStrategyType,
    /// The field to apply the strategy against. For `spread`: `instanceId` (or `host`), or any
    /// attribute such as `attribute:ecs.availability-zone`. For `binpack`: `cpu` or `memory`.
    /// Not used with `random`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 255))]
    pub field: Option<String>,
}

/// How ECS launches tasks.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum LaunchType {
    /// kubecs places each task on a container instance (a Node claimed by the cluster) with the
    /// ECS placement strategies and constraints, and binds the pod to it.
    Ec2,
    /// Tasks are left to kube-scheduler, spread across zones; task-level cpu and memory must be
    /// a valid Fargate size.
    Fargate,
    /// Accepted for compatibility; treated like EC2.
    External,
    /// Accepted for compatibility; treated like EC2.
    ManagedInstances,
}

/// One capacity provider in a capacity provider strategy.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
pub struct CapacityProviderStrategyItem {
    /// The short name of the capacity provider (`FARGATE`, `FARGATE_SPOT`, or one of the
    /// cluster's capacity providers).
    #[serde(rename = "capacityProvider")]
    #[schemars(length(min = 1, max = 255))]
    pub capacity_provider: String,
    /// The relative share of tasks placed with this provider once `base` is satisfied (0-1000).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0, max = 1000))]
    pub weight: Option<i32>,
    /// How many tasks, at least, use this provider (0-100000). Only one provider may set a base.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0, max = 100000))]
    pub base: Option<i32>,
}

/// The VPC subnets and security groups of an `awsvpc` task. Accepted for compatibility: in
/// kubecs every task gets its own pod network namespace, as `awsvpc` would.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct AwsVpcConfiguration {
    /// The subnets (accepted, not used by Kubernetes networking).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub subnets: Vec<String>,
    /// The security groups (accepted, not used by Kubernetes networking).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub security_groups: Vec<String>,
    /// ENABLED or DISABLED (accepted, not used).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub assign_public_ip: Option<EnabledDisabled>,
}

/// The network configuration of a service or task.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct NetworkConfiguration {
    /// The VPC subnets and security groups of the task's elastic network interface.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub awsvpc_configuration: Option<AwsVpcConfiguration>,
}

/// ENABLED or DISABLED, as ECS spells its switches.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum EnabledDisabled {
    Enabled,
    Disabled,
}

/// Which tags propagate to tasks.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum PropagateTags {
    TaskDefinition,
    Service,
    None,
}

/// Condition types used across kubecs resources.
pub mod condition {
    /// The resource is reconciled and serving what its spec asks for.
    pub const READY: &str = "Ready";
    /// A change is being rolled out.
    pub const PROGRESSING: &str = "Progressing";
    /// Something is wrong that the user must act on; the message says what.
    pub const DEGRADED: &str = "Degraded";
}
