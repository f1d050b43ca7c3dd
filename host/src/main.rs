//! The `sluice` command line: `serve`, `check-config`, `demo`, `filter`, `fake-trino`.
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
    /// Drive the routing filters of a running gateway through its admin API.
    Filter {
        /// The admin listener (`admin.listen` of the gateway).
        #[arg(
            long,
            env = "SLUICE_ADMIN_URL",
            default_value = "http://127.0.0.1:8081",
            global = true
        )]
        admin_url: String,
        /// Print the server's JSON answer instead of a summary.
        #[arg(long, global = true)]
        json: bool,
        #[command(subcommand)]
        command: FilterCommand,
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
        /// Keep at most this many queries, forgetting the oldest never polled (0: all).
        #[arg(long, default_value_t = 0)]
        max_queries: usize,
    },
}

/// `sluice filter …` (the token comes from `SLUICE_ADMIN_TOKEN`).
#[derive(Subcommand)]
enum FilterCommand {
    /// Each slot with its active version, sha256 and counters.
    List,
    /// Upload a component into a slot (created at the end of the chain if new).
    Push {
        slot: String,
        /// The component (`cargo build --target wasm32-wasip2 --release` output).
        file: PathBuf,
        /// The slot's config, YAML or JSON (default: none).
        #[arg(long)]
        config: Option<PathBuf>,
    },
    /// Run the slot's module with a new config (YAML or JSON file).
    Config { slot: String, file: PathBuf },
    /// Go back to the version before the active one.
    Rollback { slot: String },
    /// Make a stored version active again.
    Activate { slot: String, version: i64 },
    /// The versions of a slot kept in the store.
    Versions { slot: String },
    /// Put the chain's slots in this order.
    Order {
        #[arg(required = true)]
        slots: Vec<String>,
    },
    /// Which instance of the fleet runs which version.
    Fleet,
    /// Write a filter shipped in this binary (query-count, stochastic, routing-rules) to a file.
    Builtin { name: String, file: PathBuf },
}

/// mimalloc: the proxy path allocates per request (headers, bodies, futures), and glibc's malloc
/// showed up at ~6% of the follow-up path's CPU in a profile.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

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
        Command::Filter {
            admin_url,
            json,
            command,
        } => filter_command(&admin_url, json, command).await,
        Command::FakeTrino {
            listen,
            name,
            pages,
            rows_per_page,
            queued_polls,
            delay_ms,
            ignore_forwarded,
            max_queries,
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
                    max_queries,
                },
            )?;
            println!("{}", serde_json::json!({"addr": fake.addr}));
            shutdown_signal().await;
            fake.stop().await;
            Ok(())
        }
    }
}

/// Everything but URL-unreserved characters is percent-encoded (slot names use `-` and `_`).
const UNRESERVED_KEPT: &percent_encoding::AsciiSet = &percent_encoding::NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'_')
    .remove(b'.')
    .remove(b'~');

async fn filter_command(admin_url: &str, json: bool, command: FilterCommand) -> anyhow::Result<()> {
    use bytes::Bytes;
    use http::Method;
    use sluice::admin::client::{self, AdminClient};
    if let FilterCommand::Builtin { name, file } = &command {
        let bytes = sluice::filters::builtin::bytes(name).ok_or_else(|| {
            anyhow::anyhow!(
                "no builtin filter '{name}' (there are: {})",
                sluice::filters::builtin::NAMES.join(", ")
            )
        })?;
        std::fs::write(file, bytes).with_context(|| format!("cannot write {}", file.display()))?;
        println!("wrote {} ({} bytes)", file.display(), bytes.len());
        return Ok(());
    }
    let api = AdminClient::new(admin_url, std::env::var("SLUICE_ADMIN_TOKEN").ok())?;
    let slot_path = |slot: &str| {
        format!(
            "/api/v1/filters/{}",
            percent_encoding::utf8_percent_encode(slot, UNRESERVED_KEPT)
        )
    };
    let read = |path: &PathBuf| {
        std::fs::read(path).with_context(|| format!("cannot read {}", path.display()))
    };
    let (answer, print): (serde_json::Value, fn(&serde_json::Value)) = match command {
        FilterCommand::Builtin { .. } => unreachable!("handled above"),
        FilterCommand::List => (api.get("/api/v1/filters").await?, client::print_filters),
        FilterCommand::Push { slot, file, config } => {
            let module = read(&file)?;
            let answer = match config {
                Some(c) => {
                    let text = String::from_utf8(read(&c)?)
                        .with_context(|| format!("{} is not UTF-8", c.display()))?;
                    let (ct, body) = client::multipart_upload(&module, &text);
                    api.call(Method::PUT, &slot_path(&slot), Some(&ct), body)
                        .await?
                }
                None => {
                    api.call(
                        Method::PUT,
                        &slot_path(&slot),
                        Some("application/wasm"),
                        module.into(),
                    )
                    .await?
                }
            };
            (answer, client::print_swap)
        }
        FilterCommand::Config { slot, file } => {
            let path = format!("{}/config", slot_path(&slot));
            let answer = api
                .call(
                    Method::PUT,
                    &path,
                    Some("application/yaml"),
                    read(&file)?.into(),
                )
                .await?;
            (answer, client::print_swap)
        }
        FilterCommand::Rollback { slot } => {
            let path = format!("{}/rollback", slot_path(&slot));
            (
                api.call(Method::POST, &path, None, Bytes::new()).await?,
                client::print_swap,
            )
        }
        FilterCommand::Activate { slot, version } => {
            let path = format!("{}/activate/{version}", slot_path(&slot));
            (
                api.call(Method::POST, &path, None, Bytes::new()).await?,
                client::print_swap,
            )
        }
        FilterCommand::Versions { slot } => {
            let path = format!("{}/versions", slot_path(&slot));
            (api.get(&path).await?, client::print_versions)
        }
        FilterCommand::Order { slots } => {
            let body = serde_json::to_vec(&serde_json::json!({ "order": slots }))?;
            let answer = api
                .call(
                    Method::PUT,
                    "/api/v1/chain",
                    Some("application/json"),
                    body.into(),
                )
                .await?;
            (answer, |v| {
                let order: Vec<&str> = v["order"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .filter_map(|s| s.as_str())
                    .collect();
                println!("chain order: {}", order.join(" -> "));
            })
        }
        FilterCommand::Fleet => (api.get("/api/v1/fleet").await?, client::print_fleet),
    };
    if json {
        println!("{}", serde_json::to_string_pretty(&answer)?);
    } else {
        print(&answer);
    }
    Ok(())
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
    // with SLUICE_ADMIN_TOKEN set, `sluice filter push` can swap filters into the demo
    let admin_token = std::env::var("SLUICE_ADMIN_TOKEN")
        .ok()
        .filter(|t| !t.is_empty());
    if let Some(token) = &admin_token {
        config.admin.tokens.push(sluice::config::TokenConfig {
            token: Some(token.clone()),
            token_sha256: None,
            role: sluice::config::Role::Admin,
        });
    }
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
         \n\nBackend health: curl -s http://{a}/api/v1/backends\
         \nFilters:        sluice filter list --admin-url http://{a}{swap}\
         \nPress Ctrl-C to stop.",
        h = p.ip(),
        port = p.port(),
        a = gateway.admin_addr,
        swap = if admin_token.is_some() {
            "   (SLUICE_ADMIN_TOKEN is the admin token: `sluice filter push` works)"
        } else {
            "   (read-only: set SLUICE_ADMIN_TOKEN to allow `sluice filter push`)"
        },
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
