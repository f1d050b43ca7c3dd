//! L2: a shared Valkey/Redis tier. Multiplexed auto-reconnecting connections, a time limit on
//! every operation, and a health flag: after a failure the tier is skipped (no request waits on
//! a dead server) until a background PING succeeds again.
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use arc_swap::ArcSwap;
use redis::aio::ConnectionManagerConfig;
use redis::AsyncCommands;
use sluice_config::ValkeyConfig;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

pub use crate::l2_client::L2Error;
use crate::l2_client::{client_with, info_of};
use crate::l2_conn::{Conn, Source};

/// The shared tier.
pub struct L2 {
    source: Source,
    conns: ArcSwap<Vec<Conn>>,
    /// Which seed node the next subscription tries (Cluster mode).
    turn: AtomicUsize,
    next: AtomicUsize,
    healthy: AtomicBool,
    timeout: Duration,
}

impl L2 {
    /// Start connecting in the background (a task on `tasks`, until `stop`); the tier is down
    /// until the first PING succeeds.
    pub fn start(
        config: &ValkeyConfig,
        tasks: &TaskTracker,
        stop: CancellationToken,
    ) -> Result<Arc<L2>, L2Error> {
        let l2 = Arc::new(L2 {
            source: Source::new(config)?,
            conns: ArcSwap::from_pointee(Vec::new()),
            turn: AtomicUsize::new(0),
            next: AtomicUsize::new(0),
            healthy: AtomicBool::new(false),
            timeout: Duration::from_millis(config.timeout_ms),
        });
        tasks.spawn(supervise(
            l2.clone(),
            config.pool_size,
            Duration::from_millis(config.health_check_interval_ms),
            stop,
        ));
        Ok(l2)
    }

    /// Check `config` as a start would: URLs, password, TLS files (nothing is sent).
    pub fn check(config: &ValkeyConfig) -> Result<(), L2Error> {
        Source::new(config).map(|_| ())
    }

    /// A client for the standalone server `config.url` (URL, password and TLS applied).
    pub fn client_for(config: &ValkeyConfig) -> Result<redis::Client, L2Error> {
        client_with(info_of(&config.url, config)?, config)
    }

    /// Whether requests use the tier now.
    pub fn is_healthy(&self) -> bool {
        self.healthy.load(Ordering::Relaxed)
    }

    fn conn(&self) -> Result<Conn, L2Error> {
        if !self.is_healthy() {
            return Err(L2Error::Down);
        }
        let conns = self.conns.load();
        if conns.is_empty() {
            return Err(L2Error::Down);
        }
        let i = self.next.fetch_add(1, Ordering::Relaxed) % conns.len();
        Ok(conns[i].clone())
    }

    async fn run<T, F>(&self, op: F) -> Result<T, L2Error>
    where
        F: std::future::Future<Output = redis::RedisResult<T>>,
    {
        match tokio::time::timeout(self.timeout, op).await {
            Ok(Ok(v)) => Ok(v),
            Ok(Err(e)) => Err(self.mark_down(L2Error::Failed(e))),
            Err(_) => Err(self.mark_down(L2Error::Timeout(self.timeout.as_millis() as u64))),
        }
    }

    fn mark_down(&self, why: L2Error) -> L2Error {
        if self.healthy.swap(false, Ordering::Relaxed) {
            tracing::warn!(
                reason = %why,
                "L2 (Valkey/Redis) marked down; requests skip it until a PING succeeds"
            );
        }
        why
    }

    /// GET.
    pub async fn get(&self, key: &str) -> Result<Option<Vec<u8>>, L2Error> {
        let mut c = self.conn()?;
        self.run(async move { c.get(key).await }).await
    }

    /// MGET.
    pub async fn mget(&self, keys: &[String]) -> Result<Vec<Option<Vec<u8>>>, L2Error> {
        if keys.is_empty() {
            return Ok(Vec::new());
        }
        let mut c = self.conn()?;
        self.run(async move { redis::cmd("MGET").arg(keys).query_async(&mut c).await })
            .await
    }

