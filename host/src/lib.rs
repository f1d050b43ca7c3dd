//! Sluice: a gateway in front of several Trino clusters.
//!
//! Clients (the Trino CLI, JDBC, the Python `trino` client, BI tools) point at Sluice as if it were
//! one Trino coordinator. Sluice picks a cluster for each new query and sends every follow-up
//! request of that query (polling `nextUri`, cancel, query info, the web UI) to the same cluster.
//!
//! # Layout
//!
//! | module | one job |
//! | --- | --- |
//! | [`config`] | the YAML file: `${VAR}` substitution, serde structs with `deny_unknown_fields`, `validate()` |
//! | [`error`] | the data-path error enum; each variant maps to one HTTP status and a Trino-style JSON body |
//! | [`cluster`] | the backends, their routing groups, and each backend's lock-free health/stats snapshot |
//! | [`health`] | the background poller: `GET /v1/info` plus running/queued counts, PENDING → HEALTHY/UNHEALTHY |
//! | [`routing`] | [`routing::QueryRequest`] → [`routing::Decision`]: the [`routing::Router`] seam, the native least-loaded router, SQL object extraction |
//! | [`filters`] | the Wasm filter chain: wasmtime engine, sandboxed slots, host imports, builtin filters |
//! | [`cache`] | where a query lives: query id → backend and group through L1 (moka), L2 (Valkey/Redis), L3 (SQL), then a search of the backends |
//! | [`store`] | L3: SQLite/PostgreSQL with migrations, a bounded batching writer, history retention |
//! | [`proxy`] | the hyper listener: classify a request, extract the query id, forward it streamed, header hygiene |
//! | [`admin`] | the admin listener: `/healthz`, `/readyz`, read-only backend status |
//! | [`server`] | wires the parts together: `Gateway::start(config, listeners, shutdown)` |
//! | [`fake_trino`] | a fake Trino coordinator speaking the real client protocol, for tests, benchmarks and the demo |
//! | [`telemetry`] | `tracing` subscriber set-up (text or JSON) |
//!
//! # How a request flows
//!
//! 1. [`proxy::classify`] sorts the request: a new query (`POST /v1/statement`), a follow-up that
//!    carries a query id (found by [`proxy::query_id`]), or another Trino path (`/v1/info`, `/ui` …).
//! 2. A new query is turned into a [`routing::QueryRequest`]; the router picks a backend of the
//!    routing group; the body is forwarded; the `id` in the JSON answer is remembered in [`cache`].
//!    A `CALL system.runtime.kill_query(...)` is a follow-up in disguise: [`proxy::kill_query`]
//!    parses it and sends it to the cluster that owns the query.
//! 3. A follow-up is a cache lookup and a streamed forward to the owning backend. An id nobody knows
//!    is a 404, never a guess.
//! 4. Everything else goes to a healthy backend of the default group.
#![deny(unsafe_code)]

pub mod admin;
pub mod cache;
pub mod cluster;
pub mod config;
pub mod error;
pub mod fake_trino;
pub mod filters;
pub mod health;
pub mod proxy;
pub mod routing;
pub mod server;
pub mod store;
pub mod telemetry;

/// The body type every Sluice response uses: streamed from a backend or built in place.
pub type Body = http_body_util::combinators::BoxBody<bytes::Bytes, BoxError>;
/// A boxed error for bodies and glue.
pub type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// Build a complete (non-streamed) body.
pub fn full_body(bytes: impl Into<bytes::Bytes>) -> Body {
    use http_body_util::BodyExt;
    http_body_util::Full::new(bytes.into())
        .map_err(|never| match never {})
        .boxed()
}
