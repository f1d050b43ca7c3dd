//! Helpers the benchmarks share.
#![allow(dead_code)]
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::{connect::HttpConnector, Client};
use sluice::config::{BackendConfig, StatsSource};
use sluice::fake_trino::{FakeOptions, FakeTrino};
use tokio::net::TcpListener;

/// `SLUICE_BENCH_QUICK=1`: every phase short (CI smoke runs).
pub fn quick() -> bool {
    std::env::var("SLUICE_BENCH_QUICK").is_ok_and(|v| v == "1")
}

/// p50 and p99 in µs of durations in ns.
pub fn percentiles(mut ns: Vec<u64>) -> (f64, f64) {
    ns.sort_unstable();
    let at = |p: f64| ns[((ns.len() as f64 - 1.0) * p) as usize] as f64 / 1000.0;
    (at(0.50), at(0.99))
}

/// A backend in group `adhoc` with count-free health checks (queries started by a benchmark are
/// never polled, so they would pile up as QUEUED and make every stats poll list them all).
pub fn backend(name: &str, url: &str) -> BackendConfig {
    BackendConfig {
        name: name.into(),
        url: url.into(),
        group: "adhoc".into(),
        active: true,
        external_url: None,
        rewrite_next_uri: false,
        stats: Some(StatsSource::InfoOnly),
    }
}

/// `n` fake clusters `c1..cn` on loopback, and their backend entries.
pub async fn fake_clusters(n: usize) -> (Vec<FakeTrino>, Vec<BackendConfig>) {
    let mut fakes = Vec::new();
    let mut backends = Vec::new();
    for i in 1..=n {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let opts = FakeOptions {
            name: format!("c{i}"),
            ..FakeOptions::default()
        };
        let fake = FakeTrino::start(listener, opts).unwrap();
        backends.push(backend(&format!("c{i}"), &fake.url()));
        fakes.push(fake);
    }
    (fakes, backends)
}

/// `POST /v1/statement` to `base` (a gateway or a coordinator); returns the query id.
pub async fn start_query(client: &Client<HttpConnector, Full<Bytes>>, base: &str) -> String {
    let req = http::Request::post(format!("{base}/v1/statement"))
        .header("X-Trino-User", "bench")
        .body(Full::new(Bytes::from_static(b"SELECT 1")))
        .unwrap();
    let body = client
        .request(req)
        .await
        .unwrap()
        .into_body()
        .collect()
        .await
        .unwrap()
        .to_bytes();
    let v: serde_json::Value = serde_json::from_slice(&body).unwrap();
    v["id"].as_str().expect("a query id").to_string()
}
