//! L3: state in SQL — SQLite embedded by default, PostgreSQL in production — with the same
//! schema in two dialects (`host/migrations/{sqlite,postgres}`), migrated at start.
//!
//! Writes go through a bounded queue and a batching writer that retries, so a slow or stopped
//! database never stalls routing: while it is down, rows wait in the queue; when the queue is
//! full the oldest are dropped and counted. Reads are bounded by a time limit and skipped while
//! the database is marked down.
use std::collections::VecDeque;
use std::str::FromStr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use sqlx::postgres::{PgPool, PgPoolOptions};
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions};
use tokio::sync::{watch, Notify};

use crate::config::StoreConfig;

mod fleet;
pub use fleet::InstanceSlot;

/// The two dialects.
#[derive(Clone)]
pub enum Store {
    /// Embedded.
    Sqlite(SqlitePool),
    /// Shared by a fleet.
    Postgres(PgPool),
}

/// One row of `query_history`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HistoryRow {
    pub query_id: String,
    pub query_text: String,
    pub user: Option<String>,
    pub source: Option<String>,
    pub routing_group: String,
    pub backend: String,
    pub external_url: Option<String>,
    pub created_at_ms: i64,
}

/// A filter version to store.
pub struct NewModule<'a> {
    pub slot: &'a str,
    pub sha256: &'a str,
    pub bytes: &'a [u8],
    pub config: &'a str,
    pub created_by: &'a str,
}

/// A stored filter version.
#[derive(Debug, Clone)]
pub struct ModuleRow {
    pub version: i64,
    pub sha256: String,
    pub bytes: Vec<u8>,
    pub config: String,
    pub active: bool,
}

/// A stored filter version, without its bytes.
#[derive(Debug, Clone, serde::Serialize)]
pub struct VersionRow {
    pub version: i64,
    pub sha256: String,
    pub active: bool,
    /// Milliseconds since the epoch.
    pub created_at: i64,
    /// `token:` and the start of the token's sha256, `watch_dir`, or `admin`.
    pub created_by: Option<String>,
}

/// A queued write.
#[derive(Debug, Clone)]
pub enum Write {
    /// Upsert into `cache_entries`.
    Entry {
        key: String,
        value: Vec<u8>,
        expires_at_ms: i64,
    },
    /// Insert into `query_history` (once per query id).
    History(Box<HistoryRow>),
}

/// How a writing transaction starts. SQLite takes the write lock up front (`BEGIN IMMEDIATE`): a
/// deferred transaction that reads first fails at once with `database is locked`, without waiting
/// for the busy timeout, when another connection wrote in between (the WAL snapshot rule), which
/// refused filter uploads while query history was being written.
///
/// SQLite writers also take turns in the process (a FIFO lock) before they begin: waiting on
/// SQLite's busy handler instead is not fair, and the history writer starved a filter upload for
/// the whole busy timeout.
pub(crate) trait WriteTx {
    const BEGIN: &'static str;
    const TAKE_TURNS: bool;
}

impl WriteTx for SqlitePool {
    const BEGIN: &'static str = "BEGIN IMMEDIATE";
    const TAKE_TURNS: bool = true;
}

impl WriteTx for PgPool {
    const BEGIN: &'static str = "BEGIN";
    const TAKE_TURNS: bool = false;
}

pub(crate) fn write_tx<P: WriteTx>(_: &P) -> &'static str {
    P::BEGIN
}

/// This writer's turn (SQLite), held until its transaction ends.
pub(crate) async fn write_turn<P: WriteTx>(_: &P) -> Option<tokio::sync::MutexGuard<'static, ()>> {
    static SQLITE_WRITES: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());
    if P::TAKE_TURNS {
        Some(SQLITE_WRITES.lock().await)
    } else {
        None
    }
}

/// Milliseconds since the epoch.
pub fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

// The statements in both dialects: the same SQL but for the placeholders.
const UPSERT_ENTRY: &str = "INSERT INTO cache_entries (key, value, expires_at) VALUES (?, ?, ?) \
     ON CONFLICT (key) DO UPDATE SET value = excluded.value, expires_at = excluded.expires_at";
