//! Request metrics: every answer counted by kind (new query, follow-up, other), status class and
//! the backend that gave it (`none` for answers Sluice makes itself), and timed per kind until
//! its headers are ready (a streamed body is not waited for).
use std::sync::Arc;
use std::time::Duration;

use http::StatusCode;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::registry::Registry;

/// Set by the forwarder on a backend's answer: who gave it.
#[derive(Debug, Clone)]
pub struct ServedBy(pub Arc<str>);

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RequestLabels {
    kind: &'static str,
    status: &'static str,
    backend: Arc<str>,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct KindLabel {
    kind: &'static str,
}

/// `sluice_requests_total` and `sluice_request_duration_seconds`.
#[derive(Clone)]
pub struct RequestMetrics {
    requests: Family<RequestLabels, Counter>,
    duration: Family<KindLabel, Histogram, fn() -> Histogram>,
    none: Arc<str>,
}

fn duration_histogram() -> Histogram {
    // 50 µs .. ~100 s
    Histogram::new(exponential_buckets(50e-6, 3.0, 14))
}

impl Default for RequestMetrics {
    fn default() -> Self {
        Self {
            requests: Family::default(),
            duration: Family::new_with_constructor(duration_histogram),
            none: Arc::from("none"),
        }
    }
}

/// `2xx`, `4xx`…
fn class(status: StatusCode) -> &'static str {
    match status.as_u16() {
        100..=199 => "1xx",
        200..=299 => "2xx",
        300..=399 => "3xx",
        400..=499 => "4xx",
        _ => "5xx",
    }
}

impl RequestMetrics {
    /// Register in `registry`.
    pub fn register(&self, registry: &mut Registry) {
        registry.register(
            "sluice_requests",
            "Client requests answered, by kind (new, follow_up, other), status class and backend (none: answered by Sluice)",
            self.requests.clone(),
        );
        registry.register(
            "sluice_request_duration_seconds",
            "Time from a request's arrival to its answer's headers, by kind",
            self.duration.clone(),
        );
    }

    /// One answer of `kind` with `status`, from `backend`, after `took`.
    pub fn record(
        &self,
        kind: &'static str,
        status: StatusCode,
        backend: Option<&Arc<str>>,
        took: Duration,
    ) {
        let labels = RequestLabels {
            kind,
            status: class(status),
            backend: backend.unwrap_or(&self.none).clone(),
        };
        self.requests.get_or_create(&labels).inc();
        self.duration
            .get_or_create(&KindLabel { kind })
            .observe(took.as_secs_f64());
    }
}
