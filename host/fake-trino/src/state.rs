//! The fake coordinator's state: its queries, their protocol states and its counters.
use std::collections::{HashMap, VecDeque};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64};
use std::sync::{Mutex, MutexGuard};

use serde_json::Value;

use crate::options::FakeOptions;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum State {
    Queued,
    Running,
    Finished,
    Canceled,
    Failed,
}

impl State {
    /// Counted as running on the cluster (queued or running).
    pub(crate) fn active(self) -> bool {
        matches!(self, State::Queued | State::Running)
    }

    pub(crate) fn as_str(self) -> &'static str {
        match self {
            State::Queued => "QUEUED",
            State::Running => "RUNNING",
            State::Finished => "FINISHED",
            State::Canceled | State::Failed => "FAILED",
        }
    }
}

#[derive(Debug)]
pub(crate) struct Query {
    pub(crate) slug: String,
    pub(crate) sql: String,
    pub(crate) user: String,
    pub(crate) state: State,
    pub(crate) pages: u32,
    pub(crate) delay_ms: u64,
    /// Asked for after its creation (kept longest under `max_queries`).
    pub(crate) polled: bool,
    /// The client asked for the spooling protocol (`X-Trino-Query-Data-Encoding` with `json`):
    /// pages carry segments, the first inline, the others spooled.
    pub(crate) spooled: bool,
}

/// Counters exposed on `/fake/stats`.
#[derive(Debug, Default)]
pub(crate) struct Counters {
    pub(crate) requests: AtomicU64,
    pub(crate) queries_created: AtomicU64,
    pub(crate) unknown_query_requests: AtomicU64,
    pub(crate) search_probes: AtomicU64,
    pub(crate) cancelled: AtomicU64,
    /// Spooled segment requests for a token this coordinator never produced (a mis-route).
    pub(crate) unknown_segment_requests: AtomicU64,
    /// Segments downloaded.
    pub(crate) segments_downloaded: AtomicU64,
    /// Queries queued or running now, and the most there ever were at once (what a gateway's
    /// `max_queries` must keep under).
    pub(crate) active: AtomicU64,
    pub(crate) peak_active: AtomicU64,
    /// Requests of login flows and UI pages (`/oauth2/…`, `/ui/login`, `/ui/logout`, `/ui/*.html`),
    /// which health checks never send.
    pub(crate) login_requests: AtomicU64,
}

pub(crate) struct Fake {
    pub(crate) opts: FakeOptions,
    pub(crate) addr: SocketAddr,
    /// `http` or `https` (served over TLS).
    pub(crate) scheme: &'static str,
    pub(crate) suffix: String,
    pub(crate) next_seq: AtomicU64,
    pub(crate) queries: Mutex<HashMap<String, Query>>,
    /// Creation order, for `max_queries`.
    pub(crate) created: Mutex<VecDeque<String>>,
    pub(crate) counters: Counters,
    /// Spooled segments not yet acknowledged: token → the segment's JSON rows.
    pub(crate) segments: Mutex<HashMap<String, Vec<u8>>>,
    pub(crate) last_forwarded: Mutex<Value>,
    /// The last `traceparent` a request carried.
    pub(crate) last_traceparent: Mutex<Option<String>>,
    pub(crate) starting: AtomicBool,
}

/// Lock `m`, whatever a panicking holder left: the fake's tables stay usable (a test that
/// panicked elsewhere must not turn every later answer into a second panic).
pub(crate) fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}
