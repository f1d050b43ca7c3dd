//! Logs and traces. Logs go to stderr as text or JSON (`log:`); with `tracing.otlp_endpoint`,
//! spans of routing, filters, cache tiers and forwards are exported over OTLP/HTTP, and every
//! forward carries a W3C `traceparent` naming its span, so a coordinator's trace continues
//! Sluice's (and Sluice's continues the client's, when it sends one).
//!
//! Spans are made under one target, [`TARGET`], which only the OpenTelemetry layer enables: with
//! tracing off they are disabled at their call site and cost a check of an atomic.
//!
//! # Layout
//!
//! | module | one job |
//! | --- | --- |
//! | this file | [`init`]: the global subscriber, and the tracer provider when an endpoint is set |
//! | [`export`] | the OTLP exporter's HTTP client: Sluice's own (hyper, rustls) on the runtime |
//! | [`propagate`] | W3C trace context: [`propagate::continue_from`] incoming, [`propagate::inject`] outgoing |
#![forbid(unsafe_code)]

use std::time::Duration;

use opentelemetry::trace::TracerProvider as _;
use opentelemetry::KeyValue;
use opentelemetry_otlp::{WithExportConfig, WithHttpConfig};
use opentelemetry_sdk::trace::{Sampler, SdkTracerProvider};
use opentelemetry_sdk::Resource;
use sluice_config::{LogConfig, LogFormat, TracingConfig};
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::{EnvFilter, Layer};

pub mod export;
pub mod propagate;

/// The target of every span meant for OpenTelemetry.
pub const TARGET: &str = "sluice_otel";

/// Why tracing cannot start.
#[derive(Debug, thiserror::Error)]
pub enum TelemetryError {
    /// The exporter cannot be built.
    #[error("tracing.otlp_endpoint: {0}")]
    Exporter(String),
}

/// What [`init`] started; [`Telemetry::shutdown`] sends the spans still buffered.
pub struct Telemetry {
    provider: Option<SdkTracerProvider>,
}

impl Telemetry {
    /// Flush and stop the exporter (at shutdown).
    pub fn shutdown(self) {
        if let Some(p) = self.provider {
            if let Err(e) = p.shutdown() {
                tracing::warn!(error = %e, "could not send the last spans");
            }
        }
    }
}

/// The log filter: `RUST_LOG`, else the configured level; never the spans' own target.
fn log_filter(level: &str) -> EnvFilter {
    let filter = EnvFilter::try_from_default_env()
        .or_else(|_| EnvFilter::try_new(level))
        .unwrap_or_else(|_| EnvFilter::new("info"));
    filter.add_directive(format!("{TARGET}=off").parse().expect("a valid directive"))
}

/// Install the global subscriber (logs, and spans when `tracing.otlp_endpoint` is set); must run
/// inside the tokio runtime the exporter will use. A second call installs nothing.
pub fn init(log: &LogConfig, tracing_config: &TracingConfig) -> Result<Telemetry, TelemetryError> {
    let logs = match log.format {
        LogFormat::Json => tracing_subscriber::fmt::layer()
            .json()
            .flatten_event(true)
            .with_writer(std::io::stderr)
            .boxed(),
        LogFormat::Text => tracing_subscriber::fmt::layer()
            .with_writer(std::io::stderr)
            .boxed(),
    }
    .with_filter(log_filter(&log.level));
    let Some(endpoint) = tracing_config.otlp_endpoint.as_deref() else {
        let _ = tracing_subscriber::registry().with(logs).try_init();
        return Ok(Telemetry { provider: None });
    };
    let timeout = Duration::from_millis(tracing_config.timeout_ms);
    let exporter = opentelemetry_otlp::SpanExporter::builder()
        .with_http()
        .with_http_client(export::Client::on_this_runtime(timeout))
        .with_endpoint(endpoint)
        .with_timeout(timeout)
        .with_headers(tracing_config.headers.clone().into_iter().collect())
        .build()
        .map_err(|e| TelemetryError::Exporter(e.to_string()))?;
    let resource = Resource::builder()
        .with_service_name(tracing_config.service_name.clone())
        .with_attribute(KeyValue::new("service.version", env!("CARGO_PKG_VERSION")))
        .build();
    let sampler = Sampler::ParentBased(Box::new(Sampler::TraceIdRatioBased(
        tracing_config.sample_ratio,
    )));
    let provider = SdkTracerProvider::builder()
        .with_batch_exporter(exporter)
        .with_sampler(sampler)
        .with_resource(resource)
        .build();
    opentelemetry::global::set_text_map_propagator(
        opentelemetry_sdk::propagation::TraceContextPropagator::new(),
    );
    let spans = tracing_opentelemetry::layer()
        .with_tracer(provider.tracer("sluice"))
        .with_filter(
            tracing_subscriber::filter::Targets::new().with_target(TARGET, tracing::Level::TRACE),
        );
    let _ = tracing_subscriber::registry()
        .with(logs)
        .with(spans)
        .try_init();
    tracing::info!(endpoint, "exporting spans over OTLP");
    Ok(Telemetry {
        provider: Some(provider),
    })
}
