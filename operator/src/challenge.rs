//! Answering a registry's `WWW-Authenticate` challenge (distribution's token protocol, or
//! HTTP Basic), anonymously or with a user and password: how the operator resolves image
//! digests at other registries, how the registry's pull through cache reaches its upstreams
//! and how its replication reaches its destinations.

use std::collections::{BTreeMap, HashMap};
use std::sync::Mutex;
use std::time::Duration;

use axum::http::{HeaderMap, Method, Request, header};
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use bytes::Bytes;
use http_body_util::Full;

/// How long a token request may take.
const TIMEOUT: Duration = Duration::from_secs(10);

/// The `Authorization` each remote repository (`URL/NAME`) last took: the next request sends
/// it first instead of being challenged again.
#[derive(Default)]
pub struct Remembered(Mutex<HashMap<String, String>>);

impl Remembered {
    pub fn get(&self, scope: &str) -> Option<String> {
        self.0.lock().expect("remembered").get(scope).cloned()
    }

    pub fn remember(&self, scope: String, authorization: String) {
        self.0
            .lock()
            .expect("remembered")
            .insert(scope, authorization);
    }
}

/// The challenge of a 401: its `WWW-Authenticate`.
pub fn of(headers: &HeaderMap) -> Option<String> {
    headers
        .get(header::WWW_AUTHENTICATE)
        .and_then(|v| v.to_str().ok())
        .map(str::to_string)
}

/// The parameters of a `WWW-Authenticate` challenge: its scheme and `key="value"` pairs.
pub fn parse_challenge(h: &str) -> Option<(String, BTreeMap<String, String>)> {
    let h = h.trim();
    let (scheme, rest) = h.split_once(' ').unwrap_or((h, ""));
    let mut params = BTreeMap::new();
    let mut rest = rest.trim();
    while !rest.is_empty() {
        let (key, after) = rest.split_once('=')?;
        let key = key
            .trim()
            .trim_start_matches(',')
            .trim()
            .to_ascii_lowercase();
        let after = after.trim_start();
        let (value, tail) = if let Some(q) = after.strip_prefix('"') {
            let end = q.find('"')?;
            (&q[..end], &q[end + 1..])
        } else {
            after.split_once(',').unwrap_or((after, ""))
        };
        params.insert(key, value.to_string());
        rest = tail.trim_start().trim_start_matches(',').trim_start();
    }
    Some((scheme.to_ascii_lowercase(), params))
}

/// An HTTP Basic `Authorization` value.
pub fn basic(user: &str, password: &str) -> String {
    format!("Basic {}", STANDARD.encode(format!("{user}:{password}")))
}

/// Why a challenge could not be answered.
#[derive(Debug, PartialEq, Eq)]
pub enum Unanswered {
    /// A Basic challenge, and no credentials to answer it with.
    NeedsCredentials,
    /// The token service refused or failed (a sentence without a period).
    Token(String),
}

/// The `Authorization` that answers `challenge` (the `WWW-Authenticate` of a 401) for pulling
/// `repository` (None: no scope, for the API root `/v2/`); None when the challenge is neither
/// Bearer nor Basic.
pub async fn answer(
    challenge: Option<&str>,
    repository: Option<&str>,
    credentials: Option<&(String, String)>,
) -> Result<Option<String>, Unanswered> {
    answer_for(challenge, repository, "pull", credentials).await
}

/// [`answer`] for `actions` on the repository (`pull`, or `pull,push` to push to it, as the
/// registry's replication does).
pub async fn answer_for(
    challenge: Option<&str>,
    repository: Option<&str>,
    actions: &str,
    credentials: Option<&(String, String)>,
) -> Result<Option<String>, Unanswered> {
    match challenge.and_then(parse_challenge) {
        Some((scheme, p)) if scheme == "bearer" => {
            bearer_token(&p, repository, actions, credentials)
                .await
                .map(Some)
                .map_err(Unanswered::Token)
        }
        Some((scheme, _)) if scheme == "basic" => match credentials {
            Some((u, pw)) => Ok(Some(basic(u, pw))),
            None => Err(Unanswered::NeedsCredentials),
        },
        _ => Ok(None),
    }
}

/// The token of a Bearer challenge (distribution's token protocol) for pulling `repository`.
async fn bearer_token(
    p: &BTreeMap<String, String>,
    repository: Option<&str>,
    actions: &str,
    credentials: Option<&(String, String)>,
) -> Result<String, String> {
    let realm = p
        .get("realm")
        .ok_or("the registry's Bearer challenge names no realm")?;
    let mut query = Vec::new();
    if let Some(r) = repository {
        query.push(format!("scope=repository:{r}:{actions}"));
    }
    if let Some(s) = p.get("service") {
        query.push(format!("service={s}"));
    }
    let url = match query.is_empty() {
        true => realm.clone(),
        false => format!("{realm}?{}", query.join("&")),
    };
    let mut b = Request::builder().method(Method::GET).uri(&url);
    if let Some((u, pw)) = credentials {
        b = b.header(header::AUTHORIZATION, basic(u, pw));
    }
    let req = b.body(Full::new(Bytes::new())).map_err(|e| e.to_string())?;
    let answer = crate::http::send(req, "the registry's token service", TIMEOUT)
        .await
        .map_err(|e| e.to_string())?;
    if !answer.status.is_success() {
        return Err(format!(
            "the registry's token service refused a {actions} token ({})",
            answer.status
        ));
    }
    let v: serde_json::Value =
        serde_json::from_slice(&answer.body).map_err(|e| format!("token answer: {e}"))?;
    v.get("token")
        .or_else(|| v.get("access_token"))
        .and_then(|t| t.as_str())
        .map(|t| format!("Bearer {t}"))
        .ok_or_else(|| "the registry's token service sent no token".to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn challenges_are_read() {
        let (scheme, p) = parse_challenge(
            r#"Bearer realm="https://auth.docker.io/token",service="registry.docker.io",scope="repository:library/busybox:pull""#,
        )
        .unwrap();
        assert_eq!(scheme, "bearer");
        assert_eq!(p["realm"], "https://auth.docker.io/token");
        assert_eq!(p["service"], "registry.docker.io");
        assert_eq!(p["scope"], "repository:library/busybox:pull");
        let (scheme, p) = parse_challenge(r#"Basic realm="kubecs""#).unwrap();
        assert_eq!((scheme.as_str(), p["realm"].as_str()), ("basic", "kubecs"));
    }

    #[tokio::test]
    async fn basic_challenges_take_the_credentials() {
        let creds = ("u".to_string(), "p".to_string());
        assert_eq!(
            answer(Some(r#"Basic realm="r""#), Some("a/b"), Some(&creds)).await,
            Ok(Some(basic("u", "p")))
        );
        assert_eq!(
            answer(Some(r#"Basic realm="r""#), None, None).await,
            Err(Unanswered::NeedsCredentials)
        );
        assert_eq!(answer(Some("Negotiate"), Some("a/b"), None).await, Ok(None));
        assert_eq!(answer(None, None, None).await, Ok(None));
    }
}
