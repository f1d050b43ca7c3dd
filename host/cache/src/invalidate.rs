//! Deletes reach the L1 of every instance: the instance that deletes a key announces it on
//! [`CHANNEL`]; every instance subscribed drops its L1 copy. An instance that misses the
//! announcement (Valkey down, not yet subscribed) keeps its copy for at most the L1 lifetime of
//! shared values (a second for filter values).
use std::sync::atomic::AtomicBool;
use std::sync::Arc;

use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::l2_redis::L2;
use crate::pubsub::{self, Event};
use crate::TieredCache;

/// The Valkey channel deletes are announced on.
pub const CHANNEL: &str = "sluice:cache:invalidate";

/// A tag telling this process from the others (deletes it announces are not for itself).
pub(crate) fn instance_tag() -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0);
    format!("{}-{nanos:x}", std::process::id())
}

/// Tell the other instances to drop `key` from their L1 (`tag`, newline, key).
pub(crate) async fn announce(tiers: &TieredCache, l2: &L2, key: &str) {
    let message = format!("{}\n{key}", tiers.instance);
    if let Err(e) = l2.publish(CHANNEL, &message).await {
        tracing::debug!(error = %e, "could not announce a cache delete; other instances' L1 copies expire on their own");
    }
}

/// Drop the keys other instances delete from `tiers`' L1, in a task on `tasks` until `stop`
/// (nothing to do without L2). Returns whether the subscription is up, for status.
pub fn follow(
    tiers: &Arc<TieredCache>,
    tasks: &TaskTracker,
    stop: CancellationToken,
) -> Arc<AtomicBool> {
    let subscribed = Arc::new(AtomicBool::new(false));
    let Some(l2) = tiers.l2().cloned() else {
        return subscribed;
    };
    let (tiers, flag) = (tiers.clone(), subscribed.clone());
    tasks.spawn(async move {
        let on = |event| {
            if let Event::Message(text) = event {
                match text.split_once('\n') {
                    Some((from, _)) if from == tiers.instance => {}
                    Some((_, key)) => tiers.forget_l1(key),
                    None => tracing::debug!("ignoring a malformed cache delete announcement"),
                }
            }
        };
        pubsub::listen(&l2, CHANNEL, "cache deletes", &flag, stop, on).await
    });
    subscribed
}
