//! After admission: the submission recorded, slots freed, waits cancelled, and what the admin
//! API shows.
use std::sync::Arc;

use sluice_store::queue::Entry;
use sluice_store::{now_ms, StoreError};

use crate::{Queue, QueueError};

impl Queue {
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
