//! `proxy:`: forwarding — timeouts, body limits, extra paths, forwarded headers.
use serde::{Deserialize, Serialize};

use crate::defaults;
use crate::invalid::{positive, Invalid};
use crate::tls::ServerTlsConfig;

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
    /// Time a client has to send a request's headers (default 10000 ms, nginx's
    /// `client_header_timeout` is 60 s); a slowloris client is cut off.
    #[serde(default = "defaults::header_read_timeout")]
    pub header_read_timeout_ms: u64,
    /// Time a request body may go without a byte (default 60000 ms, as nginx's
    /// `client_body_timeout`); the client gets 408.
    #[serde(default = "defaults::body_timeout")]
    pub body_timeout_ms: u64,
    /// A client connection with no request in flight and no byte moved for this long is closed
    /// (default 75000 ms, as nginx's `keepalive_timeout`).
    #[serde(default = "defaults::idle_timeout")]
    pub idle_timeout_ms: u64,
    /// Client connections open at most; beyond, a connection gets 503 and is closed (default
    /// 10000).
    #[serde(default = "defaults::max_connections")]
    pub max_connections: usize,
    /// Statement bytes held in memory across all connections at once (default 256 MiB); a
    /// statement that would go past it is answered 503 and its bytes are not read.
    #[serde(default = "defaults::statement_memory")]
    pub statement_memory_bytes: usize,
    /// Login flows (OAuth2, the web UI's login) stay on one cluster through a signed cookie.
    #[serde(default)]
    pub login_cookie: LoginCookieConfig,
    /// How client connections are served: `shared` (tokio's work-stealing threads, the default)
    /// or `per_core` (a thread per core, each with its own listening socket and backend pool).
    #[serde(default)]
    pub serving: Serving,
    /// Bodiless requests to plain-HTTP backends (follow-up polls, cancels, UI and info
    /// requests) go over Sluice's own lean HTTP/1.1 relay instead of hyper's client (default
    /// true; `false` sends everything through hyper's client).
    #[serde(default = "defaults::yes")]
    pub relay: bool,
    /// Threads with `serving: per_core` (default 0: one per core this process may use).
    #[serde(default)]
    pub workers: usize,
    /// HTTPS for clients: on `listen` itself, or on a second listener `tls.listen` beside the
    /// plain one. Trino's password and OAuth2 authentication need it.
    #[serde(default)]
    pub tls: Option<ServerTlsConfig>,
}

/// `proxy.serving`: which threads answer client connections.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Serving {
    /// Every connection on tokio's work-stealing runtime, shared with the gateway's other work.
    #[default]
    Shared,
    /// One current-thread runtime per core; the kernel spreads connections over one
    /// `SO_REUSEPORT` socket each, and a connection never leaves its thread.
    PerCore,
}

/// `proxy.login_cookie`: the cookie that keeps a login flow, and the web UI session it opens, on
/// the cluster that began it (as Trino Gateway's cookie routing does).
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct LoginCookieConfig {
    /// HMAC key signing the cookie (use `${VAR}`); every instance of a fleet needs the same one.
    /// Without one, each process makes its own: fine for one instance.
    #[serde(default)]
    pub secret: Option<String>,
    /// How long a cookie names its cluster (default 3600 s).
    #[serde(default = "defaults::login_cookie_ttl")]
    pub ttl_seconds: u64,
    /// Path prefixes that begin a login flow: the answer sets the cookie.
    #[serde(default = "defaults::login_paths")]
    pub paths: Vec<String>,
}

impl ProxyConfig {
    /// Positive time limits and body bound; extra paths are absolute.
    pub fn validate(&self) -> Result<(), Invalid> {
        positive("connect_timeout_ms", self.connect_timeout_ms)?;
        positive("response_timeout_ms", self.response_timeout_ms)?;
        positive("max_statement_bytes", self.max_statement_bytes as u64)?;
        positive("header_read_timeout_ms", self.header_read_timeout_ms)?;
        positive("body_timeout_ms", self.body_timeout_ms)?;
        positive("idle_timeout_ms", self.idle_timeout_ms)?;
        positive("max_connections", self.max_connections as u64)?;
        if self.statement_memory_bytes < self.max_statement_bytes {
            return Err(Invalid::new(
                "statement_memory_bytes",
                format!(
                    "must hold at least one statement of max_statement_bytes ({})",
                    self.max_statement_bytes
                ),
            ));
        }
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
        if let Some(tls) = &self.tls {
            tls.validate().map_err(|e| e.under("tls"))?;
        }
        positive("login_cookie.ttl_seconds", self.login_cookie.ttl_seconds)?;
        if let Some(secret) = self.login_cookie.secret.as_deref() {
            if !secret.is_empty() && secret.len() < 16 {
                return Err(Invalid::new(
                    "login_cookie.secret",
                    "at least 16 characters (it signs the cookie)",
                ));
            }
        }
        for (i, p) in self.login_cookie.paths.iter().enumerate() {
            if !p.starts_with('/') {
                return Err(Invalid::new(
                    format!("login_cookie.paths[{i}]"),
                    format!("'{p}' must be an absolute path such as /oauth2"),
                ));
            }
        }
        Ok(())
    }
}
