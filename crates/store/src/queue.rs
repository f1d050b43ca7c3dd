//! `queue_entries`, `queue_slots`, `queue_turn`: the gateway's queue, shared by a fleet.
//!
//! A *slot* is a query admitted to a backend and not yet seen to end; the slots of a backend
//! count against its `max_queries`. An *entry* is a query that waited (or waits) for a slot.
//! Every admission and every enqueue runs in one transaction that begins by updating
//! `queue_turn`'s single row: PostgreSQL holds that row lock to the end of the transaction and
//! SQLite serialises writers anyway, so N instances never admit more than a limit allows.
use crate::db::{with_pool, write_tx};
use crate::{Store, StoreError};

const TURN: &str = "UPDATE queue_turn SET turn = turn + 1 WHERE id = 1 RETURNING turn";

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
#[derive(Debug, Clone, sqlx::FromRow)]
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

const ENTRY_COLUMNS: &str = "id, slug, seq, priority, routing_group, user_name, source, query_text, statement, headers, state, \
     enqueued_ms, deadline_ms, last_poll_ms, admitted_ms, admitted_turn, backend, query_id, next_uri, message";

/// A waiting entry, as the admin API shows it.
#[derive(Debug, Clone, sqlx::FromRow, serde::Serialize)]
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

type Counts = Vec<(String, i64)>;

impl Store {
    /// Put a query in the queue, unless a waiting limit is reached; returns its arrival order.
    pub async fn enqueue(
        &self,
        e: &NewEntry<'_>,
        limits: WaitLimits,
    ) -> Result<Result<i64, QueueFull>, StoreError> {
        const COUNTS: &str = "SELECT COUNT(*), \
             SUM(CASE WHEN routing_group = $1 THEN 1 ELSE 0 END), \
             SUM(CASE WHEN user_name = $2 THEN 1 ELSE 0 END) \
             FROM queue_entries WHERE state = 'queued'";
        const INSERT: &str = "INSERT INTO queue_entries (id, slug, seq, priority, routing_group, user_name, source, query_text, \
             statement, headers, state, enqueued_ms, deadline_ms, last_poll_ms) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, 'queued', $11, $12, $11)";
        write_tx!(self, |tx| {
            let (seq,): (i64,) = sqlx::query_as(TURN).fetch_one(&mut *tx).await?;
            let (total, group, user): (i64, Option<i64>, Option<i64>) = sqlx::query_as(COUNTS)
                .bind(e.group)
                .bind(e.user)
                .fetch_one(&mut *tx)
                .await?;
            let over =
                |n: Option<i64>, max: Option<u32>| max.filter(|m| n.unwrap_or(0) >= i64::from(*m));
            if total as u64 >= limits.max_queued {
                return Ok(Err(QueueFull::Total(limits.max_queued)));
            }
            if let Some(m) = over(group, limits.group_max_queued) {
                return Ok(Err(QueueFull::Group(m)));
            }
            if let Some(m) = over(user, limits.user_max_queued) {
                return Ok(Err(QueueFull::User(m)));
            }
            sqlx::query(INSERT)
                .bind(e.id)
                .bind(e.slug)
                .bind(seq)
                .bind(e.priority)
                .bind(e.group)
                .bind(e.user)
                .bind(e.source)
                .bind(e.query_text)
                .bind(e.statement)
                .bind(e.headers)
                .bind(e.now_ms)
                .bind(e.deadline_ms)
                .execute(&mut *tx)
                .await?;
            Ok(seq)
        })
    }

