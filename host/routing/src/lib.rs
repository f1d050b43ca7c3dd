//! Routing of new queries: a [`QueryRequest`] goes through a [`Router`], whose checked [`Route`]
//! [`Routing::choose`] applies to the live cluster state (groups, health, strict or fallback
//! mode), always ending with one routable backend or a [`RouteError`].
//!
//! # Layout
//!
//! | module | one job |
//! | --- | --- |
//! | this file | [`Routing`]: apply a route, fall back to the native router, pick for non-query paths |
//! | [`request`] | [`QueryRequest`] from the headers and body of `POST /v1/statement` |
//! | [`decision`] | a router's raw [`Decision`], checked once into a [`Route`] |
//! | [`router`] | the [`Router`] seam and the native [`LeastLoaded`] router |
//! | [`sql`] | the catalogs, schemas and tables a statement uses |
#![forbid(unsafe_code)]
use std::sync::Arc;

use arc_swap::ArcSwap;
use http::StatusCode;
use sluice_cluster::{Backend, Cluster};
use sluice_config::RoutingConfig;

pub mod decision;
pub mod request;
pub mod router;
pub mod sql;

pub use decision::{Decision, InvalidDecision, Route};
pub use request::{QueryRequest, MAX_QUERY_TEXT};
pub use router::{least_loaded, BoxFuture, LeastLoaded, Priority, RouteContext, Router};

/// Why a new query has no backend.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RouteError {
    /// The client (or a router) named a routing group no backend belongs to.
    #[error("routing group '{0}' does not exist")]
    UnknownGroup(String),
    /// The group exists but none of its backends is active and healthy.
    #[error("no healthy backend in routing group '{0}'")]
    NoHealthyBackend(String),
    /// A router rejected the query on purpose.
    #[error("{message}")]
    Rejected {
        /// HTTP status for the client.
        status: StatusCode,
        /// Message for the client.
        message: String,
    },
}

/// Where a new query goes.
#[derive(Debug, Clone)]
pub struct Choice {
    /// The backend.
    pub backend: Arc<Backend>,
    /// The routing group the query ended up in.
    pub group: String,
    /// Its priority in the gateway's queue, when a filter set one.
    pub priority: Option<i32>,
}

/// Applies a router's route to the cluster.
pub struct Routing {
    cluster: Arc<Cluster>,
    config: ArcSwap<RoutingConfig>,
    router: ArcSwap<Box<dyn Router>>,
}

impl Routing {
    /// Routing over `cluster` with `router` deciding first.
    pub fn new(cluster: Arc<Cluster>, config: RoutingConfig, router: Box<dyn Router>) -> Self {
        Self {
            cluster,
            config: ArcSwap::from_pointee(config),
            router: ArcSwap::from_pointee(router),
        }
    }

    /// Use new routing settings from the next query on (a reload).
    pub fn set_config(&self, config: RoutingConfig) {
        self.config.store(Arc::new(config));
    }

    /// Replace the router (in-flight decisions finish on the old one).
    pub fn set_router(&self, router: Box<dyn Router>) {
        self.router.store(Arc::new(router));
    }

    /// The cluster routed over.
    pub fn cluster(&self) -> &Arc<Cluster> {
        &self.cluster
    }

    /// Whether the current router wants [`QueryRequest::extract_sql_objects`].
    pub fn wants_sql_objects(&self) -> bool {
        self.router.load().wants_sql_objects()
    }

    /// Choose a backend for a new query, skipping `exclude`.
    pub async fn choose(
        &self,
        req: &QueryRequest,
        exclude: &[String],
    ) -> Result<Choice, RouteError> {
        let config = self.config.load_full();
        let mut group = req
            .routing_group
            .clone()
            .unwrap_or_else(|| config.default_group.clone());
        if !self.cluster.has_group(&group) {
            // Trino Gateway's semantics: a group nobody serves is the default group, unless
            // strict groups are asked for
            if config.strict_groups {
                return Err(RouteError::UnknownGroup(group));
            }
            tracing::debug!(
                group,
                fallback = config.default_group.as_str(),
                "unknown routing group; using the default group"
            );
            group = config.default_group.clone();
        }
        let priority = Priority::default();
        let ctx = RouteContext {
            group: &group,
            cluster: &self.cluster,
            exclude,
            priority: &priority,
        };
        let router = self.router.load_full();
        let mut choice = match router.route(req, ctx).await {
            Route::Backend(b) => {
                b.note_routed();
                Choice {
                    group: b.group().to_string(),
                    backend: b,
                    priority: None,
                }
            }
            Route::Group(g) => self.native_pick(g, exclude)?,
            Route::Reject { status, message } => {
                return Err(RouteError::Rejected { status, message })
            }
            Route::Pass => self.native_pick(group, exclude)?,
        };
        choice.priority = priority.get();
        Ok(choice)
    }

