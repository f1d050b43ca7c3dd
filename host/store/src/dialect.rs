//! One statement text for three dialects. Statements are written once, in the shared dialect
//! of SQLite and PostgreSQL (`$1` placeholders, `ON CONFLICT`); [`Sql::sql`] hands MySQL and
//! MariaDB their own form of the same statement, rewritten once per statement and kept:
//!
//! | written | MySQL / MariaDB |
//! | --- | --- |
//! | `$1`, `$2`, … (in order, each once) | `?` |
//! | `INSERT … ON CONFLICT (k) DO NOTHING` | `INSERT IGNORE …` |
//! | `ON CONFLICT (k) DO UPDATE SET c = excluded.c` | `ON DUPLICATE KEY UPDATE c = VALUES(c)` |
//! | the column `key` | `` `key` `` (a reserved word) |
//!
//! `UPDATE … RETURNING` has no MySQL form: callers that use it branch on [`Sql::is_mysql`].
use std::collections::HashMap;
use std::sync::{LazyLock, Mutex};

use sqlx::{AssertSqlSafe, Database, Pool, Transaction};

/// The statement text for the dialect of a pool or transaction.
pub trait Sql {
    /// Whether the connection speaks MySQL's dialect.
    fn is_mysql(&self) -> bool;

    /// `text` in this dialect.
    fn sql(&self, text: &'static str) -> &'static str {
        match self.is_mysql() {
            true => mysql_static(text),
            false => text,
        }
    }

    /// A statement built at run time, in this dialect.
    fn sql_string(&self, text: String) -> AssertSqlSafe<String> {
        match self.is_mysql() {
            true => AssertSqlSafe(mysql(&text)),
            false => AssertSqlSafe(text),
        }
    }
}

/// `sqlx`'s name of the MySQL driver (`Database::NAME`).
pub(crate) const MYSQL: &str = "MySQL";

impl<DB: Database> Sql for Pool<DB> {
    fn is_mysql(&self) -> bool {
        DB::NAME == MYSQL
    }
}

impl<DB: Database> Sql for Transaction<'_, DB> {
    fn is_mysql(&self) -> bool {
        DB::NAME == MYSQL
    }
}

/// Rewritten statements, by the address of their text: the statements are constants, so this
/// holds one entry per statement of the crate.
static REWRITTEN: LazyLock<Mutex<HashMap<(usize, usize), &'static str>>> =
    LazyLock::new(Default::default);

