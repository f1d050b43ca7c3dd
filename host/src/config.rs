//! The one YAML configuration file.
//!
//! Read path: raw text → [`subst::substitute`] (`${VAR}`, `${VAR:-default}`) → serde (unknown keys
//! rejected; serde_yaml's errors name the field path, line and column) → [`Config::validate`]
//! (errors name the field, and the line where it can be found). Defaults live in this file only.
use std::collections::BTreeSet;
use std::net::SocketAddr;
use std::path::Path;

use serde::{Deserialize, Serialize};

pub mod subst;

/// A configuration problem, with the field (and line, where known) that caused it.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct ConfigError(pub String);

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
    /// Wasm filter sandbox limits.
    #[serde(default)]
    pub filters: FiltersConfig,
    /// L3: the SQL store.
    #[serde(default)]
    pub store: StoreConfig,
    /// This instance's name in fleet status (default `HOSTNAME:PORT`, the port of `listen`).
    #[serde(default)]
    pub instance_id: Option<String>,
}

/// L3: query mappings, history and filter modules in SQL.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct StoreConfig {
    /// `sqlite://sluice.db` (default; created on first start), `sqlite::memory:`,
    /// `postgres://user:pass@host/db`, or `""` for no L3.
    #[serde(default = "defaults::store_url")]
    pub url: String,
    /// Days of query history kept (default 7); older rows are pruned hourly.
    #[serde(default = "defaults::retention_days")]
    pub history_retention_days: u64,
    /// Rows waiting for the database at most (default 100000); beyond, the oldest are dropped.
    #[serde(default = "defaults::queue_capacity")]
    pub queue_capacity: usize,
    /// Rows per transaction (default 500).
    #[serde(default = "defaults::batch_size")]
    pub batch_size: usize,
    /// How long rows gather before a batch is written (default 50 ms).
    #[serde(default = "defaults::flush_interval")]
    pub flush_interval_ms: u64,
    /// Time limit of one read (default 500 ms).
    #[serde(default = "defaults::store_timeout")]
    pub timeout_ms: u64,
    /// Time between two health checks (default 1000 ms).
    #[serde(default = "defaults::store_health")]
    pub health_check_interval_ms: u64,
}

/// The admin listener.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct AdminConfig {
    /// Address of the admin listener (default `127.0.0.1:8081`).
    #[serde(default = "defaults::admin_listen")]
    pub listen: SocketAddr,
    /// Bearer tokens for the admin API. Without any, the API is read-only for everyone on the
    /// admin listener and every change is refused.
    #[serde(default)]
    pub tokens: Vec<TokenConfig>,
}

/// One admin API token: the token itself (e.g. `${SLUICE_ADMIN_TOKEN}`) or its sha256 in hex, so
/// no secret sits in the file.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct TokenConfig {
    /// The token.
    #[serde(default)]
    pub token: Option<String>,
    /// Hex sha256 of the token.
    #[serde(default)]
    pub token_sha256: Option<String>,
    /// `admin` (may change) or `viewer` (may read).
    pub role: Role,
}

/// What a token may do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Deserialize, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    /// Read status.
    Viewer,
    /// Read and change.
    Admin,
}

/// One Trino cluster.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct BackendConfig {
    /// Unique name, used in logs, errors and the query → backend mapping.
    pub name: String,
    /// Where Sluice sends requests (`http://host:port` of the coordinator).
    pub url: String,
    /// Routing group this backend serves (default `adhoc`).
    #[serde(default = "defaults::group")]
    pub group: String,
    /// Inactive backends are never chosen for new queries (default true).
    #[serde(default = "defaults::yes")]
    pub active: bool,
    /// The URL users see for this cluster (its web UI), if different from `url`.
    #[serde(default)]
    pub external_url: Option<String>,
    /// Rewrite `nextUri`, `infoUri` and `partialCancelUri` in JSON answers to point at Sluice, for
    /// coordinators that do not honour `X-Forwarded-*` (default false).
    #[serde(default)]
    pub rewrite_next_uri: bool,
    /// Where this backend's running/queued counts come from; default: `health.stats`.
    #[serde(default)]
    pub stats: Option<StatsSource>,
}

