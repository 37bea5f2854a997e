//! What the ECR resources named by a repository prefix share (pull through cache rules,
//! repository creation templates): objects of the caller's account found by their prefix, a
//! trailing `/` or not, with ECR's not-found and already-exists errors.

use kube::api::ListParams;

use super::DEFAULT_REGISTRY_ID;
use crate::aws::{AwsError, Caller};

/// One prefix, written with or without its trailing `/`.
pub fn same(a: &str, b: &str) -> bool {
    a.trim_end_matches('/') == b.trim_end_matches('/')
}

/// The resource an RBAC refusal names: the repositories under the prefix (`*`: all).
pub fn resource(ns: &str, prefix: &str) -> String {
    let under = match prefix.trim_end_matches('/') {
        "*" | "ROOT" => "*".to_string(),
        p => format!("{p}/*"),
    };
    crate::arn::repository(ns, &under)
}

/// ECR's resource `what` (e.g. "pull through cache rule"), named by `field`.
pub struct Kind {
    pub what: &'static str,
    pub field: &'static str,
    pub not_found: &'static str,
    pub already_exists: &'static str,
}

impl Kind {
    pub fn not_found(&self, prefix: &str) -> AwsError {
        AwsError::bad(
            self.not_found,
            format!(
                "The {} with the {} '{prefix}' does not exist in the registry with id '{DEFAULT_REGISTRY_ID}'",
                self.what, self.field
            ),
        )
    }

    pub fn already_exists(&self, prefix: &str) -> AwsError {
        AwsError::bad(
            self.already_exists,
            format!(
                "A {} with the {} '{prefix}' already exists in the registry with id '{DEFAULT_REGISTRY_ID}'",
                self.what, self.field
            ),
        )
    }
}

/// The objects of the caller's account, sorted by prefix.
pub async fn list<K>(c: &Caller, prefix: fn(&K) -> &str) -> Result<Vec<K>, AwsError>
where
    K: kube::Resource<Scope = kube::core::NamespaceResourceScope>
        + Clone
        + serde::de::DeserializeOwned
        + std::fmt::Debug,
    K::DynamicType: Default,
{
    let ns = c.account();
    let mut items = c
        .api::<K>(ns)
        .list(&ListParams::default())
        .await
        .map_err(|e| c.kube_error(e, &resource(ns, "*")))?
        .items;
    items.sort_by(|a, b| prefix(a).cmp(prefix(b)));
    Ok(items)
}
