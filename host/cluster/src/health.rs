//! The health poller: every `health.interval_ms` it asks each backend `GET /v1/info` (healthy when
//! it answers with `starting: false`) and reads its running/queued counts from `/ui/api/stats` or
//! `/metrics`, then publishes the result on the backend's lock-free status.
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use arc_swap::ArcSwap;
use bytes::Bytes;
use http::{header, Request, StatusCode};
use http_body_util::BodyExt;
use sluice_config::{HealthConfig, StatsSource};
use sluice_http::client::{self, Client, ClientOptions};
use sluice_http::tls::Outbound;
use tokio_util::sync::CancellationToken;

use crate::{Backend, BackendStatus, Cluster, Credentials, Health};

/// Why one poll request failed (it makes the backend UNHEALTHY, with this as the reason).
#[derive(Debug, thiserror::Error)]
pub enum PollError {
    /// No connection, or it broke before the answer.
    #[error("{0}")]
    Unreachable(#[from] hyper_util::client::legacy::Error),
    /// The answer's body broke off.
    #[error("{0}")]
    Body(#[from] hyper::Error),
    /// An answer other than 2xx.
    #[error("HTTP {0}")]
    Status(StatusCode),
    /// No answer within `health.timeout_ms`.
    #[error("no answer within {0} ms")]
    Timeout(u128),
    /// The body is not the JSON expected.
    #[error("not JSON: {0}")]
    NotJson(#[from] serde_json::Error),
    /// A field or metric the stats need is missing.
    #[error("no {0}")]
    Missing(String),
    /// The request could not be built (a header value Sluice was configured with).
    #[error("{0}")]
    Request(#[from] http::Error),
}

/// Polls every backend until `shutdown` flips to true.
pub struct HealthPoller {
    cluster: Arc<Cluster>,
    config: Arc<ArcSwap<HealthConfig>>,
    client: Client,
}

impl HealthPoller {
    /// A poller for `cluster`.
    pub fn new(cluster: Arc<Cluster>, config: HealthConfig) -> Self {
        Self::following(cluster, Arc::new(ArcSwap::from_pointee(config)), None)
    }

    /// A poller for `cluster` that reads its settings from `config` at every round (a reload
    /// stores new ones there), trusting `tls` for `https://` backends (`None`: the system's
    /// roots).
    pub fn following(
        cluster: Arc<Cluster>,
        config: Arc<ArcSwap<HealthConfig>>,
        tls: Option<Outbound>,
    ) -> Self {
        let timeout = Duration::from_millis(config.load().timeout_ms);
        let client = client::build(&ClientOptions::connect_within(timeout).pool(2).tls(tls));
        Self {
            cluster,
            config,
            client,
        }
    }

    /// Poll all backends once, concurrently, and publish what was found.
    pub async fn poll_once(&self) {
        let backends = self.cluster.backends();
        let polls = backends.iter().map(|b| async move {
            let status = self.check(b).await;
            if status.health != b.status().health {
                match status.health {
                    Health::Healthy => tracing::info!(backend = b.name(), "backend is HEALTHY"),
                    _ => tracing::warn!(
                        backend = b.name(),
                        reason = status.reason.as_deref().unwrap_or(""),
                        "backend is UNHEALTHY"
                    ),
                }
            }
            b.publish(status);
        });
        futures_util::future::join_all(polls).await;
    }

    /// Poll forever at the configured interval, and at once when the backend list changes;
    /// returns when `stop` is cancelled.
    pub async fn run(self, stop: CancellationToken) {
        loop {
            let interval = Duration::from_millis(self.config.load().interval_ms);
            tokio::select! {
                _ = tokio::time::sleep(interval) => {}
                _ = self.cluster.changed() => {}
                _ = stop.cancelled() => return,
            }
            self.poll_once().await;
        }
    }

    async fn check(&self, backend: &Backend) -> BackendStatus {
        let now = Some(SystemTime::now());
        let unhealthy = |reason: String| BackendStatus {
            health: Health::Unhealthy,
            running_queries: 0,
            queued_queries: 0,
            user_queued: Default::default(),
            reason: Some(reason),
            checked_at: now,
            counted: false,
        };
        let info = match self.get(backend, "/v1/info").await {
            Ok(body) => body,
            Err(e) => return unhealthy(format!("/v1/info: {e}")),
        };
        match serde_json::from_slice::<serde_json::Value>(&info) {
            Ok(v) if v.get("starting").and_then(|s| s.as_bool()) == Some(false) => {}
            Ok(v) if v.get("starting").and_then(|s| s.as_bool()) == Some(true) => {
                return unhealthy("coordinator is starting".into())
            }
            Ok(_) => return unhealthy("/v1/info has no boolean 'starting'".into()),
            Err(e) => return unhealthy(format!("/v1/info is not JSON: {e}")),
        }
        // a drain ends when the cluster says it runs nothing: ask it even with `info_only`
        let source = match backend.stats_source {
            StatsSource::InfoOnly if backend.config.draining => StatsSource::UiApi,
            s => s,
        };
        let (running, queued) = match source {
            StatsSource::InfoOnly => (0, 0),
            StatsSource::UiApi => match self.ui_api_stats(backend).await {
                Ok(counts) => counts,
                Err(e) if source != backend.stats_source => {
                    tracing::debug!(backend = backend.name(), error = %e, "no counts for the drain");
                    return BackendStatus {
                        reason: Some(format!("draining, but /ui/api/stats gives no counts: {e}")),
                        health: Health::Healthy,
                        ..unhealthy(String::new())
                    };
                }
                Err(e) => return unhealthy(format!("/ui/api/stats: {e}")),
            },
            StatsSource::Metrics => match self.metrics_stats(backend).await {
                Ok(counts) => counts,
                Err(e) => return unhealthy(format!("/metrics: {e}")),
            },
        };
        let user_queued = match backend.stats_source {
            StatsSource::UiApi if queued > 0 => {
                self.user_queued(backend).await.unwrap_or_else(|e| {
                    tracing::debug!(
                        backend = backend.name(),
                        error = %e,
                        "no per-user queued counts"
                    );
                    Default::default()
                })
            }
            _ => Default::default(),
        };
        BackendStatus {
            health: Health::Healthy,
            running_queries: running,
            queued_queries: queued,
            user_queued,
            reason: None,
            checked_at: now,
            counted: source != StatsSource::InfoOnly,
        }
    }

    async fn ui_api_stats(&self, backend: &Backend) -> Result<(u32, u32), PollError> {
        let body = self.get(backend, "/ui/api/stats").await?;
        let v: serde_json::Value = serde_json::from_slice(&body)?;
        let count = |field: &str| {
            v.get(field)
                .and_then(|n| n.as_f64())
                .map(|n| n.max(0.0) as u32)
                .ok_or_else(|| PollError::Missing(format!("numeric '{field}'")))
        };
        Ok((count("runningQueries")?, count("queuedQueries")?))
    }

    /// Queued queries per user, from the UI's query list.
    async fn user_queued(
        &self,
        backend: &Backend,
    ) -> Result<std::collections::HashMap<String, u32>, PollError> {
        let body = self.get(backend, "/ui/api/query?state=QUEUED").await?;
        let list: Vec<serde_json::Value> = serde_json::from_slice(&body)?;
        let mut counts = std::collections::HashMap::new();
        for q in &list {
            if q.get("state").and_then(|s| s.as_str()) != Some("QUEUED") {
                continue;
            }
            let user = q
                .pointer("/session/user")
                .or_else(|| q.get("sessionUser"))
                .and_then(|u| u.as_str());
            if let Some(u) = user {
                *counts.entry(u.to_string()).or_insert(0) += 1;
            }
        }
        Ok(counts)
    }

    async fn metrics_stats(&self, backend: &Backend) -> Result<(u32, u32), PollError> {
        let body = self.get(backend, "/metrics").await?;
        let text = String::from_utf8_lossy(&body);
        let config = self.config.load();
        let names = &config.metrics;
        let running = metric_value(&text, &names.running)
            .ok_or_else(|| PollError::Missing(format!("metric {}", names.running)))?;
        let queued = metric_value(&text, &names.queued)
            .ok_or_else(|| PollError::Missing(format!("metric {}", names.queued)))?;
        Ok((running.max(0.0) as u32, queued.max(0.0) as u32))
    }

    async fn get(&self, backend: &Backend, path: &str) -> Result<Bytes, PollError> {
        let config = self.config.load();
        let uri = format!("{}{}", backend.config.url.trim_end_matches('/'), path);
        let req = Request::get(uri).header(header::ACCEPT, "application/json, text/plain");
        let req = credentials(&config)
            .apply(req)
            .body(sluice_http::empty_body())?;
        let timeout = Duration::from_millis(config.timeout_ms);
        let fut = async {
            let resp = self.client.request(req).await?;
            let status = resp.status();
            let body = resp.into_body().collect().await?.to_bytes();
            if !status.is_success() {
                return Err(PollError::Status(status));
            }
            Ok(body)
        };
        tokio::time::timeout(timeout, fut)
            .await
            .map_err(|_| PollError::Timeout(timeout.as_millis()))?
    }
}

/// The value of the first sample of `name` in OpenMetrics/Prometheus text (labels ignored).
pub fn metric_value(text: &str, name: &str) -> Option<f64> {
    text.lines()
        .filter(|l| !l.starts_with('#'))
        .find_map(|line| {
            let rest = line.strip_prefix(name)?;
            let rest = if let Some(labels) = rest.strip_prefix('{') {
                &labels[labels.find('}')? + 1..]
            } else {
                rest
            };
            if !rest.starts_with(' ') {
                return None; // a longer metric name that shares the prefix
            }
            rest.split_whitespace().next()?.parse().ok()
        })
}

/// The credentials `health` configures.
pub fn credentials(health: &HealthConfig) -> Credentials {
    Credentials::new(
        &health.user,
        health.password.as_deref(),
        health.bearer_token.as_deref(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_gauges_from_openmetrics_text() {
        let text = "# TYPE trino_execution_name_QueryManager_RunningQueries gauge\n\
                    trino_execution_name_QueryManager_RunningQueriesTotal 99\n\
                    trino_execution_name_QueryManager_RunningQueries{instance=\"c1\"} 7.0\n\
                    trino_execution_name_QueryManager_QueuedQueries 3\n";
        assert_eq!(
            metric_value(text, "trino_execution_name_QueryManager_RunningQueries"),
            Some(7.0)
        );
        assert_eq!(
            metric_value(text, "trino_execution_name_QueryManager_QueuedQueries"),
            Some(3.0)
        );
        assert_eq!(metric_value(text, "missing"), None);
    }
}
