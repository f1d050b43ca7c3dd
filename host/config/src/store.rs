//! `store:`: L3, the SQL store.
use serde::{Deserialize, Serialize};

use crate::defaults;
use crate::invalid::{positive, Invalid};

/// L3: query mappings, history and filter modules in SQL.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct StoreConfig {
    /// `sqlite://sluice.db` (default; created on first start), `sqlite::memory:`,
    /// `postgres://user:pass@host/db`, `mysql://user:pass@host/db` (MySQL or MariaDB; also
    /// `mariadb://`), or `""` for no L3.
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
    /// How often each instance re-reads the backends from the store, to follow a change it missed
    /// the announcement of (default 1000 ms; changes announced on `backends_channel` arrive at
    /// once).
    #[serde(default = "defaults::backends_poll")]
    pub backends_poll_interval_ms: u64,
    /// The Valkey pub/sub channel on which backend changes are announced to the fleet.
    #[serde(default = "defaults::backends_channel")]
    pub backends_channel: String,
    /// Trino Gateway's database, when Sluice runs where Trino Gateway ran (docs/migrate.md).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub trino_gateway: Option<TrinoGatewayStore>,
}

/// Trino Gateway's database (PostgreSQL or MySQL): its clusters are followed, and its query
/// history written, so its UI, its tools and a switch back keep working.
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct TrinoGatewayStore {
    /// `postgres://…` or `mysql://…` of Trino Gateway's database.
    pub url: String,
    /// The schema (PostgreSQL) or database (MySQL) for Sluice's own tables, created at start when
    /// missing (default `sluice`); `store.url` names it (`sluice convert-config` writes both).
    #[serde(default = "defaults::tg_schema")]
    pub schema: String,
    /// Follow `gateway_backend`: its clusters are Sluice's backends, and changes through Sluice's
    /// API are written back to it (default true).
    #[serde(default = "defaults::yes")]
    pub backends: bool,
    /// Also write each query's history row into its `query_history` (default true).
    #[serde(default = "defaults::yes")]
    pub history: bool,
    /// How often `gateway_backend` is read (default 5000 ms).
    #[serde(default = "defaults::tg_poll")]
    pub poll_interval_ms: u64,
}

impl StoreConfig {
    /// A SQLite, PostgreSQL or MySQL URL (or none) and positive limits.
    pub fn validate(&self) -> Result<(), Invalid> {
        if self.url.is_empty() {
            return Ok(());
        }
        let dialects = [
            "sqlite:",
            "postgres://",
            "postgresql://",
            "mysql://",
            "mariadb://",
        ];
        if !dialects.iter().any(|d| self.url.starts_with(d)) {
            return Err(Invalid::new(
                "url",
                format!(
                    "'{}' must start with sqlite:, postgres://, mysql:// or mariadb:// (or be \"\" for no L3)",
                    self.url
                ),
            ));
        }
        if let Some(rest) = self.url.split_once("://").map(|(_, r)| r) {
            if !self.url.starts_with("sqlite") {
                let authority = rest.split(['/', '?']).next();
                crate::backends::check_port("url", &self.url, authority)?;
            }
        }
        positive("queue_capacity", self.queue_capacity as u64)?;
        positive("batch_size", self.batch_size as u64)?;
        positive("flush_interval_ms", self.flush_interval_ms)?;
        positive("timeout_ms", self.timeout_ms)?;
        positive("health_check_interval_ms", self.health_check_interval_ms)?;
        positive("history_retention_days", self.history_retention_days)?;
        if self.backends_poll_interval_ms < 100 {
            return Err(Invalid::new("backends_poll_interval_ms", "at least 100"));
        }
        if self.backends_channel.is_empty() {
            return Err(Invalid::new("backends_channel", "must not be empty"));
        }
        if let Some(tg) = &self.trino_gateway {
            let at = |f: &str, m: String| Invalid::new(format!("trino_gateway.{f}"), m);
            let dialects = ["postgres://", "postgresql://", "mysql://", "mariadb://"];
            if !dialects.iter().any(|d| tg.url.starts_with(d)) {
                return Err(at(
                    "url",
                    "Trino Gateway's database: postgres:// or mysql://".into(),
                ));
            }
            if tg.url == self.url {
                return Err(at(
                    "url",
                    "Sluice's own tables cannot share Trino Gateway's schema (both have query_history): give store.url another schema or database".into(),
                ));
            }
            if tg.schema.is_empty()
                || !tg
                    .schema
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '_')
            {
                return Err(at("schema", "letters, digits and _".into()));
            }
            if tg.poll_interval_ms < 100 {
                return Err(at("poll_interval_ms", "at least 100".into()));
            }
        }
        Ok(())
    }
}
