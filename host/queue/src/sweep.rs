//! Housekeeping, on every instance (each step is one transaction, so several instances sweeping
//! at once do each thing once): waits past their deadline end, waits whose client went away
//! end, an admission whose instance stopped before it recorded the submission fails (it is never
//! sent twice), slots whose end was
//! never seen are freed once a health check shows the cluster runs fewer queries, and the depth
//! and slot gauges are refreshed.
use std::sync::Arc;
use std::time::{Duration, UNIX_EPOCH};

use sluice_store::now_ms;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::metrics::{BackendLabel, GroupLabel};
use crate::Queue;

/// How often.
const EVERY: Duration = Duration::from_secs(1);
/// Ended entries are kept this long (their issued ids keep answering).
const KEEP_ENDED_MS: i64 = 24 * 3600 * 1000;

/// Sweep every second until `stop`; an admission not recorded as submitted within `stuck_after`
/// is taken for lost (its instance stopped).
pub fn start(
    queue: Arc<Queue>,
    stuck_after: Duration,
    tasks: &TaskTracker,
    stop: CancellationToken,
) {
    tasks.spawn(async move {
        let mut tick = tokio::time::interval(EVERY);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = stop.cancelled() => return,
                _ = tick.tick() => {}
            }
            if let Err(e) = queue.sweep_once(stuck_after).await {
                tracing::debug!(error = %e, "queue sweep skipped");
            }
        }
    });
}

impl Queue {
    /// One round of housekeeping.
    pub async fn sweep_once(&self, stuck_after: Duration) -> Result<(), crate::QueueError> {
        let config = self.config();
        let now = now_ms();
        let live_since = now - config.abandon_after_ms as i64;
        let stuck_before = now - stuck_after.as_millis() as i64;
        let (timed_out, abandoned, lost) = self
            .run(|s| async move {
                s.sweep_queue(now, live_since, stuck_before, now - KEEP_ENDED_MS)
                    .await
            })
            .await?;
        for (n, reason) in [(timed_out, "timed_out"), (abandoned, "abandoned")] {
            if n > 0 {
                self.metrics
                    .ended
                    .get_or_create(&crate::metrics::EndLabels {
                        group: "*".into(),
                        reason,
                    })
                    .inc_by(n);
            }
        }
        if lost > 0 {
            tracing::warn!(
                lost,
                "admitted queries were never recorded as submitted (their instance stopped?): failed, not sent again"
            );
        }
        let mut freed = 0;
        let grace = config.reconcile_grace_ms as i64;
        for b in self.cluster.backends().iter() {
            if !self.tracks(b) {
                continue;
            }
            let status = b.status();
            let Some(checked) = status.checked_at.filter(|_| status.counted) else {
                continue;
            };
            let checked_ms = checked
                .duration_since(UNIX_EPOCH)
                .map_or(0, |d| d.as_millis() as i64);
            let reported = status.running_queries + status.queued_queries;
            let name = b.name().to_string();
            freed += self
                .run(|s| async move { s.reconcile(&name, reported, checked_ms - grace).await })
                .await?;
        }
        if freed > 0 {
            tracing::info!(
                freed,
                "freed slots of queries the clusters no longer run (their end was not seen)"
            );
            self.room.notify_waiters();
        }
        self.refresh_gauges().await
    }

    async fn refresh_gauges(&self) -> Result<(), crate::QueueError> {
        let (depth, slots) = self
            .run(|s| async move { Ok((s.depth().await?, s.slots().await?)) })
            .await?;
        for g in self.cluster.groups() {
            let n = depth.iter().find(|(d, _)| *d == g).map_or(0, |(_, n)| *n);
            self.metrics
                .depth
                .get_or_create(&GroupLabel { group: g })
                .set(n);
        }
        for b in self.cluster.backends().iter() {
            let n = slots
                .iter()
                .find(|s| s.backend == b.name())
                .map_or(0, |s| s.running);
            self.metrics
                .slots
                .get_or_create(&BackendLabel {
                    backend: b.name().to_string(),
                })
                .set(n);
        }
        Ok(())
    }
}
