//! Routing benchmarks; prints figures (run: `cargo bench --bench routing`).
//!
//! 1. One routing decision: the native least-loaded router vs each builtin Wasm filter, with
//!    pooled instances and with a fresh instance (and `init`) per call.
//! 2. End to end: `POST /v1/statement` throughput through an in-process gateway to a fake
//!    coordinator, native router vs the default Wasm chain (`builtin:query-count`), alternated.
//!
//! `SLUICE_BENCH_QUICK=1` shortens every phase (used by CI so the bench cannot rot).
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::BodyExt;
use serde_json::{json, Value};
use sluice_cluster::{BackendStatus, Cluster, Health};
use sluice_config::{Config, FiltersConfig, RoutingConfig, StatsSource};
use sluice_filters::cache::FilterCache;
use sluice_filters::slot::Limits;
use sluice_filters::{builtin, LoadContext, LoadedFilter};
use sluice_routing::{LeastLoaded, QueryRequest, Routing};

mod common;
use common::{backend, fake_clusters, percentiles, quick};

async fn decisions() {
    let n = if quick() { 300 } else { 20_000 };
    let configs: Vec<_> = (1..=3)
        .map(|i| backend(&format!("c{i}"), "http://127.0.0.1:1"))
        .collect();
    let cluster = Arc::new(Cluster::new(&configs, StatsSource::InfoOnly));
    for (i, b) in cluster.backends().iter().enumerate() {
        b.publish(BackendStatus {
            counted: true,
            health: Health::Healthy,
            running_queries: 10 + i as u32,
            queued_queries: i as u32,
            user_queued: [("alice".to_string(), i as u32)].into(),
            reason: None,
            checked_at: None,
        });
    }
    let req = QueryRequest {
        user: Some("alice".into()),
        source: Some("airflow".into()),
        client_tags: vec!["label=special".into()],
        query_text: "SELECT * FROM hive.sales.orders WHERE region = 'emea'".into(),
        tables: vec!["hive.sales.orders".into()],
        ..Default::default()
    };
    println!("\n## One routing decision ({n} calls each, µs)\n");
    println!("| router | p50 | p99 |\n| --- | ---: | ---: |");

    let native = Routing::new(
        cluster.clone(),
        RoutingConfig::default(),
        Box::new(LeastLoaded),
    );
    let mut ns = Vec::with_capacity(n);
    for _ in 0..n {
        let t = Instant::now();
        native.choose(&req, &[]).await.unwrap();
        ns.push(t.elapsed().as_nanos() as u64);
    }
    let (p50, p99) = percentiles(ns);
    println!("| native least-loaded | {p50:.2} | {p99:.2} |");

    let rules = json!({"rules": [
        {"name": "special", "priority": 10, "when": {"source": "airflow", "client_tags": ["label=special"]}, "group": "adhoc"},
        {"name": "airflow", "when": {"source": "airflow"}, "group": "adhoc"}
    ]});
    for (name, config) in [
        ("query-count", Value::Null),
        ("stochastic", Value::Null),
        ("routing-rules", rules),
    ] {
        for pool_size in [16usize, 0] {
            let env = LoadContext {
                cluster: cluster.clone(),
                cache: Arc::new(FilterCache::default()),
                limits: Limits {
                    pool_size,
                    ..Limits::from_config(&FiltersConfig::default())
                },
                disk_cache: None,
                slot_limits: Default::default(),
            };
            let f = LoadedFilter::load(
                &env,
                name,
                name,
                builtin::bytes(name).unwrap(),
                config.to_string(),
            )
            .await
            .unwrap();
            let calls = if pool_size == 0 { n / 10 } else { n };
            let mut ns = Vec::with_capacity(calls);
            for _ in 0..calls {
                let t = Instant::now();
                f.route(&req, "adhoc").await.unwrap();
                ns.push(t.elapsed().as_nanos() as u64);
            }
            let (p50, p99) = percentiles(ns);
            let how = if pool_size == 0 {
                "fresh instance + init per call"
            } else {
                "pooled instance"
            };
            println!("| wasm {name} ({how}) | {p50:.2} | {p99:.2} |");
        }
    }
    // the same decisions from 8 concurrent tasks, as a gateway under load makes them
    let chain_config = Config {
        backends: configs.clone(),
        ..Config::default()
    };
    let chain = sluice_filters::load_chain(
        &chain_config,
        cluster.clone(),
        &Arc::new(FilterCache::default()),
        None,
    )
    .await
    .unwrap();
    for (label, routing) in [
        (
            "native",
            Arc::new(Routing::new(
                cluster.clone(),
                RoutingConfig::default(),
                Box::new(LeastLoaded),
            )),
        ),
        (
            "wasm chain [query-count] + SQL extraction",
            Arc::new(Routing::new(
                cluster.clone(),
                RoutingConfig::default(),
                Box::new(chain),
            )),
        ),
    ] {
        let per_task = n / 8;
        let started = Instant::now();
        let tasks: Vec<_> = (0..8)
            .map(|_| {
                let routing = routing.clone();
                let req = req.clone();
                tokio::spawn(async move {
                    for _ in 0..per_task {
                        let mut r = req.clone();
                        if routing.wants_sql_objects() {
                            r.extract_sql_objects();
                        }
                        routing.choose(&r, &[]).await.unwrap();
                    }
                })
            })
            .collect();
        for t in tasks {
            t.await.unwrap();
        }
        let rate = (per_task * 8) as f64 / started.elapsed().as_secs_f64();
        println!("| {label}, 8 concurrent tasks | {rate:.0} decisions/s | |");
    }
    {
        // the fixed cost of one call: a filter that returns `pass` at once
        let env = LoadContext {
            cluster: cluster.clone(),
            cache: Arc::new(FilterCache::default()),
            limits: Limits::from_config(&FiltersConfig::default()),
            disk_cache: None,
            slot_limits: Default::default(),
        };
        let bytes = std::fs::read(sluice_testkit::HOSTILE_WASM).unwrap();
        let f = LoadedFilter::load(&env, "fine", "fine", &bytes, "\"fine\"".into())
            .await
            .unwrap();
        let mut ns = Vec::new();
        for _ in 0..n {
            let t = Instant::now();
            f.route(&req, "adhoc").await.unwrap();
            ns.push(t.elapsed().as_nanos() as u64);
        }
        let (p50, p99) = percentiles(ns);
        println!("| wasm no-op filter (call overhead) | {p50:.2} | {p99:.2} |");
    }
    let mut ns = Vec::with_capacity(n);
    for _ in 0..n {
        let mut r = req.clone();
        let t = Instant::now();
        r.extract_sql_objects();
        ns.push(t.elapsed().as_nanos() as u64);
    }
    let (p50, p99) = percentiles(ns);
    println!(
        "| (SQL object extraction, done once per query when a chain runs) | {p50:.2} | {p99:.2} |"
    );
}

