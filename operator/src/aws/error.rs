//! AWS's JSON 1.1 error shape: `{"__type": "ClusterNotFoundException", "message": "..."}` with
//! an HTTP 4xx/5xx, from which botocore raises the exception class of that name.

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::json;

/// An error answered in AWS's shape.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AwsError {
    pub status: StatusCode,
    /// The exception name botocore maps to a class.
    pub code: &'static str,
    pub message: String,
}

impl std::fmt::Display for AwsError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.code, self.message)
    }
}

impl AwsError {
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        Self {
            status,
            code,
            message: message.into(),
        }
    }

    /// A 400 with `code`: how both services answer a refused input.
    pub fn bad(code: &'static str, message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, code, message)
    }

    pub fn client(message: impl Into<String>) -> Self {
        Self::bad("ClientException", message)
    }

    pub fn invalid_parameter(message: impl Into<String>) -> Self {
        Self::bad("InvalidParameterException", message)
    }

    pub fn cluster_not_found() -> Self {
        Self::bad("ClusterNotFoundException", "Cluster not found.")
    }

    pub fn service_not_found() -> Self {
        Self::bad("ServiceNotFoundException", "Service not found.")
    }

    pub fn server(message: impl Into<String>) -> Self {
        Self::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "ServerException",
            message,
        )
    }

    pub fn access_denied(message: impl Into<String>) -> Self {
        Self::bad("AccessDeniedException", message)
    }

    /// No `Authorization` header (API Gateway's and the AWS front door's words).
    pub fn missing_authentication() -> Self {
        Self::new(
            StatusCode::FORBIDDEN,
            "MissingAuthenticationTokenException",
            "Missing Authentication Token",
        )
    }

    pub fn incomplete_signature(message: &str) -> Self {
        Self::bad("IncompleteSignatureException", message)
    }

    pub fn invalid_signature(message: String) -> Self {
        Self::bad("InvalidSignatureException", message)
    }

    /// An access key id no Secret holds.
    pub fn unrecognized_client() -> Self {
        Self::bad(
            "UnrecognizedClientException",
            "The security token included in the request is invalid.",
        )
    }

    pub fn unknown_operation(target: &str) -> Self {
        Self::bad(
            "UnknownOperationException",
            format!("The operation {target} is not supported by kubecs."),
        )
    }

    /// A body that is not the operation's JSON input.
    pub fn serialization(message: impl std::fmt::Display) -> Self {
        Self::bad("SerializationException", message.to_string())
    }
}

impl IntoResponse for AwsError {
    fn into_response(self) -> Response {
        let body = json!({ "__type": self.code, "message": self.message }).to_string();
        let mut r = (self.status, body).into_response();
        r.headers_mut().insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static(super::JSON_1_1),
        );
        r
    }
}
