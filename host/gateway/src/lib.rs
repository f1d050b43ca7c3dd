//! Wiring: [`Gateway::start`] takes a configuration and two bound listeners, builds every part —
//! cluster, health poller, cache tiers, store, filter chain, fleet follow, proxy, admin — starts
//! their tasks, and [`Gateway::shutdown`] stops them all and waits for every one.
//!
//! # Layout
//!
//! | module | one job |
//! | --- | --- |
//! | this file | [`Gateway`]: start on bound listeners, reload, shutdown; [`StartError`] |
//! | `control_plane` | the start's phase 6: tokens, reloader, metrics, the admin API and its extensions |
//! | `start` | the start's named phases, in the dependency order of the crates: foundation, state, lookup, policy, data path, control plane, serve |
//! | `listeners` | the client and admin listeners: plain, HTTPS, beside each other; shared or per core |
//! | [`tls`] | listener certificates (watched), backend trust, handshake failures metric |
//! | [`metrics`] | the whole-gateway metrics read at scrape time |
//! | [`reload`] | re-reading the configuration file |
//! | [`source`] | [`ConfigSource`]: the file a configuration was read from (Sluice's or Trino Gateway's) |
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

use sluice_admin::api::ReloadReport;
use sluice_admin::Reload;
use sluice_cache::l2_redis::L2Error;
use sluice_config::Config;
use sluice_filters::watch::WatchError;
use sluice_filters::LoadChainError;
use sluice_store::{StoreError, L3};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

pub mod check;
mod control_plane;
mod listeners;
pub mod metrics;
pub mod reload;
pub mod source;
mod start;
pub mod tls;

pub use source::ConfigSource;

use reload::Reloader;
use start::Start;

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
        let mut start = Start::new(config, proxy_addr);
        // a start that fails half-way stops the tasks it already spawned
        let stop_on_failure = start.stop.clone().drop_guard();
        let foundation = start.foundation()?;
        let state = start.state(&foundation)?;
        let (tiers, locator) = start.lookup(&foundation, &state);
        let policy = start.policy(&foundation, &state, &tiers).await?;
        let data = start
            .data_path(&foundation, &state, &locator, &policy)
            .await?;
        let (admin, reloader, health) =
            start.control_plane(source, &foundation, &state, locator, policy, &data);
        let bound = listeners::Bound {
            client: listener,
            admin: admin_listener,
        };
        let tls_addr = start
            .serve(foundation, &state, health, bound, data.proxy, admin)
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
            stop: start.stop,
            tasks: start.tasks,
            ready: start.ready,
            l3: state.l3,
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
