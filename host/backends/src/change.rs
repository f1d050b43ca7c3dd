//! A change to the backend list, as a pure function of the list: what the admin API and Trino
//! Gateway's API ask for, checked against the list (names, fields) before anything is written.
use serde::{Deserialize, Deserializer, Serialize};
use sluice_config::{BackendConfig, Invalid, StatsSource};

/// One change.
#[derive(Debug, Clone)]
pub enum Change {
    /// A new backend; its name must be free.
    Add(BackendConfig),
    /// New values for some fields of an existing backend.
    Update(String, BackendPatch),
    /// Add, or replace an existing backend whole (Trino Gateway's `POST /entity`).
    Upsert(BackendConfig),
    /// Take a backend out. Refused while it runs queries unless `force`.
    Remove {
        /// Its name.
        name: String,
        /// Remove even while it runs queries (their follow-ups then fail).
        force: bool,
    },
    /// Take new queries again (ends a drain).
    Activate(String),
    /// No new queries; follow-ups of running queries are still served.
    Deactivate(String),
    /// No new queries until it runs nothing; then it reports `drained`.
    Drain(String),
}

impl Change {
    /// The backend it is about.
    pub fn name(&self) -> &str {
        match self {
            Change::Add(b) | Change::Upsert(b) => &b.name,
            Change::Update(n, _)
            | Change::Activate(n)
            | Change::Deactivate(n)
            | Change::Drain(n) => n,
            Change::Remove { name, .. } => name,
        }
    }

    /// Its verb, for logs.
    pub fn verb(&self) -> &'static str {
        match self {
            Change::Add(_) => "added",
            Change::Update(..) => "updated",
            Change::Upsert(_) => "upserted",
            Change::Remove { .. } => "removed",
            Change::Activate(_) => "activated",
            Change::Deactivate(_) => "deactivated",
            Change::Drain(_) => "draining",
        }
    }
}

/// New values for some of a backend's fields (`PATCH /api/v1/backends/{name}`); a field left out
/// keeps its value, `null` clears an optional one.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct BackendPatch {
    /// Where Sluice sends requests.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,
    /// Routing group.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub group: Option<String>,
    /// The URL users see (`null`: the same as `url`).
    #[serde(
        default,
        deserialize_with = "present",
        skip_serializing_if = "Option::is_none"
    )]
    pub external_url: Option<Option<String>>,
    /// Where running/queued counts come from (`null`: `health.stats`).
    #[serde(
        default,
        deserialize_with = "present",
        skip_serializing_if = "Option::is_none"
    )]
    pub stats: Option<Option<StatsSource>>,
    /// Queries run at once at most (`null`: no limit).
    #[serde(
        default,
        deserialize_with = "present",
        skip_serializing_if = "Option::is_none"
    )]
    pub max_queries: Option<Option<u32>>,
    /// Rewrite `nextUri` in answers.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rewrite_next_uri: Option<bool>,
    /// Active (true ends a drain).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub active: Option<bool>,
}

/// A field that is present, even as `null`, is `Some`.
fn present<'de, D: Deserializer<'de>, T: Deserialize<'de>>(
    d: D,
) -> Result<Option<Option<T>>, D::Error> {
    Option::<T>::deserialize(d).map(Some)
}

impl BackendPatch {
    fn apply(&self, b: &mut BackendConfig) {
        if let Some(v) = &self.url {
            b.url = v.clone();
        }
        if let Some(v) = &self.group {
            b.group = v.clone();
        }
        if let Some(v) = &self.external_url {
            b.external_url = v.clone();
        }
        if let Some(v) = self.max_queries {
            b.max_queries = v;
        }
        if let Some(v) = self.stats {
            b.stats = v;
        }
        if let Some(v) = self.rewrite_next_uri {
            b.rewrite_next_uri = v;
        }
        if let Some(v) = self.active {
            b.active = v;
            b.draining = false;
        }
    }
}

/// Why a change was refused; nothing was changed.
#[derive(Debug, thiserror::Error)]
pub enum ChangeError {
    /// A field is wrong (400).
    #[error("{0}")]
    Invalid(Invalid),
    /// The name is taken (409).
    #[error("a backend named '{0}' exists already")]
    Duplicate(String),
    /// No backend has that name (404).
    #[error("no backend named '{0}'")]
    Unknown(String),
    /// It still runs queries (409).
    #[error("backend '{name}' still runs {running} queries ({queued} queued); drain it and wait for 'drained', or remove it with force")]
    Busy {
        /// The backend.
        name: String,
        /// Running queries at its last poll.
        running: u32,
        /// Queued queries at its last poll.
        queued: u32,
    },
    /// The store did not take it (503).
    #[error(transparent)]
    Store(#[from] sluice_store::StoreError),
}

/// What a change did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// A new backend.
    Added,
    /// An existing backend changed.
    Updated,
    /// It was already so.
    Unchanged,
    /// The backend is gone.
    Removed,
}

