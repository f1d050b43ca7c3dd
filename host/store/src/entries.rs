//! `cache_entries` (the L3 tier of the query cache) and `query_history` (one row per routed
//! query): batched writes, reads of unexpired entries, pruning.
use std::time::Duration;

use crate::db::write_tx;
use crate::dialect::Sql;
use crate::with_pool;
use crate::{now_ms, Store, StoreError};

/// One row of `query_history` (serialised as the history API shows it).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct HistoryRow {
    /// Trino's query id.
    pub query_id: String,
    /// The statement (as routed: cut at the routing limit).
    pub query_text: String,
    /// The user routing saw.
    pub user: Option<String>,
    /// `X-Trino-Source`.
    pub source: Option<String>,
    /// The group the query was routed in.
    pub routing_group: String,
    /// The backend that runs it.
    pub backend: String,
    /// The URL users see for that backend.
    pub external_url: Option<String>,
    /// Milliseconds since the epoch.
    #[serde(rename = "created_at")]
    pub created_at_ms: i64,
}

/// A queued write.
#[derive(Debug, Clone)]
pub enum Write {
    /// Upsert into `cache_entries`.
    Entry {
        /// The cache key.
        key: String,
        /// Its value.
        value: Vec<u8>,
        /// When it expires, in milliseconds since the epoch.
        expires_at_ms: i64,
    },
    /// Insert into `query_history` (once per query id).
    History(Box<HistoryRow>),
    /// Delete from `cache_entries` (after any write of the same key queued before it).
    Delete {
        /// The cache key.
        key: String,
    },
}

impl Write {
    /// The row it locks: (table, key).
    fn lock_key(&self) -> (u8, &str) {
        match self {
            Write::Entry { key, .. } | Write::Delete { key } => (0, key),
            Write::History(h) => (1, &h.query_id),
        }
    }
}

const UPSERT_ENTRY: &str =
    "INSERT INTO cache_entries (key, value, expires_at) VALUES ($1, $2, $3) \
     ON CONFLICT (key) DO UPDATE SET value = excluded.value, expires_at = excluded.expires_at";
const DELETE_ENTRY: &str = "DELETE FROM cache_entries WHERE key = $1";
const INSERT_HISTORY: &str = "INSERT INTO query_history (query_id, query_text, user_name, source, routing_group, backend, external_url, created_at) \
     VALUES ($1, $2, $3, $4, $5, $6, $7, $8) ON CONFLICT (query_id) DO NOTHING";

/// The longest text kept in an indexed column of the history (MySQL indexes `VARCHAR(255)`; the
/// other dialects keep the same, so every store answers alike).
pub const MAX_INDEXED_CHARS: usize = 255;

fn cut(s: &str) -> &str {
    match s.char_indices().nth(MAX_INDEXED_CHARS) {
        Some((at, _)) => &s[..at],
        None => s,
    }
}

impl Store {
    /// An unexpired cache entry.
    pub async fn get_entry(&self, key: &str) -> Result<Option<Vec<u8>>, StoreError> {
        const SQL: &str = "SELECT value FROM cache_entries WHERE key = $1 AND expires_at > $2";
        let now = now_ms();
        Ok(with_pool!(self, |p| sqlx::query_scalar(p.sql(SQL))
            .bind(key)
            .bind(now)
            .fetch_optional(p)
            .await)?)
    }

    /// Delete one entry now.
    pub async fn delete_entry(&self, key: &str) -> Result<(), StoreError> {
        with_pool!(self, |p| sqlx::query(p.sql(DELETE_ENTRY))
            .bind(key)
            .execute(p)
            .await
            .map(|_| ()))?;
        Ok(())
    }

    /// Apply a batch in one transaction. Rows are written in key order (a stable sort: writes of
    /// one key keep their order), so two instances writing overlapping keys take their row locks
    /// in the same order and never deadlock.
    pub async fn write_batch(&self, batch: &[Write]) -> Result<(), StoreError> {
        let mut ordered: Vec<&Write> = batch.iter().collect();
        ordered.sort_by(|a, b| a.lock_key().cmp(&b.lock_key()));
        write_tx!(self, |tx| {
            for w in ordered {
                match w {
                    Write::Entry {
                        key,
                        value,
                        expires_at_ms,
                    } => {
                        sqlx::query(tx.sql(UPSERT_ENTRY))
                            .bind(key)
                            .bind(value)
                            .bind(expires_at_ms)
                            .execute(&mut *tx)
                            .await?
                    }
                    Write::Delete { key } => {
                        sqlx::query(tx.sql(DELETE_ENTRY))
                            .bind(key)
                            .execute(&mut *tx)
                            .await?
                    }
                    Write::History(h) => {
                        sqlx::query(tx.sql(INSERT_HISTORY))
                            .bind(cut(&h.query_id))
                            .bind(&h.query_text)
                            .bind(h.user.as_deref().map(cut))
                            .bind(h.source.as_deref().map(cut))
                            .bind(cut(&h.routing_group))
                            .bind(cut(&h.backend))
                            .bind(&h.external_url)
                            .bind(h.created_at_ms)
                            .execute(&mut *tx)
                            .await?
                    }
                };
            }
        })
    }

    /// Delete expired entries and history older than `retention`; returns rows deleted.
    pub async fn prune(&self, retention: Duration) -> Result<u64, StoreError> {
        let now = now_ms();
        let cutoff = now - retention.as_millis() as i64;
        let mut deleted = 0;
        for (sql, before) in [
            ("DELETE FROM cache_entries WHERE expires_at <= $1", now),
            ("DELETE FROM query_history WHERE created_at < $1", cutoff),
        ] {
            deleted += with_pool!(self, |p| sqlx::query(p.sql(sql))
                .bind(before)
                .execute(p)
                .await
                .map(|done| done.rows_affected()))?;
        }
        Ok(deleted)
    }

    /// Rows in `query_history` (tests and status).
    pub async fn history_count(&self) -> Result<i64, StoreError> {
        const SQL: &str = "SELECT COUNT(*) FROM query_history";
        Ok(with_pool!(self, |p| sqlx::query_scalar(p.sql(SQL))
            .fetch_one(p)
            .await)?)
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    pub(crate) fn row(id: &str) -> Write {
        Write::History(Box::new(HistoryRow {
            query_id: id.into(),
            query_text: "SELECT 1".into(),
            user: Some("u".into()),
            source: None,
            routing_group: "adhoc".into(),
            backend: "b".into(),
            external_url: None,
            created_at_ms: now_ms(),
        }))
    }

    async fn round_trip_prune_and_idempotent_history(store: Store) {
        let soon = now_ms() + 60_000;
        let entry = |key: &str, value: &[u8], expires_at_ms| Write::Entry {
            key: key.into(),
            value: value.to_vec(),
            expires_at_ms,
        };
        store
            .write_batch(&[
                entry("k", b"v1", soon),
                entry("k", b"v2", soon),
                entry("old", b"x", 1),
                row("1_2_3_a"),
                row("1_2_3_a"),
            ])
            .await
            .unwrap();
        assert_eq!(store.get_entry("k").await.unwrap(), Some(b"v2".to_vec()));
        assert_eq!(
            store.get_entry("old").await.unwrap(),
            None,
            "expired entries are not served"
        );
        assert_eq!(store.history_count().await.unwrap(), 1);
        assert_eq!(store.prune(Duration::from_secs(86_400)).await.unwrap(), 1);
    }

    crate::test_dbs::on_every_dialect!(round_trip_prune_and_idempotent_history,);
}
