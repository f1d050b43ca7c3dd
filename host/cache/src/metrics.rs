//! Per-tier cache metrics (hits, misses, writes, errors, latency), registered in the gateway's
//! Prometheus registry and served on the admin listener's `/metrics`.
use std::time::Duration;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;

/// A cache tier.
#[derive(Clone, Copy, Debug, Hash, PartialEq, Eq)]
pub enum Tier {
    L1,
    L2,
    L3,
    Search,
}

impl Tier {
    fn as_str(self) -> &'static str {
        match self {
            Tier::L1 => "l1",
            Tier::L2 => "l2",
            Tier::L3 => "l3",
            Tier::Search => "search",
        }
    }
}

/// What a cache operation was for: a query's location, or a routing filter's own cache call
/// (told apart by the key: query locations live under `sluice:query:`).
#[derive(Clone, Copy, Debug, Hash, PartialEq, Eq)]
pub enum Purpose {
    /// Where a query lives (follow-ups, kill_query, the search).
    Query,
    /// A filter's `cache-get`, `cache-set`, `cache-increment`.
    Filter,
}

impl Purpose {
    /// The purpose of an operation on `key`.
    pub fn of(key: &str) -> Purpose {
        match key.starts_with(crate::location::QUERY_KEY_PREFIX) {
            true => Purpose::Query,
            false => Purpose::Filter,
        }
    }

    /// Its label value.
    pub fn as_str(self) -> &'static str {
        match self {
            Purpose::Query => "query",
            Purpose::Filter => "filter",
        }
    }
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct TierLabel {
    tier: &'static str,
    purpose: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct OpLabel {
    tier: &'static str,
    purpose: &'static str,
    result: &'static str,
}

/// The cache metric families.
#[derive(Clone)]
pub struct CacheMetrics {
    lookups: Family<OpLabel, Counter>,
    writes: Family<TierLabel, Counter>,
    errors: Family<TierLabel, Counter>,
    skipped: Family<TierLabel, Counter>,
    latency: Family<TierLabel, Histogram, fn() -> Histogram>,
}

fn latency_histogram() -> Histogram {
    // 1 µs .. ~1 s
    Histogram::new(prometheus_client::metrics::histogram::exponential_buckets(
        1e-6, 4.0, 11,
    ))
}

impl Default for CacheMetrics {
    fn default() -> Self {
        Self {
            lookups: Family::default(),
            writes: Family::default(),
            errors: Family::default(),
            skipped: Family::default(),
            latency: Family::new_with_constructor(latency_histogram),
        }
    }
}

impl CacheMetrics {
    /// Register the families in `registry`.
    pub fn register(&self, registry: &mut Registry) {
        registry.register(
            "sluice_cache_lookups",
            "Cache lookups by tier, purpose (query locations, filter cache calls) and result (hit, miss)",
            self.lookups.clone(),
        );
        registry.register(
            "sluice_cache_writes",
            "Cache writes by tier",
            self.writes.clone(),
        );
        registry.register(
            "sluice_cache_errors",
            "Failed cache operations by tier (timeouts, connection errors)",
            self.errors.clone(),
        );
        registry.register(
            "sluice_cache_skipped",
            "Operations not tried because the tier is marked down",
            self.skipped.clone(),
        );
        registry.register(
            "sluice_cache_latency_seconds",
            "Latency of cache operations by tier",
            self.latency.clone(),
        );
    }

    fn tier(t: Tier, p: Purpose) -> TierLabel {
        TierLabel {
            tier: t.as_str(),
            purpose: p.as_str(),
        }
    }

    fn op(t: Tier, p: Purpose, hit: bool) -> OpLabel {
        OpLabel {
            tier: t.as_str(),
            purpose: p.as_str(),
            result: if hit { "hit" } else { "miss" },
        }
    }

    /// A lookup for `p` that found (`hit`) or did not find its key.
    pub fn lookup(&self, t: Tier, p: Purpose, hit: bool, took: Duration) {
        self.lookups.get_or_create(&Self::op(t, p, hit)).inc();
        self.latency
            .get_or_create(&Self::tier(t, p))
            .observe(took.as_secs_f64());
    }

    /// A write.
    pub fn write(&self, t: Tier, p: Purpose, took: Duration) {
        self.writes.get_or_create(&Self::tier(t, p)).inc();
        self.latency
            .get_or_create(&Self::tier(t, p))
            .observe(took.as_secs_f64());
    }

    /// A failed operation.
    pub fn error(&self, t: Tier, p: Purpose) {
        self.errors.get_or_create(&Self::tier(t, p)).inc();
    }

    /// An operation skipped because the tier is down.
    pub fn skip(&self, t: Tier, p: Purpose) {
        self.skipped.get_or_create(&Self::tier(t, p)).inc();
    }

    /// Lookups of `t` with `result` so far, for both purposes (status pages and tests).
    pub fn lookups(&self, t: Tier, hit: bool) -> u64 {
        [Purpose::Query, Purpose::Filter]
            .map(|p| self.lookups.get_or_create(&Self::op(t, p, hit)).get())
            .iter()
            .sum()
    }

    /// Errors of `t` so far.
    pub fn errors(&self, t: Tier) -> u64 {
        [Purpose::Query, Purpose::Filter]
            .map(|p| self.errors.get_or_create(&Self::tier(t, p)).get())
            .iter()
            .sum()
    }

    /// Skipped operations of `t` so far.
    pub fn skipped(&self, t: Tier) -> u64 {
        [Purpose::Query, Purpose::Filter]
            .map(|p| self.skipped.get_or_create(&Self::tier(t, p)).get())
            .iter()
            .sum()
    }
}
