//! The Trino-protocol data path: classify each request, find where it goes, forward it. This
//! file is the request's story ([`Proxy::handle`]); each step has a module of its own.
//!
//! # Layout
//!
//! | module | one job |
//! | --- | --- |
//! | [`classify`] | new query / follow-up / other / not served; what a follow-up says of its query's end |
//! | `new_query` | `POST /v1/statement`: routed, admitted or made to wait, sent, its first answer read |
//! | [`query_id`] | the query id in every path form clients and the web UI use |
//! | [`statement`] | reading a statement body: size, pause and memory-budget limits |
//! | [`spooled`] | segment URIs name their query and backend; segment requests go there |
//! | [`login_cookie`] | OAuth2 and UI login flows stay on one cluster through a signed cookie |
//! | [`kill_query`] | `CALL system.runtime.kill_query(...)` parsed, routed to the query's owner |
//! | [`headers`] | hop-by-hop hygiene and `X-Forwarded-*` |
//! | [`forward`] | sending one request to one backend over the pooled client or the relay, with timeouts |
//! | [`head`] | a relayed request's head written as bytes, with the same hygiene |
//! | `stream` | passing a backend's answer on: streamed, or rewritten where it must be |
//! | [`rewrite`] | `nextUri` rewriting for backends that ignore forwarded headers |
//! | `queued` | queries waiting in Sluice: the QUEUED answer, held polls, admission, issued ids |
//! | [`last_page`] | a tracked query's end seen as its last page passes |
//! | [`error`] | [`GatewayError`]: each failure maps to one HTTP status and a Trino-style JSON body |
//! | [`metrics`] | requests by kind, status and backend, and their latency, for `/metrics` |
#![forbid(unsafe_code)]
use std::net::SocketAddr;
use std::sync::Arc;

use http::{header, request, Request, Response};
use hyper::body::Incoming;

use sluice_cache::{QueryLocation, QueryLocator};
use sluice_cluster::Backend;
use sluice_config::ProxyConfig;
use sluice_http::Body;
use sluice_routing::Routing;

pub mod classify;
pub mod error;
pub mod forward;
pub mod head;
pub mod headers;
pub mod kill_query;
pub mod last_page;
pub mod login_cookie;
pub mod metrics;
mod new_query;
pub mod query_id;
mod queued;
pub mod rewrite;
pub mod spooled;
pub mod statement;
mod stream;

pub use error::GatewayError;

use classify::{Paths, QueryEnd, RequestKind};
use forward::Forwarder;
use headers::Forwarded;
use sluice_http::tls::Outbound;
use sluice_telemetry::TARGET as TRACING;
use tracing::Instrument;

/// Largest first response of a new query that is read to find the query id (Trino's first
/// response is small: no data yet).
const MAX_FIRST_RESPONSE: usize = 64 << 20;

/// Shared state of the proxy listener.
pub struct Proxy {
    routing: Arc<Routing>,
    locator: Arc<QueryLocator>,
    forwarder: Forwarder,
    paths: Paths,
    login: login_cookie::LoginCookie,
    statements: statement::StatementBudget,
    config: ProxyConfig,
    backend_tls: Option<Outbound>,
    metrics: metrics::RequestMetrics,
    queue: Option<Arc<sluice_queue::Queue>>,
}

impl Proxy {
    /// A proxy over `routing` remembering queries in `locator`; `backend_tls` is what its
    /// connections to `https://` backends trust (`None`: the system's roots).
    pub fn new(
        routing: Arc<Routing>,
        locator: Arc<QueryLocator>,
        config: ProxyConfig,
        backend_tls: Option<Outbound>,
    ) -> Self {
        Self {
            routing,
            locator,
            forwarder: Forwarder::new(&config, backend_tls.clone()),
            paths: Paths::new(&config),
            login: login_cookie::LoginCookie::new(&config.login_cookie),
            statements: statement::StatementBudget::new(
                config.statement_memory_bytes,
                config.max_statement_bytes,
                std::time::Duration::from_millis(config.body_timeout_ms),
            ),
            config,
            backend_tls,
            metrics: metrics::RequestMetrics::default(),
            queue: None,
        }
    }