const UPSERT_ENTRY_PG: &str =
    "INSERT INTO cache_entries (key, value, expires_at) VALUES ($1, $2, $3) \
     ON CONFLICT (key) DO UPDATE SET value = excluded.value, expires_at = excluded.expires_at";
const INSERT_HISTORY: &str = "INSERT INTO query_history (query_id, query_text, user_name, source, routing_group, backend, external_url, created_at) \
     VALUES (?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (query_id) DO NOTHING";
const INSERT_HISTORY_PG: &str = "INSERT INTO query_history (query_id, query_text, user_name, source, routing_group, backend, external_url, created_at) \
     VALUES ($1, $2, $3, $4, $5, $6, $7, $8) ON CONFLICT (query_id) DO NOTHING";
const GET_ENTRY: &str = "SELECT value FROM cache_entries WHERE key = ? AND expires_at > ?";
const GET_ENTRY_PG: &str = "SELECT value FROM cache_entries WHERE key = $1 AND expires_at > $2";

impl Store {
    /// Open (and for SQLite, create) the database named by `url`. Nothing is sent yet for
    /// PostgreSQL: it may be down at start.
    pub fn open(url: &str) -> Result<Store, String> {
        if url.starts_with("sqlite:") {
            let opts = SqliteConnectOptions::from_str(url)
                .map_err(|e| format!("store.url: {e}"))?
                .create_if_missing(true)
                .journal_mode(SqliteJournalMode::Wal)
                .busy_timeout(Duration::from_secs(5));
            // an in-memory database lives in one connection; a file is read by several (WAL
            // readers never wait on the writer), and written one transaction at a time (see
            // `write_turn`)
            let max = if url.contains(":memory:") || url.contains("mode=memory") {
                1
            } else {
                4
            };
            let pool = SqlitePoolOptions::new()
                .max_connections(max)
                .connect_lazy_with(opts);
            Ok(Store::Sqlite(pool))
        } else if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            let pool = PgPoolOptions::new()
                .max_connections(8)
                .acquire_timeout(Duration::from_secs(2))
                .connect_lazy(url)
                .map_err(|e| format!("store.url: {e}"))?;
            Ok(Store::Postgres(pool))
        } else {
            Err(format!(
                "store.url: '{url}' must start with sqlite: or postgres://"
            ))
        }
    }

    /// Run the migrations of this dialect.
    pub async fn migrate(&self) -> Result<(), String> {
        match self {
            Store::Sqlite(p) => sqlx::migrate!("./migrations/sqlite").run(p).await,
            Store::Postgres(p) => sqlx::migrate!("./migrations/postgres").run(p).await,
        }
        .map_err(|e| e.to_string())
    }

    /// `SELECT 1`.
    pub async fn ping(&self) -> Result<(), String> {
        match self {
            Store::Sqlite(p) => sqlx::query("SELECT 1").execute(p).await.map(|_| ()),
            Store::Postgres(p) => sqlx::query("SELECT 1").execute(p).await.map(|_| ()),
        }
        .map_err(|e| e.to_string())
    }

    /// An unexpired cache entry.
    pub async fn get_entry(&self, key: &str) -> Result<Option<Vec<u8>>, String> {
        let now = now_ms();
        match self {
            Store::Sqlite(p) => {
                sqlx::query_scalar(GET_ENTRY)
                    .bind(key)
                    .bind(now)
                    .fetch_optional(p)
                    .await
            }
            Store::Postgres(p) => {
                sqlx::query_scalar(GET_ENTRY_PG)
                    .bind(key)
                    .bind(now)
                    .fetch_optional(p)
                    .await
            }
        }
        .map_err(|e| e.to_string())
    }

    /// Apply a batch in one transaction.
    pub async fn write_batch(&self, batch: &[Write]) -> Result<(), String> {
        macro_rules! apply {
            ($pool:expr, $upsert:expr, $history:expr) => {{
                let _turn = write_turn($pool).await;
                let mut tx = $pool
                    .begin_with(write_tx($pool))
                    .await
                    .map_err(|e| e.to_string())?;
                for w in batch {
                    match w {
                        Write::Entry {
                            key,
                            value,
                            expires_at_ms,
                        } => {
                            sqlx::query($upsert)
                                .bind(key)
                                .bind(value)
                                .bind(expires_at_ms)
                                .execute(&mut *tx)
                                .await
                        }
                        Write::History(h) => {
                            sqlx::query($history)
                                .bind(&h.query_id)
                                .bind(&h.query_text)
                                .bind(&h.user)
                                .bind(&h.source)
                                .bind(&h.routing_group)
                                .bind(&h.backend)
                                .bind(&h.external_url)
                                .bind(h.created_at_ms)
                                .execute(&mut *tx)
                                .await
                        }
                    }
                    .map_err(|e| e.to_string())?;
                }
                tx.commit().await.map_err(|e| e.to_string())
            }};
        }
        match self {
            Store::Sqlite(p) => apply!(p, UPSERT_ENTRY, INSERT_HISTORY),
            Store::Postgres(p) => apply!(p, UPSERT_ENTRY_PG, INSERT_HISTORY_PG),
        }
    }

    /// Delete expired entries and history older than `retention`; returns rows deleted.
    pub async fn prune(&self, retention: Duration) -> Result<u64, String> {
        let now = now_ms();
        let cutoff = now - retention.as_millis() as i64;
        let err = |e: sqlx::Error| e.to_string();
        Ok(match self {
            Store::Sqlite(p) => {
                let a = sqlx::query("DELETE FROM cache_entries WHERE expires_at <= ?")
                    .bind(now)
                    .execute(p)
                    .await
                    .map_err(err)?;
                let b = sqlx::query("DELETE FROM query_history WHERE created_at < ?")
                    .bind(cutoff)
                    .execute(p)
                    .await
                    .map_err(err)?;
                a.rows_affected() + b.rows_affected()
            }
            Store::Postgres(p) => {
                let a = sqlx::query("DELETE FROM cache_entries WHERE expires_at <= $1")
                    .bind(now)
                    .execute(p)
                    .await
                    .map_err(err)?;
                let b = sqlx::query("DELETE FROM query_history WHERE created_at < $1")
                    .bind(cutoff)
                    .execute(p)
                    .await
                    .map_err(err)?;
                a.rows_affected() + b.rows_affected()
            }
        })
    }

    /// Store an accepted filter version as the slot's active one; returns its version number.
    pub async fn insert_module(&self, m: &NewModule<'_>) -> Result<i64, String> {
        let now = now_ms();
        macro_rules! run {
            ($pool:expr, $max:expr, $off:expr, $ins:expr) => {{
                let _turn = write_turn($pool).await;
                let mut tx = $pool
                    .begin_with(write_tx($pool))
                    .await
                    .map_err(|e| e.to_string())?;
                let version: i64 = sqlx::query_scalar($max)
                    .bind(m.slot)
                    .fetch_one(&mut *tx)
                    .await
                    .map_err(|e| e.to_string())?;
                sqlx::query($off)
                    .bind(m.slot)
                    .execute(&mut *tx)
                    .await
                    .map_err(|e| e.to_string())?;
                sqlx::query($ins)
                    .bind(m.slot)
                    .bind(version)
                    .bind(m.sha256)
                    .bind(m.bytes)
                    .bind(m.config)
                    .bind(now)
                    .bind(m.created_by)
                    .execute(&mut *tx)
                    .await
                    .map_err(|e| e.to_string())?;
                tx.commit().await.map_err(|e| e.to_string())?;
                Ok(version)
            }};
        }
        match self {
            Store::Sqlite(p) => run!(
                p,
                "SELECT COALESCE(MAX(version), 0) + 1 FROM filter_modules WHERE slot = ?",
                "UPDATE filter_modules SET active = FALSE WHERE slot = ?",
                "INSERT INTO filter_modules (slot, version, sha256, bytes, config, created_at, created_by, active) VALUES (?, ?, ?, ?, ?, ?, ?, TRUE)"
            ),
            Store::Postgres(p) => run!(
                p,
                "SELECT COALESCE(MAX(version), 0) + 1 FROM filter_modules WHERE slot = $1",
                "UPDATE filter_modules SET active = FALSE WHERE slot = $1",
                "INSERT INTO filter_modules (slot, version, sha256, bytes, config, created_at, created_by, active) VALUES ($1, $2, $3, $4, $5, $6, $7, TRUE)"
            ),
        }
    }

    /// One stored version of a slot.
    pub async fn module(&self, slot: &str, version: i64) -> Result<Option<ModuleRow>, String> {
        let row: Option<(i64, String, Vec<u8>, String, bool)> = match self {
            Store::Sqlite(p) => sqlx::query_as("SELECT version, sha256, bytes, config, active FROM filter_modules WHERE slot = ? AND version = ?")
                .bind(slot).bind(version).fetch_optional(p).await,
            Store::Postgres(p) => sqlx::query_as("SELECT version, sha256, bytes, config, active FROM filter_modules WHERE slot = $1 AND version = $2")
                .bind(slot).bind(version).fetch_optional(p).await,
        }
        .map_err(|e| e.to_string())?;
        Ok(
            row.map(|(version, sha256, bytes, config, active)| ModuleRow {
                version,
                sha256,
                bytes,
                config,
                active,
            }),
        )
    }

    /// The stored versions of a slot, oldest first, without their bytes.
    pub async fn versions(&self, slot: &str) -> Result<Vec<VersionRow>, String> {
        type Row = (i64, String, bool, i64, Option<String>);
        let rows: Vec<Row> = match self {
            Store::Sqlite(p) => sqlx::query_as("SELECT version, sha256, active, created_at, created_by FROM filter_modules WHERE slot = ? ORDER BY version")
                .bind(slot).fetch_all(p).await,
            Store::Postgres(p) => sqlx::query_as("SELECT version, sha256, active, created_at, created_by FROM filter_modules WHERE slot = $1 ORDER BY version")
                .bind(slot).fetch_all(p).await,
        }
        .map_err(|e| e.to_string())?;
        Ok(rows
            .into_iter()
            .map(
                |(version, sha256, active, created_at, created_by)| VersionRow {
                    version,
                    sha256,
                    active,
                    created_at,
                    created_by,
                },
            )
            .collect())
    }

    /// Mark `version` as the slot's active one.
    pub async fn activate(&self, slot: &str, version: i64) -> Result<(), String> {
        macro_rules! run {
            ($pool:expr, $off:expr, $on:expr) => {{
                let _turn = write_turn($pool).await;
                let mut tx = $pool
                    .begin_with(write_tx($pool))
                    .await
                    .map_err(|e| e.to_string())?;
                sqlx::query($off)
                    .bind(slot)
                    .execute(&mut *tx)
                    .await
                    .map_err(|e| e.to_string())?;
                sqlx::query($on)
                    .bind(slot)
                    .bind(version)
                    .execute(&mut *tx)
                    .await
                    .map_err(|e| e.to_string())?;
                tx.commit().await.map_err(|e| e.to_string())
            }};
        }
        match self {
            Store::Sqlite(p) => run!(
                p,
                "UPDATE filter_modules SET active = FALSE WHERE slot = ?",
                "UPDATE filter_modules SET active = TRUE WHERE slot = ? AND version = ?"
            ),
            Store::Postgres(p) => run!(
                p,
                "UPDATE filter_modules SET active = FALSE WHERE slot = $1",
                "UPDATE filter_modules SET active = TRUE WHERE slot = $1 AND version = $2"
            ),
        }
    }

    /// Rows in `query_history` (tests and status).
    pub async fn history_count(&self) -> Result<i64, String> {
        let q = "SELECT COUNT(*) FROM query_history";
        match self {
            Store::Sqlite(p) => sqlx::query_scalar(q).fetch_one(p).await,
            Store::Postgres(p) => sqlx::query_scalar(q).fetch_one(p).await,
        }
        .map_err(|e| e.to_string())
    }
}

