//! A listener's TLS side: the certificate and key from PEM files, swapped in place when the files
//! change (or on [`ServerTls::reload`]) so that renewing a certificate needs no restart and drops
//! no connection. A file that cannot be read or does not fit keeps the current certificate in
//! use, with a warning. Handshake failures are counted and logged at warn with the peer.
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use arc_swap::ArcSwap;
use notify::{RecursiveMode, Watcher};
use prometheus_client::metrics::counter::Counter;
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;
use rustls::ServerConfig;
use tokio::net::TcpStream;
use tokio_rustls::server::TlsStream;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::tls::{load_certified_key, provider, TlsError};

/// How long the files must be quiet before they are read again (a renewal writes two files).
const QUIET: Duration = Duration::from_millis(200);
/// The longest a change waits for the directory to be quiet.
const LONGEST: Duration = Duration::from_secs(2);

/// The certificate a listener presents, replaceable while it serves.
#[derive(Debug)]
struct Current(ArcSwap<CertifiedKey>);

impl ResolvesServerCert for Current {
    fn resolve(&self, _hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(self.0.load_full())
    }
}

/// TLS for one listener.
#[derive(Clone)]
pub struct ServerTls {
    name: &'static str,
    cert: PathBuf,
    key: PathBuf,
    current: Arc<Current>,
    acceptor: tokio_rustls::TlsAcceptor,
    failures: Counter,
}

impl std::fmt::Debug for ServerTls {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ServerTls")
            .field("name", &self.name)
            .field("cert", &self.cert)
            .field("key", &self.key)
            .finish_non_exhaustive()
    }
}

impl ServerTls {
    /// Read `cert` (a PEM chain, leaf first) and `key`; `name` says which listener in logs.
    pub fn from_files(name: &'static str, cert: &Path, key: &Path) -> Result<Self, TlsError> {
        Self::from_files_requiring(name, cert, key, None)
    }

    /// [`ServerTls::from_files`], and with `client_ca` every client must show a certificate
    /// that CA signed (mutual TLS).
    pub fn from_files_requiring(
        name: &'static str,
        cert: &Path,
        key: &Path,
        client_ca: Option<&Path>,
    ) -> Result<Self, TlsError> {
        let certified = load_certified_key(cert, key)?;
        let current = Arc::new(Current(ArcSwap::from_pointee(certified)));
        let builder = ServerConfig::builder_with_provider(provider())
            .with_safe_default_protocol_versions()
            .map_err(|e| TlsError::Setup(e.to_string()))?;
        let builder = match client_ca {
            None => builder.with_no_client_auth(),
            Some(ca) => {
                let mut roots = rustls::RootCertStore::empty();
                for c in crate::tls::load_certs(ca)? {
                    roots
                        .add(c)
                        .map_err(|e| TlsError::file(ca, format!("not a CA certificate: {e}")))?;
                }
                let verifier = rustls::server::WebPkiClientVerifier::builder_with_provider(
                    Arc::new(roots),
                    provider(),
                )
                .build()
                .map_err(|e| TlsError::file(ca, e))?;
                builder.with_client_cert_verifier(verifier)
            }
        };
        let mut config = builder.with_cert_resolver(current.clone());
        config.alpn_protocols = vec![b"http/1.1".to_vec()];
        Ok(Self {
            name,
            cert: cert.to_path_buf(),
            key: key.to_path_buf(),
            current,
            acceptor: tokio_rustls::TlsAcceptor::from(Arc::new(config)),
            failures: Counter::default(),
        })
    }

    /// These settings, counting handshake failures in `failures` (a metric's counter).
    pub fn counting_failures_in(mut self, failures: Counter) -> Self {
        self.failures = failures;
        self
    }

    /// Read the files again; on success new handshakes present the new certificate, on failure
    /// the current one stays.
    pub fn reload(&self) -> Result<(), TlsError> {
        self.install(self.load()?);
        Ok(())
    }

