//! The document being read and the one being built: a section of Trino Gateway's file that
//! remembers which keys were used ([`Section`]), Sluice's YAML document ([`Native`]), a key not
//! honoured ([`Note`]), how secrets are written ([`Secrets`]), and why a file cannot be used
//! ([`TgError`]).
use std::cell::RefCell;
use std::collections::BTreeSet;
use std::path::PathBuf;

use serde_yaml::{Mapping, Value};

use crate::subst;

/// A key of the file Sluice does not honour as Trino Gateway does, and what it does instead.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Note {
    /// The key's path (`monitor.retries`).
    pub key: String,
    /// What Sluice does instead.
    pub instead: String,
}

/// The notes of one reading.
pub(crate) type Notes = Vec<Note>;

/// Add a note.
pub(crate) fn note(notes: &mut Notes, key: impl Into<String>, instead: impl Into<String>) {
    notes.push(Note {
        key: key.into(),
        instead: instead.into(),
    });
}

/// Why a Trino Gateway file cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum TgError {
    /// The file cannot be read.
    #[error("cannot read {}: {source}", path.display())]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// An environment reference cannot be resolved.
    #[error("{}: {source}", path.display())]
    Subst {
        /// The file.
        path: PathBuf,
        /// What.
        source: subst::SubstError,
    },
    /// Not YAML.
    #[error("{}: {source}", path.display())]
    Yaml {
        /// The file.
        path: PathBuf,
        /// What.
        source: serde_yaml::Error,
    },
    /// A value Sluice cannot use.
    #[error("{key}: {message}")]
    Invalid {
        /// The key's path.
        key: String,
        /// What is wrong.
        message: String,
    },
    /// The translation is not a valid Sluice configuration.
    #[error("as Sluice's configuration: {0}")]
    Native(String),
}

impl TgError {
    pub(crate) fn invalid(key: &str, message: impl Into<String>) -> TgError {
        TgError::Invalid {
            key: key.to_string(),
            message: message.into(),
        }
    }
}

/// How secrets (passwords) are written into Sluice's configuration.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Secrets {
    /// Their values (the configuration runs in memory, never written anywhere).
    Values,
    /// Environment references (`sluice convert-config` writes a file): the file's own reference
    /// when it had one, else `${SLUICE_…}` named in a note.
    References,
}

/// One section (a mapping) of the file being read: which of its keys were used.
pub(crate) struct Section<'a> {
    pub(crate) path: String,
    map: Option<&'a Mapping>,
    raw: Option<&'a Mapping>,
    used: RefCell<BTreeSet<String>>,
}

impl<'a> Section<'a> {
    pub(crate) fn new(path: &str, value: Option<&'a Value>, raw: Option<&'a Value>) -> Self {
        Section {
            path: path.to_string(),
            map: value.and_then(Value::as_mapping),
            raw: raw.and_then(Value::as_mapping),
            used: RefCell::new(BTreeSet::new()),
        }
    }

    /// Whether the file has this section.
    pub(crate) fn present(&self) -> bool {
        self.map.is_some()
    }

