//! [`Gateway::start_from`](crate::Gateway::start_from) in named phases, each building on the one
//! before, in the dependency order of the crates:
//!
//! 1. [`Start::foundation`]: warnings about the file, the cluster, the metrics registry, TLS;
//! 2. [`Start::state`]: L2, L3 (beside Trino Gateway's database when configured), the backends
//!    and what follows them;
//! 3. [`Start::lookup`]: the cache tiers, the owner search, the query locator;
//! 4. [`Start::policy`]: the filter chain, its fleet and watched directory, the external routing
//!    service, routing;
//! 5. [`Start::data_path`]: the queue and the proxy;
//! 6. `Start::control_plane` (in `control_plane`): tokens, the reloader, the gateway's metrics,
//!    the admin API;
//! 7. [`Start::serve`]: the first health round, then the listeners.
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use arc_swap::ArcSwap;
use prometheus_client::registry::Registry;
use sluice_admin::Admin;
use sluice_backends::{Backends, SyncOptions};
use sluice_cache::l2_redis::L2;
use sluice_cache::metrics::CacheMetrics;
use sluice_cache::search::BackendSearch;
use sluice_cache::{QueryLocator, TieredCache};
use sluice_cluster::health::HealthPoller;
use sluice_cluster::Cluster;
use sluice_config::Config;
use sluice_filters::cache::FilterCache;
use sluice_filters::fleet::{Fleet, FleetOptions};
use sluice_filters::FilterChain;
use sluice_proxy::Proxy;
use sluice_queue::Queue;
use sluice_routing::{LeastLoaded, Router, Routing};
use sluice_store::L3;
use sluice_trino_gateway::external::{External, ExternalStats};
use sluice_trino_gateway::TrinoGateway;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::{check, listeners, tls, StartError};

/// What every phase shares.
pub(crate) struct Start {
    pub(crate) config: Config,
    pub(crate) proxy_addr: SocketAddr,
    pub(crate) tasks: TaskTracker,
    pub(crate) stop: CancellationToken,
    pub(crate) ready: Arc<AtomicBool>,
    pub(crate) registry: Registry,
}

/// Phase 1's parts.
pub(crate) struct Foundation {
    pub(crate) cluster: Arc<Cluster>,
    pub(crate) cache_metrics: CacheMetrics,
    pub(crate) backend_tls: Option<sluice_http::tls::Outbound>,
    pub(crate) proxy_tls: Option<sluice_http::tls_server::ServerTls>,
    pub(crate) admin_tls: Option<sluice_http::tls_server::ServerTls>,
}

/// Phase 2's parts.
pub(crate) struct State {
    pub(crate) l2: Option<Arc<L2>>,
    pub(crate) l3: Option<Arc<L3>>,
    pub(crate) backends: Arc<Backends>,
    pub(crate) trino_gateway: TrinoGateway,
}

/// Phase 4's parts.
pub(crate) struct Policy {
    pub(crate) chain: Option<Arc<FilterChain>>,
    pub(crate) fleet: Option<Arc<Fleet>>,
    pub(crate) routing: Arc<Routing>,
    pub(crate) external: Option<Arc<ExternalStats>>,
}

/// Phase 5's parts.
pub(crate) struct DataPath {
    pub(crate) queue: Arc<Queue>,
    pub(crate) proxy: Arc<Proxy>,
}

impl Start {
    pub(crate) fn new(config: Config, proxy_addr: SocketAddr) -> Start {
        Start {
            config,
            proxy_addr,
            tasks: TaskTracker::new(),
            stop: CancellationToken::new(),
            ready: Arc::new(AtomicBool::new(false)),
            registry: Registry::default(),
        }
    }