/// The L3 tier: the store, its health, and the write queue.
pub struct L3 {
    store: Store,
    healthy: AtomicBool,
    migrated: AtomicBool,
    queue: Mutex<VecDeque<Write>>,
    notify: Notify,
    capacity: usize,
    batch_size: usize,
    timeout: Duration,
    dropped: AtomicU64,
    written: AtomicU64,
    in_flight: AtomicU64,
}

impl L3 {
    /// Open the store and start its writer, health check and pruning in the background.
    pub fn start(config: &StoreConfig, shutdown: watch::Receiver<bool>) -> Result<Arc<L3>, String> {
        let l3 = Arc::new(Self::new(config)?);
        tokio::spawn(supervise(l3.clone(), config.clone(), shutdown.clone()));
        tokio::spawn(write_loop(
            l3.clone(),
            Duration::from_millis(config.flush_interval_ms),
            shutdown,
        ));
        Ok(l3)
    }

    fn new(config: &StoreConfig) -> Result<L3, String> {
        let store = Store::open(&config.url)?;
        Ok(L3 {
            store,
            healthy: AtomicBool::new(false),
            migrated: AtomicBool::new(false),
            queue: Mutex::new(VecDeque::new()),
            notify: Notify::new(),
            capacity: config.queue_capacity,
            batch_size: config.batch_size,
            timeout: Duration::from_millis(config.timeout_ms),
            dropped: AtomicU64::new(0),
            written: AtomicU64::new(0),
            in_flight: AtomicU64::new(0),
        })
    }

