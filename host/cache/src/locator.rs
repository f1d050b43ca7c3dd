//! [`QueryLocator`]: query id → backend and routing group, on top of [`TieredCache`], with the
//! search of the backends as last resort and a negative cache for ids nobody owns.
use std::sync::Arc;
use std::time::{Duration, Instant};

use sluice_config::CacheConfig;
use sluice_store::HistoryRow;
use tracing::Instrument;

pub use crate::location::{query_key, QueryLocation, QUERY_KEY_PREFIX};
use crate::metrics::{Purpose, Tier};
use crate::query_l1::QueryL1;
use crate::search::BackendSearch;
use crate::TieredCache;

/// Query id → location, through the tiers, then the backend search.
pub struct QueryLocator {
    /// Query locations in process (their own compact L1, not the tiers' general one).
    l1: QueryL1,
    tiers: Arc<TieredCache>,
    negative: moka::sync::Cache<Arc<str>, ()>,
    search: Option<BackendSearch>,
    l2_ttl: Duration,
}

impl QueryLocator {
    /// A locator over `tiers`, with an optional backend search.
    pub fn new(
        config: &CacheConfig,
        tiers: Arc<TieredCache>,
        search: Option<BackendSearch>,
    ) -> Self {
        Self {
            l1: QueryL1::new(
                config.l1.capacity,
                Duration::from_secs(config.l1.ttl_seconds),
            ),
            tiers,
            negative: moka::sync::Cache::builder()
                .max_capacity(100_000)
                .time_to_live(Duration::from_millis(config.search.negative_ttl_ms.max(1)))
                .build(),
            search,
            l2_ttl: Duration::from_secs(config.valkey.ttl_seconds),
        }
    }

    /// Where `query_id` lives, if any tier knows or a backend owns it.
    pub async fn locate(&self, query_id: &str) -> Option<QueryLocation> {
        match self.locate_in_l1(query_id) {
            Some(held) => Some(held),
            None => self.locate_below_l1(query_id).await,
        }
    }

    /// Where `query_id` lives if L1 knows (no await: a follow-up's usual case, kept out of the
    /// larger future of the tiers below).
    pub fn locate_in_l1(&self, query_id: &str) -> Option<QueryLocation> {
        let t = Instant::now();
        let held = self.l1.get(query_id);
        let metrics = self.tiers.metrics();
        metrics.lookup(Tier::L1, Purpose::Query, held.is_some(), t.elapsed());
        held
    }

    /// [`QueryLocator::locate`] past L1: L2, L3, then the search of the backends.
    pub async fn locate_below_l1(&self, query_id: &str) -> Option<QueryLocation> {
        let key = query_key(query_id);
        if let Some((v, _)) = self.tiers.get_below_l1(&key, None, self.l2_ttl).await {
            if let Some(loc) = QueryLocation::decode(&v) {
                self.l1.insert(query_id, &loc);
                return Some(loc);
            }
        }
        let search = self.search.as_ref()?;
        if self.negative.contains_key(query_id) {
            return None;
        }
        let t = Instant::now();
        let span = tracing::info_span!(
            target: sluice_telemetry::TARGET,
            "sluice.cache",
            sluice.tier = "search",
            sluice.purpose = "query",
            sluice.hit = tracing::field::Empty,
        );
        let found = search.find(query_id).instrument(span.clone()).await;
        span.record("sluice.hit", found.is_some());
        self.tiers
            .metrics()
            .lookup(Tier::Search, Purpose::Query, found.is_some(), t.elapsed());
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
        self.remember_with(query_id, location, None).await
    }

    async fn remember_with(
        &self,
        query_id: &str,
        location: QueryLocation,
        history: Option<HistoryRow>,
    ) {
        let t = Instant::now();
        self.l1.insert(query_id, &location);
        self.tiers
            .metrics()
            .write(Tier::L1, Purpose::Query, t.elapsed());
        let key = query_key(query_id);
        self.tiers
            .set_below_l1(&key, location.encode(), self.l2_ttl, history)
            .await;
    }

    /// Remember a new query (before its first response reaches the client) and queue its history
    /// row for L3.
    pub async fn remember_new(&self, query_id: &str, location: QueryLocation, history: HistoryRow) {
        self.remember_with(query_id, location, Some(history)).await
    }

    /// Drop every location held in process (tests: force reads to the lower tiers).
    pub fn clear_l1(&self) {
        self.l1.clear();
    }

    /// The tiers underneath.
    pub fn tiers(&self) -> &Arc<TieredCache> {
        &self.tiers
    }

    /// Number of entries held in process (approximate; for status pages).
    pub fn l1_entries(&self) -> u64 {
        self.l1.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::metrics::CacheMetrics;
    use sluice_config::L1Config;

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
        assert!(c.l1_entries() <= 100, "held {}", c.l1_entries());
    }

    #[tokio::test]
    async fn entries_expire_after_the_ttl() {
        let c = locator(10, 1);
        c.remember("1_2_3_x", loc("a")).await;
        assert!(c.locate("1_2_3_x").await.is_some());
        // await the expiry (a 1 s TTL), bounded, rather than sleeping for a fixed time
        let deadline = Instant::now() + Duration::from_secs(10);
        while c.locate("1_2_3_x").await.is_some() {
            assert!(
                Instant::now() < deadline,
                "the entry outlived its TTL by 9 s"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    #[test]
    fn locations_round_trip() {
        let l = loc("etl-1");
        assert_eq!(QueryLocation::decode(&l.encode()), Some(l));
        assert_eq!(QueryLocation::decode(b"no tab"), None);
    }
}
