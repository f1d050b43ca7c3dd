//! Trino Gateway's `query_history`, where its UI and tools read what ran: written as Trino
//! Gateway writes it, and read back for `sluice store import --from-trino-gateway`.
//!
//! `query_history` grew columns over Trino Gateway's releases (`routing_group`, `external_url`,
//! `backend_name`; `query_text` went from `VARCHAR(256)` to text): Sluice writes the columns the
//! table has, cut to their length.
use sluice_store::{with_pool, HistoryRow, Sql, Store, StoreError};

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

/// The columns `query_history` has of those Sluice fills, and their lengths.
pub async fn history_columns(store: &Store) -> Result<TgHistoryColumns, StoreError> {
    const PG: &str = "SELECT column_name::text, character_maximum_length::bigint FROM information_schema.columns \
         WHERE table_name = 'query_history' AND table_schema = current_schema()";
    const MYSQL: &str = "SELECT column_name, CAST(character_maximum_length AS SIGNED) FROM information_schema.columns \
         WHERE table_name = 'query_history' AND table_schema = DATABASE()";
    let rows: Vec<(String, Option<i64>)> = match store {
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
pub async fn write_history(
    store: &Store,
    rows: &[&HistoryRow],
    columns: &TgHistoryColumns,
) -> Result<(), StoreError> {
    if rows.is_empty() {
        return Ok(());
    }
    // the backends' URLs, read once for the batch
    const URLS: &str = "SELECT name, backend_url FROM gateway_backend";
    let urls: Vec<(String, Option<String>)> =
        with_pool!(store, |p| sqlx::query_as(p.sql(URLS)).fetch_all(p).await)?;
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
    let sql: std::sync::Arc<str> = with_pool!(store, |p| p.sql_string(sql)).0.into();
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
        with_pool!(store, |p| {
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
pub async fn history(store: &Store) -> Result<Vec<HistoryRow>, StoreError> {
    let columns = history_columns(store).await?;
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
    let rows: Vec<Row> = with_pool!(store, |p| sqlx::query_as(p.sql_string(sql))
        .fetch_all(p)
        .await)?;
    Ok(rows
        .into_iter()
        .map(
            |(id, text, created, url, user, source, group, external, name, by_url)| HistoryRow {
                query_id: id,
                query_text: text.unwrap_or_default(),
                user,
                source,
                routing_group: group.unwrap_or_else(|| "adhoc".into()),
                backend: name.or(by_url).or(url).unwrap_or_default(),
                external_url: external,
                created_at_ms: created.unwrap_or(0),
            },
        )
        .collect())
}
