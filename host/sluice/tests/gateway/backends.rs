//! Backends at runtime: the admin API (add, update, drain, remove), what a drain does to new
//! queries and to follow-ups, the store as the truth after a restart, and fleet propagation.
use http::{Method, StatusCode};
use serde_json::{json, Value};
use sluice_config::Config;

use crate::admin::{with_tokens, ADMIN, VIEWER};
use crate::fleet::{admin, within, PATIENCE};
use sluice_testkit::*;

/// A config over `backends` with admin tokens and health polled every 50 ms (drains end at a
/// poll).
fn fast(backends: &[(&str, &str, &str)]) -> Config {
    let mut c = with_tokens(config(backends));
    c.health.interval_ms = 50;
    c
}

async fn state(gw: &Gw, name: &str) -> Value {
    admin(gw, Method::GET, &format!("/api/v1/backends/{name}"), b"")
        .await
        .1
}

async fn names(gw: &Gw) -> Vec<String> {
    let (_, list) = admin(gw, Method::GET, "/api/v1/backends", b"").await;
    list.as_array()
        .unwrap()
        .iter()
        .map(|b| b["name"].as_str().unwrap().to_string())
        .collect()
}

fn body(v: Value) -> Vec<u8> {
    serde_json::to_vec(&v).unwrap()
}

