//! [`Store`]: a pool of one of the two dialects; the migrations, rendered for that dialect from
//! one template; and the two macros every statement runs through.
use std::borrow::Cow;
use std::str::FromStr;
use std::time::Duration;

use sqlx::migrate::{Migration, MigrationType, Migrator};
use sqlx::postgres::{PgPool, PgPoolOptions};
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions};
use sqlx::AssertSqlSafe;

use crate::StoreError;

/// The two dialects.
#[derive(Clone)]
pub enum Store {
    /// Embedded.
    Sqlite(SqlitePool),
    /// Shared by a fleet.
    Postgres(PgPool),
}

/// Run `$body` with `$pool` bound to whichever pool `$store` holds. The body is the same text for
/// both dialects (statements use `$1` placeholders, which SQLite accepts too).
macro_rules! with_pool {
    ($store:expr, |$pool:ident| $body:expr) => {
        match $store {
            $crate::Store::Sqlite($pool) => $body,
            $crate::Store::Postgres($pool) => $body,
        }
    };
}
pub(crate) use with_pool;

/// Run `$body` inside one write transaction, with `$tx` bound to it, and commit; an error from
/// the body (`?`) rolls back. SQLite takes the write lock up front (`BEGIN IMMEDIATE`): a
/// deferred transaction that reads first fails at once with `database is locked` when another
/// connection wrote in between (the WAL snapshot rule), which refused filter uploads while query
/// history was being written. SQLite writers of this process also take turns through a FIFO lock
/// before they begin: SQLite's busy handler is not fair, and the history writer starved a filter
/// upload for the whole busy timeout.
macro_rules! write_tx {
    ($store:expr, |$tx:ident| $body:expr) => {
        match $store {
            $crate::Store::Sqlite(pool) => {
                let _turn = $crate::db::SQLITE_WRITERS.lock().await;
                let mut $tx = pool.begin_with("BEGIN IMMEDIATE").await?;
                let out = $body;
                $tx.commit().await?;
                Ok(out)
            }
            $crate::Store::Postgres(pool) => {
                let mut $tx = pool.begin().await?;
                let out = $body;
                $tx.commit().await?;
                Ok(out)
            }
        }
    };
}
pub(crate) use write_tx;

/// SQLite writers of this process, in turn (see `write_tx!`).
pub(crate) static SQLITE_WRITERS: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// The schema, as templates rendered per dialect (see [`migrator`]).
const MIGRATIONS: &[(i64, &str, &str)] = &[
    (1, "init", include_str!("../migrations/0001_init.sql")),
    (2, "fleet", include_str!("../migrations/0002_fleet.sql")),
    (
        3,
        "history_queries",
        include_str!("../migrations/0003_history_queries.sql"),
    ),
    (
        4,
        "backends",
        include_str!("../migrations/0004_backends.sql"),
    ),
    (5, "queue", include_str!("../migrations/0005_queue.sql")),
];

/// The migrations for one dialect: the templates with `{{BYTES}}` as `BLOB` or `BYTEA`. The
/// rendered text is byte for byte what earlier versions shipped as two folders, so databases they
/// migrated keep matching checksums.
fn migrator(postgres: bool) -> Migrator {
    let (note, bytes) = if postgres {
        (
            "PostgreSQL dialect; sqlite/0001_init.sql is the same schema",
            "BYTEA",
        )
    } else {
        (
            "SQLite dialect; postgres/0001_init.sql is the same schema",
            "BLOB",
        )
    };
    let migrations = MIGRATIONS
        .iter()
        .map(|(version, description, template)| {
            let sql = template
                .replace("{{DIALECT_NOTE}}", note)
                .replace("{{BYTES}}", bytes);
            let sql = sqlx::SqlSafeStr::into_sql_str(AssertSqlSafe(sql));
            Migration::new(
                *version,
                Cow::Borrowed(description),
                MigrationType::Simple,
                sql,
                false,
            )
        })
        .collect::<Vec<_>>();
    Migrator {
        migrations: Cow::Owned(migrations),
        ..Migrator::DEFAULT
    }
}

impl Store {
    /// Open (and for SQLite, create) the database named by `url`. Nothing is sent yet for
    /// PostgreSQL: it may be down at start.
    pub fn open(url: &str) -> Result<Store, StoreError> {
        let bad_url = |e: sqlx::Error| StoreError::Url(e.to_string());
        if url.starts_with("sqlite:") {
            let opts = SqliteConnectOptions::from_str(url)
                .map_err(bad_url)?
                .create_if_missing(true)
                .journal_mode(SqliteJournalMode::Wal)
                .busy_timeout(Duration::from_secs(5));
            // an in-memory database lives in one connection; a file is read by several (WAL
            // readers never wait on the writer), and written one transaction at a time
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
                .map_err(bad_url)?;
            Ok(Store::Postgres(pool))
        } else {
            Err(StoreError::Url(format!(
                "'{url}' must start with sqlite: or postgres://"
            )))
        }
    }

    /// Apply the migrations of this dialect.
    pub async fn migrate(&self) -> Result<(), StoreError> {
        let postgres = matches!(self, Store::Postgres(_));
        with_pool!(self, |p| migrator(postgres).run(p).await)?;
        Ok(())
    }

    /// `SELECT 1`.
    pub async fn ping(&self) -> Result<(), StoreError> {
        with_pool!(self, |p| sqlx::query("SELECT 1")
            .execute(p)
            .await
            .map(|_| ()))?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hex(bytes: &[u8]) -> String {
        bytes.iter().map(|b| format!("{b:02x}")).collect()
    }

    /// sha384 checksums of the migrations as earlier versions shipped them: a database they
    /// migrated must still match, or it would refuse to start.
    #[test]
    fn rendered_migrations_keep_the_checksums_of_existing_databases() {
        let sqlite = migrator(false);
        let pg = migrator(true);
        assert_eq!(hex(&sqlite.migrations[0].checksum), "794e16ac7961ab369685f2793ccc331ea8983503ec8398caec5a901c83b7e9c1957f30b6926a093dadc576d874fef817");
        assert_eq!(hex(&pg.migrations[0].checksum), "498322eaea60195856089154c7cd8ce9f2c40d159e8a2dd8e70d3518baff5557f6e32fefadf7379a24d282d22aae33c1");
        for m in [&sqlite.migrations[1], &pg.migrations[1]] {
            assert_eq!(hex(&m.checksum), "d2b3fba7f55624b7a2d0af7b60c5e8bfd7f747b01bffd3b9774d1e3a7c61caffcfcf1372d5770e13db258d1f2ca542f0");
        }
    }

    #[tokio::test]
    async fn sqlite_migrates_twice_and_answers() {
        let store = Store::open("sqlite::memory:").unwrap();
        store.migrate().await.unwrap();
        store.migrate().await.unwrap();
        store.ping().await.unwrap();
        assert!(matches!(Store::open("mysql://x"), Err(StoreError::Url(_))));
    }
}
