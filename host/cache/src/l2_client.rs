//! What connecting to L2 starts from, whatever the topology: a server's URL as connection
//! settings (with the password), the TLS material `cache.valkey.tls` names, a client built of
//! both, and [`L2Error`], why an L2 operation gave no answer.
use redis::{ConnectionInfo, IntoConnectionInfo};
use sluice_config::ValkeyConfig;

/// Why an L2 operation gave no answer.
#[derive(Debug, thiserror::Error)]
pub enum L2Error {
    /// `cache.valkey.url` (with the password) cannot be used.
    #[error("cache.valkey.url: {0}")]
    Url(#[source] redis::RedisError),
    /// `cache.valkey.tls` names files that cannot be read or used.
    #[error("cache.valkey.tls: {0}")]
    Tls(String),
    /// No Sentinel named the master.
    #[error("cache.valkey: the Sentinels did not name the master: {0}")]
    Sentinel(String),
    /// The tier is marked down; nothing was sent.
    #[error("L2 is marked down")]
    Down,
    /// No answer within the time limit (the tier is now marked down).
    #[error("L2 gave no answer within {0} ms")]
    Timeout(u64),
    /// The server answered with an error, or the connection broke (the tier is now marked down).
    #[error("L2 operation failed: {0}")]
    Failed(#[from] redis::RedisError),
}

/// `url` (or a node's) as connection settings, with `config.password` applied.
pub(crate) fn info_of(url: &str, config: &ValkeyConfig) -> Result<ConnectionInfo, L2Error> {
    let mut info = url.into_connection_info().map_err(L2Error::Url)?;
    if let Some(pw) = config.password.as_deref().filter(|p| !p.is_empty()) {
        let settings = info.redis_settings().clone().set_password(pw);
        info = info.set_redis_settings(settings);
    }
    Ok(info)
}

/// The TLS material `config.tls` names, if any.
pub(crate) fn certificates(
    config: &ValkeyConfig,
) -> Result<Option<redis::TlsCertificates>, L2Error> {
    let tls = &config.tls;
    if tls.ca.is_none() && tls.client_cert.is_none() {
        return Ok(None);
    }
    // the redis client takes one trust store: a configured CA is the only one trusted
    let read = |path: &std::path::Path| {
        std::fs::read(path).map_err(|e| L2Error::Tls(format!("{}: {e}", path.display())))
    };
    let root_cert = tls.ca.as_deref().map(read).transpose()?;
    let client_tls = match (&tls.client_cert, &tls.client_key) {
        (Some(cert), Some(key)) => Some(redis::ClientTlsConfig {
            client_cert: read(cert)?,
            client_key: read(key)?,
        }),
        _ => None,
    };
    Ok(Some(redis::TlsCertificates {
        client_tls,
        root_cert,
    }))
}

/// A client for `info`, with `config.tls`'s material when it names any.
pub(crate) fn client_with(
    info: redis::ConnectionInfo,
    config: &ValkeyConfig,
) -> Result<redis::Client, L2Error> {
    match certificates(config)? {
        None => redis::Client::open(info).map_err(L2Error::Url),
        Some(certs) => {
            redis::Client::build_with_tls(info, certs).map_err(|e| L2Error::Tls(e.to_string()))
        }
    }
}
