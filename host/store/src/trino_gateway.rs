//! Trino Gateway's own tables, in its database (PostgreSQL or MySQL): the clusters it stored in
//! `gateway_backend`, and `query_history`, where its UI and tools read what ran. Sluice reads and
//! writes them as Trino Gateway does, so both can run against one database during a switch, and
//! `sluice store import --from-trino-gateway` copies them into Sluice's own tables.
//!
//! `query_history` grew columns over Trino Gateway's releases (`routing_group`, `external_url`,
//! `backend_name`; `query_text` went from `VARCHAR(256)` to text): Sluice writes the columns the
//! table has, cut to their length.
use sluice_config::BackendConfig;

use crate::db::with_pool;
use crate::dialect::Sql;
use crate::{HistoryRow, Store, StoreError};

/// A row of `gateway_backend`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TgBackend {
    /// `name`.
    pub name: String,
    /// `backend_url`: where the gateway sends requests (Trino Gateway's `proxyTo`).
    pub url: String,
    /// `routing_group`.
    pub group: String,
    /// `external_url`.
    pub external_url: Option<String>,
    /// `active`.
    pub active: bool,
}

impl TgBackend {
    /// A Sluice backend of this row (Sluice's own settings at their defaults).
    pub fn to_config(&self) -> BackendConfig {
        BackendConfig {
            name: self.name.clone(),
            url: self.url.clone(),
            group: self.group.clone(),
            active: self.active,
            draining: false,
            // Trino Gateway fills external_url with the URL when there is none
            external_url: self.external_url.clone().filter(|u| *u != self.url),
            rewrite_next_uri: false,
            stats: None,
            max_queries: None,
        }
    }

    /// A Sluice backend as its row: a draining backend is inactive there.
    pub fn of(b: &BackendConfig) -> TgBackend {
        TgBackend {
            name: b.name.clone(),
            url: b.url.clone(),
            group: b.group.clone(),
            external_url: b.external_url.clone(),
            active: b.active && !b.draining,
        }
    }
}

/// The columns of `query_history` Sluice can fill, with their length limit, if any.
#[derive(Debug, Clone, Default)]
pub struct TgHistoryColumns(Vec<(String, Option<usize>)>);

/// What Sluice knows of a history row, by Trino Gateway's column name.
const FILLED: &[&str] = &[
    "query_id",
    "query_text",
    "created",
    "backend_url",
    "user_name",
    "source",
    "routing_group",
    "external_url",
    "backend_name",
];

impl TgHistoryColumns {
    /// Whether the table has `column`.
    pub fn has(&self, column: &str) -> bool {
        self.0.iter().any(|(c, _)| c == column)
    }

    fn limit(&self, column: &str) -> Option<usize> {
        self.0
            .iter()
            .find(|(c, _)| c == column)
            .and_then(|(_, l)| *l)
    }
}

fn cut(s: &str, limit: Option<usize>) -> String {
    match limit.and_then(|l| s.char_indices().nth(l)) {
        Some((at, _)) => s[..at].to_string(),
        None => s.to_string(),
    }
}

type BackendRow = (
    String,
    Option<String>,
    Option<String>,
    Option<String>,
    Option<bool>,
);

impl Store {
    /// Every row of `gateway_backend`, by name. Rows without a URL are left out (Trino Gateway
    /// cannot route to them either); a row without a group is in `adhoc`, Trino Gateway's default.
    pub async fn tg_backends(&self) -> Result<Vec<TgBackend>, StoreError> {
        const SQL: &str = "SELECT name, backend_url, routing_group, external_url, active \
             FROM gateway_backend ORDER BY name";
        let rows: Vec<BackendRow> =
            with_pool!(self, |p| sqlx::query_as(p.sql(SQL)).fetch_all(p).await)?;
        Ok(rows
            .into_iter()
            .filter_map(|(name, url, group, external_url, active)| {
                Some(TgBackend {
                    name,
                    // Trino Gateway accepts `http://host:8080/`; Sluice's URLs have no path
                    url: url
                        .map(|u| u.trim_end_matches('/').to_string())
                        .filter(|u| !u.is_empty())?,
                    group: group
                        .filter(|g| !g.is_empty())
                        .unwrap_or_else(|| "adhoc".into()),
                    external_url: external_url.filter(|u| !u.is_empty()),
                    active: active.unwrap_or(false),
                })
            })
            .collect())
    }

