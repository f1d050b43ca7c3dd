//! A fake Trino coordinator that speaks the real client protocol, for `sluice demo`,
//! `sluice fake-trino`, tests and benchmarks (no Trino can run here). The shipping binary links
//! it for those two commands; `sluice serve` never starts one.
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
//! - Per query, the SQL may set `fake:pages=N`, `fake:delay_ms=N`, `fake:fail`
//!   ([`SQL_OPTIONS_HELP`]).
//! - The spooling protocol when the client sends `X-Trino-Query-Data-Encoding` with `json`: the
//!   first page inline, later ones spooled under opaque tokens (`/v1/spooled/download|ack/…`).
//!
//! # Layout
//!
//! | module | one job |
//! | --- | --- |
//! | this file | [`FakeTrino`]: start on a bound listener, read its counters, stop |
//! | [`options`] | [`FakeOptions`], and the `fake:` options a query's SQL may carry |
//! | `state` | the queries, their protocol states, the counters |
//! | `routes` | which path does what |
//! | `queries` | a query's creation and its state machine, page by page; the spooling protocol |
//! | `respond` | the answers' shapes: JSON, text, query info, stats, a failure |
#![forbid(unsafe_code)]
use std::collections::{HashMap, VecDeque};
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

pub mod options;
mod queries;
mod respond;
mod routes;
mod state;

pub use options::{FakeOptions, SqlOptions, SQL_OPTIONS_HELP};
use state::{lock, Counters, Fake};

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
            created: Mutex::new(VecDeque::new()),
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
        lock(&self.fake.last_forwarded).clone()
    }

    /// Stop serving.
    pub async fn stop(self) {
        self.stop.cancel();
        let _ = self.task.await;
    }
}
