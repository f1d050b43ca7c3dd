//! The admin listener: liveness, readiness, metrics, status, and the filter API. It binds to
//! loopback by default. `/healthz`, `/readyz` and `/metrics` are open; `/api/v1/*` reads need a
//! `viewer` token and changes an `admin` token (see [`auth`]).
//!
//! | method and path | role | what |
//! | --- | --- | --- |
//! | `GET /api/v1/filters` | viewer | each slot: module, version, sha256, load time, calls, traps, timeouts |
//! | `PUT /api/v1/filters/{slot}?config=…` | admin | body: a Wasm component (or multipart `module` + `config`); swap it into `slot` |
//! | `PUT /api/v1/filters/{slot}/config` | admin | body: YAML/JSON; the slot's module with a new config |
//! | `GET /api/v1/filters/{slot}/versions` | viewer | the versions kept in L3 |
//! | `POST /api/v1/filters/{slot}/rollback` | admin | back to the version before the active one |
//! | `POST /api/v1/filters/{slot}/activate/{version}` | admin | a stored version, through the pipeline |
//! | `GET`, `PUT /api/v1/chain` | viewer, admin | the slot order; body `{"order": [...]}` |
//! | `GET /api/v1/fleet` | viewer | the active versions in L3 and what every instance runs |
//! | `GET /api/v1/backends`, `/api/v1/cache`, `/api/v1/status` | viewer | status |
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use http::{header, Method, Request, Response, StatusCode};
use http_body_util::{BodyExt, Limited};
use hyper::body::Incoming;
use serde_json::json;

use crate::config::Role;