async fn throughput(gateway_url: &str, seconds: f64, concurrency: usize) -> f64 {
    let client = common::client(concurrency);
    let deadline = Instant::now() + Duration::from_secs_f64(seconds);
    let mut tasks = Vec::new();
    for _ in 0..concurrency {
        let client = client.clone();
        let url = format!("{gateway_url}/v1/statement");
        tasks.push(tokio::spawn(async move {
            let mut done = 0u64;
            while Instant::now() < deadline {
                let req = http::Request::post(&url)
                    .header("X-Trino-User", "bench")
                    .body(sluice_http::full_body(Bytes::from_static(b"SELECT 1")))
                    .unwrap();
                let resp = client.request(req).await.expect("request");
                assert_eq!(resp.status(), 200);
                resp.into_body().collect().await.unwrap();
                done += 1;
            }
            done
        }));
    }
    let started = Instant::now();
    let mut total = 0;
    for t in tasks {
        total += t.await.unwrap();
    }
    total as f64 / started.elapsed().as_secs_f64()
}

async fn end_to_end() {
    let (seconds, rounds, mut concurrency) = if quick() { (0.3, 1, 8) } else { (3.0, 3, 32) };
    if let Some(c) = std::env::var("SLUICE_BENCH_CONCURRENCY")
        .ok()
        .and_then(|c| c.parse().ok())
    {
        concurrency = c;
    }
    let (fakes, backends) = fake_clusters(3).await;
    let mut gateways = Vec::new();
    for chain in [false, true] {
        let mut config = Config {
            backends: backends.clone(),
            ..Config::default()
        };
        config.log.level = "warn".into();
        config.store.url = String::new();
        if !chain {
            config.routing.chain.clear();
        }
        let gw = sluice_testkit::start_gateway(config).await;
        gateways.push(gw);
    }
    let urls: Vec<String> = gateways
        .iter()
        .map(|g| format!("http://{}", g.proxy_addr))
        .collect();
    // warm up both
    for u in &urls {
        throughput(u, 0.2, concurrency).await;
    }
    let (mut native, mut wasm) = (Vec::new(), Vec::new());
    for _ in 0..rounds {
        native.push(throughput(&urls[0], seconds, concurrency).await);
        wasm.push(throughput(&urls[1], seconds, concurrency).await);
    }
    let mean = |v: &[f64]| v.iter().sum::<f64>() / v.len() as f64;
    let (n, w) = (mean(&native), mean(&wasm));
    println!("\n## End to end: POST /v1/statement through the gateway ({concurrency} connections, {rounds} x {seconds}s alternated)\n");
    println!("| router | requests/s |\n| --- | ---: |");
    println!("| native least-loaded | {n:.0} |");
    println!("| wasm chain [builtin:query-count] | {w:.0} |");
    println!(
        "\nWasm chain / native: {:.3} ({:+.1}%)",
        w / n,
        (w / n - 1.0) * 100.0
    );
    if std::env::var("SLUICE_BENCH_DEBUG").is_ok() {
        let admin = format!("http://{}/api/v1/filters", gateways[1].admin_addr);
        let client = common::client(4);
        let resp = client.get(admin.parse().unwrap()).await.unwrap();
        println!(
            "{}",
            String::from_utf8_lossy(&resp.into_body().collect().await.unwrap().to_bytes())
        );
    }
    for g in gateways {
        g.shutdown().await;
    }
    for f in fakes {
        f.stop().await;
    }
}

fn main() {
    common::run(async {
        decisions().await;
        end_to_end().await;
    });
}
