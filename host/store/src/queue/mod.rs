//! `queue_entries`, `queue_slots`, `queue_turn`: the gateway's queue, shared by a fleet.
//!
//! A *slot* is a query admitted to a backend and not yet seen to end; the slots of a backend
//! count against its `max_queries`. An *entry* is a query that waited (or waits) for a slot.
//! Every admission and every enqueue runs in one transaction that begins by updating
//! `queue_turn`'s single row: PostgreSQL holds that row lock to the end of the transaction and
//! SQLite serialises writers anyway, so N instances never admit more than a limit allows.

pub(crate) const TURN: &str = "UPDATE queue_turn SET turn = turn + 1 WHERE id = 1 RETURNING turn";
/// [`TURN`] in two statements, for MySQL (no `RETURNING`; the row stays locked in between).
pub(crate) const TURN_BUMP: &str = "UPDATE queue_turn SET turn = turn + 1 WHERE id = 1";
pub(crate) const TURN_READ: &str = "SELECT turn FROM queue_turn WHERE id = 1";

/// Take the fleet-wide turn inside the transaction `$tx`: its number.
macro_rules! take_turn {
    ($tx:ident) => {{
        let turn: Result<(i64,), sqlx::Error> = if $tx.is_mysql() {
            match sqlx::query($crate::queue::TURN_BUMP)
                .execute(&mut *$tx)
                .await
            {
                Ok(_) => {
                    sqlx::query_as($crate::queue::TURN_READ)
                        .fetch_one(&mut *$tx)
                        .await
                }
                Err(e) => Err(e),
            }
        } else {
            sqlx::query_as($crate::queue::TURN)
                .fetch_one(&mut *$tx)
                .await
        };
        turn?.0
    }};
}

/// A query about to wait. Credentials are not part of it: `headers` holds only what may be
/// stored.
pub struct NewEntry<'a> {
    /// The Sluice-issued query id.
    pub id: &'a str,
    /// The secret part of its URIs.
    pub slug: &'a str,
    /// Higher goes first.
    pub priority: i64,
    /// The routing group it waits in.
    pub group: &'a str,
    /// Its user (`""` when the client named none).
    pub user: &'a str,
    /// `X-Trino-Source`.
    pub source: Option<&'a str>,
    /// The text shown in the admin API (cut).
    pub query_text: &'a str,
    /// The statement as the client sent it.
    pub statement: &'a [u8],
    /// The client's headers without credentials, as JSON.
    pub headers: &'a str,
    /// Now.
    pub now_ms: i64,
    /// When it fails with a timeout.
    pub deadline_ms: i64,
}

/// The limits an enqueue checks.
#[derive(Debug, Clone, Copy)]
pub struct WaitLimits {
    /// Waiting queries, fleet-wide.
    pub max_queued: u64,
    /// Waiting queries of the group.
    pub group_max_queued: Option<u32>,
    /// Waiting queries of the user.
    pub user_max_queued: Option<u32>,
}

/// Why a query may not wait.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum QueueFull {
    /// `queue.max_queued`.
    Total(u64),
    /// The group's `max_queued`.
    Group(u32),
    /// The user's `max_queued`.
    User(u32),
}

/// One entry as stored.
#[derive(Debug, Clone)]
pub struct Entry {
    /// The Sluice-issued query id.
    pub id: String,
    /// The secret part of its URIs.
    pub slug: String,
    /// Arrival order.
    pub seq: i64,
    /// Higher goes first.
    pub priority: i64,
    /// The group it waits in.
    pub routing_group: String,
    /// Its user.
    pub user_name: String,
    /// `X-Trino-Source`.
    pub source: Option<String>,
    /// The text (cut).
    pub query_text: String,
    /// The statement.
    pub statement: Vec<u8>,
    /// Headers without credentials, JSON `[[name, value], …]`.
    pub headers: String,
    /// `queued`, `admitted`, `cancelled`, `timed_out`, `abandoned`, `failed`.
    pub state: String,
    /// When it arrived.
    pub enqueued_ms: i64,
    /// When it times out.
    pub deadline_ms: i64,
    /// When its client last polled.
    pub last_poll_ms: i64,
    /// When it was admitted.
    pub admitted_ms: Option<i64>,
    /// Its admission's turn: arrivals (`seq`) and admissions share one sequence, so this says
    /// which entries waited while it was admitted.
    pub admitted_turn: Option<i64>,
    /// The backend it was admitted to.
    pub backend: Option<String>,
    /// The cluster's query id once submitted.
    pub query_id: Option<String>,
    /// The cluster's first `nextUri`.
    pub next_uri: Option<String>,
    /// Why it failed.
    pub message: Option<String>,
}

pub(crate) const ENTRY_COLUMNS: &str = "id, slug, seq, priority, routing_group, user_name, source, query_text, statement, headers, state, \
     enqueued_ms, deadline_ms, last_poll_ms, admitted_ms, admitted_turn, backend, query_id, next_uri, message";

/// A waiting entry, as the admin API shows it.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Waiting {
    /// The Sluice-issued query id.
    pub id: String,
    /// Arrival order.
    pub seq: i64,
    /// Higher goes first.
    pub priority: i64,
    /// The group it waits in.
    #[serde(rename = "group")]
    pub routing_group: String,
    /// Its user.
    #[serde(rename = "user")]
    pub user_name: String,
    /// `X-Trino-Source`.
    pub source: Option<String>,
    /// The text (cut).
    pub query_text: String,
    /// When it arrived.
    pub enqueued_ms: i64,
    /// When its client last polled.
    pub last_poll_ms: i64,
}

/// A backend a query may be admitted to, and its limit.
#[derive(Debug, Clone)]
pub struct Room {
    /// Its name.
    pub backend: String,
    /// `max_queries` (none: no limit).
    pub max: Option<u32>,
}

/// One admission attempt.
pub struct AdmitAsk<'a> {
    /// The slot's id: the entry's id, or a fresh one for a query that never waited.
    pub slot_id: &'a str,
    /// The group.
    pub group: &'a str,
    /// The user.
    pub user: &'a str,
    /// Its priority.
    pub priority: i64,
    /// The entry's arrival order; none for a query that has not waited (everything waiting at
    /// its priority or above is ahead of it).
    pub seq: Option<i64>,
    /// The routable backends of the group, the router's choice first.
    pub rooms: &'a [Room],
    /// The group's running limit.
    pub group_max: Option<u32>,
    /// Each user's running limit.
    pub user_max: &'a (dyn Fn(&str) -> Option<u32> + Sync),
    /// Waiting entries not polled since are gone, and hold no one up.
    pub live_since_ms: i64,
    /// Now.
    pub now_ms: i64,
}

/// What an admission attempt found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Admission {
    /// A slot on this backend is taken.
    Admitted(String),
    /// A query of the group is ahead of it.
    Behind,
    /// Its user runs their quota.
    UserQuota,
    /// Its group runs its quota.
    GroupFull,
    /// Every backend is at its limit.
    NoRoom,
    /// The entry is not waiting any more (its state).
    NotWaiting(String),
}

/// Slots held, for the admin API and metrics.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct SlotCount {
    /// Backend.
    pub backend: String,
    /// Slots held.
    pub running: i64,
}

pub(crate) type Counts = Vec<(String, i64)>;

mod admit;
mod entries;
mod housekeeping;
mod rows;

#[cfg(test)]
mod tests;
