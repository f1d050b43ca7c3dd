//! `tracing:`: OpenTelemetry spans exported over OTLP/HTTP (off unless an endpoint is given).
use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::defaults;
use crate::invalid::{positive, Invalid};

/// Distributed tracing.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct TracingConfig {
    /// Where spans go: an OTLP/HTTP traces endpoint such as
    /// `http://otel-collector:4318/v1/traces` (default none: no spans are made or sent).
    #[serde(default)]
    pub otlp_endpoint: Option<String>,
    /// Headers sent with every export (e.g. `authorization: "Bearer ${OTLP_TOKEN}"`).
    #[serde(default)]
    pub headers: BTreeMap<String, String>,
    /// `service.name` of the spans (default `sluice`).
    #[serde(default = "defaults::service_name")]
    pub service_name: String,
    /// Share of new traces recorded, 0.0–1.0 (default 1.0); a request that arrives with a
    /// sampled `traceparent` follows its caller's choice.
    #[serde(default = "defaults::sample_ratio")]
    pub sample_ratio: f64,
    /// Time limit of one export (default 10000 ms).
    #[serde(default = "defaults::otlp_timeout")]
    pub timeout_ms: u64,
}

impl TracingConfig {
    /// An http(s) endpoint, a ratio in 0..=1, a positive time limit.
    pub fn validate(&self) -> Result<(), Invalid> {
        if let Some(url) = &self.otlp_endpoint {
            let ok = url
                .parse::<http::Uri>()
                .ok()
                .filter(|u| matches!(u.scheme_str(), Some("http" | "https")) && u.host().is_some());
            if ok.is_none() {
                return Err(Invalid::new(
                    "otlp_endpoint",
                    format!(
                        "'{url}' must be an http(s) URL such as http://collector:4318/v1/traces"
                    ),
                ));
            }
        }
        if !(0.0..=1.0).contains(&self.sample_ratio) {
            return Err(Invalid::new("sample_ratio", "must be between 0.0 and 1.0"));
        }
        positive("timeout_ms", self.timeout_ms)
    }
}
