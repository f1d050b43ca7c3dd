//! The routing seam: a [`Router`] answers a [`Route`] for a new query. The native
//! [`LeastLoaded`] router is one; the Wasm filter chain is the other.
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use rand::RngExt;
use sluice_cluster::{Backend, Cluster};

use crate::{QueryRequest, Route};

/// A boxed future, for the object-safe [`Router`] trait.
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// What a router sees besides the request.
pub struct RouteContext<'a> {
    /// The routing group the query is in so far.
    pub group: &'a str,
    /// The backends and their live state.
    pub cluster: &'a Cluster,
    /// Backends not to choose (they refused this very query a moment ago).
    pub exclude: &'a [String],
    /// The query's priority in the gateway's queue, if a router sets one.
    pub priority: &'a Priority,
}

/// A query's queue priority as routers set it (unset until one does; the last setting wins).
#[derive(Debug)]
pub struct Priority(std::sync::atomic::AtomicI64);

impl Default for Priority {
    fn default() -> Self {
        Self(std::sync::atomic::AtomicI64::new(i64::MIN))
    }
}

impl Priority {
    /// Set it.
    pub fn set(&self, p: i32) {
        self.0
            .store(i64::from(p), std::sync::atomic::Ordering::Relaxed);
    }

    /// What was set, if anything.
    pub fn get(&self) -> Option<i32> {
        let v = self.0.load(std::sync::atomic::Ordering::Relaxed);
        i32::try_from(v).ok()
    }
}

/// The routing seam: a checked decision for a new query.
pub trait Router: Send + Sync {
    /// Decide where `req` goes.
    fn route<'a>(&'a self, req: &'a QueryRequest, ctx: RouteContext<'a>) -> BoxFuture<'a, Route>;

    /// Whether this router reads the catalogs/schemas/tables of the query (parsing costs time,
    /// so the proxy only parses the SQL for routers that look at it).
    fn wants_sql_objects(&self) -> bool {
        false
    }
}

impl<R: Router + ?Sized> Router for Arc<R> {
    fn route<'a>(&'a self, req: &'a QueryRequest, ctx: RouteContext<'a>) -> BoxFuture<'a, Route> {
        (**self).route(req, ctx)
    }
    fn wants_sql_objects(&self) -> bool {
        (**self).wants_sql_objects()
    }
}

/// Native router: the least-loaded routable backend of the group (running + queued as last
/// polled, plus queries sent since); ties are broken at random so bursts spread.
#[derive(Debug, Default)]
pub struct LeastLoaded;

impl Router for LeastLoaded {
    fn route<'a>(&'a self, _req: &'a QueryRequest, ctx: RouteContext<'a>) -> BoxFuture<'a, Route> {
        let route = match least_loaded(ctx.cluster, ctx.group, ctx.exclude) {
            Some(b) => Route::Backend(b),
            None => Route::Pass,
        };
        Box::pin(std::future::ready(route))
    }
}

/// The least-loaded routable backend of `group`, not in `exclude`.
pub fn least_loaded(cluster: &Cluster, group: &str, exclude: &[String]) -> Option<Arc<Backend>> {
    let backends = cluster.backends();
    // read each estimate once: other requests update them concurrently
    let candidates: Vec<(u64, &Arc<Backend>)> = backends
        .iter()
        .filter(|b| b.group() == group && b.is_routable())
        .filter(|b| !exclude.iter().any(|e| e == b.name()))
        .map(|b| (b.load_estimate(), b))
        .collect();
    let min = candidates.iter().map(|(load, _)| *load).min()?;
    let best: Vec<&Arc<Backend>> = candidates
        .iter()
        .filter(|(load, _)| *load == min)
        .map(|(_, b)| *b)
        .collect();
    let pick = if best.len() == 1 {
        0
    } else {
        rand::rng().random_range(0..best.len())
    };
    Some(Arc::clone(best[pick]))
}
