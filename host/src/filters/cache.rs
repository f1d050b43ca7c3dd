//! The cache filters see through the WIT `cache` interface: every key lives under
//! `sluice:filter:{slot}:`, so a filter never reaches another slot's keys or the gateway's own
//! (`sluice:query:…`). Entries carry their own TTL. In-process for now; the shared tiers come
//! behind the same calls.
use std::sync::Arc;
use std::time::{Duration, Instant};

use moka::sync::Cache;
use moka::Expiry;

/// Largest TTL a filter may ask for (a day); 0 means "the default of 5 minutes".
const MAX_TTL: Duration = Duration::from_secs(86_400);
const DEFAULT_TTL: Duration = Duration::from_secs(300);
/// Largest key and value a filter may store.
pub const MAX_KEY: usize = 512;
pub const MAX_VALUE: usize = 64 * 1024;

#[derive(Clone)]
struct Entry {
    value: Arc<[u8]>,
    ttl: Duration,
}

struct PerEntry;

impl Expiry<String, Entry> for PerEntry {
    fn expire_after_create(&self, _: &String, e: &Entry, _: Instant) -> Option<Duration> {
        Some(e.ttl)
    }
    fn expire_after_update(
        &self,
        _: &String,
        e: &Entry,
        _: Instant,
        _: Option<Duration>,
    ) -> Option<Duration> {
        Some(e.ttl)
    }
}

/// The store behind every slot's namespace.
pub struct FilterCache {
    entries: Cache<String, Entry>,
}

impl Default for FilterCache {
    fn default() -> Self {
        Self::new(100_000)
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
    /// A cache holding at most `capacity` filter keys.
    pub fn new(capacity: u64) -> Self {
        Self {
            entries: Cache::builder()
                .max_capacity(capacity)
                .expire_after(PerEntry)
                .build(),
        }
    }

    /// The namespace of one slot.
    pub fn namespace(self: &Arc<Self>, slot: &str) -> Namespace {
        Namespace {
            cache: self.clone(),
            prefix: format!("sluice:filter:{slot}:"),
        }
    }

    /// Whether a full key (with its namespace prefix) is present (for tests and status).
    pub fn contains_full_key(&self, key: &str) -> bool {
        self.entries.contains_key(key)
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
    pub fn get(&self, key: &str) -> Option<Vec<u8>> {
        self.cache
            .entries
            .get(&self.key(key)?)
            .map(|e| e.value.to_vec())
    }

    /// Write a value; over-long keys or values are dropped (and logged by the caller).
    pub fn set(&self, key: &str, value: &[u8], ttl_seconds: u32) -> bool {
        match self.key(key) {
            Some(k) if value.len() <= MAX_VALUE => {
                self.cache.entries.insert(
                    k,
                    Entry {
                        value: value.into(),
                        ttl: ttl(ttl_seconds),
                    },
                );
                true
            }
            _ => false,
        }
    }

    /// Remove a key.
    pub fn delete(&self, key: &str) {
        if let Some(k) = self.key(key) {
            self.cache.entries.invalidate(&k);
        }
    }

    /// Atomically add `delta` to a decimal counter, creating it at 0; returns the new value.
    pub fn increment(&self, key: &str, delta: i64, ttl_seconds: u32) -> i64 {
        let Some(k) = self.key(key) else { return 0 };
        let ttl = ttl(ttl_seconds);
        let mut result = 0;
        self.cache.entries.entry(k).and_compute_with(|current| {
            let now = current
                .and_then(|e| {
                    std::str::from_utf8(&e.into_value().value)
                        .ok()
                        .and_then(|s| s.parse::<i64>().ok())
                })
                .unwrap_or(0);
            result = now.saturating_add(delta);
            moka::ops::compute::Op::Put(Entry {
                value: result.to_string().into_bytes().into(),
                ttl,
            })
        });
        result
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slots_do_not_see_each_other() {
        let cache = Arc::new(FilterCache::default());
        let (a, b) = (cache.namespace("a"), cache.namespace("b"));
        assert!(a.set("k", b"from a", 60));
        assert_eq!(a.get("k").as_deref(), Some(&b"from a"[..]));
        assert_eq!(b.get("k"), None);
        assert!(cache.contains_full_key("sluice:filter:a:k"));
        // no key a filter can name escapes its prefix
        assert_eq!(a.get("../b:k"), None);
        assert_eq!(b.get(":k"), None);
    }

    #[test]
    fn increment_is_atomic_and_counts_from_zero() {
        let cache = Arc::new(FilterCache::default());
        let ns = cache.namespace("q");
        let threads: Vec<_> = (0..8)
            .map(|_| {
                let ns = ns.clone();
                std::thread::spawn(move || {
                    for _ in 0..1000 {
                        ns.increment("n", 1, 60);
                    }
                })
            })
            .collect();
        for t in threads {
            t.join().unwrap();
        }
        assert_eq!(ns.increment("n", 0, 60), 8000);
        assert_eq!(ns.increment("m", -3, 60), -3);
    }

    #[test]
    fn limits_and_delete() {
        let cache = Arc::new(FilterCache::default());
        let ns = cache.namespace("x");
        assert!(!ns.set(&"k".repeat(MAX_KEY + 1), b"v", 1));
        assert!(!ns.set("k", &vec![0; MAX_VALUE + 1], 1));
        ns.set("k", b"v", 60);
        ns.delete("k");
        assert_eq!(ns.get("k"), None);
    }

    #[test]
    fn entries_expire_on_their_own_ttl() {
        let cache = Arc::new(FilterCache::default());
        let ns = cache.namespace("t");
        ns.set("short", b"1", 1);
        ns.set("long", b"1", 60);
        std::thread::sleep(Duration::from_millis(1100));
        assert_eq!(ns.get("short"), None);
        assert!(ns.get("long").is_some());
    }
}
