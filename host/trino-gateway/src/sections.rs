//! Each section of Trino Gateway's file, read into Sluice's document: the ports, the database,
//! how clusters are polled, and what is not honoured (routing, L2 and the admin API: see
//! `routing_sections`).
use std::path::Path;

use serde_yaml::Value;

use crate::document::{note, Native, Notes, Secrets, Section, TgError};
use crate::routing_sections::{admin, routing, valkey};

/// Every section Sluice reads, in the order they build on each other.
pub(crate) fn all(
    top: &Section<'_>,
    native: &mut Native,
    notes: &mut Notes,
    secrets: Secrets,
    base: &Path,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<(), TgError> {
    listeners(top, native, notes)?;
    data_store(top, native, notes, secrets)?;
    stats(top, native, notes, secrets)?;
    routing(top, native, notes, base)?;
    valkey(top, native, notes, secrets)?;
    admin(top, native, notes, secrets, env);
    not_honoured(top, notes);
    Ok(())
}

/// `requestRouter`, `serverConfig` (airlift), `server` (Dropwizard): the ports.
fn listeners(top: &Section<'_>, native: &mut Native, notes: &mut Notes) -> Result<(), TgError> {
    let router = top.section("requestRouter");
    let mut port = router.u64("port")?;
    if router.present() {
        router.get("name");
        if router.get("historySize").is_some() {
            note(notes, "requestRouter.historySize", "history is kept for store.history_retention_days (days), not by count; the history API pages through it");
        }
        router.rest(
            notes,
            "not read: TLS on the client listener is proxy.tls (PEM files)",
        );
    }
    let server_config = top.section("serverConfig");
    if let Some(p) = server_config.u64("http-server.http.port")? {
        port = Some(p);
        // one port for the protocol and Trino Gateway's API, as airlift Trino Gateway has it
        native.set("admin.trino_gateway_api_on_proxy", true);
    }
    server_config.get("node.environment");
    if let Some(forwarded) = server_config.bool("http-server.process-forwarded")? {
        native.set("proxy.trust_forwarded_headers", forwarded);
    }
    server_config.rest(
        notes,
        "not read: Sluice's listeners are listen, admin.listen and proxy.tls",
    );
    if let Some(p) = port {
        native.set("listen", format!("0.0.0.0:{p}"));
    }
    let server = top.section("server");
    if server.present() {
        let app_port = server
            .get("applicationConnectors")
            .and_then(Value::as_sequence)
            .and_then(|s| s.first())
            .and_then(|c| c.get("port"))
            .and_then(Value::as_u64);
        if let Some(p) = app_port {
            native.set("admin.listen", format!("127.0.0.1:{p}"));
            note(notes, "server.applicationConnectors", format!("Trino Gateway's API and Sluice's console on admin.listen 127.0.0.1:{p} (loopback: widen it in the converted file if other hosts call the API)"));
        }
        if server.get("adminConnectors").is_some() {
            note(
                notes,
                "server.adminConnectors",
                "health probes and /metrics are on admin.listen too",
            );
        }
        server.rest(notes, "Dropwizard server settings are not read");
    }
    Ok(())
}

/// `dataStore`: Trino Gateway's database, followed; Sluice's own tables beside it.
fn data_store(
    top: &Section<'_>,
    native: &mut Native,
    notes: &mut Notes,
    secrets: Secrets,
) -> Result<(), TgError> {
    let ds = top.section("dataStore");
    if !ds.present() {
        return Ok(());
    }
    let jdbc = ds
        .str("jdbcUrl")
        .ok_or_else(|| TgError::invalid("dataStore.jdbcUrl", "missing"))?;
    let user = ds.str("user");
    let password = ds.secret("password", secrets, "SLUICE_TG_DB_PASSWORD", notes);
    ds.get("driver");
    // a value is encoded into the URL; a reference stays one, resolved when the file is read
    let password = password.map(|p| match secrets {
        Secrets::Values => crate::jdbc::encode(&p),
        Secrets::References => p,
    });
    let url = crate::jdbc::database_url(&jdbc, user.as_deref(), password.as_deref())
        .map_err(|e| TgError::invalid("dataStore.jdbcUrl", e))?;
    let schema = "sluice";
    let own = crate::tables::own_tables_url(&url, schema)
        .map_err(|e| TgError::invalid("dataStore.jdbcUrl", e.to_string()))?;
    native.set("store.url", own);
    native.set("store.trino_gateway.url", url);
    native.set("store.trino_gateway.schema", schema);
    if let Some(hours) = ds.u64("queryHistoryHoursRetention")? {
        native.set("store.history_retention_days", hours.div_ceil(24).max(1));
    }
    if ds.get("runMigrationsEnabled").is_some() {
        note(notes, "dataStore.runMigrationsEnabled", "Sluice never changes Trino Gateway's tables; its own are migrated in the schema 'sluice' of the same database");
    }
    ds.rest(
        notes,
        "not read (Sluice's pool: 8 connections, 2 s to connect)",
    );
    Ok(())
}

/// `clusterStatsConfiguration`, `monitor`, `backendState`: how clusters are polled.
fn stats(
    top: &Section<'_>,
    native: &mut Native,
    notes: &mut Notes,
    secrets: Secrets,
) -> Result<(), TgError> {
    let cs = top.section("clusterStatsConfiguration");
    let source = match cs.str("monitorType").map(|s| s.to_ascii_uppercase()) {
        Some(t) => match t.as_str() {
            "INFO_API" => Some("info_only"),
            "UI_API" => Some("ui_api"),
            "METRICS" => Some("metrics"),
            "JMX" => {
                note(notes, "clusterStatsConfiguration.monitorType", "JMX: Sluice reads the same counters from the coordinator's /metrics (stats: metrics)");
                Some("metrics")
            }
            "JDBC" => {
                note(notes, "clusterStatsConfiguration.monitorType", "JDBC: Sluice runs no SQL to poll; it reads the UI API (stats: ui_api) with backendState's credentials");
                Some("ui_api")
            }
            "NOOP" => {
                note(notes, "clusterStatsConfiguration.monitorType", "NOOP: Sluice still checks /v1/info to route around a dead coordinator (stats: info_only)");
                Some("info_only")
            }
            other => {
                return Err(TgError::invalid(
                    "clusterStatsConfiguration.monitorType",
                    format!("'{other}': INFO_API, UI_API, METRICS, JMX, JDBC or NOOP"),
                ))
            }
        },
        None => match cs.bool("useApi")? {
            Some(true) => Some("ui_api"),
            _ => None,
        },
    };
    if let Some(s) = source {
        native.set("health.stats", s);
    }
    cs.rest(notes, "not read");

    let m = top.section("monitor");
    if let Some(s) = m.u64("taskDelaySeconds")? {
        native.set("health.interval_ms", s.max(1) * 1000);
    }
    if let Some(ms) = m.duration_ms("queryTimeout", 1000)? {
        native.set("health.timeout_ms", ms.max(1));
    }
    if let Some(n) = m.str("runningQueriesMetricName") {
        native.set("health.metrics.running", n);
    }
    if let Some(n) = m.str("queuedQueriesMetricName") {
        native.set("health.metrics.queued", n);
    }
    if let Some(p) = m.str("metricsEndpoint").filter(|p| p != "/metrics") {
        note(
            notes,
            "monitor.metricsEndpoint",
            format!("'{p}': Sluice reads /metrics"),
        );
    }
    m.rest(notes, "not read: a failed poll marks the backend unhealthy until the next one answers; health.interval_ms and health.timeout_ms set the pace");

    let bs = top.section("backendState");
    if let Some(u) = bs.str("username") {
        native.set("health.user", u);
    }
    if let Some(p) = bs.secret("password", secrets, "SLUICE_BACKEND_STATE_PASSWORD", notes) {
        native.set("health.password", p);
    }
    if bs.get("ssl").is_some() {
        note(
            notes,
            "backendState.ssl",
            "Sluice speaks https:// to a backend whose URL says so; private CAs go in backend_tls",
        );
    }
    bs.rest(notes, "not read");
    Ok(())
}

/// Sections Sluice knows and does not honour as Trino Gateway does.
fn not_honoured(top: &Section<'_>, notes: &mut Notes) {
    for (key, instead) in [
        ("authentication", "Sluice passes the client's credentials through to Trino; its admin API and console use admin.tokens (docs/security.md)"),
        ("authorization", "roles are the admin.tokens' (admin or viewer)"),
        ("presetUsers", "roles are the admin.tokens' (admin or viewer)"),
        ("pagePermissions", "the console shows every page to a token's role"),
        ("oauth2GatewayCookieConfiguration", "Trino's OAuth2 login passes through; proxy.login_cookie keeps its requests on one cluster"),
        ("gatewayCookieConfiguration", "proxy.login_cookie"),
        ("uiConfiguration", "Sluice's console (docs/console.md)"),
        ("requestAnalyzerConfig", "Sluice parses every statement its routing filters ask about (up to proxy.max_statement_bytes)"),
        ("includeClusterHostInResponse", "not offered: each query's backend is in the history API"),
        ("notifier", "not offered: alert from /metrics (docs/metrics.md)"),
        ("writeBuffer", "history rows are written in batches (store.batch_size, store.flush_interval_ms)"),
        ("databaseCache", "L1 (cache.l1) and L2 (cache.valkey) sit in front of the database"),
        ("logging", "log.level and log.format"),
        ("cookiePaths", "not read"),
        ("logoutCookiePaths", "not read"),
        ("proxyResponseConfiguration", "not read: answers stream through"),
    ] {
        if top.get(key).is_some() {
            note(notes, key, instead);
        }
    }
}
