//! The ECR API (`AmazonEC2ContainerRegistry_V20150921`): repositories are Repository objects;
//! images live in the registry and are reached through its OCI API as the caller.

use serde_json::Value;

use super::registry::RegistryLink;
use super::{AwsError, Caller};

/// The operations served.
pub const OPERATIONS: &[&str] = &[];

pub async fn call(
    _c: &Caller,
    _registry: Option<&RegistryLink>,
    op: &str,
    _body: &[u8],
) -> Result<Value, AwsError> {
    Err(AwsError::unknown_operation(op))
}
