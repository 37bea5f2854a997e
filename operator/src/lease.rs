//! Leader election on a `coordination.k8s.io` Lease, through kube-lease-manager (its renew,
//! grace and takeover logic). Two users:
//! - the operator runs its controllers only while it leads, and exits when it loses the lease
//!   (its pod restarts as a standby), so two leaders never write at once;
//! - every registry replica serves traffic, but only the leader runs the background work
//!   (Repository status, lifecycle policies, garbage collection): it starts when a replica
//!   gains the lease and stops when it loses it, without a restart.

use std::time::Duration;

use kube::Client;
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tracing::info;

pub type LeaseError = kube_lease_manager::LeaseManagerError;

/// A replica's standing in one Lease.
pub struct Leadership {
    pub name: String,
    pub identity: String,
    leading: watch::Receiver<bool>,
    manager: Option<JoinHandle<kube_lease_manager::Result<kube_lease_manager::LeaseManager>>>,
}

/// This process's identity among replicas: the pod name (HOSTNAME) and the process id, so a
/// restarted container is a new holder.
pub fn identity() -> String {
    format!(
        "{}-{}",
        std::env::var("HOSTNAME").unwrap_or_else(|_| "kubecs".into()),
        std::process::id()
    )
}

/// Joins the election for Lease `name` in `namespace`. A holder that stops renewing for
/// `seconds` loses it to a standby.
pub async fn join(
    client: Client,
    namespace: &str,
    name: &str,
    seconds: u64,
) -> Result<Leadership, LeaseError> {
    let identity = identity();
    let manager = kube_lease_manager::LeaseManagerBuilder::new(client, name)
        .with_namespace(namespace)
        .with_identity(&identity)
        .with_duration(seconds.max(2))
        .with_grace((seconds / 3).max(1))
        .build()
        .await?;
    let (leading, task) = manager.watch().await;
    Ok(Leadership {
        name: name.to_string(),
        identity,
        leading,
        manager: Some(task),
    })
}

impl Leadership {
    pub fn is_leading(&self) -> bool {
        *self.leading.borrow()
    }

    /// Waits until this replica leads. False when the lease manager stopped (then it never will).
    pub async fn acquired(&mut self) -> bool {
        loop {
            if *self.leading.borrow_and_update() {
                return true;
            }
            if self.leading.changed().await.is_err() {
                return false;
            }
        }
    }

    /// Waits until this replica no longer leads, or the lease manager stopped (then nobody
    /// renews the lease: not leading either).
    pub async fn lost(&mut self) {
        loop {
            if !*self.leading.borrow_and_update() {
                return;
            }
            if self.leading.changed().await.is_err() {
                return;
            }
        }
    }

    /// Gives the lease up (at shutdown), so a standby takes over at once instead of after
    /// the lease duration.
    pub async fn release(mut self) {
        let Some(task) = self.manager.take() else {
            return;
        };
        let held = self.is_leading();
        // Dropping the last receiver tells the manager to release the lease and return.
        drop(self.leading);
        match tokio::time::timeout(Duration::from_secs(5), task).await {
            Ok(Ok(Ok(_))) if held => {
                info!(lease = %self.name, identity = %self.identity, "released the lease")
            }
            Ok(Ok(Ok(_))) => {}
            Ok(Ok(Err(e))) => {
                tracing::warn!(lease = %self.name, error = %e, "could not release the lease")
            }
            Ok(Err(_)) | Err(_) => {
                tracing::warn!(lease = %self.name, "the lease manager did not stop")
            }
        }
    }
}