/// Routing of new queries.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct RoutingConfig {
    /// Group used when the client sends no `X-Trino-Routing-Group` (default `adhoc`).
    #[serde(default = "defaults::group")]
    pub default_group: String,
    /// When a group has no healthy backend: `true` fails with 503 naming the group; `false`
    /// (default) falls back to the default group.
    #[serde(default)]
    pub strict_groups: bool,
    /// The routing filter chain, run in order for every new query (default: one slot
    /// `query-count` with `builtin:query-count`; `[]` leaves routing to the native router).
    #[serde(default = "defaults::chain")]
    pub chain: Vec<SlotConfig>,
    /// When a filter traps, times out, runs out of memory or names a backend that cannot take the
    /// query: `native` (default) lets the native least-loaded router decide; `reject` answers 503.
    #[serde(default)]
    pub on_filter_error: FilterErrorPolicy,
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

/// Sandbox limits of the Wasm filters.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct FiltersConfig {
    /// Time limit of one `route` call (default 50 ms).
    #[serde(default = "defaults::filter_timeout")]
    pub timeout_ms: u64,
    /// Time limit of `init` (default 2000 ms).
    #[serde(default = "defaults::filter_init_timeout")]
    pub init_timeout_ms: u64,
    /// Linear memory a filter instance may grow to (default 32 MiB).
    #[serde(default = "defaults::filter_memory")]
    pub memory_limit_mb: u64,
    /// Initialised instances kept ready per slot (default 16). `0` creates a fresh instance, and
    /// runs `init`, for every call: full isolation between requests, at a measured cost.
    #[serde(default = "defaults::filter_pool")]
    pub pool_size: usize,
    /// Where compiled modules are cached; default `$XDG_CACHE_HOME/sluice/modules` (or
    /// `~/.cache/sluice/modules`). `""` turns the disk cache off.
    #[serde(default)]
    pub cache_dir: Option<String>,
    /// How often each instance checks L3 for a version it missed (default 5000 ms; `0`: only at
    /// start and on announcements).
    #[serde(default = "defaults::filter_poll")]
    pub poll_interval_ms: u64,
    /// The Valkey pub/sub channel on which accepted versions are announced to the fleet.
    #[serde(default = "defaults::filter_channel")]
    pub channel: String,
    /// A directory to watch: a `SLOT.wasm` written (or moved) into it is swapped into slot `SLOT`
    /// through the same pipeline as an upload, with `SLOT.yaml` / `SLOT.json` as its config when
    /// present. Off by default.
    #[serde(default)]
    pub watch_dir: Option<String>,
}

/// Query-state cache tiers.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct CacheConfig {
    /// The in-process tier.
    #[serde(default)]
    pub l1: L1Config,
    /// The shared tier (Valkey or Redis), for several instances.
    #[serde(default)]
    pub valkey: ValkeyConfig,
    /// Asking every backend for a query id no tier knows.
    #[serde(default)]
    pub search: SearchConfig,
}

/// The shared Valkey/Redis tier.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct ValkeyConfig {
    /// Use it (default false: a single instance needs no Valkey).
    #[serde(default)]
    pub enabled: bool,
    /// `redis://host:6379/0`, `rediss://` for TLS; `redis://:password@host/db` or `password`.
    #[serde(default = "defaults::valkey_url")]
    pub url: String,
    /// Password (overrides one in the URL), e.g. `${VALKEY_PASSWORD}`.
    #[serde(default)]
    pub password: Option<String>,
    /// TTL of every key Sluice writes (default 86400 s).
    #[serde(default = "defaults::valkey_ttl")]
    pub ttl_seconds: u64,
    /// Time limit of one operation (default 50 ms); past it the tier is marked down.
    #[serde(default = "defaults::valkey_timeout")]
    pub timeout_ms: u64,
    /// Time between two PINGs (default 1000 ms): how fast a recovered server is used again.
    #[serde(default = "defaults::valkey_health")]
    pub health_check_interval_ms: u64,
    /// Multiplexed connections (default 2).
    #[serde(default = "defaults::valkey_pool")]
    pub pool_size: usize,
}

