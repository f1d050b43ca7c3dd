//! Trino Gateway's configuration file as Sluice's: [`load`] (for `serve --trino-gateway-config`
//! and `check-config --trino-gateway`) and [`convert`] (for `convert-config`), on top of
//! [`crate::translate`].
use std::path::Path;

use sluice_config::{Config, Invalid};

use crate::document::{Note, Secrets, TgError};
use crate::translate;

/// A check the caller adds to the configuration's own (which filters exist).
pub type Check<'a> = &'a dyn Fn(&Config) -> Result<(), Invalid>;

/// The Trino Gateway file at `path` as Sluice's checked configuration, and the keys not honoured.
pub fn load(
    path: &Path,
    env: &dyn Fn(&str) -> Option<String>,
    check: Check<'_>,
) -> Result<(Config, Vec<Note>), TgError> {
    let t = translate::translate(path, env, Secrets::Values)?;
    let text = serde_yaml::to_string(&t.native).map_err(|e| TgError::Native(e.to_string()))?;
    // the values are final: nothing left for Sluice's own substitution
    let text = text.replace("${", "$${");
    let config = Config::from_yaml_with(&text, &|_| None, check)
        .map_err(|e| TgError::Native(e.to_string()))?;
    Ok((config, t.notes))
}

/// The Trino Gateway file at `path` as the text of Sluice's configuration file (secrets as
/// environment references), checked, and the keys not honoured.
pub fn convert(
    path: &Path,
    env: &dyn Fn(&str) -> Option<String>,
    check: Check<'_>,
) -> Result<(String, Vec<Note>), TgError> {
    let t = translate::translate(path, env, Secrets::References)?;
    let body = serde_yaml::to_string(&t.native).map_err(|e| TgError::Native(e.to_string()))?;
    let mut text = format!(
        "# Sluice's configuration, converted from Trino Gateway's {} by `sluice convert-config`.\n\
         # Check it with `sluice check-config FILE`; docs/migrate.md explains each part.\n",
        path.display()
    );
    for n in &t.notes {
        text.push_str(&format!("#   {}: {}\n", n.key, n.instead));
    }
    text.push_str(&body);
    // references are checked as set: their values are the operator's, at start
    Config::from_yaml_with(&text, &|v| env(v).or_else(|| Some("x".repeat(16))), check)
        .map_err(|e| TgError::Native(e.to_string()))?;
    Ok((text, t.notes))
}
