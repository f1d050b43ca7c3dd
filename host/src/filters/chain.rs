//! The filter chain: slots run in order; `use-group` narrows the group and goes on, `route-to`
//! and `reject` end the chain, `pass` defers. A slot that fails (trap, timeout, out of memory,
//! a backend that cannot take the query) ends the chain with the configured fallback, and is
//! counted; the gateway keeps serving.
//!
//! Changes (an upload, a config change, a rollback, a new order) go through one pipeline and are
//! recorded in L3 before they serve; [`FilterChain::catch_up`] makes an instance follow what L3
//! says, which is how the rest of a fleet picks a change up (see `fleet`).
use std::collections::HashMap;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};

use arc_swap::ArcSwap;
use tokio::sync::watch;

use super::slot::{LoadContext, LoadedFilter};
use crate::cluster::Cluster;
use crate::config::FilterErrorPolicy;
use crate::routing::{BoxFuture, Decision, QueryRequest, RouteContext, Router};
use crate::store::{InstanceSlot, NewModule, VersionRow, L3};

/// An ordered list of loaded filters, swappable while it serves.
pub struct FilterChain {
    slots: ArcSwap<Vec<Arc<LoadedFilter>>>,
    on_error: FilterErrorPolicy,
    cluster: Arc<Cluster>,
    env: LoadContext,
    /// Serialises changes (calls never wait on it).
    swapping: tokio::sync::Mutex<()>,
    /// Where accepted versions are kept (L3), if configured.
    store: Option<Arc<L3>>,
    /// Stored versions this instance could not load: slot → (version, sha256, why). Not retried
    /// until the slot's active version changes.
    failed: Mutex<HashMap<String, (i64, String, String)>>,
    /// Bumped on every change: (changes made here, all changes).
    changes: watch::Sender<(u64, u64)>,
}

/// What a swap records in L3.
pub enum Persist<'a> {
    /// A new upload (or a new config): stored as the slot's next version, and active.
    New { created_by: &'a str },
    /// A stored version made active again.
    Existing(i64),
    /// Following the version L3 already marks active (nothing is written).
    Follow(i64),
}

/// A swap that did not happen: which step failed, and why. The running version is untouched.
#[derive(Debug)]
pub struct SwapError {
    /// `compile`, `link`, `init`, `self-test`, `store`, `version`, `slot` or `order`.
    pub step: &'static str,
    /// What went wrong.
    pub message: String,
}

impl std::fmt::Display for SwapError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.step {
            // a request that names something missing or wrong says just that
            "version" | "slot" | "order" => f.write_str(&self.message),
            step => write!(f, "{step} failed: {}", self.message),
        }
    }
}

impl std::error::Error for SwapError {}

impl SwapError {
    fn new(step: &'static str, message: impl Into<String>) -> Self {
        Self {
            step,
            message: message.into(),
        }
    }
}

