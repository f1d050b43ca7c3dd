//! Cache-tier benchmarks; prints figures (run: `cargo bench --bench cache`).
//!
//! 1. Lookup latency per tier, p50/p99: L1 hit, L2 hit (Redis), L3 hit (PostgreSQL and SQLite),
//!    backend search; next to a raw `redis-benchmark` GET round trip measured in the same run.
//! 2. Follow-up throughput through a gateway: L1 hits vs L2 only (L1 off).
//!
//! Starts its own `redis-server` on an ephemeral loopback port; uses the machine's PostgreSQL at
//! `SLUICE_BENCH_PG` (default `postgres://postgres@127.0.0.1:5432/test`) in a database of its own,
//! dropped at the end. `SLUICE_BENCH_QUICK=1` shortens every phase.
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::BodyExt;
use sluice_cache::l2_redis::L2;
use sluice_cache::search::BackendSearch;
use sluice_cache::{QueryLocation, QueryLocator, TieredCache};
use sluice_cluster::Cluster;
use sluice_config::{CacheConfig, Config, StatsSource, StoreConfig, ValkeyConfig};
use sluice_store::L3;
use sluice_testkit::{FakeOptions, FakeTrino};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

mod common;
use common::{backend, fake_clusters, percentiles, quick, start_query};
use sluice_testkit::RedisServer;

fn redis_benchmark_p50(port: u16, n: usize) -> Option<f64> {
    let out = std::process::Command::new("redis-benchmark")
        .args([
            "-p",
            &port.to_string(),
            "-t",
            "get",
            "-n",
            &n.to_string(),
            "-c",
            "1",
            "--precision",
            "3",
        ])
        .output()
        .ok()?;
    let text = String::from_utf8_lossy(&out.stdout);
    // "latency summary (msec):" then a header line and a values line: avg min p50 p95 p99 max
    let mut lines = text.lines().skip_while(|l| !l.contains("latency summary"));
    lines.next()?;
    lines.next()?;
    let values: Vec<f64> = lines
        .next()?
        .split_whitespace()
        .filter_map(|v| v.parse().ok())
        .collect();
    values.get(2).map(|ms| ms * 1000.0)
}

async fn measure<F, Fut>(n: usize, mut f: F) -> (f64, f64)
where
    F: FnMut(usize) -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let mut ns = Vec::with_capacity(n);
    for i in 0..n {
        let t = Instant::now();
        assert!(f(i).await, "lookup missed");
        ns.push(t.elapsed().as_nanos() as u64);
    }
    percentiles(ns)
}

