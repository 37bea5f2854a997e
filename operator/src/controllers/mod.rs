//! Reconcilers: read state from the API server, decide with the pure modules, apply the plan,
//! report in status and events. All state lives in the API server, so a restarted operator
//! resumes from it.

pub mod cluster;
pub mod conditions;
pub mod taskdef;

use std::sync::Arc;

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
}

impl Context {
    pub fn new(
        client: Client,
        metrics: Arc<Metrics>,
        nodes: Store<Node>,
        pods: Store<Pod>,
        services: Store<Service>,
        taskdefs: Store<TaskDefinition>,
    ) -> Self {
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
