//! One backend: its configuration, the status the health poller publishes, its load estimate,
//! and the state an operator sees (active, inactive, draining, drained).
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;
use std::time::SystemTime;

use arc_swap::ArcSwap;
use serde::Serialize;

use sluice_config::{BackendConfig, StatsSource};

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
    pub(crate) fn pending() -> Self {
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
    /// Its name, shared (a metric label, without a copy per request).
    label: std::sync::Arc<str>,
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
            label: std::sync::Arc::from(config.name.as_str()),
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

    /// Its name, shared.
    pub fn label(&self) -> &std::sync::Arc<str> {
        &self.label
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
