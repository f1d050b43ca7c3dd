//! `sluice backend …` and `sluice reload`: each subcommand is one admin API call (a drain with
//! `--wait` then polls until the backend reports `drained`).
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::Method;
use serde_json::{json, Map, Value};
use sluice_admin::api::{BackendView, ReloadReport, Removed};

use crate::admin_client::AdminClient;
use crate::cli::BackendCommand;
use crate::filter_cmd::{typed, Printer, UNRESERVED_KEPT};

/// `GET /api/v1/backends` as a table.
fn print_backends(list: &[BackendView]) {
    println!(
        "{:<16} {:<10} {:<9} {:<10} {:>7} {:>7}  URL",
        "NAME", "GROUP", "STATE", "HEALTH", "RUNNING", "QUEUED"
    );
    for b in list {
        println!(
            "{:<16} {:<10} {:<9} {:<10} {:>7} {:>7}  {}",
            b.name,
            b.group,
            b.state,
            b.status.health,
            b.status.running_queries,
            b.status.queued_queries,
            b.url
        );
    }
}

fn print_backend(b: &BackendView) {
    println!(
        "backend {} ({}, group {}): {}, {}",
        b.name, b.url, b.group, b.state, b.status.health
    );
}

/// `None` for `""` (a cleared setting), the value otherwise.
fn cleared(v: String) -> Value {
    match v.is_empty() {
        true => Value::Null,
        false => Value::String(v),
    }
}

/// Run one `sluice backend` subcommand against `admin_url`.
pub async fn run(admin_url: &str, json_out: bool, command: BackendCommand) -> anyhow::Result<()> {
    let api = AdminClient::new(admin_url, std::env::var("SLUICE_ADMIN_TOKEN").ok())?;
    let path = |name: &str| {
        format!(
            "/api/v1/backends/{}",
            percent_encoding::utf8_percent_encode(name, UNRESERVED_KEPT)
        )
    };
    let send = |method: Method, path: String, body: Option<Value>| {
        let api = &api;
        async move {
            let (ct, bytes) = match body {
                Some(b) => (
                    Some("application/json"),
                    Bytes::from(serde_json::to_vec(&b)?),
                ),
                None => (None, Bytes::new()),
            };
            api.call(method, &path, ct, bytes).await
        }
    };
    let one = || typed(print_backend);
    let (answer, print): (Value, Printer) = match command {
        BackendCommand::List => (
            api.get("/api/v1/backends").await?,
            typed(|l: &Vec<BackendView>| print_backends(l)),
        ),
        BackendCommand::Add {
            name,
            url,
            group,
            external_url,
            inactive,
            stats,
            rewrite_next_uri,
            max_queries,
        } => {
            let body = json!({
                "name": name, "url": url, "group": group, "external_url": external_url,
                "active": !inactive, "stats": stats, "rewrite_next_uri": rewrite_next_uri,
                "max_queries": max_queries,
            });
            let answer = send(Method::POST, "/api/v1/backends".into(), Some(body)).await?;
            (answer, one())
        }
        BackendCommand::Update {
            name,
            url,
            group,
            external_url,
            stats,
            rewrite_next_uri,
            max_queries,
        } => {
            let mut patch = Map::new();
            if let Some(v) = max_queries {
                let limit = match v.trim() {
                    "" => Value::Null,
                    n => n.parse::<u32>().map(Value::from).map_err(|_| {
                        anyhow::anyhow!("--max-queries: '{n}' is not a number (\"\" for no limit)")
                    })?,
                };
                patch.insert("max_queries".into(), limit);
            }
            if let Some(v) = url {
                patch.insert("url".into(), v.into());
            }
            if let Some(v) = group {
                patch.insert("group".into(), v.into());
            }
            if let Some(v) = external_url {
                patch.insert("external_url".into(), cleared(v));
            }
            if let Some(v) = stats {
                patch.insert("stats".into(), cleared(v));
            }
            if let Some(v) = rewrite_next_uri {
                patch.insert("rewrite_next_uri".into(), v.into());
            }
            anyhow::ensure!(!patch.is_empty(), "nothing to update: give --url, --group, --external-url, --stats, --rewrite-next-uri or --max-queries");
            let answer = send(Method::PATCH, path(&name), Some(Value::Object(patch))).await?;
            (answer, one())
        }
        BackendCommand::Remove { name, force } => {
            let at = format!("{}{}", path(&name), if force { "?force=true" } else { "" });
            let print = |r: &Removed| println!("backend {} removed", r.removed);
            (send(Method::DELETE, at, None).await?, typed(print))
        }
        BackendCommand::Activate { name } => {
            let at = format!("{}/activate", path(&name));
            (send(Method::POST, at, None).await?, one())
        }
        BackendCommand::Deactivate { name } => {
            let at = format!("{}/deactivate", path(&name));
            (send(Method::POST, at, None).await?, one())
        }
        BackendCommand::Drain {
            name,
            wait,
            timeout_s,
        } => {
            let at = format!("{}/drain", path(&name));
            let mut answer = send(Method::POST, at, None).await?;
            if wait {
                let deadline = Instant::now() + Duration::from_secs(timeout_s);
                while answer.get("state").and_then(Value::as_str) != Some("drained") {
                    anyhow::ensure!(
                        Instant::now() < deadline,
                        "backend {name} is not drained after {timeout_s} s"
                    );
                    tokio::time::sleep(Duration::from_millis(500)).await;
                    answer = api.get(&path(&name)).await?;
                }
            }
            (answer, one())
        }
    };
    if json_out {
        println!("{}", serde_json::to_string_pretty(&answer)?);
    } else {
        print(&answer)?;
    }
    Ok(())
}

/// `sluice reload`: `POST /api/v1/reload`; fails when the gateway refused the file.
pub async fn reload(admin_url: &str, json_out: bool) -> anyhow::Result<()> {
    let api = AdminClient::new(admin_url, std::env::var("SLUICE_ADMIN_TOKEN").ok())?;
    let answer = api
        .call(Method::POST, "/api/v1/reload", None, Bytes::new())
        .await?;
    if json_out {
        println!("{}", serde_json::to_string_pretty(&answer)?);
        return Ok(());
    }
    let report: ReloadReport = serde_json::from_value(answer)?;
    println!(
        "reloaded {}: applied [{}]",
        report.path.unwrap_or_default(),
        report.applied.join(", ")
    );
    if !report.restart_needed.is_empty() {
        println!("needs a restart: {}", report.restart_needed.join(", "));
    }
    Ok(())
}
