//! GetAuthorizationToken: the caller's own registry token (what `aws ecr get-login-password`
//! prints), signed with the registry's key for the identity the access key stands for; never
//! a token of the API's.

use std::time::SystemTime;

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use serde_json::{Value, json};

use super::Ecr;
use crate::aws::AwsError;
use crate::aws::registry::RegistryLink;
use crate::registry::auth::{TOKEN_LIFETIME, TOKEN_USERNAME};

/// `https://HOST` of the registry, `http://` when the API reaches it over plain HTTP.
pub fn proxy_endpoint(link: &RegistryLink) -> String {
    let scheme = if link.url.starts_with("http://") {
        "http"
    } else {
        "https"
    };
    format!("{scheme}://{}", link.public_host.trim_end_matches('/'))
}

/// ECR's `authorizationData` for `token`, issued at `now`.
pub fn authorization_data(link: &RegistryLink, token: &str, now: SystemTime) -> Value {
    let expires = (now + TOKEN_LIFETIME)
        .duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs() as f64);
    json!({
        "authorizationToken": STANDARD.encode(format!("{TOKEN_USERNAME}:{token}")),
        "expiresAt": expires,
        "proxyEndpoint": proxy_endpoint(link),
    })
}

/// The registry a call needs, or ECR's ServerException saying none is configured.
pub fn registry<'a>(e: &Ecr<'a>) -> Result<&'a RegistryLink, AwsError> {
    e.registry.ok_or_else(|| {
        AwsError::server(
            "kubecs api has no registry configured (--registry-url and --registry-token-key-file)",
        )
    })
}

pub async fn get_authorization_token(e: &Ecr<'_>, _i: Value) -> Result<Value, AwsError> {
    let link = registry(e)?;
    let now = SystemTime::now();
    // Issued at a whole second, so expiresAt is exactly the token's `exp`.
    let now = SystemTime::UNIX_EPOCH
        + std::time::Duration::from_secs(
            now.duration_since(SystemTime::UNIX_EPOCH)
                .map_or(0, |d| d.as_secs()),
        );
    let token = link.token(&e.c.key.principal, now);
    Ok(json!({ "authorizationData": [authorization_data(link, &token, now)] }))
}
