//! The admin listener: liveness, readiness, metrics, status, the filter API, and the console. It binds to
//! loopback by default. `/healthz`, `/readyz` and `/metrics` are open; `/api/v1/*` reads need a
//! `viewer` token and changes an `admin` token (see [`auth`]). Bodies are the types of [`api`],
//! which the CLI shares.
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
//! | `GET /api/v1/backends[/{name}]` | viewer | backends: config, state, health, running/queued |
//! | `POST /api/v1/backends` | admin | body: a backend (`name`, `url`, `group`, …); 201, 409 if the name is taken |
//! | `PATCH /api/v1/backends/{name}` | admin | body: the fields to change (`url`, `group`, `external_url`, `stats`, `rewrite_next_uri`, `active`) |
//! | `DELETE /api/v1/backends/{name}[?force=true]` | admin | refused (409) while it runs queries, unless forced |
//! | `POST /api/v1/backends/{name}/activate`, `…/deactivate`, `…/drain` | admin | drain: no new queries, follow-ups served, `draining` → `drained` |
//! | `POST /api/v1/reload` | admin | re-read the configuration file (as SIGHUP does) |
//! | an [`Extension`]'s paths (Trino Gateway's `/entity`, `/gateway/backend/…`, `/api/public/backends…`) | viewer, admin | its crate (`sluice-trino-gateway`) |
//! | `GET /api/v1/cache`, `/api/v1/status` | viewer | status |
//! | `GET /api/v1/queries?user=&source=&backend=&group=&since=&until=&q=&limit=&cursor=` | viewer | query history, newest first, keyset-paginated |
//! | `GET /api/v1/queries/{id}` | viewer | one query: where it ran, and its page in that cluster's UI |
//! | `GET /api/v1/queue` | viewer | what waits in the queue, in admission order; slots held per backend; the queue settings |
//! | `DELETE /api/v1/queue/{id}` | admin | cancel a waiting query |
//! | `PUT /api/v1/queue/config` | admin | new `queue:` settings for this instance (JSON or YAML) |
//! | `/`, `/console/…` | open, session | the web console and its login ([`console`]); a session cookie authorises the API as its token does, changes with a CSRF token |
//!
//! # Layout
//!
//! | module | one job |
//! | --- | --- |
//! | this file | [`Admin::handle`]: authorise, then dispatch by method and path |
//! | [`auth`] | bearer tokens with roles, compared in constant time |
//! | [`console`] | the console's login, logout and session; a session authorising an API request |
//! | [`changes`] | the filter endpoints; a refused change's step maps to its HTTP status here, once |
//! | [`backends`] | the backend endpoints; a refused change maps to its HTTP status here, once |
//! | [`extension`] | [`Extension`]: endpoints another crate adds, authorized here, changes through the same [`Backends`](sluice_backends::Backends) |
//! | [`status`] | probes, `/metrics`, and the read-only status endpoints |
//! | [`history`] | the query history endpoints |
//! | [`queue`] | `/api/v1/queue`: what waits, slots per backend, cancel, settings |
//! | [`api`] | request and response bodies, shared with the CLI |
#![forbid(unsafe_code)]
use std::sync::atomic::AtomicBool;
use std::sync::Arc;

use http::{Method, Request, Response, StatusCode};
use hyper::body::Incoming;
use serde::Serialize;
use sluice_cache::QueryLocator;
use sluice_cluster::Cluster;
use sluice_config::Role;
use sluice_filters::fleet::Fleet;
use sluice_filters::FilterChain;
use sluice_http::Body;

pub mod api;
pub mod auth;
pub mod backends;
pub mod changes;
pub mod console;
pub mod extension;
pub mod history;
pub mod queue;
pub mod status;

pub use extension::Extension;

/// Re-reading the configuration file (SIGHUP, `POST /api/v1/reload`).
pub trait Reload: Send + Sync {
    /// Read the file and apply it, or keep the running configuration and say why.
    fn reload(&self) -> futures_util::future::BoxFuture<'_, api::ReloadReport>;
    /// The last reload, if there was one.
    fn last(&self) -> Option<api::ReloadReport>;
}

/// What the admin endpoints report on and change.
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
    pub tokens: Arc<auth::Tokens>,
    /// This instance's part in the fleet (with a chain and a store).
    pub fleet: Option<Arc<Fleet>>,
    /// The backend list and its changes.
    pub backends: Arc<sluice_backends::Backends>,
    /// Re-reading the configuration file.
    pub reload: Option<Arc<dyn Reload>>,
    /// The console's login sessions.
    pub sessions: Arc<sluice_console::Sessions>,
    /// Endpoints added by other crates (Trino Gateway's backend API), asked first.
    pub extensions: Vec<Arc<dyn Extension>>,
    /// The gateway's queue.
    pub queue: Option<Arc<sluice_queue::Queue>>,
}