async fn wait_until(what: &str, ok: impl Fn() -> bool) {
    for _ in 0..1000 {
        if ok() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("{what} never happened");
}

async fn latencies(redis: &RedisServer) {
    let n = if quick() { 200 } else { 20_000 };
    let (tasks, stop) = (TaskTracker::new(), CancellationToken::new());
    let cache = CacheConfig::default();
    let keys: Vec<String> = (0..1000)
        .map(|i| format!("sluice:query:20261124_000000_{i:05}_bench"))
        .collect();
    let value = Bytes::from_static(b"c1\tadhoc");
    let long = Duration::from_secs(3600);
    println!("\n## Lookup latency per tier ({n} lookups each, µs)\n");
    println!("| tier | p50 | p99 |\n| --- | ---: | ---: |");

    let l1 = TieredCache::new(&cache, None, Default::default());
    for k in &keys {
        l1.set(k, value.clone(), long, long).await;
    }
    let (p50, p99) = measure(n, |i| {
        let k = &keys[i % keys.len()];
        let l1 = &l1;
        async move { l1.get(k, long, long).await.is_some() }
    })
    .await;
    println!("| L1 hit (moka) | {p50:.2} | {p99:.2} |");

    let vk = ValkeyConfig {
        enabled: true,
        url: redis.url(),
        timeout_ms: 200,
        ..Default::default()
    };
    let l2 = L2::start(&vk, &tasks, stop.clone()).unwrap();
    wait_until("L2 up", || l2.is_healthy()).await;
    let tiers = TieredCache::new(&cache, Some(l2.clone()), Default::default());
    for k in &keys {
        tiers.set(k, value.clone(), long, long).await;
    }
    tiers.clear_l1();
    // an L1 time-to-live of zero keeps every lookup going to L2
    let (p50, p99) = measure(n, |i| {
        let k = &keys[i % keys.len()];
        let t = &tiers;
        async move { t.get(k, Duration::ZERO, long).await.is_some() }
    })
    .await;
    let raw = redis_benchmark_p50(redis.port, n.max(1000));
    match raw {
        Some(raw) => println!("| L2 hit (Redis, loopback) | {p50:.2} | {p99:.2} |\n| (raw `redis-benchmark` GET, 1 connection, same run) | {raw:.2} | |\n\nL2 hit / raw GET at p50: {:.2}x", p50 / raw),
        None => println!("| L2 hit (Redis, loopback) | {p50:.2} | {p99:.2} |\n| (redis-benchmark not available) | | |"),
    }
    println!();

    let pg_url = std::env::var("SLUICE_BENCH_PG")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".into());
    let db = format!("sluice_bench_{}", std::process::id());
    let admin = sluice_store::Store::open(&pg_url).unwrap();
    let pg_ready = match &admin {
        sluice_store::Store::Postgres(p) => {
            let _ = sqlx::query(sqlx::AssertSqlSafe(format!("DROP DATABASE IF EXISTS {db}")))
                .execute(p)
                .await;
            sqlx::query(sqlx::AssertSqlSafe(format!("CREATE DATABASE {db}")))
                .execute(p)
                .await
                .is_ok()
        }
        _ => false,
    };
    let mut stores = vec![(
        "SQLite file",
        format!(
            "sqlite://{}/sluice-bench-{}.db",
            std::env::temp_dir().display(),
            std::process::id()
        ),
    )];
    if pg_ready {
        let base = pg_url.rsplit_once('/').map(|(b, _)| b).unwrap_or(&pg_url);
        stores.insert(0, ("PostgreSQL, loopback", format!("{base}/{db}")));
    } else {
        println!("(PostgreSQL at {pg_url} not reachable: L3 measured on SQLite only)");
    }
    println!("| tier | p50 | p99 |\n| --- | ---: | ---: |");
    for (label, url) in &stores {
        let sc = StoreConfig {
            url: url.clone(),
            flush_interval_ms: 5,
            ..Default::default()
        };
        let l3 = L3::start(&sc, &tasks, stop.clone()).unwrap();
        wait_until("L3 up", || l3.is_healthy()).await;
        let tiers = TieredCache::new(&cache, None, Default::default()).with_l3(Some(l3.clone()));
        for k in &keys {
            tiers.set(k, value.clone(), long, long).await;
        }
        wait_until("L3 drained", || l3.queued() == 0).await;
        tiers.clear_l1();
        let (p50, p99) = measure(n.min(5000), |i| {
            let k = &keys[i % keys.len()];
            let t = &tiers;
            async move { t.get(k, Duration::ZERO, long).await.is_some() }
        })
        .await;
        println!("| L3 hit ({label}) | {p50:.2} | {p99:.2} |");
    }
    if pg_ready {
        if let sluice_store::Store::Postgres(p) = &admin {
            let _ = sqlx::query(sqlx::AssertSqlSafe(format!(
                "DROP DATABASE IF EXISTS {db} WITH (FORCE)"
            )))
            .execute(p)
            .await;
        }
    }
    let _ = std::fs::remove_file(
        std::env::temp_dir().join(format!("sluice-bench-{}.db", std::process::id())),
    );

    // backend search: three fake clusters, the query lives on the last one
    let (fakes, backends) = fake_clusters(3).await;
    let client = common::client(4);
    let id = start_query(&client, &fakes[2].url()).await;
    let cluster = Arc::new(Cluster::new(&backends, StatsSource::InfoOnly));
    let zero_l1 = CacheConfig {
        l1: sluice_config::L1Config {
            capacity: 0,
            ttl_seconds: 1,
        },
        ..Default::default()
    };
    let locator = QueryLocator::new(
        &zero_l1,
        Arc::new(TieredCache::new(&zero_l1, None, Default::default())),
        Some(BackendSearch::new(
            cluster,
            Duration::from_secs(1),
            sluice_cluster::Credentials::new("bench", None, None),
            None,
        )),
    );
    let (p50, p99) = measure(n.min(2000), |_| {
        let (l, id) = (&locator, &id);
        async move {
            l.locate(id).await
                == Some(QueryLocation {
                    backend: "c3".into(),
                    group: "adhoc".into(),
                })
        }
    })
    .await;
    println!("| backend search (3 clusters, loopback) | {p50:.2} | {p99:.2} |");
    for f in fakes {
        f.stop().await;
    }
    stop.cancel();
    tasks.close();
    tasks.wait().await;
}

async fn throughput(redis: &RedisServer) {
    let (seconds, rounds, conns) = if quick() { (0.3, 1, 8) } else { (3.0, 3, 32) };
    let fake = FakeTrino::start(
        TcpListener::bind("127.0.0.1:0").await.unwrap(),
        FakeOptions::default(),
    )
    .unwrap();
    let mut urls = Vec::new();
    let mut gateways = Vec::new();
    for l1_capacity in [100_000u64, 0] {
        let mut c = Config {
            backends: vec![backend("c1", &fake.url())],
            ..Config::default()
        };
        c.store.url = String::new();
        c.log.level = "warn".into();
        c.routing.chain.clear();
        c.cache.l1.capacity = l1_capacity;
        c.cache.valkey = ValkeyConfig {
            enabled: true,
            url: redis.url(),
            timeout_ms: 200,
            ..Default::default()
        };
        let gw = sluice_testkit::start_gateway(c).await;
        urls.push(format!("http://{}", gw.proxy_addr));
        gateways.push(gw);
    }
    let client = common::client(conns);
    tokio::time::sleep(Duration::from_millis(1200)).await; // L2 connects
                                                           // one query per gateway; its info URL is the follow-up hammered below
    let mut targets = Vec::new();
    for u in &urls {
        let id = start_query(&client, u).await;
        targets.push(format!("{u}/v1/query/{id}"));
    }
    let run = |url: String| {
        let client = client.clone();
        async move {
            let deadline = Instant::now() + Duration::from_secs_f64(seconds);
            let tasks: Vec<_> = (0..conns)
                .map(|_| {
                    let (client, url) = (client.clone(), url.clone());
                    tokio::spawn(async move {
                        let mut n = 0u64;
                        while Instant::now() < deadline {
                            let resp = client.get(url.parse().unwrap()).await.unwrap();
                            assert_eq!(resp.status(), 200);
                            resp.into_body().collect().await.unwrap();
                            n += 1;
                        }
                        n
                    })
                })
                .collect();
            let t = Instant::now();
            let mut total = 0;
            for task in tasks {
                total += task.await.unwrap();
            }
            total as f64 / t.elapsed().as_secs_f64()
        }
    };
    let (mut l1, mut l2) = (0.0, 0.0);
    for _ in 0..rounds {
        l1 += run(targets[0].clone()).await / rounds as f64;
        l2 += run(targets[1].clone()).await / rounds as f64;
    }
    println!("\n## Follow-up throughput through the gateway (GET /v1/query/{{id}}, {conns} connections, {rounds} x {seconds}s alternated)\n");
    println!("| lookup | requests/s |\n| --- | ---: |\n| L1 hit | {l1:.0} |\n| L2 only (L1 off) | {l2:.0} |");
    for g in gateways {
        g.shutdown().await;
    }
    fake.stop().await;
}

fn main() {
    common::run(async {
        let redis = RedisServer::start().await;
        latencies(&redis).await;
        throughput(&redis).await;
    });
}
