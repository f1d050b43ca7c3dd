//! How L2 reaches Valkey/Redis (`cache.valkey.mode`): one server, a Cluster (topology found
//! from seed nodes, keys routed by slot, multi-key reads split by slot), or the master a set of
//! Sentinels names (asked again after a failure, so a failover is followed). Commands go through
//! [`Conn`] alike in every mode.
use std::time::Duration;

use redis::aio::{ConnectionLike, ConnectionManager, ConnectionManagerConfig};
use redis::cluster::ClusterClient;
use redis::cluster_async::ClusterConnection;
use redis::{
    Cmd, ConnectionAddr, ConnectionInfo, IntoConnectionInfo, Pipeline, RedisFuture, Value,
};
use sluice_config::{ValkeyConfig, ValkeyMode};

use crate::l2_client::{certificates, client_with, info_of, L2Error};

/// A connection of any mode.
#[derive(Clone)]
pub enum Conn {
    /// To one server (standalone, or the Sentinels' master).
    Single(ConnectionManager),
    /// To a Cluster: one handle over every shard.
    Cluster(ClusterConnection),
}

impl ConnectionLike for Conn {
    fn req_packed_command<'a>(&'a mut self, cmd: &'a Cmd) -> RedisFuture<'a, Value> {
        match self {
            Conn::Single(c) => c.req_packed_command(cmd),
            Conn::Cluster(c) => c.req_packed_command(cmd),
        }
    }

    fn req_packed_commands<'a>(
        &'a mut self,
        cmd: &'a Pipeline,
        offset: usize,
        count: usize,
    ) -> RedisFuture<'a, Vec<Value>> {
        match self {
            Conn::Single(c) => c.req_packed_commands(cmd, offset, count),
            Conn::Cluster(c) => c.req_packed_commands(cmd, offset, count),
        }
    }

    fn get_db(&self) -> i64 {
        match self {
            Conn::Single(c) => c.get_db(),
            Conn::Cluster(c) => c.get_db(),
        }
    }
}

/// Where the servers are, as the configuration says.
pub enum Source {
    /// One server.
    Single(redis::Client),
    /// A Cluster, and a client per seed node (for subscriptions: a message published on any
    /// node of a Cluster reaches subscribers on every node).
    Cluster {
        client: ClusterClient,
        seeds: Vec<redis::Client>,
    },
    /// Sentinels naming a master; `template` holds the master's password, database and TLS.
    Sentinel {
        sentinels: Vec<redis::Client>,
        master: String,
        template: ConnectionInfo,
        config: Box<ValkeyConfig>,
    },
}

impl Source {
    /// The source `config` describes (nothing is sent).
    pub fn new(config: &ValkeyConfig) -> Result<Source, L2Error> {
        let url_info = info_of(&config.url, config)?;
        let nodes = || -> Result<Vec<ConnectionInfo>, L2Error> {
            let urls = match config.nodes.is_empty() {
                true => std::slice::from_ref(&config.url),
                false => &config.nodes[..],
            };
            urls.iter().map(|u| info_of(u, config)).collect()
        };
        match config.mode {
            ValkeyMode::Standalone => Ok(Source::Single(client_with(url_info, config)?)),
            ValkeyMode::Cluster => {
                let nodes = nodes()?;
                let seeds = nodes
                    .iter()
                    .map(|n| client_with(n.clone(), config))
                    .collect::<Result<Vec<_>, _>>()?;
                let timeout = Duration::from_millis(config.timeout_ms);
                let mut builder = ClusterClient::builder(nodes)
                    .connection_timeout(timeout.max(Duration::from_millis(500)))
                    .response_timeout(timeout)
                    .retries(1);
                if let Some(pw) = url_info.redis_settings().password() {
                    builder = builder.password(pw);
                }
                if let Some(certs) = certificates(config)? {
                    builder = builder.certs(certs);
                }
                let client = builder.build().map_err(L2Error::Url)?;
                Ok(Source::Cluster { client, seeds })
            }
            ValkeyMode::Sentinel => {
                // the Sentinels are asked in plain settings of their own URLs (no master password)
                let sentinels = config
                    .nodes
                    .iter()
                    .map(|u| u.as_str().into_connection_info().map_err(L2Error::Url))
                    .map(|i| i.and_then(|i| client_with(i, config)))
                    .collect::<Result<Vec<_>, _>>()?;
                Ok(Source::Sentinel {
                    sentinels,
                    master: config.sentinel_master.clone(),
                    template: url_info,
                    config: Box::new(config.clone()),
                })
            }
        }
    }

