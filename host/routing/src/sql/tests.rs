//! Statement coverage, one table: each statement with the objects it must yield. Names are
//! written `catalog.schema.table` (a table), `schema:catalog.schema` or `catalog:catalog`; the
//! schemas and catalogs of listed tables are implied. The session is `hive`/`web` unless the
//! case says otherwise.
use super::*;

/// (sql, session catalog and schema, expected)
type Case = (
    &'static str,
    Option<(&'static str, &'static str)>,
    &'static [&'static str],
);

const S: Option<(&str, &str)> = Some(("hive", "web"));

const CASES: &[Case] = &[
    // queries
    ("SELECT * FROM orders", S, &["hive.web.orders"]),
    ("SELECT * FROM sales.orders", S, &["hive.sales.orders"]),
    ("SELECT * FROM iceberg.sales.orders", S, &["iceberg.sales.orders"]),
    ("SELECT * FROM \"Hive\".\"Sales\".\"Orders\"", None, &["hive.sales.orders"]),
    ("select * from a join b on a.id = b.id left join c.d.e x on true", S, &["hive.web.a", "hive.web.b", "c.d.e"]),
    ("SELECT * FROM a WHERE x IN (SELECT y FROM b)", S, &["hive.web.a", "hive.web.b"]),
    ("SELECT (SELECT max(y) FROM b) FROM a", S, &["hive.web.a", "hive.web.b"]),
    ("SELECT * FROM a UNION ALL SELECT * FROM iceberg.s.b", S, &["hive.web.a", "iceberg.s.b"]),
    ("SELECT * FROM a, LATERAL (SELECT * FROM b WHERE b.x = a.x)", S, &["hive.web.a", "hive.web.b"]),
    ("SELECT * FROM UNNEST(ARRAY[1, 2]) AS t(x)", S, &[]),
    ("SELECT 1", S, &[]),
    ("SELECT * FROM t", None, &[]),
    ("SELECT * FROM s.t", Some(("iceberg", "")), &["iceberg.s.t"]),
    // CTEs: the names are not tables
    ("WITH orders AS (SELECT * FROM raw.orders) SELECT * FROM orders", S, &["hive.raw.orders"]),
    ("WITH a AS (SELECT 1), b AS (SELECT * FROM a) SELECT * FROM b JOIN real_t ON true", S, &["hive.web.real_t"]),
    ("WITH RECURSIVE r(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM r WHERE n < 3) SELECT * FROM r", S, &[]),
    ("WITH a AS (SELECT * FROM x.y.z) SELECT * FROM a WHERE k IN (SELECT k FROM hive.s.t)", S, &["x.y.z", "hive.s.t"]),
    ("WITH orders AS (SELECT 1) SELECT * FROM sales.orders", S, &["hive.sales.orders"]),
    // writes
    ("INSERT INTO t SELECT * FROM other.x", S, &["hive.web.t", "hive.other.x"]),
    ("INSERT INTO hive.s.t (a, b) VALUES (1, 2)", S, &["hive.s.t"]),
    ("CREATE TABLE s.new_t AS SELECT * FROM old_t", S, &["hive.s.new_t", "hive.web.old_t"]),
    ("CREATE TABLE IF NOT EXISTS hive.s.t (a integer) WITH (format = 'ORC')", S, &["hive.s.t"]),
    ("CREATE OR REPLACE VIEW v AS SELECT * FROM t", S, &["hive.web.v", "hive.web.t"]),
    ("CREATE MATERIALIZED VIEW iceberg.s.mv AS SELECT * FROM hive.s.t", S, &["iceberg.s.mv", "hive.s.t"]),
    ("UPDATE t SET a = 1 WHERE b IN (SELECT b FROM u)", S, &["hive.web.t", "hive.web.u"]),
    ("DELETE FROM iceberg.s.t WHERE a = 1", S, &["iceberg.s.t"]),
    ("MERGE INTO t USING s.u ON t.id = u.id WHEN MATCHED THEN DELETE", S, &["hive.web.t", "hive.s.u"]),
    ("TRUNCATE TABLE t", S, &["hive.web.t"]),
    ("ANALYZE hive.s.t", S, &["hive.s.t"]),
    ("REFRESH MATERIALIZED VIEW s.mv", S, &["hive.s.mv"]),
    // DDL
    ("DROP TABLE hive.s.t", S, &["hive.s.t"]),
    ("DROP TABLE IF EXISTS t", S, &["hive.web.t"]),
    ("DROP VIEW IF EXISTS s.v", S, &["hive.s.v"]),
    ("DROP MATERIALIZED VIEW iceberg.s.mv", S, &["iceberg.s.mv"]),
    ("DROP SCHEMA hive.s", S, &["schema:hive.s"]),
    ("DROP SCHEMA IF EXISTS s CASCADE", S, &["schema:hive.s"]),
    ("CREATE SCHEMA iceberg.staging", S, &["schema:iceberg.staging"]),
    ("CREATE SCHEMA IF NOT EXISTS staging", S, &["schema:hive.staging"]),
    ("ALTER TABLE hive.s.t RENAME TO hive.s.u", S, &["hive.s.t", "hive.s.u"]),
    ("ALTER TABLE s.t RENAME TO u", S, &["hive.s.t", "hive.web.u"]),
    ("ALTER TABLE t ADD COLUMN b integer", S, &["hive.web.t"]),
    ("ALTER VIEW s.v RENAME TO s.w", S, &["hive.s.v", "hive.s.w"]),
    ("ALTER SCHEMA iceberg.s RENAME TO t", S, &["schema:iceberg.s", "schema:iceberg.t"]),
    ("ALTER TABLE hive.s.t EXECUTE optimize(file_size_threshold => '10MB')", S, &["hive.s.t"]),
    ("COMMENT ON TABLE s.t IS 'orders'", S, &["hive.s.t"]),
    ("COMMENT ON VIEW iceberg.s.v IS 'x'", S, &["iceberg.s.v"]),
    ("COMMENT ON COLUMN hive.s.t.a IS 'x'", S, &["hive.s.t"]),
    ("GRANT SELECT ON hive.s.t TO alice", S, &["hive.s.t"]),
    ("GRANT SELECT ON TABLE t TO ROLE analysts", S, &["hive.web.t"]),
    ("REVOKE INSERT ON s.t FROM alice", S, &["hive.s.t"]),
    ("GRANT SELECT ON SCHEMA iceberg.s TO alice", S, &["schema:iceberg.s"]),
    // SHOW, DESCRIBE, USE, SET SESSION
    ("SHOW TABLES FROM iceberg.s", S, &["schema:iceberg.s"]),
    ("SHOW TABLES FROM s", S, &["schema:hive.s"]),
    ("SHOW SCHEMAS FROM iceberg", S, &["catalog:iceberg"]),
    ("SHOW COLUMNS FROM s.t", S, &["hive.s.t"]),
    ("SHOW CREATE TABLE iceberg.s.t", S, &["iceberg.s.t"]),
    ("SHOW CREATE VIEW v", S, &["hive.web.v"]),
    ("SHOW CREATE MATERIALIZED VIEW s.mv", S, &["hive.s.mv"]),
    ("SHOW CREATE SCHEMA iceberg.s", S, &["schema:iceberg.s"]),
    ("SHOW STATS FOR s.t", S, &["hive.s.t"]),
    ("SHOW STATS FOR (SELECT * FROM s.t WHERE a > 1)", S, &["hive.s.t"]),
    ("SHOW GRANTS ON TABLE s.t", S, &["hive.s.t"]),
    ("SHOW FUNCTIONS FROM iceberg.system", S, &["schema:iceberg.system"]),
    ("DESCRIBE s.t", S, &["hive.s.t"]),
    ("DESCRIBE iceberg.s.t", None, &["iceberg.s.t"]),
    ("USE iceberg.s", S, &["schema:iceberg.s"]),
    ("USE s", S, &["schema:hive.s"]),
    ("SET SESSION iceberg.compression_codec = 'ZSTD'", S, &["catalog:iceberg"]),
    ("SHOW CATALOGS", S, &[]),
    ("EXPLAIN SELECT * FROM s.t", S, &["hive.s.t"]),
    ("EXPLAIN ANALYZE SELECT * FROM iceberg.s.t", S, &["iceberg.s.t"]),
    // prepared and immediate statements, table functions, procedures
    ("EXECUTE IMMEDIATE 'SELECT * FROM s.t WHERE a = ?' USING 1", S, &["hive.s.t"]),
    ("EXECUTE IMMEDIATE 'INSERT INTO iceberg.s.t SELECT * FROM hive.s.u WHERE x = ''a''' USING 1", S, &["iceberg.s.t", "hive.s.u"]),
    ("PREPARE p FROM SELECT * FROM s.t", S, &["hive.s.t"]),
    ("SELECT * FROM TABLE(postgres.system.query(query => 'SELECT 1'))", S, &["schema:postgres.system"]),
    ("SELECT * FROM TABLE(system.query(query => 'SELECT 1'))", Some(("pg", "public")), &["schema:pg.system"]),
    ("SELECT * FROM TABLE(exclude_columns(input => TABLE(s.t), columns => DESCRIPTOR(a)))", S, &["hive.s.t"]),
    ("CALL iceberg.system.rollback_to_snapshot('s', 't', 1)", S, &["schema:iceberg.system"]),
    ("CALL system.sync_partition_metadata('s', 't', 'ADD')", S, &["schema:hive.system"]),
    // Trino syntax the parser does not know: the scanner reads it
    ("SELECT * FROM iceberg.s.t FOR VERSION AS OF 123", S, &["iceberg.s.t"]),
    ("SELECT * FROM s.t FOR TIMESTAMP AS OF TIMESTAMP '2024-01-01 00:00:00' JOIN u ON true", S, &["hive.s.t", "hive.web.u"]),
    ("WITH x AS (SELECT * FROM iceberg.s.t FOR VERSION AS OF 1) SELECT * FROM x", S, &["iceberg.s.t"]),
];

