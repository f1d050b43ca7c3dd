//! The `sluice` command line: `serve`, `check-config`, `demo`, `fake-trino`.
#![forbid(unsafe_code)]
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use clap::{Parser, Subcommand};
use sluice::config::{BackendConfig, Config, LogFormat, StatsSource};
use sluice::fake_trino::{FakeOptions, FakeTrino};
use sluice::server::Gateway;
use tokio::net::TcpListener;

#[derive(Parser)]
#[command(
    name = "sluice",
    version,
    about = "A gateway in front of several Trino clusters"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the gateway.
    Serve {
        /// Configuration file (YAML). Without one, embedded defaults are used.
        #[arg(short, long, env = "SLUICE_CONFIG")]
        config: Option<PathBuf>,
        /// Print the bound addresses as one JSON line on stdout (for scripts using port 0).
        #[arg(long)]
        print_addrs: bool,
    },
    /// Validate a configuration file; exits non-zero with the reason.
    CheckConfig {
        /// The file to check.
        file: PathBuf,
    },
    /// Start Sluice in front of in-process fake Trino clusters and print how to connect.
    Demo {
        /// Where clients connect.
        #[arg(long, default_value = "127.0.0.1:8080")]
        listen: SocketAddr,
        /// Admin listener.
        #[arg(long, default_value = "127.0.0.1:8081")]
        admin_listen: SocketAddr,
        /// How many fake clusters (split over groups `adhoc` and `etl`).
        #[arg(long, default_value_t = 2)]
        clusters: usize,
    },
    /// Run a fake Trino coordinator (for tests and benchmarks).
    FakeTrino {
        /// Listen address (port 0 picks a free port).
        #[arg(long, default_value = "127.0.0.1:0")]
        listen: SocketAddr,
        /// Cluster name shown in result rows.
        #[arg(long, default_value = "fake")]
        name: String,
        /// Result pages per query.
        #[arg(long, default_value_t = 3)]
        pages: u32,
        /// Rows per page.
        #[arg(long, default_value_t = 2)]
        rows_per_page: u32,
        /// Polls a query stays queued.
        #[arg(long, default_value_t = 1)]
        queued_polls: u32,
        /// Delay before each statement answer, in ms.
        #[arg(long, default_value_t = 0)]
        delay_ms: u64,
        /// Ignore X-Forwarded-* (like a coordinator without process-forwarded).
        #[arg(long)]
        ignore_forwarded: bool,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    if let Command::CheckConfig { file } = &cli.command {
        return match Config::load(file) {
            Ok(c) => {
                println!(
                    "{}: OK ({} backends in groups {:?}, default group '{}')",
                    file.display(),
                    c.backends.len(),
                    c.groups(),
                    c.routing.default_group
                );
                ExitCode::SUCCESS
            }
            Err(e) => {
                eprintln!("invalid configuration: {e}");
                ExitCode::from(2)
            }
        };
    }
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("tokio runtime");
    match runtime.block_on(run(cli.command)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("sluice: {e:#}");
            ExitCode::FAILURE
        }
    }
}

