//! Reconcilers: read state from the API server, decide with the pure modules, apply the plan,
//! report in status and events. All state lives in the API server, so a restarted operator
//! resumes from it.

pub mod alarms;
pub mod cluster;
pub mod conditions;
pub mod events;
pub mod image_digests;
pub mod instance_index;
pub mod launch;
pub mod lifecycle_hooks;
pub mod node_changes;
pub mod pod_index;
pub mod preflight;
pub mod pullsecret;
pub mod repository;
pub mod revision_index;
pub mod service;
pub mod service_deployments;
pub mod spec_changes;
pub mod task;
pub mod taskdef;
#[cfg(test)]
pub mod testing;
pub mod traffic;
pub mod watch_index;

use std::sync::Arc;

use k8s_openapi::api::apps::v1::ControllerRevision;
use k8s_openapi::api::core::v1::Node;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::Client;
use kube::runtime::reflector::Store;

use crate::api::{CapacityProvider, EcsCluster, Service, TaskDefinition};
use crate::metrics::Metrics;

/// The field manager of every server-side apply kubecs makes.
pub const FIELD_MANAGER: &str = "kubecs";

/// What every reconciler gets.
pub struct Context {
    pub client: Client,
    pub recorder: events::Recorder,
    pub metrics: Arc<Metrics>,
    /// What the reflectors hold: the snapshot every decision reads.
    pub stores: Stores,
    /// Placements made but not yet seen by the pod reflector; held during a decision, so
    /// placement decisions are serialised as ECS's scheduler does.
    pub ledger: tokio::sync::Mutex<launch::Ledger>,
    /// Pods an owner created or deleted and waits to see in its store before planning again.
    pub expectations: std::sync::Mutex<std::collections::HashMap<String, Expectation>>,
    /// How long a finished RunTask stays visible.
    pub stopped_task_retention: std::time::Duration,
    /// The kubecs registry tasks pull from, when configured.
    pub registry_pull: Option<pullsecret::RegistryPull>,
    /// The last status written for each object: a reconcile starts from it, not from a
    /// store that may not have seen that write yet.
    pub statuses: StatusMemo,
    /// The deployment history records this process wrote.
    pub deployment_records: service_deployments::RecordMemo,
    /// Where deployment alarms are read, when configured.
    pub alertmanager: Option<alarms::Alertmanager>,
    /// When each object last had a full pass of a throttled reconciler, and at which
    /// generation (see [`Context::throttled`]).
    pub passes:
        std::sync::Mutex<std::collections::HashMap<String, (std::time::Instant, Option<i64>)>>,
}

/// What an owner waits to see in its store (ReplicaSet-style expectations): planning on a
/// store that lags its own writes would double-create or double-stop tasks. A restarted
/// operator has none: it starts from a fresh list, which holds every committed write.
#[derive(Clone, Debug, Default)]
pub struct Expectation {
    pub created: Vec<String>,
    /// Creates whose answer was lost (see [`launch::Launched::uncertain`]): expected as the
    /// created are, and settled by creating them again.
    pub uncertain: Vec<k8s_openapi::api::core::v1::Pod>,
    pub deleted: Vec<String>,
    pub at: Option<std::time::Instant>,
}

impl Expectation {
    pub fn is_empty(&self) -> bool {
        self.created.is_empty() && self.uncertain.is_empty() && self.deleted.is_empty()
    }
}

