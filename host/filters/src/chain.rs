//! The filter chain: slots run in order; `use-group` narrows the group and goes on, `route-to`
//! and `reject` end the chain, `pass` defers. A slot that fails (trap, timeout, out of memory,
//! a decision that cannot be followed) ends the chain with the configured fallback, and is
//! counted; the gateway keeps serving. Changes to the chain are in [`crate::swap`] and
//! [`crate::follow`].
use std::collections::HashMap;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};

use arc_swap::ArcSwap;
use sluice_cluster::Cluster;
use sluice_config::FilterErrorPolicy;
use sluice_routing::{BoxFuture, QueryRequest, Route, RouteContext, Router};
use sluice_store::L3;
use tokio::sync::watch;
use tracing::Instrument;

use crate::slot::{LoadContext, LoadedFilter};

/// An ordered list of loaded filters, swappable while it serves.
pub struct FilterChain {
    pub(crate) slots: ArcSwap<Vec<Arc<LoadedFilter>>>,
    on_error: FilterErrorPolicy,
    pub(crate) cluster: Arc<Cluster>,
    pub(crate) env: LoadContext,
    /// Serialises changes (calls never wait on it).
    pub(crate) swapping: tokio::sync::Mutex<()>,
    /// Where accepted versions are kept (L3), if configured.
    pub(crate) store: Option<Arc<L3>>,
    /// Stored versions this instance could not load: slot → (version, sha256, why). Not retried
    /// until the slot's active version changes.
    pub(crate) failed: Mutex<HashMap<String, (i64, String, String)>>,
    /// Bumped on every change: (changes made here, all changes).
    changes: watch::Sender<(u64, u64)>,
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

    pub(crate) fn changed(&self, here: bool) {
        self.changes
            .send_modify(|(local, all)| (*local, *all) = (*local + here as u64, *all + 1));
    }

    /// The store, if one is configured.
    pub fn l3(&self) -> Option<&Arc<L3>> {
        self.store.as_ref()
    }

    /// The slots, in order (a snapshot).
    pub fn slots(&self) -> Arc<Vec<Arc<LoadedFilter>>> {
        self.slots.load_full()
    }

    /// The slot names, in chain order.
    pub fn order(&self) -> Vec<String> {
        self.slots().iter().map(|f| f.slot.to_string()).collect()
    }

    async fn run(&self, req: &QueryRequest, ctx: RouteContext<'_>) -> Route {
        let mut group = ctx.group.to_string();
        let narrowed = |g: String| {
            if g == ctx.group {
                Route::Pass
            } else {
                Route::Group(g)
            }
        };
        // a snapshot: a swap during this call does not change the slots it runs
        let slots = self.slots.load_full();
        for slot in slots.iter() {
            let count = |c: &std::sync::atomic::AtomicU64| c.fetch_add(1, Ordering::Relaxed);
            let span = tracing::info_span!(
                target: sluice_telemetry::TARGET,
                "sluice.filter",
                sluice.slot = &*slot.slot,
                sluice.group = group.as_str(),
            );
            let decided = slot
                .route_and_prioritise(req, &group)
                .instrument(span)
                .await;
            let failure = match decided {
                Ok((decision, priority)) => {
                    if let Some(p) = priority {
                        ctx.priority.set(p);
                    }
                    match decision.check(&self.cluster, ctx.exclude) {
                        Ok(Route::Pass) => {
                            count(&slot.stats.passed);
                            continue;
                        }
                        Ok(Route::Group(g)) => {
                            count(&slot.stats.chose_group);
                            group = g;
                            continue;
                        }
                        Ok(route) => {
                            match route {
                                Route::Reject { .. } => count(&slot.stats.rejected),
                                _ => count(&slot.stats.chose_backend),
                            };
                            return route;
                        }
                        Err(invalid) => {
                            slot.stats.invalid_decisions.fetch_add(1, Ordering::Relaxed);
                            invalid.to_string()
                        }
                    }
                }
                // already counted by the slot (trap, timeout, out of memory)
                Err(e) => e.to_string(),
            };
            count(&slot.stats.fallbacks);
            tracing::warn!(slot = &*slot.slot, reason = failure, fallback = ?self.on_error, "routing filter failed");
            return match self.on_error {
                FilterErrorPolicy::Native => narrowed(group),
                FilterErrorPolicy::Reject => Route::Reject {
                    status: http::StatusCode::SERVICE_UNAVAILABLE,
                    message: format!("routing filter '{}' failed: {failure}", slot.slot),
                },
            };
        }
        narrowed(group)
    }
}

impl Router for FilterChain {
    fn route<'a>(&'a self, req: &'a QueryRequest, ctx: RouteContext<'a>) -> BoxFuture<'a, Route> {
        Box::pin(self.run(req, ctx))
    }

    fn wants_sql_objects(&self) -> bool {
        self.slots.load().iter().any(|s| s.wants_sql_objects())
    }
}
