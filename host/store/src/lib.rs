//! L3: state in SQL — SQLite embedded by default, PostgreSQL or MySQL/MariaDB for a fleet — with
//! one schema and one text per statement for every dialect, migrated at start.
//!
//! Writes go through a bounded queue and a batching writer that retries, so a slow or stopped
//! database never stalls routing: while it is down, rows wait in the queue; when the queue is
//! full the oldest are dropped and counted. Reads are bounded by a time limit and skipped while
//! the database is marked down.
//!
//! # Layout
//!
//! | module | one job |
//! | --- | --- |
//! | [`backends`] | `backends`: seeded once from the YAML, then the truth every instance follows |
//! | [`db`] | [`Store`]: open a pool of either dialect, migrate, the write-transaction helper |
//! | [`entries`] | `cache_entries` and `query_history`: batched writes, reads, pruning |
//! | [`modules`] | `filter_modules`: every accepted filter version, which one is active |
//! | [`fleet`] | `filter_chain` and `filter_instances`: the chain order and what each instance runs |
//! | [`history`] | reading `query_history`: filtered, newest first, keyset-paginated |
//! | [`queue`] | `queue_entries`, `queue_slots`: the gateway's queue and the slots that count against `max_queries` |
//! | [`l3`] | [`L3`]: the store as a cache tier — health, the write queue, the writer, pruning |
//! | [`mirror`] | [`Mirror`]: another database the store works beside (history rows written there too) |
//! | `dialect` | [`Sql`]: one statement text for SQLite, PostgreSQL and MySQL/MariaDB |
//! | `test_dbs` | test databases on every dialect (tests, and the `test-dbs` feature) |
//!
//! SQL is written once, with `$1`-style placeholders, which both SQLite and PostgreSQL accept and
//! `dialect` rewrites for MySQL; `with_pool!` and `write_tx!` run the same statement text on
//! whichever pool is open.
#![forbid(unsafe_code)]
use std::time::{SystemTime, UNIX_EPOCH};

pub mod backends;
pub mod db;
mod dialect;
pub mod entries;
pub mod fleet;
pub mod history;
pub mod l3;
pub mod mirror;
pub mod modules;
pub mod queue;
#[cfg(any(test, feature = "test-dbs"))]
#[doc(hidden)]
pub mod test_dbs;

pub use db::Store;
pub use dialect::Sql;
pub use entries::{HistoryRow, Write};
pub use fleet::InstanceSlot;
pub use history::{Cursor, HistoryFilter};
pub use l3::L3;
pub use mirror::Mirror;
pub use modules::{ModuleRow, NewModule, VersionRow};

/// Why the store did not do what was asked.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// `store.url` cannot be opened.
    #[error("store.url: {0}")]
    Url(String),
    /// The database is marked down (the health check failed); nothing was sent.
    #[error("the store (L3) is down")]
    Down,
    /// No answer within the time limit.
    #[error("the store (L3) did not answer within {0} ms")]
    Timeout(u64),
    /// The database answered with an error.
    #[error("the store (L3) failed: {0}")]
    Failed(#[from] sqlx::Error),
    /// The migrations could not be applied.
    #[error("L3 migrations failed: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    /// A stored value is not what Sluice wrote.
    #[error("the store (L3) holds an unreadable {what}: {why}")]
    Corrupt {
        /// Which value.
        what: &'static str,
        /// Why it cannot be read.
        why: String,
    },
}

/// Milliseconds since the epoch.
pub fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}
