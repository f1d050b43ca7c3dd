//! Wiring: [`Gateway::start`] takes bound listeners and a configuration, starts the health poller,
//! the proxy and the admin listener, and stops them all gracefully.
use std::future::Future;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use http::{Request, Response};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use hyper_util::server::graceful::GracefulShutdown;
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::admin::Admin;
use crate::cache::l2_redis::L2;
use crate::cache::metrics::CacheMetrics;
use crate::cache::search::BackendSearch;
use crate::cache::{QueryLocator, TieredCache};
use crate::cluster::Cluster;
use crate::config::Config;
use crate::filters::cache::FilterCache;
use crate::health::HealthPoller;
use crate::proxy::Proxy;
use crate::routing::{LeastLoaded, Router, Routing};
use crate::store::L3;
use prometheus_client::registry::Registry;

/// Why the gateway could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// A listener problem.
    #[error("listener: {0}")]
    Io(#[from] std::io::Error),
    /// A routing filter could not be loaded.
    #[error("{0}")]
    Filter(String),
    /// A setting could not be applied.
    #[error("{0}")]
    Config(String),
}
use crate::Body;

/// A running gateway.
pub struct Gateway {
    /// Where the Trino-protocol listener is bound.
    pub proxy_addr: SocketAddr,
    /// Where the admin listener is bound.
    pub admin_addr: SocketAddr,
    shutdown: watch::Sender<bool>,
    ready: Arc<AtomicBool>,
    tasks: Vec<JoinHandle<()>>,
    l3: Option<Arc<L3>>,
}

impl Gateway {
    /// Start serving on already-bound listeners.
    pub async fn start(
        config: Config,
        listener: TcpListener,
        admin_listener: TcpListener,
    ) -> Result<Gateway, StartError> {
        let proxy_addr = listener.local_addr()?;
        let admin_addr = admin_listener.local_addr()?;
        let (shutdown, shutdown_rx) = watch::channel(false);
        let ready = Arc::new(AtomicBool::new(false));
        let grace = Duration::from_millis(config.proxy.shutdown_grace_ms);

        let cluster = Arc::new(Cluster::new(&config.backends, config.health.stats));
        let mut registry = Registry::default();
        let cache_metrics = CacheMetrics::default();
        cache_metrics.register(&mut registry);
        let l2 = if config.cache.valkey.enabled {
            Some(L2::start(&config.cache.valkey, shutdown_rx.clone()).map_err(StartError::Config)?)
        } else {
            None
        };
        let l3 = if config.store.url.is_empty() {
            None
        } else {
            Some(L3::start(&config.store, shutdown_rx.clone()).map_err(StartError::Config)?)
        };
        let tiers = Arc::new(
            TieredCache::new(&config.cache, l2.clone(), cache_metrics).with_l3(l3.clone()),
        );
        let search = config.cache.search.enabled.then(|| {
            BackendSearch::new(
                cluster.clone(),
                Duration::from_millis(config.cache.search.timeout_ms),
                config.health.user.clone(),
            )
        });
        let locator = Arc::new(QueryLocator::new(&config.cache, tiers.clone(), search));
        let filter_cache = Arc::new(FilterCache::new(tiers.clone(), l2.is_some()));
        let chain = if config.routing.chain.is_empty() {
            None
        } else {
            Some(Arc::new(
                crate::filters::load_chain(&config, cluster.clone(), &filter_cache, l3.clone())
                    .await
                    .map_err(StartError::Filter)?,
            ))
        };
        // follow L3 (after a restart, and changes made by other instances) and announce changes
        let fleet = match (&chain, &l3) {
            (Some(chain), Some(l3)) => Some(crate::filters::fleet::Fleet::start(
                crate::filters::fleet::FleetOptions {
                    instance_id: config.instance_id(proxy_addr.port()),
                    poll_interval: (config.filters.poll_interval_ms > 0)
                        .then(|| Duration::from_millis(config.filters.poll_interval_ms)),
                    channel: config.filters.channel.clone(),
                },
                chain.clone(),
                l3.clone(),
                l2.clone(),
                shutdown_rx.clone(),
            )),
            _ => None,
        };
        if let (Some(chain), Some(dir)) = (&chain, config.filters.watch_dir.as_deref()) {
            crate::filters::watch::start(
                std::path::Path::new(dir),
                chain.clone(),
                shutdown_rx.clone(),
            )
            .map_err(StartError::Config)?;
        }
        let router: Box<dyn Router> = match &chain {
            Some(c) => Box::new(c.clone()),
            None => Box::new(LeastLoaded),
        };
        let routing = Arc::new(Routing::new(
            cluster.clone(),
            config.routing.clone(),
            router,
        ));
        let proxy = Arc::new(Proxy::new(routing, locator.clone(), config.proxy.clone()));
        let admin = Arc::new(Admin {
            cluster: cluster.clone(),
            locator,
            ready: ready.clone(),
            chain,
            registry: Arc::new(registry),
            tokens: crate::admin::auth::Tokens::new(&config.admin.tokens),
            fleet,
        });

        let mut tasks = Vec::new();
        let poller = HealthPoller::new(cluster, config.health.clone());
        let poll_rx = shutdown_rx.clone();
        let ready_flag = ready.clone();
        tasks.push(tokio::spawn(async move {
            poller.poll_once().await;
            ready_flag.store(true, Ordering::Release);
            poller.run(poll_rx).await;
        }));
        tasks.push(tokio::spawn(serve(
            listener,
            move |req, remote, local| {
                let proxy = proxy.clone();
                async move { proxy.handle(req, remote, local).await }
            },
            shutdown_rx.clone(),
            grace,
        )));
        tasks.push(tokio::spawn(serve(
            admin_listener,
            move |req, _, _| {
                let admin = admin.clone();
                async move { admin.handle(req).await }
            },
            shutdown_rx,
            grace,
        )));
        tracing::info!(%proxy_addr, %admin_addr, "sluice is listening");
        Ok(Gateway {
            proxy_addr,
            admin_addr,
            shutdown,
            ready,
            tasks,
            l3,
        })
    }

