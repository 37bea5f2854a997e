//! `kubecs login-password`: like `aws ecr get-login-password`, prints a registry token for the
//! caller's kubeconfig identity. Nothing is trusted on the client side: the kubeconfig's bearer
//! token is sent to the registry's `POST /kubecs/v1/token`, the registry checks it with a
//! TokenReview and signs a 12-hour token for the identity the API server names.
//!
//! A kubeconfig identity with no bearer token (client certificates, exec plugins) cannot be
//! presented to the registry: the error says so and how to get a token instead.

use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use http_body_util::Full;
use kube::config::{AuthInfo, KubeConfigOptions, Kubeconfig};

use crate::registry::auth::TOKEN_USERNAME;
use crate::registry::handlers::TOKEN_PATH;

#[derive(Debug, thiserror::Error)]
pub enum LoginError {
    #[error("cannot read the kubeconfig: {0}")]
    Kubeconfig(String),
    #[error(
        "the kubeconfig user '{0}' has no bearer token (it authenticates with {1}), and the \
         registry can only verify bearer tokens. Use a ServiceAccount token instead, e.g. \
         `kubectl create token SERVICEACCOUNT -n NAMESPACE` as the password of \
         `docker login -u AWS`, or a kubeconfig whose user has `token:`"
    )]
    NoBearerToken(String, &'static str),
    #[error("invalid registry URL '{0}': {1}")]
    Url(String, String),
    #[error("cannot reach the registry: {0}")]
    Http(String),
    #[error("the registry refused the token request ({status}): {body}")]
    Refused { status: u16, body: String },
    #[error("unexpected answer from the registry: {0}")]
    Answer(String),
}

fn expose(a: &AuthInfo) -> Option<String> {
    use secrecy::ExposeSecret;
    a.token.as_ref().map(|t| t.expose_secret().to_string())
}

/// The bearer token of a kubeconfig user, or why there is none.
pub fn bearer_token(user: &str, a: &AuthInfo) -> Result<String, LoginError> {
    if let Some(t) = expose(a).filter(|t| !t.is_empty()) {
        return Ok(t);
    }
    if let Some(f) = &a.token_file {
        return std::fs::read_to_string(f)
            .map(|t| t.trim().to_string())
            .map_err(|e| LoginError::Kubeconfig(format!("token file {f}: {e}")));
    }
    let how = if a.client_certificate.is_some() || a.client_certificate_data.is_some() {
        "a client certificate"
    } else if a.exec.is_some() {
        "an exec plugin"
    } else if a.auth_provider.is_some() {
        "an auth provider"
    } else if a.username.is_some() {
        "a username and password"
    } else {
        "nothing"
    };
    Err(LoginError::NoBearerToken(user.to_string(), how))
}

/// The registry token out of ECR's GetAuthorizationToken answer: `authorizationToken` is
/// base64 of `AWS:TOKEN`.
pub fn token_from_answer(body: &[u8]) -> Result<String, LoginError> {
    let v: serde_json::Value =
        serde_json::from_slice(body).map_err(|e| LoginError::Answer(e.to_string()))?;
    let encoded = v["authorizationData"][0]["authorizationToken"]
        .as_str()
        .ok_or_else(|| LoginError::Answer("no authorizationData[0].authorizationToken".into()))?;
    let decoded = STANDARD
        .decode(encoded)
        .ok()
        .and_then(|b| String::from_utf8(b).ok())
        .ok_or_else(|| LoginError::Answer("authorizationToken is not base64 text".into()))?;
    decoded
        .strip_prefix(TOKEN_USERNAME)
        .and_then(|r| r.strip_prefix(':'))
        .map(String::from)
        .ok_or_else(|| {
            LoginError::Answer(format!("authorizationToken is not {TOKEN_USERNAME}:TOKEN"))
        })
}

/// The token endpoint of a registry given as `host[:port]` or a URL (http assumed for
/// loopback addresses without a scheme, https otherwise).
pub fn token_url(registry: &str) -> String {
    let base = registry.trim_end_matches('/');
    if base.starts_with("http://") || base.starts_with("https://") {
        return format!("{base}{TOKEN_PATH}");
    }
    let host = base.split(':').next().unwrap_or(base);
    let scheme = if host == "localhost" || host.starts_with("127.") || host == "[::1]" {
        "http"
    } else {
        "https"
    };
    format!("{scheme}://{base}{TOKEN_PATH}")
}

