//! The admin listener: liveness, readiness and read-only status. It binds to loopback by default;
//! nothing here changes state.
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use http::{header, Method, Request, Response, StatusCode};
use serde_json::json;

use crate::cache::QueryLocator;
use crate::cluster::Cluster;
use crate::filters::FilterChain;
use crate::{full_body, Body};

/// What the admin endpoints report on.
pub struct Admin {
    /// Backends and their health.
    pub cluster: Arc<Cluster>,
    /// Query mappings.
    pub locator: Arc<QueryLocator>,
    /// Set once the first health round is done; cleared on shutdown.
    pub ready: Arc<AtomicBool>,
    /// The routing filter chain, if one is configured.
    pub chain: Option<Arc<FilterChain>>,
    /// Metrics served on `/metrics`.
    pub registry: Arc<prometheus_client::registry::Registry>,
}

impl Admin {
    /// Answer one admin request.
    pub fn handle<B>(&self, req: &Request<B>) -> Response<Body> {
        if req.method() != Method::GET && req.method() != Method::HEAD {
            return reply(
                StatusCode::METHOD_NOT_ALLOWED,
                json!({"error": "only GET is served here"}),
            );
        }
        match req.uri().path() {
            "/healthz" => reply(StatusCode::OK, json!({"status": "ok"})),
            "/readyz" => {
                if self.ready.load(Ordering::Acquire) {
                    reply(StatusCode::OK, json!({"status": "ready"}))
                } else {
                    reply(
                        StatusCode::SERVICE_UNAVAILABLE,
                        json!({"status": "not ready", "reason": "first health check not finished, or shutting down"}),
                    )
                }
            }
            "/metrics" => {
                let mut text = String::new();
                if let Err(e) = prometheus_client::encoding::text::encode(&mut text, &self.registry)
                {
                    return reply(
                        StatusCode::INTERNAL_SERVER_ERROR,
                        json!({"error": e.to_string()}),
                    );
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
            "/api/v1/cache" => {
                let m = self.locator.tiers().metrics();
                use crate::cache::metrics::Tier;
                let tier = |t: Tier| json!({"hits": m.lookups(t, true), "misses": m.lookups(t, false), "errors": m.errors(t), "skipped": m.skipped(t)});
                reply(
                    StatusCode::OK,
                    json!({
                        "l1_entries": self.locator.l1_entries(),
                        "l2_healthy": self.locator.tiers().l2_healthy(),
                        "l3_store": self.locator.tiers().l3().map(|l3| json!({
                            "healthy": l3.is_healthy(), "queued": l3.queued(),
                            "written": l3.written(), "dropped": l3.dropped(),
                        })),
                        "l1": tier(Tier::L1), "l2": tier(Tier::L2), "l3": tier(Tier::L3), "search": tier(Tier::Search),
                    }),
                )
            }
            "/api/v1/backends" => reply(StatusCode::OK, json!(self.backends())),
            "/api/v1/filters" => reply(StatusCode::OK, json!(self.filters())),
            "/api/v1/status" => reply(
                StatusCode::OK,
                json!({
                    "version": env!("CARGO_PKG_VERSION"),
                    "ready": self.ready.load(Ordering::Acquire),
                    "queries_tracked_l1": self.locator.l1_entries(),
                    "groups": self.cluster.groups(),
                    "backends": self.backends(),
                }),
            ),
            other => reply(
                StatusCode::NOT_FOUND,
                json!({"error": format!("no admin endpoint {other}")}),
            ),
        }
    }

    fn filters(&self) -> Vec<serde_json::Value> {
        let Some(chain) = &self.chain else {
            return Vec::new();
        };
        chain
            .slots()
            .iter()
            .map(|f| {
                let loaded = f
                    .loaded_at
                    .duration_since(std::time::UNIX_EPOCH)
                    .map(|d| d.as_millis() as u64)
                    .unwrap_or(0);
                json!({
                    "slot": &*f.slot,
                    "module": f.module,
                    "sha256": &*f.sha256,
                    "loaded_at": loaded,
                    "idle_instances": f.idle_instances(),
                    "wants_sql_objects": f.wants_sql_objects(),
                    "stats": f.stats,
                })
            })
            .collect()
    }

    fn backends(&self) -> Vec<serde_json::Value> {
        self.cluster
            .backends()
            .iter()
            .map(|b| {
                json!({
                    "name": b.name(),
                    "url": b.config.url,
                    "external_url": b.config.external_url,
                    "group": b.group(),
                    "active": b.config.active,
                    "status": *b.status(),
                })
            })
            .collect()
    }
}

fn reply(status: StatusCode, body: serde_json::Value) -> Response<Body> {
    let mut resp = Response::new(full_body(body.to_string()));
    *resp.status_mut() = status;
    resp.headers_mut().insert(
        header::CONTENT_TYPE,
        header::HeaderValue::from_static("application/json"),
    );
    resp
}
