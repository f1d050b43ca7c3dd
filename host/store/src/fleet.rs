//! What hot swap across a fleet keeps in L3 besides the versions: the chain order every instance
//! follows (`filter_chain`) and what each instance runs (`filter_instances`).
use serde::{Deserialize, Serialize};

use crate::db::write_tx;
use crate::dialect::Sql;
use crate::with_pool;
use crate::{now_ms, Store, StoreError};

/// What one instance runs in one slot, as it last reported.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct InstanceSlot {
    /// The instance (`instance_id`).
    pub instance_id: String,
    /// The slot.
    pub slot: String,
    /// Its place in that instance's chain.
    pub position: i64,
    /// Hex sha256 of the module it runs.
    pub sha256: String,
    /// The stored version it runs (0: the module from its config file).
    pub version: i64,
    /// Why it could not load the active version, if it could not.
    pub error: Option<String>,
    /// Milliseconds since the epoch.
    pub updated_at: i64,
}

impl Store {
    /// The chain order set through the admin API, if one was.
    pub async fn chain_order(&self) -> Result<Option<Vec<String>>, StoreError> {
        const SQL: &str = "SELECT slots FROM filter_chain WHERE id = 1";
        let row: Option<(String,)> =
            with_pool!(self, |p| sqlx::query_as(p.sql(SQL)).fetch_optional(p).await)?;
        row.map(|(json,)| {
            serde_json::from_str(&json).map_err(|e| StoreError::Corrupt {
                what: "filter_chain.slots",
                why: e.to_string(),
            })
        })
        .transpose()
    }

    /// Record the chain order every instance follows.
    pub async fn set_chain_order(&self, slots: &[String], by: &str) -> Result<(), StoreError> {
        const SQL: &str = "INSERT INTO filter_chain (id, slots, updated_at, updated_by) VALUES (1, $1, $2, $3) \
             ON CONFLICT (id) DO UPDATE SET slots = excluded.slots, updated_at = excluded.updated_at, updated_by = excluded.updated_by";
        let json = serde_json::Value::from(slots.to_vec()).to_string();
        with_pool!(self, |p| sqlx::query(p.sql(SQL))
            .bind(&json)
            .bind(now_ms())
            .bind(by)
            .execute(p)
            .await
            .map(|_| ()))?;
        Ok(())
    }

    /// Record what `instance` runs now: one row per slot, replacing its earlier report.
    pub async fn report_instance(
        &self,
        instance: &str,
        slots: &[InstanceSlot],
    ) -> Result<(), StoreError> {
        const DELETE: &str = "DELETE FROM filter_instances WHERE instance_id = $1";
        const INSERT: &str = "INSERT INTO filter_instances (instance_id, slot, position, sha256, version, error, updated_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7)";
        write_tx!(self, |tx| {
            sqlx::query(tx.sql(DELETE))
                .bind(instance)
                .execute(&mut *tx)
                .await?;
            for s in slots {
                sqlx::query(tx.sql(INSERT))
                    .bind(instance)
                    .bind(&s.slot)
                    .bind(s.position)
                    .bind(&s.sha256)
                    .bind(s.version)
                    .bind(&s.error)
                    .bind(s.updated_at)
                    .execute(&mut *tx)
                    .await?;
            }
        })
    }

    /// What every instance last reported, by instance then chain position.
    pub async fn instances(&self) -> Result<Vec<InstanceSlot>, StoreError> {
        const SQL: &str = "SELECT instance_id, slot, position, sha256, version, error, updated_at \
             FROM filter_instances ORDER BY instance_id, position";
        type Row = (String, String, i64, String, i64, Option<String>, i64);
        let rows: Vec<Row> = with_pool!(self, |p| sqlx::query_as(p.sql(SQL)).fetch_all(p).await)?;
        Ok(rows
            .into_iter()
            .map(
                |(instance_id, slot, position, sha256, version, error, updated_at)| InstanceSlot {
                    instance_id,
                    slot,
                    position,
                    sha256,
                    version,
                    error,
                    updated_at,
                },
            )
            .collect())
    }

    /// Forget instances that have not reported since `before_ms`; returns rows deleted.
    pub async fn forget_instances(&self, before_ms: i64) -> Result<u64, StoreError> {
        const SQL: &str = "DELETE FROM filter_instances WHERE updated_at < $1";
        Ok(with_pool!(self, |p| sqlx::query(p.sql(SQL))
            .bind(before_ms)
            .execute(p)
            .await
            .map(|done| done.rows_affected()))?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn chain_order_and_instance_reports_round_trip(store: Store) {
        assert_eq!(store.chain_order().await.unwrap(), None);
        let order = vec!["rules".to_string(), "balance".to_string()];
        store.set_chain_order(&order, "test").await.unwrap();
        store.set_chain_order(&order[..1], "test").await.unwrap();
        assert_eq!(
            store.chain_order().await.unwrap(),
            Some(order[..1].to_vec())
        );

        let row = |slot: &str, position: i64, at: i64| InstanceSlot {
            instance_id: "a".into(),
            slot: slot.into(),
            position,
            sha256: format!("sha-{slot}"),
            version: 1,
            error: None,
            updated_at: at,
        };
        store
            .report_instance("a", &[row("x", 0, 10), row("y", 1, 10)])
            .await
            .unwrap();
        // a new report replaces the old one
        store
            .report_instance("a", &[row("y", 0, 20)])
            .await
            .unwrap();
        let rows = store.instances().await.unwrap();
        assert_eq!(rows, vec![row("y", 0, 20)]);
        assert_eq!(store.forget_instances(21).await.unwrap(), 1);
        assert!(store.instances().await.unwrap().is_empty());
    }

    crate::test_dbs::on_every_dialect!(chain_order_and_instance_reports_round_trip,);
}