#[tokio::test]
async fn a_backend_is_added_drained_and_removed_without_failing_a_query() {
    let (blue, green) = (cluster("blue").await, cluster("green").await);
    let gw = Gw::start(fast(&[("blue", "adhoc", &blue.url())])).await;
    // a query running on blue before anything changes
    let (_, running) = gw.submit("SELECT 1", &[]).await;
    assert!(running["nextUri"].is_string(), "{running}");

    // add green: bad input is a 400 naming the field, a taken name 409, no token 401/403
    let green_body = body(json!({"name": "green", "url": green.url(), "group": "adhoc"}));
    let (status, v) = admin(&gw, Method::POST, "/api/v1/backends", &green_body).await;
    assert_eq!(status, StatusCode::CREATED, "{v}");
    assert_eq!(v["state"], "active");
    let (status, v) = admin(&gw, Method::POST, "/api/v1/backends", &green_body).await;
    assert_eq!(status, StatusCode::CONFLICT, "{v}");
    let bad = body(json!({"name": "x", "url": "ftp://nope"}));
    let (status, v) = admin(&gw, Method::POST, "/api/v1/backends", &bad).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(v["error"].as_str().unwrap().starts_with("url:"), "{v}");
    let typo = body(json!({"name": "x", "url": "http://h:1", "colour": "red"}));
    let (status, v) = admin(&gw, Method::POST, "/api/v1/backends", &typo).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(v["error"].as_str().unwrap().contains("colour"), "{v}");
    let (status, _) = gw
        .admin_as(
            Method::POST,
            "/api/v1/backends",
            Some(VIEWER),
            typo.clone().into(),
        )
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    let (status, _) = gw
        .admin_as(
            Method::POST,
            "/api/v1/backends/blue/drain",
            None,
            Default::default(),
        )
        .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    gw.await_health("green", "HEALTHY", PATIENCE).await;

    // drain blue: new queries go to green, blue's query still gets its follow-ups
    let (status, v) = admin(&gw, Method::POST, "/api/v1/backends/blue/drain", b"").await;
    assert_eq!(status, StatusCode::OK, "{v}");
    assert_eq!(v["state"], "draining");
    for _ in 0..5 {
        let (status, q) = gw.submit("SELECT 1", &[]).await;
        assert_eq!(status, StatusCode::OK, "{q}");
        assert_eq!(owner(&gw.drain(&q).await.0), "green");
    }
    // blue still runs its query: it stays draining, and removing it is refused
    assert_eq!(state(&gw, "blue").await["state"], "draining");
    within(PATIENCE, "blue's query counted", || async {
        let s = state(&gw, "blue").await["status"].clone();
        s["running_queries"].as_u64().unwrap() + s["queued_queries"].as_u64().unwrap() == 1
    })
    .await;
    let (status, v) = admin(&gw, Method::DELETE, "/api/v1/backends/blue", b"").await;
    assert_eq!(status, StatusCode::CONFLICT, "{v}");
    assert_eq!(owner(&gw.drain(&running).await.0), "blue");
    within(PATIENCE, "blue reports drained", || async {
        state(&gw, "blue").await["state"] == "drained"
    })
    .await;
    let (status, v) = admin(&gw, Method::DELETE, "/api/v1/backends/blue", b"").await;
    assert_eq!(status, StatusCode::OK, "{v}");
    assert_eq!(names(&gw).await, ["green"]);
    let (status, _) = admin(&gw, Method::GET, "/api/v1/backends/blue", b"").await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (status, _) = admin(&gw, Method::POST, "/api/v1/backends/blue/activate", b"").await;
    assert_eq!(status, StatusCode::NOT_FOUND);

    // update: a field at a time; a running query makes removal need force
    let patch = body(json!({"external_url": "https://green.example", "group": "adhoc"}));
    let (status, v) = admin(&gw, Method::PATCH, "/api/v1/backends/green", &patch).await;
    assert_eq!(status, StatusCode::OK, "{v}");
    assert_eq!(v["external_url"], "https://green.example");
    let (_, q) = gw.submit("SELECT 1", &[]).await;
    within(PATIENCE, "green's query counted", || async {
        let s = state(&gw, "green").await["status"].clone();
        s["running_queries"].as_u64().unwrap() + s["queued_queries"].as_u64().unwrap() == 1
    })
    .await;
    let (status, _) = admin(&gw, Method::DELETE, "/api/v1/backends/green", b"").await;
    assert_eq!(status, StatusCode::CONFLICT);
    let (status, _) = admin(
        &gw,
        Method::DELETE,
        "/api/v1/backends/green?force=true",
        b"",
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    assert!(names(&gw).await.is_empty());
    // with no backend, a new query gets a clear error, not a hang
    let (status, v) = gw.submit("SELECT 1", &[]).await;
    assert!(status.is_server_error(), "{status} {v}");
    drop(q);
    gw.stop().await;
}

#[tokio::test]
async fn trino_gateway_api_same_paths_and_json() {
    let (one, two) = (cluster("trino-1").await, cluster("trino-2").await);
    let mut c = fast(&[("trino-1", "adhoc", &one.url())]);
    c.admin.trino_gateway_api_on_proxy = true;
    let gw = Gw::start(c).await;
    let entity = body(
        json!({"name": "trino-2", "proxyTo": two.url(), "active": true, "routingGroup": "adhoc"}),
    );
    let (status, v) = admin(
        &gw,
        Method::POST,
        "/entity?entityType=GATEWAY_BACKEND",
        &entity,
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{v}");
    // upsert: the same call again changes the group
    let entity = body(
        json!({"name": "trino-2", "proxyTo": two.url(), "active": true, "routingGroup": "etl", "externalUrl": "https://ui-2"}),
    );
    let (status, _) = admin(
        &gw,
        Method::POST,
        "/entity?entityType=GATEWAY_BACKEND",
        &entity,
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    let (_, all) = admin(&gw, Method::GET, "/entity/GATEWAY_BACKEND", b"").await;
    assert_eq!(
        all,
        json!([
            {"name": "trino-1", "proxyTo": one.url(), "active": true, "routingGroup": "adhoc", "externalUrl": one.url()},
            {"name": "trino-2", "proxyTo": two.url(), "active": true, "routingGroup": "etl", "externalUrl": "https://ui-2"},
        ])
    );
    assert_eq!(
        admin(&gw, Method::GET, "/gateway/backend/all", b"").await.1,
        all
    );
    let (status, _) = admin(
        &gw,
        Method::POST,
        "/gateway/backend/deactivate/trino-2",
        b"",
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    let (_, active) = admin(&gw, Method::GET, "/gateway/backend/active", b"").await;
    assert_eq!(active.as_array().unwrap().len(), 1);
    assert_eq!(active[0]["name"], "trino-1");
    // Trino Gateway's deactivation is a drain: it also says when the backend runs nothing
    let st = state(&gw, "trino-2").await["state"].clone();
    assert!(st == "draining" || st == "drained", "{st}");
    let (status, _) = admin(&gw, Method::POST, "/gateway/backend/activate/trino-2", b"").await;
    assert_eq!(status, StatusCode::OK);
    let (status, _) = admin(&gw, Method::POST, "/gateway/backend/activate/nosuch", b"").await;
    assert_eq!(status, StatusCode::NOT_FOUND);

    // modify/update replaces what Trino Gateway knows; modify/delete takes the name as the body
    let update = body(
        json!({"name": "trino-2", "proxyTo": two.url(), "active": false, "routingGroup": "adhoc"}),
    );
    let (status, v) = admin(&gw, Method::POST, "/gateway/backend/modify/update", &update).await;
    assert_eq!(status, StatusCode::OK, "{v}");
    assert_eq!(v["active"], false);
    assert_eq!(v["externalUrl"], two.url());
    let (status, _) = admin(&gw, Method::POST, "/gateway/backend/modify/add", &update).await;
    assert_eq!(status, StatusCode::CONFLICT);
    let (status, _) = admin(
        &gw,
        Method::POST,
        "/gateway/backend/modify/delete",
        b"trino-2",
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    let (status, _) = admin(&gw, Method::POST, "/gateway/backend/modify/add", &update).await;
    assert_eq!(status, StatusCode::OK);

    // the public API: list, one, its state, delete
    let (_, list) = admin(&gw, Method::GET, "/api/public/backends", b"").await;
    assert_eq!(list.as_array().unwrap().len(), 2);
    let (_, one_view) = admin(&gw, Method::GET, "/api/public/backends/trino-1", b"").await;
    assert_eq!(one_view["proxyTo"], one.url());
    let (_, st) = admin(&gw, Method::GET, "/api/public/backends/trino-1/state", b"").await;
    assert_eq!(st["trinoStatus"], "HEALTHY");
    assert_eq!(st["clusterId"], "trino-1");
    let (status, _) = admin(&gw, Method::DELETE, "/api/public/backends/trino-2", b"").await;
    assert_eq!(status, StatusCode::OK);
    let (status, _) = admin(&gw, Method::GET, "/api/public/backends/trino-2", b"").await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (status, v) = admin(
        &gw,
        Method::POST,
        "/entity?entityType=RESOURCE_GROUP",
        b"{}",
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{v}");

    // on the proxy listener too (asked for), with the same tokens
    let (status, b) = gw
        .call(
            Method::GET,
            "/gateway/backend/all",
            &[("authorization", &format!("Bearer {VIEWER}"))],
            "",
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(json(&b).as_array().unwrap().len(), 1);
    let (status, _) = gw
        .call(Method::POST, "/gateway/backend/deactivate/trino-1", &[], "")
        .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    let auth = format!("Bearer {ADMIN}");
    let (status, _) = gw
        .call(
            Method::POST,
            "/gateway/backend/deactivate/trino-1",
            &[("authorization", &auth)],
            "",
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    gw.stop().await;
}

#[tokio::test]
async fn the_store_is_the_truth_after_the_first_start() {
    let (blue, green) = (cluster("blue").await, cluster("green").await);
    let store = temp_sqlite("backends-truth");
    let mut c = fast(&[("blue", "adhoc", &blue.url())]);
    c.store.url = store.url.clone();
    let gw = Gw::start(c.clone()).await;
    assert_eq!(names(&gw).await, ["blue"]);
    let add = body(json!({"name": "green", "url": green.url()}));
    assert_eq!(
        admin(&gw, Method::POST, "/api/v1/backends", &add).await.0,
        StatusCode::CREATED
    );
    assert_eq!(
        admin(&gw, Method::DELETE, "/api/v1/backends/blue", b"")
            .await
            .0,
        StatusCode::OK
    );
    gw.stop().await;
    // the same file again: the store's list wins, and it is what the first health round polls
    let gw = Gw::start(c).await;
    assert_eq!(names(&gw).await, ["green"]);
    assert_eq!(gw.backend_health("green").await, "HEALTHY");
    let (status, q) = gw.submit("SELECT 1", &[]).await;
    assert_eq!(status, StatusCode::OK, "{q}");
    assert_eq!(owner(&gw.drain(&q).await.0), "green");
    gw.stop().await;
}

#[tokio::test]
async fn a_change_on_one_instance_reaches_the_others_by_announcement_or_by_poll() {
    let redis = RedisServer::start().await;
    let (blue, green) = (cluster("blue").await, cluster("green").await);
    let store = temp_sqlite("backends-fleet");
    let mut base = fast(&[("blue", "adhoc", &blue.url())]);
    base.store.url = store.url.clone();
    // a poll too slow to matter: only the announcement can move instance two in time
    base.store.backends_poll_interval_ms = 3_600_000;
    let mut announced = base.clone();
    announced.cache.valkey.enabled = true;
    announced.cache.valkey.url = redis.url();
    let one = Gw::start(announced.clone()).await;
    let two = Gw::start(announced).await;
    // no Valkey: only the poll moves instance three
    let mut polled = base;
    polled.store.backends_poll_interval_ms = 200;
    let three = Gw::start(polled).await;
    within(PATIENCE, "instance two subscribed", || async {
        let (_, s) = admin(&two, Method::GET, "/api/v1/status", b"").await;
        s["backend_sync"]["subscribed"] == true
    })
    .await;

    let add = body(json!({"name": "green", "url": green.url()}));
    assert_eq!(
        admin(&one, Method::POST, "/api/v1/backends", &add).await.0,
        StatusCode::CREATED
    );
    let (status, _) = admin(&one, Method::POST, "/api/v1/backends/blue/drain", b"").await;
    assert_eq!(status, StatusCode::OK);
    for gw in [&two, &three] {
        within(
            PATIENCE,
            "the other instances see green and blue draining",
            || async {
                names(gw).await == ["blue", "green"] && state(gw, "blue").await["draining"] == true
            },
        )
        .await;
        gw.await_health("green", "HEALTHY", PATIENCE).await;
        for _ in 0..3 {
            let (_, q) = gw.submit("SELECT 1", &[]).await;
            assert_eq!(owner(&gw.drain(&q).await.0), "green");
        }
    }
    let (_, s) = admin(&two, Method::GET, "/api/v1/status", b"").await;
    assert!(s["backend_sync"]["received"].as_u64().unwrap() >= 1, "{s}");
    for gw in [one, two, three] {
        gw.stop().await;
    }
}

#[tokio::test]
async fn the_owner_search_still_asks_a_draining_backend() {
    let (blue, green) = (cluster("blue").await, cluster("green").await);
    let gw = Gw::start(fast(&[
        ("blue", "adhoc", &blue.url()),
        ("green", "adhoc", &green.url()),
    ]))
    .await;
    // a query this instance never saw (another instance, or before a restart) runs on blue
    let id = start_query(&gw.client, &blue.url()).await;
    let (status, _) = admin(&gw, Method::POST, "/api/v1/backends/blue/drain", b"").await;
    assert_eq!(status, StatusCode::OK);
    let (status, body) = gw
        .call(
            Method::GET,
            &format!("/v1/query/{id}"),
            &[("X-Trino-User", "test")],
            "",
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{}", String::from_utf8_lossy(&body));
    assert_eq!(json(&body)["queryId"], id.as_str());
    gw.stop().await;
}

#[tokio::test]
async fn a_login_flow_stays_on_its_cluster_through_a_signed_cookie() {
    let (c1, c2) = (cluster("c1").await, cluster("c2").await);
    let mut c = fast(&[("c1", "adhoc", &c1.url()), ("c2", "adhoc", &c2.url())]);
    c.proxy.login_cookie.secret = Some("a-fleet-wide-secret-0123456789".into());
    let gw = Gw::start(c).await;
    let get = |path: &'static str, cookie: Option<String>| {
        let (gw, uri) = (&gw, gw.url(path));
        async move {
            let mut req = http::Request::get(uri);
            if let Some(cookie) = cookie {
                req = req.header("cookie", cookie);
            }
            let resp = gw
                .client
                .request(req.body(sluice_http::empty_body()).unwrap())
                .await
                .unwrap();
            resp.headers()
                .get("set-cookie")
                .map(|v| v.to_str().unwrap().split(';').next().unwrap().to_string())
        }
    };
    // the flow begins: the answer names the cluster that got it
    let cookie = get("/oauth2/token/initiate/abc", None)
        .await
        .expect("a cookie");
    let (first, other) = match c1.login_requests() {
        1 => (&c1, &c2),
        _ => (&c2, &c1),
    };
    assert_eq!((first.login_requests(), other.login_requests()), (1, 0));
    let name = cookie.rsplit('.').next().unwrap().to_string();
    // even deactivated, it finishes the flows it began, and keeps the UI session
    let (status, _) = admin(
        &gw,
        Method::POST,
        &format!("/api/v1/backends/{name}/deactivate"),
        b"",
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    for path in ["/oauth2/callback?code=x", "/ui/login", "/ui/query.html"] {
        assert_eq!(
            get(path, Some(cookie.clone())).await,
            None,
            "no new cookie mid-flow"
        );
    }
    assert_eq!((first.login_requests(), other.login_requests()), (4, 0));
    // no cookie, or a forged one: routed as usual (to the other, active cluster), which sets its own
    let forged = cookie.replace(
        &format!(".{name}"),
        if name == "c1" { ".c2" } else { ".c1" },
    );
    let fresh = get("/oauth2/token/initiate/def", Some(forged))
        .await
        .expect("a new cookie");
    assert!(
        fresh.ends_with(if name == "c1" { ".c2" } else { ".c1" }),
        "{fresh}"
    );
    assert_eq!((first.login_requests(), other.login_requests()), (4, 1));
    gw.stop().await;
}