fn mysql_static(text: &'static str) -> &'static str {
    let id = (text.as_ptr() as usize, text.len());
    let mut map = REWRITTEN.lock().unwrap_or_else(|p| p.into_inner());
    map.entry(id)
        .or_insert_with(|| Box::leak(mysql(text).into_boxed_str()))
}

/// `text` rewritten for MySQL and MariaDB (see the module's table). Panics on a statement the
/// crate should not contain: placeholders out of order or repeated, or `RETURNING`.
pub(crate) fn mysql(text: &str) -> String {
    assert!(
        !text.contains("RETURNING"),
        "MySQL has no RETURNING; branch on is_mysql(): {text}"
    );
    let mut out = String::with_capacity(text.len() + 16);
    let mut expected = 1u32;
    let mut chars = text.char_indices().peekable();
    while let Some((_, c)) = chars.next() {
        if c != '$' {
            out.push(c);
            continue;
        }
        let mut n = 0u32;
        while let Some((_, d)) = chars.peek().filter(|(_, d)| d.is_ascii_digit()) {
            n = n * 10 + d.to_digit(10).unwrap_or(0);
            chars.next();
        }
        assert_eq!(
            n, expected,
            "placeholders must appear in order, each once, for MySQL: {text}"
        );
        expected += 1;
        out.push('?');
    }
    let out = on_conflict(&out);
    quote_word(&out, "key")
}

/// `ON CONFLICT (…) DO NOTHING` and `… DO UPDATE SET c = excluded.c` in MySQL's words.
fn on_conflict(text: &str) -> String {
    let Some(at) = text.find(" ON CONFLICT (") else {
        return text.to_string();
    };
    let Some(close) = text[at..].find(')').map(|i| at + i + 1) else {
        return text.to_string();
    };
    let rest = &text[close..];
    if let Some(tail) = rest.strip_prefix(" DO NOTHING") {
        let head = text[..at].replacen("INSERT INTO", "INSERT IGNORE INTO", 1);
        return format!("{head}{tail}");
    }
    if let Some(set) = rest.strip_prefix(" DO UPDATE SET ") {
        let mut set = set.to_string();
        while let Some(i) = set.find("excluded.") {
            let name_end = set[i + 9..]
                .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
                .map_or(set.len(), |j| i + 9 + j);
            let name = set[i + 9..name_end].to_string();
            set.replace_range(i..name_end, &format!("VALUES({name})"));
        }
        return format!("{} ON DUPLICATE KEY UPDATE {set}", &text[..at]);
    }
    text.to_string()
}

/// Backquote `word` where it stands alone as a lower-case identifier.
fn quote_word(text: &str, word: &str) -> String {
    let is_ident = |c: char| c.is_ascii_alphanumeric() || c == '_' || c == '`';
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(i) = rest.find(word) {
        let before = rest[..i].chars().next_back();
        let after = rest[i + word.len()..].chars().next();
        out.push_str(&rest[..i]);
        if before.is_some_and(is_ident) || after.is_some_and(is_ident) {
            out.push_str(word);
        } else {
            out.push('`');
            out.push_str(word);
            out.push('`');
        }
        rest = &rest[i + word.len()..];
    }
    out.push_str(rest);
    out
}

/// A migration template rendered for MySQL / MariaDB: binary data as `LONGBLOB`, key and indexed
/// text as `VARCHAR` (MySQL cannot index `TEXT` whole), other text as `LONGTEXT`, every table in
/// `utf8mb4` with a binary (case-sensitive) collation as the other dialects compare, and the
/// statements rewritten as [`mysql`] does. `CREATE INDEX IF NOT EXISTS` is MariaDB's only: the
/// migrations run once each anyway.
pub(crate) fn mysql_migration(template: &str) -> String {
    let sql = template
        .replace("{{DIALECT_NOTE}}", "MySQL/MariaDB dialect")
        .replace("{{BYTES}}", "LONGBLOB")
        .replace("{{LONG_KEY}}", "VARCHAR(700)")
        .replace("{{KEY}}", "VARCHAR(255)")
        .replace(" TEXT", " LONGTEXT")
        .replace(" DEFAULT 'null'", "")
        .replace("CREATE INDEX IF NOT EXISTS", "CREATE INDEX")
        .replace(
            "\n);",
            "\n) DEFAULT CHARSET = utf8mb4 COLLATE = utf8mb4_bin;",
        );
    mysql(&sql)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statements_are_rewritten_for_mysql() {
        assert_eq!(
            mysql("INSERT INTO gateway_meta (name, value) VALUES ($1, $2) ON CONFLICT (name) DO NOTHING"),
            "INSERT IGNORE INTO gateway_meta (name, value) VALUES (?, ?)"
        );
        assert_eq!(
            mysql("INSERT INTO cache_entries (key, value, expires_at) VALUES ($1, $2, $3) ON CONFLICT (key) DO UPDATE SET value = excluded.value, expires_at = excluded.expires_at"),
            "INSERT INTO cache_entries (`key`, value, expires_at) VALUES (?, ?, ?) ON DUPLICATE KEY UPDATE value = VALUES(value), expires_at = VALUES(expires_at)"
        );
        assert_eq!(
            mysql("SELECT key_x, a.key FROM t WHERE key = $1 AND PRIMARY KEY LIMIT $2"),
            "SELECT key_x, a.`key` FROM t WHERE `key` = ? AND PRIMARY KEY LIMIT ?"
        );
    }

    #[test]
    #[should_panic(expected = "in order")]
    fn placeholders_out_of_order_are_a_bug() {
        mysql("UPDATE t SET a = $2 WHERE id = $1");
    }

    #[test]
    fn migrations_render_keys_as_varchar_and_tables_as_utf8mb4() {
        let sql = mysql_migration(
            "CREATE TABLE IF NOT EXISTS t (\n    key {{LONG_KEY}} PRIMARY KEY,\n    v TEXT NOT NULL DEFAULT 'null',\n    b {{BYTES}}\n);\nCREATE INDEX IF NOT EXISTS i ON t (v);",
        );
        assert_eq!(sql, "CREATE TABLE IF NOT EXISTS t (\n    `key` VARCHAR(700) PRIMARY KEY,\n    v LONGTEXT NOT NULL,\n    b LONGBLOB\n) DEFAULT CHARSET = utf8mb4 COLLATE = utf8mb4_bin;\nCREATE INDEX i ON t (v);");
    }
}
