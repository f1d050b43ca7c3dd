use http::{Method, StatusCode};

use sluice_testkit::*;

async fn three() -> (Vec<sluice_testkit::FakeTrino>, Gw) {
    let fakes = vec![
        cluster("a-1").await,
        cluster("a-2").await,
        cluster("a-3").await,
    ];
    let urls: Vec<String> = fakes.iter().map(|f| f.url()).collect();
    let gw = Gw::start(config(&[
        ("a-1", "adhoc", &urls[0]),
        ("a-2", "adhoc", &urls[1]),
        ("a-3", "adhoc", &urls[2]),
    ]))
    .await;
    (fakes, gw)
}

#[tokio::test]
async fn every_follow_up_goes_to_the_owner_across_many_queries() {
    let (fakes, gw) = three().await;
    let mut owners = std::collections::BTreeSet::new();
    for _ in 0..30 {
        let (_, first) = gw.submit("SELECT 1", &[]).await;
        let (rows, _) = gw.drain(&first).await;
        owners.insert(owner(&rows));
    }
    assert_eq!(
        owners.len(),
        3,
        "queries spread over all clusters: {owners:?}"
    );
    for f in &fakes {
        assert_eq!(f.unknown_query_requests(), 0, "a follow-up was mis-routed");
    }
    gw.stop().await;
}

#[tokio::test]
async fn query_info_and_ui_forms_reach_the_owner() {
    let (fakes, gw) = three().await;
    let (_, first) = gw.submit("SELECT 1", &[]).await;
    let id = first["id"].as_str().unwrap().to_string();
    for path in [
        format!("/v1/query/{id}"),
        format!("/v1/query/{id}?pretty"),
        format!("/ui/api/query/{id}"),
        format!("/ui/query.html?{id}"),
    ] {
        let (status, body) = gw.call(Method::GET, &path, &[], "").await;
        assert_eq!(
            status,
            StatusCode::OK,
            "{path}: {}",
            String::from_utf8_lossy(&body)
        );
    }
    let (status, _) = gw
        .call(Method::PUT, &format!("/ui/api/query/{id}/killed"), &[], "")
        .await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    assert!(fakes.iter().all(|f| f.unknown_query_requests() == 0));
    gw.stop().await;
}

#[tokio::test]
async fn cancel_goes_to_the_owner() {
    let (fakes, gw) = three().await;
    let (_, first) = gw.submit("SELECT 1 fake:pages=100", &[]).await;
    let next = first["nextUri"].as_str().unwrap();
    let (status, _) = gw.call(Method::DELETE, next, &[], "").await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    let (status, body) = gw.call(Method::GET, next, &[], "").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(json(&body)["error"]["errorName"], "USER_CANCELED");
    assert!(fakes.iter().all(|f| f.unknown_query_requests() == 0));
    gw.stop().await;
}

#[tokio::test]
async fn kill_query_call_is_sent_to_the_cluster_that_owns_the_query() {
    let (fakes, gw) = three().await;
    for _ in 0..6 {
        let (_, first) = gw.submit("SELECT 1 fake:pages=100", &[]).await;
        let id = first["id"].as_str().unwrap();
        let sql = format!(
            "/* stop */ call System.Runtime.Kill_Query(message => 'bye', query_id => '{id}')"
        );
        let (status, answer) = gw.submit(&sql, &[]).await;
        assert_eq!(status, StatusCode::OK);
        assert!(answer.get("error").is_none(), "kill failed: {answer}");
        let (_, body) = gw
            .call(Method::GET, first["nextUri"].as_str().unwrap(), &[], "")
            .await;
        assert_eq!(json(&body)["error"]["errorName"], "USER_CANCELED");
    }
    assert!(
        fakes.iter().all(|f| f.unknown_query_requests() == 0),
        "a kill went to the wrong cluster"
    );
    gw.stop().await;
}

#[tokio::test]
async fn unknown_and_malformed_ids_are_404_and_reach_no_backend() {
    let (fakes, gw) = three().await;
    for path in [
        "/v1/statement/executing/20240101_000000_00001_zzzzz/y/1",
        "/v1/query/20240101_000000_00001_zzzzz",
        "/ui/api/query/20240101_000000_00001_zzzzz/killed",
    ] {
        let (status, body) = gw.call(Method::GET, path, &[], "").await;
        assert_eq!(status, StatusCode::NOT_FOUND, "{path}");
        assert_eq!(json(&body)["error"]["errorName"], "QUERY_NOT_FOUND");
    }
    let (status, _) = gw
        .submit(
            "CALL system.runtime.kill_query('20240101_000000_00001_zzzzz')",
            &[],
        )
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    // not an id at all: not a follow-up, so it is an ordinary UI request, answered by a cluster
    let (status, _) = gw
        .call(Method::GET, "/ui/api/query/myOtherThing", &[], "")
        .await;
    assert_eq!(status, StatusCode::OK);
    assert!(fakes
        .iter()
        .all(|f| f.unknown_query_requests() == 0 && f.queries_created() == 0));
    // one unknown id, four requests: the backend search asked each cluster once, then the
    // negative cache answered
    let probes: Vec<u64> = fakes.iter().map(|f| f.search_probes()).collect();
    assert_eq!(probes, vec![1, 1, 1]);
    gw.stop().await;
}
