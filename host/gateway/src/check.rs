//! `sluice check-config`: every check `Gateway::start` makes, short of binding sockets and
//! connecting — the Valkey URL and password read the way L2 reads them, the store URL opened the
//! way L3 opens it (a SQLite file's directory must exist), every TLS certificate, key and CA
//! bundle read, every filter module compiled, linked and initialised with its config — plus
//! warnings (rules that can never match).
use std::sync::Arc;

use sluice_cache::l2_redis::L2;
use sluice_cluster::Cluster;
use sluice_config::Config;
use sluice_filters::cache::FilterCache;
use sluice_store::{Store, StoreError};

use crate::tls::Listener;
use crate::StartError;

/// Check `config` as a start would; the warnings, or what would stop the start.
pub async fn check(config: &Config) -> Result<Vec<String>, StartError> {
    // the TLS files: certificates with their keys, CA bundles
    crate::tls::backends(&config.backend_tls)?;
    for (listener, tls) in [
        (Listener::Proxy, config.proxy.tls.as_ref()),
        (Listener::Admin, config.admin.tls.as_ref()),
    ] {
        if let Some(t) = tls {
            crate::tls::load(listener, t)?;
        }
    }
    if config.cache.valkey.enabled {
        L2::check(&config.cache.valkey)?;
    }
    if !config.store.url.is_empty() {
        Store::open(&config.store.url)?;
        sqlite_dir_exists(&config.store.url)?;
    }
    let cluster = Arc::new(Cluster::new(&config.backends, config.health.stats));
    let cache = Arc::new(FilterCache::default());
    sluice_filters::load_chain(config, cluster, &cache, None).await?;
    let mut warnings = sluice_filters::lint::routing_rule_warnings(config);
    if !config.store.url.is_empty() && !config.backends.is_empty() {
        warnings.push(
            "backends: with a store, this list seeds it on the first start only; after that the \
             store's backends are used (change them with `sluice backend` or the admin API)"
                .into(),
        );
    }
    Ok(warnings)
}

/// A SQLite file's directory exists (the file is created, its directory is not): a missing one
/// is a mistake in the file, not an outage to ride out.
pub(crate) fn sqlite_dir_exists(url: &str) -> Result<(), StoreError> {
    match sqlite_dir(url) {
        Some(dir) if !dir.as_os_str().is_empty() && !dir.is_dir() => Err(StoreError::Url(format!(
            "'{url}': directory {} does not exist",
            dir.display()
        ))),
        _ => Ok(()),
    }
}

/// The directory of a SQLite file URL (`sqlite://dir/file.db`, `sqlite:file.db`), if it is one.
fn sqlite_dir(url: &str) -> Option<std::path::PathBuf> {
    let path = url
        .strip_prefix("sqlite://")
        .or_else(|| url.strip_prefix("sqlite:"))?;
    let path = path.split('?').next()?;
    if path.is_empty() || path.starts_with(':') {
        return None; // in memory
    }
    Some(std::path::Path::new(path).parent()?.to_path_buf())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sqlite_directories() {
        assert_eq!(sqlite_dir("sqlite://sluice.db"), Some("".into()));
        assert_eq!(
            sqlite_dir("sqlite:///var/lib/s/x.db?mode=rwc"),
            Some("/var/lib/s".into())
        );
        assert_eq!(sqlite_dir("sqlite::memory:"), None);
        assert_eq!(sqlite_dir("postgres://h/db"), None);
    }
}
