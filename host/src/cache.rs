//! The cache stack for query state: L1 in process (moka), L2 shared (Valkey/Redis), and for
//! query ids a search of the backends as last resort.
//!
//! - [`TieredCache`]: get / set / increment / delete through the tiers; a hit fills the tiers
//!   above it; a tier that is down is skipped, never waited on. Filters reach it (namespaced)
//!   through the WIT `cache` interface.
//! - [`QueryLocator`]: query id → backend and routing group, on top of [`TieredCache`], with the
//!   backend search and a negative cache for ids nobody owns.
//! - [`l2_redis`], [`search`], [`metrics`]: the shared tier, the search, per-tier metrics.
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use moka::Expiry;

use crate::config::CacheConfig;

pub mod l2_redis;
pub mod metrics;
pub mod search;

use crate::store::{now_ms, HistoryRow, Write, L3};
use l2_redis::{L2Error, L2};
use metrics::{CacheMetrics, Tier};
use search::BackendSearch;

#[derive(Clone)]
struct L1Entry {
    value: Bytes,
    ttl: Duration,
}

struct PerEntry;

impl Expiry<Arc<str>, L1Entry> for PerEntry {
    fn expire_after_create(
        &self,
        _: &Arc<str>,
        e: &L1Entry,
        _: std::time::Instant,
    ) -> Option<Duration> {
        Some(e.ttl)
    }
    fn expire_after_update(
        &self,
        _: &Arc<str>,
        e: &L1Entry,
        _: std::time::Instant,
        _: Option<Duration>,
    ) -> Option<Duration> {
        Some(e.ttl)
    }
}

/// L1 → L2 → L3 for any key.
pub struct TieredCache {
    l1: moka::sync::Cache<Arc<str>, L1Entry>,
    l2: Option<Arc<L2>>,
    l3: Option<Arc<L3>>,
    metrics: CacheMetrics,
}

impl TieredCache {
    /// Tiers with the configured L1 bounds and an optional L2.
    pub fn new(config: &CacheConfig, l2: Option<Arc<L2>>, metrics: CacheMetrics) -> Self {
        Self {
            l1: moka::sync::Cache::builder()
                .max_capacity(config.l1.capacity)
                .expire_after(PerEntry)
                .build(),
            l2,
            l3: None,
            metrics,
        }
    }

    /// Add the SQL tier underneath.
    pub fn with_l3(mut self, l3: Option<Arc<L3>>) -> Self {
        self.l3 = l3;
        self
    }

    /// The SQL tier, if configured.
    pub fn l3(&self) -> Option<&Arc<L3>> {
        self.l3.as_ref()
    }

    /// The metrics this cache updates.
    pub fn metrics(&self) -> &CacheMetrics {
        &self.metrics
    }

    /// Whether an L2 is configured and up.
    pub fn l2_healthy(&self) -> Option<bool> {
        self.l2.as_ref().map(|l| l.is_healthy())
    }

    fn l2_result<T>(&self, r: Result<T, L2Error>) -> Option<T> {
        match r {
            Ok(v) => Some(v),
            Err(L2Error::Down) => {
                self.metrics.skip(Tier::L2);
                None
            }
            Err(L2Error::Failed(_)) => {
                self.metrics.error(Tier::L2);
                None
            }
        }
    }

