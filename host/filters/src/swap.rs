//! The one pipeline every change goes through — an upload, a config change, a rollback, an
//! activation, a watched file, a version another instance announced: compile, link against the
//! WIT world, `init` with the slot's config, one self-test `route` call under the sandbox
//! limits, record in L3, then an atomic switch. Calls in flight finish on the version they
//! started with; a failure at any step changes nothing and says which step failed.
use std::sync::atomic::Ordering;
use std::sync::Arc;

use sluice_routing::QueryRequest;
use sluice_store::{NewModule, StoreError, VersionRow, L3};

use crate::error::{Step, SwapError};

use crate::slot::LoadedFilter;
use crate::FilterChain;

/// What a swap records in L3.
pub enum Persist<'a> {
    /// A new upload (or a new config): stored as the slot's next version, and active.
    New {
        /// Who made it.
        created_by: &'a str,
    },
    /// A stored version made active again.
    Existing(i64),
    /// Following the version L3 already marks active (nothing is written).
    Follow(i64),
}

/// A module offered to a slot: what the pipeline loads.
pub struct Candidate<'a> {
    /// The slot it is for (a new name is appended to the chain).
    pub slot: &'a str,
    /// Where it came from, for status and logs (`upload`, a path, `store:slot@v`).
    pub module: &'a str,
    /// The component.
    pub bytes: &'a [u8],
    /// The JSON its `init` gets.
    pub config_json: String,
}

/// A swapped-in filter and the one it replaced.
pub type Swapped = (Arc<LoadedFilter>, Option<Arc<LoadedFilter>>);

impl FilterChain {
    /// The store, if it is configured and up.
    pub(crate) fn up_store(&self) -> Result<&Arc<L3>, SwapError> {
        match &self.store {
            Some(l3) if l3.is_healthy() => Ok(l3),
            Some(_) => Err(StoreError::Down.into()),
            None => Err(SwapError::new(
                Step::Store,
                "no store is configured (store.url is empty)",
            )),
        }
    }

    /// The stored versions of `slot`, oldest first.
    pub async fn versions(&self, slot: &str) -> Result<Vec<VersionRow>, SwapError> {
        Ok(self.up_store()?.store().versions(slot).await?)
    }

    pub(crate) async fn load_stored(
        &self,
        slot: &str,
        version: i64,
        persist: Persist<'_>,
    ) -> Result<Swapped, SwapError> {
        let row = self
            .up_store()?
            .store()
            .module(slot, version)
            .await?
            .ok_or_else(|| {
                SwapError::new(
                    Step::Version,
                    format!("slot '{slot}' has no version {version}"),
                )
            })?;
        let module = format!("store:{slot}@{version}");
        let candidate = Candidate {
            slot,
            module: &module,
            bytes: &row.bytes,
            config_json: row.config,
        };
        self.swap_locked(candidate, persist).await
    }

    /// Make stored `version` of `slot` active again, through the same pipeline as an upload.
    pub async fn activate(&self, slot: &str, version: i64) -> Result<Swapped, SwapError> {
        let _one_at_a_time = self.swapping.lock().await;
        self.load_stored(slot, version, Persist::Existing(version))
            .await
    }

    /// Go back to the version before the active one.
    pub async fn rollback(&self, slot: &str) -> Result<Swapped, SwapError> {
        let _one_at_a_time = self.swapping.lock().await;
        let versions = self.versions(slot).await?;
        let active = versions.iter().find(|v| v.active).map(|v| v.version);
        let previous =
            active.and_then(|a| versions.iter().map(|v| v.version).filter(|v| *v < a).max());
        match previous {
            Some(p) => self.load_stored(slot, p, Persist::Existing(p)).await,
            None => Err(SwapError::new(
                Step::Version,
                format!("slot '{slot}' has no stored version before the active one"),
            )),
        }
    }

    /// Run the module of `slot` with a new config (stored as a new version of the slot).
    pub async fn reconfigure(
        &self,
        slot: &str,
        config_json: String,
        created_by: &str,
    ) -> Result<Swapped, SwapError> {
        let _one_at_a_time = self.swapping.lock().await;
        let current = self
            .slots()
            .iter()
            .find(|f| &*f.slot == slot)
            .cloned()
            .ok_or_else(|| SwapError::new(Step::Slot, format!("no slot '{slot}' in the chain")))?;
        let candidate = Candidate {
            slot,
            module: &current.module,
            bytes: current.bytes(),
            config_json,
        };
        self.swap_locked(candidate, Persist::New { created_by })
            .await
    }

