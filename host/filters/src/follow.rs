//! Making this instance run what L3 marks active — after a restart, and when another instance of
//! the fleet changed a slot — and reporting what it runs.
use std::sync::atomic::Ordering;

use sluice_store::InstanceSlot;

use crate::error::Step;
use crate::swap::Persist;
use crate::FilterChain;

/// What [`FilterChain::catch_up`] did.
#[derive(Debug, Default)]
pub struct CatchUp {
    /// Slots switched to the version L3 marks active.
    pub switched: Vec<String>,
    /// Slots whose active version would not load here: (slot, why).
    pub failed: Vec<(String, String)>,
    /// Whether the chain order changed.
    pub reordered: bool,
}

impl FilterChain {
    /// Make this instance run what L3 marks active: every slot's active version (a slot another
    /// instance added is appended) and the stored chain order. A version that fails to load here
    /// is recorded and reported, the running one kept, and not retried until the slot's active
    /// version changes. Does nothing while L3 is down.
    pub async fn catch_up(&self) -> CatchUp {
        let mut done = CatchUp::default();
        let Ok(l3) = self.up_store() else {
            return done;
        };
        let _one_at_a_time = self.swapping.lock().await;
        let (active, order) = match (
            l3.store().active_modules().await,
            l3.store().chain_order().await,
        ) {
            (Ok(a), Ok(o)) => (a, o),
            (Err(e), _) | (_, Err(e)) => {
                tracing::debug!(error = %e, "catch-up skipped: the store did not answer");
                return done;
            }
        };
        for (slot, version, sha) in active {
            let running = self.slots().iter().find(|f| *f.slot == slot).cloned();
            if let Some(f) = &running {
                if *f.sha256 == sha && f.version.load(Ordering::Relaxed) == version {
                    self.failed.lock().unwrap().remove(&slot);
                    continue;
                }
            }
            let known_bad =
                matches!(self.failed.lock().unwrap().get(&slot), Some((v, _, _)) if *v == version);
            if known_bad {
                continue;
            }
            match self
                .load_stored(&slot, version, Persist::Follow(version))
                .await
            {
                Ok(_) => done.switched.push(slot),
                Err(e) if e.step == Step::Store => return done,
                Err(e) => {
                    tracing::warn!(slot, version, sha256 = sha, error = %e, "could not load the active stored version; keeping the running one");
                    done.failed.push((slot.clone(), e.to_string()));
                    self.failed
                        .lock()
                        .unwrap()
                        .insert(slot, (version, sha, e.to_string()));
                    self.changed(false);
                }
            }
        }
        if let Some(order) = order {
            done.reordered = self.apply_order(&order);
            if done.reordered {
                tracing::info!(?order, "filter chain now in the stored order");
                self.changed(false);
            }
        }
        done
    }

    /// What this instance runs, slot by slot, for the fleet status.
    pub fn report(&self, instance_id: &str) -> Vec<InstanceSlot> {
        let failed = self.failed.lock().unwrap();
        let now = sluice_store::now_ms();
        self.slots()
            .iter()
            .enumerate()
            .map(|(i, f)| InstanceSlot {
                instance_id: instance_id.to_string(),
                slot: f.slot.to_string(),
                position: i as i64,
                sha256: f.sha256.to_string(),
                version: f.version.load(Ordering::Relaxed),
                error: failed.get(&*f.slot).map(|(v, sha, why)| {
                    format!(
                        "cannot load version {v} ({}): {why}",
                        &sha[..sha.len().min(12)]
                    )
                }),
                updated_at: now,
            })
            .collect()
    }
}