/// A swapped-in filter and the one it replaced.
pub type Swapped = (Arc<LoadedFilter>, Option<Arc<LoadedFilter>>);

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
    /// A chain of `slots`; `env` loads the modules swapped in later.
    pub fn new(
        slots: Vec<Arc<LoadedFilter>>,
        on_error: FilterErrorPolicy,
        cluster: Arc<Cluster>,
        env: LoadContext,
        store: Option<Arc<L3>>,
    ) -> Self {
        Self {
            slots: ArcSwap::from_pointee(slots),
            on_error,
            cluster,
            env,
            swapping: tokio::sync::Mutex::new(()),
            store,
            failed: Mutex::new(HashMap::new()),
            changes: watch::channel((0, 0)).0,
        }
    }

    /// Watch changes: the pair counts (changes made here, all changes).
    pub fn subscribe(&self) -> watch::Receiver<(u64, u64)> {
        self.changes.subscribe()
    }

    fn changed(&self, here: bool) {
        self.changes
            .send_modify(|(local, all)| (*local, *all) = (*local + here as u64, *all + 1));
    }

    /// The store, if it is configured and up.
    pub fn l3(&self) -> Option<&Arc<L3>> {
        self.store.as_ref()
    }

    fn store(&self, step: &'static str) -> Result<&Arc<L3>, SwapError> {
        match &self.store {
            Some(l3) if l3.is_healthy() => Ok(l3),
            Some(_) => Err(SwapError::new(step, "the store (L3) is down")),
            None => Err(SwapError::new(
                step,
                "no store is configured (store.url is empty)",
            )),
        }
    }

    /// The stored versions of `slot`: (version, sha256, active), oldest first.
    pub async fn versions(&self, slot: &str) -> Result<Vec<VersionRow>, SwapError> {
        let l3 = self.store("store")?;
        l3.store()
            .versions(slot)
            .await
            .map_err(|m| SwapError::new("store", m))
    }

    async fn load_stored(
        &self,
        slot: &str,
        version: i64,
        persist: Persist<'_>,
    ) -> Result<Swapped, SwapError> {
        let l3 = self.store("store")?;
        let row = l3
            .store()
            .module(slot, version)
            .await
            .map_err(|m| SwapError::new("store", m))?
            .ok_or_else(|| {
                SwapError::new("version", format!("slot '{slot}' has no version {version}"))
            })?;
        self.swap_locked(
            slot,
            &format!("store:{slot}@{version}"),
            &row.bytes,
            row.config,
            persist,
        )
        .await
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
        let previous = match active {
            Some(a) => versions.iter().map(|v| v.version).filter(|v| *v < a).max(),
            None => None,
        };
        match previous {
            Some(p) => self.load_stored(slot, p, Persist::Existing(p)).await,
            None => Err(SwapError::new(
                "version",
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
            .ok_or_else(|| SwapError::new("slot", format!("no slot '{slot}' in the chain")))?;
        self.swap_locked(
            slot,
            &current.module,
            &current.bytes().clone(),
            config_json,
            Persist::New { created_by },
        )
        .await
    }

    /// Put the slots in `order` (the same names, in a new order); recorded in L3 for the fleet.
    pub async fn reorder(&self, order: &[String], by: &str) -> Result<Vec<String>, SwapError> {
        let _one_at_a_time = self.swapping.lock().await;
        let mut current: Vec<String> = self.slots().iter().map(|f| f.slot.to_string()).collect();
        let mut wanted = order.to_vec();
        current.sort();
        wanted.sort();
        if current != wanted {
            return Err(SwapError::new(
                "order",
                format!(
                    "the order must name every slot once: {}",
                    current.join(", ")
                ),
            ));
        }
        if self.store.is_some() {
            self.store("store")?
                .store()
                .set_chain_order(order, by)
                .await
                .map_err(|m| SwapError::new("store", m))?;
        }
        self.apply_order(order);
        self.changed(true);
        tracing::info!(?order, by, "filter chain reordered");
        Ok(self.order())
    }

    /// The slot names, in chain order.
    pub fn order(&self) -> Vec<String> {
        self.slots().iter().map(|f| f.slot.to_string()).collect()
    }

    /// Slots named in `order` first, in that order; the others after them, as they were.
    /// Returns whether anything moved. Callers hold the swap lock.
    fn apply_order(&self, order: &[String]) -> bool {
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

    /// Make this instance run what L3 marks active: every slot's active version (a slot another
    /// instance added is appended) and the stored chain order. A version that fails to load here
    /// is recorded and reported, the running one kept, and not retried until the slot's active
    /// version changes. Does nothing while L3 is down.
    pub async fn catch_up(&self) -> CatchUp {
        let mut done = CatchUp::default();
        let Ok(l3) = self.store("store") else {
            return done;
        };
        let _one_at_a_time = self.swapping.lock().await;
        let (active, order) = match (
            l3.store().active_modules().await,
            l3.store().chain_order().await,
        ) {
            (Ok(a), Ok(o)) => (a, o),
            (Err(e), _) | (_, Err(e)) => {
                tracing::debug!(error = e, "catch-up skipped: the store did not answer");
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
                Err(e) if e.step == "store" => return done,
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
        let now = crate::store::now_ms();
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

    /// The slots, in order (a snapshot).
    pub fn slots(&self) -> Arc<Vec<Arc<LoadedFilter>>> {
        self.slots.load_full()
    }

    /// Load `bytes` for `slot` (compile, check against the WIT world, `init` with `config_json`,
    /// one self-test call under the sandbox limits), record it in L3, and switch to it
    /// atomically; a slot not in the chain is appended. Calls in flight finish on the version
    /// they started with; on any failure nothing changes. Returns the new filter and the one it
    /// replaced.
    pub async fn swap(
        &self,
        slot: &str,
        module: &str,
        bytes: &[u8],
        config_json: String,
        persist: Persist<'_>,
    ) -> Result<Swapped, SwapError> {
        let _one_at_a_time = self.swapping.lock().await;
        self.swap_locked(slot, module, bytes, config_json, persist)
            .await
    }

    /// [`Self::swap`], for callers that hold the swap lock.
    async fn swap_locked(
        &self,
        slot: &str,
        module: &str,
        bytes: &[u8],
        config_json: String,
        persist: Persist<'_>,
    ) -> Result<Swapped, SwapError> {
        let config_for_store = config_json.clone();
        let new = LoadedFilter::load(&self.env, slot, module, bytes, config_json)
            .await
            .map_err(|e| SwapError::new(e.step, e.message))?;
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
            .map_err(|e| SwapError::new("self-test", e.to_string()))?;
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
                    let v = self
                        .store("store")?
                        .store()
                        .insert_module(&row)
                        .await
                        .map_err(|m| SwapError::new("store", m))?;
                    (v, true)
                }
            },
            Persist::Existing(v) => {
                self.store("store")?
                    .store()
                    .activate(slot, v)
                    .await
                    .map_err(|m| SwapError::new("store", m))?;
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

    async fn run(&self, req: &QueryRequest, ctx: RouteContext<'_>) -> Decision {
        let mut group = ctx.group.to_string();
        let narrowed = |g: &str| {
            if g == ctx.group {
                Decision::Pass
            } else {
                Decision::UseGroup(g.to_string())
            }
        };
        // a snapshot: a swap during this call does not change the slots it runs
        let slots = self.slots.load_full();
        for slot in slots.iter() {
            let invalid = |why: String| {
                slot.stats.invalid_decisions.fetch_add(1, Ordering::Relaxed);
                why
            };
            let failure = match slot.route(req, &group).await {
                Ok(Decision::Pass) => continue,
                Ok(Decision::UseGroup(g)) if self.cluster.has_group(&g) => {
                    group = g;
                    continue;
                }
                Ok(Decision::UseGroup(g)) => invalid(format!("chose routing group '{g}', which does not exist")),
                Ok(Decision::RouteTo(name)) => match self.cluster.get(&name) {
                    Some(b) if b.is_routable() && !ctx.exclude.contains(&name) => return Decision::RouteTo(name),
                    Some(_) => invalid(format!(
                        "chose backend '{name}', which is inactive, unhealthy or just refused the query"
                    )),
                    None => invalid(format!("chose backend '{name}', which does not exist")),
                },
                Ok(reject @ Decision::Reject { .. }) => return reject,
                // already counted by the slot (trap, timeout, out of memory)
                Err(e) => e.to_string(),
            };
            tracing::warn!(slot = &*slot.slot, reason = failure, fallback = ?self.on_error, "routing filter failed");
            return match self.on_error {
                FilterErrorPolicy::Native => narrowed(&group),
                FilterErrorPolicy::Reject => Decision::Reject {
                    status: 503,
                    message: format!("routing filter '{}' failed: {failure}", slot.slot),
                },
            };
        }
        narrowed(&group)
    }
}

impl Router for FilterChain {
    fn route<'a>(
        &'a self,
        req: &'a QueryRequest,
        ctx: RouteContext<'a>,
    ) -> BoxFuture<'a, Decision> {
        Box::pin(self.run(req, ctx))
    }

    fn wants_sql_objects(&self) -> bool {
        self.slots.load().iter().any(|s| s.wants_sql_objects())
    }
}
