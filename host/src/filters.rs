//! Routing policy as sandboxed WebAssembly components.
//!
//! - [`bindings`]: the one host-side `bindgen!` of the `sluice:filter/router` world (`wit/`).
//! - [`engine`]: the process-wide engine (pooling allocator, epoch interruption) and compilation
//!   with an in-memory and an on-disk cache keyed by content hash.
//! - [`host`]: the imports a filter gets — its cache namespace, the cluster view, the log — and a
//!   WASI context that grants nothing.
//! - [`slot`]: one loaded filter: `InstancePre`, a pool of initialised instances, limits per call.
//! - [`chain`]: the ordered slots as a [`crate::routing::Router`], with the fallback on failure.
//! - [`cache`]: the namespaced cache behind the WIT `cache` interface.
//! - [`builtin`]: the filters shipped in the binary.
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

use crate::cluster::Cluster;
use crate::config::Config;

pub mod bindings;
pub mod builtin;
pub mod cache;
pub mod chain;
pub mod engine;
pub mod fleet;
pub mod host;
pub mod slot;
pub mod watch;

pub use chain::{CatchUp, FilterChain, Persist, SwapError, Swapped};
pub use slot::{LoadContext, LoadError, LoadedFilter};

/// Whether `name` can name a slot: 1-64 characters of `a-z`, `0-9`, `-` and `_`.
pub fn valid_slot_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 64
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'_')
}

/// A filter config given as YAML or JSON text, as the JSON handed to `init`.
pub fn config_to_json(text: &str) -> Result<String, String> {
    let value: serde_yaml::Value =
        serde_yaml::from_str(text).map_err(|e| format!("config is not YAML/JSON: {e}"))?;
    serde_json::to_string(&value).map_err(|e| format!("config is not JSON-compatible: {e}"))
}

/// The largest `filters.memory_limit_mb` (the pooling allocator reserves this much per slot).
pub const MAX_MEMORY_MB: u64 = 512;

/// Why a filter call failed.
#[derive(Debug, thiserror::Error)]
pub enum FilterError {
    /// The filter trapped (a panic, an unreachable, a bad host call).
    #[error("filter '{slot}' trapped in {step}: {message}")]
    Trap {
        slot: String,
        step: &'static str,
        message: String,
    },
    /// The filter ran past its epoch deadline.
    #[error("filter '{slot}' timed out in {step} (limit {limit_ms} ms)")]
    Timeout {
        slot: String,
        step: &'static str,
        limit_ms: u64,
    },
    /// The filter tried to grow its memory past the limit.
    #[error("filter '{slot}' ran out of memory in {step}")]
    OutOfMemory { slot: String, step: &'static str },
    /// `init` refused the slot's configuration.
    #[error("filter '{slot}' refused its config: {message}")]
    Init { slot: String, message: String },
}

/// Load every slot of `config.routing.chain`. Any slot that fails to load is an error naming the
/// slot: the gateway does not start half-configured.
pub async fn load_chain(
    config: &Config,
    cluster: Arc<Cluster>,
    cache: &Arc<cache::FilterCache>,
    store: Option<Arc<crate::store::L3>>,
) -> Result<FilterChain, String> {
    let env = slot::LoadContext {
        cluster: cluster.clone(),
        cache: cache.clone(),
        limits: slot::Limits::from_config(&config.filters),
        disk_cache: engine::cache_dir(config.filters.cache_dir.as_deref()),
    };
    let mut slots = Vec::new();
    for s in &config.routing.chain {
        let fail = |e: String| format!("routing.chain slot '{}' ({}): {e}", s.slot, s.module);
        let bytes: std::borrow::Cow<[u8]> = match s.module.strip_prefix("builtin:") {
            Some(name) => builtin::bytes(name)
                .ok_or_else(|| fail(format!("no builtin filter '{name}'")))?
                .into(),
            None => std::fs::read(&s.module)
                .map_err(|e| fail(format!("cannot read the module: {e}")))?
                .into(),
        };
        let config_json = serde_json::to_string(&s.config)
            .map_err(|e| fail(format!("config is not JSON-compatible: {e}")))?;
        let filter = LoadedFilter::load(&env, &s.slot, &s.module, &bytes, config_json)
            .await
            .map_err(|e| fail(e.to_string()))?;
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
