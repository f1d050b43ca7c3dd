//! The stores over TLS, with a CA the test makes: L2 on a `redis-server` that speaks TLS only and
//! requires client certificates, L3 on a PostgreSQL with `ssl = on` checked with `verify-full`.
use std::time::Duration;

use http::StatusCode;
use sluice_config::{ClientTlsConfig, Config};
use sluice_testkit::tls::TestCa;
use sluice_testkit::*;

use crate::cache::{across, no_misroutes_then_stop, shared_config, wait_l2};

#[tokio::test]
async fn l2_over_tls_with_a_private_ca_and_client_certificates() {
    let ca = TestCa::new("valkey");
    let redis = RedisServer::start_tls(&ca).await;
    let client = ca.issue("sluice-client", "sluice", &["sluice"]);
    let (c1, c2) = (cluster("c1").await, cluster("c2").await);
    let mut cfg: Config = shared_config(
        &[("c1", "adhoc", &c1.url()), ("c2", "adhoc", &c2.url())],
        &redis,
    );
    assert!(cfg.cache.valkey.url.starts_with("rediss://"));
    cfg.cache.valkey.timeout_ms = 500;
    cfg.cache.valkey.tls = ClientTlsConfig {
        ca: Some(ca.ca_pem.clone()),
        client_cert: Some(client.cert.clone()),
        client_key: Some(client.key.clone()),
        ..ClientTlsConfig::default()
    };
    let (a, b) = (Gw::start(cfg.clone()).await, Gw::start(cfg.clone()).await);
    wait_l2(&a, true).await;
    wait_l2(&b, true).await;
    for _ in 0..5 {
        across(&a, &b).await;
    }
    let stats = cache_stats(&b).await;
    assert!(stats["l2"]["hits"].as_u64().unwrap() >= 5, "{stats}");
    no_misroutes_then_stop(&[&c1, &c2], a, b).await;
    // without a client certificate the server refuses: no command goes through
    cfg.cache.valkey.tls.client_cert = None;
    cfg.cache.valkey.tls.client_key = None;
    let client = sluice_cache::l2_redis::L2::client_for(&cfg.cache.valkey).unwrap();
    let ping = async {
        let mut conn = client.get_multiplexed_async_connection().await?;
        redis::cmd("PING").query_async::<String>(&mut conn).await
    };
    let refused = tokio::time::timeout(Duration::from_secs(10), ping).await;
    assert!(matches!(refused, Ok(Err(_))), "{refused:?}");
}

#[tokio::test]
async fn l3_on_postgresql_over_tls_verifies_the_server_against_the_ca() {
    let ca = TestCa::new("postgres");
    let other = TestCa::new("not-postgres");
    let pg = PgServer::start_tls(&ca).await;
    let verified = |ca: &TestCa| {
        format!(
            "{}?sslmode=verify-full&sslrootcert={}",
            pg.url(),
            ca.ca_pem.display()
        )
    };
    // a certificate from another CA is refused, whatever the gateway would do next
    let refused = sqlx::PgPool::connect(&verified(&other)).await;
    assert!(
        refused.is_err(),
        "a server certificate from an unknown CA must fail"
    );
    let c1 = cluster("c1").await;
    let mut cfg = config(&[("c1", "adhoc", &c1.url())]);
    cfg.store.url = verified(&ca);
    let gw = Gw::start(cfg).await;
    let (status, first) = gw.submit("SELECT 'over tls'", &[]).await;
    assert_eq!(status, StatusCode::OK, "{first}");
    gw.drain(&first).await;
    wait_drained(&gw).await;
    // the history row went over TLS to the server
    let id = first["id"].as_str().unwrap();
    let plain = sqlx::PgPool::connect(&format!("{}?sslmode=disable", pg.url()))
        .await
        .unwrap();
    let gateway_connections =
        "SELECT s.ssl FROM pg_stat_ssl s JOIN pg_stat_activity a USING (pid) \
         WHERE a.backend_type = 'client backend' AND a.pid <> pg_backend_pid()";
    let ssl: Vec<(bool,)> = sqlx::query_as(gateway_connections)
        .fetch_all(&plain)
        .await
        .unwrap();
    assert!(!ssl.is_empty() && ssl.iter().all(|(on,)| *on), "{ssl:?}");
    let (rows,): (i64,) = sqlx::query_as("SELECT count(*) FROM query_history WHERE query_id = $1")
        .bind(id)
        .fetch_one(&plain)
        .await
        .unwrap();
    assert_eq!(rows, 1);
    gw.stop().await;
}
