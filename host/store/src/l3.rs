//! [`L3`]: the store as a cache tier. It knows whether the database is up (a health check, and
//! any failed read or write), queues writes in a bounded queue that a background writer flushes
//! in batches, and prunes expired entries and old history hourly.
use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use sluice_config::StoreConfig;
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::mirror::Mirror;
use crate::{HistoryRow, Store, StoreError, Write};

/// The L3 tier: the store, its health, and the write queue.
pub struct L3 {
    store: Store,
    healthy: AtomicBool,
    migrated: AtomicBool,
    queue: Mutex<VecDeque<Write>>,
    notify: Notify,
    capacity: usize,
    batch_size: usize,
    timeout: Duration,
    dropped: AtomicU64,
    written: AtomicU64,
    in_flight: AtomicU64,
    mirror: Option<Beside>,
}

/// The database history rows are written to besides Sluice's own, and how that goes.
struct Beside {
    mirror: std::sync::Arc<dyn Mirror>,
    failed: AtomicU64,
    failing: AtomicBool,
}

impl L3 {
    /// Open the store and start its writer and health check (with pruning) on `tasks`, until
    /// `stop` is cancelled.
    pub fn start(
        config: &StoreConfig,
        tasks: &TaskTracker,
        stop: CancellationToken,
    ) -> Result<Arc<L3>, StoreError> {
        Self::start_beside(config, None, tasks, stop)
    }

    /// [`L3::start`], with a [`Mirror`]: prepared before the first migration, and handed every
    /// batch of history rows.
    pub fn start_beside(
        config: &StoreConfig,
        mirror: Option<Arc<dyn Mirror>>,
        tasks: &TaskTracker,
        stop: CancellationToken,
    ) -> Result<Arc<L3>, StoreError> {
        let l3 = Arc::new(Self::new(config, mirror)?);
        tasks.spawn(supervise(l3.clone(), config.clone(), stop.clone()));
        tasks.spawn(write_loop(
            l3.clone(),
            Duration::from_millis(config.flush_interval_ms),
            stop,
        ));
        Ok(l3)
    }

    fn new(config: &StoreConfig, mirror: Option<Arc<dyn Mirror>>) -> Result<L3, StoreError> {
        Ok(L3 {
            store: Store::open(&config.url)?,
            healthy: AtomicBool::new(false),
            migrated: AtomicBool::new(false),
            queue: Mutex::new(VecDeque::new()),
            notify: Notify::new(),
            capacity: config.queue_capacity,
            batch_size: config.batch_size,
            timeout: Duration::from_millis(config.timeout_ms),
            dropped: AtomicU64::new(0),
            written: AtomicU64::new(0),
            in_flight: AtomicU64::new(0),
            mirror: mirror.map(|mirror| Beside {
                mirror,
                failed: AtomicU64::new(0),
                failing: AtomicBool::new(false),
            }),
        })
    }

    /// The store underneath.
    pub fn store(&self) -> &Store {
        &self.store
    }

    /// Whether reads and writes go to the database now.
    pub fn is_healthy(&self) -> bool {
        self.healthy.load(Ordering::Relaxed)
    }

    /// The store, if it is up.
    pub fn up(&self) -> Result<&Store, StoreError> {
        if self.is_healthy() {
            Ok(&self.store)
        } else {
            Err(StoreError::Down)
        }
    }

    /// Rows not yet in the database: waiting in the queue or in a batch being written.
    pub fn queued(&self) -> usize {
        self.queue.lock().unwrap().len() + self.in_flight.load(Ordering::Relaxed) as usize
    }

    /// Rows dropped because the queue was full.
    pub fn dropped(&self) -> u64 {
        self.dropped.load(Ordering::Relaxed)
    }

    /// Rows written.
    pub fn written(&self) -> u64 {
        self.written.load(Ordering::Relaxed)
    }

    /// Queue writes; never blocks. When full, the oldest rows make room and are counted.
    pub fn enqueue(&self, writes: impl IntoIterator<Item = Write>) {
        let mut q = self.queue.lock().unwrap();
        for w in writes {
            if q.len() >= self.capacity {
                q.pop_front();
                self.dropped.fetch_add(1, Ordering::Relaxed);
            }
            q.push_back(w);
        }
        drop(q);
        self.notify.notify_one();
    }

