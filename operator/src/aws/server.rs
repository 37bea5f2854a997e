//! The HTTP side of the AWS API: one `POST /` per call, the operation named by
//! `X-Amz-Target`, the caller proven by SigV4, then dispatched to ECS or ECR as that caller.

use std::sync::Arc;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use k8s_openapi::jiff::Timestamp;
use serde_json::Value;

use super::caller::{Caller, Impersonator};
use super::error::AwsError;
use super::keys::KeyStore;
use super::registry::RegistryLink;
use super::{JSON_1_1, Service, ecr, ecs, sigv4};

/// The largest request body: ECR's PutImage carries a manifest of up to 4 MiB.
pub const MAX_BODY_BYTES: usize = 5 * 1024 * 1024;

/// What every request needs.
pub struct ApiState {
    pub keys: KeyStore,
    pub impersonator: Impersonator,
    /// The registry ECR calls reach, when one is configured.
    pub registry: Option<RegistryLink>,
}

pub fn router(state: Arc<ApiState>) -> Router {
    Router::new()
        .route("/", post(handle))
        .route("/ready", get(|| async { "ok" }))
        .layer(DefaultBodyLimit::max(MAX_BODY_BYTES))
        .with_state(state)
}

async fn handle(
    State(s): State<Arc<ApiState>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let target = headers
        .get("x-amz-target")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_string();
    let result = answer(&s, &method, &uri, &headers, &body, &target).await;
    let request_id = request_id();
    let mut response = match result {
        Ok((user, value)) => {
            tracing::info!(%target, %user, "served");
            let mut r = (StatusCode::OK, value.to_string()).into_response();
            r.headers_mut()
                .insert(header::CONTENT_TYPE, HeaderValue::from_static(JSON_1_1));
            r
        }
        Err(e) => {
            tracing::info!(%target, code = e.code, message = %e.message, "refused");
            e.into_response()
        }
    };
    if let Ok(v) = HeaderValue::from_str(&request_id) {
        response.headers_mut().insert("x-amzn-requestid", v);
    }
    response
}

async fn answer(
    s: &ApiState,
    method: &Method,
    uri: &Uri,
    headers: &HeaderMap,
    body: &[u8],
    target: &str,
) -> Result<(String, Value), AwsError> {
    let (service, op) = super::parse_target(target)?;
    let auth = sigv4::authorization(headers)?;
    let signed = sigv4::SignedRequest {
        method: method.as_str(),
        path: uri.path(),
        query: uri.query().unwrap_or_default(),
        headers,
        body,
    };
    sigv4::request_time(&signed, &auth, Timestamp::now())?;
    let key = s
        .keys
        .lookup(&auth.access_key_id)
        .await
        .map_err(|e| AwsError::server(format!("cannot read access keys: {e}")))?
        .ok_or_else(AwsError::unrecognized_client)?;
    sigv4::verify(&signed, &auth, &key.secret)?;
    let client = s.impersonator.client_for(&key.principal)?;
    let caller = Caller {
        action: format!("{}:{op}", service.action_prefix()),
        client,
        key,
    };
    let value = match service {
        Service::Ecs => ecs::call(&caller, op, body).await?,
        Service::Ecr => ecr::call(&caller, s.registry.as_ref(), op, body).await?,
    };
    Ok((caller.key.principal.username, value))
}

/// A request id for `x-amzn-RequestId`, shaped like AWS's (a UUID v4).
fn request_id() -> String {
    let mut b = [0u8; 16];
    getrandom::fill(&mut b).expect("the OS provides randomness");
    b[6] = (b[6] & 0x0f) | 0x40;
    b[8] = (b[8] & 0x3f) | 0x80;
    let h: String = b.iter().map(|x| format!("{x:02x}")).collect();
    format!(
        "{}-{}-{}-{}-{}",
        &h[0..8],
        &h[8..12],
        &h[12..16],
        &h[16..20],
        &h[20..32]
    )
}
