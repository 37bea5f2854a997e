//! The caller of one request: its access key's identity, a Kubernetes client that acts *as*
//! that identity (impersonation, so RBAC decides every read and write), and the ECS/ECR
//! action being performed, for AccessDeniedException's words.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use kube::api::Api;
use kube::core::NamespaceResourceScope;
use serde::de::DeserializeOwned;

use super::error::AwsError;
use super::keys::AccessKey;
use crate::registry::Principal;

/// How long an identity's client (and its connection pool) is kept after its last use.
const CLIENT_IDLE: Duration = Duration::from_secs(300);
const MAX_CLIENTS: usize = 256;

/// Builds and caches one impersonating client per identity. The API's own credentials only
/// carry the `impersonate` right: every call made with these clients is checked by the API
/// server against the impersonated user's RBAC, never the API's.
pub struct Impersonator {
    base: kube::Config,
    clients: Mutex<HashMap<Principal, (Instant, kube::Client)>>,
}

impl Impersonator {
    pub fn new(base: kube::Config) -> Self {
        Self {
            base,
            clients: Mutex::new(HashMap::new()),
        }
    }

    pub fn client_for(&self, p: &Principal) -> Result<kube::Client, AwsError> {
        let mut clients = self.clients.lock().expect("not poisoned");
        if let Some((used, c)) = clients.get_mut(p) {
            *used = Instant::now();
            return Ok(c.clone());
        }
        clients.retain(|_, (used, _)| used.elapsed() < CLIENT_IDLE);
        if clients.len() >= MAX_CLIENTS {
            clients.clear();
        }
        let mut config = self.base.clone();
        config.auth_info.impersonate = Some(p.username.clone());
        config.auth_info.impersonate_groups = Some(p.groups.clone());
        let client = kube::Client::try_from(config)
            .map_err(|e| AwsError::server(format!("cannot build a client: {e}")))?;
        clients.insert(p.clone(), (Instant::now(), client.clone()));
        Ok(client)
    }
}

/// One request's caller.
#[derive(Clone)]
pub struct Caller {
    pub key: AccessKey,
    /// Acts as `key.principal`.
    pub client: kube::Client,
    /// `ecs:CreateService`, `ecr:DescribeImages`...
    pub action: String,
}

impl Caller {
    /// The account (namespace) of the caller.
    pub fn account(&self) -> &str {
        &self.key.account
    }

    pub fn api<K>(&self, namespace: &str) -> Api<K>
    where
        K: kube::Resource<Scope = NamespaceResourceScope> + DeserializeOwned,
        K::DynamicType: Default,
    {
        Api::namespaced(self.client.clone(), namespace)
    }

    pub fn cluster_api<K>(&self) -> Api<K>
    where
        K: kube::Resource<Scope = kube::core::ClusterResourceScope> + DeserializeOwned,
        K::DynamicType: Default,
    {
        Api::all(self.client.clone())
    }

    /// A Kubernetes error as AWS says it: RBAC's 403 is AccessDeniedException naming the
    /// action and `resource`; a schema or CEL refusal is InvalidParameterException with the
    /// rule's message (which is ECS's message); anything else is a ServerException.
    pub fn kube_error(&self, e: kube::Error, resource: &str) -> AwsError {
        match e {
            kube::Error::Api(s) if s.code == 403 => AwsError::access_denied(format!(
                "User: {} is not authorized to perform: {} on resource: {resource} because no Kubernetes RBAC rule allows it ({})",
                self.key.principal.username, self.action, s.message
            )),
            kube::Error::Api(s) if s.code == 422 => {
                AwsError::invalid_parameter(validation_message(&s))
            }
            kube::Error::Api(s) if s.code == 409 => AwsError::bad(
                "ConflictException",
                format!(
                    "The resource changed while it was being updated; retry. ({})",
                    s.message
                ),
            ),
            e => AwsError::server(e.to_string()),
        }
    }
}

/// The message of the first schema/CEL rule a 422 reports, without the API server's
/// `Invalid value: "object": ` framing.
fn validation_message(s: &kube::core::Status) -> String {
    let causes = s
        .details
        .as_ref()
        .map(|d| d.causes.clone())
        .unwrap_or_default();
    let raw = causes
        .iter()
        .map(|c| c.message.clone())
        .find(|m| !m.is_empty())
        .unwrap_or_else(|| s.message.clone());
    strip_invalid_value(&raw)
}

fn strip_invalid_value(raw: &str) -> String {
    if let Some(rest) = raw.strip_prefix("Invalid value: ") {
        // `"object": message` or `123: message`
        if let Some(rest) = rest.strip_prefix('"')
            && let Some(end) = rest.find("\": ")
        {
            return rest[end + 3..].to_string();
        }
        if let Some((_, m)) = rest.split_once(": ") {
            return m.to_string();
        }
    }
    raw.to_string()
}

#[cfg(test)]
mod tests {
    #[test]
    fn cel_messages_lose_the_api_servers_framing() {
        assert_eq!(
            super::strip_invalid_value(
                "Invalid value: \"object\": Specify either Launch Type or Capacity Provider Strategy, but not both."
            ),
            "Specify either Launch Type or Capacity Provider Strategy, but not both."
        );
        assert_eq!(
            super::strip_invalid_value(
                "Invalid value: -1: spec.desiredCount in body should be greater than or equal to 0"
            ),
            "spec.desiredCount in body should be greater than or equal to 0"
        );
        assert_eq!(
            super::strip_invalid_value("Required value"),
            "Required value"
        );
    }
}
