//! Leader election on a `coordination.k8s.io` Lease, as client-go's `leaderelection` does it.
//! Two users:
//! - the operator runs its controllers only while it leads, and exits when it loses the lease
//!   (its pod restarts as a standby), so two leaders never write at once;
//! - every registry replica serves traffic, but only the leader runs the background work
//!   (Repository status, lifecycle policies, garbage collection): it starts when a replica
//!   gains the lease and stops when it loses it, without a restart.
//!
//! Why not kube-lease-manager (used before): a holder whose renewals fail (the API server
//! restarting, or RBAC answering 403 while its caches fill) went on believing it led until it
//! could read the Lease again, while a standby took the expired Lease over: two leaders
//! wrote at once for seconds (scenario 36 saw both start tasks). Here a leader steps down
//! when no renewal has succeeded for the renew deadline, which ends before any standby may
//! take over: a standby counts the lease duration from when *it* saw the last renewal, and
//! the renew deadline is shorter (client-go's 10 s of 15 s).

use std::time::{Duration, Instant};

use k8s_openapi::api::coordination::v1::{Lease, LeaseSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{MicroTime, ObjectMeta};
use k8s_openapi::jiff::Timestamp;
use kube::Client;
use kube::api::{Api, PostParams};
use tokio::sync::{oneshot, watch};
use tokio::task::JoinHandle;
use tracing::{info, warn};

pub type LeaseError = kube::Error;

/// The election's clock, from the lease duration (client-go's 15 s / 10 s / 2 s by default).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Timing {
    /// How long a standby waits, after it last saw the Lease renewed, before taking it over.
    pub duration: Duration,
    /// How long a leader goes on without a successful renewal before it steps down.
    pub renew_deadline: Duration,
    /// How often a leader renews, and a standby tries.
    pub retry: Duration,
}

impl Timing {
    pub fn of(lease_seconds: u64) -> Self {
        let duration = Duration::from_secs(lease_seconds.max(3));
        Self {
            duration,
            renew_deadline: duration * 2 / 3,
            retry: (duration * 2 / 15).max(Duration::from_millis(400)),
        }
    }
}

/// A replica's standing in one Lease.
pub struct Leadership {
    pub name: String,
    pub identity: String,
    leading: watch::Receiver<bool>,
    stop: Option<oneshot::Sender<()>>,
    task: Option<JoinHandle<()>>,
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
/// `seconds` loses it to a standby; it steps down itself before that.
pub async fn join(
    client: Client,
    namespace: &str,
    name: &str,
    seconds: u64,
) -> Result<Leadership, LeaseError> {
    let identity = identity();
    let elector = Elector {
        api: Api::namespaced(client, namespace),
        name: name.to_string(),
        identity: identity.clone(),
        timing: Timing::of(seconds),
        observed: None,
        written: None,
    };
    let (leading_tx, leading) = watch::channel(false);
    let (stop, stopped) = oneshot::channel();
    let task = tokio::spawn(elector.run(leading_tx, stopped));
    Ok(Leadership {
        name: name.to_string(),
        identity,
        leading,
        stop: Some(stop),
        task: Some(task),
    })
}

impl Leadership {
    pub fn is_leading(&self) -> bool {
        *self.leading.borrow()
    }

    /// Waits until this replica leads. False when the election stopped (then it never will).
    pub async fn acquired(&mut self) -> bool {
        self.leading.wait_for(|l| *l).await.is_ok()
    }

    /// Waits until this replica no longer leads, or the election stopped (then nobody renews
    /// the lease: not leading either).
    pub async fn lost(&mut self) {
        let _ = self.leading.wait_for(|l| !*l).await;
    }

    /// Resolves when this replica no longer leads, like [`Leadership::lost`], without
    /// borrowing it (the leadership stays free to be released).
    pub fn lost_signal(&self) -> impl std::future::Future<Output = ()> + Send + 'static {
        let mut leading = self.leading.clone();
        async move {
            let _ = leading.wait_for(|l| !*l).await;
        }
    }

    /// Gives the lease up (at shutdown), so a standby takes over at once instead of after
    /// the lease duration.
    pub async fn release(mut self) {
        let held = self.is_leading();
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        let Some(task) = self.task.take() else { return };
        match tokio::time::timeout(Duration::from_secs(5), task).await {
            Ok(Ok(())) if held => {
                info!(lease = %self.name, identity = %self.identity, "released the lease")
            }
            Ok(_) => {}
            Err(_) => warn!(lease = %self.name, "the lease election did not stop"),
        }
    }
}

impl Drop for Leadership {
    fn drop(&mut self) {
        if let Some(task) = &self.task {
            task.abort();
        }
    }
}

/// What one try at the Lease found.
#[derive(Debug, PartialEq)]
enum Standing {
    /// This replica holds it (acquired or renewed just now).
    Held,
    /// Another replica holds it, and its lease has not run out.
    HeldBy(String),
    /// Someone else wrote it between our read and our write: try again.
    Contended,
}