async fn run(command: Command) -> anyhow::Result<()> {
    match command {
        Command::CheckConfig { .. } => unreachable!("handled before the runtime starts"),
        Command::Serve {
            config,
            print_addrs,
        } => {
            let config = match config {
                Some(path) => Config::load(&path)
                    .map_err(|e| anyhow::anyhow!("invalid configuration: {e}"))?,
                None => Config::default(),
            };
            sluice::telemetry::init(config.log.format, &config.log.level);
            let listener = TcpListener::bind(config.listen)
                .await
                .with_context(|| format!("cannot bind listen address {}", config.listen))?;
            let admin = TcpListener::bind(config.admin.listen)
                .await
                .with_context(|| format!("cannot bind admin.listen {}", config.admin.listen))?;
            let gateway = Gateway::start(config, listener, admin).await?;
            if print_addrs {
                println!(
                    "{}",
                    serde_json::json!({"proxy": gateway.proxy_addr, "admin": gateway.admin_addr})
                );
            }
            shutdown_signal().await;
            tracing::info!("shutdown signal received; finishing in-flight requests");
            gateway.shutdown().await;
            Ok(())
        }
        Command::Demo {
            listen,
            admin_listen,
            clusters,
        } => demo(listen, admin_listen, clusters.max(1)).await,
        Command::FakeTrino {
            listen,
            name,
            pages,
            rows_per_page,
            queued_polls,
            delay_ms,
            ignore_forwarded,
        } => {
            sluice::telemetry::init(LogFormat::Text, "warn");
            let listener = TcpListener::bind(listen).await?;
            let fake = FakeTrino::start(
                listener,
                FakeOptions {
                    name,
                    pages,
                    rows_per_page,
                    queued_polls,
                    delay_ms,
                    honor_forwarded: !ignore_forwarded,
                    starting: false,
                },
            )?;
            println!("{}", serde_json::json!({"addr": fake.addr}));
            shutdown_signal().await;
            fake.stop().await;
            Ok(())
        }
    }
}

async fn demo(listen: SocketAddr, admin_listen: SocketAddr, clusters: usize) -> anyhow::Result<()> {
    sluice::telemetry::init(LogFormat::Text, "info");
    let mut fakes = Vec::new();
    let mut config = Config::default();
    for i in 0..clusters {
        let group = if i % 2 == 0 { "adhoc" } else { "etl" };
        let name = format!("{group}-{}", i / 2 + 1);
        let fake = FakeTrino::start(
            TcpListener::bind("127.0.0.1:0").await?,
            FakeOptions {
                name: name.clone(),
                ..FakeOptions::default()
            },
        )?;
        config.backends.push(BackendConfig {
            name,
            url: fake.url(),
            group: group.into(),
            active: true,
            external_url: None,
            rewrite_next_uri: false,
            stats: Some(StatsSource::UiApi),
        });
        fakes.push(fake);
    }
    config.listen = listen;
    config.admin.listen = admin_listen;
    config.health.interval_ms = 1000;
    // the demo keeps its L3 in memory rather than leaving a sluice.db behind
    config.store.url = "sqlite::memory:".into();
    config.validate().map_err(|e| anyhow::anyhow!(e.text))?;
    let listener = TcpListener::bind(listen)
        .await
        .with_context(|| format!("cannot bind {listen} (try --listen 127.0.0.1:0)"))?;
    let admin = TcpListener::bind(admin_listen)
        .await
        .with_context(|| format!("cannot bind {admin_listen} (try --admin-listen 127.0.0.1:0)"))?;
    let gateway = Gateway::start(config.clone(), listener, admin).await?;
    let p = gateway.proxy_addr;
    println!(
        "Sluice demo is running: {} fake Trino clusters behind one gateway.\n",
        fakes.len()
    );
    for (b, f) in config.backends.iter().zip(&fakes) {
        println!("  cluster {:<8} group {:<6} {}", b.name, b.group, f.url());
    }
    println!(
        "\nPoint any Trino client at http://{p}:\n\
         \n  trino --server http://{p} --user demo --execute 'SELECT 1'\
         \n  python3 -c \"import trino; c = trino.dbapi.connect(host='{h}', port={port}, user='demo').cursor(); c.execute('SELECT 1'); print(c.fetchall())\"\
         \n  curl -s -H 'X-Trino-User: demo' -H 'X-Trino-Routing-Group: etl' -d 'SELECT 1' http://{p}/v1/statement\
         \n\nBackend health: curl -s http://{a}/api/v1/backends\nPress Ctrl-C to stop.",
        h = p.ip(),
        port = p.port(),
        a = gateway.admin_addr,
    );
    shutdown_signal().await;
    gateway.shutdown().await;
    for f in fakes {
        f.stop().await;
    }
    Ok(())
}

async fn shutdown_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
            .expect("SIGTERM handler");
        tokio::select! {
            _ = ctrl_c => {}
            _ = term.recv() => {}
        }
    }
    #[cfg(not(unix))]
    {
        let _ = ctrl_c.await;
    }
}
