//! Registry pull credentials for tasks — what the execution role does in ECS: the operator
//! keeps, in each namespace that runs tasks pulling from the kubecs registry, a
//! `kubernetes.io/dockerconfigjson` Secret holding a registry token (12 h), renewed at half
//! its life, and task pods whose images live in the registry name it in `imagePullSecrets`.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, SystemTime};

use kube::api::{Api, Patch, PatchParams};
use serde_json::json;

use super::FIELD_MANAGER;
use crate::api::TaskDefinitionSpec;
use crate::registry::{Principal, TokenSigner};

/// The Secret's name in every namespace.
pub const PULL_SECRET: &str = "kubecs-registry-pull";
/// Renew at half the token's 12 hours.
const RENEW_AFTER: Duration = Duration::from_secs(6 * 3600);

/// The registry tasks pull from, and how to sign their tokens.
pub struct RegistryPull {
    /// `host[:port]` as images name it.
    pub host: String,
    /// Where the operator reaches it (`http://HOST` unless told): tags resolve to digests there.
    pub url: String,
    pub signer: TokenSigner,
    /// When each namespace's Secret was last written.
    written: Mutex<HashMap<String, SystemTime>>,
}

impl RegistryPull {
    pub fn new(host: String, url: Option<String>, signer: TokenSigner) -> Self {
        Self {
            url: url.unwrap_or_else(|| format!("http://{host}")),
            host,
            signer,
            written: Mutex::new(HashMap::new()),
        }
    }

    /// Whether any container of the task pulls from this registry.
    pub fn used_by(&self, spec: &TaskDefinitionSpec) -> bool {
        spec.container_definitions.iter().any(|c| {
            c.image
                .as_deref()
                .is_some_and(|i| image_in_registry(i, &self.host))
        })
    }

    /// Writes the namespace's pull Secret unless a fresh one was written.
    pub async fn ensure(&self, client: &kube::Client, ns: &str) -> Result<(), kube::Error> {
        let now = SystemTime::now();
        let fresh = self
            .written
            .lock()
            .expect("not poisoned")
            .get(ns)
            .is_some_and(|t| now.duration_since(*t).unwrap_or_default() < RENEW_AFTER);
        let api = Api::<k8s_openapi::api::core::v1::Secret>::namespaced(client.clone(), ns);
        // A namespace deleted and created again under the same name has lost its Secret:
        // the cache alone would never write it again.
        if fresh && api.get_metadata_opt(PULL_SECRET).await?.is_some() {
            return Ok(());
        }
        let token = self.signer.issue(&task_principal(ns), now);
        let secret = json!({
            "apiVersion": "v1",
            "kind": "Secret",
            "metadata": {
                "name": PULL_SECRET,
                "namespace": ns,
                "labels": {crate::api::labels::MANAGED_BY: crate::api::labels::MANAGER},
            },
            "type": "kubernetes.io/dockerconfigjson",
            "stringData": {".dockerconfigjson": docker_config_json(&self.host, &token)},
        });
        api.patch(
            PULL_SECRET,
            &PatchParams::apply(FIELD_MANAGER).force(),
            &Patch::Apply(&secret),
        )
        .await?;
        self.written
            .lock()
            .expect("not poisoned")
            .insert(ns.to_string(), now);
        Ok(())
    }
}

/// The identity a namespace's tasks pull as: a ServiceAccount-shaped name in that namespace,
/// so repository policies can name it (`"ServiceAccount": ["NS:kubecs-task-execution"]`).
pub fn task_principal(ns: &str) -> Principal {
    Principal {
        username: format!("system:serviceaccount:{ns}:kubecs-task-execution"),
        groups: vec![
            "system:serviceaccounts".into(),
            format!("system:serviceaccounts:{ns}"),
        ],
    }
}

/// `image` is `HOST/...` (Docker compares the registry host exactly).
pub fn image_in_registry(image: &str, host: &str) -> bool {
    image
        .strip_prefix(host)
        .is_some_and(|rest| rest.starts_with('/'))
}

/// The `.dockerconfigjson` of `docker login -u AWS -p TOKEN HOST`.
pub fn docker_config_json(host: &str, token: &str) -> String {
    use base64::Engine;
    let auth = base64::engine::general_purpose::STANDARD.encode(format!("AWS:{token}"));
    json!({"auths": {host: {"username": "AWS", "password": token, "auth": auth}}}).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn images_match_the_registry_host_exactly() {
        let host = "registry.kubecs.svc:5000";
        assert!(image_in_registry(
            "registry.kubecs.svc:5000/team/web:1",
            host
        ));
        assert!(!image_in_registry("registry.kubecs.svc:50001/web:1", host));
        assert!(!image_in_registry("docker.io/library/nginx", host));
        assert!(!image_in_registry("registry.kubecs.svc:5000", host));
    }

    #[test]
    fn docker_config_is_what_docker_login_writes() {
        let v: serde_json::Value =
            serde_json::from_str(&docker_config_json("r:5000", "tok")).unwrap();
        assert_eq!(v["auths"]["r:5000"]["username"], "AWS");
        assert_eq!(v["auths"]["r:5000"]["auth"], "QVdTOnRvaw==");
    }

    #[test]
    fn tasks_pull_as_their_namespace() {
        let p = task_principal("team-a");
        assert_eq!(
            p.username,
            "system:serviceaccount:team-a:kubecs-task-execution"
        );
        assert!(
            p.groups
                .contains(&"system:serviceaccounts:team-a".to_string())
        );
    }
}