    /// Look `key` up: L1, then L2, then L3; a hit fills the tiers above it (L1 for `l1_ttl`,
    /// L2 for `l2_ttl`).
    pub async fn get(
        &self,
        key: &str,
        l1_ttl: Duration,
        l2_ttl: Duration,
    ) -> Option<(Bytes, Tier)> {
        let t = Instant::now();
        if let Some(e) = self.l1.get(key) {
            self.metrics.lookup(Tier::L1, true, t.elapsed());
            return Some((e.value, Tier::L1));
        }
        self.metrics.lookup(Tier::L1, false, t.elapsed());
        if let Some(l2) = &self.l2 {
            let t = Instant::now();
            if let Some(found) = self.l2_result(l2.get(key).await) {
                self.metrics.lookup(Tier::L2, found.is_some(), t.elapsed());
                if let Some(v) = found {
                    let value = Bytes::from(v);
                    self.l1.insert(
                        key.into(),
                        L1Entry {
                            value: value.clone(),
                            ttl: l1_ttl,
                        },
                    );
                    return Some((value, Tier::L2));
                }
            }
        }
        let l3 = self.l3.as_ref()?;
        let t = Instant::now();
        let found = match l3.get(key).await {
            Ok(v) => v,
            Err(_) => {
                self.metrics.skip(Tier::L3);
                return None;
            }
        };
        self.metrics.lookup(Tier::L3, found.is_some(), t.elapsed());
        let value = Bytes::from(found?);
        self.l1.insert(
            key.into(),
            L1Entry {
                value: value.clone(),
                ttl: l1_ttl,
            },
        );
        if let Some(l2) = &self.l2 {
            self.l2_result(l2.set(key, &value, l2_ttl).await);
        }
        Some((value, Tier::L3))
    }

    /// Several keys: L1 first, the rest from L2 in one round trip.
    pub async fn get_many(&self, keys: &[String], l1_ttl: Duration) -> Vec<Option<Bytes>> {
        let mut out: Vec<Option<Bytes>> = keys
            .iter()
            .map(|k| self.l1.get(k.as_str()).map(|e| e.value))
            .collect();
        let missing: Vec<usize> = (0..keys.len()).filter(|&i| out[i].is_none()).collect();
        if missing.is_empty() {
            return out;
        }
        if let Some(l2) = &self.l2 {
            let wanted: Vec<String> = missing.iter().map(|&i| keys[i].clone()).collect();
            let t = Instant::now();
            if let Some(values) = self.l2_result(l2.mget(&wanted).await) {
                let took = t.elapsed();
                for (i, v) in missing.into_iter().zip(values) {
                    self.metrics.lookup(Tier::L2, v.is_some(), took);
                    if let Some(v) = v {
                        let v = Bytes::from(v);
                        self.l1.insert(
                            keys[i].as_str().into(),
                            L1Entry {
                                value: v.clone(),
                                ttl: l1_ttl,
                            },
                        );
                        out[i] = Some(v);
                    }
                }
            }
        }
        out
    }

    /// Write through L1 and L2 (awaited: the value is shared before the caller goes on), and
    /// queue it for L3 (written in the background; `l2_ttl` is its lifetime there too).
    pub async fn set(&self, key: &str, value: Bytes, l1_ttl: Duration, l2_ttl: Duration) {
        self.set_with(key, value, l1_ttl, l2_ttl, None).await
    }

    /// [`TieredCache::set`], plus a history row queued for L3 in the same batch.
    pub async fn set_with(
        &self,
        key: &str,
        value: Bytes,
        l1_ttl: Duration,
        l2_ttl: Duration,
        history: Option<HistoryRow>,
    ) {
        let t = Instant::now();
        self.l1.insert(
            key.into(),
            L1Entry {
                value: value.clone(),
                ttl: l1_ttl,
            },
        );
        self.metrics.write(Tier::L1, t.elapsed());
        if let Some(l3) = &self.l3 {
            let entry = Write::Entry {
                key: key.to_string(),
                value: value.to_vec(),
                expires_at_ms: now_ms() + l2_ttl.as_millis() as i64,
            };
            l3.enqueue(std::iter::once(entry).chain(history.map(|h| Write::History(Box::new(h)))));
            self.metrics.write(Tier::L3, Duration::ZERO);
        }
        if let Some(l2) = &self.l2 {
            let t = Instant::now();
            if self.l2_result(l2.set(key, &value, l2_ttl).await).is_some() {
                self.metrics.write(Tier::L2, t.elapsed());
            }
        }
    }

