//! The read-only side: probes, `/metrics`, and the status endpoints (`/api/v1/backends`,
//! `/api/v1/filters`, `/api/v1/cache`, `/api/v1/status`).
use std::sync::atomic::Ordering;

use http::{header, Response, StatusCode};
use serde_json::json;
use sluice_cache::metrics::Tier;
use sluice_http::{full_body, Body};

use crate::api::{FilterView, SlotCounters};
use crate::{error, reply, Admin};

impl Admin {
    /// Answer a read of `path`.
    pub(crate) fn read(&self, path: &str) -> Response<Body> {
        match path {
            "/healthz" => reply(StatusCode::OK, &json!({"status": "ok"})),
            "/readyz" => {
                if self.ready.load(Ordering::Acquire) {
                    reply(StatusCode::OK, &json!({"status": "ready"}))
                } else {
                    reply(
                        StatusCode::SERVICE_UNAVAILABLE,
                        &json!({"status": "not ready", "reason": "first health check not finished, or shutting down"}),
                    )
                }
            }
            "/metrics" => self.metrics(),
            "/api/v1/cache" => reply(StatusCode::OK, &self.cache()),
            "/api/v1/filters" => reply(StatusCode::OK, &self.filters()),
            "/api/v1/status" => reply(
                StatusCode::OK,
                &json!({
                    "version": env!("CARGO_PKG_VERSION"),
                    "ready": self.ready.load(Ordering::Acquire),
                    "queries_tracked_l1": self.locator.l1_entries(),
                    "groups": self.cluster.groups(),
                    "backends": self.backend_views(),
                    "backends_source": if self.backends.stored() { "store" } else { "config" },
                    "backend_sync": self.backend_sync(),
                    "config": self.reload.as_ref().and_then(|r| r.last()),
                }),
            ),
            other => error(StatusCode::NOT_FOUND, format!("no admin endpoint {other}")),
        }
    }

    fn metrics(&self) -> Response<Body> {
        let mut text = String::new();
        if let Err(e) = prometheus_client::encoding::text::encode(&mut text, &self.registry) {
            return error(StatusCode::INTERNAL_SERVER_ERROR, e.to_string());
        }
        let mut resp = Response::new(full_body(text));
        resp.headers_mut().insert(
            header::CONTENT_TYPE,
            header::HeaderValue::from_static(
                "application/openmetrics-text; version=1.0.0; charset=utf-8",
            ),
        );
        resp
    }

    fn cache(&self) -> serde_json::Value {
        let tiers = self.locator.tiers();
        let m = tiers.metrics();
        let tier = |t: Tier| json!({"hits": m.lookups(t, true), "misses": m.lookups(t, false), "errors": m.errors(t), "skipped": m.skipped(t)});
        json!({
            "l1_entries": self.locator.l1_entries(),
            "l2_healthy": tiers.l2_healthy(),
            "l3_store": tiers.l3().map(|l3| json!({
                "healthy": l3.is_healthy(), "queued": l3.queued(),
                "written": l3.written(), "dropped": l3.dropped(),
            })),
            "l1": tier(Tier::L1), "l2": tier(Tier::L2), "l3": tier(Tier::L3), "search": tier(Tier::Search),
        })
    }

    fn filters(&self) -> Vec<FilterView> {
        let Some(chain) = &self.chain else {
            return Vec::new();
        };
        chain
            .slots()
            .iter()
            .map(|f| {
                let loaded_at = f
                    .loaded_at
                    .duration_since(std::time::UNIX_EPOCH)
                    .map(|d| d.as_millis() as u64)
                    .unwrap_or(0);
                let count = |c: &std::sync::atomic::AtomicU64| c.load(Ordering::Relaxed);
                FilterView {
                    slot: f.slot.to_string(),
                    module: f.module.clone(),
                    sha256: f.sha256.to_string(),
                    loaded_at,
                    idle_instances: f.idle_instances(),
                    version: f.version.load(Ordering::Relaxed),
                    wants_sql_objects: f.wants_sql_objects(),
                    config: serde_json::from_str(f.config_json()).unwrap_or_default(),
                    stats: SlotCounters {
                        calls: count(&f.stats.calls),
                        traps: count(&f.stats.traps),
                        timeouts: count(&f.stats.timeouts),
                        out_of_memory: count(&f.stats.out_of_memory),
                        invalid_decisions: count(&f.stats.invalid_decisions),
                        instances_created: count(&f.stats.instances_created),
                        instance_memory_bytes: count(&f.stats.instance_memory_bytes),
                    },
                }
            })
            .collect()
    }

    fn backend_sync(&self) -> serde_json::Value {
        let s = &self.backends.status;
        json!({
            "subscribed": s.subscribed.load(Ordering::Relaxed),
            "announced": s.announced.load(Ordering::Relaxed),
            "received": s.received.load(Ordering::Relaxed),
            "followed": s.followed.load(Ordering::Relaxed),
            "last_sync_ms": s.last_sync_ms.load(Ordering::Relaxed),
            "last_error": *s.last_error.lock().unwrap(),
        })
    }
}
