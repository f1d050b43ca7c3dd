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

/// Tell the other instances to drop `key` from their L1 (`instance`'s tag, newline, key).
pub(crate) async fn announce(instance: &str, l2: &L2, key: &str) {
    let message = format!("{instance}\n{key}");
    if let Err(e) = l2.publish(CHANNEL, &message).await {
        tracing::debug!(error = %e, "could not announce a cache delete; other instances' L1 copies expire on their own");
    }
}

/// Call `forget` with each key another instance (not `instance`) deletes, in a task on `tasks`
/// until `stop`. Returns whether the subscription is up, for status. The tiers start it as
/// [`TieredCache::follow_deletes`](crate::TieredCache::follow_deletes).
pub(crate) fn follow(
    l2: Arc<L2>,
    instance: String,
    forget: impl Fn(&str) + Send + Sync + 'static,
    tasks: &TaskTracker,
    stop: CancellationToken,
) -> Arc<AtomicBool> {
    let subscribed = Arc::new(AtomicBool::new(false));
    let flag = subscribed.clone();
    tasks.spawn(async move {
        let on = |event| {
            if let Event::Message(text) = event {
                match text.split_once('\n') {
                    Some((from, _)) if from == instance => {}
                    Some((_, key)) => forget(key),
                    None => tracing::debug!("ignoring a malformed cache delete announcement"),
                }
            }
        };
        pubsub::listen(&l2, CHANNEL, "cache deletes", &flag, stop, on).await
    });
    subscribed
}
