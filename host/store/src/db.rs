//! [`Store`]: a pool of one of the three dialects; the migrations, rendered for that dialect from
//! one template; and the two macros every statement runs through.
use std::borrow::Cow;
use std::str::FromStr;
use std::time::Duration;

use sqlx::migrate::{Migration, MigrationType, Migrator};
use sqlx::mysql::{MySqlConnectOptions, MySqlPool, MySqlPoolOptions};
use sqlx::postgres::{PgPool, PgPoolOptions};
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions};
use sqlx::AssertSqlSafe;

use crate::StoreError;

/// The three dialects.
#[derive(Clone)]
pub enum Store {
    /// Embedded.
    Sqlite(SqlitePool),
    /// Shared by a fleet.
    Postgres(PgPool),
    /// Shared by a fleet: MySQL or MariaDB (statements rewritten by [`crate::dialect`]).
    MySql(MySqlPool),
}

/// Run `$body` with `$pool` bound to whichever pool `$store` holds. The body is the same text for
/// every dialect: statements use `$1` placeholders, which SQLite accepts too, and pass through
/// `$pool.sql(…)` ([`Sql`](crate::Sql)), which rewrites them for MySQL. Exported: a crate that
/// keeps tables of its own in a [`Store`] (Trino Gateway's, in `sluice-trino-gateway`) writes
/// its statements the same way.
#[macro_export]
macro_rules! with_pool {
    ($store:expr, |$pool:ident| $body:expr) => {
        match $store {
            $crate::Store::Sqlite($pool) => $body,
            $crate::Store::Postgres($pool) => $body,
            $crate::Store::MySql($pool) => $body,
        }
    };
}

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
            $crate::Store::MySql(pool) => {
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

/// Which dialect a migration is rendered for.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Dialect {
    Sqlite,
    Postgres,
    MySql,
}

/// The migrations for one dialect: the templates with `{{BYTES}}` as `BLOB` or `BYTEA` and
/// `{{KEY}}`, `{{LONG_KEY}}` as `TEXT`. The rendered text is byte for byte what earlier versions
/// shipped as two folders, so databases they migrated keep matching checksums. MySQL's rendering
/// is [`crate::dialect::mysql_migration`].
fn migrator(dialect: Dialect) -> Migrator {
    let (note, bytes) = match dialect {
        Dialect::Postgres => (
            "PostgreSQL dialect; sqlite/0001_init.sql is the same schema",
            "BYTEA",
        ),
        _ => (
            "SQLite dialect; postgres/0001_init.sql is the same schema",
            "BLOB",
        ),
    };
    let migrations = MIGRATIONS
        .iter()
        .map(|(version, description, template)| {
            let sql = match dialect {
                Dialect::MySql => crate::dialect::mysql_migration(template),
                _ => template
                    .replace("{{DIALECT_NOTE}}", note)
                    .replace("{{BYTES}}", bytes)
                    .replace("{{LONG_KEY}}", "TEXT")
                    .replace("{{KEY}}", "TEXT"),
            };
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
        } else if let Some(rest) = url
            .strip_prefix("mysql://")
            .or_else(|| url.strip_prefix("mariadb://"))
        {
            let opts = MySqlConnectOptions::from_str(&format!("mysql://{rest}"))
                .map_err(bad_url)?
                .charset("utf8mb4");
            let pool = MySqlPoolOptions::new()
                .max_connections(8)
                .acquire_timeout(Duration::from_secs(2))
                // PostgreSQL's isolation: a transaction's reads see what committed before each
                // statement (the queue's admission reads after taking its turn)
                .after_connect(|conn, _| {
                    Box::pin(async move {
                        sqlx::query("SET SESSION TRANSACTION ISOLATION LEVEL READ COMMITTED")
                            .execute(conn)
                            .await
                            .map(|_| ())
                    })
                })
                .connect_lazy_with(opts);
            Ok(Store::MySql(pool))
        } else {
            Err(StoreError::Url(format!(
                "'{url}' must start with sqlite:, postgres://, mysql:// or mariadb://"
            )))
        }
    }

    /// Apply the migrations of this dialect.
    pub async fn migrate(&self) -> Result<(), StoreError> {
        let dialect = match self {
            Store::Sqlite(_) => Dialect::Sqlite,
            Store::Postgres(_) => Dialect::Postgres,
            Store::MySql(_) => Dialect::MySql,
        };
        with_pool!(self, |p| migrator(dialect).run(p).await)?;
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
        let sqlite = migrator(Dialect::Sqlite);
        let pg = migrator(Dialect::Postgres);
        let both = "d2b3fba7f55624b7a2d0af7b60c5e8bfd7f747b01bffd3b9774d1e3a7c61caffcfcf1372d5770e13db258d1f2ca542f0";
        let expected = [
            ("794e16ac7961ab369685f2793ccc331ea8983503ec8398caec5a901c83b7e9c1957f30b6926a093dadc576d874fef817", "498322eaea60195856089154c7cd8ce9f2c40d159e8a2dd8e70d3518baff5557f6e32fefadf7379a24d282d22aae33c1"),
            (both, both),
            ("56a5d6eafba329bbeabd62de2223888ef2a84373b22966c2c761dfaff727af3ee52aeb6ee27c32844b8a8bf02f9559c6", "56a5d6eafba329bbeabd62de2223888ef2a84373b22966c2c761dfaff727af3ee52aeb6ee27c32844b8a8bf02f9559c6"),
            ("0977d5368e11890411c4c5ef85368a287864f8e8b2092f011f4bc5e77448f84553b18a4be30553062bae11cdf28c9f8a", "0977d5368e11890411c4c5ef85368a287864f8e8b2092f011f4bc5e77448f84553b18a4be30553062bae11cdf28c9f8a"),
            ("358831152fc1faad4d07d63f457cf432c98c40c7d48a4a2cd4c8f8c62fd7cee4dd0c1eb713799cfecc2989d13df80650", "1996c2341e0f12da116df2b35f7ec0b0356132a962b348ff47c2f69eef6d1b4a2496cc478c55a2e1c3840f2c812466d7"),
        ];
        assert_eq!(sqlite.migrations.len(), expected.len());
        for (i, (lite, post)) in expected.iter().enumerate() {
            assert_eq!(
                &hex(&sqlite.migrations[i].checksum),
                lite,
                "SQLite migration {}",
                i + 1
            );
            assert_eq!(
                &hex(&pg.migrations[i].checksum),
                post,
                "PostgreSQL migration {}",
                i + 1
            );
        }
    }

    #[tokio::test]
    async fn sqlite_migrates_twice_and_answers() {
        let store = Store::open("sqlite::memory:").unwrap();
        store.migrate().await.unwrap();
        store.migrate().await.unwrap();
        store.ping().await.unwrap();
        assert!(matches!(Store::open("oracle://x"), Err(StoreError::Url(_))));
    }
}
