//! A Trino Gateway configuration file as Sluice's configuration: each section read by its own
//! function of [`crate::sections`], building Sluice's YAML document; every key not honoured is a
//! [`Note`](crate::Note) saying what Sluice does instead.
use std::path::Path;

use serde_yaml::Value;

use crate::document::{Native, Note, Secrets, Section, TgError};
use crate::subst;

/// What reading a Trino Gateway file gives.
pub struct Translated {
    /// Sluice's configuration, as a YAML document.
    pub native: Value,
    /// Every key not honoured as Trino Gateway does.
    pub notes: Vec<Note>,
}

/// Read the Trino Gateway file at `path`, with environment variables from `env`.
pub fn translate(
    path: &Path,
    env: &dyn Fn(&str) -> Option<String>,
    secrets: Secrets,
) -> Result<Translated, TgError> {
    let text = std::fs::read_to_string(path).map_err(|source| TgError::Read {
        path: path.to_path_buf(),
        source,
    })?;
    let substituted = subst::substitute(&text, env).map_err(|source| TgError::Subst {
        path: path.to_path_buf(),
        source,
    })?;
    let yaml = |t: &str| {
        serde_yaml::from_str::<Value>(t).map_err(|source| TgError::Yaml {
            path: path.to_path_buf(),
            source,
        })
    };
    let value = yaml(&substituted)?;
    // the file as written, for the references secrets were given by
    let raw = yaml(&text).unwrap_or(Value::Null);
    if !value.is_mapping() {
        return Err(TgError::invalid("(file)", "a YAML mapping of sections"));
    }
    let top = Section::new("", Some(&value), Some(&raw));
    let mut native = Native::default();
    let mut notes = Vec::new();
    let base = path.parent().unwrap_or(Path::new("."));
    crate::sections::all(&top, &mut native, &mut notes, secrets, base, env)?;
    top.rest(
        &mut notes,
        "not a Trino Gateway setting Sluice knows; ignored",
    );
    Ok(Translated {
        native: Value::Mapping(native.0),
        notes,
    })
}