fn expected(names: &[&str]) -> SqlObjects {
    let mut f = Found::default();
    let none = Session::default();
    for n in names {
        let (kind, name) = match n.split_once(':') {
            Some(("schema", rest)) => (Kind::Schema, rest),
            Some(("catalog", rest)) => (Kind::Catalog, rest),
            _ => (Kind::Table, *n),
        };
        let parts: Vec<String> = name.split('.').map(String::from).collect();
        f.add(kind, &parts, &none);
    }
    f.into_objects()
}

#[test]
fn every_statement_kind_yields_its_objects() {
    assert!(CASES.len() >= 60, "{} cases", CASES.len());
    let mut wrong = Vec::new();
    for (sql, session, want) in CASES {
        let s = Session {
            catalog: session.map(|s| s.0).filter(|c| !c.is_empty()),
            schema: session.map(|s| s.1).filter(|c| !c.is_empty()),
            prepared: None,
        };
        let got = objects(sql, &s);
        if got != expected(want) {
            wrong.push(format!(
                "{sql}\n    want {:?}\n    got  {:?}",
                expected(want),
                got
            ));
        }
    }
    assert!(
        wrong.is_empty(),
        "{} of {} wrong:\n{}",
        wrong.len(),
        CASES.len(),
        wrong.join("\n")
    );
}

