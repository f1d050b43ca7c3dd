//! `sluice filter …`: the command line side of the admin API. It talks to the admin listener
//! named by `--admin-url` / `SLUICE_ADMIN_URL` with the bearer token in `SLUICE_ADMIN_TOKEN`,
//! prints a readable summary (or the server's JSON with `--json`), and fails with the server's
//! message.
use std::time::Duration;

use anyhow::{anyhow, bail, Context};
use bytes::Bytes;
use http::{header, Method, Request, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use serde_json::Value;

/// How long one admin call may take (a swap compiles a module).
const TIMEOUT: Duration = Duration::from_secs(120);

/// One admin API endpoint and its credentials.
pub struct AdminClient {
    base: String,
    token: Option<String>,
    http: Client<hyper_util::client::legacy::connect::HttpConnector, Full<Bytes>>,
}

impl AdminClient {
    /// A client of `admin_url` (`http://host:port`), authenticating with `token`.
    pub fn new(admin_url: &str, token: Option<String>) -> anyhow::Result<Self> {
        let base = admin_url.trim_end_matches('/').to_string();
        let uri: http::Uri = base
            .parse()
            .with_context(|| format!("--admin-url '{admin_url}' is not a URL"))?;
        match uri.scheme_str() {
            Some("http") => {}
            Some(other) => bail!("--admin-url: only http:// is supported (got {other}://); the admin listener is meant for loopback or a private network"),
            None => bail!("--admin-url '{admin_url}' needs a scheme, such as http://127.0.0.1:8081"),
        }
        Ok(Self {
            base,
            token: token.filter(|t| !t.is_empty()),
            http: Client::builder(TokioExecutor::new()).build_http(),
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
        let req = req.body(Full::new(body))?;
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
        let message = value
            .get("error")
            .and_then(Value::as_str)
            .map(str::to_string)
            .unwrap_or_else(|| value.to_string());
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

/// `multipart/form-data` with the parts `module` (the component) and `config` (YAML or JSON).
pub fn multipart_upload(module: &[u8], config: &str) -> (String, Bytes) {
    let boundary = format!("sluice-{:032x}", rand::random::<u128>());
    let mut body = Vec::with_capacity(module.len() + config.len() + 512);
    body.extend_from_slice(format!(
        "--{boundary}\r\nContent-Disposition: form-data; name=\"module\"; filename=\"module.wasm\"\r\nContent-Type: application/wasm\r\n\r\n"
    ).as_bytes());
    body.extend_from_slice(module);
    body.extend_from_slice(format!(
        "\r\n--{boundary}\r\nContent-Disposition: form-data; name=\"config\"\r\nContent-Type: application/yaml\r\n\r\n"
    ).as_bytes());
    body.extend_from_slice(config.as_bytes());
    body.extend_from_slice(format!("\r\n--{boundary}--\r\n").as_bytes());
    (
        format!("multipart/form-data; boundary={boundary}"),
        body.into(),
    )
}

/// A short form of a sha256 for tables.
pub fn short(sha: &str) -> &str {
    &sha[..sha.len().min(12)]
}

/// `GET /api/v1/filters` as a table.
pub fn print_filters(list: &Value) {
    println!(
        "{:<16} {:>7}  {:<12}  {:>9} {:>6} {:>8}  MODULE",
        "SLOT", "VERSION", "SHA256", "CALLS", "TRAPS", "TIMEOUTS"
    );
    for f in list.as_array().into_iter().flatten() {
        let stat = |k: &str| f["stats"][k].as_u64().unwrap_or(0);
        println!(
            "{:<16} {:>7}  {:<12}  {:>9} {:>6} {:>8}  {}",
            f["slot"].as_str().unwrap_or("?"),
            f["version"].as_i64().unwrap_or(0),
            short(f["sha256"].as_str().unwrap_or("")),
            stat("calls"),
            stat("traps"),
            stat("timeouts"),
            f["module"].as_str().unwrap_or(""),
        );
    }
}

/// The answer to a swap, in one line.
pub fn print_swap(v: &Value) {
    let previous = v["previous_sha256"]
        .as_str()
        .map(|p| format!(" (was {})", short(p)))
        .unwrap_or_default();
    println!(
        "slot {} now runs version {} sha256 {}{}",
        v["slot"].as_str().unwrap_or("?"),
        v["version"].as_i64().unwrap_or(0),
        v["sha256"].as_str().unwrap_or("?"),
        previous
    );
}

/// `GET /api/v1/filters/{slot}/versions` as a table.
pub fn print_versions(v: &Value) {
    println!(
        "{:>7}  {:<12}  {:<20}  {:<20}  ACTIVE",
        "VERSION", "SHA256", "CREATED", "BY"
    );
    for row in v.as_array().into_iter().flatten() {
        let created = row["created_at"].as_i64().map(utc).unwrap_or_default();
        println!(
            "{:>7}  {:<12}  {:<20}  {:<20}  {}",
            row["version"].as_i64().unwrap_or(0),
            short(row["sha256"].as_str().unwrap_or("")),
            created,
            row["created_by"].as_str().unwrap_or("-"),
            if row["active"].as_bool().unwrap_or(false) {
                "*"
            } else {
                ""
            }
        );
    }
}

/// Milliseconds since the epoch as RFC 3339 UTC, to the second.
fn utc(ms: i64) -> String {
    let at = std::time::UNIX_EPOCH + Duration::from_millis(ms.max(0) as u64);
    humantime::format_rfc3339_seconds(at).to_string()
}

/// `GET /api/v1/fleet` as a table.
pub fn print_fleet(v: &Value) {
    println!(
        "converged: {}",
        if v["converged"].as_bool().unwrap_or(false) {
            "yes"
        } else {
            "NO"
        }
    );
    println!(
        "{:<28} {:<16} {:>7}  {:<12}  STATE",
        "INSTANCE", "SLOT", "VERSION", "SHA256"
    );
    for i in v["instances"].as_array().into_iter().flatten() {
        for s in i["slots"].as_array().into_iter().flatten() {
            let state = if i["stale"].as_bool().unwrap_or(false) {
                "stale".to_string()
            } else if let Some(e) = s["error"].as_str() {
                format!("FAILED: {e}")
            } else if s["current"].as_bool().unwrap_or(false) {
                "current".to_string()
            } else {
                "behind".to_string()
            };
            println!(
                "{:<28} {:<16} {:>7}  {:<12}  {}",
                i["instance_id"].as_str().unwrap_or("?"),
                s["slot"].as_str().unwrap_or("?"),
                s["version"].as_i64().unwrap_or(0),
                short(s["sha256"].as_str().unwrap_or("")),
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

    #[test]
    fn multipart_bodies_parse_back_into_module_and_config() {
        let module = b"\0asm\x0d\0\x01\0binary\r\n--not-a-boundary";
        let (ct, body) = multipart_upload(module, "window_seconds: 5\n");
        let boundary = multer::parse_boundary(&ct).unwrap();
        let rt = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        rt.block_on(async {
            let stream =
                futures_util::stream::once(async move { Ok::<_, std::convert::Infallible>(body) });
            let mut form = multer::Multipart::new(stream, boundary);
            let f = form.next_field().await.unwrap().unwrap();
            assert_eq!(f.name(), Some("module"));
            assert_eq!(&f.bytes().await.unwrap()[..], &module[..]);
            let f = form.next_field().await.unwrap().unwrap();
            assert_eq!(f.name(), Some("config"));
            assert_eq!(f.text().await.unwrap(), "window_seconds: 5\n");
            assert!(form.next_field().await.unwrap().is_none());
        });
    }
}
