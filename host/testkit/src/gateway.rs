//! A gateway on two ephemeral loopback ports ([`Gw`]), with a small client for the Trino protocol
//! and the admin API.
use std::time::Duration;

use bytes::Bytes;
use http::{Method, Request, StatusCode};
use http_body_util::BodyExt;
use serde_json::Value;
use sluice_config::Config;
use sluice_gateway::Gateway;
use sluice_http::client::{self, Client, ClientOptions};
use sluice_http::{empty_body, full_body, Body};
use tokio::net::TcpListener;

/// A gateway running `config` on two loopback ports, once its first health round is done.
pub async fn start_gateway(config: Config) -> Gateway {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let admin = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let gateway = Gateway::start(config, listener, admin).await.unwrap();
    for _ in 0..2000 {
        if gateway.is_ready() {
            return gateway;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    panic!("gateway never became ready");
}

/// A gateway running the configuration file `path` (which a reload reads again), once ready.
pub async fn start_gateway_from(path: &std::path::Path) -> (Gateway, Config) {
    let config = Config::load_with(path, &sluice_filters::check_config).unwrap();
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let admin = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let gateway = Gateway::start_from(
        config.clone(),
        Some(path.to_path_buf().into()),
        listener,
        admin,
    )
    .await
    .unwrap();
    (gateway, config)
}

/// A started gateway plus a client pointed at it.
pub struct Gw {
    /// The gateway.
    pub gateway: Gateway,
    /// A client for it.
    pub client: Client,
    /// A plain token from `admin.tokens`, sent by [`Gw::admin`] so status reads work when the
    /// config turns authentication on.
    token: Option<String>,
    /// `https` when the Trino-protocol listener serves TLS on `listen`.
    proxy_scheme: &'static str,
    /// `https` when the admin listener serves TLS.
    admin_scheme: &'static str,
}

/// A client trusting the CA in the PEM file `ca` only, or the system's roots without one.
fn client_trusting(ca: Option<&std::path::Path>) -> Client {
    let tls = ca.map(|ca| {
        let trust = sluice_http::tls::ClientTls {
            ca: Some(ca.to_path_buf()),
            ..Default::default()
        };
        sluice_http::tls::client_config(&trust).expect("the test CA is usable")
    });
    client::build(&ClientOptions::default().tls(tls))
}

/// The schemes of the two listeners `config` describes.
fn schemes(config: &Config) -> (&'static str, &'static str) {
    let https = |tls: bool| if tls { "https" } else { "http" };
    let proxy = config
        .proxy
        .tls
        .as_ref()
        .is_some_and(|t| t.listen.is_none());
    (https(proxy), https(config.admin.tls.is_some()))
}

impl Gw {
    /// Start `config` on two loopback ports and wait until it is ready.
    pub async fn start(config: Config) -> Gw {
        Self::start_trusting(config, None).await
    }

    /// [`Gw::start`], its client trusting the CA in the PEM file `ca` (for listeners with TLS).
    pub async fn start_trusting(config: Config, ca: Option<&std::path::Path>) -> Gw {
        let token = config.admin.tokens.iter().find_map(|t| t.token.clone());
        let (proxy_scheme, admin_scheme) = schemes(&config);
        let gateway = start_gateway(config).await;
        let gw = Gw {
            gateway,
            client: client_trusting(ca),
            token,
            proxy_scheme,
            admin_scheme,
        };
        gw.wait_ready().await;
        gw
    }

    /// Start the configuration file `path` on two loopback ports and wait until it is ready.
    pub async fn start_file(path: &std::path::Path) -> Gw {
        Self::start_file_trusting(path, None).await
    }

    /// [`Gw::start_file`], its client trusting the CA in the PEM file `ca`.
    pub async fn start_file_trusting(path: &std::path::Path, ca: Option<&std::path::Path>) -> Gw {
        let (gateway, config) = start_gateway_from(path).await;
        let (proxy_scheme, admin_scheme) = schemes(&config);
        let gw = Gw {
            gateway,
            client: client_trusting(ca),
            token: config.admin.tokens.iter().find_map(|t| t.token.clone()),
            proxy_scheme,
            admin_scheme,
        };
        gw.wait_ready().await;
        gw
    }

    /// Wait for `/readyz` (first health round done); bounded.
    pub async fn wait_ready(&self) {
        for _ in 0..500 {
            if self.admin(Method::GET, "/readyz").await.0 == StatusCode::OK {
                return;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        panic!("gateway never became ready");
    }

    /// `path` on the Trino-protocol listener.
    pub fn url(&self, path: &str) -> String {
        format!(
            "{}://{}{}",
            self.proxy_scheme, self.gateway.proxy_addr, path
        )
    }

    /// An admin request with a bearer token and a body.
    pub async fn admin_as(
        &self,
        method: Method,
        path: &str,
        token: Option<&str>,
        body: Bytes,
    ) -> (StatusCode, Value) {
        let uri = format!(
            "{}://{}{}",
            self.admin_scheme, self.gateway.admin_addr, path
        );
        let mut req = Request::builder().method(method).uri(uri);
        if let Some(t) = token {
            req = req.header("authorization", format!("Bearer {t}"));
        }
        let (status, body) = send(&self.client, req.body(full_body(body)).unwrap()).await;
        (status, serde_json::from_slice(&body).unwrap_or(Value::Null))
    }

    /// An admin request (with the config's first plain token, if any).
    pub async fn admin(&self, method: Method, path: &str) -> (StatusCode, Bytes) {
        let uri = format!(
            "{}://{}{}",
            self.admin_scheme, self.gateway.admin_addr, path
        );
        let mut req = Request::builder().method(method).uri(uri);
        if let Some(t) = &self.token {
            req = req.header("authorization", format!("Bearer {t}"));
        }
        send(&self.client, req.body(empty_body()).unwrap()).await
    }

    /// A request to the admin listener with `headers` (no token added); status, headers, body.
    pub async fn admin_with(
        &self,
        method: Method,
        path: &str,
        headers: &[(&str, &str)],
        body: Bytes,
    ) -> (StatusCode, http::HeaderMap, Bytes) {
        let uri = format!(
            "{}://{}{}",
            self.admin_scheme, self.gateway.admin_addr, path
        );
        let mut req = Request::builder().method(method).uri(uri);
        for (k, v) in headers {
            req = req.header(*k, *v);
        }
        let req = req.body(sluice_http::full_body(body)).unwrap();
        let resp = tokio::time::timeout(Duration::from_secs(20), self.client.request(req))
            .await
            .expect("request must not hang")
            .expect("request failed");
        let (parts, body) = resp.into_parts();
        (
            parts.status,
            parts.headers,
            body.collect().await.unwrap().to_bytes(),
        )
    }

    /// Send a request to the gateway; returns status, headers and body.
    pub async fn call(
        &self,
        method: Method,
        path_or_url: &str,
        headers: &[(&str, &str)],
        body: &str,
    ) -> (StatusCode, Bytes) {
        let uri = if path_or_url.starts_with("http") {
            path_or_url.to_string()
        } else {
            self.url(path_or_url)
        };
        let mut req = Request::builder().method(method).uri(uri);
        for (k, v) in headers {
            req = req.header(*k, *v);
        }
        send(&self.client, req.body(full_body(body.to_string())).unwrap()).await
    }

    /// `POST /v1/statement` as user `test`; returns status and the JSON answer.
    pub async fn submit(&self, sql: &str, extra: &[(&str, &str)]) -> (StatusCode, Value) {
        let mut headers = vec![("X-Trino-User", "test")];
        headers.extend_from_slice(extra);
        let (status, body) = self
            .call(Method::POST, "/v1/statement", &headers, sql)
            .await;
        (status, serde_json::from_slice(&body).unwrap_or(Value::Null))
    }

    /// Follow `nextUri` to the end; returns every row and the final page.
    pub async fn drain(&self, first: &Value) -> (Vec<Value>, Value) {
        let mut rows = Vec::new();
        let mut page = first.clone();
        for _ in 0..1000 {
            if let Some(data) = page.get("data").and_then(|d| d.as_array()) {
                rows.extend(data.iter().cloned());
            }
            let Some(next) = page
                .get("nextUri")
                .and_then(|n| n.as_str())
                .map(String::from)
            else {
                return (rows, page);
            };
            assert!(
                next.starts_with(&self.url("/")),
                "nextUri {next} must point at the gateway"
            );
            let (status, body) = self
                .call(Method::GET, &next, &[("X-Trino-User", "test")], "")
                .await;
            assert_eq!(status, StatusCode::OK, "{}", String::from_utf8_lossy(&body));
            page = serde_json::from_slice(&body).unwrap();
        }
        panic!("query never finished");
    }

    /// A backend's health as the admin API reports it (`HEALTHY`, `UNHEALTHY`, `PENDING`).
    pub async fn backend_health(&self, name: &str) -> String {
        self.backend_status(name).await["health"]
            .as_str()
            .unwrap()
            .to_string()
    }

    /// A backend's `status` in `/api/v1/backends`.
    pub async fn backend_status(&self, name: &str) -> Value {
        let (_, body) = self.admin(Method::GET, "/api/v1/backends").await;
        let list = json(&body);
        let b = list
            .as_array()
            .unwrap()
            .iter()
            .find(|b| b["name"] == name)
            .expect("backend listed");
        b["status"].clone()
    }

    /// Wait until `name` reports `health`; returns how long it took. Bounded.
    pub async fn await_health(&self, name: &str, health: &str, limit: Duration) -> Duration {
        let started = std::time::Instant::now();
        while started.elapsed() < limit {
            if self.backend_health(name).await == health {
                return started.elapsed();
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        panic!("{name} did not become {health} within {limit:?}");
    }

    /// Shut the gateway down gracefully.
    pub async fn stop(self) {
        self.gateway.shutdown().await;
    }
}

/// Send `req`; its status and whole body. Bounded: a request that hangs fails the test.
pub async fn send(client: &Client, req: Request<Body>) -> (StatusCode, Bytes) {
    let resp = tokio::time::timeout(Duration::from_secs(20), client.request(req))
        .await
        .expect("request must not hang")
        .expect("request failed");
    let status = resp.status();
    (status, resp.into_body().collect().await.unwrap().to_bytes())
}

/// `body` as JSON; panics with the text when it is not.
pub fn json(body: &Bytes) -> Value {
    serde_json::from_slice(body)
        .unwrap_or_else(|_| panic!("not JSON: {}", String::from_utf8_lossy(body)))
}

/// The cluster name in the rows of a drained query (all rows must agree).
pub fn owner(rows: &[Value]) -> String {
    let names: std::collections::BTreeSet<String> = rows
        .iter()
        .map(|r| r[1].as_str().unwrap().to_string())
        .collect();
    assert_eq!(names.len(), 1, "rows from several clusters: {names:?}");
    names.into_iter().next().unwrap()
}

/// The admin API's cache status (`/api/v1/cache`).
pub async fn cache_stats(gw: &Gw) -> Value {
    json(&gw.admin(Method::GET, "/api/v1/cache").await.1)
}

/// The L3 part of it.
pub async fn l3_state(gw: &Gw) -> Value {
    cache_stats(gw).await["l3_store"].clone()
}

/// Wait until L3 is up and nothing waits to be written; bounded.
pub async fn wait_drained(gw: &Gw) {
    for _ in 0..1000 {
        let l3 = l3_state(gw).await;
        if l3["healthy"] == true && l3["queued"] == 0 {
            return;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("L3 queue never drained: {}", l3_state(gw).await);
}

/// `POST /v1/statement` of `SELECT 1` to `base` (a gateway or a coordinator); the query id.
pub async fn start_query(client: &Client, base: &str) -> String {
    let req = Request::post(format!("{base}/v1/statement"))
        .header("X-Trino-User", "bench")
        .body(full_body(Bytes::from_static(b"SELECT 1")))
        .unwrap();
    let (_, body) = send(client, req).await;
    json(&body)["id"].as_str().expect("a query id").to_string()
}
