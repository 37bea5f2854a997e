//! kubecs: Amazon ECS and ECR semantics on any Kubernetes cluster.
//!
//! The pure decision modules (`api`, `taskdef`, `placement`, `ecr`, and later `deploy`)
//! never talk to the API server; `controllers` reads, plans with them, applies and reports.

// kube's `#[kube(printcolumn(...))]` repeats keys like `type_` across columns, which
// clippy's duplicated_attributes lint misreads as duplicates.
#![allow(clippy::duplicated_attributes)]

pub mod api;
pub mod arn;
pub mod controllers;
pub mod deploy;
pub mod ecr;
pub mod login;
pub mod metrics;
pub mod placement;
pub mod registry;
pub mod taskdef;
