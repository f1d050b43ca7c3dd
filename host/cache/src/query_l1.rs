//! [`QueryL1`]: the in-process tier for query locations, compact because a gateway tracks every
//! running query (100,000 by default). A location is two interned names and an expiry packed in
//! 16 bytes; a Trino query id (26 bytes) is kept inline in the key, with no allocation of its
//! own. quick_cache holds them with a few bytes of overhead per entry (S3-FIFO eviction, no
//! background tasks); moka's per-entry bookkeeping alone cost more than the entry.
//!
//! Expiry is checked on read: an entry older than its time to live reads as a miss and is
//! removed; the capacity bound evicts the ones nobody reads.
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use crate::location::QueryLocation;

/// Ids up to this many bytes are stored inline (Trino's are 26).
const INLINE: usize = 30;

/// A query id as a cache key.
#[derive(Clone, PartialEq, Eq, Hash)]
enum IdKey {
    Inline(u8, [u8; INLINE]),
    Heap(Box<str>),
}

impl IdKey {
    fn new(id: &str) -> Self {
        match id.len() <= INLINE {
            true => {
                let mut bytes = [0u8; INLINE];
                bytes[..id.len()].copy_from_slice(id.as_bytes());
                Self::Inline(id.len() as u8, bytes)
            }
            false => Self::Heap(id.into()),
        }
    }
}

/// A location, interned.
#[derive(Clone, Copy)]
struct Packed {
    backend: u32,
    group: u32,
    /// Milliseconds since the cache was made, after which the entry is stale.
    expires: u64,
}

/// Names seen, each given a number once (backends and groups are few and long-lived); one lock
/// keeps the map and the list in step.
#[derive(Default)]
struct Names(RwLock<Numbered>);

#[derive(Default)]
struct Numbered {
    by_name: std::collections::HashMap<Arc<str>, u32>,
    by_number: Vec<Arc<str>>,
}

impl Numbered {
    fn number(&mut self, name: &Arc<str>) -> u32 {
        if let Some(n) = self.by_name.get(name) {
            return *n;
        }
        let n = self.by_number.len() as u32;
        self.by_number.push(name.clone());
        self.by_name.insert(name.clone(), n);
        n
    }
}

impl Names {
    /// The numbers of `a` and `b`, numbering either if new (a read lock when both are known).
    fn numbers(&self, a: &Arc<str>, b: &Arc<str>) -> (u32, u32) {
        {
            let known = self.0.read().unwrap();
            if let (Some(x), Some(y)) = (known.by_name.get(a), known.by_name.get(b)) {
                return (*x, *y);
            }
        }
        let mut all = self.0.write().unwrap();
        (all.number(a), all.number(b))
    }

    /// The names numbered `a` and `b` (one lock for both: a lookup needs backend and group).
    fn pair(&self, a: u32, b: u32) -> Option<(Arc<str>, Arc<str>)> {
        let all = self.0.read().unwrap();
        Some((
            all.by_number.get(a as usize)?.clone(),
            all.by_number.get(b as usize)?.clone(),
        ))
    }
}

/// Query id → location, in process.
pub(crate) struct QueryL1 {
    entries: quick_cache::sync::Cache<IdKey, Packed>,
    names: Names,
    ttl: Duration,
    born: Instant,
}

impl QueryL1 {
    /// At most `capacity` locations, each kept for `ttl` (either 0: nothing kept).
    pub(crate) fn new(capacity: u64, ttl: Duration) -> Self {
        Self {
            entries: quick_cache::sync::Cache::new(capacity.max(1) as usize),
            names: Names::default(),
            ttl: if capacity == 0 { Duration::ZERO } else { ttl },
            born: Instant::now(),
        }
    }

    fn now(&self) -> u64 {
        self.born.elapsed().as_millis() as u64
    }

    /// The location of `id`, unless absent or stale.
    pub(crate) fn get(&self, id: &str) -> Option<QueryLocation> {
        let key = IdKey::new(id);
        let p = self.entries.get(&key)?;
        if self.now() >= p.expires {
            self.entries.remove(&key);
            return None;
        }
        let (backend, group) = self.names.pair(p.backend, p.group)?;
        Some(QueryLocation { backend, group })
    }

    /// Remember where `id` runs.
    pub(crate) fn insert(&self, id: &str, location: &QueryLocation) {
        if self.ttl.is_zero() {
            return;
        }
        let ttl = self.ttl.as_millis().min(u64::MAX as u128) as u64;
        let (backend, group) = self.names.numbers(&location.backend, &location.group);
        let packed = Packed {
            backend,
            group,
            expires: self.now().saturating_add(ttl),
        };
        self.entries.insert(IdKey::new(id), packed);
    }

    /// Forget everything.
    pub(crate) fn clear(&self) {
        self.entries.clear();
    }

    /// Locations held.
    pub(crate) fn len(&self) -> u64 {
        self.entries.len() as u64
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn loc(b: &str, g: &str) -> QueryLocation {
        QueryLocation {
            backend: b.into(),
            group: g.into(),
        }
    }

    #[test]
    fn short_and_long_ids_and_many_names() {
        let l1 = QueryL1::new(1000, Duration::from_secs(60));
        let long = format!("20240101_000000_00001_{}", "x".repeat(40));
        let ids = [
            "1_2_3_a",
            "1_2_3_a0",
            "20240101_000000_00001_abcde",
            long.as_str(),
        ];
        for (i, id) in ids.iter().enumerate() {
            l1.insert(id, &loc(&format!("b{i}"), &format!("g{}", i % 2)));
        }
        for (i, id) in ids.iter().enumerate() {
            assert_eq!(
                l1.get(id),
                Some(loc(&format!("b{i}"), &format!("g{}", i % 2))),
                "{id}"
            );
        }
        // a prefix of a stored id, or the long id cut to the inline size, is another id
        assert_eq!(l1.get("1_2_3_"), None);
        assert_eq!(l1.get(&long[..INLINE]), None);
        // a location moved to another backend is replaced, not duplicated
        l1.insert(ids[0], &loc("b9", "g0"));
        assert_eq!(l1.get(ids[0]), Some(loc("b9", "g0")));
        assert_eq!(l1.len(), 4);
    }

    #[test]
    fn nothing_is_kept_with_a_zero_ttl_or_capacity() {
        for l1 in [
            QueryL1::new(10, Duration::ZERO),
            QueryL1::new(0, Duration::from_secs(60)),
        ] {
            l1.insert("1_2_3_a", &loc("a", "g"));
            assert_eq!((l1.get("1_2_3_a"), l1.len()), (None, 0));
        }
    }
}
