//! Reconcilers: read state from the API server, decide with the pure modules, apply the plan,
//! report in status and events. All state lives in the API server, so a restarted operator
//! resumes from it.

pub mod cluster;
pub mod conditions;
pub mod launch;
pub mod pullsecret;
pub mod repository;
pub mod service;
pub mod task;
pub mod taskdef;

use std::sync::Arc;

use k8s_openapi::api::apps::v1::ControllerRevision;
use k8s_openapi::api::core::v1::{Node, Pod};
use kube::Client;
use kube::runtime::events::{Recorder, Reporter};
use kube::runtime::reflector::Store;

use crate::api::{Service, TaskDefinition};
use crate::metrics::Metrics;

/// The field manager of every server-side apply kubecs makes.
pub const FIELD_MANAGER: &str = "kubecs";

/// What every reconciler gets.
pub struct Context {
    pub client: Client,
    pub recorder: Recorder,
    pub metrics: Arc<Metrics>,
    /// Every Node, kept by a reflector (container instances are read from here, not listed).
    pub nodes: Store<Node>,
    /// Every pod that is not Succeeded or Failed (remaining resources, task counts).
    pub pods: Store<Pod>,
    /// Every ECS Service (cluster service counts, deletion protection).
    pub services: Store<Service>,
    /// Every TaskDefinition (family uniqueness, reference resolution).
    pub taskdefs: Store<TaskDefinition>,
    /// Every registered task definition revision (ControllerRevisions kubecs made).
    pub revisions: Store<ControllerRevision>,
    /// Every task pod kubecs made, in any phase (owners read stopped tasks too).
    pub tasks: Store<Pod>,
    /// Placements made but not yet seen by the pod reflector; held during a decision, so
    /// placement decisions are serialised as ECS's scheduler does.
    pub ledger: tokio::sync::Mutex<launch::Ledger>,
    /// Pods an owner created or deleted and waits to see in its store before planning again.
    pub expectations: std::sync::Mutex<std::collections::HashMap<String, Expectation>>,
    /// How long a finished RunTask stays visible.
    pub stopped_task_retention: std::time::Duration,
    /// The kubecs registry tasks pull from, when configured.
    pub registry_pull: Option<pullsecret::RegistryPull>,
}

/// What an owner waits to see in its store (ReplicaSet-style expectations): planning on a
/// store that lags its own writes would double-create or double-stop tasks. A restarted
/// operator has none: it starts from a fresh list, which holds every committed write.
#[derive(Clone, Debug)]
pub struct Expectation {
    pub created: Vec<String>,
    pub deleted: Vec<String>,
    pub at: std::time::Instant,
}

/// The shared stores.
pub struct Stores {
    pub nodes: Store<Node>,
    pub pods: Store<Pod>,
    pub services: Store<Service>,
    pub taskdefs: Store<TaskDefinition>,
    pub revisions: Store<ControllerRevision>,
    pub tasks: Store<Pod>,
}

impl Context {
    pub fn new(client: Client, metrics: Arc<Metrics>, stores: Stores) -> Self {
        let Stores {
            nodes,
            pods,
            services,
            taskdefs,
            revisions,
            tasks,
        } = stores;
        let recorder = Recorder::new(
            client.clone(),
            Reporter {
                controller: "kubecs".into(),
                instance: None,
            },
        );
        Self {
            client,
            recorder,
            metrics,
            nodes,
            pods,
            services,
            taskdefs,
            revisions,
            tasks,
            ledger: Default::default(),
            expectations: Default::default(),
            stopped_task_retention: std::time::Duration::from_secs(3600),
            registry_pull: None,
        }
    }

    /// Whether the owner `key`'s last writes are visible in the task store (or old enough
    /// to stop waiting for).
    pub fn expectations_met(&self, key: &str, ns: &str) -> bool {
        let mut all = self.expectations.lock().expect("not poisoned");
        let Some(e) = all.get(key) else { return true };
        let present = |name: &str| {
            self.tasks
                .get(&kube::runtime::reflector::ObjectRef::new(name).within(ns))
        };
        let met = e.created.iter().all(|n| present(n).is_some())
            && e.deleted
                .iter()
                .all(|n| present(n).is_none_or(|p| p.metadata.deletion_timestamp.is_some()));
        if met || e.at.elapsed() > std::time::Duration::from_secs(30) {
            all.remove(key);
            return true;
        }
        false
    }

    /// Records what the owner `key` just created and deleted.
    pub fn expect(&self, key: &str, created: Vec<String>, deleted: Vec<String>) {
        if created.is_empty() && deleted.is_empty() {
            return;
        }
        self.expectations.lock().expect("not poisoned").insert(
            key.to_string(),
            Expectation {
                created,
                deleted,
                at: std::time::Instant::now(),
            },
        );
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
pub async fn apply_status<K>(client: &Client, obj: &K, status: impl serde::Serialize) -> Result<()>
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
    api.patch_status(&obj.name_any(), &params, &kube::api::Patch::Apply(&patch))
        .await?;
    Ok(())
}