    /// Whether a failed check should drop the connections and find the servers again (the
    /// Sentinels may name a new master).
    pub fn rediscovers(&self) -> bool {
        matches!(self, Source::Sentinel { .. })
    }

    /// A client for one server: the standalone one, a seed node (`turn` picks which), or the
    /// master the Sentinels name now.
    pub async fn one_server(&self, turn: usize, limit: Duration) -> Result<redis::Client, L2Error> {
        match self {
            Source::Single(c) => Ok(c.clone()),
            Source::Cluster { seeds, .. } => Ok(seeds[turn % seeds.len()].clone()),
            Source::Sentinel {
                sentinels,
                master,
                template,
                config,
            } => {
                let (host, port) = master_address(sentinels, master, limit).await?;
                let addr = match template.addr() {
                    ConnectionAddr::TcpTls { .. } => ConnectionAddr::TcpTls {
                        host,
                        port,
                        insecure: false,
                        tls_params: None,
                    },
                    _ => ConnectionAddr::Tcp(host, port),
                };
                client_with(template.clone().set_addr(addr), config)
            }
        }
    }

    /// `n` connections (one handle for a Cluster, which multiplexes over every shard).
    pub async fn connect(
        &self,
        n: usize,
        config: &ConnectionManagerConfig,
        limit: Duration,
    ) -> Result<Vec<Conn>, L2Error> {
        if let Source::Cluster { client, .. } = self {
            let conn = tokio::time::timeout(limit, client.get_async_connection())
                .await
                .map_err(|_| L2Error::Timeout(limit.as_millis() as u64))??;
            return Ok(vec![Conn::Cluster(conn)]);
        }
        let client = self.one_server(0, limit).await?;
        let mut conns = Vec::with_capacity(n);
        for _ in 0..n {
            let conn = ConnectionManager::new_with_config(client.clone(), config.clone()).await?;
            conns.push(Conn::Single(conn));
        }
        Ok(conns)
    }

    /// Whether `conn` answers as it should: PING (every node of a Cluster), and for a
    /// Sentinels' master, that it still is the master (after a failover the old one may come
    /// back as a replica, which refuses writes).
    pub async fn check(&self, conn: &mut Conn) -> bool {
        match self {
            Source::Sentinel { .. } => {
                let role: redis::RedisResult<Vec<Value>> =
                    redis::cmd("ROLE").query_async(conn).await;
                matches!(role.as_deref(), Ok([Value::BulkString(r), ..]) if r == b"master")
            }
            _ => redis::cmd("PING").query_async::<String>(conn).await.is_ok(),
        }
    }
}

/// Ask each Sentinel in turn where `master` is.
async fn master_address(
    sentinels: &[redis::Client],
    master: &str,
    limit: Duration,
) -> Result<(String, u16), L2Error> {
    let mut last = None;
    for sentinel in sentinels {
        let asked = tokio::time::timeout(limit, async {
            let mut c = sentinel.get_multiplexed_async_connection().await?;
            redis::cmd("SENTINEL")
                .arg("get-master-addr-by-name")
                .arg(master)
                .query_async::<Option<(String, u16)>>(&mut c)
                .await
        })
        .await;
        match asked {
            Ok(Ok(Some(addr))) => return Ok(addr),
            Ok(Ok(None)) => last = Some(format!("no master named '{master}'")),
            Ok(Err(e)) => last = Some(e.to_string()),
            Err(_) => last = Some("no answer in time".into()),
        }
    }
    Err(L2Error::Sentinel(
        last.unwrap_or_else(|| "no Sentinel configured".into()),
    ))
}
