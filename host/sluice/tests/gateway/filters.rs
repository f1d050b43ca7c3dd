//! Routing filters: each builtin's policy, cache namespaces, and hostile filters that must leave
//! the gateway serving with the fallback taken and counted.
use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use http::{Method, StatusCode};
use serde_json::{json, Value};
use sluice_cluster::{BackendStatus, Cluster, Health};
use sluice_config::{FilterErrorPolicy, FiltersConfig, SlotConfig, StatsSource};
use sluice_filters::cache::FilterCache;
use sluice_filters::slot::Limits;
use sluice_filters::{builtin, LoadContext, LoadedFilter};
use sluice_routing::{Decision, QueryRequest};

use sluice_testkit::*;

const HOSTILE: &str = sluice_testkit::HOSTILE_WASM;

/// A cluster of `(name, group)` backends, all HEALTHY and idle.
fn cluster(backends: &[(&str, &str)]) -> Arc<Cluster> {
    let configs: Vec<_> = backends
        .iter()
        .map(|(n, g)| backend(n, g, "http://127.0.0.1:1"))
        .collect();
    let c = Arc::new(Cluster::new(&configs, StatsSource::InfoOnly));
    for (n, _) in backends {
        set(&c, n, Health::Healthy, 0, 0, &[]);
    }
    c
}

fn set(
    c: &Cluster,
    name: &str,
    health: Health,
    running: u32,
    queued: u32,
    user_queued: &[(&str, u32)],
) {
    c.get(name).unwrap().publish(BackendStatus {
        counted: true,
        health,
        running_queries: running,
        queued_queries: queued,
        user_queued: user_queued
            .iter()
            .map(|(u, n)| (u.to_string(), *n))
            .collect::<HashMap<_, _>>(),
        reason: None,
        checked_at: None,
    });
}

async fn load(c: &Arc<Cluster>, module: &str, config: Value) -> Result<Arc<LoadedFilter>, String> {
    let env = LoadContext {
        cluster: c.clone(),
        cache: Arc::new(FilterCache::default()),
        limits: Limits::from_config(&FiltersConfig::default()),
        disk_cache: None,
        slot_limits: Default::default(),
    };
    let bytes = builtin::bytes(module).unwrap();
    LoadedFilter::load(
        &env,
        module,
        &format!("builtin:{module}"),
        bytes,
        config.to_string(),
    )
    .await
    .map_err(|e| e.to_string())
}

fn user(u: &str) -> QueryRequest {
    QueryRequest {
        user: Some(u.into()),
        ..Default::default()
    }
}

#[tokio::test]
async fn query_count_follows_trino_gateways_cases() {
    let c = cluster(&[("c1", "adhoc"), ("c2", "adhoc"), ("c3", "adhoc")]);
    let f = load(&c, "query-count", Value::Null).await.unwrap();
    let case = |u1, u2, u3, r1, r2, r3| {
        set(&c, "c1", Health::Healthy, r1, 20, &[("u", u1)]);
        set(&c, "c2", Health::Healthy, r2, 20, &[("u", u2)]);
        set(&c, "c3", Health::Healthy, r3, 20, &[("u", u3)]);
    };
    // each case with a fresh filter cache so earlier decisions do not count
    for (u, r, want) in [
        ([5, 5, 5], [50, 51, 5], "c3"),
        ([10, 1, 2], [5, 5, 5], "c2"),
        ([2, 12, 6], [5, 5, 5], "c1"),
    ] {
        let f = load(&c, "query-count", Value::Null).await.unwrap();
        case(u[0], u[1], u[2], r[0], r[1], r[2]);
        assert_eq!(
            f.route(&user("u"), "adhoc").await.unwrap(),
            Decision::RouteTo(want.into()),
            "{u:?} {r:?}"
        );
    }
    // a user with nothing queued anywhere: the least loaded (fewest queued, then running)
    set(&c, "c1", Health::Healthy, 1, 9, &[]);
    set(&c, "c2", Health::Healthy, 7, 3, &[]);
    set(&c, "c3", Health::Healthy, 2, 3, &[]);
    assert_eq!(
        f.route(&user("new"), "adhoc").await.unwrap(),
        Decision::RouteTo("c3".into())
    );
}

