//! Routing policy as sandboxed WebAssembly components: the wasmtime host, the filter chain, and
//! every way a filter changes at runtime (upload, config change, rollback, order, watched
//! directory, the rest of the fleet).
//!
//! # Layout
//!
//! | module | one job |
//! | --- | --- |
//! | [`bindings`] | the one host-side `bindgen!` of the `sluice:filter/router` world (`wit/`) |
//! | [`lint`] | warnings about routing-rules that can never match (`check-config`, start) |
//! | [`engine`] | the process-wide engine (pooling allocator, epoch interruption); compilation with an in-memory and an on-disk cache keyed by content hash |
//! | [`host`] | the imports a filter gets — its cache namespace, the cluster view, the log — and a WASI context that grants nothing |
//! | [`cache`] | the namespaced cache behind the WIT `cache` interface |
//! | [`slot`] | one loaded filter: `InstancePre`, a pool of initialised instances, limits per call |
//! | [`chain`] | the ordered slots as a [`sluice_routing::Router`], with the fallback on failure |
//! | [`swap`] | the one pipeline every change goes through: compile, link, init, self-test, store, switch |
//! | [`follow`] | making this instance run what L3 marks active, and reporting what it runs |
//! | [`fleet`] | announcing changes on Valkey pub/sub, polling L3, the fleet status |
//! | [`watch`] | the watched directory |
//! | [`builtin`] | the filters shipped in the binary |
//! | [`error`] | what fails where: a call, a step of a change, a config text, the chain at start |
//!
//! # Instances: pooled, measured
//!
//! `init` runs once per instance, never per request. Each slot keeps up to `filters.pool_size`
//! initialised instances; a call takes one, runs `route` under the deadline and memory limit, and
//! puts it back — unless the call failed, in which case the instance is dropped. Measured
//! (`cargo bench --bench routing`): a pooled call costs 2–9 µs, a fresh instance plus `init` per
//! call 25–40 µs. What the host hands a call (the request, the user) is cleared after it; what a
//! filter keeps in its own statics lives as long as its instance, as module-level state does in a
//! serverless function, so state meant to be shared belongs in the cache. `pool_size: 0` gives
//! every call a fresh instance for filters that need strict isolation.
use std::sync::Arc;

use sluice_cluster::Cluster;
use sluice_config::{Config, Invalid};
use sluice_store::L3;

pub mod bindings;
pub mod builtin;
pub mod cache;
pub mod chain;
pub mod engine;
pub mod error;
pub mod fleet;
pub mod follow;
pub mod host;
pub mod lint;
pub mod slot;
pub mod swap;
pub mod watch;

pub use chain::FilterChain;
pub use engine::MAX_MEMORY_MB;
pub use error::{ChainCause, FilterError, LoadChainError, Step, SwapError};
pub use follow::CatchUp;
pub use slot::{LoadContext, LoadedFilter};
pub use sluice_config::slot_text::{config_to_json, ConfigTextError};
pub use swap::{Candidate, Persist, Swapped};

/// The filters' own checks of a configuration, beyond what `sluice-config` knows: every
/// `builtin:` module exists, and the memory limit fits the pooling allocator. `check-config`
/// and `serve` run it through [`Config::load_with`].
pub fn check_config(config: &Config) -> Result<(), Invalid> {
    for (i, slot) in config.routing.chain.iter().enumerate() {
        if let Some(name) = slot.module.strip_prefix("builtin:") {
            if !builtin::NAMES.contains(&name) {
                return Err(Invalid::new(
                    format!("routing.chain[{i}].module"),
                    format!(
                        "unknown builtin '{name}' (builtins: {})",
                        builtin::NAMES.join(", ")
                    ),
                ));
            }
        }
    }
    if config.filters.memory_limit_mb > MAX_MEMORY_MB {
        return Err(Invalid::new(
            "filters.memory_limit_mb",
            format!("at most {MAX_MEMORY_MB} MiB"),
        ));
    }
    Ok(())
}

/// Load every slot of `config.routing.chain`. Any slot that fails to load is an error naming the
/// slot: the gateway does not start half-configured.
pub async fn load_chain(
    config: &Config,
    cluster: Arc<Cluster>,
    cache: &Arc<cache::FilterCache>,
    store: Option<Arc<L3>>,
) -> Result<FilterChain, LoadChainError> {
    let env = slot::LoadContext {
        cluster: cluster.clone(),
        cache: cache.clone(),
        limits: slot::Limits::from_config(&config.filters),
        disk_cache: engine::cache_dir(config.filters.cache_dir.as_deref()),
        slot_limits: config
            .routing
            .chain
            .iter()
            .filter(|s| !s.limits.is_empty())
            .map(|s| {
                let base = slot::Limits::from_config(&config.filters);
                (s.slot.clone(), base.with(&s.limits))
            })
            .collect(),
    };
    let mut slots = Vec::new();
    for s in &config.routing.chain {
        let fail = |cause: ChainCause| LoadChainError {
            slot: s.slot.clone(),
            module: s.module.clone(),
            cause,
        };
        let bytes: std::borrow::Cow<[u8]> = match s.module.strip_prefix("builtin:") {
            Some(name) => builtin::bytes(name)
                .ok_or_else(|| fail(ChainCause::UnknownBuiltin(name.to_string())))?
                .into(),
            None => std::fs::read(&s.module).map_err(|e| fail(e.into()))?.into(),
        };
        let config_json = serde_json::to_string(&s.config).map_err(|e| fail(e.into()))?;
        let filter = LoadedFilter::load(&env, &s.slot, &s.module, &bytes, config_json)
            .await
            .map_err(|e| fail(e.into()))?;
        slots.push(filter);
    }
    Ok(FilterChain::new(
        slots,
        config.routing.on_filter_error,
        cluster,
        env,
        store,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unknown_builtins_and_oversized_memory_are_refused_with_their_line() {
        let no_env = |_: &str| None;
        let text = "routing:\n  chain:\n    - slot: a\n      module: builtin:nope\n";
        let err = Config::from_yaml_with(text, &no_env, &check_config)
            .unwrap_err()
            .to_string();
        assert!(err.contains("routing.chain[0].module"), "{err}");
        assert!(err.contains("unknown builtin 'nope'"), "{err}");
        assert!(err.contains("line 4"), "{err}");
        let text = "filters:\n  memory_limit_mb: 4096\n";
        let err = Config::from_yaml_with(text, &no_env, &check_config)
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("filters.memory_limit_mb: at most 512 MiB (line 2)"),
            "{err}"
        );
    }
}