    /// Try to admit a query: take a slot on a backend with room, if nothing waiting is ahead of
    /// it and no quota stops it. One transaction, in turn with every other instance's.
    pub async fn admit(&self, a: &AdmitAsk<'_>) -> Result<Admission, StoreError> {
        const STATE: &str = "SELECT state FROM queue_entries WHERE id = $1";
        const AHEAD: &str =
            "SELECT user_name FROM queue_entries WHERE state = 'queued' AND routing_group = $1 \
             AND last_poll_ms >= $2 AND deadline_ms > $3 AND id <> $4 \
             AND (priority > $5 OR (priority = $5 AND seq < $6))";
        const BY_USER: &str = "SELECT user_name, COUNT(*) FROM queue_slots GROUP BY user_name";
        const BY_BACKEND: &str = "SELECT backend, COUNT(*) FROM queue_slots GROUP BY backend";
        const IN_GROUP: &str = "SELECT COUNT(*) FROM queue_slots WHERE routing_group = $1";
        const TAKE: &str = "INSERT INTO queue_slots (slot_id, backend, routing_group, user_name, query_id, taken_ms) \
             VALUES ($1, $2, $3, $4, NULL, $5)";
        const ADMITTED: &str =
            "UPDATE queue_entries SET state = 'admitted', backend = $2, admitted_ms = $3, \
             admitted_turn = $4 WHERE id = $1";
        write_tx!(self, |tx| {
            let (turn,): (i64,) = sqlx::query_as(TURN).fetch_one(&mut *tx).await?;
            if a.seq.is_some() {
                let state: Option<(String,)> = sqlx::query_as(STATE)
                    .bind(a.slot_id)
                    .fetch_optional(&mut *tx)
                    .await?;
                match state {
                    Some((s,)) if s == "queued" => {}
                    Some((s,)) => return Ok(Admission::NotWaiting(s)),
                    None => return Ok(Admission::NotWaiting("unknown".into())),
                }
            }
            let by_user: Counts = sqlx::query_as(BY_USER).fetch_all(&mut *tx).await?;
            let running_of = |u: &str| by_user.iter().find(|(n, _)| n == u).map_or(0, |(_, c)| *c);
            let full = |u: &str| (a.user_max)(u).is_some_and(|m| running_of(u) >= i64::from(m));
            let ahead: Vec<(String,)> = sqlx::query_as(AHEAD)
                .bind(a.group)
                .bind(a.live_since_ms)
                .bind(a.now_ms)
                .bind(a.slot_id)
                .bind(a.priority)
                .bind(a.seq.unwrap_or(i64::MAX))
                .fetch_all(&mut *tx)
                .await?;
            // a user at their quota holds up no one: the next query behind theirs goes first
            if ahead.iter().any(|(u,)| !full(u)) {
                return Ok(Admission::Behind);
            }
            if full(a.user) {
                return Ok(Admission::UserQuota);
            }
            if let Some(max) = a.group_max {
                let (n,): (i64,) = sqlx::query_as(IN_GROUP)
                    .bind(a.group)
                    .fetch_one(&mut *tx)
                    .await?;
                if n >= i64::from(max) {
                    return Ok(Admission::GroupFull);
                }
            }
            let by_backend: Counts = sqlx::query_as(BY_BACKEND).fetch_all(&mut *tx).await?;
            let held = |b: &str| {
                by_backend
                    .iter()
                    .find(|(n, _)| n == b)
                    .map_or(0, |(_, c)| *c)
            };
            // the router's choice when it has room, else the backend with the most room
            let free = |r: &Room| r.max.map_or(i64::MAX, |m| i64::from(m) - held(&r.backend));
            let chosen = match a.rooms.first().filter(|r| free(r) > 0) {
                Some(r) => Some(r),
                None => a
                    .rooms
                    .iter()
                    .filter(|r| free(r) > 0)
                    .max_by_key(|r| free(r)),
            };
            let Some(room) = chosen else {
                return Ok(Admission::NoRoom);
            };
            sqlx::query(TAKE)
                .bind(a.slot_id)
                .bind(&room.backend)
                .bind(a.group)
                .bind(a.user)
                .bind(a.now_ms)
                .execute(&mut *tx)
                .await?;
            if a.seq.is_some() {
                sqlx::query(ADMITTED)
                    .bind(a.slot_id)
                    .bind(&room.backend)
                    .bind(a.now_ms)
                    .bind(turn)
                    .execute(&mut *tx)
                    .await?;
            }
            Admission::Admitted(room.backend.clone())
        })
    }

    /// The slot `slot_id` now runs the cluster's query `query_id` (its end frees the slot); a
    /// waited entry of that id records it and the cluster's first `nextUri`.
    pub async fn submitted(
        &self,
        slot_id: &str,
        query_id: &str,
        next_uri: Option<&str>,
    ) -> Result<(), StoreError> {
        const SLOT: &str = "UPDATE queue_slots SET query_id = $2 WHERE slot_id = $1";
        const ENTRY: &str = "UPDATE queue_entries SET query_id = $2, next_uri = $3 WHERE id = $1";
        with_pool!(self, |p| {
            sqlx::query(SLOT)
                .bind(slot_id)
                .bind(query_id)
                .execute(p)
                .await?;
            sqlx::query(ENTRY)
                .bind(slot_id)
                .bind(query_id)
                .bind(next_uri)
                .execute(p)
                .await
                .map(|_| ())
        })?;
        Ok(())
    }

    /// Free the slot of the cluster's query `query_id` (it ended); whether one was held.
    pub async fn release_query(&self, query_id: &str) -> Result<bool, StoreError> {
        const SQL: &str = "DELETE FROM queue_slots WHERE query_id = $1";
        let n = with_pool!(self, |p| sqlx::query(SQL)
            .bind(query_id)
            .execute(p)
            .await
            .map(|r| r.rows_affected()))?;
        Ok(n > 0)
    }