#[tokio::test]
async fn query_count_spreads_a_burst_between_polls() {
    let c = cluster(&[("c1", "adhoc"), ("c2", "adhoc"), ("c3", "adhoc")]);
    let f = load(&c, "query-count", json!({"window_seconds": 60}))
        .await
        .unwrap();
    let mut seen: BTreeMap<String, u32> = BTreeMap::new();
    for i in 0..30 {
        let Decision::RouteTo(b) = f
            .route(&user(&format!("u{}", i % 4)), "adhoc")
            .await
            .unwrap()
        else {
            panic!("no decision")
        };
        *seen.entry(b).or_default() += 1;
    }
    assert_eq!(
        seen.values().copied().collect::<Vec<_>>(),
        vec![10, 10, 10],
        "{seen:?}"
    );
}

#[tokio::test]
async fn query_count_skips_unhealthy_and_rejects_bad_config() {
    let c = cluster(&[("c1", "adhoc"), ("c2", "adhoc")]);
    set(&c, "c2", Health::Unhealthy, 0, 0, &[]);
    set(&c, "c1", Health::Healthy, 100, 100, &[]);
    let f = load(&c, "query-count", Value::Null).await.unwrap();
    for _ in 0..5 {
        assert_eq!(
            f.route(&user("u"), "adhoc").await.unwrap(),
            Decision::RouteTo("c1".into())
        );
    }
    assert_eq!(f.route(&user("u"), "nosuch").await.unwrap(), Decision::Pass);
    let err = load(&c, "query-count", json!({"window_seconds": 0}))
        .await
        .err()
        .unwrap();
    assert!(err.contains("window_seconds"), "{err}");
    let err = load(&c, "query-count", json!({"colour": 1}))
        .await
        .err()
        .unwrap();
    assert!(err.contains("colour"), "{err}");
}

#[tokio::test]
async fn stochastic_is_uniform_over_healthy_backends() {
    let c = cluster(&[
        ("a", "g"),
        ("b", "g"),
        ("c", "g"),
        ("down", "g"),
        ("other", "h"),
    ]);
    set(&c, "down", Health::Unhealthy, 0, 0, &[]);
    let f = load(&c, "stochastic", Value::Null).await.unwrap();
    let mut seen: BTreeMap<String, u32> = BTreeMap::new();
    for _ in 0..1000 {
        let Decision::RouteTo(b) = f.route(&user("u"), "g").await.unwrap() else {
            panic!()
        };
        *seen.entry(b).or_default() += 1;
    }
    assert_eq!(
        seen.keys().cloned().collect::<Vec<_>>(),
        vec!["a", "b", "c"]
    );
    // 1000 draws over 3: each count is ~333 ± 15; outside 250..420 is a broken generator
    for (b, n) in &seen {
        assert!((250..420).contains(n), "{b}: {n} of 1000 ({seen:?})");
    }
}

#[tokio::test]
async fn routing_rules_first_match_by_priority() {
    let c = cluster(&[
        ("adhoc-1", "adhoc"),
        ("etl-1", "etl"),
        ("special-1", "etl-special"),
        ("heavy-1", "heavy"),
    ]);
    let rules = json!({
        "default_group": "adhoc",
        "rules": [
            {"name": "airflow", "when": {"source": "airflow"}, "group": "etl"},
            {"name": "airflow-special", "priority": 10, "when": {"source": "airflow", "client_tags": ["label=special"]}, "group": "etl-special"},
            {"name": "orders", "when": {"tables": ["hive.sales.orders"], "query": "(?i)group\\s+by"}, "group": "heavy"},
            {"name": "bi", "when": {"headers": {"user-agent": "Tableau.*"}, "user_regex": "bi_.*"}, "group": "heavy"}
        ]
    });
    let f = load(&c, "routing-rules", rules).await.unwrap();
    let req = |source: Option<&str>, tags: &[&str]| QueryRequest {
        source: source.map(String::from),
        client_tags: tags.iter().map(|t| t.to_string()).collect(),
        ..Default::default()
    };
    let group = |g: &str| Decision::UseGroup(g.into());
    assert_eq!(
        f.route(&req(Some("airflow"), &[]), "adhoc").await.unwrap(),
        group("etl")
    );
    assert_eq!(
        f.route(&req(Some("airflow"), &["label=special"]), "adhoc")
            .await
            .unwrap(),
        group("etl-special")
    );
    assert_eq!(
        f.route(&req(Some("cli"), &["label=special"]), "adhoc")
            .await
            .unwrap(),
        group("adhoc")
    );

    let mut q = QueryRequest {
        query_text: "SELECT region, count(*) FROM orders GROUP BY 1".into(),
        ..Default::default()
    };
    q.headers = vec![
        ("x-trino-catalog".into(), "hive".into()),
        ("x-trino-schema".into(), "sales".into()),
    ];
    q.extract_sql_objects();
    assert_eq!(q.tables, vec!["hive.sales.orders"]);
    assert_eq!(f.route(&q, "adhoc").await.unwrap(), group("heavy"));
    q.query_text = "SELECT * FROM orders".into();
    q.extract_sql_objects();
    assert_eq!(
        f.route(&q, "adhoc").await.unwrap(),
        group("adhoc"),
        "all conditions must hold"
    );

    let bi = QueryRequest {
        user: Some("bi_team".into()),
        headers: vec![("user-agent".into(), "Tableau 2024.1".into())],
        ..Default::default()
    };
    assert_eq!(f.route(&bi, "adhoc").await.unwrap(), group("heavy"));

    let err = load(
        &c,
        "routing-rules",
        json!({"rules": [{"name": "x", "when": {"query": "("}, "group": "g"}]}),
    )
    .await
    .err()
    .unwrap();
    assert!(err.contains("rule 'x'") && err.contains("query"), "{err}");
}

