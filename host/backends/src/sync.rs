//! Following the store: at start (seeding it if it never was), on every announcement on
//! `store.backends_channel`, and every `store.backends_poll_interval_ms`, each instance reads the
//! backend list from L3 and applies it when it differs from what runs.
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use sluice_cache::l2_redis::L2;
use sluice_cache::pubsub::{self, Event};
use tokio_util::sync::CancellationToken;

use crate::Backends;

/// How this instance follows the fleet.
#[derive(Debug, Clone)]
pub struct SyncOptions {
    /// This instance's name (announcements from itself are ignored).
    pub instance_id: String,
    /// The pub/sub channel.
    pub channel: String,
    /// How often to re-read the store.
    pub poll_interval: Duration,
}

/// The live state of the following.
#[derive(Debug, Default)]
pub struct SyncStatus {
    /// Subscribed to the channel now.
    pub subscribed: AtomicBool,
    /// Changes announced by this instance.
    pub announced: AtomicU64,
    /// Announcements received from other instances.
    pub received: AtomicU64,
    /// Times the list read from the store differed from the running one and was applied.
    pub followed: AtomicU64,
    /// When the list was last read from the store (ms since the epoch; 0: never).
    pub last_sync_ms: AtomicI64,
    /// Why the last read failed, if it did.
    pub last_error: std::sync::Mutex<Option<String>>,
}

/// One announcement on the channel.
#[derive(Debug, Serialize, Deserialize)]
struct Announcement {
    instance: String,
}

/// Read the store into the cluster until `stop`: at once (seeding first), then on every wake-up
/// and poll.
pub(crate) async fn follow(backends: Arc<Backends>, stop: CancellationToken) {
    let l3 = backends.l3.clone().expect("follow runs with a store");
    let mut seeded = false;
    loop {
        let synced = match l3.up() {
            Err(_) => false,
            Ok(store) => {
                let _turn = backends.changing.lock().await;
                let result = async {
                    if !seeded {
                        let seed = backends.seed.lock().unwrap().clone();
                        if store.seed_backends(&seed, "seed").await? {
                            tracing::info!(
                                backends = seed.len(),
                                "the store's backends were seeded from the configuration file"
                            );
                        }
                        seeded = true;
                    }
                    store.backends().await
                }
                .await;
                match result {
                    Ok(list) => {
                        if backends.cluster.replace(&list) {
                            backends.status.followed.fetch_add(1, Ordering::Relaxed);
                            let names: Vec<&str> = list.iter().map(|b| b.name.as_str()).collect();
                            tracing::info!(backends = ?names, "backends now follow the store");
                        }
                        backends
                            .status
                            .last_sync_ms
                            .store(sluice_store::now_ms(), Ordering::Relaxed);
                        *backends.status.last_error.lock().unwrap() = None;
                        backends.synced.send_replace(true);
                        true
                    }
                    Err(e) => {
                        tracing::debug!(error = %e, "could not read the backends from the store");
                        *backends.status.last_error.lock().unwrap() = Some(e.to_string());
                        false
                    }
                }
            }
        };
        // until the first read, retry soon: the store may be migrating or down
        let wait = match synced {
            true => backends.options.poll_interval,
            false => backends
                .options
                .poll_interval
                .min(Duration::from_millis(100)),
        };
        tokio::select! {
            _ = tokio::time::sleep(wait) => {}
            _ = backends.wake.notified() => {}
            _ = stop.cancelled() => return,
        }
    }
}

/// Tell the other instances to read the store now.
pub(crate) async fn announce(backends: &Backends, l2: &L2) {
    let text = serde_json::to_string(&Announcement {
        instance: backends.options.instance_id.clone(),
    })
    .unwrap_or_default();
    match l2.publish(&backends.options.channel, &text).await {
        Ok(receivers) => {
            backends.status.announced.fetch_add(1, Ordering::Relaxed);
            tracing::debug!(receivers, "backend change announced to the fleet");
        }
        Err(e) => tracing::warn!(
            error = %e,
            "could not announce the backend change; other instances follow at their next poll"
        ),
    }
}

/// Stay subscribed to the channel; an announcement from another instance (or a fresh
/// subscription, which may have missed some) wakes [`follow`].
pub(crate) async fn subscribe(backends: Arc<Backends>, stop: CancellationToken) {
    let l2 = backends.l2.clone().expect("subscribe runs with L2");
    let on = |event| match event {
        Event::Subscribed => backends.wake.notify_one(),
        Event::Message(text) => match serde_json::from_str::<Announcement>(&text) {
            Ok(a) if a.instance == backends.options.instance_id => {}
            Ok(_) => {
                backends.status.received.fetch_add(1, Ordering::Relaxed);
                backends.wake.notify_one();
            }
            Err(e) => tracing::warn!(error = %e, "ignoring a malformed backend announcement"),
        },
    };
    let channel = backends.options.channel.clone();
    let what = "backend announcements";
    pubsub::listen(&l2, &channel, what, &backends.status.subscribed, stop, on).await
}
