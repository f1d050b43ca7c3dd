//! [`BackendsMirror`]: a table of backends another gateway keeps (Trino Gateway's
//! `gateway_backend`, in `sluice-trino-gateway`), to which every change made through Sluice is
//! written back. The seam keeps this crate free of that gateway's tables: what follows the table
//! the other way applies its rows as ordinary [`Change`]s, made `by` the mirror, which are not
//! written back to it.
use sluice_config::BackendConfig;
use sluice_store::StoreError;

use crate::Change;

/// A table of backends another gateway keeps.
#[async_trait::async_trait]
pub trait BackendsMirror: Send + Sync {
    /// Who the changes read from it are made by (`trino-gateway`): those are not written back.
    fn by(&self) -> &'static str;

    /// Write `change`, made in Sluice, back; `now` is the backend after it (none once removed).
    async fn write_back(
        &self,
        change: &Change,
        now: Option<&BackendConfig>,
    ) -> Result<(), StoreError>;
}
