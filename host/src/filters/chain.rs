//! The filter chain: slots run in order; `use-group` narrows the group and goes on, `route-to`
//! and `reject` end the chain, `pass` defers. A slot that fails (trap, timeout, out of memory,
//! a backend that cannot take the query) ends the chain with the configured fallback, and is
//! counted; the gateway keeps serving.
use std::sync::atomic::Ordering;
use std::sync::Arc;

use arc_swap::ArcSwap;

use super::slot::{LoadContext, LoadedFilter};
use crate::cluster::Cluster;
use crate::config::FilterErrorPolicy;
use crate::routing::{BoxFuture, Decision, QueryRequest, RouteContext, Router};
use crate::store::{NewModule, L3};

/// An ordered list of loaded filters, swappable while it serves.
pub struct FilterChain {
    slots: ArcSwap<Vec<Arc<LoadedFilter>>>,
    on_error: FilterErrorPolicy,
    cluster: Arc<Cluster>,
    env: LoadContext,
    /// Serialises swaps (calls never wait on it).
    swapping: tokio::sync::Mutex<()>,
    /// Where accepted versions are kept (L3), if configured.
    store: Option<Arc<L3>>,
}

/// What a swap records in L3.
pub enum Persist<'a> {
    /// A new upload: stored as the slot's next version, and active.
    New { created_by: &'a str },
    /// A stored version made active again.
    Existing(i64),
}

/// A swap that did not happen: which step failed, and why. The running version is untouched.
#[derive(Debug, thiserror::Error)]
#[error("{step} failed: {message}")]
pub struct SwapError {
    /// `compile`, `link`, `init` or `self-test`.
    pub step: &'static str,
    /// What went wrong.
    pub message: String,
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
        }
    }

    fn store(&self, step: &'static str) -> Result<&Arc<L3>, SwapError> {
        match &self.store {
            Some(l3) if l3.is_healthy() => Ok(l3),
            Some(_) => Err(SwapError {
                step,
                message: "the store (L3) is down".into(),
            }),
            None => Err(SwapError {
                step,
                message: "no store is configured (store.url is empty)".into(),
            }),
        }
    }

    /// The stored versions of `slot`: (version, sha256, active), oldest first.
    pub async fn versions(&self, slot: &str) -> Result<Vec<(i64, String, bool)>, SwapError> {
        let l3 = self.store("store")?;
        l3.store()
            .versions(slot)
            .await
            .map_err(|message| SwapError {
                step: "store",
                message,
            })
    }

    /// Make stored `version` of `slot` active again, through the same pipeline as an upload.
    pub async fn activate(
        &self,
        slot: &str,
        version: i64,
    ) -> Result<(Arc<LoadedFilter>, Option<Arc<LoadedFilter>>), SwapError> {
        let l3 = self.store("store")?;
        let row = l3
            .store()
            .module(slot, version)
            .await
            .map_err(|message| SwapError {
                step: "store",
                message,
            })?
            .ok_or_else(|| SwapError {
                step: "version",
                message: format!("slot '{slot}' has no version {version}"),
            })?;
        self.swap(
            slot,
            &format!("store:{slot}@{version}"),
            &row.bytes,
            row.config,
            Persist::Existing(version),
        )
        .await
    }

    /// Make every slot run the version L3 marks active (after a restart, or a change made by
    /// another instance); returns the slots switched. A version that fails to load is logged and
    /// the running one kept.
    pub async fn catch_up(&self) -> Vec<String> {
        let mut switched = Vec::new();
        for f in self.slots().iter() {
            let Ok(versions) = self.versions(&f.slot).await else {
                return switched;
            };
            let Some((version, sha, _)) = versions.iter().find(|(_, _, active)| *active) else {
                continue;
            };
            if *sha == *f.sha256 && f.version.load(Ordering::Relaxed) == *version {
                continue;
            }
            match self.activate(&f.slot, *version).await {
                Ok(_) => switched.push(f.slot.to_string()),
                Err(e) => {
                    tracing::warn!(slot = &*f.slot, version, error = %e, "could not load the active stored version; keeping the running one")
                }
            }
        }
        switched
    }

    /// Go back to the version before the active one.
    pub async fn rollback(
        &self,
        slot: &str,
    ) -> Result<(Arc<LoadedFilter>, Option<Arc<LoadedFilter>>), SwapError> {
        let versions = self.versions(slot).await?;
        let active = versions.iter().find(|(_, _, a)| *a).map(|(v, _, _)| *v);
        let previous = match active {
            Some(a) => versions.iter().map(|(v, _, _)| *v).filter(|v| *v < a).max(),
            None => None,
        };
        match previous {
            Some(p) => self.activate(slot, p).await,
            None => Err(SwapError {
                step: "version",
                message: format!("slot '{slot}' has no stored version before the active one"),
            }),
        }
    }

    /// The slots, in order (a snapshot).
    pub fn slots(&self) -> Arc<Vec<Arc<LoadedFilter>>> {
        self.slots.load_full()
    }

    /// Load `bytes` for `slot` (compile, check against the WIT world, `init` with `config_json`,
    /// one self-test call under the sandbox limits) and switch to it atomically; a slot not in the
    /// chain is appended. Calls in flight finish on the version they started with; on any failure
    /// nothing changes. Returns the new filter and the one it replaced.
    pub async fn swap(
        &self,
        slot: &str,
        module: &str,
        bytes: &[u8],
        config_json: String,
        persist: Persist<'_>,
    ) -> Result<(Arc<LoadedFilter>, Option<Arc<LoadedFilter>>), SwapError> {
        let _one_at_a_time = self.swapping.lock().await;
        let config_for_store = config_json.clone();
        let new = LoadedFilter::load(&self.env, slot, module, bytes, config_json)
            .await
            .map_err(|e| SwapError {
                step: e.step,
                message: e.message,
            })?;
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
        new.route(&probe, &group).await.map_err(|e| SwapError {
            step: "self-test",
            message: e.to_string(),
        })?;
        // record it before it serves, so what serves can always be found again after a restart
        let version = match persist {
            Persist::New { created_by } => match &self.store {
                None => 0,
                Some(_) => {
                    let l3 = self.store("store")?;
                    let row = NewModule {
                        slot,
                        sha256: &new.sha256,
                        bytes,
                        config: &config_for_store,
                        created_by,
                    };
                    l3.store()
                        .insert_module(&row)
                        .await
                        .map_err(|message| SwapError {
                            step: "store",
                            message,
                        })?
                }
            },
            Persist::Existing(v) => {
                let l3 = self.store("store")?;
                l3.store()
                    .activate(slot, v)
                    .await
                    .map_err(|message| SwapError {
                        step: "store",
                        message,
                    })?;
                v
            }
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
        // swaps are serialised by the lock above, so a plain store cannot lose another swap
        self.slots.store(Arc::new(next));
        tracing::info!(
            slot,
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
