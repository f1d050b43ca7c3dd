//! The shared tier: several gateways over one Redis route every follow-up to its owner, and keep
//! doing so when Redis dies and after it comes back.
use std::time::Duration;

use http::{Method, StatusCode};

use sluice_testkit::*;

pub(crate) fn shared_config(
    fakes: &[(&str, &str, &str)],
    redis: &RedisServer,
) -> sluice_config::Config {
    let mut c = config(fakes);
    c.cache.valkey.enabled = true;
    c.cache.valkey.url = redis.url();
    c.cache.valkey.timeout_ms = 100;
    c.cache.valkey.health_check_interval_ms = 100;
    c
}

pub(crate) async fn wait_l2(gw: &Gw, up: bool) {
    for _ in 0..300 {
        if cache_stats(gw).await["l2_healthy"] == up {
            return;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("L2 never became {}", if up { "up" } else { "down" });
}

/// Clusters `c1` and `c2`, and two gateways in front of them sharing `redis`, with L2 up.
async fn two_instances(redis: &RedisServer) -> (FakeTrino, FakeTrino, Gw, Gw) {
    let (c1, c2) = (cluster("c1").await, cluster("c2").await);
    let cfg = shared_config(
        &[("c1", "adhoc", &c1.url()), ("c2", "adhoc", &c2.url())],
        redis,
    );
    let (a, b) = (Gw::start(cfg.clone()).await, Gw::start(cfg).await);
    wait_l2(&a, true).await;
    wait_l2(&b, true).await;
    (c1, c2, a, b)
}

/// No cluster saw a follow-up for a query it does not own; then stop both gateways.
pub(crate) async fn no_misroutes_then_stop(clusters: &[&FakeTrino], a: Gw, b: Gw) {
    let misrouted: u64 = clusters.iter().map(|c| c.unknown_query_requests()).sum();
    assert_eq!(
        misrouted, 0,
        "follow-ups reached a cluster that does not own the query"
    );
    a.stop().await;
    b.stop().await;
}

/// Start a query on `a`, follow it to the end on `b`.
pub(crate) async fn across(a: &Gw, b: &Gw) -> String {
    let (status, first) = a.submit("SELECT 1", &[]).await;
    assert_eq!(status, StatusCode::OK, "{first}");
    // follow on the other instance: rewrite the gateway address in nextUri
    let mut page = first;
    let mut rows = Vec::new();
    loop {
        if let Some(d) = page["data"].as_array() {
            rows.extend(d.iter().cloned());
        }
        let Some(next) = page["nextUri"].as_str() else {
            break;
        };
        let next = next.replace(&a.url(""), &b.url(""));
        let (status, body) = b.call(Method::GET, &next, &[], "").await;
        assert_eq!(status, StatusCode::OK, "{}", String::from_utf8_lossy(&body));
        page = json(&body);
    }
    owner(&rows)
}

#[tokio::test]
async fn follow_ups_on_another_instance_are_found_in_l2() {
    let redis = RedisServer::start().await;
    let (c1, c2, a, b) = two_instances(&redis).await;
    for _ in 0..10 {
        across(&a, &b).await;
    }
    let stats = cache_stats(&b).await;
    assert!(stats["l2"]["hits"].as_u64().unwrap() >= 10, "{stats}");
    assert_eq!(stats["search"]["hits"], 0, "{stats}");
    no_misroutes_then_stop(&[&c1, &c2], a, b).await;
}

#[tokio::test]
async fn redis_dies_routing_goes_on_and_recovers_by_itself() {
    let mut redis = RedisServer::start().await;
    let (c1, c2, a, b) = two_instances(&redis).await;
    across(&a, &b).await;

    redis.kill();
    // the first request after the crash may pay one timeout; after that nobody waits on Redis
    across(&a, &b).await;
    wait_l2(&a, false).await;
    wait_l2(&b, false).await;
    // nobody waits on a dead Redis: while it is marked down, L2 is skipped (nothing sent, so no
    // timeout to wait out), never tried and failed
    let errors_before = cache_stats(&b).await["l2"]["errors"].as_u64().unwrap();
    let skipped_before = cache_stats(&b).await["l2"]["skipped"].as_u64().unwrap();
    for _ in 0..10 {
        // b has never seen these queries: its L1 misses, L2 is down, the backend search finds them
        across(&a, &b).await;
    }
    let stats = cache_stats(&b).await;
    assert!(stats["search"]["hits"].as_u64().unwrap() >= 10, "{stats}");
    assert!(
        stats["l2"]["skipped"].as_u64().unwrap() >= skipped_before + 10,
        "{stats}"
    );
    assert_eq!(
        stats["l2"]["errors"].as_u64().unwrap(),
        errors_before,
        "a request waited on the dead Redis: {stats}"
    );

    redis.restart().await;
    wait_l2(&a, true).await;
    wait_l2(&b, true).await;
    let before = cache_stats(&b).await["l2"]["hits"].as_u64().unwrap();
    for _ in 0..5 {
        across(&a, &b).await;
    }
    let after = cache_stats(&b).await["l2"]["hits"].as_u64().unwrap();
    assert!(
        after >= before + 5,
        "L2 hits did not recover: {before} -> {after}"
    );
    no_misroutes_then_stop(&[&c1, &c2], a, b).await;
}

#[tokio::test]
async fn a_flood_of_bogus_ids_searches_the_clusters_once_per_id() {
    let c1 = cluster("c1").await;
    let mut cfg = config(&[("c1", "adhoc", &c1.url())]);
    cfg.cache.search.negative_ttl_ms = 60_000;
    let gw = Gw::start(cfg).await;
    for _ in 0..50 {
        let (status, _) = gw
            .call(
                Method::GET,
                "/v1/statement/executing/20200101_000000_00001_bogus/y/1",
                &[],
                "",
            )
            .await;
        assert_eq!(status, StatusCode::NOT_FOUND);
    }
    assert_eq!(
        c1.search_probes(),
        1,
        "one search, then the negative cache answers"
    );
    assert_eq!(c1.unknown_query_requests(), 0);
    gw.stop().await;
}

#[tokio::test]
async fn a_shared_sqlite_store_answers_when_l1_and_l2_do_not_know() {
    let tmp = temp_sqlite("l3");
    let store_url = tmp.url.clone();
    let c1 = cluster("c1").await;
    let mut cfg = config(&[("c1", "adhoc", &c1.url())]);
    cfg.store.url = store_url.clone();
    cfg.cache.search.enabled = false; // only L3 can know
    let (a, b) = (Gw::start(cfg.clone()).await, Gw::start(cfg).await);
    wait_drained(&a).await;
    wait_drained(&b).await; // both have their store up (they migrate the same file at start)
    let (_, first) = a.submit("SELECT 1", &[]).await;
    wait_drained(&a).await;
    assert_eq!(
        l3_state(&a).await["written"],
        2,
        "the mapping and the history row"
    );
    let next = first["nextUri"]
        .as_str()
        .unwrap()
        .replace(&a.url(""), &b.url(""));
    let (status, _) = b.call(Method::GET, &next, &[], "").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(cache_stats(&b).await["l3_store"]["healthy"], true);
    let stats = cache_stats(&b).await;
    assert_eq!(stats["l3_store"]["written"], 0);
    let metrics = String::from_utf8(b.admin(Method::GET, "/metrics").await.1.to_vec()).unwrap();
    assert!(
        metrics.contains(
            "\nsluice_cache_lookups_total{tier=\"l3\",purpose=\"query\",result=\"hit\"} 1\n"
        ),
        "{metrics}"
    );
    a.stop().await;
    b.stop().await;
}

#[tokio::test]
async fn postgres_stops_mid_run_no_query_fails_no_history_row_is_lost() {
    let pg = PgServer::start().await;
    store_stops_mid_run(&pg.url(), || pg.stop(), || pg.start_again()).await;
}

#[tokio::test]
async fn mariadb_stops_mid_run_no_query_fails_no_history_row_is_lost() {
    let db = sluice_testkit::MariaDbServer::start().await;
    store_stops_mid_run(&db.url(), || db.stop(), || db.start_again()).await;
}

/// The store (at `url`) is stopped while queries run, then started again: no query fails, the
/// store is marked down while rows wait, and every history row arrives.
async fn store_stops_mid_run<F: std::future::Future<Output = ()>>(
    url: &str,
    stop: impl Fn(),
    start: impl Fn() -> F,
) {
    let (c1, c2) = (cluster("c1").await, cluster("c2").await);
    let mut cfg = config(&[("c1", "adhoc", &c1.url()), ("c2", "adhoc", &c2.url())]);
    cfg.store.url = url.to_string();
    cfg.store.health_check_interval_ms = 100;
    cfg.store.timeout_ms = 200;
    let gw = Gw::start(cfg).await;
    wait_drained(&gw).await;
    let mut total = 0;
    for _ in 0..10 {
        let (_, q) = gw.submit("SELECT 1", &[]).await;
        gw.drain(&q).await;
        total += 1;
    }
    wait_drained(&gw).await;

    stop();
    for _ in 0..20 {
        let (status, q) = gw.submit("SELECT 1", &[]).await;
        assert_eq!(status, StatusCode::OK, "{q}");
        gw.drain(&q).await;
        total += 1;
    }
    let mut l3 = l3_state(&gw).await;
    for _ in 0..300 {
        if l3["healthy"] == false {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
        l3 = l3_state(&gw).await;
    }
    assert_eq!(l3["healthy"], false, "the store is marked down: {l3}");
    assert!(
        l3["queued"].as_u64().unwrap() > 0,
        "rows wait for the database: {l3}"
    );

    start().await;
    wait_drained(&gw).await;
    let l3 = l3_state(&gw).await;
    assert_eq!(l3["dropped"], 0, "{l3}");
    // count the rows in the database itself
    let store = sluice_store::Store::open(url).unwrap();
    assert_eq!(
        store.history_count().await.unwrap(),
        total,
        "every history row arrived"
    );
    gw.stop().await;
}

#[tokio::test]
async fn redis_and_postgres_both_down_follow_ups_are_found_by_search() {
    let mut redis = RedisServer::start().await;
    let pg = PgServer::start().await;
    let (c1, c2) = (cluster("c1").await, cluster("c2").await);
    let mut cfg = shared_config(
        &[("c1", "adhoc", &c1.url()), ("c2", "adhoc", &c2.url())],
        &redis,
    );
    cfg.store.url = pg.url();
    cfg.store.health_check_interval_ms = 100;
    cfg.store.timeout_ms = 200;
    let (a, b) = (Gw::start(cfg.clone()).await, Gw::start(cfg).await);
    wait_l2(&a, true).await;
    wait_drained(&a).await;
    across(&a, &b).await;

    redis.kill();
    pg.stop();
    // b's L1 has never seen the new queries (as if evicted), L2 and L3 are down: search finds them
    for _ in 0..10 {
        across(&a, &b).await;
    }
    let stats = cache_stats(&b).await;
    assert!(stats["search"]["hits"].as_u64().unwrap() >= 10, "{stats}");
    no_misroutes_then_stop(&[&c1, &c2], a, b).await;
}

#[tokio::test]
async fn an_in_memory_sqlite_store_keeps_its_rows() {
    let c1 = cluster("c1").await;
    let mut cfg = config(&[("c1", "adhoc", &c1.url())]);
    cfg.store.url = "sqlite::memory:".into();
    let gw = Gw::start(cfg).await;
    wait_drained(&gw).await;
    for _ in 0..3 {
        let (_, q) = gw.submit("SELECT 1", &[]).await;
        gw.drain(&q).await;
    }
    wait_drained(&gw).await;
    let l3 = l3_state(&gw).await;
    assert_eq!(l3["written"], 6, "3 mappings and 3 history rows: {l3}");
    gw.stop().await;
}

#[tokio::test]
async fn a_graceful_stop_writes_the_queued_history_rows() {
    let tmp = temp_sqlite("drain");
    let store_url = tmp.url.clone();
    let url = store_url;
    let c1 = cluster("c1").await;
    let mut cfg = config(&[("c1", "adhoc", &c1.url())]);
    cfg.store.url = url.clone();
    cfg.store.flush_interval_ms = 600_000; // nothing is written before the stop
    let gw = Gw::start(cfg).await;
    for _ in 0..3 {
        let (_, q) = gw.submit("SELECT 1", &[]).await;
        gw.drain(&q).await;
    }
    // the writer gathers for 10 minutes: the rows are still queued
    for _ in 0..300 {
        if l3_state(&gw).await["healthy"] == true {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(l3_state(&gw).await["written"], 0);
    gw.stop().await;
    let store = sluice_store::Store::open(&url).unwrap();
    assert_eq!(store.history_count().await.unwrap(), 3);
}

/// A cache over a shared Redis and SQLite store, as one instance of a fleet builds it.
fn shared_tiers(
    cfg: &sluice_config::Config,
    tasks: &tokio_util::task::TaskTracker,
    stop: &tokio_util::sync::CancellationToken,
) -> (
    std::sync::Arc<sluice_cache::TieredCache>,
    std::sync::Arc<std::sync::atomic::AtomicBool>,
) {
    use sluice_cache::{l2_redis::L2, TieredCache};
    let l2 = L2::start(&cfg.cache.valkey, tasks, stop.clone()).unwrap();
    let l3 = sluice_store::L3::start(&cfg.store, tasks, stop.clone()).unwrap();
    let tiers = std::sync::Arc::new(
        TieredCache::new(&cfg.cache, Some(l2), Default::default()).with_l3(Some(l3)),
    );
    let subscribed = tiers.follow_deletes(tasks, stop.clone());
    (tiers, subscribed)
}

#[tokio::test]
async fn a_delete_is_gone_from_every_tier_of_every_instance() {
    use std::sync::atomic::Ordering;
    let redis = RedisServer::start().await;
    let tmp = temp_sqlite("cache-delete");
    let mut cfg = sluice_config::Config::default();
    cfg.cache.valkey.enabled = true;
    cfg.cache.valkey.url = redis.url();
    cfg.store.url = tmp.url.clone();
    let (tasks, stop) = (
        tokio_util::task::TaskTracker::new(),
        tokio_util::sync::CancellationToken::new(),
    );
    let (a, a_sub) = shared_tiers(&cfg, &tasks, &stop);
    let (b, b_sub) = shared_tiers(&cfg, &tasks, &stop);
    let up = |t: &sluice_cache::TieredCache| {
        t.l2_healthy() == Some(true) && t.l3().is_some_and(|l3| l3.is_healthy())
    };
    for _ in 0..1000 {
        if up(&a) && up(&b) && a_sub.load(Ordering::Relaxed) && b_sub.load(Ordering::Relaxed) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert!(
        up(&a) && up(&b) && b_sub.load(Ordering::Relaxed),
        "tiers never came up"
    );

    let key = "sluice:filter:rules:k";
    let hour = Duration::from_secs(3600);
    a.set(key, bytes::Bytes::from_static(b"v"), hour, hour)
        .await;
    let l3 = a.l3().unwrap().clone();
    for _ in 0..1000 {
        if l3.queued() == 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert!(
        l3.store().get_entry(key).await.unwrap().is_some(),
        "written to L3"
    );
    // instance b holds it in its L1 for an hour
    assert!(b.get(key, hour, hour).await.is_some());
    assert!(b.l1_contains(key));

    a.delete(key).await;
    // gone from L3 and L2 at once, and from b's L1 by the announcement (not by its hour-long TTL)
    assert!(
        l3.store().get_entry(key).await.unwrap().is_none(),
        "L3 keeps no copy"
    );
    for _ in 0..500 {
        if !b.l1_contains(key) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert!(!b.l1_contains(key), "b's L1 copy was dropped");
    assert!(b.get(key, hour, hour).await.is_none(), "no tier refills it");
    assert!(a.get(key, hour, hour).await.is_none());
    // the queued delete ran after the queued write: still gone once the queue is empty
    for _ in 0..1000 {
        if l3.queued() == 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert!(l3.store().get_entry(key).await.unwrap().is_none());
    stop.cancel();
    tasks.close();
    tasks.wait().await;
}

#[tokio::test]
async fn two_instances_writing_the_same_keys_in_opposite_orders_never_deadlock() {
    use sluice_store::{Store, Write};
    let pg = PgServer::start().await;
    let (a, b) = (
        Store::open(&pg.url()).unwrap(),
        Store::open(&pg.url()).unwrap(),
    );
    a.migrate().await.unwrap();
    let batch = |reverse: bool, round: usize| {
        let mut keys: Vec<usize> = (0..40).collect();
        if reverse {
            keys.reverse();
        }
        keys.into_iter()
            .map(|k| Write::Entry {
                key: format!("sluice:query:k{k}"),
                value: format!("{round}").into_bytes(),
                expires_at_ms: i64::MAX,
            })
            .collect::<Vec<_>>()
    };
    let writer = |store: Store, reverse: bool| {
        tokio::spawn(async move {
            for round in 0..60 {
                store.write_batch(&batch(reverse, round)).await?;
            }
            Ok::<_, sluice_store::StoreError>(())
        })
    };
    let (ra, rb) = tokio::join!(writer(a, false), writer(b, true));
    ra.unwrap().expect("instance a never deadlocks");
    rb.unwrap().expect("instance b never deadlocks");
}
