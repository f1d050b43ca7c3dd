//! Servers of a test's own, on ephemeral loopback ports, stopped on drop: `redis-server` (to
//! kill and restart), PostgreSQL (initdb in a temp dir), and temp SQLite files.
use std::time::Duration;

use tokio::net::TcpListener;

/// A `redis-server` of the test's own on an ephemeral loopback port, stopped on drop.
pub struct RedisServer {
    /// Its port.
    pub port: u16,
    child: Option<std::process::Child>,
}

impl RedisServer {
    /// Start one; waits until it answers PING.
    pub async fn start() -> RedisServer {
        let port = free_port().await;
        let mut s = RedisServer { port, child: None };
        s.restart().await;
        s
    }

    /// Start (again) on the same port; waits until it answers PING.
    pub async fn restart(&mut self) {
        let child = std::process::Command::new("redis-server")
            .args([
                "--port",
                &self.port.to_string(),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
            ])
            .stdout(std::process::Stdio::null())
            .spawn()
            .expect("redis-server must be installed (.ci/run installs it)");
        self.child = Some(child);
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

    /// `redis://127.0.0.1:PORT/0`.
    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}/0", self.port)
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
}

impl PgServer {
    /// initdb and start one; waits until it accepts connections.
    pub async fn start() -> PgServer {
        let bin = std::fs::read_dir("/usr/lib/postgresql")
            .expect("PostgreSQL server binaries (.ci/run installs them)")
            .filter_map(|e| e.ok())
            .map(|e| e.path().join("bin"))
            .find(|p| p.join("initdb").exists())
            .expect("initdb");
        let port = free_port().await;
        let dir = std::env::temp_dir().join(format!("sluice-pg-{}-{port}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let pg = PgServer { port, dir, bin };
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
        let opts = format!(
            "-p {} -k {} -c listen_addresses=127.0.0.1 -c fsync=off",
            self.port,
            self.dir.display()
        );
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
