//! The admin API: token roles, and swapping a filter at runtime through the upload pipeline.
use bytes::Bytes;
use http::{Method, StatusCode};
use serde_json::Value;
use sluice_config::{Role, TokenConfig};

use sluice_testkit::*;

pub const ADMIN: &str = "admin-token-0123456789abcdef";
pub const VIEWER: &str = "viewer-token-0123456789";
const HOSTILE: &str = sluice_testkit::HOSTILE_WASM;

pub fn with_tokens(mut c: sluice_config::Config) -> sluice_config::Config {
    use sha2::Digest;
    c.admin.tokens = vec![
        TokenConfig {
            token: Some(ADMIN.into()),
            token_sha256: None,
            role: Role::Admin,
        },
        TokenConfig {
            token: None,
            token_sha256: Some(hex::encode(sha2::Sha256::digest(VIEWER))),
            role: Role::Viewer,
        },
    ];
    c
}

async fn slots(gw: &Gw) -> Vec<Value> {
    let (status, v) = gw
        .admin_as(Method::GET, "/api/v1/filters", Some(VIEWER), Bytes::new())
        .await;
    assert_eq!(status, StatusCode::OK);
    v.as_array().unwrap().clone()
}

#[tokio::test]
async fn tokens_decide_who_reads_and_who_changes() {
    let a = cluster("adhoc-1").await;
    let gw = Gw::start(with_tokens(config(&[("adhoc-1", "adhoc", &a.url())]))).await;
    for path in ["/healthz", "/readyz", "/metrics"] {
        assert_eq!(
            gw.admin(Method::GET, path).await.0,
            StatusCode::OK,
            "{path} stays open"
        );
    }
    let get = |token| gw.admin_as(Method::GET, "/api/v1/filters", token, Bytes::new());
    assert_eq!(get(None).await.0, StatusCode::UNAUTHORIZED);
    assert_eq!(get(Some("wrong-token")).await.0, StatusCode::UNAUTHORIZED);
    assert_eq!(get(Some(VIEWER)).await.0, StatusCode::OK);
    assert_eq!(get(Some(ADMIN)).await.0, StatusCode::OK);
    let put = |token| {
        gw.admin_as(
            Method::PUT,
            "/api/v1/filters/query-count",
            token,
            Bytes::from_static(b"x"),
        )
    };
    assert_eq!(put(None).await.0, StatusCode::UNAUTHORIZED);
    assert_eq!(put(Some(VIEWER)).await.0, StatusCode::FORBIDDEN);
    gw.stop().await;

    // no tokens configured: reads are open, changes refused
    let gw = Gw::start(config(&[("adhoc-1", "adhoc", &a.url())])).await;
    assert_eq!(
        gw.admin_as(Method::GET, "/api/v1/filters", None, Bytes::new())
            .await
            .0,
        StatusCode::OK
    );
    let (status, body) = gw
        .admin_as(
            Method::PUT,
            "/api/v1/filters/query-count",
            Some(ADMIN),
            Bytes::new(),
        )
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{body}");
    gw.stop().await;
}

#[tokio::test]
async fn bad_uploads_name_the_failed_step_and_leave_the_running_version() {
    let a = cluster("adhoc-1").await;
    let gw = Gw::start(with_tokens(config(&[("adhoc-1", "adhoc", &a.url())]))).await;
    let original = slots(&gw).await[0]["sha256"].clone();
    let hostile = Bytes::from(std::fs::read(HOSTILE).unwrap());
    let cases = [
        ("", Bytes::from_static(b"definitely not wasm"), "compile"),
        ("", Bytes::from_static(b"\0asm\x01\0\0\0"), "compile"),
        ("", Bytes::from_static(b"\0asm\x0d\0\x01\0"), "link"),
        ("?config=reject-init", hostile.clone(), "init"),
        ("?config=trap", hostile.clone(), "self-test"),
        ("?config=spin", hostile.clone(), "self-test"),
        ("?config=%7Bbroken", hostile.clone(), "config"),
    ];
    for (query, bytes, step) in cases {
        let path = format!("/api/v1/filters/query-count{query}");
        let (status, body) = gw.admin_as(Method::PUT, &path, Some(ADMIN), bytes).await;
        assert_ne!(status, StatusCode::OK, "{step}: {body}");
        assert_eq!(body["step"], step, "{body}");
        assert_eq!(
            slots(&gw).await[0]["sha256"],
            original,
            "{step}: the old module stays active"
        );
        let (status, q) = gw.submit("SELECT 1", &[]).await;
        assert_eq!(status, StatusCode::OK, "{step}: the gateway keeps serving");
        assert_eq!(owner(&gw.drain(&q).await.0), "adhoc-1");
    }
    gw.stop().await;
}

