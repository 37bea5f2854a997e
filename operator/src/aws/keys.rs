//! Access keys: an AWS access key id and secret that stand for one Kubernetes identity, like
//! an IAM user's access key. Each lives in a Secret of the API's namespace (type
//! `kubecs.io/access-key`, named after the key id), so revoking a key is `kubectl delete
//! secret`, and only those who may read Secrets there can see a secret access key.

use std::collections::{BTreeMap, HashMap};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use k8s_openapi::ByteString;
use k8s_openapi::api::core::v1::Secret;
use kube::api::{Api, ObjectMeta};

use crate::registry::Principal;

/// The Secret type of an access key.
pub const SECRET_TYPE: &str = "kubecs.io/access-key";
const ID_KEY: &str = "accessKeyId";
const SECRET_KEY: &str = "secretAccessKey";
const USER_KEY: &str = "userName";
const GROUPS_KEY: &str = "groups";
const ACCOUNT_KEY: &str = "account";
/// How long a looked-up key is trusted before it is read again (a deleted key stops working
/// within this time).
const CACHE_TTL: Duration = Duration::from_secs(10);

/// One access key and the identity it stands for.
#[derive(Clone, PartialEq, Eq)]
pub struct AccessKey {
    pub id: String,
    pub secret: String,
    /// Who calls act as (impersonated on the API server).
    pub principal: Principal,
    /// The ECS/ECR account: the namespace the calls act in when a request names no ARN.
    pub account: String,
}

impl std::fmt::Debug for AccessKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AccessKey")
            .field("id", &self.id)
            .field("principal", &self.principal)
            .field("account", &self.account)
            .finish_non_exhaustive()
    }
}

/// The Secret name of access key `id`.
pub fn secret_name(id: &str) -> String {
    format!("kubecs-access-key-{}", id.to_ascii_lowercase())
}

/// The identity of ServiceAccount `namespace/name`, as the API server authenticates its
/// tokens (user and groups), with its namespace as the account.
pub fn service_account(namespace: &str, name: &str) -> (Principal, String) {
    // The groups Kubernetes gives a ServiceAccount, as repository policies see them.
    let sa = crate::ecr::policy::Principal::service_account(namespace, name);
    (
        Principal {
            username: sa.username,
            groups: sa.groups,
        },
        namespace.to_string(),
    )
}

/// A new key: `AKIA` + 16 base32 characters, and 40 characters of secret, as IAM issues them.
pub fn generate(principal: Principal, account: String) -> AccessKey {
    const BASE32: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";
    const SECRET_CHARS: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut random = [0u8; 56];
    getrandom::fill(&mut random).expect("the OS provides randomness");
    let id: String = random[..16]
        .iter()
        .map(|b| BASE32[(*b as usize) % 32] as char)
        .collect();
    let secret: String = random[16..]
        .iter()
        .map(|b| SECRET_CHARS[(*b as usize) % 64] as char)
        .collect();
    AccessKey {
        id: format!("AKIA{id}"),
        secret,
        principal,
        account,
    }
}

/// The Secret that stores `key` in `namespace`.
pub fn to_secret(key: &AccessKey, namespace: &str) -> Secret {
    let data: BTreeMap<String, ByteString> = [
        (ID_KEY, key.id.clone()),
        (SECRET_KEY, key.secret.clone()),
        (USER_KEY, key.principal.username.clone()),
        (GROUPS_KEY, key.principal.groups.join("\n")),
        (ACCOUNT_KEY, key.account.clone()),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), ByteString(v.into_bytes())))
    .collect();
    Secret {
        metadata: ObjectMeta {
            name: Some(secret_name(&key.id)),
            namespace: Some(namespace.to_string()),
            labels: Some(BTreeMap::from([(
                "app.kubernetes.io/managed-by".to_string(),
                "kubecs".to_string(),
            )])),
            ..Default::default()
        },
        type_: Some(SECRET_TYPE.to_string()),
        data: Some(data),
        ..Default::default()
    }
}

