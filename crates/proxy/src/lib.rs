//! The Trino-protocol data path: classify each request, find where it goes, forward it. This
//! file is the request's story ([`Proxy::handle`]); each step has a module of its own.
//!
//! # Layout
//!
//! | module | one job |
//! | --- | --- |
//! | [`classify`] | new query / follow-up / other / not served |
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
//! | [`error`] | [`GatewayError`]: each failure maps to one HTTP status and a Trino-style JSON body |
#![forbid(unsafe_code)]
use std::net::SocketAddr;
use std::sync::Arc;

use http::{header, request, Request, Response, StatusCode};
use hyper::body::Incoming;

use sluice_cache::{QueryLocation, QueryLocator};
use sluice_cluster::Backend;
use sluice_config::ProxyConfig;
use sluice_http::Body;
use sluice_routing::{QueryRequest, Routing};
use sluice_store::{now_ms, HistoryRow};

pub mod classify;
pub mod error;
pub mod forward;
pub mod head;
pub mod headers;
pub mod kill_query;
pub mod login_cookie;
pub mod metrics;
pub mod query_id;
pub mod rewrite;
pub mod spooled;
pub mod statement;
mod stream;

pub use error::GatewayError;

use classify::{Paths, RequestKind};
use forward::{ForwardError, Forwarder};
use headers::Forwarded;
use sluice_http::tls::Outbound;
use sluice_telemetry::TARGET as TRACING;
use stream::{collect, finish};
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
        }
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
            RequestKind::FollowUp(id) => self.follow_up(&id, parts, body, &forwarded).await,
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
        body: Incoming,
        forwarded: &Forwarded,
    ) -> Result<Response<Body>, GatewayError> {
        // L1 inline; the tiers below boxed, so that a follow-up's future stays small (hyper
        // moves it into place per request)
        let location = match self.locator.locate_in_l1(id) {
            Some(l) => l,
            None => Box::pin(self.locator.locate_below_l1(id))
                .await
                .ok_or_else(|| GatewayError::UnknownQuery(id.to_string()))?,
        };
        let backend = self.owner(id, &location)?;
        self.stream(&backend, parts, body, forwarded, Some(id))
            .await
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
        let mut resp = self.stream(&backend, parts, body, forwarded, None).await?;
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
            return self.stream(&b, parts, body, forwarded, None).await;
        }
        if let Some(id) = id.filter(|id| query_id::is_query_id(id)) {
            return self.follow_up(&id, parts, body, forwarded).await;
        }
        let backend = self.routing.choose_for_other()?;
        self.stream(&backend, parts, body, forwarded, None).await
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

    /// `POST /v1/statement`: route, forward (retrying once elsewhere if the connection is
    /// refused), read the query id from the answer and remember its owner.
    async fn new_query(
        &self,
        parts: request::Parts,
        body: Incoming,
        forwarded: &Forwarded,
    ) -> Result<Response<Body>, GatewayError> {
        let statement = self.statements.read(body).await?;
        let sql = statement.bytes.clone();

        let mut request = QueryRequest::from_http(&parts.headers, &sql);
        let session = |name: &str| parts.headers.get(name).and_then(|v| v.to_str().ok());
        let kill = kill_query::target_query_id(
            &sql,
            session("x-trino-catalog"),
            session("x-trino-schema"),
        );
        if let Some(target) = kill {
            let location = self
                .locator
                .locate(&target)
                .await
                .ok_or_else(|| GatewayError::UnknownQuery(target.clone()))?;
            let backend = self.owner(&target, &location)?;
            tracing::info!(
                query_id = target,
                backend = backend.name(),
                "kill_query routed to the query's owner"
            );
            let resp = self
                .forwarder
                .send_statement(&backend, &parts, &sql, forwarded)
                .await
                .map_err(ForwardError::into_gateway_error)?;
            return self
                .first_response(&backend, &location.group, resp, forwarded, &request)
                .await;
        }

        if self.routing.wants_sql_objects() {
            // the whole statement, not only the text routers get
            request.extract_sql_objects_from(&String::from_utf8_lossy(&sql));
        }
        let mut excluded: Vec<String> = Vec::new();
        loop {
            let span = tracing::info_span!(
                target: TRACING,
                "sluice.route",
                sluice.group = tracing::field::Empty,
                sluice.backend = tracing::field::Empty,
            );
            let choice = self
                .routing
                .choose(&request, &excluded)
                .instrument(span.clone())
                .await?;
            span.record("sluice.group", choice.group.as_str());
            span.record("sluice.backend", choice.backend.name());
            let sent = self
                .forwarder
                .send_statement(&choice.backend, &parts, &sql, forwarded)
                .await;
            match sent {
                Ok(resp) => {
                    return self
                        .first_response(&choice.backend, &choice.group, resp, forwarded, &request)
                        .await
                }
                Err(ForwardError::Connect(e)) if excluded.is_empty() => {
                    tracing::warn!(backend = choice.backend.name(), error = %e, "backend refused a new query; retrying once on another backend");
                    excluded.push(choice.backend.name().to_string());
                }
                Err(e) => return Err(e.into_gateway_error()),
            }
        }
    }

    /// Read the first answer of a new query, remember `id` → backend, pass it on.
    async fn first_response(
        &self,
        backend: &Backend,
        group: &str,
        resp: Response<Body>,
        forwarded: &Forwarded,
        request: &QueryRequest,
    ) -> Result<Response<Body>, GatewayError> {
        let (parts, body) = resp.into_parts();
        let mut bytes = collect(backend, body, MAX_FIRST_RESPONSE).await?;
        let mut first_id = None;
        if parts.status == StatusCode::OK {
            match answer_id(&bytes) {
                Ok(v) => match v.as_deref() {
                    Some(id) if query_id::is_query_id(id) => {
                        first_id = Some(id.to_string());
                        let history = HistoryRow {
                            query_id: id.to_string(),
                            query_text: request.query_text.clone(),
                            user: request.user.clone(),
                            source: request.source.clone(),
                            routing_group: group.to_string(),
                            backend: backend.name().to_string(),
                            external_url: backend.config.external_url.clone(),
                            created_at_ms: now_ms(),
                        };
                        let location = QueryLocation {
                            backend: Arc::from(backend.name()),
                            group: Arc::from(group),
                        };
                        self.locator.remember_new(id, location, history).await;
                        tracing::debug!(
                            query_id = id,
                            backend = backend.name(),
                            group,
                            "new query routed"
                        );
                    }
                    _ => tracing::warn!(
                        backend = backend.name(),
                        "new-query answer has no valid query id"
                    ),
                },
                Err(e) => {
                    tracing::warn!(backend = backend.name(), error = %e, "new-query answer is not JSON")
                }
            }
            if backend.config.rewrite_next_uri {
                bytes = rewrite::rewrite_uris(&bytes, &forwarded.external_base());
            }
            if let Some(id) = first_id.as_deref() {
                bytes =
                    spooled::Rewriter::new(spooled::params(id, backend.name())).rewrite_all(bytes);
            }
        }
        Ok(finish(parts, bytes))
    }
}