    /// Read an entry within the time limit; [`StoreError::Down`] while the database is down.
    pub async fn get(&self, key: &str) -> Result<Option<Vec<u8>>, StoreError> {
        let store = self.up()?;
        match tokio::time::timeout(self.timeout, store.get_entry(key)).await {
            Ok(Ok(v)) => Ok(v),
            Ok(Err(e)) => Err(self.mark_down(e)),
            Err(_) => Err(self.mark_down(StoreError::Timeout(self.timeout.as_millis() as u64))),
        }
    }

    /// Delete an entry: at once when the database is up, and again through the write queue,
    /// after any write of the same key still queued (which would otherwise bring it back).
    pub async fn delete(&self, key: &str) {
        self.enqueue(std::iter::once(Write::Delete {
            key: key.to_string(),
        }));
        if let Ok(store) = self.up() {
            match tokio::time::timeout(self.timeout, store.delete_entry(key)).await {
                Ok(Ok(())) => {}
                Ok(Err(e)) => {
                    self.mark_down(e);
                }
                Err(_) => {
                    self.mark_down(StoreError::Timeout(self.timeout.as_millis() as u64));
                }
            }
        }
    }

    fn mark_down(&self, why: StoreError) -> StoreError {
        if self.healthy.swap(false, Ordering::Relaxed) {
            tracing::warn!(
                reason = %why,
                "L3 (database) marked down; rows wait in the write queue"
            );
        }
        why
    }

    /// Write what is still queued, within `limit` (at shutdown: rows a graceful stop would
    /// otherwise leave behind). Returns the rows still unwritten.
    pub async fn drain(&self, limit: Duration) -> usize {
        if self.is_healthy() {
            let _ = tokio::time::timeout(limit, self.flush()).await;
        }
        let left = self.queued();
        if left > 0 {
            tracing::warn!(rows = left, "L3 rows not written at shutdown");
        }
        left
    }

    /// Write what is queued now, in batches (used by the writer and at shutdown).
    async fn flush(&self) -> Result<(), StoreError> {
        loop {
            let batch: Vec<Write> = {
                let mut q = self.queue.lock().unwrap();
                let n = q.len().min(self.batch_size);
                self.in_flight.store(n as u64, Ordering::Relaxed);
                q.drain(..n).collect()
            };
            if batch.is_empty() {
                return Ok(());
            }
            let limit = self.timeout * 4;
            let result = match tokio::time::timeout(limit, self.store.write_batch(&batch)).await {
                Ok(r) => r,
                Err(_) => Err(StoreError::Timeout(limit.as_millis() as u64)),
            };
            if let Err(e) = result {
                // put the batch back in front, oldest first, keeping the bound
                let mut q = self.queue.lock().unwrap();
                for w in batch.into_iter().rev() {
                    if q.len() >= self.capacity {
                        self.dropped.fetch_add(1, Ordering::Relaxed);
                        continue;
                    }
                    q.push_front(w);
                }
                self.in_flight.store(0, Ordering::Relaxed);
                drop(q);
                return Err(self.mark_down(e));
            }
            self.written
                .fetch_add(batch.len() as u64, Ordering::Relaxed);
            self.mirror_history(&batch).await;
        }
    }

    /// What the store works beside, if anything ([`Mirror::name`]).
    pub fn mirror_name(&self) -> Option<&'static str> {
        self.mirror.as_ref().map(|m| m.mirror.name())
    }

    /// History rows the [`Mirror`] did not take.
    pub fn mirror_failed(&self) -> u64 {
        self.mirror
            .as_ref()
            .map_or(0, |m| m.failed.load(Ordering::Relaxed))
    }

    /// Hand the history rows of `batch` to the [`Mirror`]: a failure is counted and logged once
    /// per outage, not retried (Sluice's own table has every row).
    async fn mirror_history(&self, batch: &[Write]) {
        let Some(m) = self.mirror.as_ref() else {
            return;
        };
        let rows: Vec<&HistoryRow> = batch
            .iter()
            .filter_map(|w| match w {
                Write::History(h) => Some(&**h),
                _ => None,
            })
            .collect();
        if rows.is_empty() {
            return;
        }
        let limit = self.timeout * 4;
        let result = match tokio::time::timeout(limit, m.mirror.write_history(&rows)).await {
            Ok(r) => r,
            Err(_) => Err(StoreError::Timeout(limit.as_millis() as u64)),
        };
        let name = m.mirror.name();
        match result {
            Ok(()) => {
                if m.failing.swap(false, Ordering::Relaxed) {
                    tracing::info!(mirror = name, "history rows reach the mirror again");
                }
            }
            Err(e) => {
                m.failed.fetch_add(rows.len() as u64, Ordering::Relaxed);
                if !m.failing.swap(true, Ordering::Relaxed) {
                    tracing::warn!(mirror = name, error = %e, rows = rows.len(), "history rows not written into the mirror");
                }
            }
        }
    }
}

