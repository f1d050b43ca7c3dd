//! The one YAML configuration file: the serde schema, its defaults, `${VAR}` substitution and
//! validation. This crate depends on no other Sluice crate: each part of Sluice reads its section,
//! and checks that need a part's knowledge (which builtin filters exist) are passed in by the
//! caller through [`Config::load_with`].
//!
//! Read path: raw text → [`subst::substitute`] (`${VAR}`, `${VAR:-default}`) → serde (unknown keys
//! rejected; serde_yaml's errors name the field path, line and column) → [`Config::validate`],
//! where each section validates itself → the caller's extra check. A validation error names the
//! field by its path, and [`invalid::line_of`] finds that path's line.
//!
//! # Layout
//!
//! | module | one job |
//! | --- | --- |
//! | this file | [`Config`], loading, [`ConfigError`] |
//! | [`admin`], [`backends`], [`routing`], [`filters`], [`cache`], [`store`], [`health`], [`proxy`], [`log`] | one section each: its structs, with a doc comment per field, and its `validate()` |
//! | [`telemetry`] | `tracing:`: OpenTelemetry export |
//! | [`tls`] | TLS settings shared by the sections: a listener's certificate, what a client trusts |
//! | [`defaults`] | every default value |
//! | [`bounds`] | upper bounds on every number, by field name |
//! | [`invalid`] | [`Invalid`] (a field path and a message) and finding a path's line |
//! | [`subst`] | `${VAR}` substitution |
//! | [`queue`] | `queue:`: the gateway's queue, priorities and quotas |
//! | [`slot_text`] | a filter slot's config as text turned into `init`'s JSON (anchors and aliases refused) |
#![forbid(unsafe_code)]
use std::collections::BTreeSet;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

pub mod admin;
pub mod backends;
mod bounds;
pub mod cache;
mod defaults;
pub mod filters;
pub mod health;
pub mod invalid;
pub mod log;
pub mod proxy;
pub mod queue;
pub mod routing;
pub mod slot_text;
pub mod store;
pub mod subst;
pub mod telemetry;
pub mod tls;

pub use admin::{AdminConfig, ConsoleConfig, Role, TokenConfig};
pub use backends::BackendConfig;
pub use cache::{CacheConfig, L1Config, SearchConfig, ValkeyConfig, ValkeyMode};
pub use filters::FiltersConfig;
pub use health::{HealthConfig, MetricNames, StatsSource};
pub use invalid::Invalid;
pub use log::{LogConfig, LogFormat};
pub use proxy::{LoginCookieConfig, ProxyConfig, Serving};
pub use queue::{PriorityRule, QueueConfig, Quota};
pub use routing::{
    valid_slot_name, ExternalRouting, FilterErrorPolicy, RoutingConfig, SlotConfig, SlotLimits,
};
pub use store::{StoreConfig, TrinoGatewayStore};
pub use telemetry::TracingConfig;
pub use tls::{ClientTlsConfig, ServerTlsConfig};

/// Why a configuration cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file could not be read.
    #[error("cannot read {}: {source}", path.display())]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// A `${VAR}` reference could not be substituted.
    #[error(transparent)]
    Substitution(#[from] subst::SubstError),
    /// Not YAML, or not the schema (serde_yaml names the field, line and column).
    #[error(transparent)]
    Parse(#[from] serde_yaml::Error),
    /// A value the schema accepts but Sluice cannot use.
    #[error("{invalid}{}", line.map(|l| format!(" (line {l})")).unwrap_or_default())]
    Invalid {
        /// The field and what is wrong.
        invalid: Invalid,
        /// Its line in the text, where it could be found.
        line: Option<usize>,
    },
    /// One of the above, in a named file.
    #[error("{}: {source}", path.display())]
    InFile {
        /// The file.
        path: PathBuf,
        /// What is wrong with it.
        source: Box<ConfigError>,
    },
}

/// The whole configuration file.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// Where clients connect (the Trino protocol listener).
    #[serde(default = "defaults::listen")]
    pub listen: SocketAddr,
    /// The admin listener: health probes and status; bind it to loopback.
    #[serde(default)]
    pub admin: AdminConfig,
    /// The Trino clusters behind the gateway.
    #[serde(default)]
    pub backends: Vec<BackendConfig>,
    /// How new queries pick a routing group.
    #[serde(default)]
    pub routing: RoutingConfig,
    /// Query-state cache settings.
    #[serde(default)]
    pub cache: CacheConfig,
    /// Backend health polling.
    #[serde(default)]
    pub health: HealthConfig,
    /// Forwarding: timeouts, body limits, extra paths, forwarded headers.
    #[serde(default)]
    pub proxy: ProxyConfig,
    /// Logging.
    #[serde(default)]
    pub log: LogConfig,
    /// Distributed tracing: OpenTelemetry spans over OTLP (off by default).
    #[serde(default)]
    pub tracing: TracingConfig,
    /// Wasm filter sandbox limits.
    #[serde(default)]
    pub filters: FiltersConfig,
    /// L3: the SQL store.
    #[serde(default)]
    pub store: StoreConfig,
    /// Queries waiting in Sluice for room on a backend with `max_queries`.
    #[serde(default)]
    pub queue: QueueConfig,
    /// This instance's name in fleet status (default `HOSTNAME:PORT`, the port of `listen`).
    #[serde(default)]
    pub instance_id: Option<String>,
    /// How Sluice connects to `https://` backends (health checks and searches too): the CA it
    /// trusts, a client certificate.
    #[serde(default)]
    pub backend_tls: ClientTlsConfig,
}

