//! Reading `query_history`: newest first, filtered, keyset-paginated on `(created_at, query_id)`
//! so a page costs the same at the millionth row as at the first (the indexes of migration
//! 0003 serve every filter).
use sqlx::{Database, Encode, QueryBuilder, Type};

use crate::dialect::Sql;
use crate::with_pool;
use crate::{HistoryRow, Store, StoreError};

/// The largest page.
pub const MAX_PAGE: u32 = 1000;

/// Which history rows to read.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct HistoryFilter {
    /// Only this user.
    pub user: Option<String>,
    /// Only this `X-Trino-Source`.
    pub source: Option<String>,
    /// Only queries routed to this backend.
    pub backend: Option<String>,
    /// Only queries routed in this group.
    pub group: Option<String>,
    /// Created at or after (milliseconds since the epoch).
    pub since_ms: Option<i64>,
    /// Created before (milliseconds since the epoch).
    pub until_ms: Option<i64>,
    /// The statement contains this text (case-insensitive).
    pub text: Option<String>,
    /// Rows after this one (the last row of the previous page), newest first.
    pub after: Option<Cursor>,
    /// Rows per page (1 to [`MAX_PAGE`]).
    pub limit: u32,
}

/// Where a page ends: the `(created_at, query_id)` of its last row.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cursor {
    /// `created_at` of the last row.
    pub created_at_ms: i64,
    /// `query_id` of the last row.
    pub query_id: String,
}

impl Cursor {
    /// The cursor as the opaque text the API hands out: `created_at:query_id`.
    pub fn encode(&self) -> String {
        format!("{}:{}", self.created_at_ms, self.query_id)
    }

    /// Read a cursor the API handed out.
    pub fn decode(text: &str) -> Option<Cursor> {
        let (at, id) = text.split_once(':')?;
        Some(Cursor {
            created_at_ms: at.parse().ok()?,
            query_id: id.to_string(),
        })
    }
}

type Row = (
    String,
    String,
    Option<String>,
    Option<String>,
    String,
    String,
    Option<String>,
    i64,
);

const COLUMNS: &str = "SELECT query_id, query_text, user_name, source, routing_group, backend, \
     external_url, created_at FROM query_history";

/// The statement for `f`, in the dialect of `DB` (placeholders come from the builder).
fn page_query<DB>(f: &HistoryFilter) -> QueryBuilder<DB>
where
    DB: Database,
    for<'q> String: Encode<'q, DB> + Type<DB>,
    for<'q> i64: Encode<'q, DB> + Type<DB>,
{
    let mut q = QueryBuilder::new(COLUMNS);
    q.push(" WHERE 1 = 1");
    for (column, value) in [
        ("user_name", &f.user),
        ("source", &f.source),
        ("backend", &f.backend),
        ("routing_group", &f.group),
    ] {
        if let Some(v) = value {
            q.push(format!(" AND {column} = ")).push_bind(v.clone());
        }
    }
    if let Some(since) = f.since_ms {
        q.push(" AND created_at >= ").push_bind(since);
    }
    if let Some(until) = f.until_ms {
        q.push(" AND created_at < ").push_bind(until);
    }
    if let Some(text) = &f.text {
        let pattern = format!(
            "%{}%",
            text.to_lowercase()
                .replace('\\', "\\\\")
                .replace('%', "\\%")
                .replace('_', "\\_")
        );
        q.push(" AND LOWER(query_text) LIKE ").push_bind(pattern);
        // MySQL escapes with a backslash already, and reads '\' as an unterminated literal
        if DB::NAME != crate::dialect::MYSQL {
            q.push(" ESCAPE '\\'");
        }
    }
    if let Some(c) = &f.after {
        // a row value, which both dialects turn into one index range (an OR of the two
        // conditions is read as two, and scanned)
        q.push(" AND (created_at, query_id) < (")
            .push_bind(c.created_at_ms)
            .push(", ")
            .push_bind(c.query_id.clone())
            .push(")");
    }
    q.push(" ORDER BY created_at DESC, query_id DESC LIMIT ")
        .push_bind(i64::from(f.limit.clamp(1, MAX_PAGE)));
    q
}