    /// Read the files, without using them yet ([`ServerTls::install`]).
    pub fn load(&self) -> Result<CertifiedKey, TlsError> {
        load_certified_key(&self.cert, &self.key)
    }

    /// Present `certified` from the next handshake on.
    pub fn install(&self, certified: CertifiedKey) {
        self.current.0.store(Arc::new(certified));
    }

    /// The leaf certificate presented now (DER), for checks and status.
    pub fn leaf(&self) -> Vec<u8> {
        let current = self.current.0.load();
        current.cert.first().map(|c| c.to_vec()).unwrap_or_default()
    }

    /// Which listener this is (`proxy`, `admin`).
    pub fn name(&self) -> &'static str {
        self.name
    }

    /// The TLS handshake on an accepted connection, within `limit`; a failure is counted and
    /// logged at warn with the peer and the reason.
    pub async fn accept(
        &self,
        stream: TcpStream,
        remote: SocketAddr,
        limit: Duration,
    ) -> Option<TlsStream<TcpStream>> {
        let failed = |reason: String| {
            self.failures.inc();
            tracing::warn!(listener = self.name, peer = %remote, %reason, "TLS handshake failed");
        };
        match tokio::time::timeout(limit, self.acceptor.accept(stream)).await {
            Ok(Ok(tls)) => Some(tls),
            Ok(Err(e)) => {
                failed(e.to_string());
                None
            }
            Err(_) => {
                failed(format!("no handshake within {} ms", limit.as_millis()));
                None
            }
        }
    }

    /// Reload whenever the certificate or key file changes (a write, a rename into place, a
    /// Kubernetes secret's symlink swap), from a task on `tasks` until `stop`.
    pub fn watch(&self, tasks: &TaskTracker, stop: CancellationToken) -> Result<(), TlsError> {
        let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
        // a change, not a read (reading the files, or a CA bundle beside them, is no change)
        let mut watcher =
            notify::recommended_watcher(move |event: notify::Result<notify::Event>| {
                if !matches!(&event, Ok(e) if e.kind.is_access()) {
                    let _ = tx.send(event);
                }
            })
            .map_err(|e| TlsError::Setup(format!("cannot watch the certificate files: {e}")))?;
        let mut dirs: Vec<PathBuf> = [&self.cert, &self.key]
            .iter()
            .map(|p| match p.parent() {
                Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
                _ => PathBuf::from("."),
            })
            .collect();
        dirs.dedup();
        for dir in &dirs {
            watcher
                .watch(dir, RecursiveMode::NonRecursive)
                .map_err(|e| TlsError::file(dir, format!("cannot watch: {e}")))?;
        }
        let this = self.clone();
        tasks.spawn(async move {
            let _watcher = watcher;
            loop {
                tokio::select! {
                    event = rx.recv() => if event.is_none() { return },
                    _ = stop.cancelled() => return,
                }
                // let a renewal finish writing both files, then read them once (at the latest
                // LONGEST after the first change, however busy the directory is)
                let deadline = tokio::time::Instant::now() + LONGEST;
                while tokio::time::Instant::now() < deadline {
                    tokio::select! {
                        more = tokio::time::timeout(QUIET, rx.recv()) => match more {
                            Ok(Some(_)) => continue,
                            Ok(None) => return,
                            Err(_) => break,
                        },
                        _ = stop.cancelled() => return,
                    }
                }
                let before = this.leaf();
                match this.reload() {
                    Ok(()) if this.leaf() != before => {
                        tracing::info!(listener = this.name, cert = %this.cert.display(), "TLS certificate reloaded")
                    }
                    Ok(()) => {}
                    Err(e) => tracing::warn!(
                        listener = this.name,
                        error = %e,
                        "TLS certificate files changed but cannot be used; the current certificate stays"
                    ),
                }
            }
        });
        Ok(())
    }
}
