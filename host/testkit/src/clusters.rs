//! Fake clusters on ephemeral loopback ports, and their `backends:` entries.
use sluice_config::{BackendConfig, Config, StatsSource};
use tokio::net::TcpListener;

use sluice_fake_trino::{FakeOptions, FakeTrino};

/// A fake cluster started on 127.0.0.1:0.
pub async fn cluster(name: &str) -> FakeTrino {
    cluster_with(FakeOptions {
        name: name.into(),
        ..FakeOptions::default()
    })
    .await
}

/// A fake cluster with `opts`, started on 127.0.0.1:0.
pub async fn cluster_with(opts: FakeOptions) -> FakeTrino {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    FakeTrino::start(listener, opts).unwrap()
}

/// A backend entry with stats from `/ui/api/stats`.
pub fn backend(name: &str, group: &str, url: &str) -> BackendConfig {
    BackendConfig {
        stats: Some(StatsSource::UiApi),
        ..BackendConfig::new(name, group, url)
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

/// `n` fake clusters `c1..cn` in group `adhoc`, with count-free health checks (`info_only`:
/// queries a benchmark starts are never polled, so they would pile up as QUEUED and make every
/// stats poll list them all), and their backend entries.
pub async fn fake_clusters(n: usize) -> (Vec<FakeTrino>, Vec<BackendConfig>) {
    let mut fakes = Vec::new();
    let mut backends = Vec::new();
    for i in 1..=n {
        let fake = cluster(&format!("c{i}")).await;
        let mut entry = backend(&format!("c{i}"), "adhoc", &fake.url());
        entry.stats = Some(StatsSource::InfoOnly);
        backends.push(entry);
        fakes.push(fake);
    }
    (fakes, backends)
}