fn chain_config(fakes: &[(&str, &str, &str)], slots: Vec<SlotConfig>) -> sluice_config::Config {
    let mut c = config(fakes);
    c.routing.chain = slots;
    c
}

fn hostile(slot: &str, mode: &str) -> SlotConfig {
    SlotConfig {
        slot: slot.into(),
        module: HOSTILE.into(),
        config: serde_yaml::Value::String(mode.into()),
        limits: Default::default(),
    }
}

pub fn builtin_slot(slot: &str, name: &str, config: &str) -> SlotConfig {
    SlotConfig {
        slot: slot.into(),
        module: format!("builtin:{name}"),
        config: serde_yaml::from_str(config).unwrap(),
        limits: Default::default(),
    }
}

async fn filter_stats(gw: &Gw, slot: &str) -> Value {
    let (_, body) = gw.admin(Method::GET, "/api/v1/filters").await;
    json(&body)
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["slot"] == slot)
        .expect("slot listed")["stats"]
        .clone()
}

#[tokio::test]
async fn hostile_filters_leave_the_gateway_serving_with_the_fallback_counted() {
    let a = sluice_testkit::cluster("adhoc-1").await;
    for (mode, counter) in [
        ("spin", "timeouts"),
        ("bomb", "out_of_memory"),
        ("trap", "traps"),
        ("ghost", "invalid_decisions"),
    ] {
        let mut c = chain_config(
            &[("adhoc-1", "adhoc", &a.url())],
            vec![hostile("evil", mode)],
        );
        // the spin must hit the time limit; the others must not (a bomb growing its memory on a
        // loaded machine could otherwise reach 20 ms before the memory limit)
        c.filters.timeout_ms = if mode == "spin" { 20 } else { 2000 };
        c.filters.memory_limit_mb = 16;
        let gw = Gw::start(c).await;
        for _ in 0..3 {
            let (status, q) = gw.submit("SELECT 1", &[]).await;
            assert_eq!(status, StatusCode::OK, "{mode}: {q}");
            assert_eq!(
                owner(&gw.drain(&q).await.0),
                "adhoc-1",
                "{mode}: native fallback routed it"
            );
        }
        let stats = filter_stats(&gw, "evil").await;
        assert_eq!(stats[counter], 3, "{mode}: {stats}");
        assert_eq!(stats["calls"], 3, "{mode}: {stats}");
        // and on /metrics: the failure by reason (or the invalid decision), every fallback
        let (_, text) = gw.admin(http::Method::GET, "/metrics").await;
        let text = String::from_utf8_lossy(&text);
        let series = match counter {
            "invalid_decisions" => {
                "sluice_filter_decisions_total{slot=\"evil\",decision=\"invalid\"} 3".to_string()
            }
            failures => {
                let reason = match failures {
                    "timeouts" => "timeout",
                    "traps" => "trap",
                    other => other,
                };
                format!("sluice_filter_failures_total{{slot=\"evil\",reason=\"{reason}\"}} 3")
            }
        };
        assert!(text.contains(&series), "{mode}: {series} in\n{text}");
        let fallbacks = "sluice_filter_fallbacks_total{slot=\"evil\"} 3";
        assert!(text.contains(fallbacks), "{mode}: {text}");
        gw.stop().await;
    }
}

