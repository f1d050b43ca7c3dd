//! L2 on a Redis Cluster and on a Sentinel setup, each started by the test: follow-ups across
//! instances, the filters' atomic increments, fleet announcements (with L3 polling off, so only
//! pub/sub can carry them), and all of it again after the master is killed and replaced.
use std::time::Duration;

use http::{Method, StatusCode};
use sluice_cache::l2_redis::L2;
use sluice_config::{Config, ValkeyMode};
use sluice_testkit::redis_topologies::{RedisCluster, RedisSentinels};
use sluice_testkit::*;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::admin::{with_tokens, ADMIN};
use crate::cache::across;
use crate::filters::builtin_slot;
use crate::fleet::{within, PATIENCE};

/// Two clusters in two groups, a SQLite store the instances share, and L2 as `mode` over `nodes`.
struct Fixture {
    a1: FakeTrino,
    e1: FakeTrino,
    store: TempSqlite,
    mode: ValkeyMode,
    nodes: Vec<String>,
}

impl Fixture {
    async fn start(name: &str, mode: ValkeyMode, nodes: Vec<String>) -> Fixture {
        Fixture {
            a1: cluster("adhoc-1").await,
            e1: cluster("etl-1").await,
            store: temp_sqlite(name),
            mode,
            nodes,
        }
    }

    fn config(&self) -> Config {
        let (a, e) = (self.a1.url(), self.e1.url());
        let mut c = with_tokens(config(&[("adhoc-1", "adhoc", &a), ("etl-1", "etl", &e)]));
        c.store.url = self.store.url.clone();
        c.routing.chain = vec![builtin_slot(
            "rules",
            "routing-rules",
            "{default_group: adhoc, rules: []}",
        )];
        c.filters.poll_interval_ms = 0; // announcements only: they must arrive through L2
        let v = &mut c.cache.valkey;
        v.enabled = true;
        v.mode = self.mode;
        v.nodes = self.nodes.clone();
        v.timeout_ms = 300;
        v.health_check_interval_ms = 100;
        c
    }
}

/// The group every query goes to, set through `gw` (a new filter version, announced).
async fn route_all_to(gw: &Gw, group: &str) {
    let body = format!("{{default_group: {group}, rules: []}}");
    let (status, v) = gw
        .admin_as(
            Method::PUT,
            "/api/v1/filters/rules/config",
            Some(ADMIN),
            body.into(),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{v}");
}

async fn lands(gw: &Gw) -> String {
    let (status, q) = gw.submit("SELECT 1", &[]).await;
    assert_eq!(status, StatusCode::OK, "{q}");
    owner(&gw.drain(&q).await.0)
}

/// `n` increments of one key from each of two L2 clients at once, then a read of many keys
/// (spread over shards in a Cluster).
async fn increments_add_up(config: &Config, n: i64) {
    let (tasks, stop) = (TaskTracker::new(), CancellationToken::new());
    let one = L2::start(&config.cache.valkey, &tasks, stop.clone()).unwrap();
    let two = L2::start(&config.cache.valkey, &tasks, stop.clone()).unwrap();
    within(PATIENCE, "both clients up", || async {
        one.is_healthy() && two.is_healthy()
    })
    .await;
    let key = format!("sluice:filter:test:{}", rand::random::<u32>());
    let ttl = Duration::from_secs(60);
    let bump = |l2: std::sync::Arc<L2>, key: String| async move {
        for _ in 0..n {
            l2.incr(&key, 1, ttl).await.expect("increment");
        }
    };
    tokio::join!(
        bump(one.clone(), key.clone()),
        bump(two.clone(), key.clone())
    );
    assert_eq!(one.incr(&key, 0, ttl).await.unwrap(), 2 * n);
    let keys: Vec<String> = (0..16).map(|i| format!("{key}:{i}")).collect();
    for k in &keys {
        one.set(k, k.as_bytes(), ttl).await.unwrap();
    }
    let got = two.mget(&keys).await.unwrap();
    assert!(got
        .iter()
        .zip(&keys)
        .all(|(v, k)| v.as_deref() == Some(k.as_bytes())));
    stop.cancel();
    tasks.close();
    tasks.wait().await;
}

/// Follow-ups `gw` found in L2 so far.
async fn l2_hits(gw: &Gw) -> u64 {
    cache_stats(gw).await["l2"]["hits"].as_u64().unwrap()
}

/// Everything a fleet asks of L2, on instances `a` and `b`.
async fn fleet_works(fx: &Fixture, a: &Gw, b: &Gw, group: &str) {
    // after a failover, until L2 has found the new master, follow-ups are found in L3 instead
    within(
        PATIENCE,
        "a follow-up on b is found in L2 again",
        || async {
            let before = l2_hits(b).await;
            across(a, b).await;
            l2_hits(b).await > before
        },
    )
    .await;
    let hits = l2_hits(b).await;
    for _ in 0..5 {
        across(a, b).await;
    }
    let now = l2_hits(b).await;
    assert!(now >= hits + 5, "follow-ups found in L2: {hits} → {now}");
    route_all_to(a, group).await;
    let want = format!("{group}-1");
    within(PATIENCE, "b follows the announced version", || async {
        lands(b).await == want
    })
    .await;
    assert_eq!(lands(a).await, want);
    increments_add_up(&fx.config(), 50).await;
    assert_eq!(
        fx.a1.unknown_query_requests() + fx.e1.unknown_query_requests(),
        0
    );
}

#[tokio::test]
async fn a_redis_cluster_carries_the_fleet_and_survives_a_failover() {
    let mut redis = RedisCluster::start(3, 1).await;
    assert_eq!(redis.masters().len(), 3);
    let fx = Fixture::start("l2-cluster", ValkeyMode::Cluster, redis.urls()).await;
    let (a, b) = (Gw::start(fx.config()).await, Gw::start(fx.config()).await);
    fleet_works(&fx, &a, &b, "etl").await;
    // kill a master: its replica takes over, and everything works again
    let victim = redis.masters()[0];
    redis.kill_master(victim).await;
    // while L2 finds its way (or is marked down), follow-ups still reach their owner (L3)
    across(&a, &b).await;
    fleet_works(&fx, &a, &b, "adhoc").await;
    a.stop().await;
    b.stop().await;
}

#[tokio::test]
async fn sentinels_name_the_master_and_switch_overs_and_failovers_are_followed() {
    let mut redis = RedisSentinels::start().await;
    let fx = Fixture::start("l2-sentinel", ValkeyMode::Sentinel, redis.urls()).await;
    let (a, b) = (Gw::start(fx.config()).await, Gw::start(fx.config()).await);
    fleet_works(&fx, &a, &b, "etl").await;
    // a switch-over: the old master stays up, demoted to a replica (Sentinel drops its clients;
    // L2's check fails and it asks the Sentinels again; a demoted master that kept its clients
    // would fail the check's ROLE)
    redis.switch_over().await;
    fleet_works(&fx, &a, &b, "adhoc").await;
    // a crash: the master is gone, L2 finds the new one through the Sentinels
    redis.fail_over().await;
    fleet_works(&fx, &a, &b, "etl").await;
    a.stop().await;
    b.stop().await;
}
