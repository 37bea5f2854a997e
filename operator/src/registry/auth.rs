//! ECR-style authorization tokens: `docker login -u AWS -p <token>` sends HTTP Basic
//! `AWS:<token>`. A token is `kubecs1.<payload>.<signature>`: the payload is base64url JSON
//! (principal username, groups, issued-at, expires-at = issued + 12 h) and the signature is
//! HMAC-SHA256 over `kubecs1.<payload>` with a key kept in a file.

use std::io::{self, Write};
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use base64::Engine;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use futures::future::BoxFuture;
use hmac::{Hmac, KeyInit, Mac};
use serde::{Deserialize, Serialize};
use sha2::Sha256;

/// How long a token is valid: ECR's 12 hours.
pub const TOKEN_LIFETIME: Duration = Duration::from_secs(12 * 3600);
/// The shortest signing key accepted.
pub const MIN_KEY_BYTES: usize = 32;
/// The Basic username ECR tokens are presented with.
pub const TOKEN_USERNAME: &str = "AWS";
/// Tolerated clock skew for `iat` in the future.
const CLOCK_SKEW: Duration = Duration::from_secs(60);
const PREFIX: &str = "kubecs1.";

/// Who a request acts for: a Kubernetes-style user and groups.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Principal {
    pub username: String,
    pub groups: Vec<String>,
}

#[derive(Serialize, Deserialize)]
struct Claims {
    #[serde(rename = "u")]
    username: String,
    #[serde(rename = "g", default)]
    groups: Vec<String>,
    /// Seconds since the Unix epoch.
    iat: u64,
    exp: u64,
}

/// Why a presented credential is refused (logged; the client only sees UNAUTHORIZED).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TokenError {
    #[error("not a kubecs registry token")]
    Format,
    #[error("token signature is invalid")]
    Signature,
    #[error("token has expired")]
    Expired,
    #[error("token is not valid yet")]
    NotYetValid,
    #[error("registry tokens are presented with the username '{TOKEN_USERNAME}'")]
    WrongUser,
    #[error("no credentials")]
    Missing,
    #[error("malformed Authorization header")]
    Header,
}

/// Signs and verifies tokens with one HMAC key.
#[derive(Clone)]
pub struct TokenSigner {
    key: Arc<Vec<u8>>,
}

impl std::fmt::Debug for TokenSigner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("TokenSigner(..)")
    }
}

fn unix(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs())
}

impl TokenSigner {
    pub fn new(key: Vec<u8>) -> io::Result<TokenSigner> {
        if key.len() < MIN_KEY_BYTES {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                format!("the token key must have at least {MIN_KEY_BYTES} bytes"),
            ));
        }
        Ok(TokenSigner { key: Arc::new(key) })
    }

    /// Loads the key from `path`, or generates 32 random bytes and persists them (mode 0600)
    /// when the file does not exist.
    pub fn load_or_create(path: &Path) -> io::Result<TokenSigner> {
        match std::fs::read(path) {
            Ok(key) => TokenSigner::new(key),
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                let mut key = vec![0u8; MIN_KEY_BYTES];
                getrandom::fill(&mut key).map_err(|e| io::Error::other(e.to_string()))?;
                if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
                    std::fs::create_dir_all(dir)?;
                }
                let mut opts = std::fs::OpenOptions::new();
                opts.write(true).create_new(true);
                #[cfg(unix)]
                {
                    use std::os::unix::fs::OpenOptionsExt;
                    opts.mode(0o600);
                }
                match opts.open(path) {
                    Ok(mut f) => {
                        f.write_all(&key)?;
                        f.sync_all()?;
                        TokenSigner::new(key)
                    }
                    // Another process created it first: use theirs.
                    Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {
                        TokenSigner::new(std::fs::read(path)?)
                    }
                    Err(e) => Err(e),
                }
            }
            Err(e) => Err(e),
        }
    }

    fn mac(&self) -> Hmac<Sha256> {
        <Hmac<Sha256> as KeyInit>::new_from_slice(&self.key).expect("HMAC takes any key length")
    }

    /// A token for `principal`, valid from `now` for 12 hours.
    pub fn issue(&self, principal: &Principal, now: SystemTime) -> String {
        let iat = unix(now);
        let claims = Claims {
            username: principal.username.clone(),
            groups: principal.groups.clone(),
            iat,
            exp: iat + TOKEN_LIFETIME.as_secs(),
        };
        let payload =
            URL_SAFE_NO_PAD.encode(serde_json::to_vec(&claims).expect("claims serialise"));
        let signed = format!("{PREFIX}{payload}");
        let mut mac = self.mac();
        mac.update(signed.as_bytes());
        let sig = URL_SAFE_NO_PAD.encode(mac.finalize().into_bytes());
        format!("{signed}.{sig}")
    }

    /// Checks the signature (in constant time) and the validity period.
    pub fn verify(&self, token: &str, now: SystemTime) -> Result<Principal, TokenError> {
        let rest = token.strip_prefix(PREFIX).ok_or(TokenError::Format)?;
        let (payload, sig) = rest.split_once('.').ok_or(TokenError::Format)?;
        let sig = URL_SAFE_NO_PAD
            .decode(sig)
            .map_err(|_| TokenError::Format)?;
        let mut mac = self.mac();
        mac.update(&token.as_bytes()[..PREFIX.len() + payload.len()]);
        mac.verify_slice(&sig).map_err(|_| TokenError::Signature)?;
        let claims: Claims = URL_SAFE_NO_PAD
            .decode(payload)
            .ok()
            .and_then(|b| serde_json::from_slice(&b).ok())
            .ok_or(TokenError::Format)?;
        let now = unix(now);
        if now >= claims.exp {
            return Err(TokenError::Expired);
        }
        if claims.iat > now + CLOCK_SKEW.as_secs() {
            return Err(TokenError::NotYetValid);
        }
        Ok(Principal {
            username: claims.username,
            groups: claims.groups,
        })
    }
}

