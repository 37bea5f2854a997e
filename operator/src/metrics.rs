//! Prometheus metrics of the controllers, labelled by controller and error kind.

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ControllerLabels {
    pub controller: String,
}

/// A status write made, or skipped because it would change nothing.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct StatusWriteLabels {
    pub kind: String,
    pub outcome: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ErrorLabels {
    pub controller: String,
    pub error: String,
}

/// The operator's metrics.
pub struct Metrics {
    pub reconciliations: Family<ControllerLabels, Counter>,
    pub failures: Family<ErrorLabels, Counter>,
    pub reconcile_duration: Family<ControllerLabels, Histogram>,
    pub status_writes: Family<StatusWriteLabels, Counter>,
}

impl Metrics {
    pub fn new(registry: &mut Registry) -> Self {
        let m = Self {
            reconciliations: Family::default(),
            failures: Family::default(),
            reconcile_duration: Family::new_with_constructor(|| {
                Histogram::new(exponential_buckets(0.001, 2.0, 14))
            }),
            status_writes: Family::default(),
        };
        // The registry's `kubecs` prefix and the counters' `_total` are added on encoding:
        // these are kubecs_reconciliations_total, kubecs_reconcile_failures_total and
        // kubecs_reconcile_duration_seconds (and kubecs_status_writes_total).
        registry.register(
            "reconciliations",
            "Reconciliations started",
            m.reconciliations.clone(),
        );
        registry.register(
            "reconcile_failures",
            "Reconciliations that failed, by error kind",
            m.failures.clone(),
        );
        registry.register(
            "reconcile_duration_seconds",
            "Time spent in one reconciliation",
            m.reconcile_duration.clone(),
        );
        registry.register(
            "status_writes",
            "Status writes by kind: written, or skipped as unchanged",
            m.status_writes.clone(),
        );
        m
    }

    /// Counts a status write of `kind`: `written`, or `unchanged` when it was skipped.
    pub fn status_write(&self, kind: &str, written: bool) {
        self.status_writes
            .get_or_create(&StatusWriteLabels {
                kind: kind.into(),
                outcome: if written { "written" } else { "unchanged" }.into(),
            })
            .inc();
    }

    /// Counts a reconciliation and times it: the duration is observed when the returned
    /// guard drops, however the reconcile ends.
    #[must_use = "the duration is observed when the guard drops"]
    pub fn reconciled(&self, controller: &str) -> ReconcileTimer {
        let labels = ControllerLabels {
            controller: controller.into(),
        };
        self.reconciliations.get_or_create(&labels).inc();
        ReconcileTimer {
            histogram: self.reconcile_duration.get_or_create(&labels).clone(),
            start: std::time::Instant::now(),
        }
    }

    pub fn failed(&self, controller: &str, error: &str) {
        self.failures
            .get_or_create(&ErrorLabels {
                controller: controller.into(),
                error: error.into(),
            })
            .inc();
    }
}

/// Observes a reconciliation's duration when dropped.
pub struct ReconcileTimer {
    histogram: Histogram,
    start: std::time::Instant,
}

impl Drop for ReconcileTimer {
    fn drop(&mut self) {
        self.histogram.observe(self.start.elapsed().as_secs_f64());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn metric_names_are_what_prometheus_expects() {
        let mut registry = Registry::with_prefix("kubecs");
        let m = Metrics::new(&mut registry);
        drop(m.reconciled("service"));
        m.failed("service", "kube");
        let mut text = String::new();
        prometheus_client::encoding::text::encode(&mut text, &registry).unwrap();
        assert!(
            text.contains("kubecs_reconciliations_total{controller=\"service\"} 1"),
            "{text}"
        );
        assert!(
            text.contains(
                "kubecs_reconcile_failures_total{controller=\"service\",error=\"kube\"} 1"
            )
        );
        assert!(text.contains("kubecs_reconcile_duration_seconds_count{controller=\"service\"} 1"));
        assert!(!text.contains("kubecs_kubecs_"), "{text}");
    }
}
