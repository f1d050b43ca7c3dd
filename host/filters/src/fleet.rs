//! Hot swap across a fleet. Every accepted change is in L3 before it serves; this module makes
//! the other instances follow it:
//!
//! - an instance that changed a slot announces it on a Valkey pub/sub channel; every instance
//!   subscribed runs [`FilterChain::catch_up`], which loads the active versions from L3 through
//!   the same pipeline as an upload;
//! - every `filters.poll_interval_ms` each instance runs `catch_up` anyway, so one that missed an
//!   announcement (restarting, pub/sub down, no Valkey at all) follows within one interval;
//! - after every change and every poll it reports what it runs to L3 (`filter_instances`), which
//!   `GET /api/v1/fleet` shows: which instance runs which hash, and why one could not load the
//!   active version (it keeps its old one); [`status`] turns those reports into the fleet view.
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use sluice_cache::l2_redis::L2;
use sluice_cache::pubsub::{self, Event};
use sluice_store::L3;
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::FilterChain;

pub mod status;

/// How this instance takes part.
#[derive(Debug, Clone)]
pub struct FleetOptions {
    /// This instance's name in the status.
    pub instance_id: String,
    /// How often to check L3 (`None`: only at start and on announcements).
    pub poll_interval: Option<Duration>,
    /// The pub/sub channel.
    pub channel: String,
}

/// One announcement on the channel.
#[derive(Debug, Serialize, Deserialize)]
struct Announcement {
    instance: String,
    /// What the announcing instance runs now: (slot, version, sha256).
    slots: Vec<(String, i64, String)>,
}

/// The live state of this instance's part in the fleet.
#[derive(Debug, Default)]
pub struct FleetStatus {
    /// Subscribed to the channel now.
    pub subscribed: AtomicBool,
    /// Announcements sent.
    pub announced: AtomicU64,
    /// Announcements received from other instances.
    pub received: AtomicU64,
    /// `catch_up` runs.
    pub catch_ups: AtomicU64,
    /// Slots switched by them.
    pub followed: AtomicU64,
}

/// The fleet side of one instance.
pub struct Fleet {
    /// How this instance takes part.
    pub options: FleetOptions,
    /// Its live state.
    pub status: Arc<FleetStatus>,
}

impl Fleet {
    /// Start following L3 (and the channel, when `l2` is configured), in tasks on `tasks` that
    /// end when `stop` is cancelled.
    pub fn start(
        options: FleetOptions,
        chain: Arc<FilterChain>,
        l3: Arc<L3>,
        l2: Option<Arc<L2>>,
        tasks: &TaskTracker,
        stop: CancellationToken,
    ) -> Arc<Fleet> {
        let status = Arc::new(FleetStatus::default());
        let wake = Arc::new(Notify::new());
        if let Some(l2) = &l2 {
            tasks.spawn(subscribe(
                options.clone(),
                l2.clone(),
                wake.clone(),
                status.clone(),
                stop.clone(),
            ));
        }
        tasks.spawn(follow(
            options.clone(),
            chain,
            l3,
            l2,
            wake,
            status.clone(),
            stop,
        ));
        Arc::new(Fleet { options, status })
    }
}

