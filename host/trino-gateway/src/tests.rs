//! Trino Gateway files as its documentation writes them, read as Sluice's configuration.
use std::path::{Path, PathBuf};

use sluice_config::Config;

use crate::{convert, load};

fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
    let p = dir.join(name);
    std::fs::write(&p, text).unwrap();
    p
}

fn dir(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("sluice-tg-{name}-{}", std::process::id()));
    std::fs::create_dir_all(&d).unwrap();
    d
}

const RULES: &str = r#"---
name: "airflow"
description: "if query from airflow, route to etl group"
condition: 'request.getHeader("X-Trino-Source") == "airflow"'
actions:
  - 'result.put("routingGroup", "etl")'
---
name: "negated"
condition: '!(request.getHeader("X-Trino-Source") == "x")'
actions:
  - 'result.put("routingGroup", "etl")'
"#;

const CONFIG: &str = r#"
requestRouter:
  port: 9080
  name: testTrinoRouter
  historySize: 1000
server:
  applicationConnectors:
    - type: http
      port: 9081
  adminConnectors:
    - type: http
      port: 9082
dataStore:
  jdbcUrl: jdbc:postgresql://localhost:5432/gateway
  user: postgres
  password: ${ENV:TG_DB_PASSWORD}
  driver: org.postgresql.Driver
clusterStatsConfiguration:
  monitorType: UI_API
monitor:
  taskDelaySeconds: 5
  retries: 2
backendState:
  username: gateway
  ssl: false
routingRules:
  rulesEngineEnabled: true
  rulesConfigPath: rules.yml
routing:
  defaultRoutingGroup: adhoc
modules:
  - io.trino.gateway.ha.module.HaGatewayProviderModule
  - io.trino.gateway.ha.module.ClusterStateListenerModule
  - io.trino.gateway.ha.module.QueryCountBasedRouterProvider
managedApps:
  - io.trino.gateway.ha.GatewayManagedApp
valkeyConfiguration:
  enabled: true
  host: ${VALKEY_HOST:localhost}
  port: 6379
  password: ${VALKEY_PASSWORD}
  maxTotal: 20
  timeoutMs: 2000
  cacheTtlSeconds: 1800
  healthCheckIntervalMs: 30000
somethingElse: 1
"#;

fn env(v: &str) -> Option<String> {
    match v {
        "TG_DB_PASSWORD" => Some("s3cr/et".into()),
        "VALKEY_PASSWORD" => Some("vpass".into()),
        _ => None,
    }
}

#[test]
fn the_documented_file_runs_as_sluice_and_every_other_key_is_named() {
    let d = dir("load");
    write(&d, "rules.yml", RULES);
    let path = write(&d, "config.yaml", CONFIG);
    let (c, notes) = load(&path, &env, &|_| Ok(())).unwrap();
    assert_eq!(c.listen.port(), 9080);
    assert_eq!(c.admin.listen.to_string(), "127.0.0.1:9081");
    let tg = c.store.trino_gateway.as_ref().unwrap();
    assert_eq!(
        tg.url,
        "postgres://postgres:s3cr%2Fet@localhost:5432/gateway"
    );
    assert_eq!(
        c.store.url,
        "postgres://postgres:s3cr%2Fet@localhost:5432/gateway?options=-c%20search_path%3Dsluice"
    );
    assert_eq!(c.health.stats.as_str(), "ui_api");
    assert_eq!(c.health.interval_ms, 5000);
    assert_eq!(c.health.user, "gateway");
    let slots: Vec<&str> = c.routing.chain.iter().map(|s| s.module.as_str()).collect();
    assert_eq!(slots, ["builtin:routing-rules", "builtin:query-count"]);
    assert!(c.cache.valkey.enabled);
    assert_eq!(c.cache.valkey.url, "redis://localhost:6379/0");
    assert_eq!(c.cache.valkey.password.as_deref(), Some("vpass"));
    assert_eq!(
        (c.cache.valkey.ttl_seconds, c.cache.valkey.timeout_ms),
        (1800, 2000)
    );
    assert_eq!(c.cache.valkey.health_check_interval_ms, 30000);
    let keys: Vec<&str> = notes.iter().map(|n| n.key.as_str()).collect();
    for k in [
        "requestRouter.historySize",
        "server.adminConnectors",
        "monitor.retries",
        "backendState.ssl",
        "managedApps",
        "modules: HaGatewayProviderModule",
        "valkeyConfiguration.maxTotal",
        "somethingElse",
    ] {
        assert!(keys.contains(&k), "{k} not named in {keys:?}");
    }
    assert!(
        notes.iter().any(|n| n.instead.contains("negated")),
        "an untranslatable rule is named: {notes:?}"
    );
    assert!(
        !keys.contains(&"dataStore.password") && !keys.contains(&"routingRules.rulesConfigPath")
    );
}

