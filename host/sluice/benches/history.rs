//! The query history API at a million rows: one page (newest first, filtered, deep by cursor,
//! text search), p50/p99, on SQLite and on PostgreSQL (the machine's, 127.0.0.1:5432, when it
//! answers; a database of the benchmark's own is created and dropped).
//!
//!     cargo bench --bench history            # 1,000,000 rows
//!     SLUICE_BENCH_QUICK=1 cargo bench --bench history   # 20,000 rows
use std::time::Instant;

use sluice_store::{Cursor, HistoryFilter, Store};

mod common;
use common::{percentiles, quick};

const SQLITE_FILL: &str = "WITH RECURSIVE s(i) AS (SELECT 0 UNION ALL SELECT i + 1 FROM s WHERE i < $1 - 1) \
     INSERT INTO query_history SELECT printf('20261125_%06d_%05d_bench', i / 100000, i % 100000), \
     'SELECT * FROM t' || (i % 1000), 'user' || (i % 50), 'src' || (i % 5), \
     CASE WHEN i % 3 = 0 THEN 'etl' ELSE 'adhoc' END, 'c' || (i % 4), NULL, 1700000000000 + i FROM s";
const PG_FILL: &str = "INSERT INTO query_history SELECT \
     format('20261125_%s_%s_bench', lpad((i / 100000)::text, 6, '0'), lpad((i % 100000)::text, 5, '0')), \
     'SELECT * FROM t' || (i % 1000), 'user' || (i % 50), 'src' || (i % 5), \
     CASE WHEN i % 3 = 0 THEN 'etl' ELSE 'adhoc' END, 'c' || (i % 4), NULL, 1700000000000 + i \
     FROM generate_series(0, $1 - 1) i";

async fn fill(store: &Store, rows: i64) -> f64 {
    let t = Instant::now();
    match store {
        Store::Sqlite(p) => sqlx::query(SQLITE_FILL)
            .bind(rows)
            .execute(p)
            .await
            .map(|_| ()),
        Store::Postgres(p) => sqlx::query(PG_FILL).bind(rows).execute(p).await.map(|_| ()),
        Store::MySql(_) => unimplemented!("this benchmark fills SQLite and PostgreSQL"),
    }
    .unwrap();
    if let Store::Postgres(p) = store {
        sqlx::query("ANALYZE query_history")
            .execute(p)
            .await
            .unwrap();
    }
    t.elapsed().as_secs_f64()
}

async fn measure(store: &Store, label: &str, rows: i64) {
    let n = if quick() { 20 } else { 200 };
    let filler = fill(store, rows).await;
    let page = |f: HistoryFilter| HistoryFilter { limit: 100, ..f };
    let middle = Cursor {
        created_at_ms: 1_700_000_000_000 + rows / 2,
        query_id: "~".into(),
    };
    let cases = [
        ("first page, no filter", page(HistoryFilter::default())),
        (
            "first page, user = user7",
            page(HistoryFilter {
                user: Some("user7".into()),
                ..Default::default()
            }),
        ),
        (
            "page at the middle (cursor), group = etl",
            page(HistoryFilter {
                group: Some("etl".into()),
                after: Some(middle),
                ..Default::default()
            }),
        ),
        (
            "text search 't999', user = user49",
            page(HistoryFilter {
                text: Some("t999".into()),
                user: Some("user49".into()),
                ..Default::default()
            }),
        ),
    ];
    println!("\n### {label}: {rows} rows (filled in {filler:.1} s), pages of 100\n");
    println!("| page | rows | p50 ms | p99 ms |\n| --- | ---: | ---: | ---: |");
    for (what, filter) in cases {
        let mut ns = Vec::with_capacity(n);
        let mut got = 0;
        for _ in 0..n {
            let t = Instant::now();
            got = store.history(&filter).await.unwrap().0.len();
            ns.push(t.elapsed().as_nanos() as u64);
        }
        let (p50, p99) = percentiles(ns);
        println!(
            "| {what} | {got} | {:.2} | {:.2} |",
            p50 / 1000.0,
            p99 / 1000.0
        );
    }
}

fn main() {
    common::run(async {
        let rows = if quick() { 20_000 } else { 1_000_000 };
        let file = std::env::temp_dir().join(format!("sluice-history-{}.db", std::process::id()));
        let sqlite = Store::open(&format!("sqlite://{}", file.display())).unwrap();
        sqlite.migrate().await.unwrap();
        measure(&sqlite, "SQLite", rows).await;
        drop(sqlite);
        let _ = std::fs::remove_file(&file);

        let db = format!("sluice_history_bench_{}", std::process::id());
        let admin = Store::open("postgres://postgres@127.0.0.1:5432/test").unwrap();
        if admin.ping().await.is_err() {
            println!("\n(PostgreSQL on 127.0.0.1:5432 does not answer: skipped)");
            return;
        }
        let Store::Postgres(ap) = &admin else {
            unreachable!()
        };
        let create = format!("CREATE DATABASE {db}");
        sqlx::query(sqlx::AssertSqlSafe(create))
            .execute(ap)
            .await
            .unwrap();
        let pg = Store::open(&format!("postgres://postgres@127.0.0.1:5432/{db}")).unwrap();
        pg.migrate().await.unwrap();
        measure(&pg, "PostgreSQL", rows).await;
        if let Store::Postgres(p) = &pg {
            p.close().await;
        }
        let drop_db = format!("DROP DATABASE IF EXISTS {db} WITH (FORCE)");
        sqlx::query(sqlx::AssertSqlSafe(drop_db))
            .execute(ap)
            .await
            .unwrap();
    });
}
