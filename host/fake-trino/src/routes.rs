//! The fake coordinator's routes: which path does what, and the small answers.
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use http::{header, HeaderMap, Method, Request, Response, StatusCode};
use http_body_util::BodyExt;
use hyper::body::Incoming;
use serde_json::{json, Value};
use sluice_http::Body;
use sluice_proxy::query_id;

use crate::respond::{empty, forwarded_view, header_str, json_resp, query_info, text};
use crate::state::{lock, Fake, Query, State};

impl Fake {
    pub(crate) async fn handle(self: Arc<Self>, req: Request<Incoming>) -> Response<Body> {
        self.counters.requests.fetch_add(1, Ordering::Relaxed);
        let (parts, body) = req.into_parts();
        if let Some(expected) = &self.opts.require_authorization {
            if header_str(&parts.headers, "authorization") != Some(expected.as_str()) {
                let mut resp = text(StatusCode::UNAUTHORIZED, "Unauthorized");
                resp.headers_mut().insert(
                    header::WWW_AUTHENTICATE,
                    header::HeaderValue::from_static("Basic realm=\"Trino\""),
                );
                return resp;
            }
        }
        *lock(&self.last_forwarded) = forwarded_view(&parts.headers);
        if let Some(tp) = header_str(&parts.headers, "traceparent") {
            *lock(&self.last_traceparent) = Some(tp.to_string());
        }
        let base = self.base_url(&parts.headers);
        let path = parts.uri.path().to_string();
        let login = path.starts_with("/oauth2/")
            || path.starts_with("/ui/login")
            || path.starts_with("/ui/logout")
            || (path.starts_with("/ui/") && path.ends_with(".html"));
        if login {
            self.counters.login_requests.fetch_add(1, Ordering::Relaxed);
        }
        let segs: Vec<&str> = path.split('/').filter(|s| !s.is_empty()).collect();
        let method = parts.method.clone();
        match (&method, segs.as_slice()) {
            (&Method::POST, ["v1", "statement"]) => {
                let sql = match body.collect().await {
                    Ok(b) => String::from_utf8_lossy(&b.to_bytes()).into_owned(),
                    Err(_) => return text(StatusCode::BAD_REQUEST, "bad body"),
                };
                let user = header_str(&parts.headers, "x-trino-user")
                    .unwrap_or("unknown")
                    .to_string();
                let session = (
                    header_str(&parts.headers, "x-trino-catalog"),
                    header_str(&parts.headers, "x-trino-schema"),
                );
                // the spooling protocol, when the client asks for an encoding this fake speaks
                let spooled = header_str(&parts.headers, "x-trino-query-data-encoding")
                    .is_some_and(|v| v.split(',').any(|e| e.trim() == "json"));
                self.create(&base, sql, user, session, spooled)
            }
            (_, ["v1", "statement", "queued" | "executing", id, slug, token]) => {
                let token: u32 = token.parse().unwrap_or(u32::MAX);
                let queued = segs[2] == "queued";
                if method == Method::DELETE {
                    return self.cancel(id);
                }
                let delay = self
                    .with_query(id, |q| (q.slug == *slug).then_some(q.delay_ms))
                    .flatten();
                match delay {
                    Some(d) if d > 0 => tokio::time::sleep(Duration::from_millis(d)).await,
                    Some(_) => {}
                    None => return self.unknown(id),
                }
                self.advance(&base, id, queued, token)
            }
            // Trino's kill of a query by id
            (&Method::DELETE, ["v1", "query", id]) => self.cancel(id),
            (&Method::DELETE, ["v1", "statement", "executing", "partialCancel", id, ..]) => {
                match self.with_query(id, |_| ()) {
                    Some(()) => empty(StatusCode::NO_CONTENT),
                    None => self.unknown(id),
                }
            }
            (&Method::GET, ["v1", "spooled", "download", token]) => self.segment(token, false),
            (&Method::GET | &Method::DELETE, ["v1", "spooled", "ack", token]) => {
                self.segment(token, true)
            }
            (&Method::GET, ["v1", "info"]) => json_resp(
                StatusCode::OK,
                json!({
                    "nodeVersion": {"version": "fake-479"},
                    "environment": "fake",
                    "coordinator": true,
                    "starting": self.starting.load(Ordering::Relaxed),
                    "uptime": "1.00m",
                    "name": self.opts.name,
                }),
            ),
            (&Method::GET, ["v1", "node"]) => json_resp(StatusCode::OK, json!([])),
            (&Method::GET, ["ui", "api", "stats"]) => {
                let (running, queued) = self.counts();
                json_resp(
                    StatusCode::OK,
                    json!({"runningQueries": running, "blockedQueries": 0, "queuedQueries": queued,
                           "activeCoordinators": 1, "activeWorkers": 1, "runningDrivers": 0,
                           "totalAvailableProcessors": 2, "reservedMemory": 0.0, "totalInputRows": 0,
                           "totalInputBytes": 0, "totalCpuTimeSecs": 0}),
                )
            }
            (&Method::GET, ["metrics"]) => {
                let (running, queued) = self.counts();
                let body = format!(
                    "# TYPE trino_execution_name_QueryManager_RunningQueries gauge\n\
                     trino_execution_name_QueryManager_RunningQueries {running}\n\
                     # TYPE trino_execution_name_QueryManager_QueuedQueries gauge\n\
                     trino_execution_name_QueryManager_QueuedQueries {queued}\n# EOF\n"
                );
                text(StatusCode::OK, &body)
            }
            (&Method::GET, ["v1", "query", id]) | (&Method::GET, ["ui", "api", "query", id])
                if query_id::is_query_id(id) =>
            {
                match self.with_query(id, |q| query_info(id, q, &base)) {
                    Some(v) => json_resp(StatusCode::OK, v),
                    // a gateway asking every cluster who owns an id is not a mis-routed request
                    None if parts
                        .headers
                        .contains_key(sluice_cache::search::SEARCH_HEADER) =>
                    {
                        self.counters.search_probes.fetch_add(1, Ordering::Relaxed);
                        text(StatusCode::NOT_FOUND, &format!("Query not found: {id}"))
                    }
                    None => self.unknown(id),
                }
            }
            (&Method::GET, ["ui", "api", "query"]) => {
                let wanted: Vec<String> =
                    form_urlencoded::parse(parts.uri.query().unwrap_or("").as_bytes())
                        .filter(|(k, _)| k == "state")
                        .map(|(_, v)| v.to_ascii_uppercase())
                        .collect();
                let queries = lock(&self.queries);
                let list: Vec<Value> = queries
                    .iter()
                    .filter(|(_, q)| {
                        wanted.is_empty() || wanted.iter().any(|w| w == q.state.as_str())
                    })
                    .map(|(id, q)| query_info(id, q, &base))
                    .collect();
                json_resp(StatusCode::OK, Value::Array(list))
            }
            (&Method::PUT, ["ui", "api", "query", id, "killed" | "preempted"]) => self.cancel(id),
            (&Method::GET, ["ui", "query.html"]) => {
                let id = parts.uri.query().unwrap_or("");
                match self.with_query(id, |_| ()) {
                    Some(()) => text(
                        StatusCode::OK,
                        &format!("<html>query {id} on {}</html>", self.opts.name),
                    ),
                    None => self.unknown(id),
                }
            }
            (&Method::GET, ["fake", "stats"]) => {
                let (running, queued) = self.counts();
                json_resp(
                    StatusCode::OK,
                    json!({
                        "name": self.opts.name,
                        "requests": self.counters.requests.load(Ordering::Relaxed),
                        "queries_created": self.counters.queries_created.load(Ordering::Relaxed),
                        "unknown_query_requests": self.counters.unknown_query_requests.load(Ordering::Relaxed),
                        "unknown_segment_requests": self.counters.unknown_segment_requests.load(Ordering::Relaxed),
                        "segments_downloaded": self.counters.segments_downloaded.load(Ordering::Relaxed),
                        "search_probes": self.counters.search_probes.load(Ordering::Relaxed),
                        "cancelled": self.counters.cancelled.load(Ordering::Relaxed),
                        "running": running,
                        "queued": queued,
                        "peak_active": self.counters.peak_active.load(Ordering::SeqCst),
                        "last_forwarded": lock(&self.last_forwarded).clone(),
                        "last_traceparent": lock(&self.last_traceparent).clone(),
                    }),
                )
            }
            (_, ["ui", ..]) => text(
                StatusCode::OK,
                &format!("<html>fake trino ui {}</html>", self.opts.name),
            ),
            _ => text(StatusCode::NOT_FOUND, "not found"),
        }
    }