#[test]
fn the_scanner_agrees_with_the_parser_on_what_both_read() {
    // every case the parser reads, read again by the scanner alone: the scanner may find less
    // (it is the fallback), never a table the statement does not use
    for (sql, session, want) in CASES {
        let s = Session {
            catalog: session.map(|s| s.0).filter(|c| !c.is_empty()),
            schema: session.map(|s| s.1).filter(|c| !c.is_empty()),
            prepared: None,
        };
        let mut f = Found::default();
        scan::read(sql, &s, &mut f, 0);
        let got = f.into_objects();
        let want = expected(want);
        for t in &got.tables {
            assert!(
                want.tables.contains(t),
                "{sql}: the scanner invented {t} ({got:?})"
            );
        }
    }
}

#[test]
fn execute_reads_the_prepared_statement_header() {
    let header = "other=SELECT+1,q1=SELECT+%2A+FROM+iceberg.s.t+WHERE+a+%3D+%3F";
    let s = Session {
        catalog: Some("hive"),
        schema: Some("web"),
        prepared: Some(header),
    };
    assert_eq!(objects("EXECUTE q1 USING 5", &s).tables, ["iceberg.s.t"]);
    assert_eq!(objects("EXECUTE q1", &s).tables, ["iceberg.s.t"]);
    assert!(objects("EXECUTE missing", &s).tables.is_empty());
}

#[test]
fn a_statement_past_the_parser_limit_is_read_whole_by_the_scanner() {
    // 2 MiB of IN list, then the table that matters at the very end
    let list: Vec<String> = (0..300_000).map(|i| i.to_string()).collect();
    let sql = format!(
        "SELECT * FROM s.a WHERE x IN ({}) UNION ALL SELECT * FROM iceberg.s.last",
        list.join(",")
    );
    assert!(sql.len() > AST_LIMIT);
    let s = Session {
        catalog: Some("hive"),
        schema: Some("web"),
        prepared: None,
    };
    assert_eq!(objects(&sql, &s).tables, ["hive.s.a", "iceberg.s.last"]);
}

#[test]
fn unreadable_sql_yields_nothing_and_never_panics() {
    let s = Session::default();
    for sql in [
        "SELEKT nonsense ((",
        "",
        "'unterminated",
        "/* open",
        "\"",
        "FROM",
        "FROM .",
        "EXECUTE IMMEDIATE",
    ] {
        assert!(objects(sql, &s).tables.is_empty(), "{sql}");
    }
    // nesting is bounded
    let mut sql = "SELECT * FROM hive.s.t".to_string();
    for _ in 0..10 {
        sql = format!("EXECUTE IMMEDIATE '{}'", sql.replace('\'', "''"));
    }
    assert!(objects(&sql, &s).tables.is_empty());
}