#[tokio::test]
async fn an_accepted_upload_is_live_for_the_next_query() {
    let (a1, a2) = (cluster("adhoc-1").await, cluster("adhoc-2").await);
    let gw = Gw::start(with_tokens(config(&[
        ("adhoc-1", "adhoc", &a1.url()),
        ("adhoc-2", "adhoc", &a2.url()),
    ])))
    .await;
    let before = slots(&gw).await[0]["sha256"].as_str().unwrap().to_string();
    // a rules filter that sends everything to a group name no backend has: every query rejected
    // with a clear error proves the new module decides
    let rules = sluice_filters::builtin::bytes("routing-rules").unwrap();
    let config = "%7Bdefault_group%3A%20nosuch%2C%20rules%3A%20%5B%5D%7D"; // {default_group: nosuch, rules: []}
    let (status, body) = gw
        .admin_as(
            Method::PUT,
            &format!("/api/v1/filters/query-count?config={config}"),
            Some(ADMIN),
            Bytes::from_static(rules),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["previous_sha256"], before);
    let now = slots(&gw).await;
    assert_eq!(now.len(), 1);
    assert_ne!(now[0]["sha256"], before);
    // the filter names a group that does not exist: counted as an invalid decision, native fallback
    let (status, q) = gw.submit("SELECT 1", &[]).await;
    assert_eq!(status, StatusCode::OK);
    gw.drain(&q).await;
    assert_eq!(slots(&gw).await[0]["stats"]["invalid_decisions"], 1);

    // put query-count back, then a new slot name appends a slot after it
    let qc = sluice_filters::builtin::bytes("query-count").unwrap();
    let (status, _) = gw
        .admin_as(
            Method::PUT,
            "/api/v1/filters/query-count",
            Some(ADMIN),
            Bytes::from_static(qc),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    let hostile = Bytes::from(std::fs::read(HOSTILE).unwrap());
    let (status, body) = gw
        .admin_as(
            Method::PUT,
            "/api/v1/filters/gate?config=echo-user",
            Some(ADMIN),
            hostile,
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(slots(&gw).await.len(), 2);
    // query-count answers route-to, which ends the chain: the appended gate is not reached
    let (status, q) = gw
        .submit("SELECT 1", &[("X-Trino-User", "reject-me")])
        .await;
    assert_eq!(status, StatusCode::OK);
    gw.drain(&q).await;
    let gate = &slots(&gw).await[1];
    assert_eq!(
        gate["stats"]["calls"], 1,
        "only its self-test call at upload: {gate}"
    );
    gw.stop().await;
}

#[tokio::test]
async fn accepted_versions_are_stored_and_can_be_rolled_back_or_activated() {
    let tmp = temp_sqlite("versions");
    let store_url = tmp.url.clone();
    let a = cluster("adhoc-1").await;
    let mut cfg = with_tokens(config(&[("adhoc-1", "adhoc", &a.url())]));
    cfg.store.url = store_url.clone();
    let gw = Gw::start(cfg).await;
    wait_drained(&gw).await; // the store is up
    let (s1, v1) = put_builtin(&gw, "stochastic").await;
    assert_eq!(s1, StatusCode::OK, "{v1}");
    let (s2, v2) = put_builtin(&gw, "routing-rules").await;
    assert_eq!(s2, StatusCode::OK, "{v2}");
    assert_eq!(
        (v1["version"].as_i64(), v2["version"].as_i64()),
        (Some(1), Some(2))
    );
    let (_, versions) = gw
        .admin_as(
            Method::GET,
            "/api/v1/filters/query-count/versions",
            Some(VIEWER),
            Bytes::new(),
        )
        .await;
    let active: Vec<bool> = versions
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v["active"].as_bool().unwrap())
        .collect();
    assert_eq!(active, vec![false, true]);

    let (status, body) = post(&gw, "/api/v1/filters/query-count/rollback", ADMIN).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["sha256"], v1["sha256"]);
    assert_eq!(slots(&gw).await[0]["sha256"], v1["sha256"]);
    let (status, _) = post(&gw, "/api/v1/filters/query-count/rollback", ADMIN).await;
    assert_eq!(status, StatusCode::NOT_FOUND, "nothing before version 1");

    let (status, body) = post(&gw, "/api/v1/filters/query-count/activate/2", ADMIN).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(slots(&gw).await[0]["sha256"], v2["sha256"]);
    assert_eq!(slots(&gw).await[0]["version"], 2);
    let (status, _) = post(&gw, "/api/v1/filters/query-count/activate/99", ADMIN).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (status, _) = post(&gw, "/api/v1/filters/query-count/rollback", VIEWER).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    let (status, q) = gw.submit("SELECT 1", &[]).await;
    assert_eq!(status, StatusCode::OK);
    gw.drain(&q).await;
    gw.stop().await;
}

async fn put_builtin(gw: &Gw, name: &str) -> (StatusCode, Value) {
    let bytes = Bytes::from_static(sluice_filters::builtin::bytes(name).unwrap());
    let config = if name == "routing-rules" {
        "?config=%7Brules%3A%20%5B%5D%7D" // {rules: []}
    } else {
        ""
    };
    let path = format!("/api/v1/filters/query-count{config}");
    gw.admin_as(Method::PUT, &path, Some(ADMIN), bytes).await
}

#[tokio::test]
async fn an_uploaded_version_survives_a_restart() {
    let tmp = temp_sqlite("restart");
    let store_url = tmp.url.clone();
    let a = cluster("adhoc-1").await;
    let mut cfg = with_tokens(config(&[("adhoc-1", "adhoc", &a.url())]));
    cfg.store.url = store_url.clone();
    let gw = Gw::start(cfg.clone()).await;
    let mut uploaded = Value::Null;
    for _ in 0..300 {
        let (status, body) = put_builtin(&gw, "stochastic").await;
        if status == StatusCode::OK {
            uploaded = body;
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(10)).await; // the store is starting
    }
    assert_eq!(uploaded["version"], 1, "{uploaded}");
    gw.stop().await;

    let gw = Gw::start(cfg).await;
    let mut running = Value::Null;
    for _ in 0..300 {
        running = slots(&gw).await[0].clone();
        if running["sha256"] == uploaded["sha256"] {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    assert_eq!(running["sha256"], uploaded["sha256"], "{running}");
    assert_eq!(running["version"], 1);
    gw.stop().await;
}

/// `POST` an admin action with a token.
async fn post(gw: &Gw, path: &str, token: &str) -> (StatusCode, Value) {
    gw.admin_as(Method::POST, path, Some(token), Bytes::new())
        .await
}
