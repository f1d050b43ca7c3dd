//! TLS as the configuration asks for it: each listener's certificate (watched for renewals,
//! re-read on reload), what Sluice trusts when it connects to `https://` backends, and the
//! handshake failures metric.

use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::registry::Registry;
use sluice_config::{ClientTlsConfig, ServerTlsConfig};
use sluice_http::tls::{ClientTls, Outbound, TlsError};
use sluice_http::tls_server::ServerTls;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

/// TLS settings that cannot be used.
#[derive(Debug, thiserror::Error)]
#[error("{field}: {source}")]
pub struct TlsSetupError {
    /// The configuration field (`proxy.tls`, `admin.tls`, `backend_tls`).
    pub field: &'static str,
    /// Why.
    #[source]
    pub source: TlsError,
}

/// `sluice_tls_handshake_errors_total{listener}`.
#[derive(Clone, Default)]
pub struct TlsMetrics {
    failures: Family<Vec<(&'static str, &'static str)>, Counter>,
}

impl TlsMetrics {
    /// Register in `registry`.
    pub fn register(&self, registry: &mut Registry) {
        registry.register(
            "sluice_tls_handshake_errors",
            "TLS handshakes that failed on a listener (bad certificate, wrong protocol, timeout)",
            self.failures.clone(),
        );
        // present (at 0) for both listeners, TLS or not, so that alerts have a series to read
        for listener in [Listener::Proxy, Listener::Admin] {
            self.counter(listener);
        }
    }

    fn counter(&self, listener: Listener) -> Counter {
        self.failures
            .get_or_create(&vec![("listener", listener.name())])
            .clone()
    }
}

/// A listener that may serve TLS.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Listener {
    /// `listen` (and `proxy.tls.listen`).
    Proxy,
    /// `admin.listen`.
    Admin,
}

impl Listener {
    /// Its name in logs and metrics.
    pub fn name(self) -> &'static str {
        match self {
            Listener::Proxy => "proxy",
            Listener::Admin => "admin",
        }
    }

    /// The configuration field of its TLS.
    pub fn field(self) -> &'static str {
        match self {
            Listener::Proxy => "proxy.tls",
            Listener::Admin => "admin.tls",
        }
    }
}

/// Read `listener`'s certificate, key and client CA (what `check-config` does, and a start).
pub fn load(listener: Listener, config: &ServerTlsConfig) -> Result<ServerTls, TlsSetupError> {
    let client_ca = config.client_ca.as_deref();
    ServerTls::from_files_requiring(listener.name(), &config.cert, &config.key, client_ca).map_err(
        |source| TlsSetupError {
            field: listener.field(),
            source,
        },
    )
}

/// The TLS of `listener` when configured: its files read now, and watched from a task on
/// `tasks` until `stop`.
pub fn listener(
    listener: Listener,
    config: Option<&ServerTlsConfig>,
    metrics: &TlsMetrics,
    tasks: &TaskTracker,
    stop: CancellationToken,
) -> Result<Option<ServerTls>, TlsSetupError> {
    let Some(config) = config else {
        return Ok(None);
    };
    let tls = load(listener, config)?.counting_failures_in(metrics.counter(listener));
    tls.watch(tasks, stop).map_err(|source| TlsSetupError {
        field: listener.field(),
        source,
    })?;
    Ok(Some(tls))
}

/// What outbound clients to backends trust and present.
pub fn backends(config: &ClientTlsConfig) -> Result<Outbound, TlsSetupError> {
    sluice_http::tls::client_config(&ClientTls {
        ca: config.ca.clone(),
        system_roots: config.system_roots,
        client_cert: config.client_cert.clone().zip(config.client_key.clone()),
    })
    .map_err(|source| TlsSetupError {
        field: "backend_tls",
        source,
    })
}