    /// This proxy, holding queries in `queue` when their group has no room.
    pub fn with_queue(mut self, queue: Arc<sluice_queue::Queue>) -> Self {
        self.queue = Some(queue);
        self
    }

    /// This proxy, counting its requests in `metrics`.
    pub fn counting_in(mut self, metrics: metrics::RequestMetrics) -> Self {
        self.metrics = metrics;
        self
    }

    /// The same proxy (routing, caches, login key, statement budget) with a backend connection
    /// pool of its own: for a worker thread that serves its connections alone
    /// (`proxy.serving: per_core`), so no backend connection is driven from another thread.
    pub fn with_own_pool(&self) -> Self {
        Self {
            routing: self.routing.clone(),
            locator: self.locator.clone(),
            forwarder: Forwarder::new(&self.config, self.backend_tls.clone()),
            paths: self.paths.clone(),
            login: self.login.clone(),
            statements: self.statements.clone(),
            config: self.config.clone(),
            backend_tls: self.backend_tls.clone(),
            metrics: self.metrics.clone(),
            queue: self.queue.clone(),
        }
    }

    /// Answer one request from `remote`, received on `local` (in a span of its own when
    /// tracing is on, continuing the client's trace if it sent one).
    pub async fn handle(
        &self,
        req: Request<Incoming>,
        remote: SocketAddr,
        local: SocketAddr,
    ) -> Response<Body> {
        let span = tracing::info_span!(
            target: TRACING,
            "sluice.request",
            otel.kind = "server",
            http.request.method = %req.method(),
            url.path = req.uri().path(),
            http.response.status_code = tracing::field::Empty,
        );
        if span.is_disabled() {
            return self.answer(req, remote, local).await;
        }
        sluice_telemetry::propagate::continue_from(&span, req.headers());
        let resp = self
            .answer(req, remote, local)
            .instrument(span.clone())
            .await;
        span.record("http.response.status_code", resp.status().as_u16());
        resp
    }

    async fn answer(
        &self,
        req: Request<Incoming>,
        remote: SocketAddr,
        local: SocketAddr,
    ) -> Response<Body> {
        let started = std::time::Instant::now();
        let (parts, body) = req.into_parts();
        let forwarded = Forwarded::from_connection(
            &parts.headers,
            remote,
            local,
            self.config.trust_forwarded_headers,
            parts.extensions.get::<sluice_http::Https>().is_some(),
        );
        let kind = self
            .paths
            .classify(&parts.method, parts.uri.path(), parts.uri.query());
        let kind_label = match kind {
            RequestKind::NewQuery => "new",
            RequestKind::FollowUp(_) | RequestKind::Spooled => "follow_up",
            _ => "other",
        };
        let result = match kind {
            RequestKind::NotServed => Err(GatewayError::NotFound(parts.uri.path().to_string())),
            RequestKind::DotSegments => Err(GatewayError::BadRequest(format!(
                "path '{}' has '.' or '..' segments",
                parts.uri.path()
            ))),
            // boxed: their futures are large, and a follow-up's should not carry their size
            RequestKind::NewQuery => Box::pin(self.new_query(parts, body, &forwarded)).await,
            RequestKind::FollowUp(id) => self.follow_up(&id, parts, Some(body), &forwarded).await,
            RequestKind::Spooled => Box::pin(self.spooled(parts, body, &forwarded)).await,
            RequestKind::Other => Box::pin(self.other(parts, body, &forwarded)).await,
        };
        let resp = result.unwrap_or_else(|e| {
            tracing::debug!(error = %e, "request failed");
            e.into_response()
        });
        let backend = resp.extensions().get::<metrics::ServedBy>().map(|s| &s.0);
        self.metrics
            .record(kind_label, resp.status(), backend, started.elapsed());
        resp
    }