/// The list after `change` (the caller checks `Busy` for removals), with what it does and the
/// backend as it is now (`None` once removed).
pub fn apply(
    list: &[BackendConfig],
    change: &Change,
) -> Result<(Vec<BackendConfig>, Outcome, Option<BackendConfig>), ChangeError> {
    let mut list = list.to_vec();
    let at = list.iter().position(|b| b.name == change.name());
    let unknown = || ChangeError::Unknown(change.name().to_string());
    let mut edit = |f: &dyn Fn(&mut BackendConfig)| -> Result<Outcome, ChangeError> {
        let i = at.ok_or_else(unknown)?;
        let before = list[i].clone();
        f(&mut list[i]);
        list[i].validate().map_err(ChangeError::Invalid)?;
        Ok(match before == list[i] {
            true => Outcome::Unchanged,
            false => Outcome::Updated,
        })
    };
    let outcome = match change {
        Change::Add(b) => {
            b.validate().map_err(ChangeError::Invalid)?;
            if at.is_some() {
                return Err(ChangeError::Duplicate(b.name.clone()));
            }
            list.push(b.clone());
            Outcome::Added
        }
        Change::Upsert(b) => {
            b.validate().map_err(ChangeError::Invalid)?;
            match at {
                Some(_) => edit(&|x| *x = b.clone())?,
                None => {
                    list.push(b.clone());
                    Outcome::Added
                }
            }
        }
        Change::Update(_, patch) => edit(&|b| patch.apply(b))?,
        Change::Activate(_) => edit(&|b| {
            b.active = true;
            b.draining = false;
        })?,
        Change::Deactivate(_) => edit(&|b| b.active = false)?,
        Change::Drain(_) => edit(&|b| {
            b.active = false;
            b.draining = true;
        })?,
        Change::Remove { .. } => {
            list.remove(at.ok_or_else(unknown)?);
            return Ok((list, Outcome::Removed, None));
        }
    };
    let now = list.iter().find(|b| b.name == change.name()).cloned();
    Ok((list, outcome, now))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn b(name: &str) -> BackendConfig {
        serde_json::from_value(
            serde_json::json!({"name": name, "url": format!("http://{name}:8080")}),
        )
        .unwrap()
    }

    #[test]
    fn names_are_checked_before_anything_changes() {
        let list = vec![b("blue")];
        assert!(
            matches!(apply(&list, &Change::Add(b("blue"))), Err(ChangeError::Duplicate(n)) if n == "blue")
        );
        assert!(matches!(
            apply(&list, &Change::Drain("green".into())),
            Err(ChangeError::Unknown(_))
        ));
        let (list, outcome, now) = apply(&list, &Change::Add(b("green"))).unwrap();
        assert_eq!(outcome, Outcome::Added);
        assert_eq!(now.unwrap().name, "green");
        let (list, outcome, _) = apply(
            &list,
            &Change::Remove {
                name: "blue".into(),
                force: false,
            },
        )
        .unwrap();
        assert_eq!(outcome, Outcome::Removed);
        assert_eq!(list.len(), 1);
    }

    #[test]
    fn drain_then_activate_and_a_bad_field_is_named() {
        let list = vec![b("blue")];
        let (list, _, now) = apply(&list, &Change::Drain("blue".into())).unwrap();
        let now = now.unwrap();
        assert!(now.draining && !now.active);
        let (list, outcome, _) = apply(&list, &Change::Drain("blue".into())).unwrap();
        assert_eq!(outcome, Outcome::Unchanged);
        let (list, _, now) = apply(&list, &Change::Activate("blue".into())).unwrap();
        let now = now.unwrap();
        assert!(now.active && !now.draining);
        let patch: BackendPatch = serde_json::from_str(r#"{"url": "ftp://x"}"#).unwrap();
        let err = apply(&list, &Change::Update("blue".into(), patch)).unwrap_err();
        assert!(
            matches!(&err, ChangeError::Invalid(i) if i.path == "url"),
            "{err}"
        );
        let patch: BackendPatch =
            serde_json::from_str(r#"{"external_url": "https://ui", "group": "etl"}"#).unwrap();
        let (list, _, now) = apply(&list, &Change::Update("blue".into(), patch)).unwrap();
        assert_eq!(now.unwrap().external_url.as_deref(), Some("https://ui"));
        let patch: BackendPatch = serde_json::from_str(r#"{"external_url": null}"#).unwrap();
        let (_, _, now) = apply(&list, &Change::Update("blue".into(), patch)).unwrap();
        let now = now.unwrap();
        assert_eq!(now.external_url, None);
        assert_eq!(now.group, "etl");
        assert!(serde_json::from_str::<BackendPatch>(r#"{"colour": "red"}"#)
            .unwrap_err()
            .to_string()
            .contains("colour"));
    }
}
