use std::time::Duration;

use http::{Method, StatusCode};
use sluice_config::StatsSource;
use sluice_testkit::FakeOptions;

use sluice_testkit::*;

#[tokio::test]
async fn a_killed_backend_stops_receiving_new_queries_within_one_interval() {
    let (a1, a2) = (cluster("adhoc-1").await, cluster("adhoc-2").await);
    let mut c = config(&[
        ("adhoc-1", "adhoc", &a1.url()),
        ("adhoc-2", "adhoc", &a2.url()),
    ]);
    c.health.interval_ms = 200;
    c.health.timeout_ms = 200;
    let gw = Gw::start(c).await;
    a2.stop().await;
    // one interval, plus the poll's own time limit
    let took = gw
        .await_health("adhoc-2", "UNHEALTHY", Duration::from_millis(1000))
        .await;
    // one interval (200 ms) plus the poll's time limit (200 ms), and slack for a loaded CI machine
    assert!(took <= Duration::from_millis(650), "took {took:?}");
    for _ in 0..10 {
        let (status, q) = gw.submit("SELECT 1", &[]).await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(owner(&gw.drain(&q).await.0), "adhoc-1");
    }
    let reason = gw.backend_status("adhoc-2").await["reason"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(reason.contains("/v1/info"), "{reason}");
    gw.stop().await;
}

#[tokio::test]
async fn a_starting_coordinator_is_unhealthy_but_keeps_its_running_queries() {
    let (a1, a2) = (cluster("adhoc-1").await, cluster("adhoc-2").await);
    let mut c = config(&[
        ("adhoc-1", "adhoc", &a1.url()),
        ("adhoc-2", "adhoc", &a2.url()),
    ]);
    c.health.interval_ms = 100;
    let gw = Gw::start(c).await;
    // start queries until one lands on adhoc-2
    let mut on_a2 = None;
    for _ in 0..50 {
        let (_, q) = gw.submit("SELECT 1 fake:pages=3", &[]).await;
        if a2.queries_created() > 0 && on_a2.is_none() {
            on_a2 = Some(q);
            break;
        }
    }
    let on_a2 = on_a2.expect("least-loaded routing reaches adhoc-2");
    a2.set_starting(true);
    gw.await_health("adhoc-2", "UNHEALTHY", Duration::from_secs(2))
        .await;
    let created = a2.queries_created();
    for _ in 0..10 {
        gw.submit("SELECT 1", &[]).await;
    }
    assert_eq!(
        a2.queries_created(),
        created,
        "no new query for a starting coordinator"
    );
    // the query it already owns is still followed there
    let (rows, last) = gw.drain(&on_a2).await;
    assert_eq!(owner(&rows), "adhoc-2");
    assert_eq!(last["stats"]["state"], "FINISHED");
    a2.set_starting(false);
    gw.await_health("adhoc-2", "HEALTHY", Duration::from_secs(2))
        .await;
    gw.stop().await;
}

#[tokio::test]
async fn running_and_queued_counts_come_from_ui_api_or_metrics() {
    let slow = |name: &str| FakeOptions {
        name: name.into(),
        queued_polls: 100,
        ..Default::default()
    };
    let (ui, metrics) = (
        cluster_with(slow("ui")).await,
        cluster_with(slow("metrics")).await,
    );
    let mut c = config(&[
        ("ui", "adhoc", &ui.url()),
        ("metrics", "etl", &metrics.url()),
    ]);
    c.backends[1].stats = Some(StatsSource::Metrics);
    c.health.interval_ms = 100;
    let gw = Gw::start(c).await;
    for _ in 0..3 {
        gw.submit("SELECT 1", &[]).await;
    }
    for _ in 0..2 {
        gw.submit("SELECT 1", &[("X-Trino-Routing-Group", "etl")])
            .await;
    }
    for (name, queued) in [("ui", 3), ("metrics", 2)] {
        let mut seen = 0;
        for _ in 0..200 {
            seen = gw.backend_status(name).await["queued_queries"]
                .as_u64()
                .unwrap();
            if seen == queued {
                break;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        assert_eq!(seen, queued, "{name}");
    }
    gw.stop().await;
}

#[tokio::test]
async fn health_and_readiness_endpoints() {
    let a = cluster("adhoc-1").await;
    let gw = Gw::start(config(&[("adhoc-1", "adhoc", &a.url())])).await;
    let (status, body) = gw.admin(Method::GET, "/healthz").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(json(&body)["status"], "ok");
    assert_eq!(gw.admin(Method::GET, "/readyz").await.0, StatusCode::OK);
    assert_eq!(
        gw.admin(Method::POST, "/readyz").await.0,
        StatusCode::METHOD_NOT_ALLOWED
    );
    assert_eq!(
        gw.admin(Method::GET, "/nope").await.0,
        StatusCode::NOT_FOUND
    );
    gw.stop().await;
}

#[tokio::test]
async fn clusters_with_authentication_are_polled_and_searched_with_the_configured_credentials() {
    let secure = cluster_with(FakeOptions {
        name: "secure".into(),
        require_authorization: Some("Bearer tok-123".into()),
        ..Default::default()
    })
    .await;
    // a query the gateway never saw, started by a client that authenticates itself
    let client = sluice_http::client::build(&Default::default());
    let req = http::Request::post(format!("{}/v1/statement", secure.url()))
        .header("X-Trino-User", "u")
        .header("authorization", "Bearer tok-123")
        .body(sluice_http::full_body(bytes::Bytes::from_static(
            b"SELECT 1",
        )))
        .unwrap();
    let (status, body) = send(&client, req).await;
    assert_eq!(status, StatusCode::OK);
    let id = json(&body)["id"].as_str().unwrap().to_string();
    let follow = |gw: &Gw| {
        let path = format!("/v1/query/{id}");
        let gw_url = gw.url(&path);
        let client = gw.client.clone();
        async move {
            let req = http::Request::get(gw_url)
                .header("X-Trino-User", "u")
                .header("authorization", "Bearer tok-123")
                .body(sluice_http::empty_body())
                .unwrap();
            send(&client, req).await.0
        }
    };

    let mut c = config(&[("secure", "adhoc", &secure.url())]);
    c.health.bearer_token = Some("tok-123".into());
    let gw = Gw::start(c.clone()).await;
    assert_eq!(gw.backend_health("secure").await, "HEALTHY");
    assert_eq!(
        follow(&gw).await,
        StatusCode::OK,
        "the search found the owner"
    );
    gw.stop().await;

    // the search's own credentials win over the health checks': a wrong token finds nothing
    c.cache.search.bearer_token = Some("wrong".into());
    let gw = Gw::start(c.clone()).await;
    assert_eq!(gw.backend_health("secure").await, "HEALTHY");
    assert_eq!(follow(&gw).await, StatusCode::NOT_FOUND);
    gw.stop().await;

    // without credentials the cluster refuses the health check, and says why
    c.health.bearer_token = None;
    c.cache.search.bearer_token = None;
    let gw = Gw::start(c).await;
    assert_eq!(gw.backend_health("secure").await, "UNHEALTHY");
    let reason = gw.backend_status("secure").await["reason"].to_string();
    assert!(reason.contains("401"), "{reason}");
    gw.stop().await;
}