    /// Free the slot `slot_id` (its submission failed); whether one was held.
    pub async fn release_slot(&self, slot_id: &str) -> Result<bool, StoreError> {
        const SQL: &str = "DELETE FROM queue_slots WHERE slot_id = $1";
        let n = with_pool!(self, |p| sqlx::query(SQL)
            .bind(slot_id)
            .execute(p)
            .await
            .map(|r| r.rows_affected()))?;
        Ok(n > 0)
    }

    /// One entry, and its client's poll recorded (`now_ms`).
    pub async fn poll_entry(&self, id: &str, now_ms: i64) -> Result<Option<Entry>, StoreError> {
        const TOUCH: &str = "UPDATE queue_entries SET last_poll_ms = $2 WHERE id = $1";
        let select = format!("SELECT {ENTRY_COLUMNS} FROM queue_entries WHERE id = $1");
        let select = sqlx::AssertSqlSafe(select);
        with_pool!(self, |p| {
            sqlx::query(TOUCH).bind(id).bind(now_ms).execute(p).await?;
            sqlx::query_as::<_, Entry>(select)
                .bind(id)
                .fetch_optional(p)
                .await
        })
        .map_err(Into::into)
    }

    /// One entry.
    pub async fn entry(&self, id: &str) -> Result<Option<Entry>, StoreError> {
        let select = format!("SELECT {ENTRY_COLUMNS} FROM queue_entries WHERE id = $1");
        let select = sqlx::AssertSqlSafe(select);
        Ok(with_pool!(self, |p| sqlx::query_as::<_, Entry>(select)
            .bind(id)
            .fetch_optional(p)
            .await)?)
    }

    /// The entry that became the cluster's query `query_id`, if one did.
    pub async fn entry_of_query(&self, query_id: &str) -> Result<Option<String>, StoreError> {
        const SQL: &str = "SELECT id FROM queue_entries WHERE query_id = $1";
        let row: Option<(String,)> = with_pool!(self, |p| sqlx::query_as(SQL)
            .bind(query_id)
            .fetch_optional(p)
            .await)?;
        Ok(row.map(|(id,)| id))
    }

    /// End a waiting entry (`cancelled`, `timed_out`, `failed` …) with `message`; whether it was
    /// still waiting.
    pub async fn end_entry(
        &self,
        id: &str,
        state: &str,
        message: &str,
    ) -> Result<bool, StoreError> {
        const SQL: &str =
            "UPDATE queue_entries SET state = $2, message = $3 WHERE id = $1 AND state = 'queued'";
        let n = with_pool!(self, |p| sqlx::query(SQL)
            .bind(id)
            .bind(state)
            .bind(message)
            .execute(p)
            .await
            .map(|r| r.rows_affected()))?;
        Ok(n > 0)
    }

    /// An admitted entry whose submission failed: its slot freed, and `queued` again in its
    /// place (`requeue`), or ended as `failed` with `message`.
    pub async fn unadmit(&self, id: &str, requeue: bool, message: &str) -> Result<(), StoreError> {
        const FREE: &str = "DELETE FROM queue_slots WHERE slot_id = $1";
        const BACK: &str = "UPDATE queue_entries SET state = 'queued', backend = NULL, admitted_ms = NULL, admitted_turn = NULL \
             WHERE id = $1 AND state = 'admitted' AND query_id IS NULL";
        const FAIL: &str = "UPDATE queue_entries SET state = 'failed', message = $2 \
             WHERE id = $1 AND state = 'admitted' AND query_id IS NULL";
        write_tx!(self, |tx| {
            sqlx::query(FREE).bind(id).execute(&mut *tx).await?;
            match requeue {
                true => sqlx::query(BACK).bind(id).execute(&mut *tx).await?,
                false => {
                    sqlx::query(FAIL)
                        .bind(id)
                        .bind(message)
                        .execute(&mut *tx)
                        .await?
                }
            };
        })
    }

