//! The sections of Trino Gateway's file that become Sluice's filter chain (`routingRules`,
//! `routing`, `modules`), its L2 (`valkeyConfiguration`, `distributedCacheConfiguration`) and
//! its admin API's access (`extraWhitelistPaths`, the admin token).
use std::path::Path;

use serde_yaml::Value;

use crate::document::{note, Native, Notes, Secrets, Section, TgError};

/// `routingRules`, `routing`, `modules`: the filter chain.
pub(crate) fn routing(
    top: &Section<'_>,
    native: &mut Native,
    notes: &mut Notes,
    base: &Path,
) -> Result<(), TgError> {
    let routing = top.section("routing");
    let default_group = routing.str("defaultRoutingGroup");
    if let Some(g) = &default_group {
        native.set("routing.default_group", g.clone());
    }
    routing.rest(
        notes,
        "not read: Sluice always adds X-Forwarded-*; proxy.response_timeout_ms bounds a request",
    );

    let mut chain = Vec::new();
    let rr = top.section("routingRules");
    let enabled = rr.bool("rulesEngineEnabled")?.unwrap_or(false);
    let kind = rr
        .str("rulesType")
        .unwrap_or_else(|| "FILE".into())
        .to_ascii_uppercase();
    let external = rr.section("rulesExternalConfiguration");
    let rules_path = rr.str("rulesConfigPath");
    if enabled && kind == "EXTERNAL" {
        let url = external.str("urlPath").ok_or_else(|| {
            TgError::invalid("routingRules.rulesExternalConfiguration.urlPath", "missing")
        })?;
        native.set("routing.external.url", url);
        let mut exclude: Vec<Value> = Vec::new();
        for key in ["excludeHeaders", "blacklistHeaders"] {
            if let Some(list) = external.get(key).and_then(Value::as_sequence) {
                exclude.extend(list.iter().cloned());
            }
        }
        if !exclude.is_empty() {
            native.set("routing.external.exclude_headers", exclude);
        }
        note(notes, "routingRules.rulesExternalConfiguration", "called with a 1000 ms time limit (routing.external.timeout_ms); on failure the query keeps its group; credentials are never sent; externalHeaders are not applied");
    } else if enabled && kind == "FILE" {
        let file = rules_path
            .clone()
            .ok_or_else(|| TgError::invalid("routingRules.rulesConfigPath", "missing"))?;
        // as Trino Gateway reads it (from its working directory), else beside the config file
        let mut path = Path::new(&file).to_path_buf();
        if !path.exists() && path.is_relative() {
            path = base.join(&file);
        }
        let text = std::fs::read_to_string(&path).map_err(|e| {
            TgError::invalid(
                "routingRules.rulesConfigPath",
                format!("{}: {e}", path.display()),
            )
        })?;
        let (rules, problems) = crate::rules::translate(&text)
            .map_err(|e| TgError::invalid("routingRules.rulesConfigPath", e))?;
        for p in problems {
            note(
                notes,
                format!("routingRules ({})", path.display()),
                format!("{p}: left out of the routing-rules filter"),
            );
        }
        let slot = crate::rules::slot_yaml("rules", None, rules);
        let slot: Value = serde_yaml::from_str(&slot)
            .map_err(|e| TgError::invalid("routingRules.rulesConfigPath", e.to_string()))?;
        if let Some(s) = slot.as_sequence() {
            chain.extend(s.iter().cloned());
        }
        if rr.get("rulesRefreshPeriod").is_some() {
            note(
                notes,
                "routingRules.rulesRefreshPeriod",
                "the rules file is read again on `sluice reload` (or SIGHUP), not on a timer",
            );
        }
    } else if enabled {
        return Err(TgError::invalid(
            "routingRules.rulesType",
            format!("'{kind}': FILE or EXTERNAL"),
        ));
    }
    rr.get("rulesConfigPath");
    rr.get("rulesRefreshPeriod");
    rr.rest(notes, "not read");
    external.get("urlPath");
    external.get("excludeHeaders");
    external.get("blacklistHeaders");
    external.rest(notes, "not read");

    let modules: Vec<String> = top
        .get("modules")
        .and_then(Value::as_sequence)
        .map(|s| {
            s.iter()
                .filter_map(|v| v.as_str().map(String::from))
                .collect()
        })
        .unwrap_or_default();
    let query_count = modules.iter().any(|m| {
        m.ends_with("QueryCountBasedRouterProvider") || m.ends_with("QueueLengthRouterProvider")
    });
    let policy = if query_count {
        "query-count"
    } else {
        "stochastic"
    };
    for m in &modules {
        let short = m.rsplit('.').next().unwrap_or(m);
        if !(short.ends_with("RouterProvider") || short.ends_with("RoutingManagerProvider")) {
            note(
                notes,
                format!("modules: {short}"),
                "built into Sluice (health checks, the backend list, stats)",
            );
        }
    }
    let mut slot = serde_yaml::Mapping::new();
    slot.insert("slot".into(), policy.into());
    slot.insert("module".into(), format!("builtin:{policy}").into());
    chain.push(Value::Mapping(slot));
    native.set("routing.chain", chain);
    if top.get("managedApps").is_some() {
        note(
            notes,
            "managedApps",
            "built into Sluice: the cluster monitor runs every health.interval_ms",
        );
    }
    Ok(())
}