    /// Whether the first health round is done.
    pub fn is_ready(&self) -> bool {
        self.ready.load(Ordering::Acquire)
    }

    /// Stop accepting, let in-flight requests finish (up to `proxy.shutdown_grace_ms`), stop.
    pub async fn shutdown(self) {
        self.ready.store(false, Ordering::Release);
        let _ = self.shutdown.send(true);
        for task in self.tasks {
            let _ = task.await;
        }
        // every query answered before the stop has its history row written, if the database is up
        if let Some(l3) = &self.l3 {
            l3.drain(Duration::from_secs(5)).await;
        }
        tracing::info!("sluice stopped");
    }
}

/// Accept HTTP/1.1 connections on `listener` and answer each request with `handler` until
/// `shutdown` turns true; then stop accepting and wait up to `grace` for open requests.
pub async fn serve<H, F>(
    listener: TcpListener,
    handler: H,
    mut shutdown: watch::Receiver<bool>,
    grace: Duration,
) where
    H: Fn(Request<Incoming>, SocketAddr, SocketAddr) -> F + Clone + Send + Sync + 'static,
    F: Future<Output = Response<Body>> + Send + 'static,
{
    let graceful = GracefulShutdown::new();
    let local = match listener.local_addr() {
        Ok(a) => a,
        Err(e) => {
            tracing::error!(error = %e, "listener has no local address");
            return;
        }
    };
    loop {
        tokio::select! {
            accepted = listener.accept() => {
                let (stream, remote) = match accepted {
                    Ok(x) => x,
                    Err(e) => {
                        // e.g. EMFILE: back off instead of spinning
                        tracing::warn!(error = %e, "accept failed");
                        tokio::time::sleep(Duration::from_millis(50)).await;
                        continue;
                    }
                };
                let _ = stream.set_nodelay(true);
                let handler = handler.clone();
                let svc = service_fn(move |req| {
                    let fut = handler(req, remote, local);
                    async move { Ok::<_, std::convert::Infallible>(fut.await) }
                });
                let conn = hyper::server::conn::http1::Builder::new()
                    .keep_alive(true)
                    .serve_connection(TokioIo::new(stream), svc);
                let watched = graceful.watch(conn);
                tokio::spawn(async move {
                    if let Err(e) = watched.await {
                        tracing::debug!(error = %e, "connection ended with an error");
                    }
                });
            }
            _ = shutdown.changed() => break,
        }
    }
    drop(listener);
    if tokio::time::timeout(grace, graceful.shutdown())
        .await
        .is_err()
    {
        tracing::warn!(
            grace_ms = grace.as_millis() as u64,
            "requests still open after the grace period; closing them"
        );
    }
}
