//! The one place hyper clients are built. Every outbound connection Sluice makes — forwarding to
//! a backend, polling its health, searching for a query's owner, the CLI calling the admin API —
//! goes through a client from [`build`], so timeouts, `TCP_NODELAY`, pooling and TLS are set
//! alike. Every client speaks `http://` and `https://` (the system's roots unless a
//! configuration is given, SNI from the URL's host).
use std::time::Duration;

use hyper_rustls::HttpsConnector;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;

use crate::Body;

/// A pooled HTTP/1.1 client sending [`Body`], over plain TCP or TLS as the URL says.
pub type Client = hyper_util::client::legacy::Client<HttpsConnector<HttpConnector>, Body>;

/// How a client connects and pools.
#[derive(Debug, Clone)]
pub struct ClientOptions {
    /// Time limit to open a TCP connection (`None`: the OS's).
    pub connect_timeout: Option<Duration>,
    /// Idle keep-alive connections kept per host.
    pub pool_max_idle_per_host: usize,
    /// How long an idle pooled connection is kept.
    pub pool_idle_timeout: Duration,
    /// TCP keepalive probes on open connections.
    pub tcp_keepalive: Option<Duration>,
    /// What `https://` peers are trusted by and shown (`None`: the system's roots).
    pub tls: Option<crate::tls::Outbound>,
}

impl Default for ClientOptions {
    fn default() -> Self {
        Self {
            connect_timeout: None,
            pool_max_idle_per_host: 4,
            pool_idle_timeout: Duration::from_secs(90),
            tcp_keepalive: None,
            tls: None,
        }
    }
}

impl ClientOptions {
    /// Defaults with a connect time limit.
    pub fn connect_within(timeout: Duration) -> Self {
        Self {
            connect_timeout: Some(timeout),
            ..Self::default()
        }
    }

    /// These options with `n` idle connections kept per host.
    pub fn pool(mut self, n: usize) -> Self {
        self.pool_max_idle_per_host = n;
        self
    }

    /// These options with `tls` for `https://` peers (`None`: the system's roots).
    pub fn tls(mut self, tls: Option<crate::tls::Outbound>) -> Self {
        self.tls = tls;
        self
    }
}

/// A client with `options`; `TCP_NODELAY` is always on (the Trino protocol is request/response).
pub fn build(options: &ClientOptions) -> Client {
    let mut connector = HttpConnector::new();
    connector.set_connect_timeout(options.connect_timeout);
    connector.set_nodelay(true);
    connector.set_keepalive(options.tcp_keepalive);
    connector.enforce_http(false);
    let tls = options
        .tls
        .clone()
        .unwrap_or_else(crate::tls::default_client_config);
    let connector = hyper_rustls::HttpsConnectorBuilder::new()
        .with_tls_config((*tls).clone())
        .https_or_http()
        .enable_http1()
        .wrap_connector(connector);
    hyper_util::client::legacy::Client::builder(TokioExecutor::new())
        .pool_max_idle_per_host(options.pool_max_idle_per_host)
        .pool_idle_timeout(options.pool_idle_timeout)
        .build(connector)
}
