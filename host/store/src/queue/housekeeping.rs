//! Housekeeping every instance runs: timeouts, gone clients, lost admissions, stale slots.
use crate::db::write_tx;
use crate::dialect::Sql;
use crate::with_pool;
use crate::{Store, StoreError};

impl Store {
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
        const LOST: &str = "UPDATE queue_entries SET state = 'failed', message = $1 \
             WHERE state = 'admitted' AND query_id IS NULL AND admitted_ms < $2";
        const LOST_WHY: &str = "the gateway instance admitting this query stopped while it submitted it: it may or may not have started on the cluster, so it is not sent again";
        const FORGET: &str =
            "DELETE FROM queue_entries WHERE state <> 'queued' AND enqueued_ms < $1";
        write_tx!(self, |tx| {
            take_turn!(tx);
            let t = sqlx::query(tx.sql(TIMED_OUT))
                .bind(now_ms)
                .execute(&mut *tx)
                .await?
                .rows_affected();
            let a = sqlx::query(tx.sql(ABANDONED))
                .bind(live_since_ms)
                .execute(&mut *tx)
                .await?
                .rows_affected();
            let l = sqlx::query(tx.sql(LOST))
                .bind(LOST_WHY)
                .bind(stuck_before_ms)
                .execute(&mut *tx)
                .await?
                .rows_affected();
            sqlx::query(tx.sql(FORGET))
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
        // MySQL cannot delete from a table it reads in a subquery, but orders and limits a delete
        const FREE_MYSQL: &str =
            "DELETE FROM queue_slots WHERE backend = $1 AND taken_ms < $2 ORDER BY taken_ms LIMIT $3";
        // the common case, nothing stale, costs one read and takes no turn from admissions
        let (held,): (i64,) = with_pool!(self, |p| sqlx::query_as(p.sql(COUNT))
            .bind(backend)
            .fetch_one(p)
            .await)?;
        if held <= i64::from(reported) {
            return Ok(0);
        }
        write_tx!(self, |tx| {
            take_turn!(tx);
            let (held,): (i64,) = sqlx::query_as(tx.sql(COUNT))
                .bind(backend)
                .fetch_one(&mut *tx)
                .await?;
            let stale = held - i64::from(reported);
            if stale <= 0 {
                return Ok(0);
            }
            let free = match tx.is_mysql() {
                true => FREE_MYSQL,
                false => FREE,
            };
            sqlx::query(tx.sql(free))
                .bind(backend)
                .bind(taken_before_ms)
                .bind(stale)
                .execute(&mut *tx)
                .await?
                .rows_affected()
        })
    }
}
