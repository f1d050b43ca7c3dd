//! [`Database`]: Trino Gateway's database as the one Sluice's store works beside
//! ([`sluice_store::Mirror`]): Sluice's own tables get their schema there before the first
//! migration, and every batch of history rows is copied into its `query_history` (when
//! `store.trino_gateway.history`), the columns read once and again after a failure.
use sluice_config::TrinoGatewayStore;
use sluice_store::{HistoryRow, Mirror, Store, StoreError};

use crate::history_table::{self, TgHistoryColumns};
use crate::tables;

/// Trino Gateway's database (`store.trino_gateway`).
pub struct Database {
    /// Its connection.
    pub store: Store,
    /// Its section of the configuration.
    pub config: TrinoGatewayStore,
    /// `query_history`'s columns, read at the first write.
    columns: tokio::sync::Mutex<Option<TgHistoryColumns>>,
}

impl Database {
    /// Open (no connection yet) the database `config` names.
    pub fn open(config: &TrinoGatewayStore) -> Result<Database, StoreError> {
        Ok(Database {
            store: Store::open(&config.url)?,
            config: config.clone(),
            columns: tokio::sync::Mutex::new(None),
        })
    }
}

#[async_trait::async_trait]
impl Mirror for Database {
    fn name(&self) -> &'static str {
        "trino_gateway"
    }

    async fn prepare(&self) -> Result<(), StoreError> {
        tables::create_own_namespace(&self.config.url, &self.config.schema).await
    }

    async fn write_history(&self, rows: &[&HistoryRow]) -> Result<(), StoreError> {
        if !self.config.history {
            return Ok(());
        }
        let mut columns = self.columns.lock().await;
        if columns.is_none() {
            *columns = Some(history_table::history_columns(&self.store).await?);
        }
        let result = match columns.as_ref() {
            Some(c) => history_table::write_history(&self.store, rows, c).await,
            None => Ok(()),
        };
        if result.is_err() {
            // read them again next time: the table may have changed
            *columns = None;
        }
        result
    }
}
