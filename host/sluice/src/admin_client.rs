//! `sluice filter …`: the command line side of the admin API. It talks to the admin listener
//! named by `--admin-url` / `SLUICE_ADMIN_URL` with the bearer token in `SLUICE_ADMIN_TOKEN`,
//! prints a readable summary (or the server's JSON with `--json`), and fails with the server's
//! message.
use std::time::Duration;

use anyhow::{anyhow, bail, Context};
use bytes::Bytes;
use http::{header, Method, Request, StatusCode};
use http_body_util::BodyExt;
use serde_json::Value;
use sluice_admin::api::{ErrorReply, FilterView, FleetView, SwapReply, VersionRow};
use sluice_http::client::{self, Client, ClientOptions};

/// How long one admin call may take (a swap compiles a module).
const TIMEOUT: Duration = Duration::from_secs(120);

/// One admin API endpoint and its credentials.
pub struct AdminClient {
    base: String,
    token: Option<String>,
    http: Client,
}

impl AdminClient {
    /// A client of `admin_url` (`http://host:port`, or `https://` with the system's roots —
    /// `SSL_CERT_FILE` names a private CA's bundle), authenticating with `token`.
    pub fn new(admin_url: &str, token: Option<String>) -> anyhow::Result<Self> {
        let base = admin_url.trim_end_matches('/').to_string();
        let uri: http::Uri = base
            .parse()
            .with_context(|| format!("--admin-url '{admin_url}' is not a URL"))?;
        match uri.scheme_str() {
            Some("http" | "https") => {}
            Some(other) => bail!("--admin-url: http:// or https:// (got {other}://)"),
            None => {
                bail!("--admin-url '{admin_url}' needs a scheme, such as http://127.0.0.1:8081")
            }
        }
        Ok(Self {
            base,
            token: token.filter(|t| !t.is_empty()),
            http: client::build(&ClientOptions::default()),
        })
    }

    /// Send one request; the JSON answer, or an error carrying the server's message.
    pub async fn call(
        &self,
        method: Method,
        path: &str,
        content_type: Option<&str>,
        body: Bytes,
    ) -> anyhow::Result<Value> {
        let mut req = Request::builder()
            .method(method.clone())
            .uri(format!("{}{path}", self.base));
        if let Some(t) = &self.token {
            req = req.header(header::AUTHORIZATION, format!("Bearer {t}"));
        }
        if let Some(ct) = content_type {
            req = req.header(header::CONTENT_TYPE, ct);
        }
        let req = req.body(sluice_http::full_body(body))?;
        let resp = tokio::time::timeout(TIMEOUT, self.http.request(req))
            .await
            .map_err(|_| anyhow!("{method} {path}: no answer within {} s", TIMEOUT.as_secs()))?
            .with_context(|| format!("cannot reach the admin API at {}", self.base))?;
        let status = resp.status();
        let bytes = resp.into_body().collect().await?.to_bytes();
        let value: Value = serde_json::from_slice(&bytes)
            .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&bytes).trim().to_string()));
        if status.is_success() {
            return Ok(value);
        }
        let message = serde_json::from_value::<ErrorReply>(value.clone())
            .map(|e| e.error)
            .unwrap_or_else(|_| value.to_string());
        let hint = match status {
            StatusCode::UNAUTHORIZED => " (set SLUICE_ADMIN_TOKEN)",
            _ => "",
        };
        bail!("{status}: {message}{hint}")
    }

    /// GET.
    pub async fn get(&self, path: &str) -> anyhow::Result<Value> {
        self.call(Method::GET, path, None, Bytes::new()).await
    }
}

/// A short form of a sha256 for tables.
pub fn short(sha: &str) -> &str {
    &sha[..sha.len().min(12)]
}

/// `GET /api/v1/filters` as a table.
pub fn print_filters(list: &[FilterView]) {
    println!(
        "{:<16} {:>7}  {:<12}  {:>9} {:>6} {:>8}  MODULE",
        "SLOT", "VERSION", "SHA256", "CALLS", "TRAPS", "TIMEOUTS"
    );
    for f in list {
        println!(
            "{:<16} {:>7}  {:<12}  {:>9} {:>6} {:>8}  {}",
            f.slot,
            f.version,
            short(&f.sha256),
            f.stats.calls,
            f.stats.traps,
            f.stats.timeouts,
            f.module,
        );
    }
}

/// The answer to a swap, in one line.
pub fn print_swap(v: &SwapReply) {
    let previous = v
        .previous_sha256
        .as_deref()
        .map(|p| format!(" (was {})", short(p)))
        .unwrap_or_default();
    println!(
        "slot {} now runs version {} sha256 {}{}",
        v.slot, v.version, v.sha256, previous
    );
}

/// `GET /api/v1/filters/{slot}/versions` as a table.
pub fn print_versions(rows: &[VersionRow]) {
    println!(
        "{:>7}  {:<12}  {:<20}  {:<20}  ACTIVE",
        "VERSION", "SHA256", "CREATED", "BY"
    );
    for row in rows {
        println!(
            "{:>7}  {:<12}  {:<20}  {:<20}  {}",
            row.version,
            short(&row.sha256),
            utc(row.created_at),
            row.created_by.as_deref().unwrap_or("-"),
            if row.active { "*" } else { "" }
        );
    }
}

/// Milliseconds since the epoch as RFC 3339 UTC, to the second.
fn utc(ms: i64) -> String {
    let at = std::time::UNIX_EPOCH + Duration::from_millis(ms.max(0) as u64);
    humantime::format_rfc3339_seconds(at).to_string()
}

/// `GET /api/v1/fleet` as a table.
pub fn print_fleet(v: &FleetView) {
    println!("converged: {}", if v.converged { "yes" } else { "NO" });
    println!(
        "{:<28} {:<16} {:>7}  {:<12}  STATE",
        "INSTANCE", "SLOT", "VERSION", "SHA256"
    );
    for i in &v.instances {
        for s in &i.slots {
            let state = if i.stale {
                "stale".to_string()
            } else if let Some(e) = &s.error {
                format!("FAILED: {e}")
            } else if s.current {
                "current".to_string()
            } else {
                "behind".to_string()
            };
            println!(
                "{:<28} {:<16} {:>7}  {:<12}  {}",
                i.instance_id,
                s.slot,
                s.version,
                short(&s.sha256),
                state
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timestamps_print_as_utc() {
        assert_eq!(utc(0), "1970-01-01T00:00:00Z");
        assert_eq!(utc(1_795_550_507_000), "2026-11-24T20:01:47Z");
    }
}
