//! Arrivals and admissions: each one transaction, in turn with every other instance's.
use super::{Admission, AdmitAsk, Counts, NewEntry, QueueFull, Room, WaitLimits};
use crate::db::write_tx;
use crate::dialect::Sql;
use crate::{Store, StoreError};

impl Store {
    /// Put a query in the queue, unless a waiting limit is reached; returns its arrival order.
    pub async fn enqueue(
        &self,
        e: &NewEntry<'_>,
        limits: WaitLimits,
    ) -> Result<Result<i64, QueueFull>, StoreError> {
        const COUNTS: &str = "SELECT COUNT(*), \
             COUNT(CASE WHEN routing_group = $1 THEN 1 END), \
             COUNT(CASE WHEN user_name = $2 THEN 1 END) \
             FROM queue_entries WHERE state = 'queued'";
        const INSERT: &str = "INSERT INTO queue_entries (id, slug, seq, priority, routing_group, user_name, source, query_text, \
             statement, headers, state, enqueued_ms, deadline_ms, last_poll_ms) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, 'queued', $11, $12, $13)";
        write_tx!(self, |tx| {
            let seq = take_turn!(tx);
            let (total, group, user): (i64, Option<i64>, Option<i64>) =
                sqlx::query_as(tx.sql(COUNTS))
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
            sqlx::query(tx.sql(INSERT))
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
                .bind(e.now_ms)
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
             AND (priority > $5 OR (priority = $6 AND seq < $7))";
        const BY_USER: &str = "SELECT user_name, COUNT(*) FROM queue_slots GROUP BY user_name";
        const BY_BACKEND: &str = "SELECT backend, COUNT(*) FROM queue_slots GROUP BY backend";
        const IN_GROUP: &str = "SELECT COUNT(*) FROM queue_slots WHERE routing_group = $1";
        const TAKE: &str = "INSERT INTO queue_slots (slot_id, backend, routing_group, user_name, query_id, taken_ms) \
             VALUES ($1, $2, $3, $4, NULL, $5)";
        const ADMITTED: &str =
            "UPDATE queue_entries SET state = 'admitted', backend = $1, admitted_ms = $2, \
             admitted_turn = $3 WHERE id = $4";
        write_tx!(self, |tx| {
            let turn = take_turn!(tx);
            if a.seq.is_some() {
                let state: Option<(String,)> = sqlx::query_as(tx.sql(STATE))
                    .bind(a.slot_id)
                    .fetch_optional(&mut *tx)
                    .await?;
                match state {
                    Some((s,)) if s == "queued" => {}
                    Some((s,)) => return Ok(Admission::NotWaiting(s)),
                    None => return Ok(Admission::NotWaiting("unknown".into())),
                }
            }
            let by_user: Counts = sqlx::query_as(tx.sql(BY_USER)).fetch_all(&mut *tx).await?;
            let running_of = |u: &str| by_user.iter().find(|(n, _)| n == u).map_or(0, |(_, c)| *c);
            let full = |u: &str| (a.user_max)(u).is_some_and(|m| running_of(u) >= i64::from(m));
            let ahead: Vec<(String,)> = sqlx::query_as(tx.sql(AHEAD))
                .bind(a.group)
                .bind(a.live_since_ms)
                .bind(a.now_ms)
                .bind(a.slot_id)
                .bind(a.priority)
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
                let (n,): (i64,) = sqlx::query_as(tx.sql(IN_GROUP))
                    .bind(a.group)
                    .fetch_one(&mut *tx)
                    .await?;
                if n >= i64::from(max) {
                    return Ok(Admission::GroupFull);
                }
            }
            let by_backend: Counts = sqlx::query_as(tx.sql(BY_BACKEND))
                .fetch_all(&mut *tx)
                .await?;
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
            sqlx::query(tx.sql(TAKE))
                .bind(a.slot_id)
                .bind(&room.backend)
                .bind(a.group)
                .bind(a.user)
                .bind(a.now_ms)
                .execute(&mut *tx)
                .await?;
            if a.seq.is_some() {
                sqlx::query(tx.sql(ADMITTED))
                    .bind(&room.backend)
                    .bind(a.now_ms)
                    .bind(turn)
                    .bind(a.slot_id)
                    .execute(&mut *tx)
                    .await?;
            }
            Admission::Admitted(room.backend.clone())
        })
    }
}
