use http::StatusCode;

use sluice_testkit::*;

#[tokio::test]
async fn the_routing_group_header_selects_the_cluster() {
    let (a, e) = (cluster("adhoc-1").await, cluster("etl-1").await);
    let gw = Gw::start(config(&[
        ("adhoc-1", "adhoc", &a.url()),
        ("etl-1", "etl", &e.url()),
    ]))
    .await;
    for _ in 0..5 {
        let (_, q) = gw
            .submit("SELECT 1", &[("X-Trino-Routing-Group", "etl")])
            .await;
        assert_eq!(owner(&gw.drain(&q).await.0), "etl-1");
        let (_, q) = gw.submit("SELECT 1", &[]).await;
        assert_eq!(owner(&gw.drain(&q).await.0), "adhoc-1");
    }
    gw.stop().await;
}

#[tokio::test]
async fn an_unknown_group_falls_back_to_the_default_or_is_a_400_when_strict() {
    let a = cluster("adhoc-1").await;
    let mut c = config(&[("adhoc-1", "adhoc", &a.url())]);
    // Trino Gateway's semantics: the default group serves it
    let gw = Gw::start(c.clone()).await;
    let (status, first) = gw
        .submit("SELECT 1", &[("X-Trino-Routing-Group", "nosuch")])
        .await;
    assert_eq!(status, StatusCode::OK, "{first}");
    assert_eq!(owner(&gw.drain(&first).await.0), "adhoc-1");
    gw.stop().await;

    c.routing.strict_groups = true;
    let gw = Gw::start(c).await;
    let (status, body) = gw
        .submit("SELECT 1", &[("X-Trino-Routing-Group", "nosuch")])
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(body["error"]["message"]
        .as_str()
        .unwrap()
        .contains("'nosuch'"));
    assert_eq!(
        a.queries_created(),
        1,
        "only the fallback query reached the cluster"
    );
    gw.stop().await;
}

#[tokio::test]
async fn an_empty_group_fails_strictly_or_falls_back() {
    let a = cluster("adhoc-1").await;
    let dead = "http://127.0.0.1:9"; // discard port: nothing listens, so etl-1 is UNHEALTHY
    let mut c = config(&[("adhoc-1", "adhoc", &a.url()), ("etl-1", "etl", dead)]);
    c.routing.strict_groups = true;
    let gw = Gw::start(c.clone()).await;
    let (status, body) = gw
        .submit("SELECT 1", &[("X-Trino-Routing-Group", "etl")])
        .await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
    assert!(body["error"]["message"].as_str().unwrap().contains("'etl'"));
    gw.stop().await;

    c.routing.strict_groups = false;
    let gw = Gw::start(c).await;
    let (status, q) = gw
        .submit("SELECT 1", &[("X-Trino-Routing-Group", "etl")])
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(owner(&gw.drain(&q).await.0), "adhoc-1");
    gw.stop().await;
}

#[tokio::test]
async fn inactive_backends_get_no_new_queries() {
    let (a1, a2) = (cluster("adhoc-1").await, cluster("adhoc-2").await);
    let mut c = config(&[
        ("adhoc-1", "adhoc", &a1.url()),
        ("adhoc-2", "adhoc", &a2.url()),
    ]);
    c.backends[1].active = false;
    let gw = Gw::start(c).await;
    for _ in 0..10 {
        let (_, q) = gw.submit("SELECT 1", &[]).await;
        assert_eq!(owner(&gw.drain(&q).await.0), "adhoc-1");
    }
    assert_eq!(a2.queries_created(), 0);
    gw.stop().await;
}

#[tokio::test]
async fn a_refused_connection_is_retried_once_on_another_backend() {
    let (a1, a2) = (cluster("adhoc-1").await, cluster("adhoc-2").await);
    let gw = Gw::start(config(&[
        ("adhoc-1", "adhoc", &a1.url()),
        ("adhoc-2", "adhoc", &a2.url()),
    ]))
    .await;
    // both HEALTHY; adhoc-2 dies and the 60 s poll interval has not noticed yet
    assert_eq!(gw.backend_health("adhoc-2").await, "HEALTHY");
    a2.stop().await;
    for _ in 0..10 {
        let (status, q) = gw.submit("SELECT 1", &[]).await;
        assert_eq!(status, StatusCode::OK, "{q}");
        assert_eq!(owner(&gw.drain(&q).await.0), "adhoc-1");
    }
    gw.stop().await;
}