    /// The store underneath.
    pub fn store(&self) -> &Store {
        &self.store
    }

    /// Whether reads and writes go to the database now.
    pub fn is_healthy(&self) -> bool {
        self.healthy.load(Ordering::Relaxed)
    }

    /// Rows not yet in the database: waiting in the queue or in a batch being written.
    pub fn queued(&self) -> usize {
        self.queue.lock().unwrap().len() + self.in_flight.load(Ordering::Relaxed) as usize
    }

    /// Rows dropped because the queue was full.
    pub fn dropped(&self) -> u64 {
        self.dropped.load(Ordering::Relaxed)
    }

    /// Rows written.
    pub fn written(&self) -> u64 {
        self.written.load(Ordering::Relaxed)
    }

    /// Queue writes; never blocks. When full, the oldest rows make room and are counted.
    pub fn enqueue(&self, writes: impl IntoIterator<Item = Write>) {
        let mut q = self.queue.lock().unwrap();
        for w in writes {
            if q.len() >= self.capacity {
                q.pop_front();
                self.dropped.fetch_add(1, Ordering::Relaxed);
            }
            q.push_back(w);
        }
        drop(q);
        self.notify.notify_one();
    }

    /// Read an entry, within the time limit; `None` while the database is down.
    pub async fn get(&self, key: &str) -> Result<Option<Vec<u8>>, String> {
        if !self.is_healthy() {
            return Err("down".into());
        }
        match tokio::time::timeout(self.timeout, self.store.get_entry(key)).await {
            Ok(Ok(v)) => Ok(v),
            Ok(Err(e)) => Err(self.mark_down(e)),
            Err(_) => {
                Err(self.mark_down(format!("no answer within {} ms", self.timeout.as_millis())))
            }
        }
    }