/// The access key a Secret stores; Err says what is wrong with it.
pub fn from_secret(s: &Secret) -> Result<AccessKey, String> {
    if s.type_.as_deref() != Some(SECRET_TYPE) {
        return Err(format!("not of type {SECRET_TYPE}"));
    }
    let data = s.data.as_ref().ok_or("no data")?;
    let field = |k: &str| -> Result<String, String> {
        data.get(k)
            .map(|b| String::from_utf8_lossy(&b.0).trim().to_string())
            .filter(|v| !v.is_empty())
            .ok_or_else(|| format!("no {k}"))
    };
    let username = field(USER_KEY)?;
    let groups = data
        .get(GROUPS_KEY)
        .map(|b| {
            String::from_utf8_lossy(&b.0)
                .lines()
                .map(str::trim)
                .filter(|g| !g.is_empty())
                .map(String::from)
                .collect()
        })
        .unwrap_or_default();
    Ok(AccessKey {
        id: field(ID_KEY)?,
        secret: field(SECRET_KEY)?,
        principal: Principal { username, groups },
        account: field(ACCOUNT_KEY)?,
    })
}

/// Reads access keys from their Secrets with the API's own client (its only use of its own
/// powers), trusting each answer for [`CACHE_TTL`].
pub struct KeyStore {
    secrets: Api<Secret>,
    cache: Mutex<HashMap<String, (Instant, Option<AccessKey>)>>,
}

impl KeyStore {
    pub fn new(client: kube::Client, namespace: &str) -> Self {
        Self {
            secrets: Api::namespaced(client, namespace),
            cache: Mutex::new(HashMap::new()),
        }
    }

    /// The key with id `id`, None when no valid Secret holds it.
    pub async fn lookup(&self, id: &str) -> Result<Option<AccessKey>, kube::Error> {
        if id.len() > 128 || !id.bytes().all(|b| b.is_ascii_alphanumeric()) {
            return Ok(None);
        }
        if let Some((at, key)) = self.cache.lock().expect("not poisoned").get(id)
            && at.elapsed() < CACHE_TTL
        {
            return Ok(key.clone());
        }
        let key = match self.secrets.get_opt(&secret_name(id)).await? {
            Some(s) => match from_secret(&s) {
                Ok(k) if k.id == id => Some(k),
                Ok(_) => None,
                Err(e) => {
                    tracing::warn!(key = id, error = %e, "ignoring a malformed access key Secret");
                    None
                }
            },
            None => None,
        };
        let mut cache = self.cache.lock().expect("not poisoned");
        if cache.len() > 10_000 {
            cache.clear();
        }
        cache.insert(id.to_string(), (Instant::now(), key.clone()));
        Ok(key)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_look_like_iam_keys_and_round_trip_through_their_secret() {
        let (p, account) = service_account("team-a", "deployer");
        let key = generate(p, account);
        assert!(
            key.id.starts_with("AKIA") && key.id.len() == 20,
            "{}",
            key.id
        );
        assert_eq!(key.secret.len(), 40);
        let s = to_secret(&key, "kubecs-system");
        assert_eq!(
            s.metadata.name.as_deref(),
            Some(secret_name(&key.id).as_str())
        );
        let back = from_secret(&s).unwrap();
        assert_eq!(back, key);
        assert_eq!(
            back.principal.groups,
            vec![
                "system:serviceaccounts",
                "system:serviceaccounts:team-a",
                "system:authenticated"
            ]
        );
        assert_eq!(back.account, "team-a");
        assert!(!format!("{key:?}").contains(&key.secret));
    }

    #[test]
    fn secrets_of_other_types_or_incomplete_are_not_keys() {
        let (p, a) = service_account("ns", "sa");
        let mut s = to_secret(&generate(p, a), "x");
        s.type_ = Some("Opaque".into());
        assert!(from_secret(&s).is_err());
        s.type_ = Some(SECRET_TYPE.into());
        s.data.as_mut().unwrap().remove(SECRET_KEY);
        assert_eq!(from_secret(&s).unwrap_err(), "no secretAccessKey");
    }
}
