//! [`Entry`] and [`Waiting`] read from a row by column name, on any dialect. Written out rather
//! than derived: sqlx's derive needs its `macros` feature, which builds every database driver a
//! second time for the compiler (and SQLite's C source with it) — a minute of a cold build.
use sqlx::{ColumnIndex, Decode, Row, Type};

use super::{Entry, Waiting};

impl<'r, R: Row> sqlx::FromRow<'r, R> for Entry
where
    &'r str: ColumnIndex<R>,
    String: Decode<'r, R::Database> + Type<R::Database>,
    i64: Decode<'r, R::Database> + Type<R::Database>,
    Vec<u8>: Decode<'r, R::Database> + Type<R::Database>,
{
    fn from_row(row: &'r R) -> Result<Self, sqlx::Error> {
        Ok(Entry {
            id: row.try_get("id")?,
            slug: row.try_get("slug")?,
            seq: row.try_get("seq")?,
            priority: row.try_get("priority")?,
            routing_group: row.try_get("routing_group")?,
            user_name: row.try_get("user_name")?,
            source: row.try_get("source")?,
            query_text: row.try_get("query_text")?,
            statement: row.try_get("statement")?,
            headers: row.try_get("headers")?,
            state: row.try_get("state")?,
            enqueued_ms: row.try_get("enqueued_ms")?,
            deadline_ms: row.try_get("deadline_ms")?,
            last_poll_ms: row.try_get("last_poll_ms")?,
            admitted_ms: row.try_get("admitted_ms")?,
            admitted_turn: row.try_get("admitted_turn")?,
            backend: row.try_get("backend")?,
            query_id: row.try_get("query_id")?,
            next_uri: row.try_get("next_uri")?,
            message: row.try_get("message")?,
        })
    }
}

impl<'r, R: Row> sqlx::FromRow<'r, R> for Waiting
where
    &'r str: ColumnIndex<R>,
    String: Decode<'r, R::Database> + Type<R::Database>,
    i64: Decode<'r, R::Database> + Type<R::Database>,
{
    fn from_row(row: &'r R) -> Result<Self, sqlx::Error> {
        Ok(Waiting {
            id: row.try_get("id")?,
            seq: row.try_get("seq")?,
            priority: row.try_get("priority")?,
            routing_group: row.try_get("routing_group")?,
            user_name: row.try_get("user_name")?,
            source: row.try_get("source")?,
            query_text: row.try_get("query_text")?,
            enqueued_ms: row.try_get("enqueued_ms")?,
            last_poll_ms: row.try_get("last_poll_ms")?,
        })
    }
}