pub mod auth;
pub mod client;

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
    /// This instance's part in the fleet (with a chain and a store).
    pub fleet: Option<Arc<crate::filters::fleet::Fleet>>,
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
        if let Some(rest) = path.strip_prefix("/api/v1/filters/") {
            let parts: Vec<&str> = rest.split('/').collect();
            let method = req.method().clone();
            return match (method, parts.as_slice()) {
                (Method::GET, [slot, "versions"]) => self.versions(slot).await,
                (Method::PUT, [slot]) => {
                    let slot = slot.to_string();
                    self.upload(&slot, req).await
                }
                (Method::PUT, [slot, "config"]) => {
                    let slot = slot.to_string();
                    self.reconfigure(&slot, req).await
                }
                (Method::POST, [slot, "rollback"]) => match self.chain() {
                    Ok(chain) => swap_reply(slot, chain.rollback(slot).await),
                    Err(resp) => *resp,
                },
                (Method::POST, [slot, "activate", v]) => match (self.chain(), v.parse::<i64>()) {
                    (Err(resp), _) => *resp,
                    (Ok(chain), Ok(v)) => swap_reply(slot, chain.activate(slot, v).await),
                    (_, Err(_)) => reply(
                        StatusCode::BAD_REQUEST,
                        json!({"error": format!("'{v}' is not a version number")}),
                    ),
                },
                (m, _) => reply(
                    StatusCode::NOT_FOUND,
                    json!({"error": format!("no admin endpoint {m} {path}")}),
                ),
            };
        }
        match (req.method().clone(), path.as_str()) {
            (Method::PUT, "/api/v1/chain") => self.reorder(req).await,
            (Method::GET, "/api/v1/chain") => match self.chain() {
                Ok(chain) => reply(StatusCode::OK, json!({"order": chain.order()})),
                Err(resp) => *resp,
            },
            (Method::GET, "/api/v1/fleet") => self.fleet().await,
            (Method::GET | Method::HEAD, _) => self.read(&req),
            (m, _) => reply(
                StatusCode::METHOD_NOT_ALLOWED,
                json!({"error": format!("no {m} {path}")}),
            ),
        }
    }

    fn chain(&self) -> Result<&Arc<FilterChain>, Box<Response<Body>>> {
        self.chain.as_ref().ok_or_else(|| {
            Box::new(reply(
                StatusCode::CONFLICT,
                json!({"error": "no filter chain is configured (routing.chain is empty)"}),
            ))
        })
    }

    /// What a change request brings: the chain, who sent it, and its body.
    async fn change(
        &self,
        req: Request<Incoming>,
    ) -> Result<(&Arc<FilterChain>, String, bytes::Bytes), Box<Response<Body>>> {
        let chain = self.chain()?;
        let who = auth::Tokens::who(req.headers());
        Ok((chain, who, read_body(req).await?))
    }

    async fn versions(&self, slot: &str) -> Response<Body> {
        let chain = match self.chain() {
            Ok(c) => c,
            Err(resp) => return *resp,
        };
        match chain.versions(slot).await {
            Ok(v) => reply(StatusCode::OK, json!(v)),
            Err(e) => refused(&e),
        }
    }

    /// `PUT /api/v1/filters/{slot}`: swap the uploaded component into the slot. The body is the
    /// component, with the config in the `config` query parameter; or `multipart/form-data` with
    /// a `module` part and an optional `config` part.
    async fn upload(&self, slot: &str, req: Request<Incoming>) -> Response<Body> {
        let chain = match self.chain() {
            Ok(c) => c,
            Err(resp) => return *resp,
        };
        if !crate::filters::valid_slot_name(slot) {
            return reply(
                StatusCode::BAD_REQUEST,
                json!({"error": "slot names are 1-64 characters of a-z, 0-9, '-' and '_'", "step": "slot"}),
            );
        }
        let mut config_json = match config_param(req.uri().query()) {
            Ok(c) => c,
            Err(e) => {
                return reply(
                    StatusCode::BAD_REQUEST,
                    json!({"error": e, "step": "config"}),
                )
            }
        };
        let boundary = req
            .headers()
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .filter(|ct| ct.starts_with("multipart/form-data"))
            .map(multer::parse_boundary);
        let who = auth::Tokens::who(req.headers());
        let body = match read_body(req).await {
            Ok(b) => b,
            Err(resp) => return *resp,
        };
        let bytes = match boundary {
            None => body,
            Some(Err(e)) => {
                return reply(
                    StatusCode::BAD_REQUEST,
                    json!({"error": format!("multipart: {e}"), "step": "upload"}),
                )
            }
            Some(Ok(boundary)) => match multipart(body, boundary).await {
                Ok((module, config)) => {
                    if let Some(c) = config {
                        config_json = c;
                    }
                    module
                }
                Err(e) => {
                    return reply(
                        StatusCode::BAD_REQUEST,
                        json!({"error": e, "step": "upload"}),
                    )
                }
            },
        };
        let persist = crate::filters::Persist::New { created_by: &who };
        swap_reply(
            slot,
            chain
                .swap(slot, "upload", &bytes, config_json, persist)
                .await,
        )
    }

    /// `PUT /api/v1/filters/{slot}/config`: the slot's module with a new config (YAML or JSON body).
    async fn reconfigure(&self, slot: &str, req: Request<Incoming>) -> Response<Body> {
        let (chain, who, body) = match self.change(req).await {
            Ok(c) => c,
            Err(resp) => return *resp,
        };
        let config_json = match std::str::from_utf8(&body)
            .map_err(|e| format!("config is not UTF-8: {e}"))
            .and_then(crate::filters::config_to_json)
        {
            Ok(c) => c,
            Err(e) => {
                return reply(
                    StatusCode::BAD_REQUEST,
                    json!({"error": e, "step": "config"}),
                )
            }
        };
        swap_reply(slot, chain.reconfigure(slot, config_json, &who).await)
    }

    /// `PUT /api/v1/chain`: body `{"order": ["slot", …]}` (or just the list).
    async fn reorder(&self, req: Request<Incoming>) -> Response<Body> {
        let (chain, who, body) = match self.change(req).await {
            Ok(c) => c,
            Err(resp) => return *resp,
        };
        #[derive(serde::Deserialize)]
        #[serde(untagged)]
        enum Order {
            Wrapped { order: Vec<String> },
            List(Vec<String>),
        }
        let order = match serde_json::from_slice::<Order>(&body) {
            Ok(Order::Wrapped { order } | Order::List(order)) => order,
            Err(e) => {
                return reply(
                    StatusCode::BAD_REQUEST,
                    json!({"error": format!("expected {{\"order\": [\"slot\", …]}}: {e}"), "step": "order"}),
                )
            }
        };
        match chain.reorder(&order, &who).await {
            Ok(order) => reply(StatusCode::OK, json!({"order": order})),
            Err(e) => refused(&e),
        }
    }

    /// `GET /api/v1/fleet`: what L3 marks active, and what every instance reports it runs.
    async fn fleet(&self) -> Response<Body> {
        let (Some(chain), Some(fleet)) = (&self.chain, &self.fleet) else {
            return reply(
                StatusCode::CONFLICT,
                json!({"error": "no fleet state: it needs a filter chain and a store (L3)"}),
            );
        };
        let Some(l3) = chain.l3().filter(|l3| l3.is_healthy()) else {
            return reply(
                StatusCode::SERVICE_UNAVAILABLE,
                json!({"error": "the store (L3) is down"}),
            );
        };
        let (active, instances) = match (
            l3.store().active_modules().await,
            l3.store().instances().await,
        ) {
            (Ok(a), Ok(i)) => (a, i),
            (Err(e), _) | (_, Err(e)) => {
                return reply(StatusCode::SERVICE_UNAVAILABLE, json!({"error": e}))
            }
        };
        let poll_ms = fleet.options.poll_interval.map(|d| d.as_millis() as i64);
        // an instance that missed three polls (or 30 s without polling) is stale
        let stale_after = poll_ms.map(|p| 3 * p).unwrap_or(30_000).max(3_000);
        let now = crate::store::now_ms();
        let mut by_instance: std::collections::BTreeMap<&str, Vec<&crate::store::InstanceSlot>> =
            Default::default();
        for row in &instances {
            by_instance.entry(&row.instance_id).or_default().push(row);
        }
        let mut converged = true;
        let listed: Vec<serde_json::Value> = by_instance
            .into_iter()
            .map(|(id, rows)| {
                let updated = rows.iter().map(|r| r.updated_at).max().unwrap_or(0);
                let stale = now - updated > stale_after;
                let slots: Vec<serde_json::Value> = rows
                    .iter()
                    .map(|r| {
                        let wanted = active.iter().find(|(s, _, _)| *s == r.slot);
                        let current =
                            wanted.is_none_or(|(_, v, sha)| *sha == r.sha256 && *v == r.version);
                        if !current && !stale {
                            converged = false;
                        }
                        json!({
                            "slot": r.slot, "position": r.position, "sha256": r.sha256,
                            "version": r.version, "current": current, "error": r.error,
                        })
                    })
                    .collect();
                json!({"instance_id": id, "updated_at": updated, "stale": stale, "slots": slots})
            })
            .collect();
        reply(
            StatusCode::OK,
            json!({
                "instance_id": fleet.options.instance_id,
                "channel": fleet.options.channel,
                "poll_interval_ms": poll_ms,
                "subscribed": fleet.status.subscribed.load(Ordering::Relaxed),
                "announced": fleet.status.announced.load(Ordering::Relaxed),
                "received": fleet.status.received.load(Ordering::Relaxed),
                "active": active.iter().map(|(slot, version, sha)| json!({"slot": slot, "version": version, "sha256": sha})).collect::<Vec<_>>(),
                "converged": converged,
                "instances": listed,
            }),
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
                    "config": serde_json::from_str::<serde_json::Value>(f.config_json()).unwrap_or(serde_json::Value::Null),
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

use crate::filters::Swapped;

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
            refused(&e)
        }
    }
}

