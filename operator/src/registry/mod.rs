//! The ECR-compatible OCI registry (`kubecs registry`): the OCI Distribution Specification
//! v1.1 over HTTP, ECR-style tokens, ECR repository semantics through [`AccessPolicy`], and
//! storage backends behind [`Storage`].
//!
//! - `names`, `digest`, `manifest`, `ranges`, `negotiation`: pure decisions (grammar,
//!   validation, ranges, HTTP caching and `Accept`).
//! - `auth`: tokens and principals; `access`: the ECR policy hook.
//! - `storage`: the service API ([`Storage`]) handlers and controllers call; `store`: its one
//!   implementation, every storage algorithm (verification, sessions, tags, GC), over a
//!   `backend`: the narrow object-store trait a medium implements; `layout`: the keys and
//!   stored formats; `fs`: the filesystem backend (blob bodies by `file_chunks`; its durable
//!   steps are `crashpoint`s, a test hook that can abort the process at one); `s3`:
//!   S3-compatible object storage (stateless replicas on one bucket); `index`: the store's
//!   in-memory index of tags, manifests and blob sizes (on S3 blob facts only, briefly).
//! - `serve`: the HTTP/1 server with its timeouts and connection cap.
//! - `handlers`: the HTTP API, mapping each request to its ECR action, and
//!   `POST /kubecs/v1/token` (a registry token for a Kubernetes identity); `images`: the
//!   image list the ECR API's DescribeImages and ListImages read; `pulls`: manifest pulls
//!   coalesced in memory and recorded in batches (ECR's `lastRecordedPullTime`).
//! - `pull_through`: pull through cache rules: misses under a rule's prefix filled from its
//!   upstream registry (streamed, verified, fetched once), cached tags re-checked on ECR's
//!   schedule.
//! - `replication`: pushes queued durably and copied to other registries (blobs, listed
//!   manifests, the manifest, its tags, then its referrers), with retries.
//! - `repositories`: Repository objects as the access policy; `tokenreview`: Kubernetes
//!   tokens as credentials; `cache_rules`: PullThroughCacheRule objects (and their Secrets)
//!   as the pull through cache's rules; `replication_config`: ReplicationConfiguration
//!   objects (and their Secrets) as the replication's rules. These are the registry's only Kubernetes
//!   dependencies.

pub mod access;
pub mod auth;
pub mod backend;
pub mod cache_rules;
pub mod crashpoint;
pub mod creation;
pub mod digest;
pub mod errors;
pub mod file_chunks;
pub mod fs;
pub mod fsck;
pub mod handlers;
pub mod images;
pub mod index;
pub mod layout;
pub mod manifest;
pub mod names;
pub mod negotiation;
#[cfg(test)]
mod parser_props;
pub mod pull_through;
#[cfg(test)]
mod pull_through_tests;
pub mod pulls;
pub mod ranges;
pub mod replication;
pub mod replication_config;
#[cfg(test)]
mod replication_tests;
pub mod repositories;
pub mod s3;
pub mod serve;
pub mod storage;
pub mod store;
pub mod tokenreview;

#[cfg(test)]
mod store_tests;
#[cfg(test)]
mod tests;

use std::sync::Arc;

pub use access::{AccessPolicy, AllowAll, RepositorySettings, StaticPolicy};
pub use auth::{Authenticator, ExternalTokenVerifier, NoExternalTokens, Principal, TokenSigner};
pub use fs::FsStorage;
pub use s3::{S3Config, S3Storage};
pub use storage::{GcReport, ImageInfo, Storage};
pub use store::Store;

/// The default cap on one blob upload: 10 GiB.
pub const DEFAULT_MAX_UPLOAD_BYTES: u64 = 10 * 1024 * 1024 * 1024;

/// Registry settings.
#[derive(Clone, Debug)]
pub struct RegistryConfig {
    /// The account id in ECR's messages.
    pub registry_id: String,
    /// Treat unknown repositories as existing (mutable) instead of NAME_UNKNOWN.
    pub create_on_push: bool,
    /// The largest blob accepted, in bytes.
    pub max_upload_bytes: u64,
    /// Blob upload requests one identity may have in progress at once (0: no cap).
    pub max_uploads_per_identity: usize,
}

impl Default for RegistryConfig {
    fn default() -> RegistryConfig {
        RegistryConfig {
            registry_id: "000000000000".into(),
            create_on_push: false,
            max_upload_bytes: DEFAULT_MAX_UPLOAD_BYTES,
            max_uploads_per_identity: 0,
        }
    }
}

/// Everything a request needs.
pub struct Registry {
    pub storage: Arc<dyn Storage>,
    pub policy: Arc<dyn AccessPolicy>,
    pub auth: Authenticator,
    pub config: RegistryConfig,
    /// Told the repository name after each manifest push or delete (Repository status).
    pub changes: Option<tokio::sync::mpsc::UnboundedSender<String>>,
    /// The blob upload requests in progress, by identity.
    pub uploads: UploadSlots,
    /// Pull through cache rules, when any may be configured.
    pub pull_through: Option<Arc<pull_through::PullThrough>>,
    /// Manifest pulls not yet recorded in storage (flushed by the caller's loop).
    pub pulls: Arc<pulls::PullTimes>,
    /// Replication: pushes are queued for the destinations of the rules that match.
    pub replication: Option<Arc<replication::Replicator>>,
}

/// Counts blob upload requests in progress per identity, against
/// `RegistryConfig::max_uploads_per_identity`.
#[derive(Default)]
pub struct UploadSlots(std::sync::Mutex<std::collections::HashMap<String, usize>>);

/// One upload request's slot, given back when dropped.
pub struct UploadSlot<'a> {
    slots: &'a UploadSlots,
    who: String,
}

impl UploadSlots {
    /// A slot for `who`, or None when `who` has `cap` already (a cap of 0: no cap).
    pub fn take(&self, who: &str, cap: usize) -> Option<UploadSlot<'_>> {
        let mut m = self.0.lock().expect("upload slots");
        let n = m.entry(who.to_string()).or_default();
        if cap > 0 && *n >= cap {
            return None;
        }
        *n += 1;
        Some(UploadSlot {
            slots: self,
            who: who.to_string(),
        })
    }
}

impl Drop for UploadSlot<'_> {
    fn drop(&mut self) {
        let mut m = self.slots.0.lock().expect("upload slots");
        if let Some(n) = m.get_mut(&self.who) {
            *n -= 1;
            if *n == 0 {
                m.remove(&self.who);
            }
        }
    }
}

impl Registry {
    fn changed(&self, repo: &str) {
        if let Some(tx) = &self.changes {
            // The receiver is gone only at shutdown.
            let _ = tx.send(repo.to_string());
        }
    }
}

/// The HTTP API: every path goes to one dispatcher that authenticates, routes `/v2/...` by
/// hand (repository names have any number of segments) and authorizes the ECR action.
pub fn router(state: Arc<Registry>) -> axum::Router {
    axum::Router::new()
        .fallback(handlers::dispatch)
        .with_state(state)
}
