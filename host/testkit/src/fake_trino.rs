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
//! - The spooling protocol when the client sends `X-Trino-Query-Data-Encoding` with `json`: the
//!   first page inline, later ones spooled under opaque tokens (`/v1/spooled/download|ack/…`).
use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rand::RngExt;
use serde_json::Value;
use sluice_http::serve::Limits;
use sluice_http::tls_server::ServerTls;
use tokio::net::TcpListener;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

mod queries;
mod routes;

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
    /// Answer 401 to any request without exactly this `Authorization` header (a cluster with
    /// authentication), when set.
    pub require_authorization: Option<String>,
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
            require_authorization: None,
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
    /// Counted as running on the cluster (queued or running).
    fn active(self) -> bool {
        matches!(self, State::Queued | State::Running)
    }

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
    /// The client asked for the spooling protocol (`X-Trino-Query-Data-Encoding` with `json`):
    /// pages carry segments, the first inline, the others spooled.
    spooled: bool,
}

/// Counters exposed on `/fake/stats`.
#[derive(Debug, Default)]
struct Counters {
    requests: AtomicU64,
    queries_created: AtomicU64,
    unknown_query_requests: AtomicU64,
    search_probes: AtomicU64,
    cancelled: AtomicU64,
    /// Spooled segment requests for a token this coordinator never produced (a mis-route).
    unknown_segment_requests: AtomicU64,
    /// Segments downloaded.
    segments_downloaded: AtomicU64,
    /// Queries queued or running now, and the most there ever were at once (what a gateway's
    /// `max_queries` must keep under).
    active: AtomicU64,
    peak_active: AtomicU64,
    /// Requests of login flows and UI pages (`/oauth2/…`, `/ui/login`, `/ui/logout`, `/ui/*.html`),
    /// which health checks never send.
    login_requests: AtomicU64,
}

struct Fake {
    opts: FakeOptions,
    addr: SocketAddr,
    /// `http` or `https` (served over TLS).
    scheme: &'static str,
    suffix: String,
    next_seq: AtomicU64,
    queries: Mutex<HashMap<String, Query>>,
    /// Creation order, for `max_queries`.
    created: Mutex<std::collections::VecDeque<String>>,
    counters: Counters,
    /// Spooled segments not yet acknowledged: token → the segment's JSON rows.
    segments: Mutex<HashMap<String, Vec<u8>>>,
    last_forwarded: Mutex<Value>,
    /// The last `traceparent` a request carried.
    last_traceparent: Mutex<Option<String>>,
    starting: AtomicBool,
}

/// A running fake coordinator.
pub struct FakeTrino {
    /// Where it listens.
    pub addr: SocketAddr,
    fake: Arc<Fake>,
    stop: CancellationToken,
    task: JoinHandle<()>,
}

impl FakeTrino {
    /// Serve on an already-bound listener.
    pub fn start(listener: TcpListener, opts: FakeOptions) -> std::io::Result<FakeTrino> {
        Self::start_tls(listener, opts, None)
    }

    /// Serve on an already-bound listener, over TLS when `tls` is given (a coordinator with
    /// `http-server.https.enabled`).
    pub fn start_tls(
        listener: TcpListener,
        opts: FakeOptions,
        tls: Option<ServerTls>,
    ) -> std::io::Result<FakeTrino> {
        let addr = listener.local_addr()?;
        let mut rng = rand::rng();
        let suffix: String = (0..5)
            .map(|_| rng.random_range(b'a'..=b'z') as char)
            .collect();
        let fake = Arc::new(Fake {
            starting: AtomicBool::new(opts.starting),
            opts,
            addr,
            scheme: if tls.is_some() { "https" } else { "http" },
            suffix,
            next_seq: AtomicU64::new(1),
            queries: Mutex::new(HashMap::new()),
            created: Mutex::new(std::collections::VecDeque::new()),
            counters: Counters::default(),
            segments: Mutex::new(HashMap::new()),
            last_forwarded: Mutex::new(Value::Null),
            last_traceparent: Mutex::new(None),
        });
        let stop = CancellationToken::new();
        let served = fake.clone();
        let task = tokio::spawn(sluice_http::serve::serve_with_tls(
            listener,
            tls,
            move |req, _, _| {
                let fake = served.clone();
                async move { fake.handle(req).await }
            },
            stop.clone(),
            Duration::from_millis(500),
            Limits::default(),
        ));
        Ok(FakeTrino {
            addr,
            fake,
            stop,
            task,
        })
    }

    /// `http://127.0.0.1:port` (`https://` over TLS).
    pub fn url(&self) -> String {
        format!("{}://{}", self.fake.scheme, self.addr)
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

    /// Spooled segments downloaded from it.
    pub fn segments_downloaded(&self) -> u64 {
        self.fake
            .counters
            .segments_downloaded
            .load(Ordering::Relaxed)
    }

    /// Spooled segment requests for tokens it never produced (mis-routes).
    pub fn unknown_segment_requests(&self) -> u64 {
        self.fake
            .counters
            .unknown_segment_requests
            .load(Ordering::Relaxed)
    }

    /// Requests of login flows and UI pages (never sent by health checks).
    pub fn login_requests(&self) -> u64 {
        self.fake.counters.login_requests.load(Ordering::Relaxed)
    }

    /// Requests received (of any kind), counted when they arrive, before any answer.
    pub fn requests(&self) -> u64 {
        self.fake.counters.requests.load(Ordering::Relaxed)
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
        self.stop.cancel();
        let _ = self.task.await;
    }
}
