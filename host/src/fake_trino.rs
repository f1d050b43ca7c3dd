//! A fake Trino coordinator that speaks the real client protocol, for tests, benchmarks and the
//! demo (no Trino can run here).
//!
//! - `POST /v1/statement` → QUEUED with `nextUri`; `queued` polls → `executing` pages with
//!   `columns` (with `typeSignature`) and `data`; the last page is FINISHED with no `nextUri`.
//! - `DELETE` on a statement URI cancels (204). `CALL system.runtime.kill_query(...)` kills a
//!   query it owns and fails for one it does not.
//! - `/v1/info`, `/ui/api/stats`, `/metrics`, `/v1/query/{id}`, `/ui/api/query/{id}[/killed]`,
//!   `/v1/node`.
//! - `X-Forwarded-*` are honoured as Trino does with `http-server.process-forwarded=true`
//!   (or ignored, to exercise `rewrite_next_uri`).
//! - Any request for a query id it does not own is answered 404 and counted in
//!   `GET /fake/stats` → `unknown_query_requests`, so mis-routing is caught.
//! - Per query, the SQL may set `fake:pages=N`, `fake:delay_ms=N`, `fake:fail`.
use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use http::{header, HeaderMap, Method, Request, Response, StatusCode};
use http_body_util::BodyExt;
use hyper::body::Incoming;
use rand::RngExt;
use serde_json::{json, Value};
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::proxy::{kill_query, query_id};
use crate::{full_body, Body};

/// How a fake coordinator behaves.
#[derive(Debug, Clone)]
pub struct FakeOptions {
    /// Cluster name, returned in every row so tests can see who answered.
    pub name: String,
    /// Result pages per query.
    pub pages: u32,
    /// Rows per page.
    pub rows_per_page: u32,
    /// Polls a query stays QUEUED.
    pub queued_polls: u32,
    /// Delay before answering each statement request.
    pub delay_ms: u64,
    /// Build `nextUri` from `X-Forwarded-*` (true) or from its own address (false).
    pub honor_forwarded: bool,
    /// Report `starting: true` on `/v1/info`.
    pub starting: bool,
    /// Keep at most this many queries (0: all), forgetting the oldest never polled first, so a
    /// long benchmark does not grow the table (and stall on its rehashes) without bound.
    pub max_queries: usize,
}

impl Default for FakeOptions {
    fn default() -> Self {
        Self {
            name: "fake".into(),
            pages: 3,
            rows_per_page: 2,
            queued_polls: 1,
            delay_ms: 0,
            honor_forwarded: true,
            starting: false,
            max_queries: 0,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    Queued,
    Running,
    Finished,
    Canceled,
    Failed,
}

impl State {
    fn as_str(self) -> &'static str {
        match self {
            State::Queued => "QUEUED",
            State::Running => "RUNNING",
            State::Finished => "FINISHED",
            State::Canceled | State::Failed => "FAILED",
        }
    }
}

#[derive(Debug)]
struct Query {
    slug: String,
    sql: String,
    user: String,
    state: State,
    pages: u32,
    delay_ms: u64,
    /// Asked for after its creation (kept longest under `max_queries`).
    polled: bool,
}

/// Counters exposed on `/fake/stats`.
#[derive(Debug, Default)]
struct Counters {
    requests: AtomicU64,
    queries_created: AtomicU64,
    unknown_query_requests: AtomicU64,
    search_probes: AtomicU64,
    cancelled: AtomicU64,
}

struct Fake {
    opts: FakeOptions,
    addr: SocketAddr,
    suffix: String,
    next_seq: AtomicU64,
    queries: Mutex<HashMap<String, Query>>,
    /// Creation order, for `max_queries`.
    created: Mutex<std::collections::VecDeque<String>>,
    counters: Counters,
    last_forwarded: Mutex<Value>,
    starting: AtomicBool,
}

/// A running fake coordinator.
pub struct FakeTrino {
    /// Where it listens.
    pub addr: SocketAddr,
    fake: Arc<Fake>,
    shutdown: watch::Sender<bool>,
    task: JoinHandle<()>,
}

impl FakeTrino {
    /// Serve on an already-bound listener.
    pub fn start(listener: TcpListener, opts: FakeOptions) -> std::io::Result<FakeTrino> {
        let addr = listener.local_addr()?;
        let mut rng = rand::rng();
        let suffix: String = (0..5)
            .map(|_| rng.random_range(b'a'..=b'z') as char)
            .collect();
        let fake = Arc::new(Fake {
            starting: AtomicBool::new(opts.starting),
            opts,
            addr,
            suffix,
            next_seq: AtomicU64::new(1),
            queries: Mutex::new(HashMap::new()),
            created: Mutex::new(std::collections::VecDeque::new()),
            counters: Counters::default(),
            last_forwarded: Mutex::new(Value::Null),
        });
        let (shutdown, rx) = watch::channel(false);
        let served = fake.clone();
        let task = tokio::spawn(crate::server::serve(
            listener,
            move |req, _, _| {
                let fake = served.clone();
                async move { fake.handle(req).await }
            },
            rx,
            Duration::from_millis(500),
        ));
        Ok(FakeTrino {
            addr,
            fake,
            shutdown,
            task,
        })
    }

