//! The backends, their routing groups, each backend's lock-free health and stats, and the poller
//! that keeps them current.
//!
//! # Layout
//!
//! | module | one job |
//! | --- | --- |
//! | this file | [`Cluster`] (the backend list) and [`Backend`] (one cluster: config, status, load estimate) |
//! | [`health`] | [`health::HealthPoller`]: `GET /v1/info` plus running/queued counts, PENDING → HEALTHY/UNHEALTHY |
//!
//! The backend list is an [`ArcSwap`] (replaced whole when the list changes) and each backend's
//! health and stats are an [`ArcSwap`] of their own that the health poller publishes, so routing
//! reads everything without a lock.
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::SystemTime;

use arc_swap::ArcSwap;
use serde::Serialize;

use sluice_config::{BackendConfig, StatsSource};

pub mod health;

/// Health of one backend as the poller last saw it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum Health {
    /// Not polled yet: never chosen for new queries.
    Pending,
    /// `/v1/info` answered with `starting: false`.
    Healthy,
    /// The last poll failed, or the coordinator is still starting.
    Unhealthy,
}

/// What the last poll of a backend found.
#[derive(Debug, Clone, Serialize)]
pub struct BackendStatus {
    /// Health state.
    pub health: Health,
    /// Running queries reported by the cluster.
    pub running_queries: u32,
    /// Queued queries reported by the cluster.
    pub queued_queries: u32,
    /// Queued queries per user (from `/ui/api/query?state=QUEUED` with `stats: ui_api`).
    pub user_queued: std::collections::HashMap<String, u32>,
    /// Why the backend is unhealthy, if it is.
    pub reason: Option<String>,
    /// When it was last polled.
    #[serde(with = "epoch_millis")]
    pub checked_at: Option<SystemTime>,
    /// Whether the counts came from the cluster (false with `stats: info_only`, or before a
    /// poll): a drain is only over when the cluster itself says it runs nothing.
    #[serde(skip)]
    pub counted: bool,
}

impl BackendStatus {
    fn pending() -> Self {
        Self {
            health: Health::Pending,
            running_queries: 0,
            queued_queries: 0,
            user_queued: Default::default(),
            reason: None,
            checked_at: None,
            counted: false,
        }
    }
}

/// Whether a backend takes new queries, as an operator sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum BackendState {
    /// Takes new queries when healthy.
    Active,
    /// Deactivated: no new queries; follow-ups of its running queries are still served.
    Inactive,
    /// Being drained: no new queries, follow-ups served, until it runs nothing.
    Draining,
    /// Drained: it ran nothing at a poll after the drain began; safe to remove.
    Drained,
}

impl BackendState {
    /// Its name in the API.
    pub fn as_str(self) -> &'static str {
        match self {
            BackendState::Active => "active",
            BackendState::Inactive => "inactive",
            BackendState::Draining => "draining",
            BackendState::Drained => "drained",
        }
    }
}

/// One Trino cluster behind the gateway.
#[derive(Debug)]
pub struct Backend {
    /// Its configuration.
    pub config: BackendConfig,
    /// Parsed `config.url`.
    pub uri: http::Uri,
    /// Where its stats come from (the backend's own setting or `health.stats`).
    pub stats_source: StatsSource,
    status: ArcSwap<BackendStatus>,
    /// When the drain began (on this instance), if it is draining.
    drain_since: Option<SystemTime>,
    /// New queries sent here since the last stats refresh: counted so that a burst between two
    /// polls spreads instead of herding onto the backend that looked least loaded.
    routed_since_poll: AtomicU32,
}

impl Backend {
    /// A backend in state PENDING.
    pub fn new(config: BackendConfig, default_stats: StatsSource) -> Self {
        let uri = config.url.parse().expect("validated by Config::validate");
        Self {
            stats_source: config.stats.unwrap_or(default_stats),
            drain_since: config.draining.then(SystemTime::now),
            config,
            uri,
            status: ArcSwap::from_pointee(BackendStatus::pending()),
            routed_since_poll: AtomicU32::new(0),
        }
    }

    /// `config` taking the place of `old` (same name): the last status carries over while it
    /// still describes the same coordinator (same URL and stats source), and a drain in progress
    /// keeps its start.
    pub fn succeed(config: BackendConfig, old: &Backend, default_stats: StatsSource) -> Self {
        let mut new = Self::new(config, default_stats);
        if new.config.url == old.config.url && new.stats_source == old.stats_source {
            new.status.store(old.status());
        }
        if new.config.draining && old.config.draining {
            new.drain_since = old.drain_since;
        }
        new
    }

    /// Active, draining, drained or inactive.
    pub fn state(&self) -> BackendState {
        if self.config.draining {
            let s = self.status.load();
            let polled_since = match (s.checked_at, self.drain_since) {
                (Some(at), Some(since)) => at >= since,
                _ => false,
            };
            let idle = s.counted && s.running_queries == 0 && s.queued_queries == 0;
            if s.health == Health::Healthy && polled_since && idle {
                BackendState::Drained
            } else {
                BackendState::Draining
            }
        } else if self.config.active {
            BackendState::Active
        } else {
            BackendState::Inactive
        }
    }

    /// Whether it takes new queries when healthy (active and not draining).
    pub fn accepts_new(&self) -> bool {
        self.config.active && !self.config.draining
    }

    /// Its name.
    pub fn name(&self) -> &str {
        &self.config.name
    }

    /// Its routing group.
    pub fn group(&self) -> &str {
        &self.config.group
    }

    /// The last published status.
    pub fn status(&self) -> Arc<BackendStatus> {
        self.status.load_full()
    }