    fn native_pick(&self, group: String, exclude: &[String]) -> Result<Choice, RouteError> {
        if let Some(b) = least_loaded(&self.cluster, &group, exclude) {
            b.note_routed();
            return Ok(Choice {
                backend: b,
                group,
                priority: None,
            });
        }
        let config = self.config.load();
        let default = &config.default_group;
        if config.strict_groups || &group == default {
            return Err(RouteError::NoHealthyBackend(group));
        }
        match least_loaded(&self.cluster, default, exclude) {
            Some(b) => {
                tracing::warn!(
                    group,
                    fallback = default.as_str(),
                    "no healthy backend in group; falling back to the default group"
                );
                b.note_routed();
                Ok(Choice {
                    backend: b,
                    group: default.clone(),
                    priority: None,
                })
            }
            None => Err(RouteError::NoHealthyBackend(group)),
        }
    }

    /// A backend for requests that belong to no query (`/v1/info`, `/ui` assets …): the
    /// least-loaded routable backend of the default group, else of any group.
    pub fn choose_for_other(&self) -> Result<Arc<Backend>, RouteError> {
        let config = self.config.load();
        if let Some(b) = least_loaded(&self.cluster, &config.default_group, &[]) {
            return Ok(b);
        }
        self.cluster
            .groups()
            .iter()
            .find_map(|g| least_loaded(&self.cluster, g, &[]))
            .ok_or_else(|| RouteError::NoHealthyBackend(config.default_group.clone()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use sluice_cluster::{BackendStatus, Health};
    use sluice_config::{BackendConfig, StatsSource};

    fn backend(name: &str, group: &str) -> BackendConfig {
        BackendConfig::new(name, group, "http://127.0.0.1:1")
    }

    fn set(cluster: &Cluster, name: &str, health: Health, running: u32, queued: u32) {
        cluster.get(name).unwrap().publish(BackendStatus {
            counted: true,
            health,
            running_queries: running,
            queued_queries: queued,
            user_queued: Default::default(),
            reason: None,
            checked_at: None,
        });
    }

    fn routing(strict: bool) -> Routing {
        let mut inactive = backend("etl-off", "etl");
        inactive.active = false;
        let cluster = Arc::new(Cluster::new(
            &[
                backend("adhoc-1", "adhoc"),
                backend("adhoc-2", "adhoc"),
                backend("etl-1", "etl"),
                inactive,
            ],
            StatsSource::InfoOnly,
        ));
        for name in ["adhoc-1", "adhoc-2", "etl-1", "etl-off"] {
            set(&cluster, name, Health::Healthy, 0, 0);
        }
        let config = RoutingConfig {
            default_group: "adhoc".into(),
            strict_groups: strict,
            ..RoutingConfig::default()
        };
        Routing::new(cluster, config, Box::new(LeastLoaded))
    }

    fn req(group: Option<&str>) -> QueryRequest {
        QueryRequest {
            routing_group: group.map(String::from),
            ..Default::default()
        }
    }

    #[tokio::test]
    async fn header_group_and_default_group() {
        let r = routing(false);
        assert_eq!(
            r.choose(&req(Some("etl")), &[])
                .await
                .unwrap()
                .backend
                .name(),
            "etl-1"
        );
        assert_eq!(r.choose(&req(None), &[]).await.unwrap().group, "adhoc");
    }

    #[tokio::test]
    async fn an_unknown_group_falls_back_to_the_default_unless_strict() {
        let c = routing(false)
            .choose(&req(Some("nope")), &[])
            .await
            .unwrap();
        assert_eq!(c.group, "adhoc");
        assert!(c.backend.name().starts_with("adhoc-"));
        let err = routing(true)
            .choose(&req(Some("nope")), &[])
            .await
            .unwrap_err();
        assert!(matches!(err, RouteError::UnknownGroup(ref g) if g == "nope"));
    }

    #[tokio::test]
    async fn least_loaded_wins_and_routed_queries_count_until_the_next_poll() {
        let r = routing(false);
        set(r.cluster(), "adhoc-1", Health::Healthy, 5, 0);
        set(r.cluster(), "adhoc-2", Health::Healthy, 2, 1);
        // adhoc-2 has 3, adhoc-1 has 5: the next three go to adhoc-2, then they tie.
        for _ in 0..2 {
            assert_eq!(
                r.choose(&req(None), &[]).await.unwrap().backend.name(),
                "adhoc-2"
            );
        }
        let mut seen = std::collections::BTreeMap::new();
        for _ in 0..20 {
            *seen
                .entry(
                    r.choose(&req(None), &[])
                        .await
                        .unwrap()
                        .backend
                        .name()
                        .to_string(),
                )
                .or_insert(0) += 1;
        }
        assert!(seen.len() == 2, "a burst spreads over both: {seen:?}");
    }

    #[tokio::test]
    async fn unhealthy_pending_inactive_and_excluded_are_never_chosen() {
        let r = routing(true);
        set(r.cluster(), "adhoc-1", Health::Unhealthy, 0, 0);
        set(r.cluster(), "adhoc-2", Health::Pending, 0, 0);
        let err = r.choose(&req(None), &[]).await.unwrap_err();
        assert!(matches!(err, RouteError::NoHealthyBackend(ref g) if g == "adhoc"));

        let r = routing(true);
        for _ in 0..50 {
            let c = r
                .choose(&req(None), &["adhoc-1".to_string()])
                .await
                .unwrap();
            assert_eq!(c.backend.name(), "adhoc-2");
        }
        set(r.cluster(), "etl-1", Health::Unhealthy, 0, 0);
        // etl-off is healthy but inactive
        let err = r.choose(&req(Some("etl")), &[]).await.unwrap_err();
        assert!(matches!(err, RouteError::NoHealthyBackend(_)));
        assert!(err.to_string().contains("'etl'"));
    }

    #[tokio::test]
    async fn empty_group_falls_back_to_default_unless_strict() {
        let r = routing(false);
        set(r.cluster(), "etl-1", Health::Unhealthy, 0, 0);
        let c = r.choose(&req(Some("etl")), &[]).await.unwrap();
        assert_eq!(c.group, "adhoc");
        assert!(c.backend.name().starts_with("adhoc-"));
    }

    /// A router that always decides the same, checked like a filter's decision.
    struct Fixed(Decision);
    impl Router for Fixed {
        fn route<'a>(&'a self, _: &'a QueryRequest, ctx: RouteContext<'a>) -> BoxFuture<'a, Route> {
            let route = self.0.clone().check(ctx.cluster, ctx.exclude);
            Box::pin(std::future::ready(route.unwrap_or(Route::Pass)))
        }
    }

    #[tokio::test]
    async fn router_decisions_are_applied_and_checked() {
        let r = routing(false);
        r.set_router(Box::new(Fixed(Decision::UseGroup("etl".into()))));
        assert_eq!(
            r.choose(&req(None), &[]).await.unwrap().backend.name(),
            "etl-1"
        );

        r.set_router(Box::new(Fixed(Decision::RouteTo("etl-off".into()))));
        let c = r.choose(&req(None), &[]).await.unwrap();
        assert!(
            c.backend.name().starts_with("adhoc-"),
            "inactive pick is overruled"
        );

        r.set_router(Box::new(Fixed(Decision::Reject {
            status: 429,
            message: "slow down".into(),
        })));
        let err = r.choose(&req(None), &[]).await.unwrap_err();
        assert!(
            matches!(err, RouteError::Rejected { status, .. } if status == StatusCode::TOO_MANY_REQUESTS)
        );
    }
}