    /// Remove from every tier.
    pub async fn delete(&self, key: &str) {
        self.l1.invalidate(key);
        if let Some(l2) = &self.l2 {
            self.l2_result(l2.del(key).await);
        }
    }

    /// Atomic add: in L2 (INCRBY + EXPIRE, shared by every instance) when it is up, else in L1.
    pub async fn increment(&self, key: &str, delta: i64, ttl: Duration) -> i64 {
        if let Some(l2) = &self.l2 {
            let t = Instant::now();
            if let Some(v) = self.l2_result(l2.incr(key, delta, ttl).await) {
                self.metrics.write(Tier::L2, t.elapsed());
                return v;
            }
        }
        let mut result = 0;
        self.l1.entry(key.into()).and_compute_with(|current| {
            let now = current
                .and_then(|e| {
                    std::str::from_utf8(&e.into_value().value)
                        .ok()
                        .and_then(|s| s.parse::<i64>().ok())
                })
                .unwrap_or(0);
            result = now.saturating_add(delta);
            moka::ops::compute::Op::Put(L1Entry {
                value: Bytes::from(result.to_string()),
                ttl,
            })
        });
        result
    }

    /// Whether L1 holds `key` (for tests and status).
    pub fn l1_contains(&self, key: &str) -> bool {
        self.l1.contains_key(key)
    }

    /// Drop every L1 entry (tests: force reads to the lower tiers).
    pub fn clear_l1(&self) {
        self.l1.invalidate_all();
        self.l1.run_pending_tasks();
    }

    /// Entries in L1 (approximate).
    pub fn l1_entries(&self) -> u64 {
        self.l1.entry_count()
    }
}

/// The owner of one query.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QueryLocation {
    /// Backend name.
    pub backend: Arc<str>,
    /// Routing group the query was routed in.
    pub group: Arc<str>,
}

impl QueryLocation {
    fn encode(&self) -> Bytes {
        Bytes::from(format!("{}\t{}", self.backend, self.group))
    }

    fn decode(v: &[u8]) -> Option<Self> {
        let s = std::str::from_utf8(v).ok()?;
        let (b, g) = s.split_once('\t')?;
        Some(Self {
            backend: b.into(),
            group: g.into(),
        })
    }
}

/// Query id → location, through the tiers, then the backend search.
pub struct QueryLocator {
    tiers: Arc<TieredCache>,
    negative: moka::sync::Cache<Arc<str>, ()>,
    search: Option<BackendSearch>,
    l1_ttl: Duration,
    l2_ttl: Duration,
}

/// The key of a query's location in every tier.
pub fn query_key(id: &str) -> String {
    format!("sluice:query:{id}")
}

impl QueryLocator {
    /// A locator over `tiers`, with an optional backend search.
    pub fn new(
        config: &CacheConfig,
        tiers: Arc<TieredCache>,
        search: Option<BackendSearch>,
    ) -> Self {
        Self {
            tiers,
            negative: moka::sync::Cache::builder()
                .max_capacity(100_000)
                .time_to_live(Duration::from_millis(config.search.negative_ttl_ms.max(1)))
                .build(),
            search,
            l1_ttl: Duration::from_secs(config.l1.ttl_seconds),
            l2_ttl: Duration::from_secs(config.valkey.ttl_seconds),
        }
    }

    /// Where `query_id` lives, if any tier knows or a backend owns it.
    pub async fn locate(&self, query_id: &str) -> Option<QueryLocation> {
        let key = query_key(query_id);
        if let Some((v, _)) = self.tiers.get(&key, self.l1_ttl, self.l2_ttl).await {
            if let Some(loc) = QueryLocation::decode(&v) {
                return Some(loc);
            }
        }
        let search = self.search.as_ref()?;
        if self.negative.contains_key(query_id) {
            return None;
        }
        let t = Instant::now();
        let found = search.find(query_id).await;
        self.tiers
            .metrics()
            .lookup(Tier::Search, found.is_some(), t.elapsed());
        match found {
            Some(b) => {
                let loc = QueryLocation {
                    backend: b.name().into(),
                    group: b.group().into(),
                };
                tracing::info!(
                    query_id,
                    backend = b.name(),
                    "query found by backend search"
                );
                self.remember(query_id, loc.clone()).await;
                Some(loc)
            }
            None => {
                self.negative.insert(query_id.into(), ());
                None
            }
        }
    }

