//! The filter chain: slots run in order; `use-group` narrows the group and goes on, `route-to`
//! and `reject` end the chain, `pass` defers. A slot that fails (trap, timeout, out of memory,
//! a backend that cannot take the query) ends the chain with the configured fallback, and is
//! counted; the gateway keeps serving.
use std::sync::atomic::Ordering;
use std::sync::Arc;

use super::slot::LoadedFilter;
use crate::cluster::Cluster;
use crate::config::FilterErrorPolicy;
use crate::routing::{BoxFuture, Decision, QueryRequest, RouteContext, Router};

/// An ordered list of loaded filters.
pub struct FilterChain {
    slots: Vec<Arc<LoadedFilter>>,
    on_error: FilterErrorPolicy,
    cluster: Arc<Cluster>,
}

impl FilterChain {
    /// A chain of `slots`.
    pub fn new(
        slots: Vec<Arc<LoadedFilter>>,
        on_error: FilterErrorPolicy,
        cluster: Arc<Cluster>,
    ) -> Self {
        Self {
            slots,
            on_error,
            cluster,
        }
    }

    /// The slots, in order.
    pub fn slots(&self) -> &[Arc<LoadedFilter>] {
        &self.slots
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
        for slot in &self.slots {
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
        self.slots.iter().any(|s| s.wants_sql_objects())
    }
}