    /// 1. Warnings about the file, the cluster, the metrics registry, TLS.
    pub(crate) fn foundation(&mut self) -> Result<Foundation, StartError> {
        let config = &self.config;
        for warning in sluice_filters::lint::routing_rule_warnings(config) {
            tracing::warn!("{warning}");
        }
        for b in config.backends.iter().filter(|b| b.max_queries.is_some()) {
            if b.stats.unwrap_or(config.health.stats) == sluice_config::StatsSource::InfoOnly {
                tracing::warn!(
                    backend = b.name,
                    "max_queries with stats: info_only: the cluster reports no counts, so a query whose end Sluice does not see (its client went away) keeps its slot; use stats: ui_api or metrics"
                );
            }
        }
        let cluster = Arc::new(Cluster::new(&config.backends, config.health.stats));
        let cache_metrics = CacheMetrics::default();
        cache_metrics.register(&mut self.registry);
        let tls_metrics = tls::TlsMetrics::default();
        tls_metrics.register(&mut self.registry);
        let listener_tls =
            |which, file| tls::listener(which, file, &tls_metrics, &self.tasks, self.stop.clone());
        let proxy_tls = listener_tls(tls::Listener::Proxy, config.proxy.tls.as_ref())?;
        let admin_tls = listener_tls(tls::Listener::Admin, config.admin.tls.as_ref())?;
        Ok(Foundation {
            cluster,
            cache_metrics,
            backend_tls: Some(tls::backends(&config.backend_tls)?),
            proxy_tls,
            admin_tls,
        })
    }

    /// 2. L2, L3 (beside Trino Gateway's database when configured), the backends and what
    ///    follows them.
    pub(crate) fn state(&self, f: &Foundation) -> Result<State, StartError> {
        let (config, tasks, stop) = (&self.config, &self.tasks, &self.stop);
        let trino_gateway = TrinoGateway::attach(config)?;
        let l2 = match config.cache.valkey.enabled {
            true => Some(L2::start(&config.cache.valkey, tasks, stop.clone())?),
            false => None,
        };
        let l3 = match config.store.url.is_empty() {
            true => None,
            false => {
                check::sqlite_dir_exists(&config.store.url)?;
                let mirror = trino_gateway.store_mirror();
                Some(L3::start_beside(
                    &config.store,
                    mirror,
                    tasks,
                    stop.clone(),
                )?)
            }
        };
        let backends = Backends::start(
            f.cluster.clone(),
            config.backends.clone(),
            l3.clone(),
            l2.clone(),
            SyncOptions {
                instance_id: config.instance_id(self.proxy_addr.port()),
                channel: config.store.backends_channel.clone(),
                poll_interval: Duration::from_millis(config.store.backends_poll_interval_ms),
            },
            tasks,
            stop.clone(),
        );
        trino_gateway.follow_backends(&backends, tasks, stop.clone());
        Ok(State {
            l2,
            l3,
            backends,
            trino_gateway,
        })
    }

    /// 3. The cache tiers, the owner search, the query locator.
    pub(crate) fn lookup(
        &self,
        f: &Foundation,
        s: &State,
    ) -> (Arc<TieredCache>, Arc<QueryLocator>) {
        let config = &self.config;
        let tiers = Arc::new(
            TieredCache::new(&config.cache, s.l2.clone(), f.cache_metrics.clone())
                .with_l3(s.l3.clone()),
        );
        tiers.follow_deletes(&self.tasks, self.stop.clone());
        let search = config.cache.search.enabled.then(|| {
            BackendSearch::new(
                f.cluster.clone(),
                Duration::from_millis(config.cache.search.timeout_ms),
                search_credentials(config),
                f.backend_tls.clone(),
            )
        });
        let locator = Arc::new(QueryLocator::new(&config.cache, tiers.clone(), search));
        (tiers, locator)
    }

    /// 4. The filter chain, its fleet and watched directory, the external routing service,
    ///    routing.
    pub(crate) async fn policy(
        &self,
        f: &Foundation,
        s: &State,
        tiers: &Arc<TieredCache>,
    ) -> Result<Policy, StartError> {
        let (config, tasks, stop) = (&self.config, &self.tasks, &self.stop);
        let filter_cache = Arc::new(FilterCache::new(tiers.clone(), s.l2.is_some()));
        let chain = match config.routing.chain.is_empty() {
            true => None,
            false => Some(Arc::new(
                sluice_filters::load_chain(config, f.cluster.clone(), &filter_cache, s.l3.clone())
                    .await?,
            )),
        };
        // follow L3 (after a restart, and changes made by other instances) and announce changes
        let fleet = match (&chain, &s.l3) {
            (Some(chain), Some(l3)) => Some(Fleet::start(
                FleetOptions {
                    instance_id: config.instance_id(self.proxy_addr.port()),
                    poll_interval: (config.filters.poll_interval_ms > 0)
                        .then(|| Duration::from_millis(config.filters.poll_interval_ms)),
                    channel: config.filters.channel.clone(),
                },
                chain.clone(),
                l3.clone(),
                s.l2.clone(),
                tasks,
                stop.clone(),
            )),
            _ => None,
        };
        if let (Some(chain), Some(dir)) = (&chain, config.filters.watch_dir.as_deref()) {
            let dir = std::path::Path::new(dir);
            sluice_filters::watch::start(dir, chain.clone(), tasks, stop.clone())?;
        }
        let mut router: Box<dyn Router> = match &chain {
            Some(c) => Box::new(c.clone()),
            None => Box::new(LeastLoaded),
        };
        let mut external = None;
        if let Some(service) = &config.routing.external {
            let service = External::new(service, router, f.backend_tls.clone())
                .map_err(StartError::External)?;
            external = Some(service.stats());
            router = Box::new(service);
        }
        let routing = Arc::new(Routing::new(
            f.cluster.clone(),
            config.routing.clone(),
            router,
        ));
        Ok(Policy {
            chain,
            fleet,
            routing,
            external,
        })
    }

