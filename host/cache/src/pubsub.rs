//! Following a Valkey pub/sub channel: stay subscribed, reconnect after a failure, and tell the
//! caller when a subscription starts (announcements sent while unsubscribed are lost, so it should
//! look at the source of truth then) and when a message arrives.
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use futures_util::StreamExt;
use tokio_util::sync::CancellationToken;

use crate::l2_redis::L2;

/// What happened on the channel.
pub enum Event {
    /// A (new) subscription is up: messages sent before it may have been missed.
    Subscribed,
    /// A message's payload.
    Message(String),
}

/// Listen on `channel` until `stop`, calling `on` for every [`Event`]; `subscribed` says whether
/// a subscription is up now. `what` names the channel's purpose in logs.
pub async fn listen(
    l2: &L2,
    channel: &str,
    what: &str,
    subscribed: &AtomicBool,
    stop: CancellationToken,
    mut on: impl FnMut(Event),
) {
    let connect_limit = l2.timeout().max(Duration::from_millis(500));
    loop {
        let connected = tokio::time::timeout(connect_limit, async {
            let client = l2.subscriber().await.map_err(|e| {
                redis::RedisError::from((
                    redis::ErrorKind::Io,
                    "no server to subscribe on",
                    e.to_string(),
                ))
            })?;
            let mut pubsub = client.get_async_pubsub().await?;
            pubsub.subscribe(channel).await?;
            Ok::<_, redis::RedisError>(pubsub)
        })
        .await;
        match connected {
            Ok(Ok(pubsub)) => {
                subscribed.store(true, Ordering::Relaxed);
                tracing::info!(channel, "subscribed to {what}");
                on(Event::Subscribed);
                let mut messages = pubsub.into_on_message();
                loop {
                    tokio::select! {
                        msg = messages.next() => {
                            let Some(msg) = msg else { break };
                            on(Event::Message(msg.get_payload().unwrap_or_default()));
                        }
                        _ = stop.cancelled() => return,
                    }
                }
                subscribed.store(false, Ordering::Relaxed);
                tracing::warn!(
                    channel,
                    "subscription to {what} lost; polling the store until it is back"
                );
            }
            Ok(Err(e)) => tracing::debug!(channel, error = %e, "could not subscribe to {what}"),
            Err(_) => tracing::debug!(channel, "subscribing to {what} timed out"),
        }
        tokio::select! {
            _ = tokio::time::sleep(Duration::from_secs(1)) => {}
            _ = stop.cancelled() => return,
        }
    }
}