fn to_row(r: Row) -> HistoryRow {
    let (query_id, query_text, user, source, routing_group, backend, external_url, at) = r;
    HistoryRow {
        query_id,
        query_text,
        user,
        source,
        routing_group,
        backend,
        external_url,
        created_at_ms: at,
    }
}

impl Store {
    /// One page of history, newest first, and the cursor of the next page (if it is full).
    pub async fn history(
        &self,
        filter: &HistoryFilter,
    ) -> Result<(Vec<HistoryRow>, Option<Cursor>), StoreError> {
        let rows: Vec<Row> = with_pool!(self, |p| {
            page_query(filter).build_query_as().fetch_all(p).await
        })?;
        let rows: Vec<HistoryRow> = rows.into_iter().map(to_row).collect();
        let full = rows.len() as u32 >= filter.limit.clamp(1, MAX_PAGE);
        let next = rows.last().filter(|_| full).map(|r| Cursor {
            created_at_ms: r.created_at_ms,
            query_id: r.query_id.clone(),
        });
        Ok((rows, next))
    }

    /// The history row of one query.
    pub async fn history_entry(&self, query_id: &str) -> Result<Option<HistoryRow>, StoreError> {
        const SQL: &str =
            "SELECT query_id, query_text, user_name, source, routing_group, backend, \
             external_url, created_at FROM query_history WHERE query_id = $1";
        let row: Option<Row> = with_pool!(self, |p| sqlx::query_as(p.sql(SQL))
            .bind(query_id)
            .fetch_optional(p)
            .await)?;
        Ok(row.map(to_row))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Write;

    fn row(id: &str, user: &str, group: &str, at: i64, sql: &str) -> Write {
        Write::History(Box::new(HistoryRow {
            query_id: id.into(),
            query_text: sql.into(),
            user: Some(user.into()),
            source: None,
            routing_group: group.into(),
            backend: format!("{group}-1"),
            external_url: None,
            created_at_ms: at,
        }))
    }

    async fn pages_are_newest_first_filtered_and_continue_where_they_ended(store: Store) {
        let mut rows = Vec::new();
        for i in 0..25 {
            let (user, group) = if i % 5 == 0 {
                ("etl", "etl")
            } else {
                ("ann", "adhoc")
            };
            // two rows share each timestamp: the query id breaks the tie
            let sql = if i == 7 {
                "SELECT * FROM Orders_2024"
            } else {
                "SELECT 1"
            };
            rows.push(row(&format!("q{i:02}"), user, group, 1000 + i / 2, sql));
        }
        store.write_batch(&rows).await.unwrap();

        let mut seen = Vec::new();
        let mut filter = HistoryFilter {
            limit: 10,
            ..Default::default()
        };
        loop {
            let (page, next) = store.history(&filter).await.unwrap();
            seen.extend(page.into_iter().map(|r| r.query_id));
            match next {
                Some(c) => filter.after = Cursor::decode(&c.encode()),
                None => break,
            }
        }
        let expected: Vec<String> = (0..25).rev().map(|i| format!("q{i:02}")).collect();
        assert_eq!(seen, expected, "every row once, newest first");

        let etl = HistoryFilter {
            group: Some("etl".into()),
            limit: 100,
            ..Default::default()
        };
        let (page, next) = store.history(&etl).await.unwrap();
        assert_eq!(page.len(), 5);
        assert!(page.iter().all(|r| r.user.as_deref() == Some("etl")));
        assert!(next.is_none());

        let text = HistoryFilter {
            text: Some("orders_".into()),
            since_ms: Some(1003),
            until_ms: Some(1004),
            limit: 100,
            ..Default::default()
        };
        let (page, _) = store.history(&text).await.unwrap();
        assert_eq!(page.len(), 1);
        assert_eq!(page[0].query_id, "q07");
        let pct = HistoryFilter {
            text: Some("%".into()),
            limit: 100,
            ..Default::default()
        };
        assert!(
            store.history(&pct).await.unwrap().0.is_empty(),
            "% is literal"
        );

        assert_eq!(
            store.history_entry("q07").await.unwrap().unwrap().backend,
            "adhoc-1"
        );
        assert!(store.history_entry("nope").await.unwrap().is_none());
    }

    crate::test_dbs::on_every_dialect!(
        pages_are_newest_first_filtered_and_continue_where_they_ended,
    );
}
