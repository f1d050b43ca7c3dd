//! L2: a shared Valkey/Redis tier. Multiplexed auto-reconnecting connections, a time limit on
//! every operation, and a health flag: after a failure the tier is skipped (no request waits on
//! a dead server) until a background PING succeeds again.
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use arc_swap::ArcSwap;
use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use redis::{AsyncCommands, IntoConnectionInfo};
use sluice_config::ValkeyConfig;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

/// Why an L2 operation gave no answer.
#[derive(Debug, thiserror::Error)]
pub enum L2Error {
    /// `cache.valkey.url` (with the password) cannot be used.
    #[error("cache.valkey.url: {0}")]
    Url(#[source] redis::RedisError),
    /// `cache.valkey.tls` names files that cannot be read or used.
    #[error("cache.valkey.tls: {0}")]
    Tls(String),
    /// The tier is marked down; nothing was sent.
    #[error("L2 is marked down")]
    Down,
    /// No answer within the time limit (the tier is now marked down).
    #[error("L2 gave no answer within {0} ms")]
    Timeout(u64),
    /// The server answered with an error, or the connection broke (the tier is now marked down).
    #[error("L2 operation failed: {0}")]
    Failed(#[from] redis::RedisError),
}

/// The shared tier.
pub struct L2 {
    client: redis::Client,
    conns: ArcSwap<Vec<ConnectionManager>>,
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
        let client = Self::client_for(config)?;
        let l2 = Arc::new(L2 {
            client: client.clone(),
            conns: ArcSwap::from_pointee(Vec::new()),
            next: AtomicUsize::new(0),
            healthy: AtomicBool::new(false),
            timeout: Duration::from_millis(config.timeout_ms),
        });
        tasks.spawn(supervise(
            l2.clone(),
            client,
            config.pool_size,
            Duration::from_millis(config.health_check_interval_ms),
            stop,
        ));
        Ok(l2)
    }

    /// The client `config` describes (URL and password checked; nothing is sent).
    pub fn client_for(config: &ValkeyConfig) -> Result<redis::Client, L2Error> {
        let mut info = config
            .url
            .as_str()
            .into_connection_info()
            .map_err(L2Error::Url)?;
        if let Some(pw) = config.password.as_deref().filter(|p| !p.is_empty()) {
            let settings = info.redis_settings().clone().set_password(pw);
            info = info.set_redis_settings(settings);
        }
        let tls = &config.tls;
        if tls.ca.is_none() && tls.client_cert.is_none() {
            return redis::Client::open(info).map_err(L2Error::Url);
        }
        // the redis client takes one trust store: a configured CA is the only one trusted
        let read = |path: &std::path::Path| {
            std::fs::read(path).map_err(|e| L2Error::Tls(format!("{}: {e}", path.display())))
        };
        let root_cert = tls.ca.as_deref().map(read).transpose()?;
        let client_tls = match (&tls.client_cert, &tls.client_key) {
            (Some(cert), Some(key)) => Some(redis::ClientTlsConfig {
                client_cert: read(cert)?,
                client_key: read(key)?,
            }),
            _ => None,
        };
        let certs = redis::TlsCertificates {
            client_tls,
            root_cert,
        };
        redis::Client::build_with_tls(info, certs).map_err(|e| L2Error::Tls(e.to_string()))
    }

    /// Whether requests use the tier now.
    pub fn is_healthy(&self) -> bool {
        self.healthy.load(Ordering::Relaxed)
    }

    fn conn(&self) -> Result<ConnectionManager, L2Error> {
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

    /// The client, for connections of their own (pub/sub).
    pub fn client(&self) -> &redis::Client {
        &self.client
    }

    /// The time limit of one operation.
    pub fn timeout(&self) -> Duration {
        self.timeout
    }

    /// INCRBY and EXPIRE in one round trip (a MULTI/EXEC pipeline); returns the new value.
    pub async fn incr(&self, key: &str, delta: i64, ttl: Duration) -> Result<i64, L2Error> {
        let mut c = self.conn()?;
        let secs = ttl.as_secs().max(1) as i64;
        self.run(async move {
            let (v, _): (i64, i64) = redis::pipe()
                .atomic()
                .incr(key, delta)
                .expire(key, secs)
                .query_async(&mut c)
                .await?;
            Ok(v)
        })
        .await
    }
}

async fn supervise(
    l2: Arc<L2>,
    client: redis::Client,
    pool_size: usize,
    interval: Duration,
    stop: CancellationToken,
) {
    let config = ConnectionManagerConfig::new()
        .set_connection_timeout(Some(l2.timeout.max(Duration::from_millis(500))))
        .set_response_timeout(Some(l2.timeout))
        .set_number_of_retries(1);
    loop {
        let ok = if l2.conns.load().is_empty() {
            let mut conns = Vec::with_capacity(pool_size);
            for _ in 0..pool_size {
                match ConnectionManager::new_with_config(client.clone(), config.clone()).await {
                    Ok(c) => conns.push(c),
                    Err(e) => {
                        tracing::debug!(error = %e, "L2 connect failed");
                        break;
                    }
                }
            }
            let complete = conns.len() == pool_size;
            if complete {
                l2.conns.store(Arc::new(conns));
            }
            complete
        } else {
            ping_all(&l2).await
        };
        if ok && !l2.healthy.swap(true, Ordering::Relaxed) {
            tracing::info!("L2 (Valkey/Redis) is up; requests use it");
        } else if !ok {
            l2.mark_down(L2Error::Down);
        }
        tokio::select! {
            _ = tokio::time::sleep(interval) => {}
            _ = stop.cancelled() => return,
        }
    }
}

async fn ping_all(l2: &L2) -> bool {
    let conns = l2.conns.load_full();
    for c in conns.iter() {
        let mut c = c.clone();
        let pong = tokio::time::timeout(l2.timeout.max(Duration::from_millis(200)), async move {
            redis::cmd("PING").query_async::<String>(&mut c).await
        })
        .await;
        if !matches!(pong, Ok(Ok(_))) {
            return false;
        }
    }
    true
}
