//! The gateway's queue: backends with `max_queries` get no query beyond their limit; a query
//! with no backend of its group to take it waits here, in order, and is admitted by whichever
//! instance its client polls when room frees up. The state lives in the store's tables
//! ([`sluice_store::queue`]), so a fleet sharing PostgreSQL shares one queue; without a store, an
//! in-memory SQLite holds this instance's.
//!
//! # Layout
//!
//! | module | one job |
//! | --- | --- |
//! | this file | [`Queue`]: where its rows live, which groups and backends it applies to, its settings |
//! | `admit` | a new query started or made to wait; a waiting query's poll held, then admitted |
//! | `slots` | the submission recorded, slots freed, waits cancelled, the admin view |
//! | [`ids`] | the query ids Sluice issues, told apart from a cluster's without a lookup |
//! | [`answer`] | the QUEUED and FAILED documents a polling client reads |
//! | [`sweep`] | housekeeping: timeouts, gone clients, slots the clusters no longer run, gauges |
//! | [`metrics`] | depth, slots, admissions, time waited |
#![forbid(unsafe_code)]
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use arc_swap::ArcSwap;
use sluice_cluster::{Backend, Cluster};
use sluice_config::QueueConfig;
use sluice_store::queue::{Entry, Room};
use sluice_store::{now_ms, Store, StoreError, L3};
use tokio::sync::Notify;

mod admit;
pub mod answer;
pub mod ids;
pub mod metrics;
mod slots;
pub mod sweep;

pub use answer::Ending;
pub use metrics::QueueMetrics;

/// Why the queue could not do what was asked.
#[derive(Debug, thiserror::Error)]
pub enum QueueError {
    /// A waiting limit is reached.
    #[error("{0}")]
    Full(String),
    /// The store failed or is down.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The store did not answer in time.
    #[error("the queue's store did not answer within {0} ms")]
    Timeout(u64),
}

/// Where the queue's rows live.
enum Backing {
    /// The store every instance shares (or this instance's SQLite).
    Shared(Arc<L3>),
    /// No store configured: an in-memory SQLite of this process.
    Local(Store),
}

/// How a new query starts.
pub enum Start {
    /// A slot is taken on this backend; send the statement there, then call
    /// [`Queue::submitted`] (or [`Queue::release_slot`] if it fails).
    Go {
        /// Where.
        backend: Arc<Backend>,
        /// The slot's id.
        slot: String,
    },
    /// No room, or queries wait ahead of it: it waits ([`Queue::enqueue`]).
    Wait,
}

/// What a poll of a waiting query found.
pub enum Poll {
    /// No such entry (or the slug does not match).
    Unknown,
    /// Still waiting after holding the poll: answer QUEUED.
    Waiting(Entry),
    /// Admitted to `backend` by this poll: submit the statement now.
    Admitted(Entry, Arc<Backend>),
    /// It runs on the cluster already: the client's poll goes to the cluster's query.
    Running(Entry),
    /// The wait ended without it running.
    Ended(Entry, Ending),
}

/// The queue.
pub struct Queue {
    backing: Backing,
    config: ArcSwap<QueueConfig>,
    cluster: Arc<Cluster>,
    metrics: QueueMetrics,
    /// Room freed on this instance: its held polls try again at once.
    room: Notify,
    op_timeout: Duration,
}

impl Queue {
    /// The queue over `l3` (none: an in-memory SQLite of its own).
    pub async fn new(
        config: QueueConfig,
        cluster: Arc<Cluster>,
        l3: Option<Arc<L3>>,
        op_timeout: Duration,
    ) -> Result<Queue, StoreError> {
        let backing = match l3 {
            Some(l3) => Backing::Shared(l3),
            None => {
                let store = Store::open("sqlite::memory:")?;
                store.migrate().await?;
                Backing::Local(store)
            }
        };
        Ok(Queue {
            backing,
            config: ArcSwap::from_pointee(config),
            cluster,
            metrics: QueueMetrics::default(),
            room: Notify::new(),
            op_timeout,
        })
    }

    /// The metrics, to register.
    pub fn metrics(&self) -> &QueueMetrics {
        &self.metrics
    }

    /// Use new settings from the next decision on (a reload).
    pub fn set_config(&self, config: QueueConfig) {
        self.config.store(Arc::new(config));
        self.room.notify_waiters();
    }

    /// The settings in force.
    pub fn config(&self) -> Arc<QueueConfig> {
        self.config.load_full()
    }

    /// The store, when it is up.
    fn store(&self) -> Result<&Store, StoreError> {
        match &self.backing {
            Backing::Shared(l3) => l3.up(),
            Backing::Local(s) => Ok(s),
        }
    }

    /// Run one store operation within the time limit.
    async fn run<T, F>(&self, op: impl FnOnce(Store) -> F) -> Result<T, QueueError>
    where
        F: Future<Output = Result<T, StoreError>>,
    {
        let store = self.store()?.clone();
        let out = match tokio::time::timeout(self.op_timeout, op(store)).await {
            Ok(r) => r.map_err(QueueError::from),
            Err(_) => Err(QueueError::Timeout(self.op_timeout.as_millis() as u64)),
        };
        if out.is_err() {
            self.metrics.store_errors.inc();
        }
        out
    }

    /// Whether new queries of `group` go through the queue: a backend of it has `max_queries`,
    /// or a group or user quota limits running queries.
    pub fn applies(&self, group: &str) -> bool {
        let config = self.config.load();
        if config.group_quota(group).max_running.is_some() || has_user_limits(&config) {
            return true;
        }
        self.cluster
            .backends()
            .iter()
            .any(|b| b.group() == group && b.config.max_queries.is_some())
    }

    /// Whether a query on `backend` may hold a slot (its end must be watched for).
    pub fn tracks(&self, backend: &Backend) -> bool {
        backend.config.max_queries.is_some() || {
            let config = self.config.load();
            !config.groups.is_empty() || has_user_limits(&config)
        }
    }

    /// The routable backends of `group`, `preferred` first, each with its limit.
    fn rooms(&self, group: &str, preferred: Option<&str>) -> Vec<Room> {
        let backends = self.cluster.backends();
        let mut rooms: Vec<Room> = backends
            .iter()
            .filter(|b| b.group() == group && b.is_routable())
            .map(|b| Room {
                backend: b.name().to_string(),
                max: b.config.max_queries,
            })
            .collect();
        if let Some(i) = preferred.and_then(|p| rooms.iter().position(|r| r.backend == p)) {
            rooms.swap(0, i);
        }
        rooms
    }

    /// Now, and the last poll a waiting query must have made to count as waiting.
    fn clock(config: &QueueConfig) -> (i64, i64) {
        let now = now_ms();
        (now, now - config.abandon_after_ms as i64)
    }
}

/// A query about to wait.
pub struct Waiting<'a> {
    /// The group it waits in.
    pub group: &'a str,
    /// Its user.
    pub user: Option<&'a str>,
    /// `X-Trino-Source`.
    pub source: Option<&'a str>,
    /// Its priority.
    pub priority: i32,
    /// The text shown (cut).
    pub query_text: &'a str,
    /// The statement.
    pub statement: &'a [u8],
    /// The headers it may keep, as JSON.
    pub headers: &'a str,
}

fn has_user_limits(config: &QueueConfig) -> bool {
    config.users.values().any(|q| q.max_running.is_some())
}
