//! `proxy:`: forwarding — timeouts, body limits, extra paths, forwarded headers.
use serde::{Deserialize, Serialize};

use crate::defaults;
use crate::invalid::{positive, Invalid};

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

impl ProxyConfig {
    /// Positive time limits and body bound; extra paths are absolute.
    pub fn validate(&self) -> Result<(), Invalid> {
        positive("connect_timeout_ms", self.connect_timeout_ms)?;
        positive("response_timeout_ms", self.response_timeout_ms)?;
        positive("max_statement_bytes", self.max_statement_bytes as u64)?;
        for (field, paths) in [
            ("extra_paths", &self.extra_paths),
            ("statement_paths", &self.statement_paths),
        ] {
            for (i, p) in paths.iter().enumerate() {
                if !p.starts_with('/') || p.len() < 2 {
                    return Err(Invalid::new(
                        format!("{field}[{i}]"),
                        format!("'{p}' must be an absolute path such as /custom"),
                    ));
                }
            }
        }
        Ok(())
    }
}