    fn mark_down(&self, why: String) -> String {
        if self.healthy.swap(false, Ordering::Relaxed) {
            tracing::warn!(
                reason = why,
                "L3 (database) marked down; rows wait in the write queue"
            );
        }
        why
    }

    /// Write what is still queued, within `limit` (at shutdown: rows a graceful stop would
    /// otherwise leave behind). Returns the rows still unwritten.
    pub async fn drain(&self, limit: std::time::Duration) -> usize {
        if self.is_healthy() {
            let _ = tokio::time::timeout(limit, self.flush()).await;
        }
        let left = self.queued();
        if left > 0 {
            tracing::warn!(rows = left, "L3 rows not written at shutdown");
        }
        left
    }

    /// Write what is queued now, in batches (used by the writer and at shutdown).
    async fn flush(&self) -> Result<(), String> {
        loop {
            let batch: Vec<Write> = {
                let mut q = self.queue.lock().unwrap();
                let n = q.len().min(self.batch_size);
                self.in_flight.store(n as u64, Ordering::Relaxed);
                q.drain(..n).collect()
            };
            if batch.is_empty() {
                return Ok(());
            }
            let result = match tokio::time::timeout(
                self.timeout * 4,
                self.store.write_batch(&batch),
            )
            .await
            {
                Ok(r) => r,
                Err(_) => Err("batch write timed out".into()),
            };
            if let Err(e) = result {
                // put the batch back in front, oldest first, keeping the bound
                let mut q = self.queue.lock().unwrap();
                for w in batch.into_iter().rev() {
                    if q.len() >= self.capacity {
                        self.dropped.fetch_add(1, Ordering::Relaxed);
                        continue;
                    }
                    q.push_front(w);
                }
                drop(q);
                return Err(self.mark_down(e));
            }
            self.written
                .fetch_add(batch.len() as u64, Ordering::Relaxed);
        }
    }
}

