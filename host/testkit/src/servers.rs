//! Servers of a test's own, on ephemeral loopback ports, stopped on drop: `redis-server` (to
//! kill and restart), PostgreSQL (initdb in a temp dir), and temp SQLite files.
use std::path::PathBuf;
use std::time::Duration;

use tokio::net::TcpListener;

use crate::tls::{Pair, TestCa};

/// A `redis-server` of the test's own on an ephemeral loopback port, stopped on drop.
pub struct RedisServer {
    /// Its port.
    pub port: u16,
    child: Option<std::process::Child>,
    /// TLS only, with this certificate, key and CA (which also checks client certificates).
    tls: Option<(Pair, PathBuf)>,
}

impl RedisServer {
    /// Start one; waits until it answers PING.
    pub async fn start() -> RedisServer {
        let port = free_port().await;
        let mut s = RedisServer {
            port,
            child: None,
            tls: None,
        };
        s.restart().await;
        s
    }

    /// Start one that speaks TLS only, with a certificate from `ca`, and requires clients to
    /// show a certificate `ca` signed; waits until its port accepts.
    pub async fn start_tls(ca: &TestCa) -> RedisServer {
        let port = free_port().await;
        let server = ca.loopback("redis");
        let mut s = RedisServer {
            port,
            child: None,
            tls: Some((server, ca.ca_pem.clone())),
        };
        s.restart().await;
        s
    }

