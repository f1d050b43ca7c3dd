//! Wiring: [`Gateway::start`] takes a configuration and two bound listeners, builds every part —
//! cluster, health poller, cache tiers, store, filter chain, fleet follow, proxy, admin — starts
//! their tasks, and [`Gateway::shutdown`] stops them all and waits for every one.
//!
//! # Layout
//!
//! | module | one job |
//! | --- | --- |
//! | this file | [`Gateway::start`]: the parts, built in the dependency order of the crates below |
//! | `listeners` | the client and admin listeners: plain, HTTPS, beside each other; shared or per core |
//! | [`tls`] | listener certificates (watched), backend trust, handshake failures metric |
//! | [`metrics`] | the whole-gateway metrics read at scrape time |
//! | [`reload`] | re-reading the configuration file |
//! | [`check`] | `sluice check-config` |
//!
//! Every background task is spawned on one `TaskTracker` and ends when one `CancellationToken`
//! is cancelled; shutdown cancels it, waits for the listeners to drain (up to
//! `proxy.shutdown_grace_ms`), waits for every task, then writes what L3 still has queued.
#![forbid(unsafe_code)]
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use arc_swap::ArcSwap;
use prometheus_client::registry::Registry;
use sluice_admin::api::ReloadReport;
use sluice_admin::{Admin, Reload};
use sluice_backends::{Backends, SyncOptions};
use sluice_cache::l2_redis::{L2Error, L2};
use sluice_cache::metrics::CacheMetrics;
use sluice_cache::search::BackendSearch;
use sluice_cache::{QueryLocator, TieredCache};
use sluice_cluster::health::HealthPoller;
use sluice_cluster::Cluster;
use sluice_config::Config;
use sluice_filters::cache::FilterCache;
use sluice_filters::fleet::{Fleet, FleetOptions};
use sluice_filters::watch::WatchError;
use sluice_filters::LoadChainError;
use sluice_proxy::Proxy;
use sluice_queue::Queue;
use sluice_routing::{LeastLoaded, Router, Routing};
use sluice_store::{StoreError, L3};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

pub mod check;
mod listeners;
pub mod metrics;
pub mod reload;
pub mod source;
pub mod tls;

pub use source::ConfigSource;

use reload::{ReloadMetrics, Reloader};

