//! `routing:`: how new queries pick a group, and the filter chain that decides.
use serde::{Deserialize, Serialize};

use crate::defaults;
use crate::invalid::Invalid;

/// Routing of new queries.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct RoutingConfig {
    /// Group used when the client sends no `X-Trino-Routing-Group` (default `adhoc`).
    #[serde(default = "defaults::group")]
    pub default_group: String,
    /// `false` (default, Trino Gateway's semantics): a group no backend serves, or one with no
    /// healthy backend, falls back to the default group. `true`: an unknown group is a 400 and an
    /// empty one a 503, each naming the group.
    #[serde(default)]
    pub strict_groups: bool,
    /// The routing filter chain, run in order for every new query (default: one slot
    /// `query-count` with `builtin:query-count`; `[]` leaves routing to the native router).
    #[serde(default = "default_chain")]
    pub chain: Vec<SlotConfig>,
    /// When a filter traps, times out, runs out of memory or names a backend that cannot take the
    /// query: `native` (default) lets the native least-loaded router decide; `reject` answers 503.
    #[serde(default)]
    pub on_filter_error: FilterErrorPolicy,
    /// An HTTP service that names the group of each new query before the chain runs (Trino
    /// Gateway's external routing service).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub external: Option<ExternalRouting>,
}

/// Trino Gateway's external routing service: a `POST` per new query with its headers and what
/// the gateway knows of it, answered with `{"routingGroup": "…", "errors": […]}`.
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct ExternalRouting {
    /// `http://` or `https://` URL the service listens on.
    pub url: String,
    /// Time limit of one call (default 1000 ms); past it, or on any failure, the query goes on
    /// in the group it had (its `X-Trino-Routing-Group`, else `default_group`) and the chain runs.
    #[serde(default = "defaults::external_timeout")]
    pub timeout_ms: u64,
    /// Headers not sent to the service (case-insensitive). Credentials (`Authorization`,
    /// `Cookie`, …) are never sent.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub exclude_headers: Vec<String>,
}

/// One slot of the filter chain.
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct SlotConfig {
    /// The slot's name (`[a-z0-9_-]`): names its cache namespace, logs and metrics.
    pub slot: String,
    /// `builtin:query-count`, `builtin:stochastic`, `builtin:routing-rules`, or a path to a
    /// `.wasm` component built for the `sluice:filter/router` world.
    pub module: String,
    /// Configuration handed to the filter's `init`, as JSON.
    #[serde(default)]
    pub config: serde_yaml::Value,
    /// Sandbox limits of this slot where they differ from `filters.*` (a filter in an
    /// interpreted language may need more memory or time than a Rust one).
    #[serde(default, skip_serializing_if = "SlotLimits::is_empty")]
    pub limits: SlotLimits,
}

/// A slot's own sandbox limits; each one not given is `filters.*`'s.
#[derive(Debug, Clone, Copy, Default, Deserialize, Serialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct SlotLimits {
    /// Time limit of one `route` call.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout_ms: Option<u64>,
    /// Time limit of `init`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub init_timeout_ms: Option<u64>,
    /// Linear memory an instance may grow to.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub memory_limit_mb: Option<u64>,
    /// Initialised instances kept ready.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pool_size: Option<usize>,
}

impl SlotLimits {
    /// None given.
    pub fn is_empty(&self) -> bool {
        *self == SlotLimits::default()
    }
}

/// What happens when a filter fails.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum FilterErrorPolicy {
    /// The native least-loaded router picks a backend of the current group.
    #[default]
    Native,
    /// The query fails with 503.
    Reject,
}

impl RoutingConfig {
    /// Slot names are unique and well-formed; modules are `builtin:NAME` or a `.wasm` path.
    /// Which builtins exist is the filters' business: they check that themselves.
    pub fn validate(&self) -> Result<(), Invalid> {
        if let Some(e) = &self.external {
            if !(e.url.starts_with("http://") || e.url.starts_with("https://"))
                || e.url.parse::<http::Uri>().is_err()
            {
                return Err(Invalid::new(
                    "external.url",
                    format!("'{}' must be an http:// or https:// URL", e.url),
                ));
            }
            if e.timeout_ms == 0 {
                return Err(Invalid::new("external.timeout_ms", "must be more than 0"));
            }
        }
        let mut slots = std::collections::BTreeSet::new();
        for (i, slot) in self.chain.iter().enumerate() {
            let at = |field: &str, msg: String| Invalid::new(format!("chain[{i}].{field}"), msg);
            for (field, v) in [
                ("limits.timeout_ms", slot.limits.timeout_ms),
                ("limits.init_timeout_ms", slot.limits.init_timeout_ms),
                ("limits.memory_limit_mb", slot.limits.memory_limit_mb),
                ("limits.pool_size", slot.limits.pool_size.map(|n| n as u64)),
            ] {
                if v == Some(0) {
                    return Err(at(field, "must be more than 0".into()));
                }
            }
            if !valid_slot_name(&slot.slot) {
                return Err(at(
                    "slot",
                    format!(
                        "'{}' must be 1-64 characters of a-z, 0-9, '-' and '_'",
                        slot.slot
                    ),
                ));
            }
            if !slots.insert(slot.slot.as_str()) {
                return Err(at("slot", format!("'{}' is used twice", slot.slot)));
            }
            if !slot.module.starts_with("builtin:") && !slot.module.ends_with(".wasm") {
                return Err(at(
                    "module",
                    format!(
                        "'{}' must be builtin:NAME or a path to a .wasm file",
                        slot.module
                    ),
                ));
            }
        }
        Ok(())
    }
}

/// Whether `name` can name a slot: 1-64 characters of `a-z`, `0-9`, `-` and `_`.
pub fn valid_slot_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 64
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'_')
}

/// `routing.chain`'s default: Trino Gateway's query-count routing, burst-aware.
pub fn default_chain() -> Vec<SlotConfig> {
    vec![SlotConfig {
        slot: "query-count".into(),
        module: "builtin:query-count".into(),
        config: serde_yaml::Value::Null,
        limits: Default::default(),
    }]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_slot_gives_its_own_limits_and_zero_is_refused() {
        let r: RoutingConfig = serde_yaml::from_str(
            "{ chain: [ { slot: py, module: a.wasm, limits: { memory_limit_mb: 128, timeout_ms: 200 } } ] }",
        )
        .unwrap();
        r.validate().unwrap();
        assert_eq!(r.chain[0].limits.memory_limit_mb, Some(128));
        assert_eq!(r.chain[0].limits.pool_size, None);
        let bad: RoutingConfig = serde_yaml::from_str(
            "{ chain: [ { slot: py, module: a.wasm, limits: { pool_size: 0 } } ] }",
        )
        .unwrap();
        assert!(bad
            .validate()
            .unwrap_err()
            .to_string()
            .contains("chain[0].limits.pool_size"));
        let typo = serde_yaml::from_str::<RoutingConfig>(
            "{ chain: [ { slot: py, module: a.wasm, limits: { memory_mb: 1 } } ] }",
        );
        assert!(typo.is_err(), "unknown limit names are refused");
    }
}