/// Sleep for `d` unless `stop` comes first; whether the sleep ran out.
async fn pause(d: Duration, stop: &CancellationToken) -> bool {
    tokio::select! {
        _ = tokio::time::sleep(d) => true,
        _ = stop.cancelled() => false,
    }
}

// the gateway drains the queue itself at shutdown (see `L3::drain`): the writer just stops
async fn write_loop(l3: Arc<L3>, interval: Duration, stop: CancellationToken) {
    loop {
        let woken = tokio::select! {
            _ = l3.notify.notified() => true,
            _ = tokio::time::sleep(interval) => false,
            _ = stop.cancelled() => return,
        };
        // after a wake-up, let a batch gather
        if woken && !pause(interval, &stop).await {
            return;
        }
        if l3.is_healthy() && l3.flush().await.is_err() && !pause(interval, &stop).await {
            return;
        }
    }
}

/// Migrate (until that worked once), else `SELECT 1`: whether the database is usable.
async fn check(l3: &L3) -> bool {
    if !l3.migrated.load(Ordering::Relaxed) {
        if let Some(m) = &l3.mirror {
            // e.g. Sluice's own schema beside Trino Gateway's, made before the first migration
            match tokio::time::timeout(Duration::from_secs(10), m.mirror.prepare()).await {
                Ok(Ok(())) => {}
                Ok(Err(e)) => {
                    tracing::warn!(mirror = m.mirror.name(), error = %e, "could not prepare the database Sluice works beside; retrying");
                    return false;
                }
                Err(_) => return false,
            }
        }
        match tokio::time::timeout(Duration::from_secs(30), l3.store.migrate()).await {
            Ok(Ok(())) => {
                l3.migrated.store(true, Ordering::Relaxed);
                true
            }
            Ok(Err(e)) => {
                tracing::warn!(error = %e, "L3 migrations failed; retrying");
                false
            }
            Err(_) => false,
        }
    } else {
        let limit = l3.timeout.max(Duration::from_millis(500));
        matches!(
            tokio::time::timeout(limit, l3.store.ping()).await,
            Ok(Ok(()))
        )
    }
}

async fn supervise(l3: Arc<L3>, config: StoreConfig, stop: CancellationToken) {
    let interval = Duration::from_millis(config.health_check_interval_ms);
    let retention = Duration::from_secs(config.history_retention_days * 86_400);
    let mut last_prune: Option<std::time::Instant> = None;
    loop {
        let ok = tokio::select! {
            ok = check(&l3) => ok,
            _ = stop.cancelled() => return,
        };
        if ok && !l3.healthy.swap(true, Ordering::Relaxed) {
            tracing::info!(queued = l3.queued(), "L3 (database) is up");
            l3.notify.notify_one();
        } else if !ok {
            l3.mark_down(StoreError::Down);
        }
        if ok && last_prune.is_none_or(|t| t.elapsed() >= Duration::from_secs(3600)) {
            last_prune = Some(std::time::Instant::now());
            match l3.store.prune(retention).await {
                Ok(n) if n > 0 => {
                    tracing::info!(rows = n, "pruned expired cache entries and old history")
                }
                Ok(_) => {}
                Err(e) => tracing::warn!(error = %e, "prune failed"),
            }
        }
        if !pause(interval, &stop).await {
            return;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::entries::tests::row;

    #[tokio::test]
    async fn a_full_queue_drops_the_oldest_and_counts_them() {
        let config = StoreConfig {
            url: "sqlite::memory:".into(),
            queue_capacity: 3,
            ..StoreConfig::default()
        };
        let l3 = L3::new(&config, None).unwrap(); // no writer: the database stays "down"
        l3.enqueue((0..5).map(|i| row(&format!("1_2_3_{i}"))));
        assert_eq!(l3.queued(), 3);
        assert_eq!(l3.dropped(), 2);
        assert!(matches!(l3.get("k").await, Err(StoreError::Down)));
        let q = l3.queue.lock().unwrap();
        let Write::History(first) = &q[0] else {
            panic!()
        };
        assert_eq!(first.query_id, "1_2_3_2", "the oldest went first");
    }
}
