//! One entry or slot at a time: submission recorded, slots freed, entries read and ended.
use super::{Counts, Entry, SlotCount, Waiting, ENTRY_COLUMNS};
use crate::db::write_tx;
use crate::dialect::Sql;
use crate::with_pool;
use crate::{Store, StoreError};

impl Store {
    /// The slot `slot_id` now runs the cluster's query `query_id` (its end frees the slot); a
    /// waited entry of that id records it and the cluster's first `nextUri`.
    pub async fn submitted(
        &self,
        slot_id: &str,
        query_id: &str,
        next_uri: Option<&str>,
    ) -> Result<(), StoreError> {
        const SLOT: &str = "UPDATE queue_slots SET query_id = $1 WHERE slot_id = $2";
        const ENTRY: &str = "UPDATE queue_entries SET query_id = $1, next_uri = $2 WHERE id = $3";
        write_tx!(self, |tx| {
            sqlx::query(tx.sql(SLOT))
                .bind(query_id)
                .bind(slot_id)
                .execute(&mut *tx)
                .await?;
            sqlx::query(tx.sql(ENTRY))
                .bind(query_id)
                .bind(next_uri)
                .bind(slot_id)
                .execute(&mut *tx)
                .await?;
        })
    }

    /// Free the slot of the cluster's query `query_id` (it ended); whether one was held.
    pub async fn release_query(&self, query_id: &str) -> Result<bool, StoreError> {
        const SQL: &str = "DELETE FROM queue_slots WHERE query_id = $1";
        let n = with_pool!(self, |p| sqlx::query(p.sql(SQL))
            .bind(query_id)
            .execute(p)
            .await
            .map(|r| r.rows_affected()))?;
        Ok(n > 0)
    }

    /// Free the slot `slot_id` (its submission failed); whether one was held.
    pub async fn release_slot(&self, slot_id: &str) -> Result<bool, StoreError> {
        const SQL: &str = "DELETE FROM queue_slots WHERE slot_id = $1";
        let n = with_pool!(self, |p| sqlx::query(p.sql(SQL))
            .bind(slot_id)
            .execute(p)
            .await
            .map(|r| r.rows_affected()))?;
        Ok(n > 0)
    }

    /// One entry, and its client's poll recorded (`now_ms`).
    pub async fn poll_entry(&self, id: &str, now_ms: i64) -> Result<Option<Entry>, StoreError> {
        if let Store::MySql(_) = self {
            // no RETURNING: touch, then read (a poll that races an end reads the end)
            const TOUCH: &str = "UPDATE queue_entries SET last_poll_ms = $1 WHERE id = $2";
            with_pool!(self, |p| sqlx::query(p.sql(TOUCH))
                .bind(now_ms)
                .bind(id)
                .execute(p)
                .await
                .map(|_| ()))?;
            return self.entry(id).await;
        }
        // one round trip on every poll
        let touch = format!(
            "UPDATE queue_entries SET last_poll_ms = $1 WHERE id = $2 RETURNING {ENTRY_COLUMNS}"
        );
        Ok(with_pool!(self, |p| sqlx::query_as::<_, Entry>(
            sqlx::AssertSqlSafe(touch)
        )
        .bind(now_ms)
        .bind(id)
        .fetch_optional(p)
        .await)?)
    }

    /// One entry.
    pub async fn entry(&self, id: &str) -> Result<Option<Entry>, StoreError> {
        let select = format!("SELECT {ENTRY_COLUMNS} FROM queue_entries WHERE id = $1");
        Ok(with_pool!(self, |p| sqlx::query_as::<_, Entry>(
            p.sql_string(select)
        )
        .bind(id)
        .fetch_optional(p)
        .await)?)
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
            "UPDATE queue_entries SET state = $1, message = $2 WHERE id = $3 AND state = 'queued'";
        let n = with_pool!(self, |p| sqlx::query(p.sql(SQL))
            .bind(state)
            .bind(message)
            .bind(id)
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
        const FAIL: &str = "UPDATE queue_entries SET state = 'failed', message = $1 \
             WHERE id = $2 AND state = 'admitted' AND query_id IS NULL";
        write_tx!(self, |tx| {
            sqlx::query(tx.sql(FREE)).bind(id).execute(&mut *tx).await?;
            match requeue {
                true => sqlx::query(tx.sql(BACK)).bind(id).execute(&mut *tx).await?,
                false => {
                    sqlx::query(tx.sql(FAIL))
                        .bind(message)
                        .bind(id)
                        .execute(&mut *tx)
                        .await?
                }
            };
        })
    }

    /// Waiting entries, group by group, in the order they will be admitted.
    pub async fn waiting(&self, limit: i64) -> Result<Vec<Waiting>, StoreError> {
        const SQL: &str = "SELECT id, seq, priority, routing_group, user_name, source, query_text, enqueued_ms, last_poll_ms \
             FROM queue_entries WHERE state = 'queued' ORDER BY routing_group, priority DESC, seq LIMIT $1";
        let rows = with_pool!(self, |p| sqlx::query_as::<_, Waiting>(p.sql(SQL))
            .bind(limit)
            .fetch_all(p)
            .await)?;
        Ok(rows)
    }

    /// Waiting entries per group.
    pub async fn depth(&self) -> Result<Vec<(String, i64)>, StoreError> {
        const SQL: &str = "SELECT routing_group, COUNT(*) FROM queue_entries WHERE state = 'queued' GROUP BY routing_group";
        Ok(with_pool!(self, |p| sqlx::query_as(p.sql(SQL))
            .fetch_all(p)
            .await)?)
    }

    /// Slots held per backend.
    pub async fn slots(&self) -> Result<Vec<SlotCount>, StoreError> {
        const SQL: &str =
            "SELECT backend, COUNT(*) FROM queue_slots GROUP BY backend ORDER BY backend";
        let rows: Counts = with_pool!(self, |p| sqlx::query_as(p.sql(SQL)).fetch_all(p).await)?;
        Ok(rows
            .into_iter()
            .map(|(backend, running)| SlotCount { backend, running })
            .collect())
    }
}