    /// SET with EX.
    pub async fn set(&self, key: &str, value: &[u8], ttl: Duration) -> Result<(), L2Error> {
        let mut c = self.conn()?;
        let secs = ttl.as_secs().max(1);
        self.run(async move { c.set_ex(key, value, secs).await })
            .await
    }

    /// DEL.
    pub async fn del(&self, key: &str) -> Result<(), L2Error> {
        let mut c = self.conn()?;
        self.run(async move { c.del(key).await }).await
    }

    /// PUBLISH; returns how many subscribers got the message.
    pub async fn publish(&self, channel: &str, message: &str) -> Result<i64, L2Error> {
        let mut c = self.conn()?;
        self.run(async move { c.publish(channel, message).await })
            .await
    }

    /// A client for one server, for a connection of its own (a subscription): the standalone
    /// server, the next seed node of a Cluster, or the master the Sentinels name now.
    pub async fn subscriber(&self) -> Result<redis::Client, L2Error> {
        let turn = self.turn.fetch_add(1, Ordering::Relaxed);
        let limit = self.timeout.max(Duration::from_millis(500));
        self.source.one_server(turn, limit).await
    }

    /// The time limit of one operation.
    pub fn timeout(&self) -> Duration {
        self.timeout
    }

    /// INCRBY and EXPIRE at once (a script: atomic in every mode, a Cluster included); returns
    /// the new value.
    pub async fn incr(&self, key: &str, delta: i64, ttl: Duration) -> Result<i64, L2Error> {
        static SCRIPT: std::sync::LazyLock<redis::Script> = std::sync::LazyLock::new(|| {
            redis::Script::new(
                "local v = redis.call('INCRBY', KEYS[1], ARGV[1]) \
                 redis.call('EXPIRE', KEYS[1], ARGV[2]) return v",
            )
        });
        let mut c = self.conn()?;
        let secs = ttl.as_secs().max(1) as i64;
        self.run(async move {
            SCRIPT
                .key(key)
                .arg(delta)
                .arg(secs)
                .invoke_async(&mut c)
                .await
        })
        .await
    }
}

async fn supervise(l2: Arc<L2>, pool_size: usize, interval: Duration, stop: CancellationToken) {
    let config = ConnectionManagerConfig::new()
        .set_connection_timeout(Some(l2.timeout.max(Duration::from_millis(500))))
        .set_response_timeout(Some(l2.timeout))
        .set_number_of_retries(1);
    let limit = l2.timeout.max(Duration::from_millis(500));
    // a failure to connect is said once (at warn), until a connection succeeds again
    let mut said = false;
    loop {
        let ok = if l2.conns.load().is_empty() {
            match l2.source.connect(pool_size, &config, limit).await {
                Ok(conns) => {
                    l2.conns.store(Arc::new(conns));
                    said = false;
                    true
                }
                Err(e) => {
                    if !said {
                        tracing::warn!(error = %e, "cannot connect to L2 (Valkey/Redis); retrying every health check");
                        said = true;
                    }
                    false
                }
            }
        } else {
            check_all(&l2).await
        };
        if ok && !l2.healthy.swap(true, Ordering::Relaxed) {
            tracing::info!("L2 (Valkey/Redis) is up; requests use it");
        } else if !ok {
            l2.mark_down(L2Error::Down);
            if l2.source.rediscovers() {
                // ask the Sentinels again: a failover may have named another master
                l2.conns.store(Arc::new(Vec::new()));
            }
        }
        tokio::select! {
            _ = tokio::time::sleep(interval) => {}
            _ = stop.cancelled() => return,
        }
    }
}

async fn check_all(l2: &L2) -> bool {
    let conns = l2.conns.load_full();
    for c in conns.iter() {
        let mut c = c.clone();
        let limit = l2.timeout.max(Duration::from_millis(200));
        let fine = tokio::time::timeout(limit, l2.source.check(&mut c)).await;
        if !matches!(fine, Ok(true)) {
            return false;
        }
    }
    true
}