/// The shared stores: read-only, and buildable without a client (tests fill them by hand).
#[derive(Clone)]
pub struct Stores {
    /// Every Node, kept by a reflector (container instances are read from here, not listed).
    pub nodes: Store<Node>,
    /// Every ECS Service (cluster service counts, deletion protection).
    pub services: Store<Service>,
    /// Every TaskDefinition (family uniqueness, reference resolution).
    pub taskdefs: Store<TaskDefinition>,
    /// Every registered task definition revision (ControllerRevisions kubecs made).
    pub revisions: Store<ControllerRevision>,
    /// The same revisions by TaskDefinition, parsed once (from the `revisions` watch).
    pub registered: Arc<watch_index::Shared<revision_index::RevisionsByOwner>>,
    /// Every task pod kubecs made, in any phase (owners read stopped tasks too), as its
    /// owner reads it; kept from the task pods' watch.
    pub tasks: Arc<pod_index::Shared<pod_index::TaskPods>>,
    /// Every CapacityProvider (the instance groups strategies name).
    pub capacity_providers: Store<CapacityProvider>,
    /// Every EcsCluster (services and tasks read their cluster here, not with a GET).
    pub clusters: Store<EcsCluster>,
    /// Each cluster's container instances, parsed once per Node change (from the `nodes` watch).
    pub instances: Arc<watch_index::Shared<instance_index::InstancesByCluster>>,
    /// What runs on each Node, kept from the `pods` watch.
    pub node_usage: Arc<pod_index::Shared<pod_index::NodeUsage>>,
}

impl Stores {
    /// The task pods whose controller is the object with `uid`.
    pub fn tasks_owned_by(&self, uid: &str) -> Vec<Arc<crate::deploy::TaskPod>> {
        self.tasks.read().of(uid)
    }

    /// Cluster `ns/name`, as the reflector holds it.
    pub fn cluster(&self, ns: &str, name: &str) -> Option<Arc<EcsCluster>> {
        self.clusters
            .get(&kube::runtime::reflector::ObjectRef::new(name).within(ns))
    }
}

impl Context {
    pub fn new(client: Client, metrics: Arc<Metrics>, stores: Stores) -> Self {
        let recorder = events::Recorder::new(client.clone(), FIELD_MANAGER);
        Self {
            client,
            recorder,
            metrics,
            stores,
            ledger: Default::default(),
            expectations: Default::default(),
            stopped_task_retention: std::time::Duration::from_secs(3600),
            registry_pull: None,
            statuses: StatusMemo::default(),
            deployment_records: Default::default(),
            alertmanager: None,
            passes: Default::default(),
        }
    }

    /// How long `key` must wait before its next full pass: `None` (and the pass is recorded)
    /// when `interval` has gone by since the last one or its spec changed since. Status that
    /// sums up many other objects (a cluster's counts) is rewritten at most once per
    /// interval, however many of them change.
    pub fn throttled(
        &self,
        key: &str,
        generation: Option<i64>,
        interval: std::time::Duration,
    ) -> Option<std::time::Duration> {
        let mut passes = self.passes.lock().expect("not poisoned");
        let now = std::time::Instant::now();
        if let Some((at, seen)) = passes.get(key)
            && *seen == generation
            && now.duration_since(*at) < interval
        {
            return Some(interval - now.duration_since(*at));
        }
        passes.insert(key.to_string(), (now, generation));
        None
    }

    /// Whether the owner `key`'s last writes are visible in the task store (or old enough
    /// to stop waiting for).
    pub fn expectations_met(&self, key: &str, ns: &str) -> bool {
        let mut all = self.expectations.lock().expect("not poisoned");
        let Some(e) = all.get(key) else { return true };
        let tasks = self.stores.tasks.read();
        let met = e.created.iter().all(|n| tasks.named(ns, n).is_some())
            && e.uncertain.iter().all(|p| {
                tasks
                    .named(ns, p.metadata.name.as_deref().unwrap_or_default())
                    .is_some()
            })
            && e.deleted
                .iter()
                .all(|n| tasks.named(ns, n).is_none_or(|p| p.deleting));
        if met
            || e.at
                .is_none_or(|at| at.elapsed() > std::time::Duration::from_secs(30))
        {
            all.remove(key);
            return true;
        }
        false
    }

    /// Records what the owner `key` just wrote (and what it may have).
    pub fn expect(&self, key: &str, mut writes: Expectation) {
        if writes.is_empty() {
            return;
        }
        writes.at = Some(std::time::Instant::now());
        self.expectations
            .lock()
            .expect("not poisoned")
            .insert(key.to_string(), writes);
    }

