//! Requests to the registry *as the caller*: each carries the caller's own registry token
//! (`Basic AWS:<token>`, minted with the registry's key), so the registry's repository
//! policies decide image operations exactly as they do for `docker pull` and `docker push`.
//! The HTTP client is the process's one (`crate::http`), shared by every call.

use std::time::{Duration, SystemTime};

use axum::http::{HeaderMap, Method, StatusCode, header};
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use bytes::Bytes;
use http_body_util::Full;

use crate::aws::registry::RegistryLink;
use crate::aws::{AwsError, Caller};
use crate::registry::auth::TOKEN_USERNAME;

/// How long one registry request may take (a 4 MiB manifest included).
const TIMEOUT: Duration = Duration::from_secs(30);

/// A registry answer.
#[derive(Debug)]
pub struct Reply {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: Bytes,
}

impl Reply {
    pub fn ok(&self) -> bool {
        self.status.is_success()
    }

    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    fn first_error(&self) -> Option<serde_json::Value> {
        let v: serde_json::Value = serde_json::from_slice(&self.body).ok()?;
        v.get("errors")?.get(0).cloned()
    }

    /// The distribution spec's error code (`MANIFEST_UNKNOWN`...).
    pub fn code(&self) -> Option<String> {
        self.first_error()?
            .get("code")?
            .as_str()
            .map(str::to_string)
    }

    pub fn message(&self) -> Option<String> {
        self.first_error()?
            .get("message")?
            .as_str()
            .map(str::to_string)
    }
}

/// What every operation says of a refusal that is not its own: the registry's 403 is
/// AccessDeniedException in its (IAM's) words; NAME_UNKNOWN is RepositoryNotFoundException
/// (the registry words it as ECR); a refused token means the API and the registry do not
/// share a token key.
pub fn common_error(reply: &Reply) -> Option<AwsError> {
    // A HEAD's refusal has no body.
    let message = reply
        .message()
        .unwrap_or_else(|| "Access denied by the registry".to_string());
    match (reply.status, reply.code().as_deref()) {
        (StatusCode::FORBIDDEN, _) => Some(AwsError::access_denied(message)),
        (_, Some("NAME_UNKNOWN")) => Some(AwsError::bad("RepositoryNotFoundException", message)),
        (StatusCode::UNAUTHORIZED, _) => Some(AwsError::server(
            "the registry refused the caller's token: the API's --registry-token-key-file is not the registry's key",
        )),
        (StatusCode::TOO_MANY_REQUESTS, _) => Some(AwsError::bad("ThrottlingException", message)),
        _ => None,
    }
}

/// Any answer that is neither a success nor a refusal an operation handles.
pub fn unexpected(reply: &Reply) -> AwsError {
    common_error(reply).unwrap_or_else(|| {
        AwsError::server(format!(
            "the registry answered {}: {}",
            reply.status,
            reply.message().unwrap_or_default()
        ))
    })
}

/// Requests as one caller.
pub struct RegistryClient<'a> {
    link: &'a RegistryLink,
    authorization: String,
}

impl<'a> RegistryClient<'a> {
    pub fn new(link: &'a RegistryLink, c: &Caller) -> Self {
        let token = link.token(&c.key.principal, SystemTime::now());
        Self {
            link,
            authorization: format!(
                "Basic {}",
                STANDARD.encode(format!("{TOKEN_USERNAME}:{token}"))
            ),
        }
    }

    /// `method` on `path` (from `/v2/...`) with `headers` and `body`.
    pub async fn send(
        &self,
        method: Method,
        path: &str,
        headers: &[(&str, &str)],
        body: Vec<u8>,
    ) -> Result<Reply, AwsError> {
        let url = format!("{}{path}", self.link.url);
        let mut b = axum::http::Request::builder()
            .method(method)
            .uri(&url)
            .header(header::AUTHORIZATION, &self.authorization)
            .header(header::CONTENT_LENGTH, body.len());
        for (k, v) in headers {
            b = b.header(*k, *v);
        }
        let req = b
            .body(Full::new(Bytes::from(body)))
            .map_err(|e| AwsError::server(format!("{url}: {e}")))?;
        let answer = crate::http::send(req, "the registry", TIMEOUT)
            .await
            .map_err(|e| AwsError::server(e.to_string()))?;
        Ok(Reply {
            status: answer.status,
            headers: answer.headers,
            body: answer.body,
        })
    }

    /// A request without a body (GET, HEAD, DELETE).
    pub async fn bodiless(&self, method: Method, path: &str) -> Result<Reply, AwsError> {
        self.send(method, path, &[], Vec::new()).await
    }

    /// Whether the registry knows repository `name`: any answer to a one-tag listing but
    /// NAME_UNKNOWN (even a refusal: policies only apply to known repositories).
    pub async fn repository_known(&self, name: &str) -> Result<bool, AwsError> {
        let reply = self
            .bodiless(Method::GET, &format!("/v2/{name}/tags/list?n=1"))
            .await?;
        Ok(reply.code().as_deref() != Some("NAME_UNKNOWN"))
    }
}
