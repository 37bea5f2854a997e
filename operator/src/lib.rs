//! kubecs: Amazon ECS and ECR semantics on any Kubernetes cluster.
//!
//! The pure decision modules (`api`, `taskdef`, `placement`, `deploy`, `ecr`) never talk to
//! the API server; `controllers` reads the stores, plans with them, applies and reports, and
//! `registry` serves the OCI distribution API over its storage backends. `cli` is the command
//! line (one module per subcommand) and `lease` the leader election both long-running commands
//! use. operator/ARCHITECTURE.md draws the data flow.

// kube's `#[kube(printcolumn(...))]` repeats keys like `type_` across columns, which
// clippy's duplicated_attributes lint misreads as duplicates.
#![allow(clippy::duplicated_attributes)]

pub mod api;
pub mod arn;
pub mod aws;
pub mod challenge;
pub mod cli;
pub mod controllers;
pub mod deploy;
pub mod ecr;
pub mod http;
pub mod lease;
pub mod login;
pub mod metrics;
pub mod placement;
pub mod registry;
pub mod taskdef;
