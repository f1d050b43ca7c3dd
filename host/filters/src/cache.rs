//! The cache filters see through the WIT `cache` interface: the gateway's [`TieredCache`] under
//! the prefix `sluice:filter:{slot}:`, so a filter never reaches another slot's keys or the
//! gateway's own (`sluice:query:…`).
//!
//! Coherence across instances: counters (`increment`) live in L2 when it is up, so every instance
//! adds to the same number; other values are kept in L1 for at most [`L1_TTL_SHARED`] when an L2
//! exists, so a value set on one instance is seen by the others within a second.
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;

use sluice_cache::TieredCache;
use sluice_config::CacheConfig;

/// Largest TTL a filter may ask for (a day); 0 means "the default of 5 minutes".
const MAX_TTL: Duration = Duration::from_secs(86_400);
const DEFAULT_TTL: Duration = Duration::from_secs(300);
/// Longest an L1 copy of a filter value is trusted when an L2 is shared with other instances.
pub const L1_TTL_SHARED: Duration = Duration::from_secs(1);
/// Largest key and value a filter may store.
pub const MAX_KEY: usize = 512;
pub const MAX_VALUE: usize = 64 * 1024;

/// The store behind every slot's namespace.
pub struct FilterCache {
    tiers: Arc<TieredCache>,
    shared: bool,
}

impl Default for FilterCache {
    /// An in-process cache (no L2), for tests and tools.
    fn default() -> Self {
        let tiers = TieredCache::new(&CacheConfig::default(), None, Default::default());
        Self::new(Arc::new(tiers), false)
    }
}

fn ttl(seconds: u32) -> Duration {
    if seconds == 0 {
        DEFAULT_TTL
    } else {
        Duration::from_secs(seconds as u64).min(MAX_TTL)
    }
}

impl FilterCache {
    /// Filter keys in `tiers`; `shared` when an L2 is configured.
    pub fn new(tiers: Arc<TieredCache>, shared: bool) -> Self {
        Self { tiers, shared }
    }

    /// The namespace of one slot.
    pub fn namespace(self: &Arc<Self>, slot: &str) -> Namespace {
        Namespace {
            cache: self.clone(),
            prefix: format!("sluice:filter:{slot}:"),
        }
    }

    /// Whether L1 holds a full key (with its namespace prefix): for tests and status.
    pub fn contains_full_key(&self, key: &str) -> bool {
        self.tiers.l1_contains(key)
    }

    fn l1_ttl(&self, ttl: Duration) -> Duration {
        if self.shared {
            ttl.min(L1_TTL_SHARED)
        } else {
            ttl
        }
    }
}

/// One slot's view of the cache.
#[derive(Clone)]
pub struct Namespace {
    cache: Arc<FilterCache>,
    prefix: String,
}

impl Namespace {
    fn key(&self, key: &str) -> Option<String> {
        (key.len() <= MAX_KEY).then(|| format!("{}{key}", self.prefix))
    }

    /// Read a value.
    pub async fn get(&self, key: &str) -> Option<Vec<u8>> {
        let k = self.key(key)?;
        let c = &self.cache;
        c.tiers
            .get(&k, c.l1_ttl(DEFAULT_TTL), DEFAULT_TTL)
            .await
            .map(|(v, _)| v.to_vec())
    }

    /// Read several values in one round trip.
    pub async fn get_many(&self, keys: &[String]) -> Vec<Option<Vec<u8>>> {
        let full: Vec<Option<String>> = keys.iter().map(|k| self.key(k)).collect();
        let valid: Vec<String> = full.iter().flatten().cloned().collect();
        let c = &self.cache;
        let mut found = c
            .tiers
            .get_many(&valid, c.l1_ttl(DEFAULT_TTL))
            .await
            .into_iter();
        full.iter()
            .map(|k| {
                k.as_ref()
                    .and_then(|_| found.next().flatten().map(|b: Bytes| b.to_vec()))
            })
            .collect()
    }

    /// Write a value; over-long keys or values are refused (false).
    pub async fn set(&self, key: &str, value: &[u8], ttl_seconds: u32) -> bool {
        match self.key(key) {
            Some(k) if value.len() <= MAX_VALUE => {
                let t = ttl(ttl_seconds);
                let c = &self.cache;
                c.tiers
                    .set(&k, Bytes::copy_from_slice(value), c.l1_ttl(t), t)
                    .await;
                true
            }
            _ => false,
        }
    }

    /// Remove a key.
    pub async fn delete(&self, key: &str) {
        if let Some(k) = self.key(key) {
            self.cache.tiers.delete(&k).await;
        }
    }

    /// Atomically add `delta` to a decimal counter, creating it at 0; returns the new value.
    pub async fn increment(&self, key: &str, delta: i64, ttl_seconds: u32) -> i64 {
        match self.key(key) {
            Some(k) => {
                self.cache
                    .tiers
                    .increment(&k, delta, ttl(ttl_seconds))
                    .await
            }
            None => 0,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn slots_do_not_see_each_other() {
        let cache = Arc::new(FilterCache::default());
        let (a, b) = (cache.namespace("a"), cache.namespace("b"));
        assert!(a.set("k", b"from a", 60).await);
        assert_eq!(a.get("k").await.as_deref(), Some(&b"from a"[..]));
        assert_eq!(b.get("k").await, None);
        assert!(cache.contains_full_key("sluice:filter:a:k"));
        // no key a filter can name escapes its prefix
        assert_eq!(a.get("../b:k").await, None);
        assert_eq!(b.get(":k").await, None);
        assert_eq!(
            a.get_many(&["k".into(), "x".into()]).await,
            vec![Some(b"from a".to_vec()), None]
        );
    }

    #[tokio::test]
    async fn increment_is_atomic_and_counts_from_zero() {
        let cache = Arc::new(FilterCache::default());
        let ns = cache.namespace("q");
        let tasks: Vec<_> = (0..8)
            .map(|_| {
                let ns = ns.clone();
                tokio::spawn(async move {
                    for _ in 0..1000 {
                        ns.increment("n", 1, 60).await;
                    }
                })
            })
            .collect();
        for t in tasks {
            t.await.unwrap();
        }
        assert_eq!(ns.increment("n", 0, 60).await, 8000);
        assert_eq!(ns.increment("m", -3, 60).await, -3);
    }

    #[tokio::test]
    async fn limits_and_delete() {
        let cache = Arc::new(FilterCache::default());
        let ns = cache.namespace("x");
        assert!(!ns.set(&"k".repeat(MAX_KEY + 1), b"v", 1).await);
        assert!(!ns.set("k", &vec![0; MAX_VALUE + 1], 1).await);
        ns.set("k", b"v", 60).await;
        ns.delete("k").await;
        assert_eq!(ns.get("k").await, None);
    }

    #[tokio::test]
    async fn entries_expire_on_their_own_ttl() {
        let cache = Arc::new(FilterCache::default());
        let ns = cache.namespace("t");
        ns.set("short", b"1", 1).await;
        ns.set("long", b"1", 60).await;
        // await the 1 s expiry, bounded, rather than sleeping a fixed time
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        while ns.get("short").await.is_some() {
            assert!(std::time::Instant::now() < deadline, "outlived its TTL");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        assert!(ns.get("long").await.is_some());
    }
}