async fn write_loop(l3: Arc<L3>, interval: Duration, mut shutdown: watch::Receiver<bool>) {
    loop {
        tokio::select! {
            _ = l3.notify.notified() => tokio::time::sleep(interval).await, // let a batch gather
            _ = tokio::time::sleep(interval) => {}
            // the gateway drains the queue itself at shutdown (see `L3::drain`)
            _ = shutdown.changed() => return,
        }
        if l3.is_healthy() && l3.flush().await.is_err() {
            tokio::time::sleep(interval).await;
        }
    }
}

async fn supervise(l3: Arc<L3>, config: StoreConfig, mut shutdown: watch::Receiver<bool>) {
    let interval = Duration::from_millis(config.health_check_interval_ms);
    let retention = Duration::from_secs(config.history_retention_days * 86_400);
    let mut last_prune = std::time::Instant::now() - Duration::from_secs(3600);
    loop {
        let ok = if !l3.migrated.load(Ordering::Relaxed) {
            match tokio::time::timeout(Duration::from_secs(30), l3.store.migrate()).await {
                Ok(Ok(())) => {
                    l3.migrated.store(true, Ordering::Relaxed);
                    true
                }
                Ok(Err(e)) => {
                    tracing::warn!(error = e, "L3 migrations failed; retrying");
                    false
                }
                Err(_) => false,
            }
        } else {
            matches!(
                tokio::time::timeout(l3.timeout.max(Duration::from_millis(500)), l3.store.ping())
                    .await,
                Ok(Ok(()))
            )
        };
        if ok && !l3.healthy.swap(true, Ordering::Relaxed) {
            tracing::info!(queued = l3.queued(), "L3 (database) is up");
            l3.notify.notify_one();
        } else if !ok {
            l3.mark_down("health check failed".into());
        }
        if ok && last_prune.elapsed() >= Duration::from_secs(3600) {
            last_prune = std::time::Instant::now();
            match l3.store.prune(retention).await {
                Ok(n) if n > 0 => {
                    tracing::info!(rows = n, "pruned expired cache entries and old history")
                }
                Ok(_) => {}
                Err(e) => tracing::warn!(error = e, "prune failed"),
            }
        }
        tokio::select! {
            _ = tokio::time::sleep(interval) => {}
            _ = shutdown.changed() => return,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(id: &str) -> Write {
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

    #[tokio::test]
    async fn sqlite_round_trip_prune_and_idempotent_history() {
        let store = Store::open("sqlite::memory:").unwrap();
        store.migrate().await.unwrap();
        store.migrate().await.unwrap(); // twice is fine
        let soon = now_ms() + 60_000;
        store
            .write_batch(&[
                Write::Entry {
                    key: "k".into(),
                    value: b"v1".to_vec(),
                    expires_at_ms: soon,
                },
                Write::Entry {
                    key: "k".into(),
                    value: b"v2".to_vec(),
                    expires_at_ms: soon,
                },
                Write::Entry {
                    key: "old".into(),
                    value: b"x".to_vec(),
                    expires_at_ms: 1,
                },
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

    #[tokio::test]
    async fn a_full_queue_drops_the_oldest_and_counts_them() {
        let config = StoreConfig {
            url: "sqlite::memory:".into(),
            queue_capacity: 3,
            ..StoreConfig::default()
        };
        let l3 = L3::new(&config).unwrap(); // no writer: the database stays "down"
        l3.enqueue((0..5).map(|i| row(&format!("1_2_3_{i}"))));
        assert_eq!(l3.queued(), 3);
        assert_eq!(l3.dropped(), 2);
        let q = l3.queue.lock().unwrap();
        let Write::History(first) = &q[0] else {
            panic!()
        };
        assert_eq!(first.query_id, "1_2_3_2", "the oldest went first");
    }
}
