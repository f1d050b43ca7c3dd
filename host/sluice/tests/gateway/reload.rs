//! Reload without restart: `POST /api/v1/reload` re-reads the file and applies routing, tokens,
//! health, the backends seed and changed filter slots at once; a broken file (bad YAML, a module
//! that does not load) changes nothing and shows in the status and the metrics.
use http::{Method, StatusCode};
use serde_json::Value;

use crate::admin::{ADMIN, VIEWER};
use crate::fleet::PATIENCE;
use sluice_testkit::*;

const NEW_ADMIN: &str = "a-second-admin-token-0123456789";

/// The configuration text: two clusters (and `more_backends`), the two tokens (and
/// `more_tokens`), `tail` appended.
fn text(adhoc: &str, etl: &str, more_backends: &str, more_tokens: &str, tail: &str) -> String {
    format!(
        "listen: 127.0.0.1:0\n\
         admin:\n  listen: 127.0.0.1:0\n  tokens:\n    - {{ token: {ADMIN}, role: admin }}\n    - {{ token: {VIEWER}, role: viewer }}\n{more_tokens}\
         store: {{ url: '' }}\n\
         health: {{ interval_ms: 50, stats: ui_api }}\n\
         log: {{ level: warn }}\n\
         backends:\n  - {{ name: adhoc-1, url: '{adhoc}', group: adhoc }}\n  - {{ name: etl-1, url: '{etl}', group: etl }}\n{more_backends}\
         {tail}"
    )
}

async fn reload(gw: &Gw, token: &str) -> (StatusCode, Value) {
    gw.admin_as(
        Method::POST,
        "/api/v1/reload",
        Some(token),
        Default::default(),
    )
    .await
}

async fn lands(gw: &Gw, group: Option<&str>) -> (StatusCode, String) {
    let headers: Vec<(&str, &str)> = group
        .map(|g| ("X-Trino-Routing-Group", g))
        .into_iter()
        .collect();
    let (status, q) = gw.submit("SELECT 1", &headers).await;
    if status != StatusCode::OK {
        return (status, q.to_string());
    }
    (status, owner(&gw.drain(&q).await.0))
}

fn rules(group: &str) -> String {
    format!("routing:\n  chain:\n    - slot: rules\n      module: builtin:routing-rules\n      config: {{ default_group: {group}, rules: [] }}\n")
}

