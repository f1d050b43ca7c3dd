//! The `sluice` command line: `serve`, `check-config`, `demo`, `filter`, `backend`, `reload`,
//! `fake-trino`.
//!
//! # Layout
//!
//! | module | one job |
//! | --- | --- |
//! | this file | parse the command line, start the runtime, run the command |
//! | [`cli`] | the subcommands and their flags |
//! | [`demo`] | `sluice demo`: the gateway in front of in-process fake clusters |
//! | [`filter_cmd`] | `sluice filter …` over the admin API |
//! | [`backend_cmd`] | `sluice backend …` and `sluice reload` over the admin API |
//! | [`tg_cmd`] | Trino Gateway's file read as it is, converted, and its database imported |
//! | [`admin_client`] | the admin API client and the tables it prints |
//! | [`telemetry`] | the `tracing` subscriber (text or JSON) |
#![forbid(unsafe_code)]
use std::process::ExitCode;

use anyhow::Context;
use clap::Parser;
use sluice_config::{Config, LogFormat, Serving};
use sluice_fake_trino::{FakeOptions, FakeTrino};
use sluice_gateway::Gateway;
use sluice_http::tls_server::ServerTls;
use tokio::net::TcpListener;

mod admin_client;
mod backend_cmd;
mod cli;
mod demo;
mod filter_cmd;
mod telemetry;
mod tg_cmd;

use cli::{Cli, Command};

/// mimalloc: the proxy path allocates per request (headers, bodies, futures), and glibc's malloc
/// showed up at ~6% of the follow-up path's CPU in a profile. Built without its transparent-huge-page
/// advice (`no_thp`): with it, khugepaged filled partly used 2 MiB ranges of the heap long after
/// start, and idle RSS was 41 MB instead of 29.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> ExitCode {
    let cli = Cli::parse();
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
        Command::CheckConfig {
            file,
            trino_gateway: false,
        } => check_config(&file).await,
        Command::CheckConfig {
            file,
            trino_gateway: true,
        } => tg_cmd::check(&file).await,
        Command::ConvertConfig { file, output } => tg_cmd::convert(&file, output),
        Command::Store {
            command:
                cli::StoreCommand::Import {
                    from_trino_gateway,
                    user,
                    store_url,
                    config,
                },
        } => tg_cmd::import(&from_trino_gateway, user.as_deref(), store_url, config).await,
        Command::Serve {
            config,
            trino_gateway_config,
            print_addrs,
        } => {
            let (config, source, notes) = match (&config, &trino_gateway_config) {
                (_, Some(path)) => {
                    let (config, source, notes) = tg_cmd::load(path)?;
                    (config, Some(source), notes)
                }
                (Some(path), None) => (
                    Config::load_with(path, &sluice_filters::check_config)
                        .map_err(|e| anyhow::anyhow!("invalid configuration: {e}"))?,
                    Some(path.clone().into()),
                    Vec::new(),
                ),
                (None, None) => (Config::default(), None, Vec::new()),
            };
            let telemetry = sluice_telemetry::init(&config.log, &config.tracing)?;
            tg_cmd::log_notes(&notes);
            // every client connection is a file descriptor: take all the system allows
            match rlimit::increase_nofile_limit(u64::MAX) {
                Ok(n) => tracing::info!(open_files = n, "file descriptor limit"),
                Err(e) => tracing::warn!(error = %e, "could not raise the file descriptor limit"),
            }
            // a thread per core: every worker binds its own socket on the address (SO_REUSEPORT)
            let listener = match config.proxy.serving {
                Serving::PerCore => sluice_http::per_core::bind_reuse_port(config.listen)
                    .and_then(TcpListener::from_std),
                Serving::Shared => TcpListener::bind(config.listen).await,
            }
            .with_context(|| format!("cannot bind listen address {}", config.listen))?;
            let admin = TcpListener::bind(config.admin.listen)
                .await
                .with_context(|| format!("cannot bind admin.listen {}", config.admin.listen))?;
            let gateway = Gateway::start_from(config, source, listener, admin).await?;
            if print_addrs {
                println!(
                    "{}",
                    serde_json::json!({"proxy": gateway.proxy_addr, "admin": gateway.admin_addr,
                                       "tls": gateway.tls_addr})
                );
            }
            serve_signals(&gateway).await;
            tracing::info!("shutdown signal received; finishing in-flight requests");
            gateway.shutdown().await;
            // the exporter's last batch goes out on this runtime: wait for it off its threads
            let _ = tokio::task::spawn_blocking(move || telemetry.shutdown()).await;
            Ok(())
        }
        Command::Backend { admin, command } => {
            backend_cmd::run(&admin.admin_url, admin.json, command).await
        }
        Command::Reload { admin } => backend_cmd::reload(&admin.admin_url, admin.json).await,
        Command::Rules {
            command:
                cli::RulesCommand::Import {
                    file,
                    slot,
                    default_group,
                },
        } => {
            let text = std::fs::read_to_string(&file)
                .with_context(|| format!("cannot read {}", file.display()))?;
            let (rules, problems) = sluice_trino_gateway::rules::translate(&text)
                .map_err(|e| anyhow::anyhow!("{}: {e}", file.display()))?;
            println!(
                "# translated from {} by `sluice rules import`; paste under routing.chain",
                file.display()
            );
            print!(
                "{}",
                sluice_trino_gateway::rules::slot_yaml(&slot, default_group.as_deref(), rules)
            );
            for p in &problems {
                eprintln!("not translated: {p}");
            }
            anyhow::ensure!(
                problems.is_empty(),
                "{} rule(s) not translated (named above); the output leaves them out",
                problems.len()
            );
            Ok(())
        }
        Command::Demo {
            listen,
            admin_listen,
            clusters,
        } => demo::run(listen, admin_listen, clusters.max(1)).await,
        Command::Filter { admin, command } => {
            filter_cmd::run(&admin.admin_url, admin.json, command).await
        }
        Command::FakeTrino {
            listen,
            name,
            pages,
            rows_per_page,
            queued_polls,
            delay_ms,
            ignore_forwarded,
            max_queries,
            tls_cert,
            tls_key,
        } => {
            telemetry::init(LogFormat::Text, "warn");
            let tls = match tls_cert.zip(tls_key) {
                Some((cert, key)) => Some(ServerTls::from_files("fake-trino", &cert, &key)?),
                None => None,
            };
            let listener = TcpListener::bind(listen)
                .await
                .with_context(|| format!("cannot bind --listen {listen}"))?;
            let fake = FakeTrino::start_tls(
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
                    require_authorization: None,
                },
                tls,
            )?;
            println!(
                "{}",
                serde_json::json!({"addr": fake.addr, "url": fake.url()})
            );
            shutdown_signal().await;
            fake.stop().await;
            Ok(())
        }
    }
}

