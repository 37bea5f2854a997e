//! Writes a service's deployment history (`ServiceDeployment` objects) after each pass, from
//! what `deploy::history` decided: a record is created once (its `spec`: the deployment as it
//! started), its status merge-patched when it changed, and only the newest
//! [`RETAINED`](crate::api::service_deployment::RETAINED) of a service are kept. Records are
//! owned by their Service, so deleting the service deletes its history.
//!
//! A failed write is logged and retried on the next pass (the memo only notes what the API
//! server accepted); it never holds a deployment up.

use std::collections::{HashMap, HashSet};
use std::sync::Mutex;

use kube::api::{Api, DeleteParams, ListParams, ObjectMeta, Patch, PatchParams, PostParams};
use kube::{Resource, ResourceExt};
use serde_json::{Value, json};
use tracing::warn;

use crate::api::service_deployment::{RETAINED, ServiceDeployment};
use crate::api::{Service, labels};
use crate::deploy::history::Decision;

/// What this process wrote: records it created (or found), and each record's last status.
#[derive(Default)]
pub struct RecordMemo {
    created: Mutex<HashSet<String>>,
    statuses: Mutex<HashMap<String, Value>>,
    /// How many records each service (by uid) has, as last listed and counted since: a new
    /// record lists the service's records only when that may exceed what is retained.
    counts: Mutex<HashMap<String, usize>>,
}

impl RecordMemo {
    fn is_created(&self, key: &str) -> bool {
        self.created.lock().expect("not poisoned").contains(key)
    }

    fn note_created(&self, key: String) {
        self.created.lock().expect("not poisoned").insert(key);
    }

    fn unchanged(&self, key: &str, patch: &Value) -> bool {
        self.statuses.lock().expect("not poisoned").get(key) == Some(patch)
    }

    fn note_status(&self, key: String, patch: Value) {
        self.statuses
            .lock()
            .expect("not poisoned")
            .insert(key, patch);
    }

    /// Counts `created` new records of service `uid`: whether the known count stays within
    /// what is retained (no need to list and prune).
    fn within_retained(&self, uid: &str, created: usize) -> bool {
        let mut counts = self.counts.lock().expect("not poisoned");
        match counts.get_mut(uid) {
            Some(n) if *n + created <= RETAINED => {
                *n += created;
                true
            }
            _ => false,
        }
    }

    fn note_count(&self, uid: &str, n: usize) {
        self.counts
            .lock()
            .expect("not poisoned")
            .insert(uid.to_string(), n);
    }

    fn forget(&self, key: &str) {
        self.created.lock().expect("not poisoned").remove(key);
        self.statuses.lock().expect("not poisoned").remove(key);
    }
}

fn is_code(e: &kube::Error, code: u16) -> bool {
    matches!(e, kube::Error::Api(s) if s.code == code)
}

/// Applies `decision` for `svc`; errors are logged (the next pass retries).
pub async fn sync(client: &kube::Client, memo: &RecordMemo, svc: &Service, decision: Decision) {
    if let Err(e) = try_sync(client, memo, svc, decision).await {
        warn!(service = %svc.name_any(), error = %e, "could not write the deployment history");
    }
}

async fn try_sync(
    client: &kube::Client,
    memo: &RecordMemo,
    svc: &Service,
    decision: Decision,
) -> Result<(), kube::Error> {
    let ns = svc.namespace().unwrap_or_default();
    let api: Api<ServiceDeployment> = Api::namespaced(client.clone(), &ns);
    let owner = svc.controller_owner_ref(&()).expect("stored object");
    let mut created = 0;
    for r in decision.records {
        let key = format!("{ns}/{}", r.name);
        if !memo.is_created(&key) {
            let obj = ServiceDeployment {
                metadata: ObjectMeta {
                    name: Some(r.name.clone()),
                    namespace: Some(ns.clone()),
                    labels: Some(
                        [
                            (labels::SERVICE.to_string(), svc.name_any()),
                            (labels::MANAGED_BY.to_string(), labels::MANAGER.to_string()),
                        ]
                        .into(),
                    ),
                    owner_references: Some(vec![owner.clone()]),
                    ..Default::default()
                },
                spec: r.spec,
                status: None,
            };
            match api.create(&PostParams::default(), &obj).await {
                Ok(_) => created += 1,
                Err(e) if is_code(&e, 409) => {}
                Err(e) => return Err(e),
            }
            memo.note_created(key.clone());
        }
        let patch = json!({ "status": r.status });
        if !memo.unchanged(&key, &patch) {
            api.patch_status(&r.name, &PatchParams::default(), &Patch::Merge(&patch))
                .await?;
            memo.note_status(key, patch);
        }
    }
    for u in decision.rollbacks {
        let key = format!("{ns}/{}", u.name);
        let mut status = json!({ "status": u.state, "updatedAt": u.updated_at });
        if let Some(f) = &u.finished_at {
            status["finishedAt"] = json!(f);
        }
        let patch = json!({ "status": status });
        if memo.unchanged(&key, &patch) {
            continue;
        }
        match api
            .patch_status(&u.name, &PatchParams::default(), &Patch::Merge(&patch))
            .await
        {
            // Retention already removed it.
            Err(e) if is_code(&e, 404) => {}
            Err(e) => return Err(e),
            Ok(_) => {}
        }
        memo.note_status(key, patch);
    }
    let uid = svc.uid().unwrap_or_default();
    if created > 0 && !memo.within_retained(&uid, created) {
        let kept = prune(&api, memo, &ns, &svc.name_any()).await?;
        memo.note_count(&uid, kept);
    }
    Ok(())
}

/// Deletes the service's oldest records beyond the retained number; returns how many are
/// kept.
async fn prune(
    api: &Api<ServiceDeployment>,
    memo: &RecordMemo,
    ns: &str,
    service: &str,
) -> Result<usize, kube::Error> {
    let mut all = api
        .list(&ListParams::default().labels(&format!("{}={service}", labels::SERVICE)))
        .await?
        .items;
    if all.len() <= RETAINED {
        return Ok(all.len());
    }
    all.sort_by(|a, b| b.spec.created_at.cmp(&a.spec.created_at));
    for old in &all[RETAINED..] {
        let name = old.name_any();
        match api.delete(&name, &DeleteParams::default()).await {
            Ok(_) => {}
            Err(e) if is_code(&e, 404) => {}
            Err(e) => return Err(e),
        }
        memo.forget(&format!("{ns}/{name}"));
    }
    Ok(RETAINED)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_are_listed_only_when_a_service_may_have_more_than_are_retained() {
        let memo = RecordMemo::default();
        // Never listed: the first new record lists.
        assert!(!memo.within_retained("svc-1", 1));
        memo.note_count("svc-1", 1);
        // Counted since: no list until the count would pass what is retained.
        for _ in 1..RETAINED {
            assert!(memo.within_retained("svc-1", 1));
        }
        assert!(!memo.within_retained("svc-1", 1));
        // Another service has its own count.
        assert!(!memo.within_retained("svc-2", 1));
    }
}
