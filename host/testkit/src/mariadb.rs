//! A MariaDB server of the test's own (its data in a temp dir, an ephemeral port), for tests that
//! stop the database under a running gateway; killed and removed on drop.
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::Mutex;
use std::time::Duration;

use crate::servers::free_port;

/// A MariaDB server, anyone may connect as `root` (`--skip-grant-tables`), database `test`.
pub struct MariaDbServer {
    /// Its port.
    pub port: u16,
    dir: PathBuf,
    child: Mutex<Option<Child>>,
}

impl MariaDbServer {
    /// Create a data directory and start the server; waits until it accepts connections.
    pub async fn start() -> MariaDbServer {
        let port = free_port().await;
        let dir =
            std::env::temp_dir().join(format!("sluice-mariadb-{}-{port}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let status = Command::new("mariadb-install-db")
            .args([
                "--no-defaults",
                "--user=root",
                "--auth-root-authentication-method=normal",
            ])
            .arg(format!("--datadir={}", dir.join("data").display()))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .expect("mariadb-install-db (.ci/run installs mariadb-server)");
        assert!(status.success(), "mariadb-install-db failed");
        let server = MariaDbServer {
            port,
            dir,
            child: Mutex::new(None),
        };
        server.start_again().await;
        server
    }

    /// Start (again) on the same port and data; waits until it accepts connections.
    pub async fn start_again(&self) {
        let d = |name: &str| self.dir.join(name).display().to_string();
        let child = Command::new("mariadbd")
            .args(["--no-defaults", "--user=root", "--skip-grant-tables"])
            .args([
                "--bind-address=127.0.0.1",
                "--innodb-flush-log-at-trx-commit=2",
            ])
            .arg(format!("--port={}", self.port))
            .arg(format!("--datadir={}", d("data")))
            .arg(format!("--socket={}", d("sock")))
            .arg(format!("--pid-file={}", d("pid")))
            .arg(format!("--log-error={}", d("log")))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("mariadbd");
        *self.child.lock().unwrap() = Some(child);
        for _ in 0..600 {
            if tokio::net::TcpStream::connect(("127.0.0.1", self.port))
                .await
                .is_ok()
            {
                return;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        panic!("MariaDB did not listen on {} within 12 s", self.port);
    }

    /// Stop at once (like a crash).
    pub fn stop(&self) {
        if let Some(mut child) = self.child.lock().unwrap().take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// `mysql://root@127.0.0.1:PORT/test`.
    pub fn url(&self) -> String {
        format!("mysql://root@127.0.0.1:{}/test", self.port)
    }
}

impl Drop for MariaDbServer {
    fn drop(&mut self) {
        self.stop();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}