    /// Write `b` into `gateway_backend` (replacing the row of its name). Its `external_url` is
    /// its URL when it has none, as Trino Gateway writes it.
    pub async fn tg_upsert_backend(&self, b: &TgBackend) -> Result<(), StoreError> {
        const UPSERT: &str =
            "INSERT INTO gateway_backend (backend_url, routing_group, external_url, active, name) \
             VALUES ($1, $2, $3, $4, $5) ON CONFLICT (name) DO UPDATE SET \
             backend_url = excluded.backend_url, routing_group = excluded.routing_group, \
             external_url = excluded.external_url, active = excluded.active";
        let external = b.external_url.as_ref().unwrap_or(&b.url);
        with_pool!(self, |p| sqlx::query(p.sql(UPSERT))
            .bind(&b.url)
            .bind(&b.group)
            .bind(external)
            .bind(b.active)
            .bind(&b.name)
            .execute(p)
            .await
            .map(|_| ()))?;
        Ok(())
    }

    /// Delete the row of `name` from `gateway_backend`.
    pub async fn tg_delete_backend(&self, name: &str) -> Result<(), StoreError> {
        const SQL: &str = "DELETE FROM gateway_backend WHERE name = $1";
        with_pool!(self, |p| sqlx::query(p.sql(SQL))
            .bind(name)
            .execute(p)
            .await
            .map(|_| ()))?;
        Ok(())
    }

    /// The columns `query_history` has of those Sluice fills, and their lengths.
    pub async fn tg_history_columns(&self) -> Result<TgHistoryColumns, StoreError> {
        const PG: &str = "SELECT column_name::text, character_maximum_length::bigint FROM information_schema.columns \
             WHERE table_name = 'query_history' AND table_schema = current_schema()";
        const MYSQL: &str = "SELECT column_name, CAST(character_maximum_length AS SIGNED) FROM information_schema.columns \
             WHERE table_name = 'query_history' AND table_schema = DATABASE()";
        let rows: Vec<(String, Option<i64>)> = match self {
            Store::Postgres(p) => sqlx::query_as(PG).fetch_all(p).await?,
            Store::MySql(p) => sqlx::query_as(MYSQL).fetch_all(p).await?,
            Store::Sqlite(_) => {
                return Err(StoreError::Url(
                    "Trino Gateway's database is PostgreSQL or MySQL".into(),
                ))
            }
        };
        let columns: Vec<(String, Option<usize>)> = rows
            .into_iter()
            .map(|(c, l)| (c.to_lowercase(), l.and_then(|l| usize::try_from(l).ok())))
            .filter(|(c, _)| FILLED.contains(&c.as_str()))
            .collect();
        if !columns.iter().any(|(c, _)| c == "query_id") {
            return Err(StoreError::Corrupt {
                what: "Trino Gateway schema",
                why: "no query_history table with a query_id column".into(),
            });
        }
        Ok(TgHistoryColumns(columns))
    }