#[tokio::test]
async fn a_reload_applies_routing_tokens_backends_and_filters_or_nothing() {
    let (a, e, b) = (
        cluster("adhoc-1").await,
        cluster("etl-1").await,
        cluster("adhoc-2").await,
    );
    let dir = temp_sqlite("reload");
    let path = dir.dir.join("sluice.yaml");
    std::fs::write(&path, text(&a.url(), &e.url(), "", "", &rules("adhoc"))).unwrap();
    let gw = Gw::start_file(&path).await;
    assert_eq!(lands(&gw, None).await.1, "adhoc-1");
    assert_eq!(lands(&gw, Some("nosuch")).await.1, "adhoc-1");

    // strict groups, a new token, a third backend, the filter sends to etl: all applied at once
    let more_backends = format!(
        "  - {{ name: adhoc-2, url: '{}', group: adhoc }}\n",
        b.url()
    );
    let more_tokens = format!("    - {{ token: {NEW_ADMIN}, role: admin }}\n");
    let tail = format!("{}  strict_groups: true\n", rules("etl"));
    let good = text(&a.url(), &e.url(), &more_backends, &more_tokens, &tail);
    std::fs::write(&path, &good).unwrap();
    let (status, report) = reload(&gw, ADMIN).await;
    assert_eq!(status, StatusCode::OK, "{report}");
    let applied: Vec<&str> = report["applied"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap())
        .collect();
    for part in ["routing", "admin.tokens", "backends", "routing.chain.rules"] {
        assert!(applied.contains(&part), "{part} not in {report}");
    }
    assert_eq!(lands(&gw, None).await.1, "etl-1");
    assert_eq!(lands(&gw, Some("nosuch")).await.0, StatusCode::BAD_REQUEST);
    gw.await_health("adhoc-2", "HEALTHY", PATIENCE).await;
    let (status, _) = reload(&gw, NEW_ADMIN).await;
    assert_eq!(status, StatusCode::OK, "the new token is accepted");

    // broken YAML: refused with its line, nothing changes, status and metrics say so
    std::fs::write(&path, format!("{good}cache: [\n")).unwrap();
    let (status, report) = reload(&gw, ADMIN).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{report}");
    assert!(
        report["error"].as_str().unwrap().contains("line"),
        "{report}"
    );
    assert_eq!(lands(&gw, None).await.1, "etl-1");
    let (_, status_body) = gw
        .admin_as(
            Method::GET,
            "/api/v1/status",
            Some(VIEWER),
            Default::default(),
        )
        .await;
    assert_eq!(status_body["config"]["ok"], false, "{status_body}");
    let (_, metrics) = gw.admin(Method::GET, "/metrics").await;
    let metrics = String::from_utf8_lossy(&metrics);
    assert!(
        metrics.contains("sluice_config_last_reload_ok 0"),
        "{metrics}"
    );
    assert!(
        metrics.contains("sluice_config_reloads_total{result=\"failed\"} 1"),
        "{metrics}"
    );

    // a slot whose module does not load: the routing change in the same file is not applied either
    let broken = good
        .replace("strict_groups: true", "strict_groups: false")
        .replace(
            "module: builtin:routing-rules",
            "module: /nonexistent/rules.wasm",
        );
    std::fs::write(&path, broken).unwrap();
    let (status, report) = reload(&gw, ADMIN).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{report}");
    assert!(
        report["error"].as_str().unwrap().contains("rules"),
        "{report}"
    );
    assert_eq!(lands(&gw, Some("nosuch")).await.0, StatusCode::BAD_REQUEST);

    // a setting only a restart changes is named, the rest applies
    std::fs::write(
        &path,
        good.replace("store: { url: '' }", "store: { url: 'sqlite::memory:' }")
            .replace("strict_groups: true", "strict_groups: false"),
    )
    .unwrap();
    let (status, report) = reload(&gw, ADMIN).await;
    assert_eq!(status, StatusCode::OK, "{report}");
    assert_eq!(report["restart_needed"][0], "store", "{report}");
    assert_eq!(lands(&gw, Some("nosuch")).await.1, "etl-1");
    gw.stop().await;
}

#[tokio::test]
async fn a_module_file_rewritten_in_place_is_swapped_by_a_reload() {
    let (a, e) = (cluster("adhoc-1").await, cluster("etl-1").await);
    let dir = temp_sqlite("reload-module");
    let module = dir.dir.join("balance.wasm");
    let builtin = |name| sluice_filters::builtin::bytes(name).unwrap();
    std::fs::write(&module, builtin("query-count")).unwrap();
    let chain = format!(
        "routing:\n  chain:\n    - {{ slot: balance, module: '{}' }}\n",
        module.display()
    );
    let path = dir.dir.join("sluice.yaml");
    std::fs::write(&path, text(&a.url(), &e.url(), "", "", &chain)).unwrap();
    let gw = Gw::start_file(&path).await;
    // the same path, another module: the file changed, so the slot must follow
    std::fs::write(&module, builtin("stochastic")).unwrap();
    let (status, report) = reload(&gw, ADMIN).await;
    assert_eq!(status, StatusCode::OK, "{report}");
    assert!(
        report["applied"]
            .as_array()
            .unwrap()
            .contains(&Value::from("routing.chain.balance")),
        "{report}"
    );
    let (_, filters) = gw
        .admin_as(
            Method::GET,
            "/api/v1/filters",
            Some(VIEWER),
            Default::default(),
        )
        .await;
    let sha = sluice_filters::engine::sha256(builtin("stochastic"));
    assert_eq!(filters[0]["sha256"], sha.as_str(), "{filters}");
    // and a reload of an unchanged file swaps nothing
    let (_, report) = reload(&gw, ADMIN).await;
    assert_eq!(report["applied"], serde_json::json!([]), "{report}");
    gw.stop().await;
}