/// A second way in: a credential the registry did not issue, e.g. a Kubernetes ServiceAccount
/// token presented as the Basic password, checked with a TokenReview. Returns None when the
/// credential is not valid.
pub trait ExternalTokenVerifier: Send + Sync + 'static {
    fn verify<'a>(
        &'a self,
        username: Option<&'a str>,
        token: &'a str,
    ) -> BoxFuture<'a, Option<Principal>>;
}

/// Accepts nothing: only registry tokens are valid.
pub struct NoExternalTokens;

impl ExternalTokenVerifier for NoExternalTokens {
    fn verify<'a>(&'a self, _: Option<&'a str>, _: &'a str) -> BoxFuture<'a, Option<Principal>> {
        Box::pin(async { None })
    }
}

/// A credential as the Authorization header carries it.
#[derive(Debug, PartialEq, Eq)]
pub enum Credential {
    Basic { username: String, password: String },
    Bearer(String),
}

/// Parses `Basic base64(user:pass)` or `Bearer token`.
pub fn parse_authorization(header: &str) -> Result<Credential, TokenError> {
    let (scheme, value) = header.trim().split_once(' ').ok_or(TokenError::Header)?;
    let value = value.trim();
    if scheme.eq_ignore_ascii_case("basic") {
        let raw = STANDARD.decode(value).map_err(|_| TokenError::Header)?;
        let text = String::from_utf8(raw).map_err(|_| TokenError::Header)?;
        let (u, p) = text.split_once(':').ok_or(TokenError::Header)?;
        Ok(Credential::Basic {
            username: u.to_string(),
            password: p.to_string(),
        })
    } else if scheme.eq_ignore_ascii_case("bearer") {
        Ok(Credential::Bearer(value.to_string()))
    } else {
        Err(TokenError::Header)
    }
}

/// Turns an Authorization header into a principal: registry tokens first (Basic with user
/// `AWS`, or Bearer), then the external verifier for anything else.
#[derive(Clone)]
pub struct Authenticator {
    pub signer: TokenSigner,
    pub external: Arc<dyn ExternalTokenVerifier>,
}

impl Authenticator {
    pub fn new(signer: TokenSigner) -> Authenticator {
        Authenticator {
            signer,
            external: Arc::new(NoExternalTokens),
        }
    }

    pub fn with_external(mut self, external: Arc<dyn ExternalTokenVerifier>) -> Authenticator {
        self.external = external;
        self
    }

    /// A Kubernetes credential only (no registry token): what `POST /kubecs/v1/token` takes, so
    /// a registry token cannot renew itself forever.
    pub async fn authenticate_kubernetes(
        &self,
        header: Option<&str>,
    ) -> Result<Principal, TokenError> {
        let token = match parse_authorization(header.ok_or(TokenError::Missing)?)? {
            Credential::Basic { password, .. } => password,
            Credential::Bearer(t) => t,
        };
        if token.starts_with(PREFIX) {
            return Err(TokenError::Format);
        }
        self.external
            .verify(None, &token)
            .await
            .ok_or(TokenError::Format)
    }

    pub async fn authenticate(
        &self,
        header: Option<&str>,
        now: SystemTime,
    ) -> Result<Principal, TokenError> {
        let cred = parse_authorization(header.ok_or(TokenError::Missing)?)?;
        let (username, token) = match &cred {
            Credential::Basic { username, password } => (Some(username.as_str()), password),
            Credential::Bearer(t) => (None, t),
        };
        if token.starts_with(PREFIX) {
            // Our own token: ECR's rule that the user is AWS holds.
            if username.is_some_and(|u| u != TOKEN_USERNAME) {
                return Err(TokenError::WrongUser);
            }
            return self.signer.verify(token, now);
        }
        self.external
            .verify(username, token)
            .await
            .ok_or(TokenError::Format)
    }
}

