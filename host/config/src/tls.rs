//! TLS settings, for listeners (`proxy.tls`, `admin.tls`) and for what Sluice connects to
//! (`backend_tls`, `cache.valkey.tls`). Paths only: the files are read when the gateway starts
//! (and a listener's again when they change), never stored in the configuration.
use std::net::SocketAddr;
use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use crate::defaults;
use crate::invalid::Invalid;

/// HTTPS on a listener: a PEM certificate chain (leaf first) and its key.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct ServerTlsConfig {
    /// The certificate chain, PEM. Renewing it in place (or swapping a symlink to it) is picked
    /// up without a restart.
    pub cert: PathBuf,
    /// Its private key, PEM (PKCS#8, PKCS#1 or SEC1).
    pub key: PathBuf,
    /// `proxy.tls` only: a second, HTTPS, listener beside the plain one on `listen` (e.g.
    /// `0.0.0.0:8443`). Without it, `listen` itself serves HTTPS only.
    #[serde(default)]
    pub listen: Option<SocketAddr>,
    /// Require every client to show a certificate this CA (PEM) signed: mutual TLS.
    #[serde(default)]
    pub client_ca: Option<PathBuf>,
}

/// What Sluice trusts, and shows, when it connects over TLS.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct ClientTlsConfig {
    /// A PEM bundle of CA certificates to trust (a private CA).
    #[serde(default)]
    pub ca: Option<PathBuf>,
    /// Also trust the system's root certificates (default true; `SSL_CERT_FILE` and
    /// `SSL_CERT_DIR` are honoured).
    #[serde(default = "defaults::yes")]
    pub system_roots: bool,
    /// A client certificate (PEM chain), for servers that require mutual TLS.
    #[serde(default)]
    pub client_cert: Option<PathBuf>,
    /// The client certificate's private key (PEM).
    #[serde(default)]
    pub client_key: Option<PathBuf>,
}

impl Default for ClientTlsConfig {
    fn default() -> Self {
        Self {
            ca: None,
            system_roots: true,
            client_cert: None,
            client_key: None,
        }
    }
}

impl ServerTlsConfig {
    /// Both files named.
    pub fn validate(&self) -> Result<(), Invalid> {
        for (field, path) in [("cert", &self.cert), ("key", &self.key)] {
            if path.as_os_str().is_empty() {
                return Err(Invalid::new(field, "the path of a PEM file"));
            }
        }
        Ok(())
    }
}

impl ClientTlsConfig {
    /// A client certificate comes with its key; something is trusted.
    pub fn validate(&self) -> Result<(), Invalid> {
        match (&self.client_cert, &self.client_key) {
            (Some(_), None) => return Err(Invalid::new("client_key", "client_cert needs its key")),
            (None, Some(_)) => {
                return Err(Invalid::new(
                    "client_cert",
                    "client_key needs its certificate",
                ))
            }
            _ => {}
        }
        if !self.system_roots && self.ca.is_none() {
            return Err(Invalid::new(
                "ca",
                "with system_roots: false, a CA bundle is the only thing trusted: give one",
            ));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use crate::Config;

    fn load(text: &str) -> Result<Config, String> {
        Config::from_yaml(text, &|_| None).map_err(|e| e.to_string())
    }

    #[test]
    fn listeners_and_clients_take_tls_settings() {
        let c = load(
            "proxy:\n  tls: { cert: /c.pem, key: /k.pem, listen: 0.0.0.0:8443 }\n\
             admin:\n  tls: { cert: /a.pem, key: /ak.pem }\n\
             backend_tls: { ca: /ca.pem, system_roots: false }\n\
             cache:\n  valkey:\n    tls: { ca: /vca.pem, client_cert: /vc.pem, client_key: /vk.pem }\n",
        )
        .unwrap();
        let proxy = c.proxy.tls.unwrap();
        assert_eq!(proxy.listen.unwrap().port(), 8443);
        assert_eq!(c.admin.tls.unwrap().cert.to_str(), Some("/a.pem"));
        assert!(!c.backend_tls.system_roots);
        assert_eq!(
            c.cache.valkey.tls.client_key.unwrap().to_str(),
            Some("/vk.pem")
        );
        // defaults: no listener TLS, the system's roots for clients
        let d = load("").unwrap();
        assert!(d.proxy.tls.is_none() && d.admin.tls.is_none());
        assert!(d.backend_tls.system_roots && d.backend_tls.ca.is_none());
    }

    #[test]
    fn half_a_client_certificate_or_nothing_to_trust_is_refused() {
        let err = load("backend_tls: { client_cert: /c.pem }\n").unwrap_err();
        assert!(err.contains("backend_tls.client_key"), "{err}");
        let err = load("cache:\n  valkey:\n    tls: { system_roots: false }\n").unwrap_err();
        assert!(err.contains("cache.valkey.tls.ca"), "{err}");
        let err =
            load("admin:\n  tls: { cert: /c.pem, key: /k.pem, listen: 0.0.0.0:1 }\n").unwrap_err();
        assert!(err.contains("admin.tls.listen"), "{err}");
        let err = load("proxy:\n  tls: { cert: /c.pem }\n").unwrap_err();
        assert!(err.contains("key"), "{err}");
    }
}
