//! The admin listener: liveness, readiness, metrics, status, and the filter API. It binds to
//! loopback by default. `/healthz`, `/readyz` and `/metrics` are open; `/api/v1/*` reads need a
//! `viewer` token and changes an `admin` token (see [`auth`]).
//!
//! | method and path | role | what |
//! | --- | --- | --- |
//! | `GET /api/v1/filters` | viewer | each slot: module, sha256, load time, calls, traps, timeouts |
//! | `PUT /api/v1/filters/{slot}?config=…` | admin | body: a Wasm component; swap it into `slot` |
//! | `GET /api/v1/filters/{slot}/versions` | viewer | the versions kept in L3 |
//! | `POST /api/v1/filters/{slot}/rollback` | admin | back to the version before the active one |
//! | `POST /api/v1/filters/{slot}/activate/{version}` | admin | a stored version, through the pipeline |
//! | `GET /api/v1/backends`, `/api/v1/cache`, `/api/v1/status` | viewer | status |
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use http::{header, Method, Request, Response, StatusCode};
use http_body_util::{BodyExt, Limited};
use hyper::body::Incoming;
use serde_json::json;

use crate::config::Role;

pub mod auth;

/// Largest module upload.
const MAX_MODULE_BYTES: usize = 64 << 20;

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
    /// Who may read and change.
    pub tokens: auth::Tokens,
}

impl Admin {
    /// Answer one admin request.
    pub async fn handle(&self, req: Request<Incoming>) -> Response<Body> {
        let path = req.uri().path().to_string();
        let open = matches!(path.as_str(), "/healthz" | "/readyz" | "/metrics");
        let changes = req.method() != Method::GET && req.method() != Method::HEAD;
        if open && changes {
            return reply(
                StatusCode::METHOD_NOT_ALLOWED,
                json!({"error": format!("{path} only answers GET")}),
            );
        }
        if !open || changes {
            let needed = if changes { Role::Admin } else { Role::Viewer };
            if let Err(refusal) = self.tokens.check(req.headers(), needed) {
                tracing::warn!(
                    path,
                    method = %req.method(),
                    status = refusal.status.as_u16(),
                    reason = refusal.message,
                    "admin request refused"
                );
                return reply(refusal.status, json!({"error": refusal.message}));
            }
        }
        let parts: Vec<&str> = path
            .strip_prefix("/api/v1/filters/")
            .map(|p| p.split('/').collect())
            .unwrap_or_default();
        if let (Some(chain), Some(slot)) = (&self.chain, parts.first().filter(|s| !s.is_empty())) {
            let done = |r: Result<_, crate::filters::SwapError>| swap_reply(slot, r);
            match (req.method().clone(), &parts[1..]) {
                (Method::GET, ["versions"]) => {
                    return match chain.versions(slot).await {
                        Ok(v) => reply(
                            StatusCode::OK,
                            json!(v.iter().map(|(version, sha, active)| json!({"version": version, "sha256": sha, "active": active})).collect::<Vec<_>>()),
                        ),
                        Err(e) => reply(StatusCode::SERVICE_UNAVAILABLE, json!({"error": e.to_string(), "step": e.step})),
                    }
                }
                (Method::POST, ["rollback"]) => return done(chain.rollback(slot).await),
                (Method::POST, ["activate", v]) => {
                    return match v.parse::<i64>() {
                        Ok(v) => done(chain.activate(slot, v).await),
                        Err(_) => reply(StatusCode::BAD_REQUEST, json!({"error": format!("'{v}' is not a version number")})),
                    }
                }
                _ => {}
            }
        }
        if changes {
            return match (req.method().clone(), path.strip_prefix("/api/v1/filters/")) {
                (Method::PUT, Some(slot)) if !slot.is_empty() && !slot.contains('/') => {
                    let slot = slot.to_string();
                    self.upload(&slot, req).await
                }
                (m, _) => reply(
                    StatusCode::METHOD_NOT_ALLOWED,
                    json!({"error": format!("no {m} {path}")}),
                ),
            };
        }
        self.read(&req)
    }

    /// `PUT /api/v1/filters/{slot}`: swap the uploaded component into the slot.
    async fn upload(&self, slot: &str, req: Request<Incoming>) -> Response<Body> {
        let Some(chain) = &self.chain else {
            return reply(
                StatusCode::CONFLICT,
                json!({"error": "no filter chain is configured (routing.chain is empty)"}),
            );
        };
        let valid_slot = slot.len() <= 64
            && slot
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'_');
        if !valid_slot {
            return reply(
                StatusCode::BAD_REQUEST,
                json!({"error": "slot names are 1-64 characters of a-z, 0-9, '-' and '_'"}),
            );
        }
        let config_json = match config_param(req.uri().query()) {
            Ok(c) => c,
            Err(e) => {
                return reply(
                    StatusCode::BAD_REQUEST,
                    json!({"error": e, "step": "config"}),
                )
            }
        };
        let bytes = match Limited::new(req.into_body(), MAX_MODULE_BYTES)
            .collect()
            .await
        {
            Ok(b) => b.to_bytes(),
            Err(e) => {
                return reply(
                    StatusCode::BAD_REQUEST,
                    json!({"error": format!("could not read the module: {e}"), "step": "upload"}),
                )
            }
        };
        let persist = crate::filters::Persist::New {
            created_by: "admin",
        };
        swap_reply(
            slot,
            chain
                .swap(slot, "upload", &bytes, config_json, persist)
                .await,
        )
    }

    fn read<B>(&self, req: &Request<B>) -> Response<Body> {
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
                    "version": f.version.load(Ordering::Relaxed),
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

type Swapped = (
    Arc<crate::filters::LoadedFilter>,
    Option<Arc<crate::filters::LoadedFilter>>,
);

/// The answer to a swap: the new version, or the step that failed (the running version stays).
fn swap_reply(slot: &str, result: Result<Swapped, crate::filters::SwapError>) -> Response<Body> {
    match result {
        Ok((new, old)) => reply(
            StatusCode::OK,
            json!({
                "slot": slot,
                "sha256": &*new.sha256,
                "version": new.version.load(Ordering::Relaxed),
                "previous_sha256": old.as_ref().map(|o| o.sha256.to_string()),
            }),
        ),
        Err(e) => {
            tracing::warn!(slot, step = e.step, error = %e, "filter swap refused; the running version stays");
            let status = match e.step {
                "store" => StatusCode::SERVICE_UNAVAILABLE,
                "version" => StatusCode::NOT_FOUND,
                _ => StatusCode::UNPROCESSABLE_ENTITY,
            };
            reply(status, json!({"error": e.to_string(), "step": e.step}))
        }
    }
}

/// The `config` query parameter (YAML or JSON) as the JSON handed to `init`; absent → `null`.
fn config_param(query: Option<&str>) -> Result<String, String> {
    let Some(text) = query.and_then(|q| {
        form_urlencoded::parse(q.as_bytes())
            .find(|(k, _)| k == "config")
            .map(|(_, v)| v.into_owned())
    }) else {
        return Ok("null".into());
    };
    let value: serde_yaml::Value =
        serde_yaml::from_str(&text).map_err(|e| format!("config is not YAML/JSON: {e}"))?;
    serde_json::to_string(&value).map_err(|e| format!("config is not JSON-compatible: {e}"))
}
