//! Test databases (the `test-dbs` feature, for this crate's tests and those of crates that keep
//! tables in a [`Store`]). The store's tests run on every dialect: SQLite in memory, and a database of their own on this
//! machine's PostgreSQL (127.0.0.1:5432) and MariaDB (127.0.0.1:3306), which run in CI too.
use std::sync::atomic::{AtomicU32, Ordering};

use crate::Store;

/// The machine's PostgreSQL, as the `postgres` user (trust auth).
pub const POSTGRES: &str = "postgres://postgres@127.0.0.1:5432";
/// The machine's MariaDB, as `root` without a password.
pub const MYSQL: &str = "mysql://root@127.0.0.1:3306";

/// A migrated store, and for a server, the database made for it.
pub struct TestDb {
    pub store: Store,
    server: Option<(&'static str, String)>,
}

/// Run `statement` on the server's administrative database.
async fn admin(server: &str, statement: String) {
    let store = match server {
        POSTGRES => Store::open(&format!("{POSTGRES}/test")),
        _ => Store::open(&format!("{MYSQL}/test")),
    }
    .unwrap();
    let done = match &store {
        Store::Postgres(p) => sqlx::query(sqlx::AssertSqlSafe(statement))
            .execute(p)
            .await
            .map(|_| ()),
        Store::MySql(p) => sqlx::query(sqlx::AssertSqlSafe(statement))
            .execute(p)
            .await
            .map(|_| ()),
        Store::Sqlite(_) => unreachable!(),
    };
    done.unwrap_or_else(|e| panic!("{server} runs on this machine and in CI (database test): {e}"));
}

impl TestDb {
    pub async fn sqlite() -> TestDb {
        let store = Store::open("sqlite::memory:").unwrap();
        store.migrate().await.unwrap();
        TestDb {
            store,
            server: None,
        }
    }

    /// A new database on `server` ([`POSTGRES`] or [`MYSQL`]), migrated.
    pub async fn on(server: &'static str) -> TestDb {
        static NEXT: AtomicU32 = AtomicU32::new(0);
        let db = format!(
            "sluice_t_{}_{}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::Relaxed)
        );
        let drop = match server {
            POSTGRES => format!("DROP DATABASE IF EXISTS {db} WITH (FORCE)"),
            _ => format!("DROP DATABASE IF EXISTS {db}"),
        };
        admin(server, drop).await;
        admin(server, format!("CREATE DATABASE {db}")).await;
        let store = Store::open(&format!("{server}/{db}")).unwrap();
        store.migrate().await.unwrap();
        TestDb {
            store,
            server: Some((server, db)),
        }
    }

    /// The URL of the database made for this test.
    pub fn url(&self) -> String {
        let (server, db) = self.server.as_ref().expect("a server's database");
        format!("{server}/{db}")
    }

    /// Drop the database made for this test.
    pub async fn drop(self) {
        let Some((server, db)) = self.server else {
            return;
        };
        match &self.store {
            Store::Postgres(p) => p.close().await,
            Store::MySql(p) => p.close().await,
            Store::Sqlite(p) => p.close().await,
        }
        let drop = match server {
            POSTGRES => format!("DROP DATABASE IF EXISTS {db} WITH (FORCE)"),
            _ => format!("DROP DATABASE IF EXISTS {db}"),
        };
        admin(server, drop).await;
    }
}

/// One test per dialect for each named `async fn case(store: Store)` of the calling module:
/// `sqlite::case`, `postgres::case`, `mysql::case`.
#[cfg(test)]
macro_rules! on_every_dialect {
    ($($case:ident),* $(,)?) => {
        mod sqlite {
            $(
                #[tokio::test]
                async fn $case() {
                    let db = $crate::test_dbs::TestDb::sqlite().await;
                    super::$case(db.store.clone()).await;
                    db.drop().await;
                }
            )*
        }
        mod postgres {
            $(
                #[tokio::test]
                async fn $case() {
                    let db = $crate::test_dbs::TestDb::on($crate::test_dbs::POSTGRES).await;
                    super::$case(db.store.clone()).await;
                    db.drop().await;
                }
            )*
        }
        mod mysql {
            $(
                #[tokio::test]
                async fn $case() {
                    let db = $crate::test_dbs::TestDb::on($crate::test_dbs::MYSQL).await;
                    super::$case(db.store.clone()).await;
                    db.drop().await;
                }
            )*
        }
    };
}
#[cfg(test)]
pub(crate) use on_every_dialect;