/// `valkeyConfiguration` (the seed's) and `distributedCacheConfiguration` (later releases): L2.
pub(crate) fn valkey(
    top: &Section<'_>,
    native: &mut Native,
    notes: &mut Notes,
    secrets: Secrets,
) -> Result<(), TgError> {
    for name in ["valkeyConfiguration", "distributedCacheConfiguration"] {
        let v = top.section(name);
        if !v.present() {
            continue;
        }
        let enabled = v.bool("enabled")?.unwrap_or(false);
        let host = v.str("host").unwrap_or_else(|| "localhost".into());
        let port = v.u64("port")?.unwrap_or(6379);
        let db = v.u64("database")?.unwrap_or(0);
        native.set("cache.valkey.enabled", enabled);
        native.set("cache.valkey.url", format!("redis://{host}:{port}/{db}"));
        if let Some(p) = v.secret("password", secrets, "SLUICE_VALKEY_PASSWORD", notes) {
            native.set("cache.valkey.password", p);
        }
        if let Some(ms) = v.u64("timeoutMs")? {
            native.set("cache.valkey.timeout_ms", ms.max(1));
        }
        let ttl = match v.u64("cacheTtlSeconds")? {
            Some(s) => Some(s),
            None => v.duration_ms("cacheTtl", 1000)?.map(|ms| ms / 1000),
        };
        if let Some(s) = ttl {
            native.set("cache.valkey.ttl_seconds", s.max(1));
        }
        if let Some(ms) = v.u64("healthCheckIntervalMs")? {
            native.set("cache.valkey.health_check_interval_ms", ms.max(1));
        }
        if let Some(n) = v.u64("maxTotal")? {
            // Sluice multiplexes: each connection carries every request of the instance
            native.set("cache.valkey.pool_size", n.clamp(1, 8));
            note(
                notes,
                format!("{name}.maxTotal"),
                format!(
                    "{n} pooled connections become {} multiplexed ones (cache.valkey.pool_size)",
                    n.clamp(1, 8)
                ),
            );
        }
        for k in ["maxIdle", "minIdle"] {
            if v.get(k).is_some() {
                note(
                    notes,
                    format!("{name}.{k}"),
                    "Sluice's connections are multiplexed and always open; no idle pool",
                );
            }
        }
        v.rest(notes, "not read");
    }
    Ok(())
}

/// Changes through the admin API (and Trino Gateway's API) need an admin token: one from
/// `SLUICE_ADMIN_TOKEN` when set; `extraWhitelistPaths` are forwarded like Trino's own paths.
pub(crate) fn admin(
    top: &Section<'_>,
    native: &mut Native,
    notes: &mut Notes,
    secrets: Secrets,
    env: &dyn Fn(&str) -> Option<String>,
) {
    match env("SLUICE_ADMIN_TOKEN") {
        Some(value) => {
            let token = match secrets {
                Secrets::Values => value,
                Secrets::References => "${SLUICE_ADMIN_TOKEN}".into(),
            };
            let mut t = serde_yaml::Mapping::new();
            t.insert("token".into(), token.into());
            t.insert("role".into(), "admin".into());
            native.set("admin.tokens", vec![Value::Mapping(t)]);
        }
        None => note(notes, "(admin API)", "changes through Sluice's or Trino Gateway's API need an admin token: set SLUICE_ADMIN_TOKEN (at least 16 characters) before starting"),
    }
    if let Some(paths) = top.get("extraWhitelistPaths").and_then(Value::as_sequence) {
        native.set("proxy.extra_paths", paths.clone());
        note(
            notes,
            "extraWhitelistPaths",
            "proxy.extra_paths: prefixes, not regular expressions",
        );
    }
    if let Some(paths) = top
        .get("additionalStatementPaths")
        .and_then(Value::as_sequence)
    {
        native.set("proxy.statement_paths", paths.clone());
    }
}
