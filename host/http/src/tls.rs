//! TLS material from PEM files, for both sides: what a listener presents ([`load_certified_key`],
//! used by [`crate::tls_server`]) and what an outbound client trusts and presents
//! ([`client_config`]: the system's roots and/or a private CA bundle, an optional client
//! certificate). One crypto provider (ring) for the whole process.
use std::path::{Path, PathBuf};
use std::sync::{Arc, OnceLock};

use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::sign::CertifiedKey;
use rustls::{ClientConfig, RootCertStore};

/// Why TLS material cannot be used. Names the file; never holds a key's bytes.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    /// A file cannot be read or holds no usable PEM block.
    #[error("{path}: {reason}")]
    File {
        /// The file.
        path: PathBuf,
        /// What is wrong with it.
        reason: String,
    },
    /// The settings cannot be put to work (nothing to trust, files that cannot be watched, a
    /// protocol set the provider lacks).
    #[error("{0}")]
    Setup(String),
}

impl TlsError {
    pub(crate) fn file(path: &Path, reason: impl std::fmt::Display) -> Self {
        Self::File {
            path: path.to_path_buf(),
            reason: reason.to_string(),
        }
    }
}

/// The process's crypto provider: ring, the one the rest of the dependency tree (sqlx, redis)
/// already builds.
pub fn provider() -> Arc<CryptoProvider> {
    static PROVIDER: OnceLock<Arc<CryptoProvider>> = OnceLock::new();
    PROVIDER
        .get_or_init(|| Arc::new(rustls::crypto::ring::default_provider()))
        .clone()
}

/// Every certificate in a PEM file, in order (a chain: leaf first).
pub fn load_certs(path: &Path) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let certs = CertificateDer::pem_file_iter(path)
        .map_err(|e| TlsError::file(path, e))?
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| TlsError::file(path, e))?;
    if certs.is_empty() {
        return Err(TlsError::file(path, "no CERTIFICATE block in the file"));
    }
    Ok(certs)
}

/// The first private key (PKCS#8, PKCS#1 or SEC1) in a PEM file.
pub fn load_key(path: &Path) -> Result<PrivateKeyDer<'static>, TlsError> {
    PrivateKeyDer::from_pem_file(path).map_err(|e| TlsError::file(path, e))
}

/// A certificate chain with its key, checked to belong together.
pub fn load_certified_key(cert: &Path, key: &Path) -> Result<CertifiedKey, TlsError> {
    let chain = load_certs(cert)?;
    let der = load_key(key)?;
    let certified = CertifiedKey::from_der(chain, der, &provider()).map_err(|e| {
        TlsError::file(key, format!("not a usable key for {}: {e}", cert.display()))
    })?;
    Ok(certified)
}

/// A built client configuration, as [`crate::client::ClientOptions::tls`] takes it.
pub type Outbound = Arc<ClientConfig>;

/// What an outbound TLS client trusts and presents.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ClientTls {
    /// A PEM bundle of CA certificates to trust (a private CA).
    pub ca: Option<PathBuf>,
    /// Also trust the system's roots (`SSL_CERT_FILE` / `SSL_CERT_DIR` are honoured).
    pub system_roots: bool,
    /// A client certificate chain and its key, for servers that ask for one (mutual TLS).
    pub client_cert: Option<(PathBuf, PathBuf)>,
}

/// The system's root certificates, read once per process.
fn system_roots() -> &'static [CertificateDer<'static>] {
    static ROOTS: OnceLock<Vec<CertificateDer<'static>>> = OnceLock::new();
    ROOTS.get_or_init(|| {
        let found = rustls_native_certs::load_native_certs();
        for e in &found.errors {
            tracing::debug!(error = %e, "a system root certificate could not be read");
        }
        found.certs
    })
}

/// A client configuration for `tls`.
pub fn client_config(tls: &ClientTls) -> Result<Arc<ClientConfig>, TlsError> {
    let mut roots = RootCertStore::empty();
    if tls.system_roots {
        roots.add_parsable_certificates(system_roots().iter().cloned());
    }
    if let Some(ca) = &tls.ca {
        for cert in load_certs(ca)? {
            roots
                .add(cert)
                .map_err(|e| TlsError::file(ca, format!("not a CA certificate: {e}")))?;
        }
    }
    if roots.is_empty() {
        return Err(TlsError::Setup(
            "no certificate to trust: give a CA bundle or allow the system's roots".into(),
        ));
    }
    let builder = ClientConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .map_err(|e| TlsError::Setup(e.to_string()))?
        .with_root_certificates(roots);
    // no ALPN here: the HTTP client's connector sets `http/1.1` itself
    let config = match &tls.client_cert {
        None => builder.with_no_client_auth(),
        Some((cert, key)) => builder
            .with_client_auth_cert(load_certs(cert)?, load_key(key)?)
            .map_err(|e| TlsError::file(key, format!("client certificate: {e}")))?,
    };
    Ok(Arc::new(config))
}

/// The configuration clients use when none is given: the system's roots.
pub fn default_client_config() -> Arc<ClientConfig> {
    static DEFAULT: OnceLock<Arc<ClientConfig>> = OnceLock::new();
    DEFAULT
        .get_or_init(|| {
            let tls = ClientTls {
                system_roots: true,
                ..ClientTls::default()
            };
            client_config(&tls).unwrap_or_else(|_| {
                // no system roots on this machine: https works only with a configured CA
                let config = ClientConfig::builder_with_provider(provider())
                    .with_safe_default_protocol_versions()
                    .expect("ring supports the default protocol versions")
                    .with_root_certificates(RootCertStore::empty())
                    .with_no_client_auth();
                Arc::new(config)
            })
        })
        .clone()
}