macro_rules! default_from_serde {
    ($($t:ty),*) => {$(
        impl Default for $t {
            fn default() -> Self {
                serde_yaml::from_str("{}").expect("every field has a default")
            }
        }
    )*};
}
default_from_serde!(
    Config,
    AdminConfig,
    RoutingConfig,
    L1Config,
    HealthConfig,
    MetricNames,
    ProxyConfig,
    LogConfig,
    FiltersConfig,
    LoginCookieConfig,
    ValkeyConfig,
    SearchConfig,
    StoreConfig,
    TracingConfig
);

/// A check the caller adds to [`Config::validate`] (e.g. the filters' own).
pub type Check<'a> = &'a dyn Fn(&Config) -> Result<(), Invalid>;

impl Config {
    /// Read, substitute, parse and validate a file.
    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        Self::load_with(path, &|_| Ok(()))
    }

    /// [`Config::load`], with `check` run after the sections' own validation.
    pub fn load_with(path: &Path, check: Check<'_>) -> Result<Config, ConfigError> {
        let in_file = |source: ConfigError| ConfigError::InFile {
            path: path.to_path_buf(),
            source: Box::new(source),
        };
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_path_buf(),
            source,
        })?;
        Self::from_yaml_with(&text, &|name| std::env::var(name).ok(), check).map_err(in_file)
    }

    /// Parse and validate YAML text; `env` resolves `${VAR}` references.
    pub fn from_yaml(text: &str, env: subst::Lookup<'_>) -> Result<Config, ConfigError> {
        Self::from_yaml_with(text, env, &|_| Ok(()))
    }

    /// [`Config::from_yaml`], with `check` run after the sections' own validation.
    pub fn from_yaml_with(
        text: &str,
        env: subst::Lookup<'_>,
        check: Check<'_>,
    ) -> Result<Config, ConfigError> {
        let substituted = subst::substitute(text, env)?;
        subst::same_structure(text, &substituted).map_err(|message| ConfigError::Invalid {
            invalid: Invalid::new("${…}", message),
            line: None,
        })?;
        let text = substituted;
        let config: Config = if text.trim().is_empty() {
            Config::default()
        } else {
            serde_yaml::from_str(&text)?
        };
        config
            .validate()
            .and_then(|()| check(&config))
            .map_err(|invalid| ConfigError::Invalid {
                line: invalid::line_of(&text, &invalid.path),
                invalid,
            })?;
        Ok(config)
    }

    /// Check what serde cannot, section by section: unique names, usable URLs, sane numbers, an
    /// existing default group.
    pub fn validate(&self) -> Result<(), Invalid> {
        if let Ok(value) = serde_yaml::to_value(self) {
            bounds::check(&value, "")?;
        }
        backends::validate_all(&self.backends).map_err(|e| e.under("backends"))?;
        self.routing.validate().map_err(|e| e.under("routing"))?;
        if !self.backends.is_empty() && !self.groups().contains(&self.routing.default_group) {
            return Err(Invalid::new(
                "routing.default_group",
                format!(
                    "no backend belongs to group '{}' (groups: {})",
                    self.routing.default_group,
                    self.groups().join(", ")
                ),
            ));
        }
        self.admin.validate().map_err(|e| e.under("admin"))?;
        self.cache.validate().map_err(|e| e.under("cache"))?;
        self.health.validate().map_err(|e| e.under("health"))?;
        self.proxy.validate().map_err(|e| e.under("proxy"))?;
        self.backend_tls
            .validate()
            .map_err(|e| e.under("backend_tls"))?;
        if let Some(tls_listen) = self.proxy.tls.as_ref().and_then(|t| t.listen) {
            if tls_listen == self.listen || tls_listen == self.admin.listen {
                return Err(Invalid::new(
                    "proxy.tls.listen",
                    format!("{tls_listen} is already listen or admin.listen: give the HTTPS listener its own address"),
                ));
            }
        }
        self.store.validate().map_err(|e| e.under("store"))?;
        self.queue.validate().map_err(|e| e.under("queue"))?;
        self.tracing.validate().map_err(|e| e.under("tracing"))?;
        self.filters.validate().map_err(|e| e.under("filters"))
    }

    /// This instance's name in fleet status: `instance_id`, or `HOSTNAME:PORT` with the port
    /// clients connect to (`port`: the one actually bound).
    pub fn instance_id(&self, port: u16) -> String {
        if let Some(id) = self.instance_id.as_deref().filter(|s| !s.is_empty()) {
            return id.to_string();
        }
        let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
            .ok()
            .or_else(|| std::env::var("HOSTNAME").ok())
            .map(|h| h.trim().to_string())
            .filter(|h| !h.is_empty())
            .unwrap_or_else(|| "sluice".into());
        format!("{host}:{port}")
    }

    /// The routing groups named by the backends, sorted.
    pub fn groups(&self) -> Vec<String> {
        let set: BTreeSet<&str> = self.backends.iter().map(|b| b.group.as_str()).collect();
        set.into_iter().map(String::from).collect()
    }
}

#[cfg(test)]
mod tests;
