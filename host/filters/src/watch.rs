//! `filters.watch_dir`: writing (or moving) `SLOT.wasm` into the directory swaps it into slot
//! `SLOT` through the same pipeline as an upload; `SLOT.yaml`, `SLOT.yml` or `SLOT.json` next to
//! it is its config (without one the slot keeps its current config). A file is read once it has
//! been quiet for [`QUIET`], so a copy in progress is not loaded half-written; a module that fails
//! any step is logged and the running version stays. Files present at start are not loaded: the
//! versions L3 marks active win after a restart.
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use notify::{RecursiveMode, Watcher};
use tokio::sync::mpsc;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::{engine, Candidate, FilterChain, Persist};

/// How long a file must be left alone before it is read.
pub const QUIET: Duration = Duration::from_millis(250);

/// Why the directory cannot be watched.
#[derive(Debug, thiserror::Error)]
pub enum WatchError {
    /// It does not exist and cannot be created.
    #[error("filters.watch_dir {dir}: {source}")]
    Create {
        /// The directory.
        dir: String,
        /// Why.
        source: std::io::Error,
    },
    /// The OS refused to watch it.
    #[error("filters.watch_dir {dir}: cannot watch: {source}")]
    Watch {
        /// The directory.
        dir: String,
        /// Why.
        source: notify::Error,
    },
}

/// Watch `dir` (created if missing) from a task on `tasks` until `stop`.
pub fn start(
    dir: &Path,
    chain: Arc<FilterChain>,
    tasks: &TaskTracker,
    stop: CancellationToken,
) -> Result<(), WatchError> {
    let shown = dir.display().to_string();
    std::fs::create_dir_all(dir).map_err(|source| WatchError::Create {
        dir: shown.clone(),
        source,
    })?;
    let cannot_watch = |source| WatchError::Watch {
        dir: shown.clone(),
        source,
    };
    let (tx, rx) = mpsc::unbounded_channel();
    let mut watcher = notify::recommended_watcher(move |event: notify::Result<notify::Event>| {
        if let Ok(event) = event {
            if event.kind.is_create() || event.kind.is_modify() {
                for path in event.paths {
                    let _ = tx.send(path);
                }
            }
        }
    })
    .map_err(cannot_watch)?;
    watcher
        .watch(dir, RecursiveMode::NonRecursive)
        .map_err(cannot_watch)?;
    tracing::info!(dir = %dir.display(), "watching for filter modules");
    tasks.spawn(run(watcher, dir.to_path_buf(), rx, chain, stop));
    Ok(())
}

/// The slot a file in the directory stands for, if it is a module or a config.
fn slot_of(path: &Path) -> Option<String> {
    let ext = path.extension()?.to_str()?;
    if !matches!(ext, "wasm" | "yaml" | "yml" | "json") {
        return None;
    }
    let stem = path.file_stem()?.to_str()?;
    sluice_config::valid_slot_name(stem).then(|| stem.to_string())
}

async fn run(
    _watcher: notify::RecommendedWatcher,
    dir: PathBuf,
    mut events: mpsc::UnboundedReceiver<PathBuf>,
    chain: Arc<FilterChain>,
    stop: CancellationToken,
) {
    let mut pending: HashMap<String, Instant> = HashMap::new();
    loop {
        let next = pending.values().min().copied();
        tokio::select! {
            path = events.recv() => {
                let Some(path) = path else { return };
                if let Some(slot) = slot_of(&path) {
                    pending.insert(slot, Instant::now() + QUIET);
                }
            }
            _ = async { tokio::time::sleep_until(next.unwrap()).await }, if next.is_some() => {
                let now = Instant::now();
                let due: Vec<String> = pending.iter().filter(|(_, t)| **t <= now).map(|(s, _)| s.clone()).collect();
                for slot in due {
                    pending.remove(&slot);
                    load(&dir, &slot, &chain).await;
                }
            }
            _ = stop.cancelled() => return,
        }
    }
}

/// Swap `dir/SLOT.wasm` (with its config file, if any) into `slot`, unless it is what runs.
async fn load(dir: &Path, slot: &str, chain: &FilterChain) {
    let module = dir.join(format!("{slot}.wasm"));
    let bytes = match tokio::fs::read(&module).await {
        Ok(b) => b,
        Err(e) => {
            tracing::debug!(path = %module.display(), error = %e, "no module to load");
            return;
        }
    };
    let running = chain.slots().iter().find(|f| &*f.slot == slot).cloned();
    let mut config_json = None;
    for ext in ["yaml", "yml", "json"] {
        let path = dir.join(format!("{slot}.{ext}"));
        let Ok(text) = tokio::fs::read_to_string(&path).await else {
            continue;
        };
        match crate::config_to_json(&text) {
            Ok(json) => config_json = Some(json),
            Err(e) => {
                tracing::warn!(path = %path.display(), error = %e, "filter config refused; the running version stays");
                return;
            }
        }
        break;
    }
    let config_json = config_json.unwrap_or_else(|| {
        running
            .as_ref()
            .map(|f| f.config_json().to_string())
            .unwrap_or_else(|| "null".into())
    });
    if let Some(f) = &running {
        if *f.sha256 == engine::sha256(&bytes) && f.config_json() == config_json {
            return;
        }
    }
    let source = module.display().to_string();
    let candidate = Candidate {
        slot,
        module: &source,
        bytes: &bytes,
        config_json,
    };
    let persist = Persist::New {
        created_by: "watch_dir",
    };
    match chain.swap(candidate, persist).await {
        Ok((new, _)) => tracing::info!(
            slot,
            path = source,
            sha256 = &*new.sha256,
            "filter swapped from the watched directory"
        ),
        Err(e) => tracing::warn!(
            slot,
            path = source,
            step = e.step.as_str(),
            error = %e,
            "filter from the watched directory refused; the running version stays"
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_modules_and_configs_with_valid_slot_names_count() {
        assert_eq!(slot_of(Path::new("/w/rules.wasm")), Some("rules".into()));
        assert_eq!(slot_of(Path::new("/w/rules.yaml")), Some("rules".into()));
        assert_eq!(slot_of(Path::new("/w/rules.json")), Some("rules".into()));
        assert_eq!(slot_of(Path::new("/w/.rules.wasm.swp")), None);
        assert_eq!(slot_of(Path::new("/w/rules.wasm.tmp")), None);
        assert_eq!(slot_of(Path::new("/w/Rules.wasm")), None);
        assert_eq!(slot_of(Path::new("/w/README")), None);
    }
}