/// A refused change: 503 when the store is down, 404 for a slot or version that does not
/// exist, 422 for a module, config or order that is wrong; the body names the step.
fn refused(e: &crate::filters::SwapError) -> Response<Body> {
    let status = match e.step {
        "store" => StatusCode::SERVICE_UNAVAILABLE,
        "version" | "slot" => StatusCode::NOT_FOUND,
        _ => StatusCode::UNPROCESSABLE_ENTITY,
    };
    reply(status, json!({"error": e.to_string(), "step": e.step}))
}

/// The `config` query parameter (YAML or JSON) as the JSON handed to `init`; absent → `null`.
fn config_param(query: Option<&str>) -> Result<String, String> {
    match query.and_then(|q| {
        form_urlencoded::parse(q.as_bytes())
            .find(|(k, _)| k == "config")
            .map(|(_, v)| v.into_owned())
    }) {
        Some(text) => crate::filters::config_to_json(&text),
        None => Ok("null".into()),
    }
}

/// A request body up to [`MAX_MODULE_BYTES`].
async fn read_body(req: Request<Incoming>) -> Result<bytes::Bytes, Box<Response<Body>>> {
    match Limited::new(req.into_body(), MAX_MODULE_BYTES)
        .collect()
        .await
    {
        Ok(b) => Ok(b.to_bytes()),
        Err(e) => Err(Box::new(reply(
            StatusCode::BAD_REQUEST,
            json!({"error": format!("could not read the body (at most {} MiB): {e}", MAX_MODULE_BYTES >> 20), "step": "upload"}),
        ))),
    }
}

/// The `module` and `config` parts of a `multipart/form-data` upload.
async fn multipart(
    body: bytes::Bytes,
    boundary: String,
) -> Result<(bytes::Bytes, Option<String>), String> {
    let stream = futures_util::stream::once(async move { Ok::<_, std::convert::Infallible>(body) });
    let mut form = multer::Multipart::new(stream, boundary);
    let (mut module, mut config) = (None, None);
    while let Some(field) = form
        .next_field()
        .await
        .map_err(|e| format!("multipart: {e}"))?
    {
        match field.name() {
            Some("module") => module = Some(field.bytes().await.map_err(|e| e.to_string())?),
            Some("config") => {
                let text = field.text().await.map_err(|e| e.to_string())?;
                config = Some(crate::filters::config_to_json(&text)?);
            }
            other => {
                return Err(format!(
                    "unexpected multipart part {other:?}: send 'module' and 'config'"
                ))
            }
        }
    }
    let module = module.ok_or("multipart upload without a 'module' part")?;
    Ok((module, config))
}
