//! Re-reading the configuration file (SIGHUP, `POST /api/v1/reload`, `sluice reload`). The file is
//! read and checked whole — YAML, every section, every changed filter module compiled and
//! self-tested — before anything is applied; a file that fails any check leaves the running
//! configuration in place, and the failure shows in `/api/v1/status` and in the metrics.
//!
//! Applied at once: routing settings (default group, strict groups), the queue settings, admin tokens, health
//! settings, the backends seed (see `sluice_backends`), the filter slots whose module or
//! config changed in the file, and the listeners' certificate files (read again, as a renewal
//! leaves them). Listeners, cache, store, proxy and sandbox settings need a restart:
//! the report names those that changed.
use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use arc_swap::ArcSwap;
use futures_util::future::BoxFuture;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;
use sluice_admin::api::ReloadReport;
use sluice_admin::auth::Tokens;
use sluice_backends::Backends;
use sluice_config::{Config, HealthConfig, SlotConfig};
use sluice_filters::{Candidate, FilterChain, Persist};
use sluice_http::tls_server::ServerTls;
use sluice_routing::Routing;

/// What a reload changes.
pub struct Reloader {
    pub(crate) source: Option<crate::source::ConfigSource>,
    pub(crate) applied: Mutex<Config>,
    /// The file's filter slots as last applied: (sha256 of the module, config JSON), read when
    /// they were applied (a module file rewritten in place is a change).
    pub(crate) applied_slots: Mutex<HashMap<String, (String, String)>>,
    pub(crate) last: Mutex<Option<ReloadReport>>,
    pub(crate) routing: Arc<Routing>,
    pub(crate) queue: Arc<sluice_queue::Queue>,
    pub(crate) tokens: Arc<Tokens>,
    pub(crate) health: Arc<ArcSwap<HealthConfig>>,
    pub(crate) backends: Arc<Backends>,
    pub(crate) chain: Option<Arc<FilterChain>>,
    /// The listeners' certificates: read again at every reload.
    pub(crate) tls: Vec<ServerTls>,
    pub(crate) metrics: ReloadMetrics,
    /// One reload at a time.
    pub(crate) turn: tokio::sync::Mutex<()>,
}

/// `sluice_config_reloads_total{result}` and `sluice_config_last_reload_ok`.
#[derive(Clone, Default)]
pub struct ReloadMetrics {
    reloads: Family<Vec<(String, String)>, Counter>,
    last_ok: Gauge,
}

impl ReloadMetrics {
    /// Register in `registry`.
    pub fn register(&self, registry: &mut Registry) {
        registry.register(
            "sluice_config_reloads",
            "Configuration reloads, by result (ok, failed)",
            self.reloads.clone(),
        );
        registry.register(
            "sluice_config_last_reload_ok",
            "1 if the last reload applied the file (or none was tried), 0 if it was refused",
            self.last_ok.clone(),
        );
        self.last_ok.set(1);
    }
}

/// A slot's module and config as the file gives them.
fn slot_source(s: &SlotConfig) -> Result<(Vec<u8>, String), String> {
    let bytes = match s.module.strip_prefix("builtin:") {
        Some(name) => sluice_filters::builtin::bytes(name)
            .ok_or_else(|| format!("routing.chain: slot {}: no builtin '{name}'", s.slot))?
            .to_vec(),
        None => std::fs::read(&s.module)
            .map_err(|e| format!("routing.chain: slot {}: {}: {e}", s.slot, s.module))?,
    };
    let config = serde_json::to_string(&s.config)
        .map_err(|e| format!("routing.chain: slot {}: config: {e}", s.slot))?;
    Ok((bytes, config))
}

/// What the swap pipeline is offered for slot `s` of the file.
fn candidate<'a>(s: &'a SlotConfig, bytes: &'a [u8], config: &str) -> Candidate<'a> {
    Candidate {
        slot: &s.slot,
        module: &s.module,
        bytes,
        config_json: config.to_string(),
    }
}

/// A reading of each slot of a chain configuration: (sha256 of the module, config JSON).
pub(crate) fn slot_digests(chain: &[SlotConfig]) -> HashMap<String, (String, String)> {
    chain
        .iter()
        .filter_map(|s| {
            let (bytes, config) = slot_source(s).ok()?;
            Some((
                s.slot.clone(),
                (sluice_filters::engine::sha256(&bytes), config),
            ))
        })
        .collect()
}

