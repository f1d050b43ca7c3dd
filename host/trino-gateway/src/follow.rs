//! Trino Gateway's `gateway_backend`, followed: while Sluice runs beside Trino Gateway (or in its
//! place, on its database), the clusters in that table are Sluice's backends, and a change made
//! through Sluice's API (or Trino Gateway's API served by Sluice) is written back to it, so
//! Trino Gateway — its UI, its tools, a switch back — sees what Sluice routes to.
//!
//! Every `store.trino_gateway.poll_interval_ms` the table is read and each difference applied as
//! a [`Change`] (checked, stored, announced like any other): a new row is added, a changed one
//! updated (Sluice's own settings — `max_queries`, `stats`, … — are kept), a row gone is removed
//! once the backend runs nothing. `active: false` there is a deactivated (or draining) backend
//! here.
use std::sync::Arc;
use std::time::Duration;

use sluice_backends::{Backends, BackendsMirror, Change, ChangeError};
use sluice_config::BackendConfig;
use sluice_store::{Store, StoreError};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::tables::{self, TgBackend};

/// Who the changes read from Trino Gateway's table are made by (in logs and `updated_by`); they
/// are not written back.
pub const BY: &str = "trino-gateway";

/// Whether Sluice's `b` says what the row says.
fn same(b: &BackendConfig, row: &TgBackend) -> bool {
    // Trino Gateway fills external_url with the URL when it has none
    let external = row.external_url.as_deref().filter(|u| *u != row.url);
    b.url == row.url
        && b.group == row.group
        && b.external_url.as_deref().filter(|u| *u != b.url) == external
        && (b.active && !b.draining) == row.active
}

/// The changes that make `current` say what `rows` say.
pub fn changes(current: &[BackendConfig], rows: &[TgBackend]) -> Vec<Change> {
    let mut out = Vec::new();
    for row in rows {
        match current.iter().find(|b| b.name == row.name) {
            Some(b) if same(b, row) => {}
            // a deactivation there ends any drain here; an activation there, too
            Some(b) => out.push(Change::Upsert(BackendConfig {
                rewrite_next_uri: b.rewrite_next_uri,
                stats: b.stats,
                max_queries: b.max_queries,
                ..row.to_config()
            })),
            None => out.push(Change::Add(row.to_config())),
        }
    }
    for b in current {
        if !rows.iter().any(|r| r.name == b.name) {
            out.push(Change::Remove {
                name: b.name.clone(),
                force: false,
            });
        }
    }
    out
}

/// `gateway_backend` as the table Sluice's changes are written back to.
pub struct BackendTable(pub Store);

#[async_trait::async_trait]
impl BackendsMirror for BackendTable {
    fn by(&self) -> &'static str {
        BY
    }

    async fn write_back(
        &self,
        change: &Change,
        now: Option<&BackendConfig>,
    ) -> Result<(), StoreError> {
        match (change, now) {
            (Change::Remove { name, .. }, _) => tables::delete_backend(&self.0, name).await,
            (_, Some(b)) => tables::upsert_backend(&self.0, &TgBackend::of(b)).await,
            (_, None) => Ok(()),
        }
    }
}

/// Read `gateway_backend` once and apply what differs. An error when a change could not be
/// applied (a removal waiting for a busy backend to finish is not one).
pub async fn follow_once(backends: &Backends, tg: &Store) -> Result<(), ChangeError> {
    let rows = tables::backends(tg).await?;
    let current = backends.cluster().configs();
    let mut failed = None;
    for change in changes(&current, &rows) {
        let name = change.name().to_string();
        match backends.apply(change, BY).await {
            Ok(_) => {}
            // removed there while it runs queries here: removed once they end
            Err(ChangeError::Busy { .. }) => {
                tracing::debug!(
                    backend = name,
                    "gone from gateway_backend; removed once idle"
                )
            }
            // another instance of the fleet applied the same row first
            Err(ChangeError::Duplicate(_) | ChangeError::Unknown(_)) => {}
            // a row Sluice cannot route to: named at every read, the others applied
            Err(ChangeError::Invalid(why)) => {
                tracing::warn!(backend = name, reason = %why, "gateway_backend row not followed")
            }
            Err(e) => failed = Some(e),
        }
    }
    failed.map_or(Ok(()), Err)
}

/// Follow `gateway_backend` every `interval` on `tasks` until `stop` (every 200 ms while it
/// cannot be read or applied: at start the store may not be up yet).
pub fn follow(
    backends: Arc<Backends>,
    tg: Store,
    interval: Duration,
    tasks: &TaskTracker,
    stop: CancellationToken,
) {
    tasks.spawn(async move {
        let (mut failing, mut followed) = (false, false);
        loop {
            let result = follow_once(&backends, &tg).await;
            followed |= result.is_ok();
            match &result {
                Ok(()) if failing => {
                    failing = false;
                    tracing::info!("gateway_backend is followed again");
                }
                Ok(()) => {}
                // at start, Sluice's own store comes up a moment later: not a failure yet
                Err(ChangeError::Store(StoreError::Down)) if !followed => {}
                Err(e) if !failing => {
                    failing = true;
                    tracing::warn!(error = %e, "cannot follow Trino Gateway's gateway_backend; the backends stay as they are");
                }
                Err(_) => {}
            }
            let wait = match result {
                Ok(()) => interval,
                Err(_) => interval.min(Duration::from_millis(200)),
            };
            tokio::select! {
                _ = tokio::time::sleep(wait) => {}
                _ = stop.cancelled() => return,
            }
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    fn backend(name: &str, url: &str, group: &str) -> BackendConfig {
        let row = TgBackend {
            name: name.into(),
            url: url.into(),
            group: group.into(),
            external_url: None,
            active: true,
        };
        match changes(&[], &[row]).pop() {
            Some(Change::Add(b)) => b,
            c => panic!("{c:?}"),
        }
    }

    fn row(name: &str, url: &str, group: &str, active: bool) -> TgBackend {
        TgBackend {
            name: name.into(),
            url: url.into(),
            group: group.into(),
            external_url: Some(url.into()),
            active,
        }
    }

    #[test]
    fn only_differences_become_changes_and_sluice_settings_stay() {
        let mut kept = backend("t1", "http://t1", "adhoc");
        kept.max_queries = Some(5);
        let moved = backend("t2", "http://t2", "adhoc");
        let gone = backend("t3", "http://t3", "adhoc");
        let mut draining = backend("t5", "http://t5", "etl");
        draining.draining = true;
        let current = vec![kept.clone(), moved, gone, draining];
        let rows = vec![
            row("t1", "http://t1", "adhoc", true),
            row("t2", "http://t2", "etl", true),
            row("t4", "http://t4", "etl", false),
            row("t5", "http://t5", "etl", false),
        ];
        let changes = changes(&current, &rows);
        let names: Vec<(&str, &str)> = changes.iter().map(|c| (c.verb(), c.name())).collect();
        assert_eq!(
            names,
            [("upserted", "t2"), ("added", "t4"), ("removed", "t3")],
            "a draining backend is inactive there: no change"
        );
        match &changes[0] {
            Change::Upsert(b) => assert_eq!((b.group.as_str(), b.max_queries), ("etl", None)),
            c => panic!("{c:?}"),
        }
        match &changes[1] {
            Change::Add(b) => assert!(!b.active && b.external_url.is_none()),
            c => panic!("{c:?}"),
        }
        assert!(TgBackend::of(&kept).active);
    }
}
