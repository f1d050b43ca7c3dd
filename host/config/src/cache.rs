//! `cache:`: the query-state tiers above the store.
use serde::{Deserialize, Serialize};

use crate::defaults;
use crate::invalid::{positive, Invalid};
use crate::tls::ClientTlsConfig;

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
    /// With a `rediss://` URL: the CA to trust (a private one) and a client certificate.
    #[serde(default)]
    pub tls: ClientTlsConfig,
    /// `standalone` (one server at `url`), `cluster` (a Redis/Valkey Cluster: `nodes` are seed
    /// nodes, default `url`) or `sentinel` (`nodes` are the Sentinels; the master they name
    /// `sentinel_master` is used, with `url`'s password, database and TLS).
    #[serde(default)]
    pub mode: ValkeyMode,
    /// Cluster seed nodes or Sentinels, as `redis://host:port` (`rediss://` for TLS).
    #[serde(default)]
    pub nodes: Vec<String>,
    /// The master's name in the Sentinels' configuration (default `mymaster`).
    #[serde(default = "defaults::sentinel_master")]
    pub sentinel_master: String,
}

/// `cache.valkey.mode`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ValkeyMode {
    /// One server (or a managed endpoint that hides its topology).
    #[default]
    Standalone,
    /// Redis/Valkey Cluster: keys spread over shards, topology discovered from the seeds.
    Cluster,
    /// A master found through Sentinel, followed across failovers.
    Sentinel,
}

/// Searching the backends for an unknown query id.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct SearchConfig {
    /// Ask every backend (inactive and draining too) `GET /v1/query/{id}` when no tier knows the
    /// id (default true).
    #[serde(default = "defaults::yes")]
    pub enabled: bool,
    /// Time limit of the search (default 1000 ms).
    #[serde(default = "defaults::search_timeout")]
    pub timeout_ms: u64,
    /// How long an id nobody owns is remembered as unknown (default 5000 ms), so a flood of bogus
    /// ids cannot fan out to the clusters.
    #[serde(default = "defaults::negative_ttl")]
    pub negative_ttl_ms: u64,
    /// User the search sends (default: `health.user`, with `health`'s password or token).
    #[serde(default)]
    pub user: Option<String>,
    /// Basic auth password of the search's own user (use `${VAR}`).
    #[serde(default)]
    pub password: Option<String>,
    /// Bearer token of the search's own user (use `${VAR}`).
    #[serde(default)]
    pub bearer_token: Option<String>,
}

impl CacheConfig {
    /// Each tier's settings.
    pub fn validate(&self) -> Result<(), Invalid> {
        positive("ttl_seconds", self.l1.ttl_seconds).map_err(|e| e.under("l1"))?;
        let s = &self.search;
        if s.password.as_deref().is_some_and(|p| !p.is_empty())
            && s.bearer_token.as_deref().is_some_and(|t| !t.is_empty())
        {
            return Err(Invalid::new(
                "search.bearer_token",
                "set a password or a bearer token, not both",
            ));
        }
        self.valkey.validate().map_err(|e| e.under("valkey"))
    }
}

impl ValkeyConfig {
    /// When enabled: a `redis://`-style URL and positive limits.
    pub fn validate(&self) -> Result<(), Invalid> {
        self.tls.validate().map_err(|e| e.under("tls"))?;
        if !self.enabled {
            return Ok(());
        }
        let schemes = ["redis://", "rediss://", "valkey://", "valkeys://"];
        if !schemes.iter().any(|s| self.url.starts_with(s)) {
            return Err(Invalid::new(
                "url",
                format!("'{}' must start with redis:// or rediss://", self.url),
            ));
        }
        let tls_url = ["rediss://", "valkeys://"]
            .iter()
            .any(|s| self.url.starts_with(s));
        if !tls_url && (self.tls.ca.is_some() || self.tls.client_cert.is_some()) {
            return Err(Invalid::new(
                "tls",
                format!("set, but '{}' is not a TLS URL: use rediss://", self.url),
            ));
        }
        let rest = self.url.split_once("://").map(|(_, r)| r).unwrap_or("");
        let authority = rest.split(['/', '?']).next();
        crate::backends::check_port("url", &self.url, authority)?;
        for (i, node) in self.nodes.iter().enumerate() {
            if !schemes.iter().any(|s| node.starts_with(s)) {
                return Err(Invalid::new(
                    format!("nodes[{i}]"),
                    format!("'{node}' must start with redis:// or rediss://"),
                ));
            }
            let rest = node.split_once("://").map(|(_, r)| r).unwrap_or("");
            crate::backends::check_port(
                &format!("nodes[{i}]"),
                node,
                rest.split(['/', '?']).next(),
            )?;
        }
        if self.mode == ValkeyMode::Sentinel && self.nodes.is_empty() {
            return Err(Invalid::new(
                "nodes",
                "mode: sentinel needs the Sentinels' addresses (redis://host:26379)",
            ));
        }
        if self.mode == ValkeyMode::Sentinel && self.sentinel_master.is_empty() {
            return Err(Invalid::new("sentinel_master", "the master's name"));
        }
        positive("ttl_seconds", self.ttl_seconds)?;
        positive("timeout_ms", self.timeout_ms)?;
        positive("health_check_interval_ms", self.health_check_interval_ms)?;
        positive("pool_size", self.pool_size as u64)
    }
}
