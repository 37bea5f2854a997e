//! Kubernetes bearer tokens (ServiceAccount tokens, or any token the API server accepts) as
//! registry credentials, checked with `authentication.k8s.io/v1` TokenReview.
//!
//! A token may be presented as the Basic password with any username (`AWS` included, so
//! `docker login -u AWS -p "$(kubectl create token SA)"` works) or as a Bearer token.
//! Positive answers are cached for [`CACHE_TTL`] so that a pull, which makes one request per
//! layer, costs one TokenReview; refusals are not cached (a token may become valid when its
//! ServiceAccount is created).

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use futures::future::BoxFuture;
use k8s_openapi::api::authentication::v1::{TokenReview, TokenReviewSpec, TokenReviewStatus};
use kube::api::{Api, PostParams};
use sha2::{Digest as _, Sha256};

use super::auth::{ExternalTokenVerifier, Principal};

/// How long a positive TokenReview answer is reused.
pub const CACHE_TTL: Duration = Duration::from_secs(60);
/// Entries kept before expired ones are swept.
const CACHE_SWEEP_AT: usize = 1024;

/// The principal a TokenReview status names, when it authenticated the token.
pub fn principal_from_status(status: &TokenReviewStatus) -> Option<Principal> {
    if status.authenticated != Some(true) {
        return None;
    }
    let user = status.user.as_ref()?;
    let username = user.username.clone().filter(|u| !u.is_empty())?;
    Some(Principal {
        username,
        groups: user.groups.clone().unwrap_or_default(),
    })
}

/// Checks tokens with TokenReview; remembers positive answers briefly.
pub struct TokenReviewVerifier {
    api: Api<TokenReview>,
    /// sha256(token) -> (principal, when checked): tokens themselves are not kept.
    cache: Mutex<HashMap<[u8; 32], (Principal, Instant)>>,
}

impl TokenReviewVerifier {
    pub fn new(client: kube::Client) -> TokenReviewVerifier {
        TokenReviewVerifier {
            api: Api::all(client),
            cache: Mutex::default(),
        }
    }

    fn cached(&self, key: &[u8; 32], now: Instant) -> Option<Principal> {
        let cache = self.cache.lock().expect("token cache lock");
        cache
            .get(key)
            .filter(|(_, at)| now.duration_since(*at) < CACHE_TTL)
            .map(|(p, _)| p.clone())
    }

    fn remember(&self, key: [u8; 32], p: Principal, now: Instant) {
        let mut cache = self.cache.lock().expect("token cache lock");
        if cache.len() >= CACHE_SWEEP_AT {
            cache.retain(|_, (_, at)| now.duration_since(*at) < CACHE_TTL);
        }
        cache.insert(key, (p, now));
    }

    async fn review(&self, token: &str) -> Option<Principal> {
        let review = TokenReview {
            spec: TokenReviewSpec {
                token: token.to_string(),
                audiences: None,
            },
            ..Default::default()
        };
        match self.api.create(&PostParams::default(), &review).await {
            Ok(r) => {
                let p = r.status.as_ref().and_then(principal_from_status);
                if p.is_none() {
                    let why = r.status.and_then(|s| s.error).unwrap_or_default();
                    tracing::debug!(%why, "TokenReview refused a registry credential");
                }
                p
            }
            Err(e) => {
                tracing::warn!(error = %e, "TokenReview failed");
                None
            }
        }
    }
}

impl ExternalTokenVerifier for TokenReviewVerifier {
    fn verify<'a>(
        &'a self,
        _: Option<&'a str>,
        token: &'a str,
    ) -> BoxFuture<'a, Option<Principal>> {
        Box::pin(async move {
            // Cheap refusals first: an empty or oversized string is no token.
            if token.is_empty() || token.len() > 16 * 1024 {
                return None;
            }
            let key: [u8; 32] = Sha256::digest(token.as_bytes()).into();
            let now = Instant::now();
            if let Some(p) = self.cached(&key, now) {
                return Some(p);
            }
            let p = self.review(token).await?;
            self.remember(key, p.clone(), now);
            Some(p)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::authentication::v1::UserInfo;

    fn status(authenticated: Option<bool>, username: Option<&str>) -> TokenReviewStatus {
        TokenReviewStatus {
            authenticated,
            user: Some(UserInfo {
                username: username.map(String::from),
                groups: Some(vec!["system:serviceaccounts".into()]),
                ..Default::default()
            }),
            ..Default::default()
        }
    }

    #[test]
    fn maps_authenticated_users_only() {
        let p =
            principal_from_status(&status(Some(true), Some("system:serviceaccount:a:b"))).unwrap();
        assert_eq!(p.username, "system:serviceaccount:a:b");
        assert_eq!(p.groups, vec!["system:serviceaccounts".to_string()]);
        assert_eq!(principal_from_status(&status(Some(false), Some("x"))), None);
        assert_eq!(principal_from_status(&status(None, Some("x"))), None);
        assert_eq!(principal_from_status(&status(Some(true), Some(""))), None);
        assert_eq!(principal_from_status(&status(Some(true), None)), None);
        assert_eq!(principal_from_status(&TokenReviewStatus::default()), None);
    }
}
