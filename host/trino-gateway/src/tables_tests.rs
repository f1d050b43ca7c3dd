//! Trino Gateway's tables on its two databases: `gateway_backend` and `query_history` read and
//! written as its releases have them, and Sluice's own tables in a schema beside them.

use sluice_store::test_dbs::{TestDb, MYSQL, POSTGRES};
use sluice_store::{with_pool, HistoryRow, Store};

use crate::history_table::{history, history_columns, write_history};
use crate::tables::{
    self, create_own_namespace, delete_backend, own_tables_url, upsert_backend, TgBackend,
};

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
async fn trino_gateway_db(server: &'static str) -> TestDb {
    let db = TestDb::on(server).await;
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
    let backends = tables::backends(s).await.unwrap();
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
    let with_slash = tables::backends(s).await.unwrap();
    assert_eq!(
        with_slash[2].url, "http://t9:8080",
        "no path, as Sluice's URLs"
    );
    delete_backend(s, "trino-9").await.unwrap();
    let mut changed = backends[1].clone();
    changed.active = true;
    changed.group = "etl".into();
    // Trino Gateway's own writes fill external_url with the URL when there is none
    changed.external_url = Some(changed.url.clone());
    upsert_backend(s, &changed).await.unwrap();
    let added = TgBackend {
        name: "trino-3".into(),
        url: "http://t3:8080".into(),
        group: "etl".into(),
        external_url: None,
        active: true,
    };
    upsert_backend(s, &added).await.unwrap();
    let now = tables::backends(s).await.unwrap();
    assert_eq!(now[1], changed);
    assert_eq!(now[2].external_url.as_deref(), Some("http://t3:8080"));
    delete_backend(s, "trino-3").await.unwrap();
    assert_eq!(tables::backends(s).await.unwrap().len(), 2);

    let columns = history_columns(s).await.unwrap();
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
    write_history(s, &[&row, &row], &columns).await.unwrap();
    let history = history(s).await.unwrap();
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
            history(&db.store).await.unwrap().len(),
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
