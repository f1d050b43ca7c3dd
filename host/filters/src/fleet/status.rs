//! The fleet view behind `GET /api/v1/fleet` and `sluice filter fleet`: what L3 marks active, what
//! every instance reports it runs, which instance is behind, and whether the fleet converged.
use std::collections::BTreeMap;
use std::sync::atomic::Ordering;

use serde::{Deserialize, Serialize};
use sluice_store::{InstanceSlot, Store, StoreError};

use super::Fleet;

/// The whole fleet, as this instance sees it in L3.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FleetView {
    /// This instance.
    pub instance_id: String,
    /// The announcement channel.
    pub channel: String,
    /// How often instances poll L3 (`None`: only on announcements).
    pub poll_interval_ms: Option<i64>,
    /// Whether this instance is subscribed to the channel.
    pub subscribed: bool,
    /// Announcements this instance sent.
    pub announced: u64,
    /// Announcements it received.
    pub received: u64,
    /// The active version of every slot.
    pub active: Vec<ActiveVersion>,
    /// Every instance that is not stale runs the active versions.
    pub converged: bool,
    /// What each instance reports.
    pub instances: Vec<InstanceView>,
}

/// The active version of one slot.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ActiveVersion {
    /// The slot.
    pub slot: String,
    /// Its active version.
    pub version: i64,
    /// That version's sha256.
    pub sha256: String,
}

/// One instance's report.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct InstanceView {
    /// The instance.
    pub instance_id: String,
    /// Its last report, in milliseconds since the epoch.
    pub updated_at: i64,
    /// Silent for three polls (or 30 s without polling): not counted against convergence.
    pub stale: bool,
    /// What it runs.
    pub slots: Vec<InstanceSlotView>,
}

/// What one instance runs in one slot.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct InstanceSlotView {
    /// The slot.
    pub slot: String,
    /// Its place in the instance's chain.
    pub position: i64,
    /// The sha256 it runs.
    pub sha256: String,
    /// The version it runs.
    pub version: i64,
    /// Whether that is the active version.
    pub current: bool,
    /// Why it could not load the active version, if it could not.
    pub error: Option<String>,
}

impl Fleet {
    /// The fleet view from `store`, at `now_ms`.
    pub async fn view(&self, store: &Store, now_ms: i64) -> Result<FleetView, StoreError> {
        let active = store.active_modules().await?;
        let instances = store.instances().await?;
        Ok(self.build_view(active, &instances, now_ms))
    }

    fn build_view(
        &self,
        active: Vec<(String, i64, String)>,
        instances: &[InstanceSlot],
        now_ms: i64,
    ) -> FleetView {
        let poll_ms = self.options.poll_interval.map(|d| d.as_millis() as i64);
        // an instance that missed three polls (or 30 s without polling) is stale
        let stale_after = poll_ms.map(|p| 3 * p).unwrap_or(30_000).max(3_000);
        let mut by_instance: BTreeMap<&str, Vec<&InstanceSlot>> = BTreeMap::new();
        for row in instances {
            by_instance.entry(&row.instance_id).or_default().push(row);
        }
        let mut converged = true;
        let instances = by_instance
            .into_iter()
            .map(|(id, rows)| {
                let updated_at = rows.iter().map(|r| r.updated_at).max().unwrap_or(0);
                let stale = now_ms - updated_at > stale_after;
                let slots = rows
                    .iter()
                    .map(|r| {
                        let wanted = active.iter().find(|(s, _, _)| *s == r.slot);
                        let current =
                            wanted.is_none_or(|(_, v, sha)| *sha == r.sha256 && *v == r.version);
                        converged &= current || stale;
                        InstanceSlotView {
                            slot: r.slot.clone(),
                            position: r.position,
                            sha256: r.sha256.clone(),
                            version: r.version,
                            current,
                            error: r.error.clone(),
                        }
                    })
                    .collect();
                InstanceView {
                    instance_id: id.to_string(),
                    updated_at,
                    stale,
                    slots,
                }
            })
            .collect();
        FleetView {
            instance_id: self.options.instance_id.clone(),
            channel: self.options.channel.clone(),
            poll_interval_ms: poll_ms,
            subscribed: self.status.subscribed.load(Ordering::Relaxed),
            announced: self.status.announced.load(Ordering::Relaxed),
            received: self.status.received.load(Ordering::Relaxed),
            active: active
                .into_iter()
                .map(|(slot, version, sha256)| ActiveVersion {
                    slot,
                    version,
                    sha256,
                })
                .collect(),
            converged,
            instances,
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::time::Duration;

    use super::*;
    use crate::fleet::{FleetOptions, FleetStatus};

    fn row(instance: &str, sha: &str, at: i64) -> InstanceSlot {
        InstanceSlot {
            instance_id: instance.into(),
            slot: "rules".into(),
            position: 0,
            sha256: sha.into(),
            version: 2,
            error: None,
            updated_at: at,
        }
    }

    #[test]
    fn a_behind_instance_breaks_convergence_unless_it_is_stale() {
        let fleet = Fleet {
            options: FleetOptions {
                instance_id: "a".into(),
                poll_interval: Some(Duration::from_secs(5)),
                channel: "c".into(),
            },
            status: Arc::new(FleetStatus::default()),
        };
        let active = || vec![("rules".to_string(), 2, "new".to_string())];
        let now = 100_000;
        let view = fleet.build_view(active(), &[row("a", "new", now), row("b", "old", now)], now);
        assert!(!view.converged);
        assert_eq!(view.instances[1].instance_id, "b");
        assert!(!view.instances[1].slots[0].current);
        // b silent for more than three polls: stale, no longer holding the fleet back
        let view = fleet.build_view(
            active(),
            &[row("a", "new", now), row("b", "old", now - 16_000)],
            now,
        );
        assert!(view.converged);
        assert!(view.instances[1].stale);
        assert_eq!(view.poll_interval_ms, Some(5000));
    }
}
