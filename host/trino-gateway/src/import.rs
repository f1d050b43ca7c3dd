//! `sluice store import --from-trino-gateway`: Trino Gateway's `gateway_backend` and
//! `query_history` copied into Sluice's own tables, in any dialect; twice copies nothing twice.
use sluice_store::{Store, StoreError, Write};

use crate::{history_table, jdbc, tables};

/// What an import copied.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Imported {
    /// Backends added (names already in the store keep theirs).
    pub backends_added: usize,
    /// Rows of `gateway_backend`.
    pub backends_read: usize,
    /// Backends left out, and why (Sluice cannot route to them).
    pub backends_refused: Vec<(String, String)>,
    /// History rows added.
    pub history_added: i64,
    /// Rows of `query_history`.
    pub history_read: usize,
}

/// The database URL of `from`: a JDBC URL of Trino Gateway's (`jdbc:postgresql://…`,
/// `jdbc:mysql://…`; its `user`/`password` parameters unless given), or a database URL as it is.
pub fn source_url(
    from: &str,
    user: Option<&str>,
    password: Option<&str>,
) -> Result<String, String> {
    if !from.starts_with("jdbc:") {
        return Ok(from.to_string());
    }
    let param = |name: &str| {
        from.split_once('?')
            .map(|(_, q)| q)
            .unwrap_or("")
            .split('&')
            .find_map(|p| p.strip_prefix(&format!("{name}=")).map(String::from))
    };
    let user = user.map(String::from).or_else(|| param("user"));
    let password = password.map(String::from).or_else(|| param("password"));
    let password = password.map(|p| jdbc::encode(&p));
    jdbc::database_url(from, user.as_deref(), password.as_deref())
}

/// Copy Trino Gateway's tables at `tg` into `target` (migrated first).
pub async fn import(tg: &Store, target: &Store) -> Result<Imported, StoreError> {
    target.migrate().await?;
    let backends = tables::backends(tg).await?;
    let mut out = Imported {
        backends_read: backends.len(),
        ..Imported::default()
    };
    for b in &backends {
        let config = b.to_config();
        if let Err(e) = config.validate() {
            out.backends_refused.push((b.name.clone(), e.to_string()));
            continue;
        }
        if target.insert_backend(&config, "import").await? {
            out.backends_added += 1;
        }
    }
    let history = history_table::history(tg).await?;
    out.history_read = history.len();
    let before = target.history_count().await?;
    for chunk in history.chunks(500) {
        let writes: Vec<Write> = chunk
            .iter()
            .map(|h| Write::History(Box::new(h.clone())))
            .collect();
        target.write_batch(&writes).await?;
    }
    out.history_added = target.history_count().await? - before;
    Ok(out)
}
