//! The query history API over both store dialects: newest first, filters, keyset pages, one
//! query with its cluster's UI link, and clear refusals.
use bytes::Bytes;
use http::{Method, StatusCode};
use serde_json::Value;

use sluice_testkit::*;

async fn get(gw: &Gw, path: &str) -> (StatusCode, Value) {
    gw.admin_as(Method::GET, path, None, Bytes::new()).await
}

/// Seven queries (ann and bob, groups adhoc and etl) through a gateway on `store_url`, then the
/// API read back every way.
async fn history_round_trip(store_url: &str) {
    let (a, e) = (cluster("adhoc-1").await, cluster("etl-1").await);
    let mut cfg = config(&[("adhoc-1", "adhoc", &a.url()), ("etl-1", "etl", &e.url())]);
    cfg.store.url = store_url.into();
    let gw = Gw::start(cfg).await;
    wait_drained(&gw).await;
    let mut ids = Vec::new();
    for i in 0..7 {
        let user = if i % 2 == 0 { "ann" } else { "bob" };
        let group = if i < 3 { "etl" } else { "adhoc" };
        let (status, q) = gw
            .call(
                Method::POST,
                "/v1/statement",
                &[("X-Trino-User", user), ("X-Trino-Routing-Group", group)],
                &format!("SELECT {i} FROM orders_{i}"),
            )
            .await;
        assert_eq!(status, StatusCode::OK);
        ids.push(json(&q)["id"].as_str().unwrap().to_string());
    }
    wait_drained(&gw).await;

    // pages of three, newest first, each row once
    let mut seen = Vec::new();
    let mut path = "/api/v1/queries?limit=3".to_string();
    loop {
        let (status, page) = get(&gw, &path).await;
        assert_eq!(status, StatusCode::OK, "{page}");
        for q in page["queries"].as_array().unwrap() {
            seen.push(q["query_id"].as_str().unwrap().to_string());
        }
        match page["next_cursor"].as_str() {
            Some(c) => path = format!("/api/v1/queries?limit=3&cursor={c}"),
            None => break,
        }
    }
    let mut newest_first = ids.clone();
    newest_first.reverse();
    assert_eq!(seen, newest_first);

    let (_, page) = get(&gw, "/api/v1/queries?user=bob&group=adhoc").await;
    let rows = page["queries"].as_array().unwrap();
    assert_eq!(rows.len(), 2, "{page}");
    assert!(rows
        .iter()
        .all(|q| q["user"] == "bob" && q["backend"] == "adhoc-1"));
    let (_, page) = get(&gw, "/api/v1/queries?q=ORDERS_5").await;
    assert_eq!(page["queries"][0]["query_id"], ids[5].as_str(), "{page}");

    let (status, one) = get(&gw, &format!("/api/v1/queries/{}", ids[1])).await;
    assert_eq!(status, StatusCode::OK, "{one}");
    assert_eq!(one["backend"], "etl-1");
    assert_eq!(one["routing_group"], "etl");
    assert_eq!(
        one["ui_url"],
        format!("{}/ui/query.html?{}", e.url(), ids[1]).as_str()
    );
    let (status, _) = get(&gw, "/api/v1/queries/20200101_000000_00001_xxxxx").await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (status, body) = get(&gw, "/api/v1/queries?limit=0").await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(
        body["error"].as_str().unwrap().starts_with("limit"),
        "{body}"
    );
    gw.stop().await;
}

#[tokio::test]
async fn query_history_pages_filters_and_links_in_sqlite() {
    let tmp = temp_sqlite("history");
    history_round_trip(&tmp.url).await;
}

#[tokio::test]
async fn query_history_pages_filters_and_links_in_postgresql() {
    let pg = PgServer::start().await;
    history_round_trip(&pg.url()).await;
}

#[tokio::test]
async fn query_history_pages_filters_and_links_in_mariadb() {
    let db = sluice_testkit::MariaDbServer::start().await;
    history_round_trip(&db.url()).await;
}

#[tokio::test]
async fn without_a_store_the_history_is_unavailable_and_says_why() {
    let a = cluster("adhoc-1").await;
    let gw = Gw::start(config(&[("adhoc-1", "adhoc", &a.url())])).await;
    let (status, body) = get(&gw, "/api/v1/queries").await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
    assert!(
        body["error"].as_str().unwrap().contains("no store"),
        "{body}"
    );
    gw.stop().await;
}
