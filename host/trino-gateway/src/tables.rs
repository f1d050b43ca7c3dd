//! Trino Gateway's `gateway_backend`, in its database (PostgreSQL or MySQL): the clusters it
//! stored, read and written as Trino Gateway does, so both can run against one database during a
//! switch; and where Sluice's own tables go beside Trino Gateway's (whose `query_history` has the
//! name of Sluice's). `query_history` is [`crate::history_table`]'s.
use sluice_config::BackendConfig;
use sluice_store::{with_pool, Sql, Store, StoreError};

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
            active: self.active,
            // Trino Gateway fills external_url with the URL when there is none
            external_url: self.external_url.clone().filter(|u| *u != self.url),
            ..BackendConfig::new(&self.name, &self.group, &self.url)
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

type BackendRow = (
    String,
    Option<String>,
    Option<String>,
    Option<String>,
    Option<bool>,
);

/// Every row of `gateway_backend`, by name. Rows without a URL are left out (Trino Gateway
/// cannot route to them either); a row without a group is in `adhoc`, Trino Gateway's default.
pub async fn backends(store: &Store) -> Result<Vec<TgBackend>, StoreError> {
    const SQL: &str = "SELECT name, backend_url, routing_group, external_url, active \
         FROM gateway_backend ORDER BY name";
    let rows: Vec<BackendRow> =
        with_pool!(store, |p| sqlx::query_as(p.sql(SQL)).fetch_all(p).await)?;
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
pub async fn upsert_backend(store: &Store, b: &TgBackend) -> Result<(), StoreError> {
    const UPSERT: &str =
        "INSERT INTO gateway_backend (backend_url, routing_group, external_url, active, name) \
         VALUES ($1, $2, $3, $4, $5) ON CONFLICT (name) DO UPDATE SET \
         backend_url = excluded.backend_url, routing_group = excluded.routing_group, \
         external_url = excluded.external_url, active = excluded.active";
    let external = b.external_url.as_ref().unwrap_or(&b.url);
    with_pool!(store, |p| sqlx::query(p.sql(UPSERT))
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
pub async fn delete_backend(store: &Store, name: &str) -> Result<(), StoreError> {
    const SQL: &str = "DELETE FROM gateway_backend WHERE name = $1";
    with_pool!(store, |p| sqlx::query(p.sql(SQL))
        .bind(name)
        .execute(p)
        .await
        .map(|_| ()))?;
    Ok(())
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
