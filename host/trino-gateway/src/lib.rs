//! Trino Gateway's configuration, read as it is: `sluice serve --trino-gateway-config FILE`,
//! `sluice check-config --trino-gateway FILE` and `sluice convert-config FILE` (docs/migrate.md).
//!
//! | Trino Gateway | Sluice |
//! | --- | --- |
//! | `requestRouter.port`, `serverConfig: http-server.http.port` | `listen` (airlift's one port also serves Trino Gateway's API) |
//! | `server.applicationConnectors[0].port` | `admin.listen` (loopback) |
//! | `dataStore` (JDBC URL, user, password) | `store.trino_gateway` (its tables followed and written) and `store.url` (Sluice's tables in the schema `sluice` beside them) |
//! | `clusterStatsConfiguration.monitorType`, `useApi` | `health.stats` |
//! | `monitor.taskDelaySeconds`, `queryTimeout`, metric names | `health.interval_ms`, `timeout_ms`, `metrics` |
//! | `backendState.username`, `password` | `health.user`, `password` |
//! | `routingRules` (FILE) | a `builtin:routing-rules` slot, translated by [`rules`] |
//! | `routingRules` (EXTERNAL) | `routing.external` |
//! | `routing.defaultRoutingGroup` | `routing.default_group` |
//! | `modules` (`QueryCountBasedRouterProvider`, `QueueLengthRouterProvider`; else) | `builtin:query-count` (else `builtin:stochastic`) last in the chain |
//! | `valkeyConfiguration`, `distributedCacheConfiguration` | `cache.valkey` |
//! | `extraWhitelistPaths` | `proxy.extra_paths` |
//!
//! Environment references in any of Trino Gateway's forms are resolved ([`subst`]). Every other
//! key is a [`Note`], listed at start and by `check-config`.
#![forbid(unsafe_code)]
use std::path::Path;

use sluice_config::{Config, Invalid};

pub mod jdbc;
pub mod rules;
mod sections;
pub mod subst;
pub mod translate;

pub use translate::{Note, Secrets, TgError, Translated};

/// A check the caller adds to the configuration's own (which filters exist).
pub type Check<'a> = &'a dyn Fn(&Config) -> Result<(), Invalid>;

/// The Trino Gateway file at `path` as Sluice's checked configuration, and the keys not honoured.
pub fn load(
    path: &Path,
    env: &dyn Fn(&str) -> Option<String>,
    check: Check<'_>,
) -> Result<(Config, Vec<Note>), TgError> {
    let t = translate::translate(path, env, Secrets::Values)?;
    let text = serde_yaml::to_string(&t.native).map_err(|e| TgError::Native(e.to_string()))?;
    // the values are final: nothing left for Sluice's own substitution
    let text = text.replace("${", "$${");
    let config = Config::from_yaml_with(&text, &|_| None, check)
        .map_err(|e| TgError::Native(e.to_string()))?;
    Ok((config, t.notes))
}

/// The Trino Gateway file at `path` as the text of Sluice's configuration file (secrets as
/// environment references), checked, and the keys not honoured.
pub fn convert(
    path: &Path,
    env: &dyn Fn(&str) -> Option<String>,
    check: Check<'_>,
) -> Result<(String, Vec<Note>), TgError> {
    let t = translate::translate(path, env, Secrets::References)?;
    let body = serde_yaml::to_string(&t.native).map_err(|e| TgError::Native(e.to_string()))?;
    let mut text = format!(
        "# Sluice's configuration, converted from Trino Gateway's {} by `sluice convert-config`.\n\
         # Check it with `sluice check-config FILE`; docs/migrate.md explains each part.\n",
        path.display()
    );
    for n in &t.notes {
        text.push_str(&format!("#   {}: {}\n", n.key, n.instead));
    }
    text.push_str(&body);
    // references are checked as set: their values are the operator's, at start
    Config::from_yaml_with(&text, &|v| env(v).or_else(|| Some("x".repeat(16))), check)
        .map_err(|e| TgError::Native(e.to_string()))?;
    Ok((text, t.notes))
}

#[cfg(test)]
mod tests;