/// Catch up at start (once L3 answers), on every announcement and poll; announce and report
/// this instance's own changes.
async fn follow(
    options: FleetOptions,
    chain: Arc<FilterChain>,
    l3: Arc<L3>,
    l2: Option<Arc<L2>>,
    wake: Arc<Notify>,
    status: Arc<FleetStatus>,
    stop: CancellationToken,
) {
    let mut changes = chain.subscribe();
    let mut announced_local = changes.borrow().0;
    let never = Duration::from_secs(365 * 24 * 3600);
    let poll = options.poll_interval.unwrap_or(never);
    // at start: run what L3 marks active as soon as it is reachable
    let mut caught_up = false;
    let mut next_poll = tokio::time::Instant::now();
    loop {
        let due = tokio::time::Instant::now() >= next_poll;
        if !caught_up || due {
            if l3.is_healthy() {
                run_catch_up(&chain, &status).await;
                report(&options, &chain, &l3).await;
                forget_silent(&l3).await;
                caught_up = true;
                next_poll = tokio::time::Instant::now() + poll;
            } else {
                // retry soon: the store is down or not migrated yet
                next_poll = tokio::time::Instant::now() + poll.min(Duration::from_millis(100));
            }
        }
        tokio::select! {
            _ = tokio::time::sleep_until(next_poll) => {}
            _ = wake.notified() => {
                run_catch_up(&chain, &status).await;
                report(&options, &chain, &l3).await;
            }
            changed = changes.changed() => {
                if changed.is_err() {
                    return;
                }
                let local = changes.borrow_and_update().0;
                if local != announced_local {
                    announced_local = local;
                    if let Some(l2) = &l2 {
                        announce(&options, &chain, l2, &status).await;
                    }
                }
                report(&options, &chain, &l3).await;
            }
            _ = stop.cancelled() => return,
        }
    }
}

async fn run_catch_up(chain: &FilterChain, status: &FleetStatus) {
    status.catch_ups.fetch_add(1, Ordering::Relaxed);
    let done = chain.catch_up().await;
    if !done.switched.is_empty() {
        status
            .followed
            .fetch_add(done.switched.len() as u64, Ordering::Relaxed);
        tracing::info!(switched = ?done.switched, "filter slots now run the versions L3 marks active");
    }
}

/// Instances silent this long are dropped from the fleet status.
const FORGET_AFTER_MS: i64 = 24 * 3600 * 1000;

async fn report(options: &FleetOptions, chain: &FilterChain, l3: &L3) {
    if !l3.is_healthy() {
        return;
    }
    let rows = chain.report(&options.instance_id);
    if let Err(e) = l3
        .store()
        .report_instance(&options.instance_id, &rows)
        .await
    {
        tracing::debug!(error = %e, "could not report this instance's filters to L3");
    }
}

/// Drop instances silent for [`FORGET_AFTER_MS`] (once per poll, not on every report).
async fn forget_silent(l3: &L3) {
    let before = sluice_store::now_ms() - FORGET_AFTER_MS;
    if let Ok(n @ 1..) = l3.store().forget_instances(before).await {
        tracing::info!(rows = n, "forgot instances silent for a day");
    }
}

async fn announce(options: &FleetOptions, chain: &FilterChain, l2: &L2, status: &FleetStatus) {
    let message = Announcement {
        instance: options.instance_id.clone(),
        slots: chain
            .slots()
            .iter()
            .map(|f| {
                (
                    f.slot.to_string(),
                    f.version.load(Ordering::Relaxed),
                    f.sha256.to_string(),
                )
            })
            .collect(),
    };
    let text = serde_json::to_string(&message).unwrap_or_default();
    match l2.publish(&options.channel, &text).await {
        Ok(receivers) => {
            status.announced.fetch_add(1, Ordering::Relaxed);
            tracing::info!(
                channel = options.channel,
                receivers,
                "filter change announced to the fleet"
            );
        }
        Err(e) => tracing::warn!(
            error = %e,
            "could not announce the filter change; other instances pick it up at their next poll"
        ),
    }
}

/// Stay subscribed to the channel; every announcement from another instance (and every fresh
/// subscription, which may have missed some) wakes `follow`.
async fn subscribe(
    options: FleetOptions,
    l2: Arc<L2>,
    wake: Arc<Notify>,
    status: Arc<FleetStatus>,
    stop: CancellationToken,
) {
    let on = |event| match event {
        Event::Subscribed => wake.notify_one(),
        Event::Message(text) => match serde_json::from_str::<Announcement>(&text) {
            Ok(a) if a.instance == options.instance_id => {}
            Ok(a) => {
                status.received.fetch_add(1, Ordering::Relaxed);
                tracing::debug!(from = a.instance, "filter change announced");
                wake.notify_one();
            }
            Err(e) => tracing::warn!(error = %e, "ignoring a malformed filter announcement"),
        },
    };
    let what = "filter announcements";
    pubsub::listen(&l2, &options.channel, what, &status.subscribed, stop, on).await
}
