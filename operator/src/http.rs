//! The one outbound HTTP client of the process (hyper-util over rustls, native roots, HTTP or
//! HTTPS), shared by the API's registry calls, `kubecs login-password` and the operator's
//! image digest resolution, so each keeps one connection pool and one TLS setup; the
//! registry's replication streams blobs through a second pool of the same setup.

use std::sync::OnceLock;
use std::time::Duration;

use axum::http::{HeaderMap, Request, Response, StatusCode};
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;

pub type HttpClient = Client<hyper_rustls::HttpsConnector<HttpConnector>, Full<Bytes>>;

/// The shared client, or why TLS could not be set up.
pub fn client() -> Result<&'static HttpClient, String> {
    static CLIENT: OnceLock<Result<HttpClient, String>> = OnceLock::new();
    CLIENT
        .get_or_init(|| Ok(Client::builder(TokioExecutor::new()).build(connector()?)))
        .as_ref()
        .map_err(Clone::clone)
}

/// A request body that streams (a blob the registry's replication copies).
pub type StreamBody = http_body_util::combinators::UnsyncBoxBody<Bytes, std::io::Error>;

pub type StreamingClient = Client<hyper_rustls::HttpsConnector<HttpConnector>, StreamBody>;

/// The client for streamed request bodies: the same TLS setup, a pool of its own (hyper's
/// pool is typed by the body).
pub fn streaming_client() -> Result<&'static StreamingClient, String> {
    static CLIENT: OnceLock<Result<StreamingClient, String>> = OnceLock::new();
    CLIENT
        .get_or_init(|| Ok(Client::builder(TokioExecutor::new()).build(connector()?)))
        .as_ref()
        .map_err(Clone::clone)
}

fn connector() -> Result<hyper_rustls::HttpsConnector<HttpConnector>, String> {
    Ok(hyper_rustls::HttpsConnectorBuilder::new()
        .with_provider_and_native_roots(rustls::crypto::ring::default_provider())
        .map_err(|e| format!("TLS roots: {e}"))?
        .https_or_http()
        .enable_http1()
        .build())
}

/// An answer read to its end.
#[derive(Debug)]
pub struct Answer {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: Bytes,
}

/// Why a request got no answer, worded for the peer named `what` ("the registry").
#[derive(Debug, thiserror::Error)]
pub enum SendError {
    #[error("cannot reach {what}: {detail}")]
    Unreachable { what: String, detail: String },
    #[error("{what} did not answer in time ({url})")]
    Timeout { what: String, url: String },
    #[error("{what}'s answer stalled ({url})")]
    Stalled { what: String, url: String },
}

/// Sends `req` and waits, within `timeout`, for the answer's head; its body streams.
pub async fn open(
    req: Request<Full<Bytes>>,
    what: &str,
    timeout: Duration,
) -> Result<Response<Incoming>, SendError> {
    let url = req.uri().to_string();
    let c = client().map_err(|detail| SendError::Unreachable {
        what: what.into(),
        detail,
    })?;
    tokio::time::timeout(timeout, c.request(req))
        .await
        .map_err(|_| SendError::Timeout {
            what: what.into(),
            url: url.clone(),
        })?
        .map_err(|e| SendError::Unreachable {
            what: what.into(),
            detail: format!("{url}: {e}"),
        })
}

/// Sends `req` and reads the whole answer, each half within `timeout`.
pub async fn send(
    req: Request<Full<Bytes>>,
    what: &str,
    timeout: Duration,
) -> Result<Answer, SendError> {
    let url = req.uri().to_string();
    let (parts, body) = open(req, what, timeout).await?.into_parts();
    let body = tokio::time::timeout(timeout, body.collect())
        .await
        .map_err(|_| SendError::Stalled {
            what: what.into(),
            url: url.clone(),
        })?
        .map_err(|e| SendError::Unreachable {
            what: what.into(),
            detail: format!("{url}: the answer broke off: {e}"),
        })?
        .to_bytes();
    Ok(Answer {
        status: parts.status,
        headers: parts.headers,
        body,
    })
}