/// Why the gateway could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// A listener problem.
    #[error("listener: {0}")]
    Io(#[from] std::io::Error),
    /// An address in the configuration cannot be bound.
    #[error("cannot bind {field} {addr}: {source}")]
    Bind {
        /// The field naming it.
        field: &'static str,
        /// The address.
        addr: SocketAddr,
        /// Why.
        source: std::io::Error,
    },
    /// A routing filter could not be loaded.
    #[error(transparent)]
    Filter(#[from] LoadChainError),
    /// The shared cache tier cannot be set up.
    #[error(transparent)]
    L2(#[from] L2Error),
    /// The store cannot be opened.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The watched directory cannot be watched.
    #[error(transparent)]
    Watch(#[from] WatchError),
    /// TLS files that cannot be used.
    #[error(transparent)]
    Tls(#[from] tls::TlsSetupError),
    /// The external routing service cannot be used.
    #[error("{0}")]
    External(String),
}

/// A running gateway.
pub struct Gateway {
    /// Where the Trino-protocol listener is bound.
    pub proxy_addr: SocketAddr,
    /// Where the admin listener is bound.
    pub admin_addr: SocketAddr,
    /// Where the HTTPS listener beside the plain one is bound (`proxy.tls.listen`).
    pub tls_addr: Option<SocketAddr>,
    stop: CancellationToken,
    tasks: TaskTracker,
    ready: Arc<AtomicBool>,
    l3: Option<Arc<L3>>,
    reloader: Arc<Reloader>,
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

impl Gateway {
    /// Start serving on already-bound listeners, without a file to reload.
    pub async fn start(
        config: Config,
        listener: TcpListener,
        admin_listener: TcpListener,
    ) -> Result<Gateway, StartError> {
        Self::start_from(config, None, listener, admin_listener).await
    }

    /// Start serving on already-bound listeners; `source` is the file `config` was read from,
    /// which a reload reads again.
    pub async fn start_from(
        config: Config,
        source: Option<ConfigSource>,
        listener: TcpListener,
        admin_listener: TcpListener,
    ) -> Result<Gateway, StartError> {
        let proxy_addr = listener.local_addr()?;
        let admin_addr = admin_listener.local_addr()?;
        let stop = CancellationToken::new();
        let tasks = TaskTracker::new();
        let ready = Arc::new(AtomicBool::new(false));
        // a start that fails half-way stops the tasks it already spawned
        let stop_on_failure = stop.clone().drop_guard();

        for warning in sluice_filters::lint::routing_rule_warnings(&config) {
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
        let mut registry = Registry::default();
        let cache_metrics = CacheMetrics::default();
        cache_metrics.register(&mut registry);
        let tls_metrics = tls::TlsMetrics::default();
        tls_metrics.register(&mut registry);
        let backend_tls = Some(tls::backends(&config.backend_tls)?);
        let proxy_tls = tls::listener(
            tls::Listener::Proxy,
            config.proxy.tls.as_ref(),
            &tls_metrics,
            &tasks,
            stop.clone(),
        )?;
        let admin_tls = tls::listener(
            tls::Listener::Admin,
            config.admin.tls.as_ref(),
            &tls_metrics,
            &tasks,
            stop.clone(),
        )?;
        let l2 = match config.cache.valkey.enabled {
            true => Some(L2::start(&config.cache.valkey, &tasks, stop.clone())?),
            false => None,
        };
        let l3 = match config.store.url.is_empty() {
            true => None,
            false => {
                check::sqlite_dir_exists(&config.store.url)?;
                Some(L3::start(&config.store, &tasks, stop.clone())?)
            }
        };
        let backends = Backends::start(
            cluster.clone(),
            config.backends.clone(),
            l3.clone(),
            l2.clone(),
            SyncOptions {
                instance_id: config.instance_id(proxy_addr.port()),
                channel: config.store.backends_channel.clone(),
                poll_interval: Duration::from_millis(config.store.backends_poll_interval_ms),
            },
            &tasks,
            stop.clone(),
        );
        let tg = l3.as_ref().and_then(|l3| l3.trino_gateway());
        if let Some((tg, tg_config)) = tg.filter(|(_, c)| c.backends) {
            sluice_backends::trino_gateway::follow(
                backends.clone(),
                tg.clone(),
                Duration::from_millis(tg_config.poll_interval_ms),
                &tasks,
                stop.clone(),
            );
        }
        let tiers = Arc::new(
            TieredCache::new(&config.cache, l2.clone(), cache_metrics).with_l3(l3.clone()),
        );
        sluice_cache::invalidate::follow(&tiers, &tasks, stop.clone());
        let search = config.cache.search.enabled.then(|| {
            BackendSearch::new(
                cluster.clone(),
                Duration::from_millis(config.cache.search.timeout_ms),
                search_credentials(&config),
                backend_tls.clone(),
            )
        });
        let locator = Arc::new(QueryLocator::new(&config.cache, tiers.clone(), search));
        let filter_cache = Arc::new(FilterCache::new(tiers.clone(), l2.is_some()));
        let chain = match config.routing.chain.is_empty() {
            true => None,
            false => Some(Arc::new(
                sluice_filters::load_chain(&config, cluster.clone(), &filter_cache, l3.clone())
                    .await?,
            )),
        };
        // follow L3 (after a restart, and changes made by other instances) and announce changes
        let fleet = match (&chain, &l3) {
            (Some(chain), Some(l3)) => Some(Fleet::start(
                FleetOptions {
                    instance_id: config.instance_id(proxy_addr.port()),
                    poll_interval: (config.filters.poll_interval_ms > 0)
                        .then(|| Duration::from_millis(config.filters.poll_interval_ms)),
                    channel: config.filters.channel.clone(),
                },
                chain.clone(),
                l3.clone(),
                l2.clone(),
                &tasks,
                stop.clone(),
            )),
            _ => None,
        };
        if let (Some(chain), Some(dir)) = (&chain, config.filters.watch_dir.as_deref()) {
            let dir = std::path::Path::new(dir);
            sluice_filters::watch::start(dir, chain.clone(), &tasks, stop.clone())?;
        }
        let mut router: Box<dyn Router> = match &chain {
            Some(c) => Box::new(c.clone()),
            None => Box::new(LeastLoaded),
        };
        let mut external_stats = None;
        if let Some(external) = &config.routing.external {
            let external =
                sluice_routing::external::External::new(external, router, backend_tls.clone())
                    .map_err(StartError::External)?;
            external_stats = Some(external.stats());
            router = Box::new(external);
        }
        let routing = Arc::new(Routing::new(
            cluster.clone(),
            config.routing.clone(),
            router,
        ));
        let request_metrics = sluice_proxy::metrics::RequestMetrics::default();
        request_metrics.register(&mut registry);
        let queue = Arc::new(
            Queue::new(
                config.queue.clone(),
                cluster.clone(),
                l3.clone(),
                Duration::from_millis((config.store.timeout_ms * 4).max(2000)),
            )
            .await?,
        );
        queue.metrics().register(&mut registry);
        sluice_queue::sweep::start(
            queue.clone(),
            Duration::from_millis(config.proxy.response_timeout_ms + 5000),
            &tasks,
            stop.clone(),
        );
        let proxy = Arc::new(
            Proxy::new(
                routing.clone(),
                locator.clone(),
                config.proxy.clone(),
                backend_tls.clone(),
            )
            .counting_in(request_metrics)
            .with_queue(queue.clone()),
        );
        let tokens = Arc::new(sluice_admin::auth::Tokens::new(&config.admin.tokens));
        let health = Arc::new(ArcSwap::from_pointee(config.health.clone()));
        let reload_metrics = ReloadMetrics::default();
        reload_metrics.register(&mut registry);
        let reloader = Arc::new(Reloader {
            source,
            applied: std::sync::Mutex::new(config.clone()),
            applied_slots: std::sync::Mutex::new(reload::slot_digests(&config.routing.chain)),
            last: std::sync::Mutex::new(None),
            routing,
            queue: queue.clone(),
            tokens: tokens.clone(),
            health: health.clone(),
            backends: backends.clone(),
            chain: chain.clone(),
            tls: proxy_tls.iter().chain(&admin_tls).cloned().collect(),
            metrics: reload_metrics,
            turn: tokio::sync::Mutex::new(()),
        });
        let fleet_gauges = Arc::new(metrics::FleetGauges::default());
        if let (Some(fleet), Some(l3)) = (&fleet, &l3) {
            let every = Duration::from_millis(config.filters.poll_interval_ms.max(1000));
            let gauges = fleet_gauges.clone();
            metrics::follow_fleet(
                fleet.clone(),
                l3.clone(),
                gauges,
                every,
                &tasks,
                stop.clone(),
            );
        }
        registry.register_collector(Box::new(metrics::GatewayCollector {
            cluster: cluster.clone(),
            chain: chain.clone(),
            l2: l2.clone(),
            l3: l3.clone(),
            fleet: fleet_gauges,
            external: external_stats,
        }));
        let admin = Arc::new(Admin {
            cluster: cluster.clone(),
            locator,
            ready: ready.clone(),
            chain,
            registry: Arc::new(registry),
            tokens,
            fleet,
            backends: backends.clone(),
            reload: Some(reloader.clone() as Arc<dyn Reload>),
            sessions: Arc::new(sluice_console::Sessions::new(
                config.admin.console.session_secret.as_deref(),
                Duration::from_secs(config.admin.console.session_ttl_seconds),
            )),
            queue: Some(queue),
        });

        let poller = HealthPoller::following(cluster, health, backend_tls);
        let (ready_flag, poll_stop) = (ready.clone(), stop.clone());
        // with a store, the backends it holds (not the file's) are polled first
        let sync_limit = Duration::from_millis((config.store.timeout_ms * 4).max(2000));
        tasks.spawn(async move {
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
        let tls_addr = listeners::serve(
            &config,
            listeners::Bound {
                client: listener,
                admin: admin_listener,
            },
            (proxy_tls, admin_tls),
            proxy,
            admin,
            &tasks,
            &stop,
        )
        .await?;
        match tls_addr {
            Some(tls_addr) => {
                tracing::info!(%proxy_addr, %tls_addr, %admin_addr, "sluice is listening (HTTPS on tls_addr)")
            }
            None => tracing::info!(%proxy_addr, %admin_addr, "sluice is listening"),
        }
        stop_on_failure.disarm();
        Ok(Gateway {
            proxy_addr,
            admin_addr,
            tls_addr,
            stop,
            tasks,
            ready,
            l3,
            reloader,
        })
    }

    /// Re-read the configuration file and apply it (SIGHUP); a refused file changes nothing.
    pub async fn reload(&self) -> ReloadReport {
        self.reloader.reload().await
    }

    /// Whether the first health round is done.
    pub fn is_ready(&self) -> bool {
        self.ready.load(Ordering::Acquire)
    }

    /// Stop accepting, let in-flight requests finish (up to `proxy.shutdown_grace_ms`), wait for
    /// every task, then write what L3 still has queued.
    pub async fn shutdown(self) {
        self.ready.store(false, Ordering::Release);
        self.stop.cancel();
        self.tasks.close();
        self.tasks.wait().await;
        // every query answered before the stop has its history row written, if the database is up
        if let Some(l3) = &self.l3 {
            l3.drain(Duration::from_secs(5)).await;
        }
        tracing::info!("sluice stopped");
    }
}
