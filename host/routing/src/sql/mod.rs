//! The catalogs, schemas and tables a statement uses, qualified with the session defaults
//! (`X-Trino-Catalog`, `X-Trino-Schema`) as Trino qualifies them. SQL that cannot be read yields
//! what could be found: routing never fails because of it.
//!
//! Two readers, one answer:
//! - [`ast`]: a real SQL parser (sqlparser), for every statement kind Trino has — queries with
//!   their CTE names left out, INSERT/CTAS/UPDATE/DELETE/MERGE, CREATE/DROP/ALTER/RENAME (both
//!   names)/COMMENT/GRANT/REVOKE, SHOW/DESCRIBE/SHOW CREATE, USE, EXECUTE IMMEDIATE (the string
//!   is read too), EXECUTE of a prepared statement (its text from `X-Trino-Prepared-Statement`),
//!   table functions. Used for statements up to [`AST_LIMIT`] bytes.
//! - [`scan`]: one linear pass over the text, constant memory per name, for statements longer
//!   than that (a parser's tree of a 15 MiB statement takes gigabytes) and for Trino syntax the
//!   parser does not know (`FOR VERSION AS OF`, `ALTER TABLE … EXECUTE`, `SHOW CREATE SCHEMA`,
//!   `SHOW STATS FOR`, `PREPARE … FROM`): names after FROM, JOIN, INTO, UPDATE, TABLE, USING …
use std::collections::BTreeSet;

mod ast;
mod scan;
#[cfg(test)]
mod tests;

/// Statements longer than this are read by [`scan`], not parsed into a tree.
pub const AST_LIMIT: usize = 1 << 20;

/// At most this many names of each kind are kept (a statement naming more is cut, not fatal).
const MAX_NAMES: usize = 1000;

/// How deep EXECUTE IMMEDIATE / EXECUTE of a prepared statement may nest.
const MAX_DEPTH: u8 = 3;

/// Objects used by one statement, sorted and de-duplicated, lower-cased.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct SqlObjects {
    /// `catalog`
    pub catalogs: Vec<String>,
    /// `catalog.schema`
    pub schemas: Vec<String>,
    /// `catalog.schema.table`
    pub tables: Vec<String>,
}

/// What the session says about unqualified names.
#[derive(Debug, Default, Clone, Copy)]
pub struct Session<'a> {
    /// `X-Trino-Catalog`.
    pub catalog: Option<&'a str>,
    /// `X-Trino-Schema`.
    pub schema: Option<&'a str>,
    /// `X-Trino-Prepared-Statement`: `name=url-encoded SQL`, comma-separated.
    pub prepared: Option<&'a str>,
}

impl Session<'_> {
    /// The text of prepared statement `name`, from `X-Trino-Prepared-Statement`.
    fn prepared(&self, name: &str) -> Option<String> {
        self.prepared?.split(',').find_map(|entry| {
            let (n, sql) = entry.trim().split_once('=')?;
            let n = percent_decode(n);
            n.eq_ignore_ascii_case(name).then(|| percent_decode(sql))
        })
    }
}

fn percent_decode(s: &str) -> String {
    let plus_as_space = s.replace('+', " ");
    percent_encoding::percent_decode_str(&plus_as_space)
        .decode_utf8_lossy()
        .into_owned()
}

/// What a name stands for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    /// `[[catalog.]schema.]table` (views and materialized views too)
    Table,
    /// `[catalog.]schema`
    Schema,
    /// `catalog`
    Catalog,
}

/// Names found, before qualification.
#[derive(Default)]
struct Found {
    catalogs: BTreeSet<String>,
    schemas: BTreeSet<String>,
    tables: BTreeSet<String>,
}

impl Found {
    /// Add `parts` (as written, any case) of kind `kind`, qualified with `session`.
    fn add(&mut self, kind: Kind, parts: &[String], session: &Session) {
        let lower = |s: &str| s.to_lowercase();
        let c = session.catalog.map(lower);
        let s = session.schema.map(lower);
        let p: Vec<String> = parts.iter().map(|p| lower(p)).collect();
        let (catalog, schema, table) = match (kind, p.as_slice()) {
            (Kind::Table, [cat, sch, t]) => (Some(cat.clone()), Some(sch.clone()), Some(t.clone())),
            (Kind::Table, [sch, t]) => (c, Some(sch.clone()), Some(t.clone())),
            (Kind::Table, [t]) => (c, s, Some(t.clone())),
            (Kind::Schema, [cat, sch]) => (Some(cat.clone()), Some(sch.clone()), None),
            (Kind::Schema, [sch]) => (c, Some(sch.clone()), None),
            (Kind::Catalog, [cat]) => (Some(cat.clone()), None, None),
            _ => return,
        };
        let Some(catalog) = catalog else { return };
        let full = self.catalogs.len() >= MAX_NAMES
            || self.schemas.len() >= MAX_NAMES
            || self.tables.len() >= MAX_NAMES;
        if full {
            return;
        }
        if let Some(schema) = schema {
            if let Some(table) = table {
                self.tables.insert(format!("{catalog}.{schema}.{table}"));
            } else if kind == Kind::Table {
                return;
            }
            self.schemas.insert(format!("{catalog}.{schema}"));
        } else if kind != Kind::Catalog {
            return;
        }
        self.catalogs.insert(catalog);
    }

    fn into_objects(self) -> SqlObjects {
        SqlObjects {
            catalogs: self.catalogs.into_iter().collect(),
            schemas: self.schemas.into_iter().collect(),
            tables: self.tables.into_iter().collect(),
        }
    }
}

/// Extract the objects `sql` reads or writes.
pub fn objects(sql: &str, session: &Session) -> SqlObjects {
    let mut found = Found::default();
    read(sql, session, &mut found, 0);
    found.into_objects()
}

/// Read one text into `found`, by the parser when it can, else by the scanner.
fn read(sql: &str, session: &Session, found: &mut Found, depth: u8) {
    if depth > MAX_DEPTH {
        return;
    }
    if sql.len() <= AST_LIMIT && ast::read(sql, session, found, depth) {
        return;
    }
    scan::read(sql, session, found, depth);
}