    /// `http://127.0.0.1:port`.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Requests for query ids this cluster does not own (mis-routed follow-ups).
    pub fn unknown_query_requests(&self) -> u64 {
        self.fake
            .counters
            .unknown_query_requests
            .load(Ordering::Relaxed)
    }

    /// Owner searches (`GET /v1/query/{id}` from a gateway's backend search) for ids it does not own.
    pub fn search_probes(&self) -> u64 {
        self.fake.counters.search_probes.load(Ordering::Relaxed)
    }

    /// Queries created here.
    pub fn queries_created(&self) -> u64 {
        self.fake.counters.queries_created.load(Ordering::Relaxed)
    }

    /// Report `starting: true` (or not) from now on.
    pub fn set_starting(&self, starting: bool) {
        self.fake.starting.store(starting, Ordering::Relaxed);
    }

    /// The `X-Forwarded-*` headers of the last request.
    pub fn last_forwarded(&self) -> Value {
        self.fake.last_forwarded.lock().unwrap().clone()
    }

    /// Stop serving.
    pub async fn stop(self) {
        let _ = self.shutdown.send(true);
        let _ = self.task.await;
    }
}

impl Fake {
    async fn handle(self: Arc<Self>, req: Request<Incoming>) -> Response<Body> {
        self.counters.requests.fetch_add(1, Ordering::Relaxed);
        let (parts, body) = req.into_parts();
        *self.last_forwarded.lock().unwrap() = forwarded_view(&parts.headers);
        let base = self.base_url(&parts.headers);
        let path = parts.uri.path().to_string();
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
                self.create(&base, sql, user)
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
            (&Method::DELETE, ["v1", "statement", "executing", "partialCancel", id, ..]) => {
                match self.with_query(id, |_| ()) {
                    Some(()) => empty(StatusCode::NO_CONTENT),
                    None => self.unknown(id),
                }
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
                        .contains_key(crate::cache::search::SEARCH_HEADER) =>
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
                let queries = self.queries.lock().unwrap();
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
                        "search_probes": self.counters.search_probes.load(Ordering::Relaxed),
                        "cancelled": self.counters.cancelled.load(Ordering::Relaxed),
                        "running": running,
                        "queued": queued,
                        "last_forwarded": self.last_forwarded.lock().unwrap().clone(),
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
            return format!("http://{}", self.addr);
        }
        let proto = header_str(headers, "x-forwarded-proto").unwrap_or("http");
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
            None => format!("http://{}", self.addr),
        }
    }

    fn with_query<T>(&self, id: &str, f: impl FnOnce(&mut Query) -> T) -> Option<T> {
        self.queries.lock().unwrap().get_mut(id).map(f)
    }

    fn counts(&self) -> (u64, u64) {
        let q = self.queries.lock().unwrap();
        let running = q.values().filter(|q| q.state == State::Running).count() as u64;
        let queued = q.values().filter(|q| q.state == State::Queued).count() as u64;
        (running, queued)
    }