    /// Write history rows into `query_history` as Trino Gateway does: `backend_url` is the URL of
    /// the row's backend in `gateway_backend` (its name when it has none there). Rows already
    /// there are left as they are.
    pub async fn tg_write_history(
        &self,
        rows: &[&HistoryRow],
        columns: &TgHistoryColumns,
    ) -> Result<(), StoreError> {
        if rows.is_empty() {
            return Ok(());
        }
        // the backends' URLs, read once for the batch
        const URLS: &str = "SELECT name, backend_url FROM gateway_backend";
        let urls: Vec<(String, Option<String>)> =
            with_pool!(self, |p| sqlx::query_as(p.sql(URLS)).fetch_all(p).await)?;
        let url_of = |name: &str| {
            urls.iter()
                .find(|(n, _)| n == name)
                .and_then(|(_, u)| u.clone())
                .unwrap_or_else(|| name.to_string())
        };
        // the statement, once: the columns this table has, then `created`
        let filled: Vec<&str> = FILLED
            .iter()
            .copied()
            .filter(|c| *c != "created" && columns.has(c))
            .collect();
        let marks: Vec<String> = (1..=filled.len() + 1).map(|i| format!("${i}")).collect();
        let sql = format!(
            "INSERT INTO query_history ({}, created) VALUES ({}) ON CONFLICT (query_id) DO NOTHING",
            filled.join(", "),
            marks.join(", ")
        );
        let sql: std::sync::Arc<str> = with_pool!(self, |p| p.sql_string(sql)).0.into();
        for r in rows {
            let value = |column: &str| match column {
                "query_id" => Some(r.query_id.clone()),
                "query_text" => Some(r.query_text.clone()),
                "backend_url" => Some(url_of(&r.backend)),
                "user_name" => r.user.clone(),
                "source" => r.source.clone(),
                "routing_group" => Some(r.routing_group.clone()),
                "external_url" => r.external_url.clone(),
                _ => Some(r.backend.clone()), // backend_name
            };
            with_pool!(self, |p| {
                let mut q = sqlx::query(sqlx::AssertSqlSafe(sql.clone()));
                for c in &filled {
                    q = q.bind(value(c).map(|v| cut(&v, columns.limit(c))));
                }
                q.bind(r.created_at_ms).execute(p).await.map(|_| ())
            })?;
        }
        Ok(())
    }

    /// Every row of `query_history`, oldest first, as Sluice's history rows: the backend named
    /// by `backend_name`, else by the `gateway_backend` row of its URL, else by its URL.
    pub async fn tg_history(&self) -> Result<Vec<HistoryRow>, StoreError> {
        let columns = self.tg_history_columns().await?;
        let opt = |c: &str| match columns.has(c) {
            true => format!("h.{c}"),
            false => "NULL".to_string(),
        };
        let sql = format!(
            "SELECT h.query_id, h.query_text, h.created, h.backend_url, h.user_name, h.source, {}, {}, {}, \
             (SELECT b.name FROM gateway_backend b WHERE b.backend_url = h.backend_url ORDER BY b.name LIMIT 1) \
             FROM query_history h ORDER BY h.created",
            opt("routing_group"),
            opt("external_url"),
            opt("backend_name"),
        );
        type Row = (
            String,
            Option<String>,
            Option<i64>,
            Option<String>,
            Option<String>,
            Option<String>,
            Option<String>,
            Option<String>,
            Option<String>,
            Option<String>,
        );
        let rows: Vec<Row> = with_pool!(self, |p| sqlx::query_as(p.sql_string(sql))
            .fetch_all(p)
            .await)?;
        Ok(rows
            .into_iter()
            .map(
                |(id, text, created, url, user, source, group, external, name, by_url)| {
                    HistoryRow {
                        query_id: id,
                        query_text: text.unwrap_or_default(),
                        user,
                        source,
                        routing_group: group.unwrap_or_else(|| "adhoc".into()),
                        backend: name.or(by_url).or(url).unwrap_or_default(),
                        external_url: external,
                        created_at_ms: created.unwrap_or(0),
                    }
                },
            )
            .collect())
    }
}

/// Where Sluice keeps its own tables beside Trino Gateway's (whose `query_history` has the name
/// of Sluice's): in PostgreSQL, the schema `schema` of the same database; in MySQL, the database
/// `schema` of the same server.
pub fn own_tables_url(tg_url: &str, schema: &str) -> Result<String, StoreError> {
    valid_name(schema)?;
    if tg_url.starts_with("postgres") {
        let sep = if tg_url.contains('?') { '&' } else { '?' };
        return Ok(format!("{tg_url}{sep}options=-c%20search_path%3D{schema}"));
    }
    let (head, tail) = tg_url
        .split_once("://")
        .ok_or_else(|| StoreError::Url(format!("'{tg_url}' is not a URL")))?;
    let (authority, rest) = tail.split_once('/').unwrap_or((tail, ""));
    let query = rest.split_once('?').map(|(_, q)| format!("?{q}"));
    Ok(format!(
        "{head}://{authority}/{schema}{}",
        query.unwrap_or_default()
    ))
}