/// A fake external verifier for tests: accepts the token `sa-token` as
/// `system:serviceaccount:ns:builder`.
#[cfg(test)]
pub(crate) mod testing {
    use super::*;

    pub struct Sa;

    impl ExternalTokenVerifier for Sa {
        fn verify<'a>(
            &'a self,
            _: Option<&'a str>,
            token: &'a str,
        ) -> BoxFuture<'a, Option<Principal>> {
            Box::pin(async move {
                (token == "sa-token").then(|| Principal {
                    username: "system:serviceaccount:ns:builder".into(),
                    groups: vec![],
                })
            })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn signer() -> TokenSigner {
        TokenSigner::new(vec![7u8; 32]).unwrap()
    }

    fn alice() -> Principal {
        Principal {
            username: "alice".into(),
            groups: vec!["dev".into(), "system:authenticated".into()],
        }
    }

    #[test]
    fn round_trip() {
        let now = SystemTime::now();
        let t = signer().issue(&alice(), now);
        assert_eq!(signer().verify(&t, now).unwrap(), alice());
        assert_eq!(
            signer()
                .verify(&t, now + TOKEN_LIFETIME - Duration::from_secs(1))
                .unwrap(),
            alice()
        );
    }

    #[test]
    fn expiry_and_future() {
        let now = SystemTime::now();
        let t = signer().issue(&alice(), now);
        assert_eq!(
            signer().verify(&t, now + TOKEN_LIFETIME),
            Err(TokenError::Expired)
        );
        assert_eq!(
            signer().verify(&t, now - Duration::from_secs(3600)),
            Err(TokenError::NotYetValid)
        );
    }

    #[test]
    fn forged_tokens() {
        let now = SystemTime::now();
        let t = signer().issue(&alice(), now);
        let other = TokenSigner::new(vec![8u8; 32]).unwrap();
        assert_eq!(other.verify(&t, now), Err(TokenError::Signature));
        // Same signature, payload swapped for another principal's.
        let mallory = signer().issue(
            &Principal {
                username: "admin".into(),
                groups: vec!["system:masters".into()],
            },
            now,
        );
        let (t_body, t_sig) = t.rsplit_once('.').unwrap();
        let (m_body, _) = mallory.rsplit_once('.').unwrap();
        assert_ne!(t_body, m_body);
        assert_eq!(
            signer().verify(&format!("{m_body}.{t_sig}"), now),
            Err(TokenError::Signature)
        );
        assert_eq!(signer().verify("kubecs1.x", now), Err(TokenError::Format));
        assert_eq!(signer().verify("garbage", now), Err(TokenError::Format));
    }

    #[test]
    fn short_keys_are_refused() {
        assert!(TokenSigner::new(vec![1u8; 31]).is_err());
    }

    #[test]
    fn key_file_is_created_once() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("sub/key");
        let a = TokenSigner::load_or_create(&path).unwrap();
        assert_eq!(std::fs::read(&path).unwrap().len(), 32);
        let b = TokenSigner::load_or_create(&path).unwrap();
        let now = SystemTime::now();
        assert_eq!(b.verify(&a.issue(&alice(), now), now).unwrap(), alice());
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(&path).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o600);
        }
    }

    #[tokio::test]
    async fn authenticator_rules() {
        let auth = Authenticator::new(signer());
        let now = SystemTime::now();
        let t = signer().issue(&alice(), now);
        let basic = |u: &str, p: &str| format!("Basic {}", STANDARD.encode(format!("{u}:{p}")));
        assert_eq!(
            auth.authenticate(Some(&basic("AWS", &t)), now).await,
            Ok(alice())
        );
        assert_eq!(
            auth.authenticate(Some(&format!("Bearer {t}")), now).await,
            Ok(alice())
        );
        assert_eq!(
            auth.authenticate(Some(&basic("alice", &t)), now).await,
            Err(TokenError::WrongUser)
        );
        assert_eq!(auth.authenticate(None, now).await, Err(TokenError::Missing));
        assert_eq!(
            auth.authenticate(Some("Basic !!!"), now).await,
            Err(TokenError::Header)
        );
        assert!(
            auth.authenticate(Some(&basic("AWS", "sa-token")), now)
                .await
                .is_err()
        );

        let auth = auth.with_external(Arc::new(testing::Sa));
        assert_eq!(
            auth.authenticate(Some(&basic("anyone", "sa-token")), now)
                .await
                .unwrap()
                .username,
            "system:serviceaccount:ns:builder"
        );
    }
}
