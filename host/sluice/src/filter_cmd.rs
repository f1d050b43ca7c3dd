//! `sluice filter …`: each subcommand is one admin API call; the answer is printed as a table
//! (from the typed bodies of `sluice_admin::api`) or, with `--json`, as the server sent it.
use std::path::PathBuf;

use anyhow::Context;
use bytes::Bytes;
use http::Method;
use serde::de::DeserializeOwned;
use serde_json::Value;

use crate::admin_client::{self as client, AdminClient};
use crate::cli::FilterCommand;
use sluice_admin::api::ChainOrder;

/// Prints an answer, once it is read as the type the endpoint returns.
pub(crate) type Printer = Box<dyn Fn(&Value) -> anyhow::Result<()>>;

/// A printer of answers of type `T`.
pub(crate) fn typed<T: DeserializeOwned + 'static>(print: fn(&T)) -> Printer {
    Box::new(move |v: &Value| {
        let answer: T = serde_json::from_value(v.clone())
            .context("the admin API answered in an unexpected shape")?;
        print(&answer);
        Ok(())
    })
}

/// Everything but URL-unreserved characters is percent-encoded (slot names use `-` and `_`).
pub(crate) const UNRESERVED_KEPT: &percent_encoding::AsciiSet = &percent_encoding::NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'_')
    .remove(b'.')
    .remove(b'~');

/// Run one `sluice filter` subcommand against `admin_url`.
pub async fn run(admin_url: &str, json: bool, command: FilterCommand) -> anyhow::Result<()> {
    if let FilterCommand::Builtin { name, file } = &command {
        let bytes = sluice_filters::builtin::bytes(name).ok_or_else(|| {
            anyhow::anyhow!(
                "no builtin filter '{name}' (there are: {})",
                sluice_filters::builtin::NAMES.join(", ")
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
    let (answer, print): (Value, Printer) = match command {
        FilterCommand::Builtin { .. } => unreachable!("handled above"),
        FilterCommand::List => (
            api.get("/api/v1/filters").await?,
            typed(|l: &Vec<_>| client::print_filters(l)),
        ),
        FilterCommand::Push { slot, file, config } => {
            let module = read(&file)?;
            let answer = match config {
                Some(c) => {
                    let text = String::from_utf8(read(&c)?)
                        .with_context(|| format!("{} is not UTF-8", c.display()))?;
                    let (ct, body) = sluice_http::multipart::upload(&module, &text);
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
            (answer, typed(client::print_swap))
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
            (answer, typed(client::print_swap))
        }
        FilterCommand::Rollback { slot } => {
            let path = format!("{}/rollback", slot_path(&slot));
            (
                api.call(Method::POST, &path, None, Bytes::new()).await?,
                typed(client::print_swap),
            )
        }
        FilterCommand::Activate { slot, version } => {
            let path = format!("{}/activate/{version}", slot_path(&slot));
            (
                api.call(Method::POST, &path, None, Bytes::new()).await?,
                typed(client::print_swap),
            )
        }
        FilterCommand::Versions { slot } => {
            let path = format!("{}/versions", slot_path(&slot));
            (
                api.get(&path).await?,
                typed(|l: &Vec<_>| client::print_versions(l)),
            )
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
            let print = |o: &ChainOrder| println!("chain order: {}", o.order.join(" -> "));
            (answer, typed(print))
        }
        FilterCommand::Fleet => (api.get("/api/v1/fleet").await?, typed(client::print_fleet)),
    };
    if json {
        println!("{}", serde_json::to_string_pretty(&answer)?);
    } else {
        print(&answer)?;
    }
    Ok(())
}
