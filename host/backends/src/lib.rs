//! Backends at runtime. The YAML's `backends:` seeds the store (L3) on first start; after that the
//! store is the truth. A change through the admin API is checked, written to the store, applied to
//! this instance's [`Cluster`] and announced on a Valkey channel; every other instance reloads the
//! list from the store on the announcement, and every `store.backends_poll_interval_ms` anyway,
//! so one that missed it (restarting, Valkey down) follows within one interval. Without a store
//! the list lives in this process only (the YAML at start and at reload, then the API).
//!
//! # Layout
//!
//! | module | one job |
//! | --- | --- |
//! | this file | [`Backends`]: apply a [`Change`] (check, store, apply, announce), seed |
//! | [`change`] | a [`Change`] as a pure function of the list; [`ChangeError`] |
//! | [`sync`] | following the store and the channel; [`sync::SyncStatus`] |
//! | [`mirror`] | [`BackendsMirror`]: another gateway's table of backends, changes written back to it |
#![forbid(unsafe_code)]
use std::sync::Arc;

use sluice_cache::l2_redis::L2;
use sluice_cluster::Cluster;
use sluice_config::BackendConfig;
use sluice_store::L3;
use tokio::sync::{watch, Mutex};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

pub mod change;
pub mod mirror;
pub mod sync;

pub use change::{BackendPatch, Change, ChangeError, Outcome};
pub use mirror::BackendsMirror;
pub use sync::{SyncOptions, SyncStatus};

/// The backend list of this instance, and how it changes.
pub struct Backends {
    cluster: Arc<Cluster>,
    l3: Option<Arc<L3>>,
    l2: Option<Arc<L2>>,
    options: SyncOptions,
    /// One change at a time on this instance.
    changing: Mutex<()>,
    /// The YAML's backends, written to the store if it was never seeded.
    seed: std::sync::Mutex<Vec<BackendConfig>>,
    /// Whether the list has been read from the store once (always true without a store).
    synced: watch::Sender<bool>,
    /// Counters and state for the status endpoint.
    pub status: SyncStatus,
    wake: tokio::sync::Notify,
    /// Where changes are written back to, if anywhere ([`Backends::mirror_to`]).
    mirror: std::sync::OnceLock<Arc<dyn BackendsMirror>>,
}

impl Backends {
    /// Manage `cluster` (built from `seed`), following L3 and announcing on L2 when they are
    /// configured, in tasks on `tasks` until `stop`.
    pub fn start(
        cluster: Arc<Cluster>,
        seed: Vec<BackendConfig>,
        l3: Option<Arc<L3>>,
        l2: Option<Arc<L2>>,
        options: SyncOptions,
        tasks: &TaskTracker,
        stop: CancellationToken,
    ) -> Arc<Backends> {
        let (synced, _) = watch::channel(l3.is_none());
        let backends = Arc::new(Backends {
            cluster,
            l3: l3.clone(),
            l2: l2.clone(),
            options,
            changing: Mutex::new(()),
            seed: std::sync::Mutex::new(seed),
            synced,
            status: SyncStatus::default(),
            wake: tokio::sync::Notify::new(),
            mirror: std::sync::OnceLock::new(),
        });
        if l3.is_some() {
            tasks.spawn(sync::follow(backends.clone(), stop.clone()));
            if l2.is_some() {
                tasks.spawn(sync::subscribe(backends.clone(), stop));
            }
        }
        backends
    }

    /// Write every change made through Sluice back to `mirror` from now on (once, at start; a
    /// second mirror is refused and named).
    pub fn mirror_to(&self, mirror: Arc<dyn BackendsMirror>) {
        let by = mirror.by();
        if self.mirror.set(mirror).is_err() {
            tracing::warn!(
                mirror = by,
                "backends already mirrored elsewhere; not mirrored to this one"
            );
        }
    }

    /// The cluster managed.
    pub fn cluster(&self) -> &Arc<Cluster> {
        &self.cluster
    }

    /// Whether the store holds the list (false: it lives in this process).
    pub fn stored(&self) -> bool {
        self.l3.is_some()
    }

    /// Wait until the list has been read from the store once (at most `limit`): before, the
    /// YAML's list is a guess (after a restart, the store may say otherwise). Whether it was.
    pub async fn wait_synced(&self, limit: std::time::Duration) -> bool {
        let mut rx = self.synced.subscribe();
        tokio::time::timeout(limit, rx.wait_for(|s| *s))
            .await
            .is_ok_and(|r| r.is_ok())
    }

    /// A new seed (a reload): without a store it is the list; with one, it is written only if the
    /// store was never seeded. Whether the running list changed.
    pub async fn reseed(&self, seed: Vec<BackendConfig>) -> Result<bool, ChangeError> {
        let _turn = self.changing.lock().await;
        *self.seed.lock().unwrap() = seed.clone();
        match &self.l3 {
            None => Ok(self.cluster.replace(&seed)),
            Some(l3) => {
                let store = l3.up()?;
                store.seed_backends(&seed, "seed").await?;
                let list = store.backends().await?;
                Ok(self.cluster.replace(&list))
            }
        }
    }

    /// Apply `change` made by `by`: checked against the list (the store's, when there is one),
    /// written to the store, applied here, announced. The backend as it is now (`None` once
    /// removed) and what was done.
    pub async fn apply(
        &self,
        change: Change,
        by: &str,
    ) -> Result<(Outcome, Option<BackendConfig>), ChangeError> {
        let _turn = self.changing.lock().await;
        let store = match &self.l3 {
            Some(l3) => Some(l3.up()?),
            None => None,
        };
        let current = match store {
            Some(s) => s.backends().await?,
            None => self.cluster.configs(),
        };
        let (mut list, outcome, now) = change::apply(&current, &change)?;
        if store.is_some() {
            // the store's order, so that following it later is not a change
            list.sort_by(|a, b| a.name.cmp(&b.name));
        }
        if let Change::Remove { name, force: false } = &change {
            if let Some(b) = self.cluster.get(name) {
                let s = b.status();
                if s.running_queries + s.queued_queries > 0 {
                    return Err(ChangeError::Busy {
                        name: name.clone(),
                        running: s.running_queries,
                        queued: s.queued_queries,
                    });
                }
            }
        }
        if outcome == Outcome::Unchanged {
            // the store may be ahead of this instance: follow it anyway
            self.cluster.replace(&list);
            return Ok((outcome, now));
        }
        if let Some(store) = store {
            let name = change.name().to_string();
            let written = match (&change, &now) {
                (Change::Remove { .. }, _) => store.delete_backend(&name).await?,
                (Change::Add(b), _) => store.insert_backend(b, by).await?,
                (Change::Upsert(b), _) => {
                    store.upsert_backend(b, by).await?;
                    true
                }
                (_, Some(b)) => store.update_backend(b, by).await?,
                (_, None) => unreachable!("only a removal leaves no backend"),
            };
            if !written {
                // another instance changed the same name in between
                return Err(match change {
                    Change::Add(_) => ChangeError::Duplicate(name),
                    _ => ChangeError::Unknown(name),
                });
            }
        }
        self.cluster.replace(&list);
        tracing::info!(backend = change.name(), by, "backend {}", change.verb());
        if let Some(mirror) = self.mirror.get().filter(|m| m.by() != by) {
            if let Err(e) = mirror.write_back(&change, now.as_ref()).await {
                tracing::warn!(backend = change.name(), mirror = mirror.by(), error = %e, "change not written back to the mirrored table; it is undone at its next read");
            }
        }
        if let Some(l2) = &self.l2 {
            sync::announce(self, l2).await;
        }
        Ok((outcome, now))
    }
}
