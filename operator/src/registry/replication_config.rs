//! ReplicationConfiguration objects as the replication's rules (with `--kubernetes`).
//!
//! As in ECR, a registry's (account's) configuration replicates that account's repositories:
//! a repository follows the rules of the `default` ReplicationConfiguration in the namespace
//! of its Repository object. Where a destination is comes from the same object's
//! `destinationRegistries`, its credentials from the Secret an entry names there (keys
//! `username` and `accessToken`, as a pull through cache rule's).

use futures::future::BoxFuture;
use k8s_openapi::api::core::v1::Secret;
use kube::runtime::reflector::{ObjectRef, Store};
use kube::{Api, Client, ResourceExt};

use super::cache_rules::credentials_of;
use super::replication::{Endpoint, ReplicationRules, normalized_url, registry_of};
use super::repositories::lookup;
use crate::api::replication_configuration::{
    DEFAULT_NAME, ReplicationConfiguration, ReplicationDestination,
};
use crate::api::repository::Repository;
use crate::ecr::replication::destinations_for;

/// The rules of a reflector of ReplicationConfiguration objects.
pub struct KubeReplication {
    pub configs: Store<ReplicationConfiguration>,
    pub repositories: Store<Repository>,
    pub client: Client,
}

impl KubeReplication {
    /// The configuration of `repo`'s account, if it has one.
    fn config_of(&self, repo: &str) -> Option<std::sync::Arc<ReplicationConfiguration>> {
        let repos = self.repositories.state();
        let ns = lookup(&repos, repo)?.namespace()?;
        self.configs.get(&ObjectRef::new(DEFAULT_NAME).within(&ns))
    }
}

impl ReplicationRules for KubeReplication {
    fn destinations(&self, repo: &str) -> Vec<ReplicationDestination> {
        self.config_of(repo)
            .map(|c| destinations_for(&c.spec.rules, repo))
            .unwrap_or_default()
    }

    fn endpoint<'a>(
        &'a self,
        repo: &'a str,
        d: &'a ReplicationDestination,
    ) -> BoxFuture<'a, Result<Option<Endpoint>, String>> {
        Box::pin(async move {
            let Some(config) = self.config_of(repo) else {
                return Ok(None);
            };
            let Some(r) = registry_of(&config.spec.destination_registries, d) else {
                return Ok(None);
            };
            let credentials = match &r.credentials_secret {
                Some(name) => {
                    let ns = config.namespace().unwrap_or_default();
                    let secret = Api::<Secret>::namespaced(self.client.clone(), &ns)
                        .get_opt(name)
                        .await
                        .map_err(|e| format!("reading the Secret {ns}/{name}: {e}"))?
                        .ok_or_else(|| format!("the credentials Secret {ns}/{name} of the destination does not exist"))?;
                    Some(credentials_of(&secret).ok_or_else(|| {
                        format!("the Secret {ns}/{name} lacks the keys username and accessToken")
                    })?)
                }
                None => None,
            };
            Ok(Some(Endpoint {
                url: normalized_url(&r.url)?,
                credentials,
            }))
        })
    }
}