    async fn follow_up(
        &self,
        id: &str,
        parts: request::Parts,
        body: Option<Incoming>,
        forwarded: &Forwarded,
    ) -> Result<Response<Body>, GatewayError> {
        if let Some(queue) = self.queue.as_ref() {
            if sluice_queue::ids::is_issued(id) {
                let body = body.ok_or_else(|| GatewayError::UnknownQuery(id.to_string()))?;
                return Box::pin(self.queued_request(queue, id, parts, body, forwarded)).await;
            }
        }
        // L1 inline; the tiers below boxed, so that a follow-up's future stays small (hyper
        // moves it into place per request)
        let location = match self.locator.locate_in_l1(id) {
            Some(l) => l,
            None => Box::pin(self.locator.locate_below_l1(id))
                .await
                .ok_or_else(|| GatewayError::UnknownQuery(id.to_string()))?,
        };
        let backend = self.owner(id, &location)?;
        let end = self
            .queue
            .as_ref()
            .filter(|q| q.tracks(&backend))
            .map(|q| (q, self.paths.query_end(&parts.method, parts.uri.path())));
        let resp = self
            .stream(&backend, parts, body, forwarded, Some(id))
            .await?;
        Ok(match end {
            Some((queue, QueryEnd::MaybeLastPage)) => queued::watch_last_page(queue, id, resp),
            Some((queue, QueryEnd::Ends)) if resp.status().is_success() => {
                queue.release(id);
                resp
            }
            _ => resp,
        })
    }

    /// A request that belongs to no query: to the backend a login cookie names (login flows and
    /// the web UI), else to any healthy backend; the answer to the start of a login flow sets
    /// the cookie.
    async fn other(
        &self,
        parts: request::Parts,
        body: Incoming,
        forwarded: &Forwarded,
    ) -> Result<Response<Body>, GatewayError> {
        let path = parts.uri.path();
        let pinned = self
            .login
            .pins(path)
            .then(|| self.login.backend(&parts.headers))
            .flatten()
            .and_then(|name| self.routing.cluster().get(&name));
        let starts = pinned.is_none() && self.login.starts_flow(path);
        let backend = match pinned {
            Some(b) => b,
            None => self.routing.choose_for_other()?,
        };
        let mut resp = self
            .stream(&backend, parts, Some(body), forwarded, None)
            .await?;
        if starts {
            let secure = forwarded.proto == "https";
            if let Some(v) = self.login.set_cookie(backend.name(), secure) {
                resp.headers_mut().append(header::SET_COOKIE, v);
            }
        }
        Ok(resp)
    }

    /// A spooled segment: to the backend its URI names (any configured one, in any state), else
    /// the owner of the query it names, else as any other request.
    async fn spooled(
        &self,
        parts: request::Parts,
        body: Incoming,
        forwarded: &Forwarded,
    ) -> Result<Response<Body>, GatewayError> {
        let (backend, id) = spooled::owner_params(parts.uri.query());
        if let Some(b) = backend.and_then(|name| self.routing.cluster().get(&name)) {
            return self.stream(&b, parts, Some(body), forwarded, None).await;
        }
        if let Some(id) = id.filter(|id| query_id::is_query_id(id)) {
            return self.follow_up(&id, parts, Some(body), forwarded).await;
        }
        let backend = self.routing.choose_for_other()?;
        self.stream(&backend, parts, Some(body), forwarded, None)
            .await
    }

    fn owner(&self, id: &str, location: &QueryLocation) -> Result<Arc<Backend>, GatewayError> {
        self.routing
            .cluster()
            .get(&location.backend)
            .ok_or_else(|| GatewayError::BackendUnreachable {
                backend: location.backend.to_string(),
                reason: format!("query {id} belongs to a backend that is no longer configured"),
            })
    }
}

/// A compile-time guard: a request's future is `Send` (the listeners spawn it). A bound hidden
/// in a generic body conversion once broke that with an error far from its cause.
#[allow(dead_code)]
fn handle_is_send(p: &'static Proxy, req: Request<Incoming>, a: SocketAddr) {
    fn is_send<T: Send>(_: T) {}
    is_send(p.handle(req, a, a));
}