impl Admin {
    /// The extension whose endpoint `path` is, if any.
    pub fn extension_for(&self, path: &str) -> Option<&Arc<dyn Extension>> {
        self.extensions.iter().find(|e| e.claims(path))
    }

    /// Answer one admin request.
    pub async fn handle(&self, mut req: Request<Incoming>) -> Response<Body> {
        req.headers_mut().remove(auth::SESSION_BY);
        let path = req.uri().path().to_string();
        if sluice_console::is_console_path(&path) {
            return self.console(req).await;
        }
        let open = matches!(path.as_str(), "/healthz" | "/readyz" | "/metrics");
        let changes = req.method() != Method::GET && req.method() != Method::HEAD;
        if open && changes {
            return error(
                StatusCode::METHOD_NOT_ALLOWED,
                format!("{path} only answers GET"),
            );
        }
        if !open || changes {
            let needed = if changes { Role::Admin } else { Role::Viewer };
            if let Err(refusal) = self.authorize(req.headers_mut(), needed, changes) {
                tracing::warn!(
                    path,
                    method = %req.method(),
                    status = refusal.status.as_u16(),
                    reason = refusal.message,
                    "admin request refused"
                );
                return error(refusal.status, refusal.message);
            }
        }
        if let Some(ext) = self.extension_for(&path) {
            return ext.handle(req, &extension::Ctx { admin: self }).await;
        }
        if path == "/api/v1/backends" || path.starts_with("/api/v1/backends/") {
            let rest = path["/api/v1/backends".len()..].to_string();
            return self.backend_endpoint(req, &rest).await;
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
                (Method::POST, [slot, "rollback"]) => self.rollback(slot).await,
                (Method::POST, [slot, "activate", v]) => self.activate(slot, v).await,
                (m, _) => error(
                    StatusCode::NOT_FOUND,
                    format!("no admin endpoint {m} {path}"),
                ),
            };
        }
        if path == "/api/v1/queue" || path.starts_with("/api/v1/queue/") {
            let rest = path["/api/v1/queue".len()..].to_string();
            return self.queue_endpoint(req, &rest).await;
        }
        if let Some(id) = path.strip_prefix("/api/v1/queries/") {
            return match req.method() {
                &Method::GET => self.query(id).await,
                m => error(StatusCode::METHOD_NOT_ALLOWED, format!("no {m} {path}")),
            };
        }
        match (req.method().clone(), path.as_str()) {
            (Method::GET, "/api/v1/queries") => self.queries(req.uri().query()).await,
            (Method::PUT, "/api/v1/chain") => self.reorder(req).await,
            (Method::GET, "/api/v1/chain") => self.order(),
            (Method::GET, "/api/v1/fleet") => self.fleet().await,
            (Method::POST, "/api/v1/reload") => match &self.reload {
                Some(r) => {
                    let report = r.reload().await;
                    let status = match report.ok {
                        true => StatusCode::OK,
                        false => StatusCode::UNPROCESSABLE_ENTITY,
                    };
                    reply(status, &report)
                }
                None => error(
                    StatusCode::CONFLICT,
                    "this gateway runs without a configuration file; there is nothing to reload",
                ),
            },
            (Method::GET | Method::HEAD, _) => self.read(&path),
            (m, _) => error(StatusCode::METHOD_NOT_ALLOWED, format!("no {m} {path}")),
        }
    }
}

impl Admin {
    /// The store (L3), or the 503 that says why there is none: not configured, or down.
    pub(crate) fn store(&self) -> Result<&sluice_store::Store, Box<Response<Body>>> {
        let unavailable = |why: String| Box::new(error(StatusCode::SERVICE_UNAVAILABLE, why));
        match self.locator.tiers().l3() {
            None => Err(unavailable(
                "no store is configured (store.url is empty)".into(),
            )),
            Some(l3) => l3.up().map_err(|e| unavailable(e.to_string())),
        }
    }
}

/// A JSON answer.
pub fn reply(status: StatusCode, body: &impl Serialize) -> Response<Body> {
    sluice_http::json_response(status, body)
}

/// An [`api::ErrorReply`] without a step.
pub fn error(status: StatusCode, message: impl Into<String>) -> Response<Body> {
    let body = api::ErrorReply {
        error: message.into(),
        step: None,
    };
    reply(status, &body)
}
