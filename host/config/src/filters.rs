//! `filters:`: the sandbox limits of the Wasm filters and how changes reach them.
use serde::{Deserialize, Serialize};

use crate::defaults;
use crate::invalid::{positive, Invalid};

/// Sandbox limits of the Wasm filters.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct FiltersConfig {
    /// Time limit of one `route` call (default 50 ms).
    #[serde(default = "defaults::filter_timeout")]
    pub timeout_ms: u64,
    /// Time limit of `init` (default 2000 ms).
    #[serde(default = "defaults::filter_init_timeout")]
    pub init_timeout_ms: u64,
    /// Linear memory a filter instance may grow to (default 32 MiB).
    #[serde(default = "defaults::filter_memory")]
    pub memory_limit_mb: u64,
    /// Initialised instances kept ready per slot (default 16). `0` creates a fresh instance, and
    /// runs `init`, for every call: full isolation between requests, at a measured cost.
    #[serde(default = "defaults::filter_pool")]
    pub pool_size: usize,
    /// Where compiled modules are cached; default `$XDG_CACHE_HOME/sluice/modules` (or
    /// `~/.cache/sluice/modules`). `""` turns the disk cache off.
    #[serde(default)]
    pub cache_dir: Option<String>,
    /// How often each instance checks L3 for a version it missed (default 5000 ms; `0`: only at
    /// start and on announcements).
    #[serde(default = "defaults::filter_poll")]
    pub poll_interval_ms: u64,
    /// The Valkey pub/sub channel on which accepted versions are announced to the fleet.
    #[serde(default = "defaults::filter_channel")]
    pub channel: String,
    /// A directory to watch: a `SLOT.wasm` written (or moved) into it is swapped into slot `SLOT`
    /// through the same pipeline as an upload, with `SLOT.yaml` / `SLOT.json` as its config when
    /// present. Off by default.
    #[serde(default)]
    pub watch_dir: Option<String>,
}

impl FiltersConfig {
    /// Positive limits, a sane poll interval, a channel name.
    pub fn validate(&self) -> Result<(), Invalid> {
        positive("timeout_ms", self.timeout_ms)?;
        positive("init_timeout_ms", self.init_timeout_ms)?;
        positive("memory_limit_mb", self.memory_limit_mb)?;
        positive("pool_size", self.pool_size as u64)?;
        if self.poll_interval_ms != 0 && self.poll_interval_ms < 100 {
            return Err(Invalid::new("poll_interval_ms", "0 (off) or at least 100"));
        }
        if self.channel.is_empty() {
            return Err(Invalid::new("channel", "must not be empty"));
        }
        Ok(())
    }
}