/// Searching the backends for an unknown query id.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct SearchConfig {
    /// Ask every active backend `GET /v1/query/{id}` when no tier knows the id (default true).
    #[serde(default = "defaults::yes")]
    pub enabled: bool,
    /// Time limit of the search (default 1000 ms).
    #[serde(default = "defaults::search_timeout")]
    pub timeout_ms: u64,
    /// How long an id nobody owns is remembered as unknown (default 5000 ms), so a flood of bogus
    /// ids cannot fan out to the clusters.
    #[serde(default = "defaults::negative_ttl")]
    pub negative_ttl_ms: u64,
}

/// The in-process (moka) tier.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct L1Config {
    /// Most query mappings kept (default 100000); `0` turns L1 off (every lookup goes to L2).
    #[serde(default = "defaults::l1_capacity")]
    pub capacity: u64,
    /// How long a mapping lives after it is written (default 1800 s).
    #[serde(default = "defaults::l1_ttl")]
    pub ttl_seconds: u64,
}

/// Where a backend's running and queued query counts come from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum StatsSource {
    /// `GET /ui/api/stats` (`runningQueries`, `queuedQueries`).
    UiApi,
    /// `GET /metrics` (OpenMetrics; names set in `health.metrics`).
    Metrics,
    /// Only `GET /v1/info`; counts stay 0.
    InfoOnly,
}

/// Backend health polling.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct HealthConfig {
    /// Time between two polls of one backend (default 2000 ms).
    #[serde(default = "defaults::health_interval")]
    pub interval_ms: u64,
    /// Time limit of one poll request (default 1000 ms).
    #[serde(default = "defaults::health_timeout")]
    pub timeout_ms: u64,
    /// Default stats source for backends that set none (default `ui_api`).
    #[serde(default = "defaults::stats")]
    pub stats: StatsSource,
    /// User sent as `X-Trino-User` (and Basic auth user when `password` is set) on stats requests.
    #[serde(default = "defaults::health_user")]
    pub user: String,
    /// Password for Basic auth on stats requests, for clusters that require it.
    #[serde(default)]
    pub password: Option<String>,
    /// Metric names read when `stats: metrics`.
    #[serde(default)]
    pub metrics: MetricNames,
}

/// Metric names for `stats: metrics` (Trino's JMX-to-OpenMetrics names by default).
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct MetricNames {
    /// Running queries gauge.
    #[serde(default = "defaults::metric_running")]
    pub running: String,
    /// Queued queries gauge.
    #[serde(default = "defaults::metric_queued")]
    pub queued: String,
}

/// Forwarding behaviour.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct ProxyConfig {
    /// Time limit to open a TCP connection to a backend (default 2000 ms).
    #[serde(default = "defaults::connect_timeout")]
    pub connect_timeout_ms: u64,
    /// Time limit for a backend's response headers (default 120000 ms).
    #[serde(default = "defaults::response_timeout")]
    pub response_timeout_ms: u64,
    /// Largest `POST /v1/statement` body accepted (default 16 MiB).
    #[serde(default = "defaults::max_statement_bytes")]
    pub max_statement_bytes: usize,
    /// Idle keep-alive connections per backend kept in the pool (default 64).
    #[serde(default = "defaults::pool_max_idle")]
    pub pool_max_idle_per_host: usize,
    /// Extra path prefixes forwarded to the default group (like `/v1/info`).
    #[serde(default)]
    pub extra_paths: Vec<String>,
    /// Extra statement path prefixes, treated like `/v1/statement`.
    #[serde(default)]
    pub statement_paths: Vec<String>,
    /// Keep `X-Forwarded-*` headers sent by a load balancer in front of Sluice instead of
    /// replacing them (default false: only trust them behind your own load balancer).
    #[serde(default)]
    pub trust_forwarded_headers: bool,
    /// On SIGTERM, how long in-flight requests may take to finish (default 30000 ms).
    #[serde(default = "defaults::shutdown_grace")]
    pub shutdown_grace_ms: u64,
}

