//! [`Mirror`]: another database the store works beside — the seam through which Sluice runs on a
//! database another gateway owns (Trino Gateway's, in `sluice-trino-gateway`) without this crate
//! knowing that gateway's tables. The writer hands it every batch of history rows after
//! Sluice's own table has them; a failure there is counted and logged once per outage, never
//! retried (Sluice's own table has every row).
use crate::{HistoryRow, StoreError};

/// Another database the store works beside.
#[async_trait::async_trait]
pub trait Mirror: Send + Sync {
    /// What it is, for logs and the metric of rows it did not take (`trino_gateway`).
    fn name(&self) -> &'static str;

    /// Done before Sluice's own tables are first migrated, retried until it succeeds (e.g. the
    /// schema of Sluice's own tables in that database).
    async fn prepare(&self) -> Result<(), StoreError>;

    /// Write `rows` there too.
    async fn write_history(&self, rows: &[&HistoryRow]) -> Result<(), StoreError>;
}
