use bytes::Bytes;
use http::{Method, StatusCode};
use sluice_testkit::FakeOptions;

use sluice_testkit::*;

#[tokio::test]
async fn a_query_returns_every_page_through_the_gateway() {
    // follow-ups over the relay (the default) and over hyper's client alike
    for relay in [true, false] {
        let a = cluster("adhoc-1").await;
        let mut c = config(&[("adhoc-1", "adhoc", &a.url())]);
        c.proxy.relay = relay;
        let gw = Gw::start(c).await;
        let (status, first) = gw.submit("SELECT n FROM t -- fake:pages=5", &[]).await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(first["stats"]["state"], "QUEUED");
        let (rows, last) = gw.drain(&first).await;
        assert_eq!(rows.len(), 10, "5 pages of 2 rows (relay: {relay})");
        assert_eq!(last["stats"]["state"], "FINISHED");
        assert_eq!(owner(&rows), "adhoc-1");
        assert_eq!(a.unknown_query_requests(), 0);
        gw.stop().await;
    }
}

#[tokio::test]
async fn forwarded_headers_describe_how_the_client_reached_sluice() {
    let a = cluster("adhoc-1").await;
    let gw = Gw::start(config(&[("adhoc-1", "adhoc", &a.url())])).await;
    let (status, first) = gw
        .submit(
            "SELECT 1",
            &[
                ("Connection", "keep-alive, x-secret"),
                ("X-Secret", "hop"),
                ("X-Forwarded-Host", "evil.example"),
            ],
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    let seen = a.last_forwarded();
    let port = gw.gateway.proxy_addr.port().to_string();
    assert_eq!(seen["proto"], "http");
    assert_eq!(
        seen["host"], "127.0.0.1",
        "untrusted X-Forwarded-Host is replaced"
    );
    assert_eq!(seen["port"], port.as_str());
    assert_eq!(seen["for"], "127.0.0.1");
    assert_eq!(
        seen["connection"],
        serde_json::Value::Null,
        "hop-by-hop headers are not forwarded"
    );
    let next = first["nextUri"].as_str().unwrap();
    assert!(next.starts_with(&gw.url("/v1/statement/queued/")));
    // a follow-up (over the relay) gets the same hygiene
    let (status, _) = gw
        .call(
            Method::GET,
            next,
            &[
                ("Connection", "x-secret"),
                ("X-Secret", "hop"),
                ("X-Forwarded-For", "6.6.6.6"),
            ],
            "",
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    let seen = a.last_forwarded();
    assert_eq!(
        seen["for"], "127.0.0.1",
        "a forged X-Forwarded-For is replaced"
    );
    assert_eq!(seen["host"], "127.0.0.1");
    assert_eq!(seen["port"], port.as_str());
    assert_eq!(seen["connection"], serde_json::Value::Null);
    gw.stop().await;
}

#[tokio::test]
async fn next_uri_is_rewritten_for_backends_that_ignore_forwarded_headers() {
    let a = cluster_with(FakeOptions {
        name: "old".into(),
        honor_forwarded: false,
        ..Default::default()
    })
    .await;
    let mut c = config(&[("old", "adhoc", &a.url())]);
    c.backends[0].rewrite_next_uri = true;
    let gw = Gw::start(c).await;
    let (_, first) = gw.submit("SELECT 1", &[]).await;
    assert!(first["infoUri"]
        .as_str()
        .unwrap()
        .starts_with(&gw.url("/ui/query.html?")));
    // drain() asserts that every nextUri points at the gateway, page after page
    let (rows, _) = gw.drain(&first).await;
    assert_eq!(rows.len(), 6);
    gw.stop().await;

    // and without the rewrite, the client would be sent straight to the backend
    let mut c = config(&[("old", "adhoc", &a.url())]);
    c.backends[0].rewrite_next_uri = false;
    let gw = Gw::start(c).await;
    let (_, first) = gw.submit("SELECT 1", &[]).await;
    assert!(first["nextUri"].as_str().unwrap().starts_with(&a.url()));
    gw.stop().await;
}

#[tokio::test]
async fn paths_outside_the_trino_api_are_404_and_info_is_forwarded() {
    let a = cluster("adhoc-1").await;
    let gw = Gw::start(config(&[("adhoc-1", "adhoc", &a.url())])).await;
    let (status, body) = gw.call(Method::GET, "/admin/secrets", &[], "").await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(json(&body)["error"]["errorName"], "NOT_FOUND");
    let (status, body) = gw.call(Method::GET, "/v1/info", &[], "").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(json(&body)["name"], "adhoc-1");
    let (status, _) = gw.call(Method::GET, "/ui/", &[], "").await;
    assert_eq!(status, StatusCode::OK);
    gw.stop().await;
}

#[tokio::test]
async fn oversized_statements_are_refused_before_routing() {
    let a = cluster("adhoc-1").await;
    let mut c = config(&[("adhoc-1", "adhoc", &a.url())]);
    c.proxy.max_statement_bytes = 1024;
    let gw = Gw::start(c).await;
    let (status, body) = gw
        .call(
            Method::POST,
            "/v1/statement",
            &[("X-Trino-User", "t")],
            &"x".repeat(2000),
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(json(&body)["error"]["message"]
        .as_str()
        .unwrap()
        .contains("max_statement_bytes"));
    assert_eq!(a.queries_created(), 0);
    gw.stop().await;
}

#[tokio::test]
async fn a_backend_error_answer_is_passed_through() {
    let a = cluster("adhoc-1").await;
    let gw = Gw::start(config(&[("adhoc-1", "adhoc", &a.url())])).await;
    let (status, first) = gw.submit("SELECT fake:fail", &[]).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(first["error"]["errorName"], "GENERIC_USER_ERROR");
    gw.stop().await;
}

#[tokio::test]
async fn unreachable_backend_is_a_fast_502_not_a_hang() {
    let a = cluster("adhoc-1").await;
    let gw = Gw::start(config(&[("adhoc-1", "adhoc", &a.url())])).await;
    let (_, first) = gw.submit("SELECT 1", &[]).await;
    a.stop().await; // the owner of a running query goes away
    let next = first["nextUri"].as_str().unwrap();
    let (status, body) = gw.call(Method::GET, next, &[], "").await;
    assert_eq!(
        status,
        StatusCode::BAD_GATEWAY,
        "{}",
        String::from_utf8_lossy(&body)
    );
    assert_eq!(json(&body)["error"]["errorType"], "EXTERNAL");
    gw.stop().await;
}

#[tokio::test]
async fn a_slow_backend_hits_the_response_timeout() {
    let a = cluster_with(FakeOptions {
        name: "slow".into(),
        ..Default::default()
    })
    .await;
    let mut c = config(&[("slow", "adhoc", &a.url())]);
    c.proxy.response_timeout_ms = 300;
    let gw = Gw::start(c).await;
    let (_, first) = gw.submit("SELECT 1 fake:delay_ms=2000", &[]).await;
    let (status, body) = gw
        .call(Method::GET, first["nextUri"].as_str().unwrap(), &[], "")
        .await;
    assert_eq!(
        status,
        StatusCode::GATEWAY_TIMEOUT,
        "{}",
        String::from_utf8_lossy(&body)
    );
    // 504, not the 200 the backend sends after 2 s: the 300 ms limit fired
    gw.stop().await;
}

#[tokio::test]
async fn the_fake_coordinator_forgets_the_oldest_unpolled_queries_beyond_its_cap() {
    let fake = cluster_with(FakeOptions {
        name: "capped".into(),
        pages: 100,
        queued_polls: 0,
        max_queries: 3,
        ..FakeOptions::default()
    })
    .await;
    let client = sluice_http::client::build(&Default::default());
    let post = || {
        let req = http::Request::post(format!("{}/v1/statement", fake.url()))
            .header("X-Trino-User", "t")
            .body(sluice_http::full_body(Bytes::from_static(b"SELECT 1")))
            .unwrap();
        send(&client, req)
    };
    let get = |uri: String| {
        send(
            &client,
            http::Request::get(uri)
                .header("X-Trino-User", "t")
                .body(sluice_http::empty_body())
                .unwrap(),
        )
    };
    let mut next = Vec::new();
    for _ in 0..2 {
        next.push(
            json(&post().await.1)["nextUri"]
                .as_str()
                .unwrap()
                .to_string(),
        );
    }
    assert_eq!(
        get(next[0].clone()).await.0,
        StatusCode::OK,
        "the first one is polled"
    );
    for _ in 0..3 {
        next.push(
            json(&post().await.1)["nextUri"]
                .as_str()
                .unwrap()
                .to_string(),
        );
    }
    // five created, three kept: the polled first one stays, the unpolled second is gone first
    assert_eq!(get(next[0].clone()).await.0, StatusCode::OK);
    assert_eq!(get(next[1].clone()).await.0, StatusCode::NOT_FOUND);
    assert_eq!(get(next[4].clone()).await.0, StatusCode::OK);
}

#[tokio::test]
async fn a_client_that_half_closes_after_its_request_still_gets_the_answer() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let a = cluster("adhoc-1").await;
    let gw = Gw::start(config(&[("adhoc-1", "adhoc", &a.url())])).await;
    for request in [
        "POST /v1/statement HTTP/1.1\r\nHost: x\r\nX-Trino-User: u\r\nContent-Length: 8\r\nConnection: close\r\n\r\nSELECT 1",
        "GET /v1/info HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
    ] {
        let mut s = tokio::net::TcpStream::connect(gw.gateway.proxy_addr).await.unwrap();
        s.write_all(request.as_bytes()).await.unwrap();
        s.shutdown().await.unwrap(); // FIN: nothing more will be sent
        let mut answer = String::new();
        tokio::time::timeout(std::time::Duration::from_secs(10), s.read_to_string(&mut answer))
            .await
            .expect("an answer, not a hang")
            .unwrap();
        assert!(answer.starts_with("HTTP/1.1 200"), "{request}: {answer}");
    }
    gw.stop().await;
}

#[tokio::test]
async fn spooled_segments_reach_their_cluster_from_an_instance_that_never_saw_the_query() {
    let (c1, c2) = (cluster("c1").await, cluster("c2").await);
    let mut c = config(&[("c1", "adhoc", &c1.url()), ("c2", "adhoc", &c2.url())]);
    c.cache.search.enabled = false; // no state and no search: only the URI can say where
    let spooling = [
        ("X-Trino-User", "u"),
        ("X-Trino-Query-Data-Encoding", "json"),
    ];
    let a = Gw::start(c.clone()).await;
    let (status, first) = a.submit("SELECT 1", &spooling[1..]).await;
    assert_eq!(status, StatusCode::OK, "{first}");
    // follow pages until one names a spooled segment
    let mut page = first.clone();
    let segment = loop {
        let next = page["nextUri"]
            .as_str()
            .expect("a spooled page before the end")
            .to_string();
        let (_, body) = a.call(Method::GET, &next, &spooling, "").await;
        page = json(&body);
        if let Some(s) = page["data"]["segments"].as_array().and_then(|s| s.first()) {
            if s["type"] == "spooled" {
                break s.clone();
            }
        }
    };
    let uri = segment["uri"].as_str().unwrap();
    assert!(
        uri.contains("?queryId=") && uri.contains("&spooledBackend="),
        "{uri}"
    );
    let owner = if uri.contains("spooledBackend=c1") {
        &c1
    } else {
        &c2
    };
    a.stop().await;

    // another instance, which never saw the query, sends the download and the ack to the owner
    let b = Gw::start(c).await;
    let relative = |u: &str| u[u.find("/v1/spooled/").unwrap()..].to_string();
    for u in [uri, segment["ackUri"].as_str().unwrap()] {
        let (status, body) = b
            .call(Method::GET, &b.url(&relative(u)), &spooling, "")
            .await;
        assert_eq!(
            status,
            StatusCode::OK,
            "{u}: {}",
            String::from_utf8_lossy(&body)
        );
    }
    assert_eq!(owner.segments_downloaded(), 1);
    assert_eq!(
        c1.unknown_segment_requests() + c2.unknown_segment_requests(),
        0
    );
    b.stop().await;
}