/// Logging.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct LogConfig {
    /// `text` (default) or `json`.
    #[serde(default)]
    pub format: LogFormat,
    /// A `tracing` filter such as `info` or `sluice=debug` (default `info`; `RUST_LOG` wins).
    #[serde(default = "defaults::log_level")]
    pub level: String,
}

/// Log line format.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum LogFormat {
    /// Human-readable lines.
    #[default]
    Text,
    /// One JSON object per line.
    Json,
}

mod defaults {
    use super::StatsSource;
    use std::net::SocketAddr;
    pub fn listen() -> SocketAddr {
        "0.0.0.0:8080".parse().unwrap()
    }
    pub fn admin_listen() -> SocketAddr {
        "127.0.0.1:8081".parse().unwrap()
    }
    pub fn group() -> String {
        "adhoc".into()
    }
    pub fn yes() -> bool {
        true
    }
    pub fn l1_capacity() -> u64 {
        100_000
    }
    pub fn l1_ttl() -> u64 {
        1800
    }
    pub fn health_interval() -> u64 {
        2000
    }
    pub fn health_timeout() -> u64 {
        1000
    }
    pub fn stats() -> StatsSource {
        StatsSource::UiApi
    }
    pub fn health_user() -> String {
        "sluice".into()
    }
    pub fn metric_running() -> String {
        "trino_execution_name_QueryManager_RunningQueries".into()
    }
    pub fn metric_queued() -> String {
        "trino_execution_name_QueryManager_QueuedQueries".into()
    }
    pub fn connect_timeout() -> u64 {
        2000
    }
    pub fn response_timeout() -> u64 {
        120_000
    }
    pub fn max_statement_bytes() -> usize {
        16 << 20
    }
    pub fn pool_max_idle() -> usize {
        64
    }
    pub fn shutdown_grace() -> u64 {
        30_000
    }
    pub fn log_level() -> String {
        "info".into()
    }
    pub fn store_url() -> String {
        "sqlite://sluice.db".into()
    }
    pub fn retention_days() -> u64 {
        7
    }
    pub fn queue_capacity() -> usize {
        100_000
    }
    pub fn batch_size() -> usize {
        500
    }
    pub fn flush_interval() -> u64 {
        50
    }
    pub fn store_timeout() -> u64 {
        500
    }
    pub fn store_health() -> u64 {
        1000
    }
    pub fn valkey_url() -> String {
        "redis://127.0.0.1:6379/0".into()
    }
    pub fn valkey_ttl() -> u64 {
        86_400
    }
    pub fn valkey_timeout() -> u64 {
        50
    }
    pub fn valkey_health() -> u64 {
        1000
    }
    pub fn valkey_pool() -> usize {
        2
    }
    pub fn search_timeout() -> u64 {
        1000
    }
    pub fn negative_ttl() -> u64 {
        5000
    }
    pub fn chain() -> Vec<super::SlotConfig> {
        vec![super::SlotConfig {
            slot: "query-count".into(),
            module: "builtin:query-count".into(),
            config: serde_yaml::Value::Null,
        }]
    }
    pub fn filter_timeout() -> u64 {
        50
    }
    pub fn filter_init_timeout() -> u64 {
        2000
    }
    pub fn filter_memory() -> u64 {
        32
    }
    pub fn filter_pool() -> usize {
        16
    }
    pub fn filter_poll() -> u64 {
        5000
    }
    pub fn filter_channel() -> String {
        "sluice:filters".into()
    }
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
    AdminConfig,
    RoutingConfig,
    L1Config,
    HealthConfig,
    MetricNames,
    ProxyConfig,
    LogConfig,
    FiltersConfig,
    ValkeyConfig,
    SearchConfig,
    StoreConfig
);

impl Default for Config {
    fn default() -> Self {
        serde_yaml::from_str("{}").expect("every field has a default")
    }
}

