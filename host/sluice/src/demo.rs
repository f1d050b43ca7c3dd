//! `sluice demo`: the gateway in front of in-process fake clusters, with the config a first
//! try needs (an in-memory store; an admin and a viewer token, from `SLUICE_ADMIN_TOKEN` and
//! `SLUICE_VIEWER_TOKEN` or made up at start, printed with the console's address).
use std::net::SocketAddr;

use anyhow::Context;
use sluice_config::{BackendConfig, Config, LogFormat, Role, StatsSource, TokenConfig};
use sluice_fake_trino::{FakeOptions, FakeTrino};
use sluice_gateway::Gateway;
use tokio::net::TcpListener;

use crate::{shutdown_signal, telemetry};

/// Run the demo until SIGTERM or Ctrl-C.
pub async fn run(
    listen: SocketAddr,
    admin_listen: SocketAddr,
    clusters: usize,
) -> anyhow::Result<()> {
    telemetry::init(LogFormat::Text, "info");
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
            stats: Some(StatsSource::UiApi),
            ..BackendConfig::new(name, group, fake.url())
        });
        fakes.push(fake);
    }
    config.listen = listen;
    config.admin.listen = admin_listen;
    config.health.interval_ms = 1000;
    // the demo keeps its L3 in memory rather than leaving a sluice.db behind
    config.store.url = "sqlite::memory:".into();
    // an admin and a viewer token, for the console and the CLI: SLUICE_ADMIN_TOKEN and
    // SLUICE_VIEWER_TOKEN when set, else made up now and printed below
    let token = |var: &str, prefix: &str| {
        std::env::var(var)
            .ok()
            .filter(|t| !t.is_empty())
            .unwrap_or_else(|| {
                use rand::RngExt;
                let mut bytes = [0u8; 16];
                rand::rng().fill(&mut bytes[..]);
                let hex: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
                format!("{prefix}-{hex}")
            })
    };
    let admin_token = token("SLUICE_ADMIN_TOKEN", "demo-admin");
    let viewer_token = token("SLUICE_VIEWER_TOKEN", "demo-viewer");
    for (t, role) in [(&admin_token, Role::Admin), (&viewer_token, Role::Viewer)] {
        config.admin.tokens.push(TokenConfig {
            token: Some(t.clone()),
            token_sha256: None,
            role,
        });
    }
    config
        .validate()
        .and_then(|()| sluice_filters::check_config(&config))?;
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
         \n\nConsole:        http://{a}/  (log in with one of these tokens)\
         \n  admin token:  {admin_token}\
         \n  viewer token: {viewer_token}\
         \nBackend health: curl -s -H 'Authorization: Bearer {viewer_token}' http://{a}/api/v1/backends\
         \nFilters:        SLUICE_ADMIN_TOKEN={admin_token} sluice filter list --admin-url http://{a}\
         \nPress Ctrl-C to stop.",
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
