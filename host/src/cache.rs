//! Where each query lives: query id → backend name and routing group.
//!
//! [`QueryLocator`] is the one interface the proxy uses. Today it is the in-process tier (moka,
//! TTL and capacity bound); L2 (Valkey) and L3 (SQL) slot in behind the same two calls.
use std::sync::Arc;
use std::time::Duration;

use crate::config::L1Config;

/// The owner of one query.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QueryLocation {
    /// Backend name.
    pub backend: Arc<str>,
    /// Routing group the query was routed in.
    pub group: Arc<str>,
}

/// Query id → location lookups.
pub struct QueryLocator {
    l1: moka::sync::Cache<Arc<str>, QueryLocation>,
}

impl QueryLocator {
    /// A locator with the configured L1 bounds.
    pub fn new(config: &L1Config) -> Self {
        Self {
            l1: moka::sync::Cache::builder()
                .max_capacity(config.capacity)
                .time_to_live(Duration::from_secs(config.ttl_seconds))
                .build(),
        }
    }

    /// Where `query_id` lives, if any tier knows.
    pub async fn locate(&self, query_id: &str) -> Option<QueryLocation> {
        self.l1.get(query_id)
    }

    /// Remember where a new query lives (before its first response reaches the client).
    pub async fn remember(&self, query_id: &str, location: QueryLocation) {
        self.l1.insert(Arc::from(query_id), location);
    }

    /// Number of mappings held in process (approximate; for status pages).
    pub fn l1_entries(&self) -> u64 {
        self.l1.entry_count()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn loc(b: &str) -> QueryLocation {
        QueryLocation {
            backend: b.into(),
            group: "adhoc".into(),
        }
    }

    #[tokio::test]
    async fn remembers_and_forgets_unknown_ids() {
        let c = QueryLocator::new(&L1Config {
            capacity: 10,
            ttl_seconds: 60,
        });
        c.remember("20240101_000000_00001_abcde", loc("a")).await;
        assert_eq!(
            c.locate("20240101_000000_00001_abcde").await,
            Some(loc("a"))
        );
        assert_eq!(c.locate("20240101_000000_00002_abcde").await, None);
    }

    #[tokio::test]
    async fn capacity_is_bounded() {
        let c = QueryLocator::new(&L1Config {
            capacity: 100,
            ttl_seconds: 60,
        });
        for i in 0..1000 {
            c.remember(&format!("20240101_000000_{i:05}_abcde"), loc("a"))
                .await;
        }
        c.l1.run_pending_tasks();
        assert!(c.l1_entries() <= 100, "held {}", c.l1_entries());
    }

    #[tokio::test]
    async fn entries_expire_after_the_ttl() {
        let c = QueryLocator::new(&L1Config {
            capacity: 10,
            ttl_seconds: 1,
        });
        c.remember("1_2_3_x", loc("a")).await;
        assert!(c.locate("1_2_3_x").await.is_some());
        tokio::time::sleep(Duration::from_millis(1100)).await;
        assert!(c.locate("1_2_3_x").await.is_none());
    }
}
