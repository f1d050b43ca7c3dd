//! Trino Gateway's JSON: its backend (`ProxyBackendConfiguration`), its `ClusterStats`, and how
//! they map onto Sluice's backends.
use serde::{Deserialize, Serialize};
use sluice_cluster::{Backend, Health};
use sluice_config::BackendConfig;

/// Trino Gateway's `ProxyBackendConfiguration`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct BackendJson {
    /// Its name.
    pub name: String,
    /// Where requests go.
    pub proxy_to: String,
    /// Takes new queries.
    #[serde(default = "yes")]
    pub active: bool,
    /// Routing group.
    #[serde(default = "adhoc")]
    pub routing_group: String,
    /// The URL users see.
    #[serde(default)]
    pub external_url: Option<String>,
}

fn yes() -> bool {
    true
}
fn adhoc() -> String {
    "adhoc".into()
}

/// Trino Gateway's `ClusterStats` (`GET /api/public/backends/{name}/state`).
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct ClusterStats {
    cluster_id: String,
    num_worker_nodes: u32,
    running_query_count: u32,
    queued_query_count: u32,
    trino_status: &'static str,
    proxy_to: String,
    external_url: String,
    routing_group: String,
    user_queued_count: std::collections::HashMap<String, u32>,
}

impl BackendJson {
    pub(crate) fn of(b: &Backend) -> Self {
        BackendJson {
            name: b.name().to_string(),
            proxy_to: b.config.url.clone(),
            active: b.accepts_new(),
            routing_group: b.group().to_string(),
            external_url: Some(
                b.config
                    .external_url
                    .clone()
                    .unwrap_or_else(|| b.config.url.clone()),
            ),
        }
    }

    /// As a Sluice backend; what Trino Gateway has no field for keeps its value from `old`.
    pub(crate) fn into_config(self, old: Option<&BackendConfig>) -> BackendConfig {
        let external_url = self.external_url.filter(|u| *u != self.proxy_to);
        BackendConfig {
            name: self.name,
            url: self.proxy_to.trim_end_matches('/').to_string(),
            group: self.routing_group,
            active: self.active,
            draining: false,
            external_url,
            rewrite_next_uri: old.is_some_and(|o| o.rewrite_next_uri),
            stats: old.and_then(|o| o.stats),
            max_queries: old.and_then(|o| o.max_queries),
        }
    }
}

pub(crate) fn state(b: &Backend) -> ClusterStats {
    let s = b.status();
    let tg = BackendJson::of(b);
    ClusterStats {
        cluster_id: tg.name,
        num_worker_nodes: 0,
        running_query_count: s.running_queries,
        queued_query_count: s.queued_queries,
        trino_status: match s.health {
            Health::Healthy => "HEALTHY",
            Health::Unhealthy => "UNHEALTHY",
            Health::Pending => "PENDING",
        },
        proxy_to: tg.proxy_to,
        external_url: tg.external_url.unwrap_or_default(),
        routing_group: tg.routing_group,
        user_queued_count: s.user_queued.clone(),
    }
}

/// Trino Gateway's update replaces the fields it knows.
pub(crate) fn patch_of(b: BackendConfig) -> sluice_backends::BackendPatch {
    sluice_backends::BackendPatch {
        url: Some(b.url),
        group: Some(b.group),
        external_url: Some(b.external_url),
        stats: None,
        max_queries: None,
        rewrite_next_uri: None,
        active: Some(b.active),
    }
}
