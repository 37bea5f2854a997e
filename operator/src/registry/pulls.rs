//! ECR's `lastRecordedPullTime`: when each image (manifest digest) was last pulled.
//!
//! A pull must not cost a write: pulls are coalesced in memory, one entry per image holding
//! its latest pull, and flushed in batches (every `--pull-time-flush-seconds`, and at
//! shutdown) through [`Storage::record_pulls`]. However often an image is pulled, it costs at
//! most one write per flush interval. ECR itself refreshes the time at least once every 24
//! hours, so the recorded time is approximate there too.
//!
//! What a crash between two flushes loses: the pulls of at most one interval, held only in
//! this process's memory. The images keep their previous recorded time (or none), which can
//! only make a `sinceImagePulled` rule see them as pulled up to one interval earlier than
//! they were: acceptable against rules counted in days.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::SystemTime;

use super::digest::Digest;
use super::storage::{Storage, StorageResult};

/// The latest pull of each image since the last flush, by repository.
pub type Batch = HashMap<String, HashMap<Digest, SystemTime>>;

/// Pulls not yet written.
#[derive(Default)]
pub struct PullTimes {
    pending: Mutex<Batch>,
}

/// Adds `at` for one image of `batch`, keeping the later time.
fn note(batch: &mut Batch, repo: &str, digest: &Digest, at: SystemTime) {
    let images = match batch.get_mut(repo) {
        Some(images) => images,
        None => batch.entry(repo.to_string()).or_default(),
    };
    images
        .entry(digest.clone())
        .and_modify(|t| *t = (*t).max(at))
        .or_insert(at);
}

impl PullTimes {
    /// Notes a pull of `digest` in `repo` at `at`: memory only.
    pub fn record(&self, repo: &str, digest: &Digest, at: SystemTime) {
        note(
            &mut self.pending.lock().expect("pull times"),
            repo,
            digest,
            at,
        );
    }

    /// The pulls noted since the last take, leaving none pending.
    pub fn take(&self) -> Batch {
        std::mem::take(&mut *self.pending.lock().expect("pull times"))
    }

    /// Puts back what a failed flush did not write, keeping later pulls noted meanwhile.
    fn restore(&self, batch: Batch) {
        let mut pending = self.pending.lock().expect("pull times");
        for (repo, images) in batch {
            for (d, at) in images {
                note(&mut pending, &repo, &d, at);
            }
        }
    }

    /// Writes the pending pulls: one `record_pulls` per repository. A repository whose write
    /// failed is kept for the next flush. Returns the records written; `recorded` is told
    /// each repository written (its Repository status shows its last pull).
    pub async fn flush(
        &self,
        storage: &dyn Storage,
        recorded: &(dyn Fn(&str) + Sync),
    ) -> StorageResult<usize> {
        let mut written = 0;
        let mut failed = Batch::new();
        let mut error = None;
        for (repo, images) in self.take() {
            let mut batch: Vec<(Digest, SystemTime)> = images.into_iter().collect();
            batch.sort();
            match storage.record_pulls(&repo, &batch).await {
                Ok(n) => {
                    written += n;
                    recorded(&repo);
                }
                Err(e) => {
                    failed.insert(repo, batch.into_iter().collect());
                    error = Some(e);
                }
            }
        }
        self.restore(failed);
        match error {
            Some(e) => Err(e),
            None => Ok(written),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::{Duration, UNIX_EPOCH};

    fn at(s: u64) -> SystemTime {
        UNIX_EPOCH + Duration::from_secs(s)
    }

    #[test]
    fn many_pulls_coalesce_into_one_entry_per_image_with_the_latest_time() {
        let p = PullTimes::default();
        let (a, b) = (Digest::sha256(b"a"), Digest::sha256(b"b"));
        // Out of order, as concurrent requests finish.
        for i in (0..1000).rev() {
            p.record("team/app", &a, at(100 + i));
        }
        p.record("team/app", &b, at(5));
        p.record("other", &a, at(7));
        let batch = p.take();
        assert_eq!(batch.len(), 2);
        assert_eq!(
            batch["team/app"],
            HashMap::from([(a.clone(), at(1099)), (b, at(5))])
        );
        assert_eq!(batch["other"], HashMap::from([(a, at(7))]));
        assert!(p.take().is_empty(), "a take leaves nothing pending");
    }

    #[test]
    fn restored_pulls_merge_with_later_ones() {
        let p = PullTimes::default();
        let a = Digest::sha256(b"a");
        p.record("r", &a, at(10));
        let failed = p.take();
        p.record("r", &a, at(20));
        p.restore(failed);
        assert_eq!(p.take()["r"][&a], at(20));
        p.record("r", &a, at(30));
        let failed = p.take();
        p.record("r", &a, at(25));
        p.restore(failed);
        assert_eq!(p.take()["r"][&a], at(30));
    }
}
