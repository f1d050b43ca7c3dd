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
//! | this file | [`Queue`]: admit a new query or make it wait, poll a waiting one, free slots |
//! | [`ids`] | the query ids Sluice issues, told apart from a cluster's without a lookup |
//! | [`answer`] | the QUEUED and FAILED documents a polling client reads |
//! | [`sweep`] | housekeeping: timeouts, gone clients, slots the clusters no longer run, gauges |
//! | [`metrics`] | depth, slots, admissions, time waited |
#![forbid(unsafe_code)]
use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant};

use arc_swap::ArcSwap;
use sluice_cluster::{Backend, Cluster};
use sluice_config::QueueConfig;
use sluice_store::queue::{Admission, AdmitAsk, Entry, NewEntry, QueueFull, Room, WaitLimits};
use sluice_store::{now_ms, Store, StoreError, L3};
use tokio::sync::Notify;

pub mod answer;
pub mod ids;
pub mod metrics;
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

    /// The priority of a query, by the rules (a filter's choice goes before).
    pub fn priority_of(
        &self,
        user: Option<&str>,
        source: Option<&str>,
        tags: &[String],
        group: &str,
    ) -> i32 {
        self.config.load().priority_of(user, source, tags, group)
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

    /// A new query routed to `preferred` in `group`: a slot there or on another backend of the
    /// group with room, unless queries wait ahead of it or a quota stops it.
    pub async fn start(
        &self,
        preferred: &Backend,
        group: &str,
        user: &str,
        priority: i32,
    ) -> Result<Start, QueueError> {
        let config = self.config.load_full();
        let rooms = self.rooms(group, Some(preferred.name()));
        let slot = ids::slot();
        let user_max = |u: &str| config.user_quota(u).max_running;
        let (now_ms, live_since_ms) = Self::clock(&config);
        let ask = AdmitAsk {
            slot_id: &slot,
            group,
            user,
            priority: i64::from(priority),
            seq: None,
            rooms: &rooms,
            group_max: config.group_quota(group).max_running,
            user_max: &user_max,
            live_since_ms,
            now_ms,
        };
        let admission = self.run(|s| async move { s.admit(&ask).await }).await?;
        Ok(match admission {
            Admission::Admitted(name) => match self.cluster.get(&name) {
                Some(backend) => {
                    self.admitted(group, "direct", None);
                    Start::Go { backend, slot }
                }
                None => {
                    self.release_slot(&slot).await;
                    Start::Wait
                }
            },
            _ => Start::Wait,
        })
    }

    fn admitted(&self, group: &str, path: &'static str, waited: Option<Duration>) {
        let group = group.to_string();
        if let Some(w) = waited {
            self.metrics
                .waited
                .get_or_create(&metrics::GroupLabel {
                    group: group.clone(),
                })
                .observe(w.as_secs_f64());
        }
        self.metrics
            .admissions
            .get_or_create(&metrics::AdmissionLabels { group, path })
            .inc();
    }

    /// Make a query wait: stored with its statement and `headers` (no credentials); returns its
    /// issued id and slug.
    pub async fn enqueue(&self, w: Waiting<'_>) -> Result<(String, String), QueueError> {
        let config = self.config.load_full();
        let (id, slug) = (ids::issue(), ids::slug());
        let now = now_ms();
        let user = w.user.unwrap_or("");
        let entry = NewEntry {
            id: &id,
            slug: &slug,
            priority: i64::from(w.priority),
            group: w.group,
            user,
            source: w.source,
            query_text: w.query_text,
            statement: w.statement,
            headers: w.headers,
            now_ms: now,
            deadline_ms: now.saturating_add(config.timeout_ms as i64),
        };
        let limits = WaitLimits {
            max_queued: config.max_queued,
            group_max_queued: config.group_quota(w.group).max_queued,
            user_max_queued: config.user_quota(user).max_queued,
        };
        let result = self
            .run(|s| async move { s.enqueue(&entry, limits).await })
            .await?;
        match result {
            Ok(_) => Ok((id, slug)),
            Err(full) => {
                self.metrics.ended(w.group, "refused");
                Err(QueueError::Full(match full {
                    QueueFull::Total(n) => format!("the gateway's queue is full ({n} queries wait: queue.max_queued)"),
                    QueueFull::Group(n) => format!("routing group '{}' has {n} queries waiting, its limit (queue.groups.{}.max_queued)", w.group, w.group),
                    QueueFull::User(n) => format!("user '{user}' has {n} queries waiting, their limit (queue.users)"),
                }))
            }
        }
    }

    /// A poll of waiting query `id` with `slug`: tries to admit it, holding the poll up to
    /// `queue.poll_wait_ms` while there is no room.
    pub async fn poll(&self, id: &str, slug: &str) -> Result<Poll, QueueError> {
        let config = self.config.load_full();
        let held_until = Instant::now() + Duration::from_millis(config.poll_wait_ms);
        let recheck = Duration::from_millis(config.recheck_ms);
        let mut entry = match self.entry(id, true).await? {
            Some(e) if e.slug == slug => e,
            _ => return Ok(Poll::Unknown),
        };
        loop {
            match entry.state.as_str() {
                "queued" if now_ms() >= entry.deadline_ms => {
                    let message = format!(
                        "the query waited {} s in the gateway's queue for room on a cluster of group '{}' (queue.timeout_ms)",
                        (now_ms() - entry.enqueued_ms) / 1000,
                        entry.routing_group
                    );
                    let (eid, m) = (entry.id.clone(), message.clone());
                    self.run(|s| async move { s.end_entry(&eid, "timed_out", &m).await })
                        .await?;
                    self.metrics.ended(&entry.routing_group, "timed_out");
                    entry.message = Some(message);
                    return Ok(Poll::Ended(entry, Ending::TimedOut));
                }
                "queued" => {
                    if let Some(backend) = self.try_admit(&entry, &config).await? {
                        return Ok(Poll::Admitted(entry, backend));
                    }
                }
                "admitted" if entry.query_id.is_some() => return Ok(Poll::Running(entry)),
                // another instance is submitting it: wait for it like for room
                "admitted" => {}
                other => {
                    let ending = Ending::of_state(other);
                    return Ok(Poll::Ended(entry, ending));
                }
            }
            let now = Instant::now();
            if now >= held_until {
                return Ok(Poll::Waiting(entry));
            }
            let pause = recheck.min(held_until - now);
            let _ = tokio::time::timeout(pause, self.room.notified()).await;
            entry = match self.entry(id, false).await? {
                Some(e) => e,
                None => return Ok(Poll::Unknown),
            };
        }
    }

    /// One attempt to admit waiting `entry`.
    async fn try_admit(
        &self,
        entry: &Entry,
        config: &QueueConfig,
    ) -> Result<Option<Arc<Backend>>, QueueError> {
        let rooms = self.rooms(&entry.routing_group, None);
        let user_max = |u: &str| config.user_quota(u).max_running;
        let (now_ms, live_since_ms) = Self::clock(config);
        let ask = AdmitAsk {
            slot_id: &entry.id,
            group: &entry.routing_group,
            user: &entry.user_name,
            priority: entry.priority,
            seq: Some(entry.seq),
            rooms: &rooms,
            group_max: config.group_quota(&entry.routing_group).max_running,
            user_max: &user_max,
            live_since_ms,
            now_ms,
        };
        let admission = self.run(|s| async move { s.admit(&ask).await }).await?;
        let Admission::Admitted(name) = admission else {
            return Ok(None);
        };
        let waited =
            Duration::from_millis((sluice_store::now_ms() - entry.enqueued_ms).max(0) as u64);
        match self.cluster.get(&name) {
            Some(b) => {
                self.admitted(&entry.routing_group, "queued", Some(waited));
                Ok(Some(b))
            }
            None => {
                self.unadmit(&entry.id, true, "").await;
                Ok(None)
            }
        }
    }

    /// Entry `id` (its client's poll recorded when `polled`).
    pub async fn entry(&self, id: &str, polled: bool) -> Result<Option<Entry>, QueueError> {
        let id = id.to_string();
        self.run(|s| async move {
            match polled {
                true => s.poll_entry(&id, now_ms()).await,
                false => s.entry(&id).await,
            }
        })
        .await
    }

    /// The slot `slot` runs the cluster's query `query_id` now.
    pub async fn submitted(
        &self,
        slot: &str,
        query_id: &str,
        next_uri: Option<&str>,
    ) -> Result<(), QueueError> {
        self.run(|s| async move { s.submitted(slot, query_id, next_uri).await })
            .await
    }

    /// A submission that failed: the slot freed, the entry waiting again (`requeue`) or failed
    /// with `message`.
    pub async fn unadmit(&self, id: &str, requeue: bool, message: &str) {
        let r = self
            .run(|s| async move { s.unadmit(id, requeue, message).await })
            .await;
        if let Err(e) = r {
            tracing::warn!(query_id = id, error = %e, "could not give back a slot; the sweeper will");
        }
        self.room.notify_waiters();
    }

    /// Free slot `slot` (a direct submission failed).
    pub async fn release_slot(&self, slot: &str) {
        if let Err(e) = self
            .run(|s| async move { s.release_slot(slot).await })
            .await
        {
            tracing::warn!(slot, error = %e, "could not free a slot; reconciling will");
        }
        self.room.notify_waiters();
    }

    /// The cluster's query `query_id` ended (its last page passed, or it was cancelled): free
    /// its slot, in the background.
    pub fn release(self: &Arc<Self>, query_id: &str) {
        let (queue, id) = (self.clone(), query_id.to_string());
        tokio::spawn(async move {
            match queue
                .run(|s| async move { s.release_query(&id).await })
                .await
            {
                Ok(true) => queue.room.notify_waiters(),
                Ok(false) => {}
                // the store is down: every query's end would say so; its health log does, once
                Err(QueueError::Store(StoreError::Down)) => {}
                Err(e) => tracing::warn!(error = %e, "could not free a slot; reconciling will"),
            }
        });
    }

    /// Cancel waiting query `id` (the client's DELETE, a kill); whether it was waiting.
    pub async fn cancel(&self, id: &str, message: &str) -> Result<bool, QueueError> {
        let entry = self.entry(id, false).await?;
        let done = self
            .run(|s| async move { s.end_entry(id, "cancelled", message).await })
            .await?;
        if let (true, Some(e)) = (done, entry) {
            self.metrics.ended(&e.routing_group, "cancelled");
        }
        Ok(done)
    }

    /// What waits, in order, and the slots held per backend.
    pub async fn view(&self, limit: i64) -> Result<serde_json::Value, QueueError> {
        let (waiting, slots) = self
            .run(|s| async move {
                let w = s.waiting(limit).await?;
                let slots = s.slots().await?;
                Ok((w, slots))
            })
            .await?;
        let backends = self.cluster.backends();
        let limits: Vec<serde_json::Value> = backends
            .iter()
            .map(|b| {
                let held = slots
                    .iter()
                    .find(|s| s.backend == b.name())
                    .map_or(0, |s| s.running);
                serde_json::json!({
                    "backend": b.name(), "group": b.group(),
                    "max_queries": b.config.max_queries, "running": held,
                })
            })
            .collect();
        Ok(serde_json::json!({
            "waiting": waiting,
            "backends": limits,
            "config": *self.config.load_full(),
        }))
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