impl Reloader {
    async fn run(&self) -> Result<(Vec<String>, Vec<String>), String> {
        let source = self
            .source
            .as_ref()
            .ok_or("this gateway runs without a configuration file")?;
        let new = source.load()?;
        let old = self.applied.lock().unwrap().clone();
        let mut applied = Vec::new();
        let mut restart = Vec::new();
        let differs = |a: &dyn erased_json::Json, b: &dyn erased_json::Json| a.json() != b.json();
        // what only a restart changes
        for (name, changed) in [
            ("listen", old.listen != new.listen),
            ("admin.listen", old.admin.listen != new.admin.listen),
            ("admin.tls", old.admin.tls != new.admin.tls),
            ("backend_tls", old.backend_tls != new.backend_tls),
            (
                "admin.trino_gateway_api_on_proxy",
                old.admin.trino_gateway_api_on_proxy != new.admin.trino_gateway_api_on_proxy,
            ),
            ("cache", differs(&old.cache, &new.cache)),
            ("store", differs(&old.store, &new.store)),
            ("proxy", differs(&old.proxy, &new.proxy)),
            ("filters", differs(&old.filters, &new.filters)),
            ("log", differs(&old.log, &new.log)),
            ("instance_id", old.instance_id != new.instance_id),
            (
                "routing.on_filter_error",
                old.routing.on_filter_error != new.routing.on_filter_error,
            ),
            (
                "routing.external",
                old.routing.external != new.routing.external,
            ),
        ] {
            if changed {
                restart.push(name.to_string());
            }
        }
        // the filter slots whose file entry changed: all checked before any is swapped
        let before = self.applied_slots.lock().unwrap().clone();
        let mut now = HashMap::new();
        let mut swaps = Vec::new();
        for s in &new.routing.chain {
            let (bytes, config) = slot_source(s)?;
            let digest = (sluice_filters::engine::sha256(&bytes), config.clone());
            if before.get(&s.slot) != Some(&digest) {
                swaps.push((s.clone(), bytes, config));
            }
            now.insert(s.slot.clone(), digest);
        }
        let removed: Vec<&str> = old
            .routing
            .chain
            .iter()
            .map(|s| s.slot.as_str())
            .filter(|n| !new.routing.chain.iter().any(|s| s.slot == *n))
            .collect();
        if !removed.is_empty() {
            restart.push(format!(
                "routing.chain (slots removed: {})",
                removed.join(", ")
            ));
        }
        if !swaps.is_empty() {
            let chain = self.chain.as_ref().ok_or(
                "routing.chain: the gateway started without a chain; adding one needs a restart",
            )?;
            for (s, bytes, config) in &swaps {
                chain
                    .check(candidate(s, bytes, config))
                    .await
                    .map_err(|e| format!("routing.chain: slot {}: {e}", s.slot))?;
            }
        }
        // the listeners' certificate files (renewed in place): read now, used once all is checked
        let mut certificates = Vec::new();
        for tls in &self.tls {
            let fresh = tls.load().map_err(|e| format!("{}.tls: {e}", tls.name()))?;
            certificates.push((tls, fresh));
        }
        // everything is checked: apply
        for (tls, fresh) in certificates {
            if fresh.cert.first().map(|c| c.to_vec()).unwrap_or_default() != tls.leaf() {
                applied.push(format!("{}.tls (certificate)", tls.name()));
            }
            tls.install(fresh);
        }
        if differs(&old.routing, &new.routing) {
            self.routing.set_config(new.routing.clone());
            applied.push("routing".to_string());
        }
        if differs(&old.queue, &new.queue) {
            self.queue.set_config(new.queue.clone());
            applied.push("queue".to_string());
        }
        if differs(&old.admin.tokens, &new.admin.tokens) {
            self.tokens.replace(&new.admin.tokens);
            applied.push("admin.tokens".to_string());
        }
        if differs(&old.health, &new.health) {
            self.health.store(Arc::new(new.health.clone()));
            if old.health.stats != new.health.stats {
                let cluster = self.backends.cluster();
                cluster.replace_with(&cluster.configs(), new.health.stats);
            }
            applied.push("health".to_string());
        }
        match self.backends.reseed(new.backends.clone()).await {
            Ok(true) => applied.push("backends".to_string()),
            Ok(false) => {}
            Err(e) => restart.push(format!("backends (not applied: {e})")),
        }
        if let Some(chain) = &self.chain {
            for (s, bytes, config) in &swaps {
                chain
                    .swap(
                        candidate(s, bytes, config),
                        Persist::New {
                            created_by: "reload",
                        },
                    )
                    .await
                    .map_err(|e| {
                        format!(
                            "routing.chain: slot {}: {e} (slots before it were swapped)",
                            s.slot
                        )
                    })?;
                applied.push(format!("routing.chain.{}", s.slot));
            }
        }
        *self.applied.lock().unwrap() = new;
        *self.applied_slots.lock().unwrap() = now;
        Ok((applied, restart))
    }
}

/// Comparing configuration sections through their serialised form (they are not `PartialEq`).
mod erased_json {
    pub trait Json {
        fn json(&self) -> serde_json::Value;
    }
    impl<T: serde::Serialize> Json for T {
        fn json(&self) -> serde_json::Value {
            serde_json::to_value(self).unwrap_or_default()
        }
    }
}

impl sluice_admin::Reload for Reloader {
    fn reload(&self) -> BoxFuture<'_, ReloadReport> {
        Box::pin(async move {
            let _turn = self.turn.lock().await;
            let path = self.source.as_ref().map(|s| s.path.display().to_string());
            let at = sluice_store::now_ms();
            let report = match self.run().await {
                Ok((applied, restart_needed)) => {
                    tracing::info!(?applied, ?restart_needed, "configuration reloaded");
                    ReloadReport {
                        ok: true,
                        path,
                        at,
                        applied,
                        restart_needed,
                        error: None,
                    }
                }
                Err(e) => {
                    tracing::error!(error = %e, "configuration reload refused; the running configuration stays");
                    ReloadReport {
                        ok: false,
                        path,
                        at,
                        applied: Vec::new(),
                        restart_needed: Vec::new(),
                        error: Some(e),
                    }
                }
            };
            let result = if report.ok { "ok" } else { "failed" };
            self.metrics
                .reloads
                .get_or_create(&vec![("result".into(), result.into())])
                .inc();
            self.metrics.last_ok.set(report.ok as i64);
            *self.last.lock().unwrap() = Some(report.clone());
            report
        })
    }

    fn last(&self) -> Option<ReloadReport> {
        self.last.lock().unwrap().clone()
    }
}
