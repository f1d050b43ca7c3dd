//! Redis topologies of a test's own, on ephemeral loopback ports, stopped on drop: a Cluster
//! (masters, optionally a replica each, created with `redis-cli --cluster create`) and a
//! Sentinel setup (a master, a replica, Sentinels watching them). Both can lose their master.
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use crate::servers::free_port;

/// One `redis-server` process.
struct Node {
    port: u16,
    child: Option<Child>,
}

impl Node {
    fn start(dir: &std::path::Path, port: u16, extra: &[&str]) -> Node {
        let child = Command::new("redis-server")
            .args(["--port", &port.to_string(), "--bind", "127.0.0.1"])
            .args([
                "--save",
                "",
                "--appendonly",
                "no",
                "--repl-diskless-sync-delay",
                "0",
            ])
            .arg("--dir")
            .arg(dir)
            .arg("--logfile")
            .arg(dir.join(format!("{port}.log")))
            .args(extra)
            .stdout(Stdio::null())
            .spawn()
            .expect("redis-server must be installed (.ci/run installs it)");
        Node {
            port,
            child: Some(child),
        }
    }

    fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        self.kill();
    }
}

/// `redis-cli -p PORT args…`, its output.
pub fn cli(port: u16, args: &[&str]) -> String {
    let out = Command::new("redis-cli")
        .args(["-h", "127.0.0.1", "-p", &port.to_string()])
        .args(args)
        .output()
        .expect("redis-cli");
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Wait (bounded) until `cond` holds.
async fn until(what: &str, mut cond: impl FnMut() -> bool) {
    for _ in 0..1500 {
        if cond() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!("{what} did not happen in 30 s");
}

fn temp_dir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!(
        "sluice-{name}-{}-{}",
        std::process::id(),
        rand::random::<u32>()
    ));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// A Redis Cluster of `masters` shards, each with `replicas` replicas.
pub struct RedisCluster {
    nodes: Vec<Node>,
    dir: PathBuf,
}

impl RedisCluster {
    /// Start the nodes, create the cluster, and wait until every node says `cluster_state:ok`.
    pub async fn start(masters: usize, replicas: usize) -> RedisCluster {
        let dir = temp_dir("cluster");
        let mut nodes = Vec::new();
        for _ in 0..masters * (1 + replicas) {
            let port = free_port().await;
            let conf = format!("nodes-{port}.conf");
            let args = [
                "--cluster-enabled",
                "yes",
                "--cluster-config-file",
                &conf,
                "--cluster-node-timeout",
                "1000",
            ];
            nodes.push(Node::start(&dir, port, &args));
        }
        for n in &nodes {
            until("a cluster node answers", || {
                cli(n.port, &["PING"]).contains("PONG")
            })
            .await;
        }
        let addrs: Vec<String> = nodes
            .iter()
            .map(|n| format!("127.0.0.1:{}", n.port))
            .collect();
        let mut args = vec!["--cluster", "create"];
        args.extend(addrs.iter().map(String::as_str));
        let replicas_arg = replicas.to_string();
        args.extend(["--cluster-replicas", &replicas_arg, "--cluster-yes"]);
        let created = cli(nodes[0].port, &args);
        assert!(created.contains("[OK]"), "cluster create: {created}");
        let cluster = RedisCluster { nodes, dir };
        cluster.wait_ok().await;
        // every replica has taken its role and finished its first sync (a replica that never
        // synced would not take over from its master)
        let ports: Vec<u16> = cluster.nodes.iter().map(|n| n.port).collect();
        until("every replica is in sync", || {
            let synced = ports
                .iter()
                .map(|p| cli(*p, &["INFO", "replication"]))
                .filter(|i| i.contains("role:slave") && i.contains("master_link_status:up"))
                .count();
            synced == masters * replicas && cluster.masters().len() == masters
        })
        .await;
        cluster
    }

    /// Wait until every live node reports `cluster_state:ok`.
    pub async fn wait_ok(&self) {
        for n in self.nodes.iter().filter(|n| n.child.is_some()) {
            until("cluster_state:ok", || {
                cli(n.port, &["CLUSTER", "INFO"]).contains("cluster_state:ok")
            })
            .await;
        }
    }

    /// Seed URLs of every node.
    pub fn urls(&self) -> Vec<String> {
        self.nodes
            .iter()
            .map(|n| format!("redis://127.0.0.1:{}", n.port))
            .collect()
    }

    /// The ports of the masters now.
    pub fn masters(&self) -> Vec<u16> {
        let live = self.nodes.iter().find(|n| n.child.is_some()).unwrap();
        cli(live.port, &["CLUSTER", "NODES"])
            .lines()
            .filter(|l| l.contains("master") && !l.contains("fail"))
            .filter_map(|l| l.split_whitespace().nth(1))
            .filter_map(|a| a.split('@').next()?.rsplit(':').next()?.parse().ok())
            .collect()
    }

    /// SIGKILL the master on `port`; with replicas, wait until one took its place.
    pub async fn kill_master(&mut self, port: u16) {
        let before = self.masters().len();
        self.nodes
            .iter_mut()
            .find(|n| n.port == port)
            .unwrap()
            .kill();
        for _ in 0..1500 {
            let m = self.masters();
            if !m.contains(&port) && m.len() == before {
                return self.wait_ok().await;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        let live = self.nodes.iter().find(|n| n.child.is_some()).unwrap().port;
        let logs: Vec<String> = self
            .nodes
            .iter()
            .filter(|n| n.child.is_some())
            .map(|n| {
                std::fs::read_to_string(self.dir.join(format!("{}.log", n.port)))
                    .unwrap_or_default()
            })
            .map(|l| l.lines().rev().take(15).collect::<Vec<_>>().join("\n"))
            .collect();
        panic!(
            "no replica took the place of {port} in 30 s:\n{}\n{}",
            cli(live, &["CLUSTER", "NODES"]),
            logs.join("\n----\n")
        );
    }
}

impl Drop for RedisCluster {
    fn drop(&mut self) {
        self.nodes.clear();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// A master, a replica and three Sentinels watching them as `mymaster`.
pub struct RedisSentinels {
    master: Node,
    replica: Node,
    sentinels: Vec<Node>,
    dir: PathBuf,
}

impl RedisSentinels {
    /// Start them and wait until every Sentinel knows the master and its replica.
    pub async fn start() -> RedisSentinels {
        let dir = temp_dir("sentinel");
        let master = Node::start(&dir, free_port().await, &[]);
        let rport = free_port().await;
        let replicaof = format!("127.0.0.1 {}", master.port);
        let replica = Node::start(&dir, rport, &["--replicaof", &replicaof]);
        let mut sentinels = Vec::new();
        for i in 0..3 {
            let port = free_port().await;
            let conf = dir.join(format!("sentinel-{i}.conf"));
            std::fs::write(
                &conf,
                format!(
                    "port {port}\nbind 127.0.0.1\nsentinel monitor mymaster 127.0.0.1 {} 2\n\
                     sentinel down-after-milliseconds mymaster 500\n\
                     sentinel failover-timeout mymaster 5000\n",
                    master.port
                ),
            )
            .unwrap();
            let child = Command::new("redis-server")
                .arg(&conf)
                .arg("--sentinel")
                .stdout(Stdio::null())
                .spawn()
                .expect("redis-server --sentinel");
            sentinels.push(Node {
                port,
                child: Some(child),
            });
        }
        let s = RedisSentinels {
            master,
            replica,
            sentinels,
            dir,
        };
        until("the replica is in sync", || {
            cli(rport, &["INFO", "replication"]).contains("master_link_status:up")
        })
        .await;
        for n in &s.sentinels {
            until("a Sentinel sees the replica", || {
                cli(n.port, &["SENTINEL", "REPLICAS", "mymaster"]).contains(&rport.to_string())
            })
            .await;
        }
        s
    }

    /// The Sentinels' URLs.
    pub fn urls(&self) -> Vec<String> {
        self.sentinels
            .iter()
            .map(|n| format!("redis://127.0.0.1:{}", n.port))
            .collect()
    }

    /// The master's port, as the first Sentinel says.
    pub fn master_port(&self) -> u16 {
        let out = cli(
            self.sentinels[0].port,
            &["SENTINEL", "get-master-addr-by-name", "mymaster"],
        );
        out.lines()
            .nth(1)
            .and_then(|p| p.trim().parse().ok())
            .unwrap_or(0)
    }

    /// A switch-over, as an operator makes one: the Sentinels promote the replica and demote
    /// the master, which stays up (and still answers PING) as a replica; the two swap roles here.
    pub async fn switch_over(&mut self) {
        let (old, new) = (self.master.port, self.replica.port);
        let asked = cli(
            self.sentinels[0].port,
            &["SENTINEL", "FAILOVER", "mymaster"],
        );
        assert!(asked.contains("OK"), "SENTINEL FAILOVER: {asked}");
        self.wait_master(new).await;
        until("the old master serves as a replica", || {
            let info = cli(old, &["INFO", "replication"]);
            info.contains("role:slave") && info.contains("master_link_status:up")
        })
        .await;
        std::mem::swap(&mut self.master, &mut self.replica);
    }

    /// SIGKILL the master and wait until the Sentinels name the replica instead.
    pub async fn fail_over(&mut self) {
        self.master.kill();
        self.wait_master(self.replica.port).await;
    }

    async fn wait_master(&self, port: u16) {
        until("the Sentinels name the new master", || {
            self.master_port() == port
        })
        .await;
        until("the new master takes writes", || {
            cli(port, &["ROLE"]).starts_with("master")
        })
        .await;
    }
}

impl Drop for RedisSentinels {
    fn drop(&mut self) {
        self.sentinels.clear();
        self.master.kill();
        self.replica.kill();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}
