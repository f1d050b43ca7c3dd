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
        for listener in ["proxy", "admin"] {
            self.counter(listener);
        }
    }

    fn counter(&self, listener: &'static str) -> Counter {
        self.failures
            .get_or_create(&vec![("listener", listener)])
            .clone()
    }
}

/// The TLS of listener `name` (`proxy`, `admin`) when configured: its files read now, and
/// watched from a task on `tasks` until `stop`.
pub fn listener(
    name: &'static str,
    config: Option<&ServerTlsConfig>,
    metrics: &TlsMetrics,
    tasks: &TaskTracker,
    stop: CancellationToken,
) -> Result<Option<ServerTls>, TlsSetupError> {
    let Some(config) = config else {
        return Ok(None);
    };
    let field = match name {
        "admin" => "admin.tls",
        _ => "proxy.tls",
    };
    let fail = |source| TlsSetupError { field, source };
    let client_ca = config.client_ca.as_deref();
    let tls = ServerTls::from_files_requiring(name, &config.cert, &config.key, client_ca)
        .map_err(fail)?
        .counting_failures_in(metrics.counter(name));
    tls.watch(tasks, stop).map_err(fail)?;
    Ok(Some(tls))
}

/// What outbound clients to backends trust and present.
pub fn backends(config: &ClientTlsConfig) -> Result<Outbound, TlsSetupError> {
    client(config).map_err(|source| TlsSetupError {
        field: "backend_tls",
        source,
    })
}

/// A client configuration from `config`.
pub fn client(config: &ClientTlsConfig) -> Result<Outbound, TlsError> {
    sluice_http::tls::client_config(&ClientTls {
        ca: config.ca.clone(),
        system_roots: config.system_roots,
        client_cert: config.client_cert.clone().zip(config.client_key.clone()),
    })
}