/// The `id` of a new query's first answer, read without building the rest of the document (the
/// other fields are skipped as they are parsed).
fn answer_id(bytes: &[u8]) -> Result<Option<String>, serde_json::Error> {
    #[derive(serde::Deserialize)]
    struct First<'a> {
        #[serde(borrow, default)]
        id: Option<std::borrow::Cow<'a, str>>,
    }
    serde_json::from_slice::<First>(bytes).map(|f| f.id.map(std::borrow::Cow::into_owned))
}

/// A compile-time guard: a request's future is `Send` (the listeners spawn it). A bound hidden
/// in a generic body conversion once broke that with an error far from its cause.
#[allow(dead_code)]
fn handle_is_send(p: &'static Proxy, req: Request<Incoming>, a: SocketAddr) {
    fn is_send<T: Send>(_: T) {}
    is_send(p.handle(req, a, a));
}

#[cfg(test)]
mod tests {
    use super::answer_id;

    #[test]
    fn a_first_answers_id_is_read_and_the_rest_skipped() {
        let page = br#"{"data":[[1,{"id":"nested"}]],"id":"20240101_000000_00001_abcde","stats":{"state":"QUEUED"}}"#;
        let id = answer_id(page).unwrap();
        assert_eq!(id.as_deref(), Some("20240101_000000_00001_abcde"));
        // an escaped id is unescaped, as a DOM would
        let id = answer_id(br#"{"id":"2024\u005f1"}"#).unwrap();
        assert_eq!(id.as_deref(), Some("2024_1"));
        assert_eq!(answer_id(br#"{"error":{}}"#).unwrap(), None);
        assert!(answer_id(b"[1]").is_err() && answer_id(b"<html>").is_err());
    }
}