fn valid_name(schema: &str) -> Result<(), StoreError> {
    match !schema.is_empty()
        && schema
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_')
    {
        true => Ok(()),
        false => Err(StoreError::Url(format!(
            "'{schema}': a schema name of letters, digits and _"
        ))),
    }
}

/// Create the schema (PostgreSQL) or database (MySQL) `schema` through Trino Gateway's
/// connection, if it does not exist.
pub async fn create_own_namespace(tg_url: &str, schema: &str) -> Result<(), StoreError> {
    valid_name(schema)?;
    let tg = Store::open(tg_url)?;
    match &tg {
        Store::Postgres(p) => {
            let sql = format!("CREATE SCHEMA IF NOT EXISTS {schema}");
            sqlx::query(sqlx::AssertSqlSafe(sql)).execute(p).await?;
            p.close().await;
        }
        Store::MySql(p) => {
            let sql = format!("CREATE DATABASE IF NOT EXISTS {schema}");
            sqlx::query(sqlx::AssertSqlSafe(sql)).execute(p).await?;
            p.close().await;
        }
        Store::Sqlite(_) => {
            return Err(StoreError::Url(
                "Trino Gateway's database is PostgreSQL or MySQL".into(),
            ))
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_dbs::{MYSQL, POSTGRES};

    #[test]
    fn own_tables_sit_beside_trino_gateways() {
        assert_eq!(
            own_tables_url("postgres://u:p@h:5432/gw", "sluice").unwrap(),
            "postgres://u:p@h:5432/gw?options=-c%20search_path%3Dsluice"
        );
        assert_eq!(
            own_tables_url("mysql://u@h:3306/gw?ssl-mode=disabled", "sluice").unwrap(),
            "mysql://u@h:3306/sluice?ssl-mode=disabled"
        );
        assert!(own_tables_url("mysql://h/gw", "a;b").is_err());
    }

    /// Trino Gateway's tables as its first migration made them, and a row in each.
    async fn trino_gateway_db(server: &'static str) -> crate::test_dbs::TestDb {
        let db = crate::test_dbs::TestDb::on(server).await;
        for sql in [
            "DROP TABLE IF EXISTS query_history",
            "CREATE TABLE gateway_backend (name VARCHAR(256) PRIMARY KEY, routing_group VARCHAR (256), \
             backend_url VARCHAR (256), external_url VARCHAR (256), active BOOLEAN)",
            "CREATE TABLE query_history (query_id VARCHAR(256) PRIMARY KEY, query_text VARCHAR (256), \
             created bigint, backend_url VARCHAR (256), user_name VARCHAR(256), source VARCHAR(256), \
             routing_group VARCHAR(255))",
            "INSERT INTO gateway_backend VALUES ('trino-1', 'adhoc', 'http://t1:8080', 'https://t1.example', true)",
            "INSERT INTO gateway_backend VALUES ('trino-2', NULL, 'http://t2:8080', NULL, false)",
            "INSERT INTO query_history VALUES ('q_old', 'SELECT 1', 1000, 'http://t1:8080', 'ann', 'cli', 'adhoc')",
        ] {
            with_pool!(&db.store, |p| sqlx::query(sqlx::AssertSqlSafe(sql))
                .execute(p)
                .await
                .map(|_| ()))
            .unwrap();
        }
        db
    }

    async fn reads_and_writes_trino_gateways_tables(server: &'static str) {
        let db = trino_gateway_db(server).await;
        let s = &db.store;
        let backends = s.tg_backends().await.unwrap();
        assert_eq!(backends.len(), 2);
        assert_eq!(
            backends[0].external_url.as_deref(),
            Some("https://t1.example")
        );
        assert_eq!(
            (backends[1].group.as_str(), backends[1].active),
            ("adhoc", false)
        );
        let slash =
            "INSERT INTO gateway_backend VALUES ('trino-9', 'etl', 'http://t9:8080/', NULL, true)";
        with_pool!(s, |p| sqlx::query(slash).execute(p).await.map(|_| ())).unwrap();
        let with_slash = s.tg_backends().await.unwrap();
        assert_eq!(
            with_slash[2].url, "http://t9:8080",
            "no path, as Sluice's URLs"
        );
        s.tg_delete_backend("trino-9").await.unwrap();
        let mut changed = backends[1].clone();
        changed.active = true;
        changed.group = "etl".into();
        // Trino Gateway's own writes fill external_url with the URL when there is none
        changed.external_url = Some(changed.url.clone());
        s.tg_upsert_backend(&changed).await.unwrap();
        let added = TgBackend {
            name: "trino-3".into(),
            url: "http://t3:8080".into(),
            group: "etl".into(),
            external_url: None,
            active: true,
        };
        s.tg_upsert_backend(&added).await.unwrap();
        let now = s.tg_backends().await.unwrap();
        assert_eq!(now[1], changed);
        assert_eq!(now[2].external_url.as_deref(), Some("http://t3:8080"));
        s.tg_delete_backend("trino-3").await.unwrap();
        assert_eq!(s.tg_backends().await.unwrap().len(), 2);

        let columns = s.tg_history_columns().await.unwrap();
        assert!(columns.has("routing_group") && !columns.has("external_url"));
        let row = HistoryRow {
            query_id: "q_new".into(),
            query_text: "x".repeat(300),
            user: Some("bob".into()),
            source: None,
            routing_group: "etl".into(),
            backend: "trino-2".into(),
            external_url: None,
            created_at_ms: 2000,
        };
        s.tg_write_history(&[&row, &row], &columns).await.unwrap();
        let history = s.tg_history().await.unwrap();
        assert_eq!(history.len(), 2, "{history:?}");
        assert_eq!(
            (history[0].query_id.as_str(), history[0].backend.as_str()),
            ("q_old", "trino-1")
        );
        assert_eq!(history[1].backend, "trino-2", "found by its URL");
        const URL: &str = "SELECT backend_url FROM query_history WHERE query_id = 'q_new'";
        let url: String = with_pool!(s, |p| sqlx::query_scalar(URL).fetch_one(p).await).unwrap();
        assert_eq!(
            url, "http://t2:8080",
            "the backend's URL, as Trino Gateway writes it"
        );
        assert_eq!(history[1].query_text.len(), 256, "cut to the column");
        db.drop().await;
    }

    #[tokio::test]
    async fn postgres_trino_gateway_tables() {
        reads_and_writes_trino_gateways_tables(POSTGRES).await;
    }

    #[tokio::test]
    async fn mysql_trino_gateway_tables() {
        reads_and_writes_trino_gateways_tables(MYSQL).await;
    }

    #[tokio::test]
    async fn own_tables_live_in_their_own_schema_beside_trino_gateways() {
        for server in [POSTGRES, MYSQL] {
            let db = trino_gateway_db(server).await;
            let tg_url = match &db.store {
                Store::Postgres(_) | Store::MySql(_) => db.url(),
                Store::Sqlite(_) => unreachable!(),
            };
            let schema = format!("sluice_own_{}", std::process::id());
            create_own_namespace(&tg_url, &schema).await.unwrap();
            let own = Store::open(&own_tables_url(&tg_url, &schema).unwrap()).unwrap();
            own.migrate().await.unwrap();
            own.migrate().await.unwrap();
            assert_eq!(
                own.history_count().await.unwrap(),
                0,
                "{server}: Sluice's own table"
            );
            assert_eq!(
                db.store.tg_history().await.unwrap().len(),
                1,
                "{server}: Trino Gateway's"
            );
            let drop = match server {
                POSTGRES => format!("DROP SCHEMA {schema} CASCADE"),
                _ => format!("DROP DATABASE {schema}"),
            };
            with_pool!(&db.store, |p| sqlx::query(sqlx::AssertSqlSafe(drop))
                .execute(p)
                .await
                .map(|_| ()))
            .unwrap();
            db.drop().await;
        }
    }
}
