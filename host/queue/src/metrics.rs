//! The queue's metrics: depth and slots (fleet-wide, as the store holds them, refreshed by the
//! sweeper), and what this instance did: admissions, time waited, waits that ended otherwise.
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::registry::Registry;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub(crate) struct GroupLabel {
    pub group: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub(crate) struct BackendLabel {
    pub backend: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub(crate) struct AdmissionLabels {
    pub group: String,
    /// `direct` (never waited) or `queued`.
    pub path: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub(crate) struct EndLabels {
    pub group: String,
    /// `cancelled`, `timed_out`, `abandoned`, `failed`, `refused` (the queue was full).
    pub reason: &'static str,
}

/// Every queue metric.
#[derive(Clone)]
pub struct QueueMetrics {
    pub(crate) depth: Family<GroupLabel, Gauge>,
    pub(crate) slots: Family<BackendLabel, Gauge>,
    pub(crate) admissions: Family<AdmissionLabels, Counter>,
    pub(crate) waited: Family<GroupLabel, Histogram, fn() -> Histogram>,
    pub(crate) ended: Family<EndLabels, Counter>,
    pub(crate) store_errors: Counter,
}

fn wait_histogram() -> Histogram {
    // 10 ms .. ~20 min
    Histogram::new(exponential_buckets(0.01, 3.0, 12))
}

impl Default for QueueMetrics {
    fn default() -> Self {
        Self {
            depth: Family::default(),
            slots: Family::default(),
            admissions: Family::default(),
            waited: Family::new_with_constructor(wait_histogram),
            ended: Family::default(),
            store_errors: Counter::default(),
        }
    }
}

impl QueueMetrics {
    /// Register in `registry`.
    pub fn register(&self, registry: &mut Registry) {
        registry.register(
            "sluice_queue_depth",
            "Queries waiting in the gateway's queue, by routing group (fleet-wide)",
            self.depth.clone(),
        );
        registry.register(
            "sluice_queue_slots",
            "Queries admitted and not yet seen to end, by backend (fleet-wide; counted against max_queries)",
            self.slots.clone(),
        );
        registry.register(
            "sluice_queue_admissions",
            "Queries this instance admitted to a backend with limits, by group and path (direct: never waited; queued)",
            self.admissions.clone(),
        );
        registry.register(
            "sluice_queue_wait_seconds",
            "Time queries admitted by this instance waited in the queue, by group",
            self.waited.clone(),
        );
        registry.register(
            "sluice_queue_ended",
            "Waits this instance ended without running the query, by group and reason",
            self.ended.clone(),
        );
        registry.register(
            "sluice_queue_store_errors",
            "Queue operations the store did not answer (new queries then go through without a slot)",
            self.store_errors.clone(),
        );
    }

    pub(crate) fn ended(&self, group: &str, reason: &'static str) {
        self.ended
            .get_or_create(&EndLabels {
                group: group.to_string(),
                reason,
            })
            .inc();
    }
}
