//! `admin:`: the admin listener and who may use its API.
use std::net::SocketAddr;

use serde::{Deserialize, Serialize};

use crate::defaults;
use crate::invalid::Invalid;
use crate::tls::ServerTlsConfig;

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
    /// Also serve Trino Gateway's backend API (`/entity`, `/gateway/backend/…`,
    /// `/api/public/backends`) on the proxy listener, as Trino Gateway does on its one port
    /// (default false: only on the admin listener). Same tokens and roles either way.
    #[serde(default)]
    pub trino_gateway_api_on_proxy: bool,
    /// Admin connections open at most (default 256): its own budget, so the admin API answers
    /// when the client listener is saturated.
    #[serde(default = "defaults::admin_max_connections")]
    pub max_connections: usize,
    /// HTTPS on the admin listener (the console, the API, `/metrics`).
    #[serde(default)]
    pub tls: Option<ServerTlsConfig>,
    /// The web console's login sessions.
    #[serde(default)]
    pub console: ConsoleConfig,
}

/// `admin.console`: the web console's sessions.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct ConsoleConfig {
    /// HMAC key signing session cookies (use `${VAR}`, at least 16 bytes); every instance of a
    /// fleet behind one address needs the same. Without it, a random key of this process:
    /// sessions end when it restarts.
    #[serde(default)]
    pub session_secret: Option<String>,
    /// How long a login lasts (default 28800 s: 8 hours).
    #[serde(default = "defaults::console_session_ttl")]
    pub session_ttl_seconds: u64,
}

impl Default for ConsoleConfig {
    fn default() -> Self {
        Self {
            session_secret: None,
            session_ttl_seconds: defaults::console_session_ttl(),
        }
    }
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

impl AdminConfig {
    /// Every token is long enough, or given by a well-formed sha256.
    pub fn validate(&self) -> Result<(), Invalid> {
        if let Some(tls) = &self.tls {
            tls.validate().map_err(|e| e.under("tls"))?;
            if tls.listen.is_some() {
                return Err(Invalid::new(
                    "tls.listen",
                    "the admin listener serves HTTPS on admin.listen itself: remove tls.listen",
                ));
            }
        }
        if let Some(secret) = self.console.session_secret.as_deref() {
            if !secret.is_empty() && secret.len() < 16 {
                return Err(Invalid::new(
                    "console.session_secret",
                    "must be at least 16 bytes (or left out: a random key per process)",
                ));
            }
        }
        if self.console.session_ttl_seconds == 0 {
            return Err(Invalid::new(
                "console.session_ttl_seconds",
                "must be positive",
            ));
        }
        for (i, t) in self.tokens.iter().enumerate() {
            let at = |msg: &str| Invalid::new(format!("tokens[{i}]"), msg);
            match (&t.token, &t.token_sha256) {
                (Some(tok), None) if tok.len() >= 16 => {}
                (Some(_), None) => return Err(at("token must be at least 16 characters")),
                (None, Some(h)) if h.len() == 64 && h.bytes().all(|b| b.is_ascii_hexdigit()) => {}
                (None, Some(_)) => return Err(at("token_sha256 must be 64 hex digits")),
                _ => return Err(at("set exactly one of token and token_sha256")),
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use crate::Config;

    #[test]
    fn tokens_are_long_enough_or_hashed() {
        let no_env = |_: &str| None;
        let err = Config::from_yaml(
            "admin:\n  tokens:\n    - { token: short, role: admin }\n",
            &no_env,
        )
        .unwrap_err()
        .to_string();
        assert!(err.contains("admin.tokens[0]"), "{err}");
        assert!(err.contains("line 3"), "{err}");
        let hash = "ab".repeat(32);
        let text = format!("admin:\n  tokens:\n    - {{ token_sha256: '{hash}', role: viewer }}\n");
        assert!(Config::from_yaml(&text, &no_env).is_ok());
    }
}