    fn unknown(&self, id: &str) -> Response<Body> {
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
            if matches!(q.state, State::Queued | State::Running) {
                q.state = State::Canceled;
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

    fn create(&self, base: &str, sql: String, user: String) -> Response<Body> {
        let seq = self.next_seq.fetch_add(1, Ordering::Relaxed);
        let id = format!("20261124_000000_{seq:05}_{}", self.suffix);
        let slug = format!("y{:08x}", rand::rng().random::<u32>());
        self.counters
            .queries_created
            .fetch_add(1, Ordering::Relaxed);

        if let Some(target) = kill_query::target_query_id(&sql) {
            let owned = self.with_query(&target, |q| {
                if matches!(q.state, State::Queued | State::Running) {
                    q.state = State::Failed;
                }
            });
            if owned.is_none() {
                self.counters
                    .unknown_query_requests
                    .fetch_add(1, Ordering::Relaxed);
                return json_resp(
                    StatusCode::OK,
                    failed(
                        &id,
                        base,
                        "NOT_FOUND",
                        &format!("Target query not found: {target}"),
                    ),
                );
            }
            self.counters.cancelled.fetch_add(1, Ordering::Relaxed);
            return json_resp(
                StatusCode::OK,
                json!({"id": id, "infoUri": format!("{base}/ui/query.html?{id}"), "stats": stats("FINISHED"),
                       "warnings": [], "updateType": "CALL"}),
            );
        }
        if sql.contains("fake:fail") {
            return json_resp(
                StatusCode::OK,
                failed(&id, base, "GENERIC_USER_ERROR", "fake:fail requested"),
            );
        }
        let option = |key: &str| {
            sql.find(key)
                .map(|i| &sql[i + key.len()..])
                .and_then(|rest| rest.split(|c: char| !c.is_ascii_digit()).next())
                .and_then(|n| n.parse::<u64>().ok())
        };
        let pages = option("fake:pages=")
            .map(|p| p as u32)
            .unwrap_or(self.opts.pages)
            .max(1);
        let delay_ms = option("fake:delay_ms=").unwrap_or(self.opts.delay_ms);
        let state = if self.opts.queued_polls > 0 {
            State::Queued
        } else {
            State::Running
        };
        let next = if state == State::Queued {
            format!("{base}/v1/statement/queued/{id}/{slug}/1")
        } else {
            format!("{base}/v1/statement/executing/{id}/{slug}/0")
        };
        let mut queries = self.queries.lock().unwrap();
        queries.insert(
            id.clone(),
            Query {
                slug,
                sql,
                user,
                state,
                pages,
                delay_ms,
                polled: false,
            },
        );
        if self.opts.max_queries > 0 {
            let mut created = self.created.lock().unwrap();
            created.push_back(id.clone());
            let mut tries = created.len();
            while queries.len() > self.opts.max_queries && tries > 0 {
                tries -= 1;
                let Some(oldest) = created.pop_front() else {
                    break;
                };
                if queries.get(&oldest).is_some_and(|q| q.polled) {
                    created.push_back(oldest);
                } else {
                    queries.remove(&oldest);
                }
            }
        }
        drop(queries);
        json_resp(
            StatusCode::OK,
            json!({"id": id, "infoUri": format!("{base}/ui/query.html?{id}"), "nextUri": next,
                   "stats": stats(state.as_str()), "warnings": []}),
        )
    }

    fn advance(&self, base: &str, id: &str, queued: bool, token: u32) -> Response<Body> {
        let mut queries = self.queries.lock().unwrap();
        let Some(q) = queries.get_mut(id) else {
            drop(queries);
            return self.unknown(id);
        };
        q.polled = true;
        let info_uri = format!("{base}/ui/query.html?{id}");
        if matches!(q.state, State::Canceled | State::Failed) {
            return json_resp(
                StatusCode::OK,
                failed(id, base, "USER_CANCELED", "Query was canceled"),
            );
        }
        if queued {
            let next = if token < self.opts.queued_polls {
                format!("{base}/v1/statement/queued/{id}/{}/{}", q.slug, token + 1)
            } else {
                q.state = State::Running;
                format!("{base}/v1/statement/executing/{id}/{}/0", q.slug)
            };
            return json_resp(
                StatusCode::OK,
                json!({"id": id, "infoUri": info_uri, "nextUri": next, "stats": stats(q.state.as_str()), "warnings": []}),
            );
        }
        if token >= q.pages {
            return text(StatusCode::GONE, "token expired");
        }
        q.state = State::Running;
        let last = token + 1 == q.pages;
        if last {
            q.state = State::Finished;
        }
        let rows: Vec<Value> = (0..self.opts.rows_per_page)
            .map(|r| json!([(token * self.opts.rows_per_page + r) as i64, self.opts.name]))
            .collect();
        let mut page = json!({
            "id": id,
            "infoUri": info_uri,
            "partialCancelUri": format!("{base}/v1/statement/executing/partialCancel/{id}/0/{}/{token}", q.slug),
            "columns": [
                {"name": "n", "type": "bigint", "typeSignature": {"rawType": "bigint", "arguments": []}},
                {"name": "cluster", "type": "varchar", "typeSignature": {"rawType": "varchar", "arguments": [{"kind": "LONG", "value": 2147483647}]}}
            ],
            "data": rows,
            "stats": stats(q.state.as_str()),
            "warnings": [],
        });
        if !last {
            page["nextUri"] = json!(format!(
                "{base}/v1/statement/executing/{id}/{}/{}",
                q.slug,
                token + 1
            ));
        }
        json_resp(StatusCode::OK, page)
    }
}

fn query_info(id: &str, q: &Query, base: &str) -> Value {
    json!({
        "queryId": id,
        "state": q.state.as_str(),
        "query": q.sql,
        "session": {"user": q.user},
        "self": format!("{base}/v1/query/{id}"),
    })
}

fn stats(state: &str) -> Value {
    json!({"state": state, "queued": state == "QUEUED", "scheduled": state != "QUEUED", "nodes": 1,
           "totalSplits": 1, "queuedSplits": 0, "runningSplits": 0, "completedSplits": 1,
           "cpuTimeMillis": 1, "wallTimeMillis": 1, "queuedTimeMillis": 0, "elapsedTimeMillis": 1,
           "processedRows": 0, "processedBytes": 0, "physicalInputBytes": 0, "peakMemoryBytes": 0,
           "spilledBytes": 0})
}

fn failed(id: &str, base: &str, name: &str, message: &str) -> Value {
    json!({"id": id, "infoUri": format!("{base}/ui/query.html?{id}"), "stats": stats("FAILED"), "warnings": [],
           "error": {"message": message, "errorCode": 1, "errorName": name, "errorType": "USER_ERROR",
                     "failureInfo": {"type": "io.trino.spi.TrinoException", "message": message, "suppressed": [], "stack": []}}})
}

fn forwarded_view(headers: &HeaderMap) -> Value {
    let get = |n: &str| header_str(headers, n).map(String::from);
    json!({"for": get("x-forwarded-for"), "proto": get("x-forwarded-proto"),
           "host": get("x-forwarded-host"), "port": get("x-forwarded-port"), "connection": get("connection")})
}

fn header_str<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers.get(name).and_then(|v| v.to_str().ok())
}

fn json_resp(status: StatusCode, v: Value) -> Response<Body> {
    let mut r = Response::new(full_body(v.to_string()));
    *r.status_mut() = status;
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        header::HeaderValue::from_static("application/json"),
    );
    r
}

fn text(status: StatusCode, s: &str) -> Response<Body> {
    let mut r = Response::new(full_body(s.to_string()));
    *r.status_mut() = status;
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        header::HeaderValue::from_static("text/plain"),
    );
    r
}

fn empty(status: StatusCode) -> Response<Body> {
    let mut r = Response::new(full_body(bytes::Bytes::new()));
    *r.status_mut() = status;
    r
}
