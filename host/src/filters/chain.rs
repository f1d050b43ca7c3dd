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

/// An ordered list of loaded filters, swappable while it serves.
pub struct FilterChain {
    slots: ArcSwap<Vec<Arc<LoadedFilter>>>,
    on_error: FilterErrorPolicy,
    cluster: Arc<Cluster>,
    env: LoadContext,
    /// Serialises swaps (calls never wait on it).
    swapping: tokio::sync::Mutex<()>,
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
    ) -> Self {
        Self {
            slots: ArcSwap::from_pointee(slots),
            on_error,
            cluster,
            env,
            swapping: tokio::sync::Mutex::new(()),
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
    ) -> Result<(Arc<LoadedFilter>, Option<Arc<LoadedFilter>>), SwapError> {
        let _one_at_a_time = self.swapping.lock().await;
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