    /// Settles the owner `key`'s uncertain creates that its store does not show: each is
    /// created again under its own name. 201 or 409 both say it exists now (the store will
    /// show it); a refusal says this try made nothing; a lost answer leaves it uncertain.
    pub async fn settle_uncertain(&self, key: &str, ns: &str) {
        let pending = {
            let mut all = self.expectations.lock().expect("not poisoned");
            let Some(e) = all.get_mut(key) else { return };
            std::mem::take(&mut e.uncertain)
        };
        if pending.is_empty() {
            return;
        }
        let api: kube::Api<k8s_openapi::api::core::v1::Pod> =
            kube::Api::namespaced(self.client.clone(), ns);
        let (mut made, mut still) = (Vec::new(), Vec::new());
        for pod in pending {
            let name = pod.metadata.name.clone().unwrap_or_default();
            if self.stores.tasks.read().named(ns, &name).is_some() {
                made.push(name);
                continue;
            }
            match api.create(&Default::default(), &pod).await {
                Ok(_) => made.push(name),
                Err(kube::Error::Api(s)) if s.code == 409 => made.push(name),
                Err(kube::Error::Api(s)) if s.code < 500 => {
                    tracing::warn!(pod = %name, error = %s, "a task whose create was uncertain was refused when tried again")
                }
                Err(_) => still.push(pod),
            }
        }
        let mut all = self.expectations.lock().expect("not poisoned");
        if let Some(e) = all.get_mut(key) {
            e.created.extend(made);
            e.uncertain.extend(still);
        }
    }
}

