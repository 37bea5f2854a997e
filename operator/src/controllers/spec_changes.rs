//! Which events of an owner object should reconcile it. Its reconciler writes its status:
//! each write comes back as a watch event, and reconciling on it is a second pass over what
//! the first pass just decided (with a thousand services rolling out, half the passes). What
//! a reconciler reads of the object itself (its spec through the generation, labels,
//! annotations such as force-new-deployment, deletion) is fingerprinted; only a changed
//! fingerprint is passed on. Its status is only ever written by the reconciler, which starts
//! each pass from the status it last wrote ([`super::StatusMemo`]).

use std::collections::HashMap;
use std::hash::{DefaultHasher, Hash, Hasher};
use std::sync::Mutex;

use kube::Resource;

/// Objects remembered at most; past it the map starts over (every object then passes once).
const LIMIT: usize = 100_000;

/// The last fingerprint seen of each object, by uid.
#[derive(Default)]
pub struct SpecChanges {
    seen: Mutex<HashMap<String, u64>>,
}

impl SpecChanges {
    /// Whether `obj` differs, in what its reconciler reads of it, from the last time it was
    /// seen here (an object never seen has changed).
    pub fn changed<K: Resource>(&self, obj: &K) -> bool {
        let meta = obj.meta();
        let print = fingerprint(meta);
        let uid = meta.uid.clone().unwrap_or_default();
        let mut seen = self.seen.lock().expect("not poisoned");
        if seen.len() >= LIMIT && !seen.contains_key(&uid) {
            seen.clear();
        }
        seen.insert(uid, print) != Some(print)
    }
}

fn fingerprint(meta: &k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta) -> u64 {
    let mut h = DefaultHasher::new();
    meta.generation.hash(&mut h);
    meta.labels.hash(&mut h);
    meta.annotations.hash(&mut h);
    meta.deletion_timestamp.is_some().hash(&mut h);
    meta.finalizers.hash(&mut h);
    h.finish()
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::api::Service;

    fn service(generation: i64, annotations: serde_json::Value, running: i32) -> Service {
        serde_json::from_value(json!({
            "apiVersion": "ecs.kubecs.io/v1alpha1", "kind": "Service",
            "metadata": {"name": "web", "namespace": "shop", "uid": "u1",
                         "generation": generation, "annotations": annotations},
            "spec": {"taskDefinition": "web", "desiredCount": 2},
            "status": {"runningCount": running},
        }))
        .expect("a Service")
    }

    #[test]
    fn a_status_write_does_not_pass_a_spec_or_annotation_change_does() {
        let changes = SpecChanges::default();
        assert!(changes.changed(&service(1, json!({}), 0)), "first sight");
        // Its own status write: same generation, labels and annotations.
        assert!(!changes.changed(&service(1, json!({}), 2)));
        // `kubectl scale` (spec, so a new generation).
        assert!(changes.changed(&service(2, json!({}), 2)));
        // forceNewDeployment is an annotation.
        let forced = json!({"ecs.kubecs.io/force-new-deployment": "1"});
        assert!(changes.changed(&service(2, forced.clone(), 2)));
        assert!(!changes.changed(&service(2, forced, 3)));
    }
}
