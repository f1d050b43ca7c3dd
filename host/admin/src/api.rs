//! The admin API's request and response bodies, as types: the server serialises them, the CLI
//! (`sluice filter …`) deserialises the same types, so the two cannot drift apart.
use serde::{Deserialize, Serialize};

pub use sluice_filters::fleet::status::{ActiveVersion, FleetView, InstanceSlotView, InstanceView};
pub use sluice_filters::Step;
pub use sluice_store::{HistoryRow, VersionRow};

/// Any refused request: what is wrong and, for a filter change, the step that failed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ErrorReply {
    /// What went wrong.
    pub error: String,
    /// The step of a filter change that failed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub step: Option<Step>,
}

/// The answer to an accepted filter change.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SwapReply {
    /// The slot.
    pub slot: String,
    /// The sha256 it runs now.
    pub sha256: String,
    /// Its stored version (0 without a store).
    pub version: i64,
    /// The sha256 it replaced (none for a new slot).
    pub previous_sha256: Option<String>,
}

/// `PUT /api/v1/chain` (a bare list is accepted too) and its answer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChainOrder {
    /// Slot names, in chain order.
    pub order: Vec<String>,
}

/// One slot of `GET /api/v1/filters`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FilterView {
    /// The slot.
    pub slot: String,
    /// Where its module came from (`builtin:…`, a path, `upload`, `store:slot@v`).
    pub module: String,
    /// sha256 of the component.
    pub sha256: String,
    /// When it was loaded, in milliseconds since the epoch.
    pub loaded_at: u64,
    /// Initialised instances waiting in the pool.
    pub idle_instances: usize,
    /// Its stored version (0: from the config file).
    pub version: i64,
    /// Whether it reads the statement's tables.
    pub wants_sql_objects: bool,
    /// The config `init` received.
    pub config: serde_json::Value,
    /// Its counters.
    pub stats: SlotCounters,
}

/// A slot's counters.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SlotCounters {
    /// `route` calls.
    pub calls: u64,
    /// Traps.
    pub traps: u64,
    /// Calls past the deadline.
    pub timeouts: u64,
    /// Calls past the memory limit.
    pub out_of_memory: u64,
    /// Decisions that could not be followed.
    pub invalid_decisions: u64,
    /// Instances created (and `init` run).
    pub instances_created: u64,
    /// The most linear memory one instance grew to (bytes): what an instance costs.
    #[serde(default)]
    pub instance_memory_bytes: u64,
}

/// One routed query, from the history in L3 (`GET /api/v1/queries`, `GET /api/v1/queries/{id}`):
/// `query_id`, `query_text`, `user`, `source`, `routing_group`, `backend`, `external_url`,
/// `created_at` (milliseconds since the epoch), and its page in its cluster's web UI.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct QueryRecord {
    /// The history row.
    #[serde(flatten)]
    pub query: HistoryRow,
    /// The query's page in its cluster's web UI (the backend's external URL, else its URL).
    pub ui_url: Option<String>,
}

/// A page of `GET /api/v1/queries`, newest first.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct QueryPage {
    /// The queries.
    pub queries: Vec<QueryRecord>,
    /// Pass as `cursor` for the next page; none after the last page.
    pub next_cursor: Option<String>,
}

/// One backend of `GET /api/v1/backends`, and the answer to a backend change.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BackendView {
    /// Its name.
    pub name: String,
    /// Where Sluice sends requests.
    pub url: String,
    /// Routing group.
    pub group: String,
    /// The URL users see, if different.
    pub external_url: Option<String>,
    /// Takes new queries (when not draining).
    pub active: bool,
    /// Being drained.
    pub draining: bool,
    /// `active`, `inactive`, `draining` or `drained`.
    pub state: String,
    /// Where its running/queued counts come from (`ui_api`, `metrics`, `info_only`).
    pub stats: String,
    /// Whether `nextUri` is rewritten in its answers.
    pub rewrite_next_uri: bool,
    /// Queries Sluice runs on it at once at most (none: no limit).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_queries: Option<u32>,
    /// What its last poll found.
    pub status: BackendHealth,
}

/// The last poll of a backend.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BackendHealth {
    /// `PENDING`, `HEALTHY` or `UNHEALTHY`.
    pub health: String,
    /// Running queries the cluster reported.
    pub running_queries: u32,
    /// Queued queries the cluster reported.
    pub queued_queries: u32,
    /// Why it is unhealthy.
    pub reason: Option<String>,
    /// When it was polled, in milliseconds since the epoch.
    pub checked_at: Option<u64>,
}

/// The answer to `DELETE /api/v1/backends/{name}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Removed {
    /// The backend removed.
    pub removed: String,
}

/// The answer to `POST /api/v1/reload`, and the last reload in `/api/v1/status`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReloadReport {
    /// Whether the file was applied.
    pub ok: bool,
    /// The file read.
    pub path: Option<String>,
    /// When, in milliseconds since the epoch.
    pub at: i64,
    /// What changed (for a reload that was applied).
    #[serde(default)]
    pub applied: Vec<String>,
    /// Settings that changed in the file but only take effect after a restart.
    #[serde(default)]
    pub restart_needed: Vec<String>,
    /// Why the file was refused (the running configuration stays).
    pub error: Option<String>,
}