struct Elector {
    api: Api<Lease>,
    name: String,
    identity: String,
    timing: Timing,
    /// The Lease as last seen changed, and when: a standby's lease duration runs from its
    /// own clock's reading, so clocks that disagree do not shorten it.
    observed: Option<(LeaseSpec, Instant)>,
    /// The Lease as this replica last wrote it (with its resourceVersion).
    written: Option<Lease>,
}

impl Elector {
    async fn run(mut self, leading: watch::Sender<bool>, mut stop: oneshot::Receiver<()>) {
        let retry = self.timing.retry;
        loop {
            // Standby: try every retry period (with jitter, so standbys do not collide).
            loop {
                match tokio::time::timeout(retry, self.try_acquire_or_renew()).await {
                    Ok(Ok(Standing::Held)) => break,
                    Ok(Err(e)) => {
                        warn!(lease = %self.name, error = %e, "could not read or write the lease")
                    }
                    _ => {}
                }
                tokio::select! {
                    _ = &mut stop => return,
                    _ = tokio::time::sleep(jittered(retry)) => {}
                }
            }
            let mut renewed = Instant::now();
            leading.send_replace(true);
            // Leader: renew every retry period; step down once no renewal succeeded for the
            // renew deadline (a standby may take over only a lease duration after it saw the
            // last one).
            let why = loop {
                tokio::select! {
                    _ = &mut stop => {
                        self.release().await;
                        leading.send_replace(false);
                        return;
                    }
                    _ = tokio::time::sleep(retry) => {}
                }
                let started = Instant::now();
                let left =
                    (renewed + self.timing.renew_deadline).saturating_duration_since(started);
                match tokio::time::timeout(left, self.try_acquire_or_renew()).await {
                    Ok(Ok(Standing::Held)) => renewed = started,
                    Ok(Ok(Standing::HeldBy(other))) => break format!("{other} holds it"),
                    Ok(Ok(Standing::Contended)) => {}
                    Ok(Err(e)) => {
                        warn!(lease = %self.name, error = %e, "could not renew the lease")
                    }
                    Err(_) => {}
                }
                if renewed.elapsed() >= self.timing.renew_deadline {
                    break format!(
                        "not renewed for {:.1} s",
                        self.timing.renew_deadline.as_secs_f32()
                    );
                }
            };
            leading.send_replace(false);
            warn!(lease = %self.name, identity = %self.identity, why, "stepped down from the lease");
        }
    }

    /// client-go's tryAcquireOrRenew: read the Lease, and write ourselves into it unless
    /// another holder's lease is still running.
    async fn try_acquire_or_renew(&mut self) -> Result<Standing, kube::Error> {
        let now = Timestamp::now();
        let seconds = self.timing.duration.as_secs() as i32;
        // A holder renews what it last wrote, without reading it first: if anyone wrote
        // since, the resourceVersion no longer matches (409), and the next try reads.
        let held = self.written.take().filter(|l| {
            l.spec.as_ref().and_then(|s| s.holder_identity.as_deref()) == Some(&self.identity)
        });
        let read = match held {
            Some(l) => Some(l),
            None => self.api.get_opt(&self.name).await?,
        };
        let Some(mut lease) = read else {
            let spec = claim(None, &self.identity, seconds, now);
            let lease = Lease {
                metadata: ObjectMeta {
                    name: Some(self.name.clone()),
                    ..Default::default()
                },
                spec: Some(spec.clone()),
            };
            let result = self.api.create(&PostParams::default(), &lease).await;
            return self.wrote(spec, result);
        };
        let current = lease.spec.clone().unwrap_or_default();
        self.observe(current.clone());
        let holder = current.holder_identity.as_deref().unwrap_or_default();
        if !holder.is_empty() && holder != self.identity && !self.expired(&current) {
            return Ok(Standing::HeldBy(holder.to_string()));
        }
        let spec = claim(Some(&current), &self.identity, seconds, now);
        lease.spec = Some(spec.clone());
        // The read's resourceVersion rides along: a write since then fails with 409.
        let result = self
            .api
            .replace(&self.name, &PostParams::default(), &lease)
            .await;
        self.wrote(spec, result)
    }

    /// What our write of `spec` came to: held, or beaten to it by another writer (409).
    fn wrote(
        &mut self,
        spec: LeaseSpec,
        result: Result<Lease, kube::Error>,
    ) -> Result<Standing, kube::Error> {
        match result {
            Ok(written) => {
                self.observe(spec);
                self.written = Some(written);
                Ok(Standing::Held)
            }
            Err(kube::Error::Api(s)) if s.code == 409 => Ok(Standing::Contended),
            Err(e) => Err(e),
        }
    }

