//! The backends, their routing groups, each backend's lock-free health and stats, and the poller
//! that keeps them current.
//!
//! # Layout
//!
//! | module | one job |
//! | --- | --- |
//! | this file | [`Cluster`]: the backend list, replaced whole when it changes |
//! | [`backend`] | [`Backend`] (one cluster: config, status, load estimate) and its [`BackendState`] |
//! | [`credentials`] | [`Credentials`]: user with password or bearer token, for Sluice's own requests |
//! | [`health`] | [`health::HealthPoller`]: `GET /v1/info` plus running/queued counts, PENDING → HEALTHY/UNHEALTHY |
//!
//! The backend list is an [`ArcSwap`] (replaced whole when the list changes) and each backend's
//! health and stats are an [`ArcSwap`] of their own that the health poller publishes, so routing
//! reads everything without a lock.
use std::sync::{Arc, Mutex};

use arc_swap::ArcSwap;

use sluice_config::{BackendConfig, StatsSource};

pub mod backend;
pub mod credentials;
pub mod health;

pub use backend::{Backend, BackendState, BackendStatus, Health};
pub use credentials::Credentials;

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
            && old.iter().zip(configs).all(|(b, c)| b.config == *c);
        if same {
            return false;
        }
        *current_default = default_stats;
        let list = configs
            .iter()
            .map(|c| match old.iter().find(|b| b.name() == c.name) {
                Some(b) if b.config == *c && b.stats_source == c.stats.unwrap_or(default_stats) => {
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
            .all(|b| b.status().health != Health::Pending)
    }
}
