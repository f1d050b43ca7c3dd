//! The catalogs, schemas and tables a statement uses, from a real SQL parser, qualified with the
//! session defaults (`X-Trino-Catalog`, `X-Trino-Schema`). SQL the parser does not understand
//! yields nothing: routing must never fail because of it.
use std::collections::BTreeSet;
use std::ops::ControlFlow;

use sqlparser::ast::{visit_relations, ObjectNamePart};
use sqlparser::dialect::GenericDialect;
use sqlparser::parser::Parser;

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

/// Extract the objects `sql` reads or writes.
pub fn objects(
    sql: &str,
    default_catalog: Option<&str>,
    default_schema: Option<&str>,
) -> SqlObjects {
    let Ok(statements) = Parser::parse_sql(&GenericDialect {}, sql) else {
        return SqlObjects::default();
    };
    let mut catalogs = BTreeSet::new();
    let mut schemas = BTreeSet::new();
    let mut tables = BTreeSet::new();
    let lower = |s: &str| s.to_ascii_lowercase();
    let _ = visit_relations(&statements, |name| {
        let parts: Vec<String> = name
            .0
            .iter()
            .filter_map(|p| match p {
                ObjectNamePart::Identifier(i) => Some(i.value.clone()),
                _ => None,
            })
            .collect();
        let (catalog, schema, table) = match parts.as_slice() {
            [c, s, t] => (Some(c.clone()), Some(s.clone()), t.clone()),
            [s, t] => (
                default_catalog.map(String::from),
                Some(s.clone()),
                t.clone(),
            ),
            [t] => (
                default_catalog.map(String::from),
                default_schema.map(String::from),
                t.clone(),
            ),
            _ => return ControlFlow::<()>::Continue(()),
        };
        if let Some(c) = &catalog {
            catalogs.insert(lower(c));
            if let Some(s) = &schema {
                schemas.insert(format!("{}.{}", lower(c), lower(s)));
                tables.insert(format!("{}.{}.{}", lower(c), lower(s), lower(&table)));
            }
        }
        ControlFlow::Continue(())
    });
    // CTE names are relations too, but only when unqualified and the session has no catalog.
    SqlObjects {
        catalogs: catalogs.into_iter().collect(),
        schemas: schemas.into_iter().collect(),
        tables: tables.into_iter().collect(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn qualified_names_and_joins() {
        let o = objects(
            "SELECT * FROM hive.sales.orders o JOIN iceberg.dim.customers c ON o.c = c.id",
            None,
            None,
        );
        assert_eq!(o.catalogs, vec!["hive", "iceberg"]);
        assert_eq!(o.schemas, vec!["hive.sales", "iceberg.dim"]);
        assert_eq!(o.tables, vec!["hive.sales.orders", "iceberg.dim.customers"]);
    }

    #[test]
    fn session_defaults_qualify_short_names() {
        let o = objects(
            "INSERT INTO t SELECT * FROM other.x",
            Some("Hive"),
            Some("web"),
        );
        assert_eq!(o.tables, vec!["hive.other.x", "hive.web.t"]);
        let o = objects("SELECT * FROM t", None, Some("web"));
        assert!(o.tables.is_empty(), "no catalog: nothing qualified");
    }

    #[test]
    fn subqueries_and_ctes_are_searched() {
        let o = objects(
            "WITH a AS (SELECT * FROM hive.s.t1) SELECT * FROM a WHERE x IN (SELECT y FROM hive.s.t2)",
            None,
            None,
        );
        assert_eq!(o.tables, vec!["hive.s.t1", "hive.s.t2"]);
    }

    #[test]
    fn unparseable_sql_yields_nothing() {
        assert_eq!(
            objects("SELEKT nonsense ((", Some("c"), Some("s")),
            SqlObjects::default()
        );
        assert_eq!(objects("", None, None), SqlObjects::default());
    }
}
