//! The ECS and ECR wire APIs (`kubecs api`): what the aws CLI, boto3 and the SDKs speak
//! (JSON 1.1 over `POST /`, signed with SigV4), served over the Kubernetes objects.
//!
//! - The CRDs stay the only source of truth: every operation reads and writes EcsCluster,
//!   TaskDefinition, Service, Task, Repository, Pods and Nodes, so what is done here shows in
//!   `kubectl`, and the reverse.
//! - Every call acts on the API server *as the caller* (impersonation of the identity its
//!   access key stands for), so Kubernetes RBAC decides; the API's own credentials only read
//!   access keys and carry the right to impersonate.
//! - Image operations of ECR go to the registry over its OCI API with the caller's own
//!   registry token, so repository policies are enforced in one place.
//!
//! It is its own process (and Deployment) rather than a listener of the operator or the
//! registry: it is the only component that holds the `impersonate` right, and a compromise of
//! it never carries the operator's powers.

pub mod caller;
pub mod ecr;
pub mod ecs;
pub mod error;
pub mod keys;
pub mod page;
pub mod registry;
pub mod server;
pub mod sigv4;
pub mod time;

use serde::de::DeserializeOwned;

pub use caller::Caller;
pub use error::AwsError;

/// The content type of both protocols.
pub const JSON_1_1: &str = "application/x-amz-json-1.1";
/// `X-Amz-Target` prefixes.
pub const ECS_TARGET: &str = "AmazonEC2ContainerServiceV20141113";
pub const ECR_TARGET: &str = "AmazonEC2ContainerRegistry_V20150921";

/// Which API a request is for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Service {
    Ecs,
    Ecr,
}

impl Service {
    /// The prefix of its IAM actions (`ecs:CreateService`).
    pub fn action_prefix(self) -> &'static str {
        match self {
            Service::Ecs => "ecs",
            Service::Ecr => "ecr",
        }
    }
}

/// `AmazonEC2ContainerServiceV20141113.CreateCluster` -> (ECS, `CreateCluster`).
pub fn parse_target(target: &str) -> Result<(Service, &str), AwsError> {
    match target.split_once('.') {
        Some((ECS_TARGET, op)) if !op.is_empty() => Ok((Service::Ecs, op)),
        Some((ECR_TARGET, op)) if !op.is_empty() => Ok((Service::Ecr, op)),
        _ => Err(AwsError::unknown_operation(if target.is_empty() {
            "(no X-Amz-Target)"
        } else {
            target
        })),
    }
}

/// An operation's input; an empty body is `{}`.
pub fn input<T: DeserializeOwned>(body: &[u8]) -> Result<T, AwsError> {
    let body = if body.iter().all(u8::is_ascii_whitespace) {
        b"{}".as_slice()
    } else {
        body
    };
    serde_json::from_slice(body).map_err(AwsError::serialization)
}

/// Drops absent optional members: AWS omits them rather than sending null.
pub fn strip_nulls(v: serde_json::Value) -> serde_json::Value {
    use serde_json::Value;
    match v {
        Value::Object(m) => Value::Object(
            m.into_iter()
                .filter(|(_, v)| !v.is_null())
                .map(|(k, v)| (k, strip_nulls(v)))
                .collect(),
        ),
        Value::Array(a) => Value::Array(a.into_iter().map(strip_nulls).collect()),
        v => v,
    }
}

/// Dispatches `$op` to the first matching `"Name" => handler`: each handler takes the caller
/// and its typed input and returns its output.
#[macro_export]
macro_rules! aws_operations {
    ($caller:expr, $op:expr, $body:expr, { $($name:literal => $handler:path),* $(,)? }) => {
        match $op {
            $($name => {
                let input = $crate::aws::input($body)?;
                let output = $handler($caller, input).await?;
                Ok($crate::aws::strip_nulls(
                    serde_json::to_value(output).map_err($crate::aws::AwsError::serialization)?,
                ))
            })*
            other => Err($crate::aws::AwsError::unknown_operation(other)),
        }
    };
}

/// The operations served, for coverage reports: (ECS, ECR).
pub fn served_operations() -> (&'static [&'static str], &'static [&'static str]) {
    (ecs::OPERATIONS, ecr::OPERATIONS)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn targets_name_the_service_and_operation() {
        assert_eq!(
            parse_target("AmazonEC2ContainerServiceV20141113.CreateCluster").unwrap(),
            (Service::Ecs, "CreateCluster")
        );
        assert_eq!(
            parse_target("AmazonEC2ContainerRegistry_V20150921.GetAuthorizationToken").unwrap(),
            (Service::Ecr, "GetAuthorizationToken")
        );
        for bad in [
            "",
            "Foo.Bar",
            "AmazonEC2ContainerServiceV20141113.",
            "CreateCluster",
        ] {
            assert_eq!(
                parse_target(bad).unwrap_err().code,
                "UnknownOperationException"
            );
        }
    }

    #[test]
    fn empty_bodies_are_empty_inputs() {
        let v: serde_json::Value = input(b"").unwrap();
        assert_eq!(v, serde_json::json!({}));
        assert_eq!(
            input::<serde_json::Value>(b"{").unwrap_err().code,
            "SerializationException"
        );
    }
}