    /// Publish a new status (the health poller's job); resets the routed-since-poll count when
    /// the status carries fresh stats.
    pub fn publish(&self, status: BackendStatus) {
        self.routed_since_poll.store(0, Ordering::Relaxed);
        self.status.store(Arc::new(status));
    }

    /// Active, not draining, and healthy: may receive new queries.
    pub fn is_routable(&self) -> bool {
        self.accepts_new() && self.status.load().health == Health::Healthy
    }

    /// Running + queued as last reported, plus what Sluice sent since.
    pub fn load_estimate(&self) -> u64 {
        let s = self.status.load();
        s.running_queries as u64
            + s.queued_queries as u64
            + self.routed_since_poll.load(Ordering::Relaxed) as u64
    }

    /// Count a new query routed here (until the next poll replaces the estimate).
    pub fn note_routed(&self) {
        self.routed_since_poll.fetch_add(1, Ordering::Relaxed);
    }
}

/// All backends, lock-free to read.
#[derive(Debug)]
pub struct Cluster {
    backends: ArcSwap<Vec<Arc<Backend>>>,
    /// `health.stats`, for backends without their own; and the lock that orders replacements.
    default_stats: Mutex<StatsSource>,
    /// Woken when the list changes (the health poller polls new backends at once).
    changed: tokio::sync::Notify,
}

impl Cluster {
    /// Build from configuration; every backend starts PENDING.
    pub fn new(configs: &[BackendConfig], default_stats: StatsSource) -> Self {
        let list = configs
            .iter()
            .cloned()
            .map(|c| Arc::new(Backend::new(c, default_stats)))
            .collect();
        Self {
            backends: ArcSwap::from_pointee(list),
            default_stats: Mutex::new(default_stats),
            changed: tokio::sync::Notify::new(),
        }
    }

    /// Replace the backend list with `configs` (in that order), unless it is what runs now;
    /// whether it changed. Backends whose config is unchanged stay as they are (health, load
    /// estimate); changed ones keep their last status while their URL is the same. In-flight
    /// requests finish on the backend they hold.
    pub fn replace(&self, configs: &[BackendConfig]) -> bool {
        let default_stats = *self.default_stats.lock().unwrap();
        self.replace_with(configs, default_stats)
    }

    /// [`Cluster::replace`] with a new `health.stats` for backends without their own.
    pub fn replace_with(&self, configs: &[BackendConfig], default_stats: StatsSource) -> bool {
        let mut current_default = self.default_stats.lock().unwrap();
        let old = self.backends.load_full();
        let same = *current_default == default_stats
            && old.len() == configs.len()
            && old
                .iter()
                .zip(configs)
                .all(|(b, c)| same_config(&b.config, c));
        if same {
            return false;
        }
        *current_default = default_stats;
        let list = configs
            .iter()
            .map(|c| match old.iter().find(|b| b.name() == c.name) {
                Some(b)
                    if same_config(&b.config, c)
                        && b.stats_source == c.stats.unwrap_or(default_stats) =>
                {
                    b.clone()
                }
                Some(b) => Arc::new(Backend::succeed(c.clone(), b, default_stats)),
                None => Arc::new(Backend::new(c.clone(), default_stats)),
            })
            .collect();
        self.backends.store(Arc::new(list));
        self.changed.notify_one();
        true
    }

    /// Wait until the list changes (for the health poller).
    pub async fn changed(&self) {
        self.changed.notified().await
    }

    /// The configuration of every backend, in order.
    pub fn configs(&self) -> Vec<BackendConfig> {
        self.backends
            .load()
            .iter()
            .map(|b| b.config.clone())
            .collect()
    }

    /// A snapshot of the backend list.
    pub fn backends(&self) -> Arc<Vec<Arc<Backend>>> {
        self.backends.load_full()
    }

    /// Find a backend by name.
    pub fn get(&self, name: &str) -> Option<Arc<Backend>> {
        self.backends
            .load()
            .iter()
            .find(|b| b.name() == name)
            .cloned()
    }

    /// Whether any backend belongs to `group`.
    pub fn has_group(&self, group: &str) -> bool {
        self.backends.load().iter().any(|b| b.group() == group)
    }

    /// The routing groups, sorted and de-duplicated.
    pub fn groups(&self) -> Vec<String> {
        let mut groups: Vec<String> = self
            .backends
            .load()
            .iter()
            .map(|b| b.group().to_string())
            .collect();
        groups.sort();
        groups.dedup();
        groups
    }

    /// Whether every backend has been polled at least once.
    pub fn all_polled(&self) -> bool {
        self.backends
            .load()
            .iter()
            .all(|b| b.status.load().health != Health::Pending)
    }
}

/// Whether two configurations describe the same backend in the same state.
fn same_config(a: &BackendConfig, b: &BackendConfig) -> bool {
    a.name == b.name
        && a.url == b.url
        && a.group == b.group
        && a.active == b.active
        && a.draining == b.draining
        && a.external_url == b.external_url
        && a.rewrite_next_uri == b.rewrite_next_uri
        && a.stats == b.stats
}

mod epoch_millis {
    use serde::Serializer;
    use std::time::{SystemTime, UNIX_EPOCH};
    pub fn serialize<S: Serializer>(t: &Option<SystemTime>, s: S) -> Result<S::Ok, S::Error> {
        match t.and_then(|t| t.duration_since(UNIX_EPOCH).ok()) {
            Some(d) => s.serialize_u64(d.as_millis() as u64),
            None => s.serialize_none(),
        }
    }
}
