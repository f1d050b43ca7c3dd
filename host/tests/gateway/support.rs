//! Test support: fake clusters and a gateway on ephemeral loopback ports, and a small client.
use std::time::Duration;

use bytes::Bytes;
use http::{Method, Request, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::{connect::HttpConnector, Client};
use hyper_util::rt::TokioExecutor;
use serde_json::Value;
use sluice::config::{BackendConfig, Config, StatsSource};
use sluice::fake_trino::{FakeOptions, FakeTrino};
use sluice::server::Gateway;
use tokio::net::TcpListener;

/// A fake cluster started on 127.0.0.1:0.
pub async fn cluster(name: &str) -> FakeTrino {
    cluster_with(FakeOptions {
        name: name.into(),
        ..FakeOptions::default()
    })
    .await
}

pub async fn cluster_with(opts: FakeOptions) -> FakeTrino {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    FakeTrino::start(listener, opts).unwrap()
}

pub fn backend(name: &str, group: &str, url: &str) -> BackendConfig {
    BackendConfig {
        name: name.into(),
        url: url.into(),
        group: group.into(),
        active: true,
        external_url: None,
        rewrite_next_uri: false,
        stats: Some(StatsSource::UiApi),
    }
}

/// A config whose backends are `(name, group, url)`, default group `adhoc`.
pub fn config(backends: &[(&str, &str, &str)]) -> Config {
    let mut c = Config {
        backends: backends.iter().map(|(n, g, u)| backend(n, g, u)).collect(),
        ..Config::default()
    };
    c.health.interval_ms = 60_000; // tests poll explicitly through the readiness signal
    c.proxy.shutdown_grace_ms = 5_000;
    c.store.url = String::new(); // no L3 unless a test asks for one
    c
}

/// A started gateway plus a client pointed at it.
pub struct Gw {
    pub gateway: Gateway,
    pub client: Client<HttpConnector, Full<Bytes>>,
    /// A plain token from `admin.tokens`, sent by [`Gw::admin`] so status reads work when the
    /// config turns authentication on.
    token: Option<String>,
}

impl Gw {
    pub async fn start(config: Config) -> Gw {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let admin = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let token = config.admin.tokens.iter().find_map(|t| t.token.clone());
        let gateway = Gateway::start(config, listener, admin).await.unwrap();
        let gw = Gw {
            gateway,
            client: Client::builder(TokioExecutor::new()).build_http(),
            token,
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

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{}", self.gateway.proxy_addr, path)
    }

    /// An admin request with a bearer token and a body.
    pub async fn admin_as(
        &self,
        method: Method,
        path: &str,
        token: Option<&str>,
        body: Bytes,
    ) -> (StatusCode, Value) {
        let uri = format!("http://{}{}", self.gateway.admin_addr, path);
        let mut req = Request::builder().method(method).uri(uri);
        if let Some(t) = token {
            req = req.header("authorization", format!("Bearer {t}"));
        }
        let (status, body) = send(&self.client, req.body(Full::new(body)).unwrap()).await;
        (status, serde_json::from_slice(&body).unwrap_or(Value::Null))
    }

    pub async fn admin(&self, method: Method, path: &str) -> (StatusCode, Bytes) {
        let uri = format!("http://{}{}", self.gateway.admin_addr, path);
        let mut req = Request::builder().method(method).uri(uri);
        if let Some(t) = &self.token {
            req = req.header("authorization", format!("Bearer {t}"));
        }
        send(&self.client, req.body(Full::default()).unwrap()).await
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
        send(
            &self.client,
            req.body(Full::new(Bytes::from(body.to_string()))).unwrap(),
        )
        .await
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

    pub async fn stop(self) {
        self.gateway.shutdown().await;
    }
}

pub async fn send(
    client: &Client<HttpConnector, Full<Bytes>>,
    req: Request<Full<Bytes>>,
) -> (StatusCode, Bytes) {
    let resp = tokio::time::timeout(Duration::from_secs(20), client.request(req))
        .await
        .expect("request must not hang")
        .expect("request failed");
    let status = resp.status();
    (status, resp.into_body().collect().await.unwrap().to_bytes())
}

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

/// A `redis-server` of the test's own on an ephemeral loopback port, stopped on drop.
pub struct RedisServer {
    pub port: u16,
    child: Option<std::process::Child>,
}

impl RedisServer {
    pub async fn start() -> RedisServer {
        let port = free_port().await;
        let mut s = RedisServer { port, child: None };
        s.restart().await;
        s
    }

    /// Start (again) on the same port; waits until it answers PING.
    pub async fn restart(&mut self) {
        let child = std::process::Command::new("redis-server")
            .args([
                "--port",
                &self.port.to_string(),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
            ])
            .stdout(std::process::Stdio::null())
            .spawn()
            .expect("redis-server must be installed (.ci/run installs it)");
        self.child = Some(child);
        for _ in 0..500 {
            if let Ok(mut s) = tokio::net::TcpStream::connect(("127.0.0.1", self.port)).await {
                use tokio::io::{AsyncReadExt, AsyncWriteExt};
                let _ = s.write_all(b"PING\r\n").await;
                let mut buf = [0u8; 7];
                if tokio::time::timeout(Duration::from_millis(200), s.read_exact(&mut buf))
                    .await
                    .is_ok()
                    && &buf == b"+PONG\r\n"
                {
                    return;
                }
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        panic!("redis-server on {} did not start", self.port);
    }

    /// SIGKILL it (a crash, not a clean shutdown).
    pub fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}/0", self.port)
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        self.kill();
    }
}

/// A loopback port nobody listens on right now.
pub async fn free_port() -> u16 {
    let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
    l.local_addr().unwrap().port()
}

/// A PostgreSQL server of the test's own (initdb in a temp dir, ephemeral port), stopped on drop.
pub struct PgServer {
    pub port: u16,
    dir: std::path::PathBuf,
    bin: std::path::PathBuf,
}

impl PgServer {
    pub async fn start() -> PgServer {
        let bin = std::fs::read_dir("/usr/lib/postgresql")
            .expect("PostgreSQL server binaries (.ci/run installs them)")
            .filter_map(|e| e.ok())
            .map(|e| e.path().join("bin"))
            .find(|p| p.join("initdb").exists())
            .expect("initdb");
        let port = free_port().await;
        let dir = std::env::temp_dir().join(format!("sluice-pg-{}-{port}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let pg = PgServer { port, dir, bin };
        pg.as_postgres(
            &["chown", "-R", "postgres", &pg.dir.to_string_lossy()],
            true,
        );
        let data = pg.data();
        pg.as_postgres(
            &[
                &pg.bin.join("initdb").to_string_lossy(),
                "-D",
                &data,
                "-A",
                "trust",
                "-U",
                "postgres",
            ],
            false,
        );
        pg.start_again().await;
        pg
    }

    fn data(&self) -> String {
        self.dir.join("data").to_string_lossy().into_owned()
    }

    fn as_postgres(&self, args: &[&str], as_root: bool) {
        let status = if as_root {
            std::process::Command::new(args[0])
                .args(&args[1..])
                .status()
        } else {
            std::process::Command::new("runuser")
                .args(["-u", "postgres", "--"])
                .args(args)
                .stdout(std::process::Stdio::null())
                .status()
        }
        .expect("run");
        assert!(status.success(), "{args:?} failed");
    }

    /// Start (again) on the same port; waits until it accepts connections.
    pub async fn start_again(&self) {
        let opts = format!(
            "-p {} -k {} -c listen_addresses=127.0.0.1 -c fsync=off",
            self.port,
            self.dir.display()
        );
        let log = self.dir.join("log").to_string_lossy().into_owned();
        self.as_postgres(
            &[
                &self.bin.join("pg_ctl").to_string_lossy(),
                "-D",
                &self.data(),
                "-o",
                &opts,
                "-l",
                &log,
                "-w",
                "start",
            ],
            false,
        );
    }

    /// Stop at once (like a crash).
    pub fn stop(&self) {
        self.as_postgres(
            &[
                &self.bin.join("pg_ctl").to_string_lossy(),
                "-D",
                &self.data(),
                "-m",
                "immediate",
                "-w",
                "stop",
            ],
            false,
        );
    }

    pub fn url(&self) -> String {
        format!("postgres://postgres@127.0.0.1:{}/postgres", self.port)
    }
}

impl Drop for PgServer {
    fn drop(&mut self) {
        let _ = std::process::Command::new("runuser")
            .args([
                "-u",
                "postgres",
                "--",
                &self.bin.join("pg_ctl").to_string_lossy(),
                "-D",
                &self.data(),
                "-m",
                "immediate",
                "stop",
            ])
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .status();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
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

/// A SQLite store file in a fresh temp dir of its own: (dir to remove, `store.url`).
pub fn temp_sqlite(name: &str) -> (std::path::PathBuf, String) {
    let dir = std::env::temp_dir().join(format!("sluice-{name}-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let url = format!("sqlite://{}/sluice.db", dir.display());
    (dir, url)
}