#[tokio::test]
async fn a_filter_naming_an_unhealthy_backend_is_overruled() {
    let (a1, a2) = (
        sluice_testkit::cluster("adhoc-1").await,
        sluice_testkit::cluster("adhoc-2").await,
    );
    let dead = "http://127.0.0.1:9";
    let c = chain_config(
        &[
            ("adhoc-1", "adhoc", &a1.url()),
            ("adhoc-2", "adhoc", &a2.url()),
            ("adhoc-dead", "adhoc", dead),
        ],
        vec![hostile("evil", "unhealthy")],
    );
    let gw = Gw::start(c).await;
    for _ in 0..5 {
        let (status, q) = gw.submit("SELECT 1", &[]).await;
        assert_eq!(status, StatusCode::OK);
        assert!(owner(&gw.drain(&q).await.0).starts_with("adhoc-"));
    }
    assert_eq!(filter_stats(&gw, "evil").await["invalid_decisions"], 5);
    gw.stop().await;
}

#[tokio::test]
async fn on_filter_error_reject_answers_503() {
    let a = sluice_testkit::cluster("adhoc-1").await;
    let mut c = chain_config(
        &[("adhoc-1", "adhoc", &a.url())],
        vec![hostile("evil", "trap")],
    );
    c.routing.on_filter_error = FilterErrorPolicy::Reject;
    let gw = Gw::start(c).await;
    let (status, body) = gw.submit("SELECT 1", &[]).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("'evil'"),
        "{body}"
    );
    assert_eq!(a.queries_created(), 0);
    gw.stop().await;
}

#[tokio::test]
async fn a_chain_narrows_the_group_then_balances_within_it() {
    let fakes = [
        sluice_testkit::cluster("adhoc-1").await,
        sluice_testkit::cluster("etl-1").await,
        sluice_testkit::cluster("etl-2").await,
    ];
    let c = chain_config(
        &[
            ("adhoc-1", "adhoc", &fakes[0].url()),
            ("etl-1", "etl", &fakes[1].url()),
            ("etl-2", "etl", &fakes[2].url()),
        ],
        vec![
            builtin_slot(
                "rules",
                "routing-rules",
                "{rules: [{name: airflow, when: {source: airflow}, group: etl}]}",
            ),
            // a window far longer than the test: no counter reset in the middle of it
            builtin_slot("balance", "query-count", "{window_seconds: 100000000}"),
        ],
    );
    let gw = Gw::start(c).await;
    let mut seen = BTreeMap::new();
    for _ in 0..10 {
        let (_, q) = gw
            .submit("SELECT 1", &[("X-Trino-Source", "airflow")])
            .await;
        *seen.entry(owner(&gw.drain(&q).await.0)).or_insert(0) += 1;
    }
    assert_eq!(
        seen,
        BTreeMap::from([("etl-1".to_string(), 5), ("etl-2".to_string(), 5)])
    );
    let (_, q) = gw.submit("SELECT 1", &[("X-Trino-Source", "cli")]).await;
    assert_eq!(owner(&gw.drain(&q).await.0), "adhoc-1");
    gw.stop().await;
}