/// Why a reconciliation failed.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("Kubernetes API error: {0}")]
    Kube(#[source] kube::Error),
    #[error("finalizer error: {0}")]
    Finalizer(#[source] Box<kube::runtime::finalizer::Error<Error>>),
    #[error("{0}")]
    DeletionBlocked(String),
    #[error("invalid spec: {0}")]
    InvalidSpec(String),
}

impl From<kube::Error> for Error {
    fn from(e: kube::Error) -> Self {
        Error::Kube(e)
    }
}

impl Error {
    /// A short label for metrics.
    pub fn kind(&self) -> &'static str {
        match self {
            Error::Kube(_) => "kube",
            Error::Finalizer(_) => "finalizer",
            Error::DeletionBlocked(_) => "deletion_blocked",
            Error::InvalidSpec(_) => "invalid_spec",
        }
    }
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Writes `status` by server-side apply with kubecs' one field manager: the status writer of
/// every controller.
pub async fn apply_status<K>(client: &Client, obj: &K, status: impl serde::Serialize) -> Result<K>
where
    K: kube::Resource<DynamicType = (), Scope = kube::core::NamespaceResourceScope>
        + Clone
        + serde::de::DeserializeOwned
        + std::fmt::Debug,
{
    use kube::ResourceExt;
    let api: kube::Api<K> =
        kube::Api::namespaced(client.clone(), &obj.namespace().unwrap_or_default());
    let patch = serde_json::json!({
        "apiVersion": K::api_version(&()),
        "kind": K::kind(&()),
        "status": status,
    });
    let params = kube::api::PatchParams::apply(FIELD_MANAGER).force();
    Ok(api
        .patch_status(&obj.name_any(), &params, &kube::api::Patch::Apply(&patch))
        .await?)
}

/// The status this operator last wrote for each object, by uid, until the object's store
/// holds that write.
///
/// A reconcile triggered by a child's event (a pod created a moment ago) can run before the
/// store has seen the status write of the reconcile before it. Starting from the store's
/// copy would then write back a status without that write's events and counts (a lost
/// "has started 6 tasks." event was seen so). Only the leader writes these statuses, so the
/// last one written is never older than the API server's: it is the one to start from. Once
/// the store holds the very write (the resourceVersion the write answered), the store is
/// the source again and the entry goes: the memo holds the writes in flight, not a second
/// copy of every status (at 1,000 services that copy was megabytes). A restarted operator
/// has none and starts from the fresh list, which holds every write.
#[derive(Default)]
pub struct StatusMemo {
    last: std::sync::Mutex<std::collections::HashMap<String, Written>>,
}

/// A status write: the object's resourceVersion after it, and the status as JSON.
struct Written {
    resource_version: Option<String>,
    status: Vec<u8>,
}

/// Entries kept at most; past it the memo starts over (the stores are then the source).
const STATUS_MEMO_LIMIT: usize = 20_000;

impl StatusMemo {
    /// The status to start a reconcile from: the last one written for this object while
    /// its store (`meta`, `stored`) has not caught up with it, else the store's.
    pub fn current<S>(&self, meta: &ObjectMeta, stored: Option<&S>) -> S
    where
        S: Clone + Default + serde::de::DeserializeOwned,
    {
        let uid = meta.uid.as_deref().unwrap_or_default();
        let mut all = self.last.lock().expect("not poisoned");
        let pending = match all.get(uid) {
            Some(w)
                if w.resource_version.is_some() && w.resource_version == meta.resource_version =>
            {
                all.remove(uid);
                None
            }
            Some(w) => serde_json::from_slice(&w.status).ok(),
            None => None,
        };
        drop(all);
        pending.or_else(|| stored.cloned()).unwrap_or_default()
    }

    fn remember(&self, uid: &str, resource_version: Option<String>, status: Vec<u8>) {
        let mut last = self.last.lock().expect("not poisoned");
        if last.len() >= STATUS_MEMO_LIMIT && !last.contains_key(uid) {
            last.clear();
        }
        last.insert(
            uid.to_string(),
            Written {
                resource_version,
                status,
            },
        );
    }

    /// Whether `status` (as JSON) is what the object already has: the status last written
    /// for it, else (no write in flight) whether the stored object's status equals it.
    pub fn unchanged(&self, uid: &str, status: &[u8], stored_equal: impl FnOnce() -> bool) -> bool {
        if let Some(last) = self.last.lock().expect("not poisoned").get(uid) {
            return last.status == status;
        }
        stored_equal()
    }

    /// The object is going: nothing to remember.
    pub fn forget(&self, uid: &str) {
        self.last.lock().expect("not poisoned").remove(uid);
    }

    /// The writes the stores have not caught up with.
    #[cfg(test)]
    fn in_flight(&self) -> usize {
        self.last.lock().expect("not poisoned").len()
    }
}

impl Context {
    /// Writes an object's status (server-side apply) and remembers it. A status equal to
    /// the one the object has is not written: a write that changes nothing still costs the
    /// API server a patch and wakes every watcher of the object.
    /// `stored` is the object's status as its store holds it.
    pub async fn write_status<K, S>(&self, obj: &K, stored: Option<&S>, status: &S) -> Result<()>
    where
        K: kube::Resource<DynamicType = (), Scope = kube::core::NamespaceResourceScope>
            + Clone
            + serde::de::DeserializeOwned
            + serde::Serialize
            + std::fmt::Debug,
        S: serde::Serialize + PartialEq,
    {
        let kind = K::kind(&());
        let uid = obj.meta().uid.as_deref().unwrap_or_default();
        // Through a Value, as the stored status is: the same fields in the same order.
        let value = serde_json::to_value(status)
            .map_err(|e| Error::InvalidSpec(format!("status does not serialize: {e}")))?;
        let bytes = serde_json::to_vec(&value).unwrap_or_default();
        // Compared as typed values: serializing the whole stored object to read its status
        // was most of a pass's status write.
        if self
            .statuses
            .unchanged(uid, &bytes, || stored == Some(status))
        {
            self.metrics.status_write(&kind, false);
            return Ok(());
        }
        let written = apply_status(&self.client, obj, &value).await?;
        self.metrics.status_write(&kind, true);
        self.statuses
            .remember(uid, written.meta().resource_version.clone(), bytes);
        Ok(())
    }
}

#[cfg(test)]
mod status_memo_tests {
    use super::{ObjectMeta, StatusMemo};
    use crate::api::service::{ServiceEvent, ServiceStatus};

    fn meta(uid: &str, rv: &str) -> ObjectMeta {
        ObjectMeta {
            uid: Some(uid.into()),
            resource_version: Some(rv.into()),
            ..Default::default()
        }
    }

    #[test]
    fn a_reconcile_starts_from_the_last_written_status_until_the_store_holds_it() {
        let memo = StatusMemo::default();
        let stale = ServiceStatus::default();
        // Nothing written yet: the store's copy.
        assert_eq!(memo.current(&meta("u1", "5"), Some(&stale)), stale);
        let written = ServiceStatus {
            events: vec![ServiceEvent {
                id: "1".into(),
                created_at: "t".into(),
                message: "(service web) has started 6 tasks: ...".into(),
            }],
            ..Default::default()
        };
        let json = serde_json::to_vec(&serde_json::to_value(&written).unwrap()).unwrap();
        memo.remember("u1", Some("7".into()), json.clone());
        // The store has not caught up: the written status wins, and a write of the same
        // status changes nothing.
        assert_eq!(memo.current(&meta("u1", "5"), Some(&stale)), written);
        assert!(memo.unchanged("u1", &json, || false));
        // Another object (a new incarnation has another uid) is not affected.
        assert_eq!(memo.current(&meta("u2", "5"), Some(&stale)), stale);
        // The store holds the write: it is the source again, and the entry is gone.
        assert_eq!(memo.current(&meta("u1", "7"), Some(&written)), written);
        assert_eq!(memo.in_flight(), 0);
        assert!(memo.unchanged("u1", &json, || true));
        assert!(!memo.unchanged("u1", &json, || false));
        memo.remember("u1", Some("8".into()), json);
        memo.forget("u1");
        assert_eq!(
            memo.current::<ServiceStatus>(&meta("u1", "5"), None),
            ServiceStatus::default()
        );
    }
}

/// Which watches are failing now (kind → last error), for readiness.
#[derive(Default)]
pub struct WatchHealth {
    failing: std::sync::Mutex<std::collections::BTreeMap<String, String>>,
}

impl WatchHealth {
    pub fn failing(&self, kind: &str, error: String) {
        self.failing
            .lock()
            .expect("not poisoned")
            .insert(kind.to_string(), error);
    }

    pub fn recovered(&self, kind: &str) {
        let mut failing = self.failing.lock().expect("not poisoned");
        if !failing.is_empty() {
            failing.remove(kind);
        }
    }

    /// `watch KIND failing: ERROR` for the first failing watch, if any.
    pub fn first_failure(&self) -> Option<String> {
        let failing = self.failing.lock().expect("not poisoned");
        failing
            .iter()
            .next()
            .map(|(k, e)| format!("watch {k} failing: {e}"))
    }
}

#[cfg(test)]
mod watch_health_tests {
    use super::WatchHealth;

    #[test]
    fn a_failing_watch_is_reported_until_it_recovers() {
        let h = WatchHealth::default();
        assert_eq!(h.first_failure(), None);
        h.failing("pods.", "403 Forbidden".into());
        assert_eq!(
            h.first_failure().as_deref(),
            Some("watch pods. failing: 403 Forbidden")
        );
        h.recovered("nodes.");
        assert!(h.first_failure().is_some());
        h.recovered("pods.");
        assert_eq!(h.first_failure(), None);
    }
}

#[cfg(test)]
mod throttle_tests {
    use std::time::Duration;

    use super::testing::World;

    #[tokio::test]
    async fn a_pass_waits_out_the_interval_unless_the_spec_changed() {
        let world = World::plain();
        let ctx = &world.ctx;
        let second = Duration::from_secs(1);
        assert_eq!(ctx.throttled("shop/EcsCluster/prod", Some(1), second), None);
        let wait = ctx.throttled("shop/EcsCluster/prod", Some(1), second);
        assert!(
            wait.is_some_and(|w| w > Duration::ZERO && w <= second),
            "{wait:?}"
        );
        // Another object, or a new generation of this one, goes at once.
        assert_eq!(ctx.throttled("shop/EcsCluster/dev", Some(1), second), None);
        assert_eq!(ctx.throttled("shop/EcsCluster/prod", Some(2), second), None);
        // Once the interval has gone by, the next pass goes too.
        assert_eq!(
            ctx.throttled("shop/EcsCluster/prod", Some(2), Duration::ZERO),
            None
        );
    }
}
