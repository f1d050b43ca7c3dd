//! [`TieredCache`]: get / set / increment / delete through L1 (moka), L2 (Valkey/Redis) and L3
//! (SQL); a hit fills the tiers above it; a tier that is down is skipped, never waited on.
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use moka::Expiry;
use sluice_config::CacheConfig;
use sluice_store::{now_ms, HistoryRow, Write, L3};
use tracing::Instrument;

use crate::l2_redis::{L2Error, L2};
use crate::metrics::{CacheMetrics, Purpose, Tier};

#[derive(Clone)]
pub(crate) struct L1Entry {
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
    pub(crate) l1: moka::sync::Cache<Arc<str>, L1Entry>,
    l2: Option<Arc<L2>>,
    l3: Option<Arc<L3>>,
    metrics: CacheMetrics,
    /// This process among the instances sharing L2 (deletes it announces are not for itself).
    pub(crate) instance: String,
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
            instance: crate::invalidate::instance_tag(),
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

    fn l2_result<T>(&self, purpose: Purpose, r: Result<T, L2Error>) -> Option<T> {
        match r {
            Ok(v) => Some(v),
            Err(L2Error::Down) => {
                self.metrics.skip(Tier::L2, purpose);
                None
            }
            Err(
                L2Error::Failed(_)
                | L2Error::Timeout(_)
                | L2Error::Url(_)
                | L2Error::Tls(_)
                | L2Error::Sentinel(_),
            ) => {
                self.metrics.error(Tier::L2, purpose);
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
        let found = self.l1.get(key);
        let hit = found.is_some();
        self.metrics
            .lookup(Tier::L1, Purpose::of(key), hit, t.elapsed());
        if let Some(e) = found {
            return Some((e.value, Tier::L1));
        }
        self.get_below_l1(key, Some(l1_ttl), l2_ttl).await
    }

    /// Look `key` up in L2, then L3 (a caller with an L1 of its own has missed there); a hit
    /// fills L2 and, with `l1_ttl`, this cache's L1.
    pub async fn get_below_l1(
        &self,
        key: &str,
        l1_ttl: Option<Duration>,
        l2_ttl: Duration,
    ) -> Option<(Bytes, Tier)> {
        let purpose = Purpose::of(key);
        if let Some(l2) = &self.l2 {
            let t = Instant::now();
            let span = lookup_span("l2", purpose);
            let got = l2.get(key).instrument(span.clone()).await;
            span.record("sluice.hit", matches!(got, Ok(Some(_))));
            if let Some(found) = self.l2_result(purpose, got) {
                self.metrics
                    .lookup(Tier::L2, purpose, found.is_some(), t.elapsed());
                if let Some(v) = found {
                    let value = Bytes::from(v);
                    self.fill_l1(key, &value, l1_ttl);
                    return Some((value, Tier::L2));
                }
            }
        }
        let l3 = self.l3.as_ref()?;
        let t = Instant::now();
        let span = lookup_span("l3", purpose);
        let got = l3.get(key).instrument(span.clone()).await;
        span.record("sluice.hit", matches!(got, Ok(Some(_))));
        let found = match got {
            Ok(v) => v,
            Err(_) => {
                self.metrics.skip(Tier::L3, purpose);
                return None;
            }
        };
        self.metrics
            .lookup(Tier::L3, purpose, found.is_some(), t.elapsed());
        let value = Bytes::from(found?);
        self.fill_l1(key, &value, l1_ttl);
        if let Some(l2) = &self.l2 {
            self.l2_result(purpose, l2.set(key, &value, l2_ttl).await);
        }
        Some((value, Tier::L3))
    }

    fn fill_l1(&self, key: &str, value: &Bytes, ttl: Option<Duration>) {
        if let Some(ttl) = ttl {
            let value = value.clone();
            self.l1.insert(key.into(), L1Entry { value, ttl });
        }
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
            if let Some(values) = self.l2_result(Purpose::of(&wanted[0]), l2.mget(&wanted).await) {
                let took = t.elapsed();
                for (i, v) in missing.into_iter().zip(values) {
                    self.metrics
                        .lookup(Tier::L2, Purpose::of(&keys[i]), v.is_some(), took);
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
        let t = Instant::now();
        self.fill_l1(key, &value, Some(l1_ttl));
        self.metrics.write(Tier::L1, Purpose::of(key), t.elapsed());
        self.set_below_l1(key, value, l2_ttl, None).await
    }

    /// Write through L2 (awaited) and queue for L3, with an optional history row: for a caller
    /// with an L1 of its own.
    pub async fn set_below_l1(
        &self,
        key: &str,
        value: Bytes,
        l2_ttl: Duration,
        history: Option<HistoryRow>,
    ) {
        let purpose = Purpose::of(key);
        if let Some(l3) = &self.l3 {
            let entry = Write::Entry {
                key: key.to_string(),
                value: value.to_vec(),
                expires_at_ms: now_ms() + l2_ttl.as_millis() as i64,
            };
            l3.enqueue(std::iter::once(entry).chain(history.map(|h| Write::History(Box::new(h)))));
            self.metrics.write(Tier::L3, purpose, Duration::ZERO);
        }
        if let Some(l2) = &self.l2 {
            let t = Instant::now();
            let set = l2.set(key, &value, l2_ttl).await;
            if self.l2_result(purpose, set).is_some() {
                self.metrics.write(Tier::L2, purpose, t.elapsed());
            }
        }
    }

    /// Remove from every tier, and from the L1 of every instance sharing L2 (announced on
    /// [`crate::invalidate::CHANNEL`]); L3 deletes it now and again after any queued write.
    pub async fn delete(&self, key: &str) {
        self.l1.invalidate(key);
        if let Some(l3) = &self.l3 {
            l3.delete(key).await;
        }
        if let Some(l2) = &self.l2 {
            self.l2_result(Purpose::of(key), l2.del(key).await);
            crate::invalidate::announce(&self.instance, l2, key).await;
        }
    }

    /// Drop `key` from L1 only (another instance deleted it).
    /// Drop the keys other instances delete from this L1, in a task on `tasks` until `stop`
    /// (nothing to do without L2). Returns whether the subscription is up, for status.
    pub fn follow_deletes(
        self: &Arc<Self>,
        tasks: &tokio_util::task::TaskTracker,
        stop: tokio_util::sync::CancellationToken,
    ) -> Arc<std::sync::atomic::AtomicBool> {
        let Some(l2) = self.l2().cloned() else {
            return Arc::new(std::sync::atomic::AtomicBool::new(false));
        };
        let tiers = Arc::downgrade(self);
        let forget = move |key: &str| {
            if let Some(t) = tiers.upgrade() {
                t.forget_l1(key)
            }
        };
        crate::invalidate::follow(l2, self.instance.clone(), forget, tasks, stop)
    }

    pub(crate) fn forget_l1(&self, key: &str) {
        self.l1.invalidate(key);
    }

    /// The shared tier, if configured.
    pub(crate) fn l2(&self) -> Option<&Arc<L2>> {
        self.l2.as_ref()
    }

    /// Atomic add: in L2 (INCRBY + EXPIRE, shared by every instance) when it is up, else in L1.
    pub async fn increment(&self, key: &str, delta: i64, ttl: Duration) -> i64 {
        if let Some(l2) = &self.l2 {
            let t = Instant::now();
            let purpose = Purpose::of(key);
            if let Some(v) = self.l2_result(purpose, l2.incr(key, delta, ttl).await) {
                self.metrics.write(Tier::L2, purpose, t.elapsed());
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

/// A span around one lookup in `tier` (when tracing is on).
fn lookup_span(tier: &'static str, purpose: Purpose) -> tracing::Span {
    tracing::info_span!(
        target: sluice_telemetry::TARGET,
        "sluice.cache",
        sluice.tier = tier,
        sluice.purpose = purpose.as_str(),
        sluice.hit = tracing::field::Empty,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

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
}