#[test]
fn the_converted_file_keeps_references_and_writes_no_secret() {
    let d = dir("convert");
    write(&d, "rules.yml", RULES);
    let literal = CONFIG.replace("${ENV:TG_DB_PASSWORD}", "literal-pw");
    let path = write(&d, "config.yaml", &literal);
    let (text, notes) = convert(&path, &env, &|_| Ok(())).unwrap();
    assert!(
        !text.contains("literal-pw") && !text.contains("vpass"),
        "{text}"
    );
    assert!(text.contains("${SLUICE_TG_DB_PASSWORD}"), "{text}");
    assert!(text.contains("password: ${VALKEY_PASSWORD}"), "{text}");
    assert!(notes.iter().any(|n| n.key == "dataStore.password"));
    // and it loads as Sluice's own file
    let out = write(&d, "sluice.yaml", &text);
    let lookup = |v: &str| Some(format!("{v}-value"));
    let c = Config::from_yaml(&std::fs::read_to_string(&out).unwrap(), &lookup).unwrap();
    assert_eq!(c.listen.port(), 9080);
    assert_eq!(
        c.cache.valkey.password.as_deref(),
        Some("VALKEY_PASSWORD-value")
    );
}

#[test]
fn broken_files_are_refused_with_the_key() {
    let d = dir("broken");
    for (text, expected) in [
        (
            "dataStore: {jdbcUrl: 'jdbc:oracle:thin:@h:1/x'}",
            "dataStore.jdbcUrl",
        ),
        (
            "clusterStatsConfiguration: {monitorType: FOO}",
            "monitorType",
        ),
        (
            "routingRules: {rulesEngineEnabled: true, rulesConfigPath: nowhere.yml}",
            "rulesConfigPath",
        ),
        (
            "routingRules: {rulesEngineEnabled: true, rulesType: EXTERNAL}",
            "urlPath",
        ),
        ("valkeyConfiguration: {port: ${ENV:NOT_SET}}", "NOT_SET"),
        ("requestRouter: {port: [1]}", "requestRouter.port"),
        ("- a list", "mapping"),
    ] {
        let path = write(&d, "bad.yaml", text);
        let e = load(&path, &env, &|_| Ok(())).err().unwrap().to_string();
        assert!(e.contains(expected), "{text}: {e}");
    }
}

#[test]
fn airlift_files_and_the_external_service() {
    let d = dir("airlift");
    let path = write(
        &d,
        "config.yaml",
        "serverConfig:\n  node.environment: test\n  http-server.http.port: 8080\n\
         routingRules:\n  rulesEngineEnabled: true\n  rulesType: EXTERNAL\n  rulesExternalConfiguration:\n    urlPath: http://router:5000/route\n    excludeHeaders: [Accept-Encoding]\n\
         distributedCacheConfiguration:\n  enabled: false\n  cacheTtl: 30m\n",
    );
    let (c, _) = load(&path, &env, &|_| Ok(())).unwrap();
    assert_eq!(c.listen.port(), 8080);
    assert!(c.admin.trino_gateway_api_on_proxy);
    let e = c.routing.external.as_ref().unwrap();
    assert_eq!(
        (e.url.as_str(), e.exclude_headers.len()),
        ("http://router:5000/route", 1)
    );
    assert_eq!(c.routing.chain[0].module, "builtin:stochastic");
    assert_eq!(c.cache.valkey.ttl_seconds, 1800);
    assert!(!c.cache.valkey.enabled);
}
