//! Registered task definition revisions, by the TaskDefinition that owns them, with each
//! revision's definition parsed once when the revision changes: resolving a revision on
//! every service pass scanned every revision in the store and parsed its JSON again.

use std::collections::HashMap;
use std::sync::Arc;

use k8s_openapi::api::apps::v1::ControllerRevision;
use kube::ResourceExt;

use super::taskdef::{OWNER_UID_LABEL, StoredRevision, stored_revision};
use super::watch_index::WatchIndex;
use crate::api::TaskDefinitionSpec;

/// One registered revision as resolving reads it.
#[derive(Clone, Debug)]
pub struct Registered {
    pub stored: StoredRevision,
    /// The definition it registered, or why it cannot be read.
    pub spec: Result<Arc<TaskDefinitionSpec>, String>,
}

/// The revisions of each TaskDefinition, by (namespace, owner uid).
#[derive(Default)]
pub struct RevisionsByOwner {
    by_owner: HashMap<(String, String), Vec<(String, Registered)>>,
    owner_of: HashMap<String, (String, String)>,
}

impl RevisionsByOwner {
    /// The revisions of the TaskDefinition with `uid` in `ns`.
    pub fn of<'a>(&'a self, ns: &str, uid: &str) -> impl Iterator<Item = &'a Registered> + 'a {
        self.by_owner
            .get(&(ns.to_string(), uid.to_string()))
            .into_iter()
            .flat_map(|v| v.iter().map(|(_, r)| r))
    }
}

impl WatchIndex<ControllerRevision> for RevisionsByOwner {
    fn upsert(&mut self, cr: &ControllerRevision) {
        let uid = cr.uid().unwrap_or_default();
        self.remove(&uid);
        let Some(owner) = cr.labels().get(OWNER_UID_LABEL) else {
            return;
        };
        let key = (cr.namespace().unwrap_or_default(), owner.clone());
        let stored = stored_revision(cr);
        let spec = serde_json::from_value::<TaskDefinitionSpec>(cr.data.0.clone())
            .map(Arc::new)
            .map_err(|e| e.to_string());
        self.by_owner
            .entry(key.clone())
            .or_default()
            .push((uid.clone(), Registered { stored, spec }));
        self.owner_of.insert(uid, key);
    }

    fn remove(&mut self, uid: &str) {
        if let Some(key) = self.owner_of.remove(uid)
            && let Some(v) = self.by_owner.get_mut(&key)
        {
            v.retain(|(u, _)| u != uid);
            if v.is_empty() {
                self.by_owner.remove(&key);
            }
        }
    }
}