    /// Housekeeping: waiting entries past their deadline end `timed_out`, those not polled since
    /// `live_since_ms` end `abandoned`, admitted ones never submitted by `stuck_before_ms` end
    /// `failed` (the instance submitting them stopped: the cluster may or may not run them, so
    /// they are not sent again, and their slot stays until a health check shows the cluster
    /// does not run it); ended entries older than `forget_before_ms` are deleted. Returns
    /// (timed out, abandoned, lost).
    pub async fn sweep_queue(
        &self,
        now_ms: i64,
        live_since_ms: i64,
        stuck_before_ms: i64,
        forget_before_ms: i64,
    ) -> Result<(u64, u64, u64), StoreError> {
        const TIMED_OUT: &str = "UPDATE queue_entries SET state = 'timed_out', message = 'waited longer than queue.timeout_ms' \
             WHERE state = 'queued' AND deadline_ms <= $1";
        const ABANDONED: &str =
            "UPDATE queue_entries SET state = 'abandoned', message = 'the client stopped polling' \
             WHERE state = 'queued' AND last_poll_ms < $1";
        const LOST: &str = "UPDATE queue_entries SET state = 'failed', message = $2 \
             WHERE state = 'admitted' AND query_id IS NULL AND admitted_ms < $1";
        const LOST_WHY: &str = "the gateway instance admitting this query stopped while it submitted it: it may or may not have started on the cluster, so it is not sent again";
        const FORGET: &str =
            "DELETE FROM queue_entries WHERE state <> 'queued' AND enqueued_ms < $1";
        write_tx!(self, |tx| {
            sqlx::query(TURN).execute(&mut *tx).await?;
            let t = sqlx::query(TIMED_OUT)
                .bind(now_ms)
                .execute(&mut *tx)
                .await?
                .rows_affected();
            let a = sqlx::query(ABANDONED)
                .bind(live_since_ms)
                .execute(&mut *tx)
                .await?
                .rows_affected();
            let l = sqlx::query(LOST)
                .bind(stuck_before_ms)
                .bind(LOST_WHY)
                .execute(&mut *tx)
                .await?
                .rows_affected();
            sqlx::query(FORGET)
                .bind(forget_before_ms)
                .execute(&mut *tx)
                .await?;
            (t, a, l)
        })
    }

    /// The cluster behind `backend` reported `reported` queries at a check: free the oldest
    /// slots taken before `taken_before_ms` that it cannot be running (their end was not seen).
    /// Returns how many were freed.
    pub async fn reconcile(
        &self,
        backend: &str,
        reported: u32,
        taken_before_ms: i64,
    ) -> Result<u64, StoreError> {
        const COUNT: &str = "SELECT COUNT(*) FROM queue_slots WHERE backend = $1";
        const FREE: &str =
            "DELETE FROM queue_slots WHERE slot_id IN (SELECT slot_id FROM queue_slots \
             WHERE backend = $1 AND taken_ms < $2 ORDER BY taken_ms LIMIT $3)";
        // the common case, nothing stale, costs one read and takes no turn from admissions
        let (held,): (i64,) = with_pool!(self, |p| sqlx::query_as(COUNT)
            .bind(backend)
            .fetch_one(p)
            .await)?;
        if held <= i64::from(reported) {
            return Ok(0);
        }
        write_tx!(self, |tx| {
            sqlx::query(TURN).execute(&mut *tx).await?;
            let (held,): (i64,) = sqlx::query_as(COUNT)
                .bind(backend)
                .fetch_one(&mut *tx)
                .await?;
            let stale = held - i64::from(reported);
            if stale <= 0 {
                return Ok(0);
            }
            sqlx::query(FREE)
                .bind(backend)
                .bind(taken_before_ms)
                .bind(stale)
                .execute(&mut *tx)
                .await?
                .rows_affected()
        })
    }

    /// Waiting entries, group by group, in the order they will be admitted.
    pub async fn waiting(&self, limit: i64) -> Result<Vec<Waiting>, StoreError> {
        const SQL: &str = "SELECT id, seq, priority, routing_group, user_name, source, query_text, enqueued_ms, last_poll_ms \
             FROM queue_entries WHERE state = 'queued' ORDER BY routing_group, priority DESC, seq LIMIT $1";
        let rows = with_pool!(self, |p| sqlx::query_as::<_, Waiting>(SQL)
            .bind(limit)
            .fetch_all(p)
            .await)?;
        Ok(rows)
    }

    /// Waiting entries per group.
    pub async fn depth(&self) -> Result<Vec<(String, i64)>, StoreError> {
        const SQL: &str = "SELECT routing_group, COUNT(*) FROM queue_entries WHERE state = 'queued' GROUP BY routing_group";
        Ok(with_pool!(self, |p| sqlx::query_as(SQL)
            .fetch_all(p)
            .await)?)
    }

    /// Slots held per backend.
    pub async fn slots(&self) -> Result<Vec<SlotCount>, StoreError> {
        const SQL: &str =
            "SELECT backend, COUNT(*) FROM queue_slots GROUP BY backend ORDER BY backend";
        let rows: Counts = with_pool!(self, |p| sqlx::query_as(SQL).fetch_all(p).await)?;
        Ok(rows
            .into_iter()
            .map(|(backend, running)| SlotCount { backend, running })
            .collect())
    }
}

#[cfg(test)]
#[path = "queue_tests.rs"]
mod tests;