impl Config {
    /// Read, substitute, parse and validate a file.
    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| ConfigError(format!("cannot read {}: {e}", path.display())))?;
        Self::from_yaml(&text, &|name| std::env::var(name).ok())
            .map_err(|e| ConfigError(format!("{}: {}", path.display(), e.0)))
    }

    /// Parse and validate YAML text; `env` resolves `${VAR}` references.
    pub fn from_yaml(text: &str, env: subst::Lookup<'_>) -> Result<Config, ConfigError> {
        let text = subst::substitute(text, env).map_err(ConfigError)?;
        let config: Config = if text.trim().is_empty() {
            Config::default()
        } else {
            serde_yaml::from_str(&text).map_err(|e| ConfigError(e.to_string()))?
        };
        config
            .validate()
            .map_err(|msg| match line_of(&text, &msg) {
                Some(line) => ConfigError(format!("{} (line {line})", msg.text)),
                None => ConfigError(msg.text),
            })?;
        Ok(config)
    }

    /// Check what serde cannot: unique names, usable URLs, sane numbers, existing default group.
    pub fn validate(&self) -> Result<(), Invalid> {
        let mut names = BTreeSet::new();
        for (i, b) in self.backends.iter().enumerate() {
            let at = |field: &'static str, msg: String| Invalid {
                text: format!("backends[{i}].{field}: {msg}"),
                at: Spot::Backend(i, field),
            };
            if b.name.trim().is_empty() {
                return Err(at("name", "must not be empty".into()));
            }
            if !names.insert(b.name.as_str()) {
                return Err(at("name", format!("'{}' is used by two backends", b.name)));
            }
            check_http_url(&b.url).map_err(|m| at("url", m))?;
            if let Some(ext) = &b.external_url {
                check_url_syntax(ext).map_err(|m| at("external_url", m))?;
            }
            if b.group.trim().is_empty() {
                return Err(at("group", "must not be empty".into()));
            }
        }
        if !self.backends.is_empty()
            && !self
                .backends
                .iter()
                .any(|b| b.group == self.routing.default_group)
        {
            return Err(Invalid {
                text: format!(
                    "routing.default_group: no backend belongs to group '{}' (groups: {})",
                    self.routing.default_group,
                    self.groups().join(", ")
                ),
                at: Spot::Key("default_group"),
            });
        }
        let positive = [
            (
                "cache.l1.ttl_seconds",
                self.cache.l1.ttl_seconds,
                "ttl_seconds",
            ),
            ("health.interval_ms", self.health.interval_ms, "interval_ms"),
            ("health.timeout_ms", self.health.timeout_ms, "timeout_ms"),
            (
                "proxy.connect_timeout_ms",
                self.proxy.connect_timeout_ms,
                "connect_timeout_ms",
            ),
            (
                "proxy.response_timeout_ms",
                self.proxy.response_timeout_ms,
                "response_timeout_ms",
            ),
            (
                "proxy.max_statement_bytes",
                self.proxy.max_statement_bytes as u64,
                "max_statement_bytes",
            ),
        ];
        for (field, value, needle) in positive {
            if value == 0 {
                return Err(Invalid {
                    text: format!("{field}: must be greater than 0"),
                    at: Spot::Key(needle),
                });
            }
        }
        let mut slots = BTreeSet::new();
        for (i, slot) in self.routing.chain.iter().enumerate() {
            let at = |field: &str, msg: String| Invalid {
                text: format!("routing.chain[{i}].{field}: {msg}"),
                at: Spot::Text(slot.slot.clone()),
            };
            let valid = !slot.slot.is_empty()
                && slot.slot.len() <= 64
                && slot.slot.bytes().all(|b| {
                    b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'_'
                });
            if !valid {
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
            if let Some(name) = slot.module.strip_prefix("builtin:") {
                if !crate::filters::builtin::NAMES.contains(&name) {
                    return Err(at(
                        "module",
                        format!(
                            "unknown builtin '{name}' (builtins: {})",
                            crate::filters::builtin::NAMES.join(", ")
                        ),
                    ));
                }
            } else if !slot.module.ends_with(".wasm") {
                return Err(at(
                    "module",
                    format!(
                        "'{}' must be builtin:NAME or a path to a .wasm file",
                        slot.module
                    ),
                ));
            }
        }
        for (i, t) in self.admin.tokens.iter().enumerate() {
            let at = |msg: String| Invalid {
                text: format!("admin.tokens[{i}]: {msg}"),
                at: Spot::Key("tokens"),
            };
            match (&t.token, &t.token_sha256) {
                (Some(tok), None) if tok.len() >= 16 => {}
                (Some(_), None) => return Err(at("token must be at least 16 characters".into())),
                (None, Some(h)) if h.len() == 64 && h.bytes().all(|b| b.is_ascii_hexdigit()) => {}
                (None, Some(_)) => return Err(at("token_sha256 must be 64 hex digits".into())),
                _ => return Err(at("set exactly one of token and token_sha256".into())),
            }
        }
        let st = &self.store;
        if !st.url.is_empty() {
            if !(st.url.starts_with("sqlite:")
                || st.url.starts_with("postgres://")
                || st.url.starts_with("postgresql://"))
            {
                return Err(Invalid {
                    text: format!("store.url: '{}' must start with sqlite: or postgres:// (or be \"\" for no L3)", st.url),
                    at: Spot::Key("url"),
                });
            }
            for (field, value) in [
                ("store.queue_capacity", st.queue_capacity as u64),
                ("store.batch_size", st.batch_size as u64),
                ("store.flush_interval_ms", st.flush_interval_ms),
                ("store.timeout_ms", st.timeout_ms),
                (
                    "store.health_check_interval_ms",
                    st.health_check_interval_ms,
                ),
                ("store.history_retention_days", st.history_retention_days),
            ] {
                if value == 0 {
                    return Err(Invalid {
                        text: format!("{field}: must be greater than 0"),
                        at: Spot::Key("store"),
                    });
                }
            }
        }
        let v = &self.cache.valkey;
        if v.enabled {
            if !(v.url.starts_with("redis://")
                || v.url.starts_with("rediss://")
                || v.url.starts_with("valkey://")
                || v.url.starts_with("valkeys://"))
            {
                return Err(Invalid {
                    text: format!(
                        "cache.valkey.url: '{}' must start with redis:// or rediss://",
                        v.url
                    ),
                    at: Spot::Key("url"),
                });
            }
            for (field, value) in [
                ("cache.valkey.ttl_seconds", v.ttl_seconds),
                ("cache.valkey.timeout_ms", v.timeout_ms),
                (
                    "cache.valkey.health_check_interval_ms",
                    v.health_check_interval_ms,
                ),
                ("cache.valkey.pool_size", v.pool_size as u64),
            ] {
                if value == 0 {
                    return Err(Invalid {
                        text: format!("{field}: must be greater than 0"),
                        at: Spot::Key("valkey"),
                    });
                }
            }
        }
        for (field, value, needle) in [
            ("filters.timeout_ms", self.filters.timeout_ms, "timeout_ms"),
            (
                "filters.init_timeout_ms",
                self.filters.init_timeout_ms,
                "init_timeout_ms",
            ),
            (
                "filters.memory_limit_mb",
                self.filters.memory_limit_mb,
                "memory_limit_mb",
            ),
            (
                "filters.pool_size",
                self.filters.pool_size as u64,
                "pool_size",
            ),
        ] {
            if value == 0 {
                return Err(Invalid {
                    text: format!("{field}: must be greater than 0"),
                    at: Spot::Key(needle),
                });
            }
        }
        if self.filters.poll_interval_ms != 0 && self.filters.poll_interval_ms < 100 {
            return Err(Invalid {
                text: "filters.poll_interval_ms: 0 (off) or at least 100".into(),
                at: Spot::Key("poll_interval_ms"),
            });
        }
        if self.filters.channel.is_empty() {
            return Err(Invalid {
                text: "filters.channel: must not be empty".into(),
                at: Spot::Key("channel"),
            });
        }
        if self.filters.memory_limit_mb > crate::filters::MAX_MEMORY_MB {
            return Err(Invalid {
                text: format!(
                    "filters.memory_limit_mb: at most {} MiB",
                    crate::filters::MAX_MEMORY_MB
                ),
                at: Spot::Key("memory_limit_mb"),
            });
        }
        for (field, paths) in [
            ("proxy.extra_paths", &self.proxy.extra_paths),
            ("proxy.statement_paths", &self.proxy.statement_paths),
        ] {
            for p in paths.iter() {
                if !p.starts_with('/') || p.len() < 2 {
                    return Err(Invalid {
                        text: format!("{field}: '{p}' must be an absolute path such as /custom"),
                        at: Spot::Text(p.clone()),
                    });
                }
            }
        }
        Ok(())
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

/// A validation failure: the message, and where in the file to look for it.
#[derive(Debug)]
pub struct Invalid {
    /// The message naming the field.
    pub text: String,
    at: Spot,
}

/// Where a validation failure sits, to find its line in the text.
#[derive(Debug)]
enum Spot {
    /// The first line with `key:`.
    Key(&'static str),
    /// Field `field` of the n-th item of the top-level `backends:` list.
    Backend(usize, &'static str),
    /// The first line containing this text.
    Text(String),
}

fn line_of(text: &str, invalid: &Invalid) -> Option<usize> {
    let lines: Vec<&str> = text.lines().collect();
    let is_code = |l: &&str| !l.trim_start().starts_with('#');
    match &invalid.at {
        Spot::Key(key) => {
            let needle = format!("{key}:");
            lines.iter().position(|l| is_code(l) && l.contains(&needle))
        }
        Spot::Text(t) => lines
            .iter()
            .position(|l| is_code(l) && l.contains(t.as_str())),
        Spot::Backend(n, field) => {
            let start = lines.iter().position(|l| l.starts_with("backends:"))?;
            // block-style list items: lines whose content starts with "- " at the items' indent
            let mut items = Vec::new();
            let mut indent = None;
            let mut end = lines.len();
            for (i, l) in lines.iter().enumerate().skip(start + 1) {
                let trimmed = l.trim_start();
                if trimmed.is_empty() || trimmed.starts_with('#') {
                    continue;
                }
                let ind = l.len() - trimmed.len();
                if ind == 0 {
                    end = i;
                    break;
                }
                if trimmed.starts_with("- ") && indent.is_none_or(|x| x == ind) {
                    indent = Some(ind);
                    items.push(i);
                }
            }
            let first = *items.get(*n)?;
            let last = items.get(n + 1).copied().unwrap_or(end);
            let needle = format!("{field}:");
            (first..last)
                .find(|&i| is_code(&lines[i]) && lines[i].contains(&needle))
                .or(Some(first))
        }
    }
    .map(|i| i + 1)
}

fn check_url_syntax(url: &str) -> Result<http::Uri, String> {
    let uri: http::Uri = url
        .parse()
        .map_err(|e| format!("'{url}' is not a URL: {e}"))?;
    if uri.scheme().is_none() || uri.host().is_none() {
        return Err(format!(
            "'{url}' must be an absolute URL such as http://host:8080"
        ));
    }
    Ok(uri)
}

fn check_http_url(url: &str) -> Result<(), String> {
    let uri = check_url_syntax(url)?;
    match uri.scheme_str() {
        Some("http") => {}
        Some("https") => {
            return Err(format!(
                "'{url}': https backends are not supported yet; terminate TLS in front of the coordinator or use http"
            ))
        }
        _ => return Err(format!("'{url}' must use http://")),
    }
    if uri.path() != "/" && !uri.path().is_empty() {
        return Err(format!("'{url}' must not have a path"));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn no_env(_: &str) -> Option<String> {
        None
    }

    const ISSUE_EXAMPLE: &str = r#"
listen: 0.0.0.0:8080
admin: { listen: 127.0.0.1:8081 }
backends:
  - { name: etl-1, url: http://127.0.0.1:9001, group: etl, active: true }
  - { name: adhoc-1, url: http://127.0.0.1:9002, group: adhoc }
routing: { default_group: adhoc }
cache: { l1: { capacity: 100000, ttl_seconds: 1800 } }
health: { interval_ms: 2000, stats: ui_api }
"#;

    #[test]
    fn the_documented_keys_parse() {
        let c = Config::from_yaml(ISSUE_EXAMPLE, &no_env).unwrap();
        assert_eq!(c.backends.len(), 2);
        assert_eq!(c.backends[0].group, "etl");
        assert!(c.backends[1].active);
        assert_eq!(c.health.stats, StatsSource::UiApi);
        assert_eq!(c.cache.l1.capacity, 100_000);
        assert_eq!(c.groups(), vec!["adhoc", "etl"]);
    }

    #[test]
    fn empty_file_gives_defaults() {
        let c = Config::from_yaml("", &no_env).unwrap();
        assert_eq!(c.listen.port(), 8080);
        assert_eq!(c.routing.default_group, "adhoc");
        assert!(!c.routing.strict_groups);
    }

    #[test]
    fn unknown_keys_are_rejected_with_field_and_line() {
        let text = "backends:\n  - name: a\n    url: http://h:1\n    colour: red\n";
        let err = Config::from_yaml(text, &no_env).unwrap_err().0;
        assert!(err.contains("colour"), "{err}");
        assert!(err.contains("backends[0]"), "{err}");
        assert!(err.contains("line 4"), "{err}");
    }

    #[test]
    fn wrong_types_name_the_field() {
        let err = Config::from_yaml("health:\n  interval_ms: soon\n", &no_env)
            .unwrap_err()
            .0;
        assert!(err.contains("health.interval_ms"), "{err}");
        assert!(err.contains("line 2"), "{err}");
    }

    #[test]
    fn env_substitution_feeds_the_parser() {
        let env = |n: &str| (n == "PORT").then(|| "9009".to_string());
        let text = "backends:\n  - { name: a, url: 'http://127.0.0.1:${PORT}' }\n";
        let c = Config::from_yaml(text, &env).unwrap();
        assert_eq!(c.backends[0].url, "http://127.0.0.1:9009");
    }

    #[test]
    fn validation_names_field_and_line() {
        let text =
            "backends:\n  - { name: a, url: http://h:1 }\n  - { name: a, url: http://h:2 }\n";
        let err = Config::from_yaml(text, &no_env).unwrap_err().0;
        assert!(err.contains("backends[1].name"), "{err}");
        assert!(err.contains("used by two"), "{err}");
        assert!(err.contains("line 3"), "{err}");

        let text = "# backends\nbackends:\n  - name: a\n    url: http://h:1\n  - name: b\n    group: adhoc\n    url: 'http://h:2/path'\n";
        let err = Config::from_yaml(text, &no_env).unwrap_err().0;
        assert!(err.contains("backends[1].url"), "{err}");
        assert!(err.contains("line 7"), "{err}");

        let text = "backends:\n  - { name: a, url: 'ftp://h:1' }\n";
        let err = Config::from_yaml(text, &no_env).unwrap_err().0;
        assert!(err.contains("backends[0].url"), "{err}");
        assert!(err.contains("line 2"), "{err}");

        let text = "backends:\n  - { name: a, url: 'http://h:1', group: etl }\n";
        let err = Config::from_yaml(text, &no_env).unwrap_err().0;
        assert!(err.contains("routing.default_group"), "{err}");

        let err = Config::from_yaml("cache: { l1: { ttl_seconds: 0 } }", &no_env)
            .unwrap_err()
            .0;
        assert!(err.contains("cache.l1.ttl_seconds"), "{err}");

        let err = Config::from_yaml("proxy: { extra_paths: [nope] }", &no_env)
            .unwrap_err()
            .0;
        assert!(err.contains("proxy.extra_paths"), "{err}");
    }

    #[test]
    fn broken_yaml_is_an_error_with_a_line() {
        let err = Config::from_yaml("backends: [\n  {name: a\n", &no_env)
            .unwrap_err()
            .0;
        assert!(err.contains("line"), "{err}");
    }

    #[test]
    fn example_configs_in_the_repo_are_valid() {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../config");
        let mut seen = 0;
        for entry in std::fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            if path.extension().is_some_and(|e| e == "yaml") {
                let text = std::fs::read_to_string(&path).unwrap();
                let env = |n: &str| (n == "SLUICE_TEST_SET").then(String::new);
                Config::from_yaml(&text, &env)
                    .unwrap_or_else(|e| panic!("{}: {e}", path.display()));
                seen += 1;
            }
        }
        assert!(
            seen >= 2,
            "config/ should hold an example per deployment shape"
        );
    }
}