    fn base_url(&self, headers: &HeaderMap) -> String {
        if !self.opts.honor_forwarded {
            return format!("{}://{}", self.scheme, self.addr);
        }
        let proto = header_str(headers, "x-forwarded-proto").unwrap_or(self.scheme);
        match header_str(headers, "x-forwarded-host").or_else(|| header_str(headers, "host")) {
            Some(host) => {
                let has_port = host
                    .rsplit_once(':')
                    .is_some_and(|(_, p)| p.parse::<u16>().is_ok())
                    && !host.ends_with(']');
                match header_str(headers, "x-forwarded-port") {
                    Some(port) if !has_port => format!("{proto}://{host}:{port}"),
                    _ => format!("{proto}://{host}"),
                }
            }
            None => format!("{}://{}", self.scheme, self.addr),
        }
    }

    pub(crate) fn with_query<T>(&self, id: &str, f: impl FnOnce(&mut Query) -> T) -> Option<T> {
        lock(&self.queries).get_mut(id).map(f)
    }

    fn counts(&self) -> (u64, u64) {
        let q = lock(&self.queries);
        let running = q.values().filter(|q| q.state == State::Running).count() as u64;
        let queued = q.values().filter(|q| q.state == State::Queued).count() as u64;
        (running, queued)
    }

    pub(crate) fn unknown(&self, id: &str) -> Response<Body> {
        self.counters
            .unknown_query_requests
            .fetch_add(1, Ordering::Relaxed);
        tracing::warn!(
            cluster = self.opts.name,
            query_id = id,
            "fake trino: request for a query it does not own"
        );
        text(StatusCode::NOT_FOUND, &format!("Query not found: {id}"))
    }

    fn cancel(&self, id: &str) -> Response<Body> {
        let found = self.with_query(id, |q| {
            if q.state.active() {
                self.set_state(q, State::Canceled);
            }
        });
        match found {
            Some(()) => {
                self.counters.cancelled.fetch_add(1, Ordering::Relaxed);
                empty(StatusCode::NO_CONTENT)
            }
            None => self.unknown(id),
        }
    }
}