    /// Start (again) on the same port; waits until it answers PING (over TLS: until it accepts).
    pub async fn restart(&mut self) {
        let port = self.port.to_string();
        let mut args = vec!["--bind", "127.0.0.1", "--save", "", "--appendonly", "no"];
        let tls_args;
        match &self.tls {
            None => args.extend(["--port", &port]),
            Some((pair, ca)) => {
                tls_args = [
                    pair.cert.to_str().unwrap(),
                    pair.key.to_str().unwrap(),
                    ca.to_str().unwrap(),
                ];
                args.extend(["--port", "0", "--tls-port", &port]);
                args.extend([
                    "--tls-cert-file",
                    tls_args[0],
                    "--tls-key-file",
                    tls_args[1],
                ]);
                args.extend([
                    "--tls-ca-cert-file",
                    tls_args[2],
                    "--tls-auth-clients",
                    "yes",
                ]);
            }
        }
        let child = std::process::Command::new("redis-server")
            .args(&args)
            .stdout(std::process::Stdio::null())
            .spawn()
            .expect("redis-server must be installed (.ci/run installs it)");
        self.child = Some(child);
        if self.tls.is_some() {
            for _ in 0..500 {
                if tokio::net::TcpStream::connect(("127.0.0.1", self.port))
                    .await
                    .is_ok()
                {
                    return;
                }
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
            panic!("redis-server (TLS) on {} did not start", self.port);
        }
        for _ in 0..500 {
            if let Ok(mut s) = tokio::net::TcpStream::connect(("127.0.0.1", self.port)).await {
                use tokio::io::{AsyncReadExt, AsyncWriteExt};
                let _ = s.write_all(b"PING\r\n").await;
                let mut buf = [0u8; 7];
                if tokio::time::timeout(Duration::from_millis(200), s.read_exact(&mut buf))
                    .await
                    .is_ok()
                    && &buf == b"+PONG\r\n"
                {
                    return;
                }
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        panic!("redis-server on {} did not start", self.port);
    }

    /// SIGKILL it (a crash, not a clean shutdown).
    pub fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// `redis://127.0.0.1:PORT/0` (`rediss://` over TLS).
    pub fn url(&self) -> String {
        let scheme = if self.tls.is_some() {
            "rediss"
        } else {
            "redis"
        };
        format!("{scheme}://127.0.0.1:{}/0", self.port)
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        self.kill();
    }
}

/// A loopback port nobody listens on right now.
pub async fn free_port() -> u16 {
    let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
    l.local_addr().unwrap().port()
}

/// A PostgreSQL server of the test's own (initdb in a temp dir, ephemeral port), stopped on drop.
pub struct PgServer {
    /// Its port.
    pub port: u16,
    dir: std::path::PathBuf,
    bin: std::path::PathBuf,
    /// Serves TLS (`ssl = on`) with a certificate in `dir`.
    tls: bool,
}

impl PgServer {
    /// initdb and start one; waits until it accepts connections.
    pub async fn start() -> PgServer {
        Self::start_with(None).await
    }

    /// [`PgServer::start`], also accepting TLS (`ssl = on`) with a certificate from `ca`.
    pub async fn start_tls(ca: &TestCa) -> PgServer {
        Self::start_with(Some(ca)).await
    }

    async fn start_with(ca: Option<&TestCa>) -> PgServer {
        let bin = std::fs::read_dir("/usr/lib/postgresql")
            .expect("PostgreSQL server binaries (.ci/run installs them)")
            .filter_map(|e| e.ok())
            .map(|e| e.path().join("bin"))
            .find(|p| p.join("initdb").exists())
            .expect("initdb");
        let port = free_port().await;
        let dir = std::env::temp_dir().join(format!("sluice-pg-{}-{port}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let pg = PgServer {
            port,
            dir,
            bin,
            tls: ca.is_some(),
        };
        if let Some(ca) = ca {
            // PostgreSQL wants its key owned by itself and readable by nobody else
            let pair = ca.loopback("postgres");
            std::fs::copy(&pair.cert, pg.dir.join("server.pem")).unwrap();
            std::fs::copy(&pair.key, pg.dir.join("server.key")).unwrap();
            use std::os::unix::fs::PermissionsExt;
            let private = std::fs::Permissions::from_mode(0o600);
            std::fs::set_permissions(pg.dir.join("server.key"), private).unwrap();
        }
        pg.as_postgres(
            &["chown", "-R", "postgres", &pg.dir.to_string_lossy()],
            true,
        );
        let data = pg.data();
        pg.as_postgres(
            &[
                &pg.bin.join("initdb").to_string_lossy(),
                "-D",
                &data,
                "-A",
                "trust",
                "-U",
                "postgres",
            ],
            false,
        );
        pg.start_again().await;
        pg
    }

    fn data(&self) -> String {
        self.dir.join("data").to_string_lossy().into_owned()
    }

    fn as_postgres(&self, args: &[&str], as_root: bool) {
        let status = if as_root {
            std::process::Command::new(args[0])
                .args(&args[1..])
                .status()
        } else {
            std::process::Command::new("runuser")
                .args(["-u", "postgres", "--"])
                .args(args)
                .stdout(std::process::Stdio::null())
                .status()
        }
        .expect("run");
        assert!(status.success(), "{args:?} failed");
    }

    /// Start (again) on the same port; waits until it accepts connections.
    pub async fn start_again(&self) {
        let mut opts = format!(
            "-p {} -k {} -c listen_addresses=127.0.0.1 -c fsync=off",
            self.port,
            self.dir.display()
        );
        if self.tls {
            let (cert, key) = (self.dir.join("server.pem"), self.dir.join("server.key"));
            opts += &format!(
                " -c ssl=on -c ssl_cert_file={} -c ssl_key_file={}",
                cert.display(),
                key.display()
            );
        }
        let log = self.dir.join("log").to_string_lossy().into_owned();
        self.as_postgres(
            &[
                &self.bin.join("pg_ctl").to_string_lossy(),
                "-D",
                &self.data(),
                "-o",
                &opts,
                "-l",
                &log,
                "-w",
                "start",
            ],
            false,
        );
    }

    /// Stop at once (like a crash).
    pub fn stop(&self) {
        self.as_postgres(
            &[
                &self.bin.join("pg_ctl").to_string_lossy(),
                "-D",
                &self.data(),
                "-m",
                "immediate",
                "-w",
                "stop",
            ],
            false,
        );
    }

    /// `postgres://postgres@127.0.0.1:PORT/postgres`.
    pub fn url(&self) -> String {
        format!("postgres://postgres@127.0.0.1:{}/postgres", self.port)
    }
}

impl Drop for PgServer {
    fn drop(&mut self) {
        let _ = std::process::Command::new("runuser")
            .args([
                "-u",
                "postgres",
                "--",
                &self.bin.join("pg_ctl").to_string_lossy(),
                "-D",
                &self.data(),
                "-m",
                "immediate",
                "stop",
            ])
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .status();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// A SQLite store file in a fresh temp dir of its own, removed on drop.
pub struct TempSqlite {
    /// The directory.
    pub dir: std::path::PathBuf,
    /// `store.url` of the file in it.
    pub url: String,
}

impl Drop for TempSqlite {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// A [`TempSqlite`] named after `name` (and this process).
pub fn temp_sqlite(name: &str) -> TempSqlite {
    let dir = std::env::temp_dir().join(format!("sluice-{name}-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let url = format!("sqlite://{}/sluice.db", dir.display());
    TempSqlite { dir, url }
}