    fn observe(&mut self, spec: LeaseSpec) {
        if self.observed.as_ref().map(|(s, _)| s) != Some(&spec) {
            self.observed = Some((spec, Instant::now()));
        }
    }

    /// Whether the holder of `spec` let its lease run out, by our clock since we saw it change.
    fn expired(&self, spec: &LeaseSpec) -> bool {
        let duration = Duration::from_secs(spec.lease_duration_seconds.unwrap_or(0).max(0) as u64);
        match &self.observed {
            Some((seen, at)) if seen == spec => at.elapsed() >= duration,
            _ => false,
        }
    }

    /// Empties the Lease if we hold it, so a standby takes it at once.
    async fn release(&mut self) {
        let Ok(Some(mut lease)) = self.api.get_opt(&self.name).await else {
            return;
        };
        let current = lease.spec.clone().unwrap_or_default();
        if current.holder_identity.as_deref() != Some(&self.identity) {
            return;
        }
        lease.spec = Some(released(&current, Timestamp::now()));
        if let Err(e) = self
            .api
            .replace(&self.name, &PostParams::default(), &lease)
            .await
        {
            warn!(lease = %self.name, error = %e, "could not release the lease");
        }
    }
}

/// The Lease `me` writes to hold it: renewed if it holds it already, else taken over (a new
/// acquire time, one more transition).
fn claim(current: Option<&LeaseSpec>, me: &str, seconds: i32, now: Timestamp) -> LeaseSpec {
    let now = MicroTime(now);
    match current {
        Some(c) if c.holder_identity.as_deref() == Some(me) => LeaseSpec {
            renew_time: Some(now),
            lease_duration_seconds: Some(seconds),
            ..c.clone()
        },
        _ => LeaseSpec {
            holder_identity: Some(me.to_string()),
            lease_duration_seconds: Some(seconds),
            acquire_time: Some(now.clone()),
            renew_time: Some(now),
            lease_transitions: Some(
                current
                    .and_then(|c| c.lease_transitions)
                    .map_or(0, |t| t + 1),
            ),
            ..current.cloned().unwrap_or_default()
        },
    }
}

/// client-go's release: no holder, and a one-second lease.
fn released(current: &LeaseSpec, now: Timestamp) -> LeaseSpec {
    LeaseSpec {
        holder_identity: None,
        lease_duration_seconds: Some(1),
        acquire_time: Some(MicroTime(now)),
        renew_time: Some(MicroTime(now)),
        ..current.clone()
    }
}

/// `d` to 2.2 × `d`: client-go's jitter factor for a standby's tries.
fn jittered(d: Duration) -> Duration {
    let mut b = [0u8; 2];
    getrandom::fill(&mut b).expect("the OS has randomness");
    let fraction = f64::from(u16::from_le_bytes(b)) / f64::from(u16::MAX);
    d.mul_f64(1.0 + 1.2 * fraction)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(s: i64) -> Timestamp {
        Timestamp::from_second(1_800_000_000 + s).unwrap()
    }

    #[test]
    fn the_default_timing_is_client_gos() {
        let t = Timing::of(15);
        assert_eq!(t.duration, Duration::from_secs(15));
        assert_eq!(t.renew_deadline, Duration::from_secs(10));
        assert_eq!(t.retry, Duration::from_secs(2));
        // A leader steps down (after its deadline and one more try) before a standby may
        // take over.
        assert!(t.renew_deadline + t.retry < t.duration);
    }

    #[test]
    fn a_free_lease_is_acquired_and_a_held_one_renewed() {
        let first = claim(None, "a", 15, at(0));
        assert_eq!(first.holder_identity.as_deref(), Some("a"));
        assert_eq!(first.lease_transitions, Some(0));
        let renewed = claim(Some(&first), "a", 15, at(2));
        assert_eq!(renewed.acquire_time, first.acquire_time);
        assert_eq!(renewed.renew_time, Some(MicroTime(at(2))));
        assert_eq!(renewed.lease_transitions, Some(0));
        let taken = claim(Some(&renewed), "b", 15, at(20));
        assert_eq!(taken.holder_identity.as_deref(), Some("b"));
        assert_eq!(taken.acquire_time, Some(MicroTime(at(20))));
        assert_eq!(taken.lease_transitions, Some(1));
    }

    #[test]
    fn a_released_lease_has_no_holder() {
        let held = claim(None, "a", 15, at(0));
        let free = released(&held, at(5));
        assert_eq!(free.holder_identity, None);
        assert_eq!(free.lease_duration_seconds, Some(1));
        assert_eq!(free.lease_transitions, Some(0));
    }

    #[test]
    fn jitter_stays_within_client_gos_factor() {
        for _ in 0..100 {
            let j = jittered(Duration::from_secs(2));
            assert!(j >= Duration::from_secs(2) && j <= Duration::from_millis(4400));
        }
    }
}
