//! `health:`: polling the backends, and where their running/queued counts come from.
use serde::{Deserialize, Serialize};

use crate::defaults;
use crate::invalid::{positive, Invalid};

/// Backend health polling.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct HealthConfig {
    /// Time between two polls of one backend (default 2000 ms).
    #[serde(default = "defaults::health_interval")]
    pub interval_ms: u64,
    /// Time limit of one poll request (default 1000 ms).
    #[serde(default = "defaults::health_timeout")]
    pub timeout_ms: u64,
    /// Default stats source for backends that set none (default `ui_api`).
    #[serde(default)]
    pub stats: StatsSource,
    /// User sent as `X-Trino-User` (and Basic auth user when `password` is set) on stats requests.
    #[serde(default = "defaults::health_user")]
    pub user: String,
    /// Password for Basic auth on stats requests, for clusters that require it (use
    /// `${VAR}`: no secret in the file).
    #[serde(default)]
    pub password: Option<String>,
    /// Bearer token on stats requests instead of a password (use `${VAR}`).
    #[serde(default)]
    pub bearer_token: Option<String>,
    /// Metric names read when `stats: metrics`.
    #[serde(default)]
    pub metrics: MetricNames,
}

/// Metric names for `stats: metrics` (Trino's JMX-to-OpenMetrics names by default).
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct MetricNames {
    /// Running queries gauge.
    #[serde(default = "defaults::metric_running")]
    pub running: String,
    /// Queued queries gauge.
    #[serde(default = "defaults::metric_queued")]
    pub queued: String,
}

/// Where a backend's running and queued query counts come from.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum StatsSource {
    /// `GET /ui/api/stats` (`runningQueries`, `queuedQueries`): the default.
    #[default]
    UiApi,
    /// `GET /metrics` (OpenMetrics; names set in `health.metrics`).
    Metrics,
    /// Only `GET /v1/info`; counts stay 0.
    InfoOnly,
}

impl StatsSource {
    /// Its name in the configuration (`ui_api`, `metrics`, `info_only`).
    pub fn as_str(self) -> &'static str {
        match self {
            StatsSource::UiApi => "ui_api",
            StatsSource::Metrics => "metrics",
            StatsSource::InfoOnly => "info_only",
        }
    }

    /// The source named `name`, as in the configuration.
    pub fn parse(name: &str) -> Option<StatsSource> {
        [
            StatsSource::UiApi,
            StatsSource::Metrics,
            StatsSource::InfoOnly,
        ]
        .into_iter()
        .find(|s| s.as_str() == name)
    }
}

impl HealthConfig {
    /// Positive interval and time limit.
    pub fn validate(&self) -> Result<(), Invalid> {
        positive("interval_ms", self.interval_ms)?;
        if self.password.as_deref().is_some_and(|p| !p.is_empty())
            && self.bearer_token.as_deref().is_some_and(|t| !t.is_empty())
        {
            return Err(Invalid::new(
                "bearer_token",
                "set a password or a bearer token, not both",
            ));
        }
        positive("timeout_ms", self.timeout_ms)
    }
}
