//! The client and admin listeners: HTTPS on `listen` itself or on a second listener beside the
//! plain one (`proxy.tls.listen`), each served on tokio's shared runtime or on a thread per core
//! (`proxy.serving`); Trino Gateway's backend API on the client port when asked.
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use sluice_admin::Admin;
use sluice_config::{Config, Serving};
use sluice_http::per_core;
use sluice_http::serve::{serve_with_tls, Limits};
use sluice_http::tls_server::ServerTls;
use sluice_proxy::Proxy;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::StartError;

/// The listeners the caller bound.
pub(crate) struct Bound {
    /// `listen`.
    pub client: TcpListener,
    /// `admin.listen`.
    pub admin: TcpListener,
}

/// Serve `proxy` and `admin` on `bound` (and the HTTPS listener beside, which is bound here)
/// from tasks on `tasks` until `stop`; where the HTTPS listener beside is, if there is one.
pub(crate) async fn serve(
    config: &Config,
    bound: Bound,
    (proxy_tls, admin_tls): (Option<ServerTls>, Option<ServerTls>),
    proxy: Arc<Proxy>,
    admin: Arc<Admin>,
    tasks: &TaskTracker,
    stop: &CancellationToken,
) -> Result<Option<SocketAddr>, StartError> {
    let grace = Duration::from_millis(config.proxy.shutdown_grace_ms);
    // Trino Gateway serves its backend API on its one port: so can Sluice, when asked (the
    // admin API's extensions answer their paths there; nothing else of the admin API does)
    let tg_admin = config
        .admin
        .trino_gateway_api_on_proxy
        .then(|| admin.clone());
    let handler = move |proxy: Arc<Proxy>| {
        let tg_admin = tg_admin.clone();
        move |req: http::Request<hyper::body::Incoming>, remote, local| {
            let proxy = proxy.clone();
            let tg_admin = tg_admin
                .as_ref()
                .filter(|a| a.extension_for(req.uri().path()).is_some())
                .cloned();
            async move {
                match tg_admin {
                    // boxed: the admin API's future is large; a proxied request's stays small
                    Some(admin) => Box::pin(admin.handle(req)).await,
                    None => proxy.handle(req, remote, local).await,
                }
            }
        }
    };
    let limits = Limits {
        header_read_timeout: Duration::from_millis(config.proxy.header_read_timeout_ms),
        idle_timeout: Duration::from_millis(config.proxy.idle_timeout_ms),
        max_connections: config.proxy.max_connections,
    };
    // HTTPS on `listen` itself, or on a second listener beside the plain one
    let mut client_listeners = vec![];
    let mut tls_addr = None;
    match (&proxy_tls, config.proxy.tls.as_ref().and_then(|t| t.listen)) {
        (Some(tls), Some(addr)) => {
            let beside = match config.proxy.serving {
                Serving::PerCore => per_core::bind_reuse_port(addr).and_then(TcpListener::from_std),
                Serving::Shared => TcpListener::bind(addr).await,
            }
            .map_err(|source| StartError::Bind {
                field: "proxy.tls.listen",
                addr,
                source,
            })?;
            tls_addr = Some(beside.local_addr()?);
            client_listeners.push((bound.client, None));
            client_listeners.push((beside, Some(tls.clone())));
        }
        (tls, _) => client_listeners.push((bound.client, tls.clone())),
    }
    for (listener, tls) in client_listeners {
        match config.proxy.serving {
            Serving::Shared => {
                tasks.spawn(serve_with_tls(
                    listener,
                    tls,
                    handler(proxy.clone()),
                    stop.clone(),
                    grace,
                    limits,
                ));
            }
            Serving::PerCore => {
                let workers = match config.proxy.workers {
                    0 => per_core::default_workers(),
                    n => n,
                };
                let listeners = per_core::listeners(listener.into_std()?, workers)?;
                let all = per_core::serve_per_core(
                    listeners,
                    tls,
                    |_| handler(Arc::new(proxy.with_own_pool())),
                    stop.clone(),
                    grace,
                    limits,
                )?;
                tracing::info!(workers, "serving client connections with a thread per core");
                tasks.spawn(all);
            }
        }
    }
    let handler = move |req, _, _| {
        let admin = admin.clone();
        async move { admin.handle(req).await }
    };
    let admin_limits = Limits {
        max_connections: config.admin.max_connections,
        ..limits
    };
    tasks.spawn(serve_with_tls(
        bound.admin,
        admin_tls,
        handler,
        stop.clone(),
        grace,
        admin_limits,
    ));
    Ok(tls_addr)
}