/// `sluice check-config FILE`: exit 0 with a summary and any warnings, or exit 2 with what
/// would stop `serve`.
async fn check_config(file: &std::path::Path) -> anyhow::Result<()> {
    let refused = |e: String| -> anyhow::Result<()> {
        eprintln!("invalid configuration: {e}");
        std::process::exit(2)
    };
    let c = match Config::load_with(file, &sluice_filters::check_config) {
        Ok(c) => c,
        Err(e) => return refused(e.to_string()),
    };
    let warnings = match sluice_gateway::check::check(&c).await {
        Ok(w) => w,
        Err(e) => return refused(format!("{}: {e}", file.display())),
    };
    println!(
        "{}: OK ({} backends in groups {:?}, default group '{}')",
        file.display(),
        c.backends.len(),
        c.groups(),
        c.routing.default_group
    );
    for w in warnings {
        println!("warning: {w}");
    }
    Ok(())
}

/// Serve until SIGTERM or SIGINT: SIGHUP reloads the configuration file, and the other signals
/// that would end the process by default (SIGQUIT, SIGUSR1, SIGUSR2, SIGALRM) are logged and
/// ignored, so that only SIGTERM/SIGINT (graceful) and SIGKILL stop the gateway.
async fn serve_signals(gateway: &Gateway) {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        let handler = |kind| signal(kind).expect("signal handler");
        let mut hup = handler(SignalKind::hangup());
        let mut quit = handler(SignalKind::quit());
        let mut usr1 = handler(SignalKind::user_defined1());
        let mut usr2 = handler(SignalKind::user_defined2());
        let mut alarm = handler(SignalKind::alarm());
        let stop = shutdown_signal();
        tokio::pin!(stop);
        loop {
            let ignored = tokio::select! {
                _ = &mut stop => return,
                _ = hup.recv() => {
                    tracing::info!("SIGHUP: reloading the configuration file");
                    gateway.reload().await;
                    continue;
                }
                _ = quit.recv() => "SIGQUIT",
                _ = usr1.recv() => "SIGUSR1",
                _ = usr2.recv() => "SIGUSR2",
                _ = alarm.recv() => "SIGALRM",
            };
            tracing::warn!(
                signal = ignored,
                "signal ignored (SIGTERM or SIGINT stops the gateway, SIGHUP reloads)"
            );
        }
    }
    #[cfg(not(unix))]
    shutdown_signal().await
}

/// SIGTERM or Ctrl-C.
pub(crate) async fn shutdown_signal() {
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
