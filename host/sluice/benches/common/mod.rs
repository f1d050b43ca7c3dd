//! Helpers the benchmarks share; clusters, gateways and clients come from `sluice-testkit`.
#![allow(dead_code, unused_imports)]
use sluice_config::{BackendConfig, StatsSource};
pub use sluice_testkit::{fake_clusters, start_query};

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

/// A backend in group `adhoc` with count-free health checks (see [`fake_clusters`]).
pub fn backend(name: &str, url: &str) -> BackendConfig {
    let mut b = sluice_testkit::backend(name, "adhoc", url);
    b.stats = Some(StatsSource::InfoOnly);
    b
}

/// A client keeping `n` idle connections per host.
pub fn client(n: usize) -> sluice_http::client::Client {
    sluice_http::client::build(&sluice_http::client::ClientOptions::default().pool(n))
}

/// Run a benchmark on a multi-threaded runtime.
pub fn run(bench: impl std::future::Future<Output = ()>) {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap()
        .block_on(bench)
}