    /// Put the slots in `order` (the same names, in a new order); recorded in L3 for the fleet.
    pub async fn reorder(&self, order: &[String], by: &str) -> Result<Vec<String>, SwapError> {
        let _one_at_a_time = self.swapping.lock().await;
        let mut current = self.order();
        let mut wanted = order.to_vec();
        current.sort();
        wanted.sort();
        if current != wanted {
            return Err(SwapError::new(
                Step::Order,
                format!(
                    "the order must name every slot once: {}",
                    current.join(", ")
                ),
            ));
        }
        if self.store.is_some() {
            self.up_store()?.store().set_chain_order(order, by).await?;
        }
        self.apply_order(order);
        self.changed(true);
        tracing::info!(?order, by, "filter chain reordered");
        Ok(self.order())
    }

    /// Slots named in `order` first, in that order; the others after them, as they were.
    /// Returns whether anything moved. Callers hold the swap lock.
    pub(crate) fn apply_order(&self, order: &[String]) -> bool {
        let current = self.slots.load_full();
        let mut next: Vec<Arc<LoadedFilter>> = order
            .iter()
            .filter_map(|name| current.iter().find(|f| &*f.slot == name).cloned())
            .collect();
        for f in current.iter() {
            if !order.iter().any(|n| *n == *f.slot) {
                next.push(f.clone());
            }
        }
        let moved = next
            .iter()
            .zip(current.iter())
            .any(|(a, b)| !Arc::ptr_eq(a, b));
        if moved {
            self.slots.store(Arc::new(next));
        }
        moved
    }

    /// Run `candidate` through the pipeline's checks (compile, link, init, self-test) without
    /// recording or switching anything: a reload checks every changed slot before it swaps any.
    pub async fn check(&self, candidate: Candidate<'_>) -> Result<(), SwapError> {
        let c = candidate;
        self.prepare(c.slot, c.module, c.bytes, c.config_json)
            .await
            .map(|_| ())
    }

    /// Compile, link, init and self-test a module for `slot`.
    async fn prepare(
        &self,
        slot: &str,
        module: &str,
        bytes: &[u8],
        config_json: String,
    ) -> Result<Arc<LoadedFilter>, SwapError> {
        let new = LoadedFilter::load(&self.env, slot, module, bytes, config_json).await?;
        let probe = QueryRequest {
            user: Some("sluice-self-test".into()),
            query_text: "SELECT 1".into(),
            ..Default::default()
        };
        let group = self
            .cluster
            .groups()
            .into_iter()
            .next()
            .unwrap_or_else(|| "adhoc".into());
        new.route(&probe, &group)
            .await
            .map_err(|e| SwapError::new(Step::SelfTest, e.to_string()))?;
        Ok(new)
    }

    /// Load `candidate` through the pipeline and switch its slot to it; a slot not in the chain
    /// is appended. Returns the new filter and the one it replaced.
    pub async fn swap(
        &self,
        candidate: Candidate<'_>,
        persist: Persist<'_>,
    ) -> Result<Swapped, SwapError> {
        let _one_at_a_time = self.swapping.lock().await;
        self.swap_locked(candidate, persist).await
    }

    /// [`Self::swap`], for callers that hold the swap lock.
    pub(crate) async fn swap_locked(
        &self,
        candidate: Candidate<'_>,
        persist: Persist<'_>,
    ) -> Result<Swapped, SwapError> {
        let Candidate {
            slot,
            module,
            bytes,
            config_json,
        } = candidate;
        let config_for_store = config_json.clone();
        let new = self.prepare(slot, module, bytes, config_json).await?;
        // record it before it serves, so what serves can always be found again after a restart
        let (version, here) = match persist {
            Persist::New { created_by } => match &self.store {
                None => (0, true),
                Some(_) => {
                    let row = NewModule {
                        slot,
                        sha256: &new.sha256,
                        bytes,
                        config: &config_for_store,
                        created_by,
                    };
                    (self.up_store()?.store().insert_module(&row).await?, true)
                }
            },
            Persist::Existing(v) => {
                self.up_store()?.store().activate(slot, v).await?;
                (v, true)
            }
            Persist::Follow(v) => (v, false),
        };
        new.version.store(version, Ordering::Relaxed);
        let current = self.slots.load_full();
        let mut next: Vec<Arc<LoadedFilter>> = current.iter().cloned().collect();
        let replaced = match next.iter().position(|f| &*f.slot == slot) {
            Some(i) => Some(std::mem::replace(&mut next[i], new.clone())),
            None => {
                next.push(new.clone());
                None
            }
        };
        // changes are serialised by the lock, so a plain store cannot lose another change
        self.slots.store(Arc::new(next));
        self.failed.lock().unwrap().remove(slot);
        self.changed(here);
        tracing::info!(
            slot,
            version,
            sha256 = &*new.sha256,
            previous = replaced.as_ref().map(|r| &*r.sha256),
            "filter swapped"
        );
        Ok((new, replaced))
    }
}
