//! The commands for Trino Gateway's users: its configuration file read as it is
//! (`serve --trino-gateway-config`, `check-config --trino-gateway`, `convert-config`) and its
//! database copied into Sluice's tables (`store import --from-trino-gateway`).
use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::Context;
use sluice_config::Config;
use sluice_gateway::ConfigSource;
use sluice_store::Store;
use sluice_trino_gateway::Note;

fn env(var: &str) -> Option<String> {
    std::env::var(var).ok()
}

/// Trino Gateway's file as Sluice's configuration, the source a reload reads it from again, and
/// the keys not honoured.
pub fn load(path: &Path) -> anyhow::Result<(Config, ConfigSource, Vec<Note>)> {
    let (config, notes) = sluice_trino_gateway::load(path, &env, &sluice_filters::check_config)
        .map_err(|e| anyhow::anyhow!("invalid Trino Gateway configuration: {e}"))?;
    let source = ConfigSource::with_loader(
        path.to_path_buf(),
        Arc::new(|p: &Path| {
            let (config, notes) =
                sluice_trino_gateway::load(p, &env, &sluice_filters::check_config)
                    .map_err(|e| e.to_string())?;
            log_notes(&notes);
            Ok(config)
        }),
    );
    Ok((config, source, notes))
}

/// Each key not honoured, as a warning of the log.
pub fn log_notes(notes: &[Note]) {
    for n in notes {
        tracing::warn!(
            key = n.key,
            instead = n.instead,
            "Trino Gateway setting not honoured as such"
        );
    }
}

/// `sluice check-config --trino-gateway FILE`.
pub async fn check(file: &Path) -> anyhow::Result<()> {
    let (c, _, notes) = match load(file) {
        Ok(x) => x,
        Err(e) => {
            eprintln!("{e}");
            std::process::exit(2)
        }
    };
    let warnings = sluice_gateway::check::check(&c)
        .await
        .map_err(|e| anyhow::anyhow!("{}: {e}", file.display()))?;
    let tg = c.store.trino_gateway.as_ref();
    println!(
        "{}: OK as Trino Gateway's configuration (listen {}, admin {}, store {}, chain {:?}, default group '{}')",
        file.display(),
        c.listen,
        c.admin.listen,
        tg.map_or("none (embedded SQLite)".to_string(), |t| format!("Trino Gateway's database, Sluice's tables in schema '{}'", t.schema)),
        c.routing.chain.iter().map(|s| s.module.as_str()).collect::<Vec<_>>(),
        c.routing.default_group
    );
    for n in &notes {
        println!("not honoured: {}: {}", n.key, n.instead);
    }
    for w in warnings {
        println!("warning: {w}");
    }
    Ok(())
}

/// `sluice convert-config FILE [-o OUT]`.
pub fn convert(file: &Path, output: Option<PathBuf>) -> anyhow::Result<()> {
    let (text, notes) = sluice_trino_gateway::convert(file, &env, &sluice_filters::check_config)
        .map_err(|e| anyhow::anyhow!("invalid Trino Gateway configuration: {e}"))?;
    match output {
        Some(out) => {
            std::fs::write(&out, &text)
                .with_context(|| format!("cannot write {}", out.display()))?;
            eprintln!(
                "wrote {} ({} keys not honoured as such, named in its comments)",
                out.display(),
                notes.len()
            );
        }
        None => print!("{text}"),
    }
    Ok(())
}

/// `sluice store import --from-trino-gateway URL`.
pub async fn import(
    from: &str,
    user: Option<&str>,
    store_url: Option<String>,
    config: Option<PathBuf>,
) -> anyhow::Result<()> {
    let password = env("SLUICE_TG_DB_PASSWORD");
    let from = sluice_trino_gateway::import::source_url(from, user, password.as_deref())
        .map_err(|e| anyhow::anyhow!(e))?;
    let target = match (store_url, config) {
        (Some(u), _) => u,
        (None, Some(path)) => {
            Config::load_with(&path, &sluice_filters::check_config)
                .map_err(|e| anyhow::anyhow!("invalid configuration: {e}"))?
                .store
                .url
        }
        (None, None) => anyhow::bail!("name Sluice's store: --store-url URL or --config FILE"),
    };
    let tg = Store::open(&from)?;
    let store = Store::open(&target)?;
    let done = sluice_trino_gateway::import::import(&tg, &store)
        .await
        .context("importing Trino Gateway's tables")?;
    for (name, why) in &done.backends_refused {
        eprintln!("backend '{name}' not imported: {why}");
    }
    println!(
        "imported {} of {} backends (names already in the store kept theirs) and {} of {} history rows",
        done.backends_added, done.backends_read, done.history_added, done.history_read
    );
    Ok(())
}