    /// The value of `key`, marked as used.
    pub(crate) fn get(&self, key: &str) -> Option<&'a Value> {
        let v = self.map?.get(key)?;
        self.used.borrow_mut().insert(key.to_string());
        (!v.is_null()).then_some(v)
    }

    /// `key` as a sub-section.
    pub(crate) fn section(&self, key: &str) -> Section<'a> {
        let value = self.get(key);
        let raw = self.raw.and_then(|r| r.get(key));
        Section::new(&self.key(key), value, raw)
    }

    pub(crate) fn str(&self, key: &str) -> Option<String> {
        self.get(key).and_then(|v| match v {
            Value::String(s) => Some(s.clone()),
            Value::Number(n) => Some(n.to_string()),
            Value::Bool(b) => Some(b.to_string()),
            _ => None,
        })
    }

    pub(crate) fn u64(&self, key: &str) -> Result<Option<u64>, TgError> {
        match self.get(key) {
            None => Ok(None),
            Some(Value::Number(n)) => n
                .as_u64()
                .map(Some)
                .ok_or_else(|| TgError::invalid(&self.key(key), "a whole number ≥ 0")),
            Some(Value::String(s)) => s
                .trim()
                .parse()
                .map(Some)
                .map_err(|_| TgError::invalid(&self.key(key), format!("'{s}' is not a number"))),
            Some(_) => Err(TgError::invalid(&self.key(key), "a number")),
        }
    }

    pub(crate) fn bool(&self, key: &str) -> Result<Option<bool>, TgError> {
        match self.get(key) {
            None => Ok(None),
            Some(Value::Bool(b)) => Ok(Some(*b)),
            Some(Value::String(s)) if s.eq_ignore_ascii_case("true") => Ok(Some(true)),
            Some(Value::String(s)) if s.eq_ignore_ascii_case("false") => Ok(Some(false)),
            Some(_) => Err(TgError::invalid(&self.key(key), "true or false")),
        }
    }

    /// A secret: its value, or as [`Secrets::References`] asks, an environment reference.
    pub(crate) fn secret(
        &self,
        key: &str,
        secrets: Secrets,
        fallback_var: &str,
        notes: &mut Vec<Note>,
    ) -> Option<String> {
        let value = self.str(key).filter(|s| !s.is_empty())?;
        if secrets == Secrets::Values {
            return Some(value);
        }
        let raw = self.raw.and_then(|r| r.get(key)).and_then(Value::as_str);
        match raw.and_then(subst::whole_reference) {
            Some(r) => Some(r.sluice_form()),
            None => {
                notes.push(Note {
                    key: self.key(key),
                    instead: format!(
                        "written as ${{{fallback_var}}}: set that variable (Sluice writes no secret into a file)"
                    ),
                });
                Some(format!("${{{fallback_var}}}"))
            }
        }
    }

    /// An airlift duration (`10s`, `2m`, `500ms`, or a number of `unit`s) in milliseconds.
    pub(crate) fn duration_ms(&self, key: &str, unit_ms: u64) -> Result<Option<u64>, TgError> {
        let Some(text) = self.str(key) else {
            return Ok(None);
        };
        let t = text.trim();
        if let Ok(n) = t.parse::<f64>() {
            return Ok(Some((n * unit_ms as f64) as u64));
        }
        let split = t
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .unwrap_or(t.len());
        let (num, unit) = t.split_at(split);
        let per = match unit.trim() {
            "ns" => 0.000_001,
            "us" => 0.001,
            "ms" => 1.0,
            "s" => 1000.0,
            "m" => 60_000.0,
            "h" => 3_600_000.0,
            "d" => 86_400_000.0,
            _ => {
                return Err(TgError::invalid(
                    &self.key(key),
                    format!("'{text}' is not a duration"),
                ))
            }
        };
        num.parse::<f64>()
            .map(|n| Some((n * per) as u64))
            .map_err(|_| TgError::invalid(&self.key(key), format!("'{text}' is not a duration")))
    }

    pub(crate) fn key(&self, key: &str) -> String {
        match self.path.is_empty() {
            true => key.to_string(),
            false => format!("{}.{key}", self.path),
        }
    }

    /// Note every key of the section that was not used.
    pub(crate) fn rest(&self, notes: &mut Vec<Note>, instead: &str) {
        let Some(map) = self.map else { return };
        for k in map.keys().filter_map(Value::as_str) {
            if !self.used.borrow().contains(k) {
                notes.push(Note {
                    key: self.key(k),
                    instead: instead.to_string(),
                });
            }
        }
    }
}

/// Sluice's configuration document being built.
#[derive(Default)]
pub(crate) struct Native(pub(crate) Mapping);

impl Native {
    /// Set `path` (dotted) to `value`, creating the mappings on the way.
    pub(crate) fn set(&mut self, path: &str, value: impl Into<Value>) {
        let mut map = &mut self.0;
        let parts: Vec<&str> = path.split('.').collect();
        for part in &parts[..parts.len() - 1] {
            let entry = map
                .entry(Value::from(*part))
                .or_insert_with(|| Value::Mapping(Mapping::new()));
            if !entry.is_mapping() {
                *entry = Value::Mapping(Mapping::new());
            }
            map = entry.as_mapping_mut().expect("a mapping");
        }
        map.insert(Value::from(parts[parts.len() - 1]), value.into());
    }
}