#[tokio::test]
async fn bad_modules_are_refused_at_startup_naming_the_slot() {
    let dir = std::env::temp_dir().join(format!("sluice-bad-modules-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let write = |name: &str, bytes: &[u8]| {
        let p = dir.join(name);
        std::fs::write(&p, bytes).unwrap();
        p.to_string_lossy().into_owned()
    };
    // a component for another world: a bare component with no exports
    let cases = [
        (
            write("text.wasm", b"this is not wasm"),
            Value::Null,
            "not WebAssembly",
        ),
        (
            write("core.wasm", b"\0asm\x01\0\0\0"),
            Value::Null,
            "core WebAssembly module",
        ),
        (
            write("empty.wasm", b"\0asm\x0d\0\x01\0"),
            Value::Null,
            "does not match the sluice:filter/router world",
        ),
        (
            HOSTILE.to_string(),
            json!("reject-init"),
            "refused its config",
        ),
        (
            dir.join("missing.wasm").to_string_lossy().into_owned(),
            Value::Null,
            "cannot read",
        ),
    ];
    let a = sluice_testkit::cluster("adhoc-1").await;
    for (module, cfg, expect) in cases {
        let slot = SlotConfig {
            slot: "broken".into(),
            module,
            config: serde_yaml::to_value(&cfg).unwrap(),
            limits: Default::default(),
        };
        let c = chain_config(
            &[("adhoc-1", "adhoc", &a.url())],
            vec![builtin_slot("ok", "stochastic", "{}"), slot],
        );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let admin = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let err = sluice_gateway::Gateway::start(c, listener, admin)
            .await
            .err()
            .expect("must not start")
            .to_string();
        assert!(err.contains("slot 'broken'"), "{err}");
        assert!(err.contains(expect), "{expect}: {err}");
    }
    let _ = std::fs::remove_dir_all(dir);
}

#[tokio::test]
async fn init_that_never_returns_is_cut_off() {
    let c = cluster(&[("c1", "adhoc")]);
    let env = LoadContext {
        cluster: c.clone(),
        cache: Arc::new(FilterCache::default()),
        limits: Limits {
            init_timeout: std::time::Duration::from_millis(100),
            ..Limits::from_config(&FiltersConfig::default())
        },
        disk_cache: None,
        slot_limits: Default::default(),
    };
    let bytes = std::fs::read(HOSTILE).unwrap();
    let err = LoadedFilter::load(&env, "slow", "hostile", &bytes, "\"spin-init\"".into())
        .await
        .err()
        .unwrap();
    assert_eq!(err.step, sluice_filters::Step::Init);
    assert!(err.message.contains("timed out in init"), "{err}");
}

#[tokio::test]
async fn filters_share_one_cache_but_each_slot_sees_only_its_namespace() {
    let c = cluster(&[("c1", "adhoc"), ("c2", "adhoc")]);
    let cache = Arc::new(FilterCache::default());
    let env = LoadContext {
        cluster: c.clone(),
        cache: cache.clone(),
        limits: Limits::from_config(&FiltersConfig::default()),
        disk_cache: None,
        slot_limits: Default::default(),
    };
    let bytes = builtin::bytes("query-count").unwrap();
    // a window far longer than the test, so no window boundary falls inside it
    let config = r#"{"window_seconds": 100000000}"#;
    let one = LoadedFilter::load(&env, "one", "qc", bytes, config.into())
        .await
        .unwrap();
    let two = LoadedFilter::load(&env, "two", "qc", bytes, config.into())
        .await
        .unwrap();
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let window = now / 100_000_000;
    // slot one routes twice, slot two has its own counters, so it starts from c1 again
    assert_eq!(
        one.route(&user("u"), "adhoc").await.unwrap(),
        Decision::RouteTo("c1".into())
    );
    assert_eq!(
        one.route(&user("u"), "adhoc").await.unwrap(),
        Decision::RouteTo("c2".into())
    );
    assert_eq!(
        two.route(&user("u"), "adhoc").await.unwrap(),
        Decision::RouteTo("c1".into())
    );
    let key = |slot: &str, b: &str| format!("sluice:filter:{slot}:routed:{window}:{b}");
    assert!(cache.contains_full_key(&key("one", "c1")));
    assert!(cache.contains_full_key(&key("one", "c2")));
    assert!(cache.contains_full_key(&key("two", "c1")));
    assert!(!cache.contains_full_key(&key("two", "c2")));
}

/// An interpreter needs more memory than a Rust filter: a slot's own limits give it that without
/// raising every slot's.
#[tokio::test]
async fn a_slots_own_memory_limit_lets_a_filter_load_that_the_global_one_refuses() {
    let a = sluice_testkit::cluster("adhoc-1").await;
    let cluster = || [("adhoc-1", "adhoc", a.url())];
    let fakes = cluster();
    let fakes: Vec<(&str, &str, &str)> =
        fakes.iter().map(|(n, g, u)| (*n, *g, u.as_str())).collect();
    // keeps 24 MiB from init on: not in the global 16 MiB
    let mut tight = chain_config(&fakes, vec![hostile("hoard", "hoard-init")]);
    tight.filters.memory_limit_mb = 16;
    let cache = Arc::new(FilterCache::default());
    let c = Arc::new(Cluster::new(&tight.backends, StatsSource::InfoOnly));
    let refused = sluice_filters::load_chain(&tight, c.clone(), &cache, None).await;
    assert!(refused.is_err(), "24 MiB do not fit in 16");

    let mut own = tight.clone();
    own.routing.chain[0].limits.memory_limit_mb = Some(64);
    sluice_filters::load_chain(&own, c, &cache, None)
        .await
        .expect("its own 64 MiB fit");
    // and the gateway serves with it
    let gw = Gw::start(own).await;
    let (status, q) = gw.submit("SELECT 1", &[]).await;
    assert_eq!(status, StatusCode::OK, "{q}");
    let stats = filter_stats(&gw, "hoard").await;
    assert_eq!(stats["calls"], 1);
    // what an instance costs is reported: the 24 MiB it keeps, and its stack and heap besides
    let bytes = stats["instance_memory_bytes"].as_u64().unwrap();
    assert!((24 << 20..64 << 20).contains(&bytes), "{stats}");
}