    /// 5. The queue and the proxy.
    pub(crate) async fn data_path(
        &mut self,
        f: &Foundation,
        s: &State,
        locator: &Arc<QueryLocator>,
        p: &Policy,
    ) -> Result<DataPath, StartError> {
        let config = &self.config;
        let request_metrics = sluice_proxy::metrics::RequestMetrics::default();
        request_metrics.register(&mut self.registry);
        let queue = Arc::new(
            Queue::new(
                config.queue.clone(),
                f.cluster.clone(),
                s.l3.clone(),
                Duration::from_millis((config.store.timeout_ms * 4).max(2000)),
            )
            .await?,
        );
        queue.metrics().register(&mut self.registry);
        sluice_queue::sweep::start(
            queue.clone(),
            Duration::from_millis(config.proxy.response_timeout_ms + 5000),
            &self.tasks,
            self.stop.clone(),
        );
        let proxy = Arc::new(
            Proxy::new(
                p.routing.clone(),
                locator.clone(),
                config.proxy.clone(),
                f.backend_tls.clone(),
            )
            .counting_in(request_metrics)
            .with_queue(queue.clone()),
        );
        Ok(DataPath { queue, proxy })
    }

    /// 7. The first health round (after the store's backend list, when there is a store), then
    ///    the listeners. Where HTTPS beside the plain listener is bound, if it is.
    pub(crate) async fn serve(
        &self,
        f: Foundation,
        s: &State,
        health: Arc<ArcSwap<sluice_config::HealthConfig>>,
        bound: listeners::Bound,
        proxy: Arc<Proxy>,
        admin: Arc<Admin>,
    ) -> Result<Option<SocketAddr>, StartError> {
        let poller = HealthPoller::following(f.cluster, health, f.backend_tls);
        let (ready_flag, poll_stop) = (self.ready.clone(), self.stop.clone());
        let backends = s.backends.clone();
        let sync_limit = Duration::from_millis((self.config.store.timeout_ms * 4).max(2000));
        self.tasks.spawn(async move {
            tokio::select! {
                _ = async {
                    if !backends.wait_synced(sync_limit).await {
                        tracing::warn!("the store did not give the backend list in time; starting with the configuration file's");
                    }
                    poller.poll_once().await
                } => {}
                _ = poll_stop.cancelled() => return,
            }
            ready_flag.store(true, Ordering::Release);
            poller.run(poll_stop).await;
        });
        listeners::serve(
            &self.config,
            bound,
            (f.proxy_tls, f.admin_tls),
            proxy,
            admin,
            &self.tasks,
            &self.stop,
        )
        .await
    }
}

/// The owner search's credentials: its own when any is set, else the health checks'.
fn search_credentials(config: &Config) -> sluice_cluster::Credentials {
    let s = &config.cache.search;
    let own = [&s.user, &s.password, &s.bearer_token]
        .iter()
        .any(|v| v.as_deref().is_some_and(|v| !v.is_empty()));
    match own {
        true => sluice_cluster::Credentials::new(
            s.user.as_deref().unwrap_or(&config.health.user),
            s.password.as_deref(),
            s.bearer_token.as_deref(),
        ),
        false => sluice_cluster::health::credentials(&config.health),
    }
}