    /// Remember where a query lives.
    pub async fn remember(&self, query_id: &str, location: QueryLocation) {
        let key = query_key(query_id);
        self.tiers
            .set(&key, location.encode(), self.l1_ttl, self.l2_ttl)
            .await;
    }

    /// Remember a new query (before its first response reaches the client) and queue its history
    /// row for L3.
    pub async fn remember_new(&self, query_id: &str, location: QueryLocation, history: HistoryRow) {
        let key = query_key(query_id);
        let value = location.encode();
        self.tiers
            .set_with(&key, value, self.l1_ttl, self.l2_ttl, Some(history))
            .await;
    }

    /// The tiers underneath.
    pub fn tiers(&self) -> &Arc<TieredCache> {
        &self.tiers
    }

    /// Number of entries held in process (approximate; for status pages).
    pub fn l1_entries(&self) -> u64 {
        self.tiers.l1_entries()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::L1Config;

    fn loc(b: &str) -> QueryLocation {
        QueryLocation {
            backend: b.into(),
            group: "adhoc".into(),
        }
    }

    fn locator(capacity: u64, ttl: u64) -> QueryLocator {
        let config = CacheConfig {
            l1: L1Config {
                capacity,
                ttl_seconds: ttl,
            },
            ..Default::default()
        };
        let tiers = Arc::new(TieredCache::new(&config, None, CacheMetrics::default()));
        QueryLocator::new(&config, tiers, None)
    }

    #[tokio::test]
    async fn remembers_and_forgets_unknown_ids() {
        let c = locator(10, 60);
        c.remember("20240101_000000_00001_abcde", loc("a")).await;
        assert_eq!(
            c.locate("20240101_000000_00001_abcde").await,
            Some(loc("a"))
        );
        assert_eq!(c.locate("20240101_000000_00002_abcde").await, None);
        let m = c.tiers().metrics();
        assert_eq!(
            (m.lookups(Tier::L1, true), m.lookups(Tier::L1, false)),
            (1, 1)
        );
    }

    #[tokio::test]
    async fn capacity_is_bounded() {
        let c = locator(100, 60);
        for i in 0..1000 {
            c.remember(&format!("20240101_000000_{i:05}_abcde"), loc("a"))
                .await;
        }
        c.tiers.l1.run_pending_tasks();
        assert!(c.l1_entries() <= 100, "held {}", c.l1_entries());
    }

    #[tokio::test]
    async fn entries_expire_after_the_ttl() {
        let c = locator(10, 1);
        c.remember("1_2_3_x", loc("a")).await;
        assert!(c.locate("1_2_3_x").await.is_some());
        tokio::time::sleep(Duration::from_millis(1100)).await;
        assert!(c.locate("1_2_3_x").await.is_none());
    }

    #[tokio::test]
    async fn l1_counters_are_atomic_without_l2() {
        let config = CacheConfig::default();
        let tiers = Arc::new(TieredCache::new(&config, None, CacheMetrics::default()));
        let mut tasks = Vec::new();
        for _ in 0..4 {
            let t = tiers.clone();
            tasks.push(tokio::spawn(async move {
                for _ in 0..500 {
                    t.increment("n", 1, Duration::from_secs(60)).await;
                }
            }));
        }
        for t in tasks {
            t.await.unwrap();
        }
        assert_eq!(tiers.increment("n", 0, Duration::from_secs(60)).await, 2000);
    }

    #[test]
    fn locations_round_trip() {
        let l = loc("etl-1");
        assert_eq!(QueryLocation::decode(&l.encode()), Some(l));
        assert_eq!(QueryLocation::decode(b"no tab"), None);
    }
}