/// Loads the current kubeconfig user's bearer token (KUBECONFIG or ~/.kube/config, or the
/// in-cluster ServiceAccount token).
pub async fn kubeconfig_token(context: Option<String>) -> Result<String, LoginError> {
    match Kubeconfig::read() {
        Ok(kc) => {
            let opts = KubeConfigOptions {
                context,
                ..Default::default()
            };
            let ctx_name = opts
                .context
                .clone()
                .or_else(|| kc.current_context.clone())
                .ok_or_else(|| LoginError::Kubeconfig("no current context".into()))?;
            let user = kc
                .contexts
                .iter()
                .find(|c| c.name == ctx_name)
                .and_then(|c| c.context.as_ref())
                .map(|c| c.user.clone().unwrap_or_default())
                .ok_or_else(|| LoginError::Kubeconfig(format!("no context '{ctx_name}'")))?;
            let info = kc
                .auth_infos
                .iter()
                .find(|a| a.name == user)
                .and_then(|a| a.auth_info.clone())
                .ok_or_else(|| LoginError::Kubeconfig(format!("no user '{user}'")))?;
            bearer_token(&user, &info)
        }
        // In a pod: the mounted ServiceAccount token.
        Err(e) => std::fs::read_to_string("/var/run/secrets/kubernetes.io/serviceaccount/token")
            .map(|t| t.trim().to_string())
            .map_err(|_| LoginError::Kubeconfig(e.to_string())),
    }
}

/// Exchanges `bearer` for a registry token at `registry`.
pub async fn fetch_registry_token(registry: &str, bearer: &str) -> Result<String, LoginError> {
    let url = token_url(registry);
    let uri: axum::http::Uri = url
        .parse()
        .map_err(|e: axum::http::uri::InvalidUri| LoginError::Url(url.clone(), e.to_string()))?;
    let req = axum::http::Request::post(uri)
        .header("authorization", format!("Bearer {bearer}"))
        .header("content-length", "0")
        .body(Full::default())
        .map_err(|e| LoginError::Http(e.to_string()))?;
    let answer = crate::http::send(req, "the registry", Duration::from_secs(30))
        .await
        .map_err(|e| LoginError::Http(e.to_string()))?;
    let (status, body) = (answer.status, answer.body);
    if !status.is_success() {
        return Err(LoginError::Refused {
            status: status.as_u16(),
            body: String::from_utf8_lossy(&body).into_owned(),
        });
    }
    token_from_answer(&body)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn answers_and_urls() {
        let body = serde_json::json!({"authorizationData": [{
            "authorizationToken": STANDARD.encode("AWS:kubecs1.abc.def")}]});
        assert_eq!(
            token_from_answer(body.to_string().as_bytes()).unwrap(),
            "kubecs1.abc.def"
        );
        let bad = serde_json::json!({"authorizationData": [{
            "authorizationToken": STANDARD.encode("bob:x")}]});
        assert!(token_from_answer(bad.to_string().as_bytes()).is_err());
        assert!(token_from_answer(b"{}").is_err());
        assert_eq!(
            token_url("127.0.0.1:5000"),
            "http://127.0.0.1:5000/kubecs/v1/token"
        );
        assert_eq!(
            token_url("registry.example.com/"),
            "https://registry.example.com/kubecs/v1/token"
        );
        assert_eq!(
            token_url("http://reg:5000"),
            "http://reg:5000/kubecs/v1/token"
        );
    }

    #[test]
    fn bearer_tokens_from_kubeconfig_users() {
        let with_token: AuthInfo =
            serde_json::from_value(serde_json::json!({"token": "abc"})).unwrap();
        assert_eq!(bearer_token("u", &with_token).unwrap(), "abc");
        let certs: AuthInfo = serde_json::from_value(
            serde_json::json!({"client-certificate-data": "eA==", "client-key-data": "eA=="}),
        )
        .unwrap();
        let e = bearer_token("admin", &certs).unwrap_err().to_string();
        assert!(
            e.contains("client certificate") && e.contains("kubectl create token"),
            "{e}"
        );
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("t");
        std::fs::write(&f, "from-file\n").unwrap();
        let file: AuthInfo =
            serde_json::from_value(serde_json::json!({"tokenFile": f.to_str().unwrap()})).unwrap();
        assert_eq!(bearer_token("u", &file).unwrap(), "from-file");
    }
}
