//! `filter_modules`: every accepted filter version of every slot, with the one that is active.
use serde::Serialize;

use crate::db::write_tx;
use crate::dialect::Sql;
use crate::with_pool;
use crate::{now_ms, Store, StoreError};

/// A filter version to store.
pub struct NewModule<'a> {
    /// The chain slot.
    pub slot: &'a str,
    /// Hex sha256 of `bytes`.
    pub sha256: &'a str,
    /// The component.
    pub bytes: &'a [u8],
    /// The JSON handed to its `init`.
    pub config: &'a str,
    /// Who made it (see [`VersionRow::created_by`]).
    pub created_by: &'a str,
}

/// A stored filter version.
#[derive(Debug, Clone)]
pub struct ModuleRow {
    /// Its number within the slot (1, 2, …).
    pub version: i64,
    /// Hex sha256 of `bytes`.
    pub sha256: String,
    /// The component.
    pub bytes: Vec<u8>,
    /// The JSON handed to its `init`.
    pub config: String,
    /// Whether it is the slot's active version.
    pub active: bool,
}

/// A stored filter version, without its bytes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, serde::Deserialize)]
pub struct VersionRow {
    /// Its number within the slot.
    pub version: i64,
    /// Hex sha256 of the component.
    pub sha256: String,
    /// Whether it is the slot's active version.
    pub active: bool,
    /// Milliseconds since the epoch.
    pub created_at: i64,
    /// `token:` and the start of the token's sha256, `watch_dir`, or `admin`.
    pub created_by: Option<String>,
}

const DEACTIVATE: &str = "UPDATE filter_modules SET active = FALSE WHERE slot = $1";

impl Store {
    /// Store an accepted filter version as the slot's active one; returns its version number.
    pub async fn insert_module(&self, m: &NewModule<'_>) -> Result<i64, StoreError> {
        const NEXT: &str =
            "SELECT COALESCE(MAX(version), 0) + 1 FROM filter_modules WHERE slot = $1";
        const INSERT: &str = "INSERT INTO filter_modules (slot, version, sha256, bytes, config, created_at, created_by, active) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, TRUE)";
        let now = now_ms();
        write_tx!(self, |tx| {
            let version: i64 = sqlx::query_scalar(tx.sql(NEXT))
                .bind(m.slot)
                .fetch_one(&mut *tx)
                .await?;
            sqlx::query(tx.sql(DEACTIVATE))
                .bind(m.slot)
                .execute(&mut *tx)
                .await?;
            sqlx::query(tx.sql(INSERT))
                .bind(m.slot)
                .bind(version)
                .bind(m.sha256)
                .bind(m.bytes)
                .bind(m.config)
                .bind(now)
                .bind(m.created_by)
                .execute(&mut *tx)
                .await?;
            version
        })
    }

    /// One stored version of a slot.
    pub async fn module(&self, slot: &str, version: i64) -> Result<Option<ModuleRow>, StoreError> {
        const SQL: &str = "SELECT version, sha256, bytes, config, active FROM filter_modules \
             WHERE slot = $1 AND version = $2";
        let row: Option<(i64, String, Vec<u8>, String, bool)> = with_pool!(self, |p| {
            sqlx::query_as(p.sql(SQL))
                .bind(slot)
                .bind(version)
                .fetch_optional(p)
                .await
        })?;
        Ok(
            row.map(|(version, sha256, bytes, config, active)| ModuleRow {
                version,
                sha256,
                bytes,
                config,
                active,
            }),
        )
    }

    /// The stored versions of a slot, oldest first, without their bytes.
    pub async fn versions(&self, slot: &str) -> Result<Vec<VersionRow>, StoreError> {
        const SQL: &str = "SELECT version, sha256, active, created_at, created_by \
             FROM filter_modules WHERE slot = $1 ORDER BY version";
        type Row = (i64, String, bool, i64, Option<String>);
        let rows: Vec<Row> = with_pool!(self, |p| sqlx::query_as(p.sql(SQL))
            .bind(slot)
            .fetch_all(p)
            .await)?;
        Ok(rows
            .into_iter()
            .map(
                |(version, sha256, active, created_at, created_by)| VersionRow {
                    version,
                    sha256,
                    active,
                    created_at,
                    created_by,
                },
            )
            .collect())
    }

    /// Mark `version` as the slot's active one.
    pub async fn activate(&self, slot: &str, version: i64) -> Result<(), StoreError> {
        const ACTIVATE: &str =
            "UPDATE filter_modules SET active = TRUE WHERE slot = $1 AND version = $2";
        write_tx!(self, |tx| {
            sqlx::query(tx.sql(DEACTIVATE))
                .bind(slot)
                .execute(&mut *tx)
                .await?;
            sqlx::query(tx.sql(ACTIVATE))
                .bind(slot)
                .bind(version)
                .execute(&mut *tx)
                .await?;
        })
    }

    /// The active version of every slot that has one: (slot, version, sha256).
    pub async fn active_modules(&self) -> Result<Vec<(String, i64, String)>, StoreError> {
        const SQL: &str =
            "SELECT slot, version, sha256 FROM filter_modules WHERE active = TRUE ORDER BY slot";
        Ok(with_pool!(self, |p| sqlx::query_as(p.sql(SQL))
            .fetch_all(p)
            .await)?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn versions_count_up_and_one_is_active(store: Store) {
        let new = |sha: &'static str| NewModule {
            slot: "s",
            sha256: sha,
            bytes: b"\0asm",
            config: "null",
            created_by: "test",
        };
        assert_eq!(store.insert_module(&new("a")).await.unwrap(), 1);
        assert_eq!(store.insert_module(&new("b")).await.unwrap(), 2);
        store.activate("s", 1).await.unwrap();
        let active: Vec<bool> = store
            .versions("s")
            .await
            .unwrap()
            .iter()
            .map(|v| v.active)
            .collect();
        assert_eq!(active, vec![true, false]);
        assert_eq!(
            store.active_modules().await.unwrap(),
            vec![("s".to_string(), 1, "a".to_string())]
        );
        let row = store.module("s", 2).await.unwrap().unwrap();
        assert_eq!((row.sha256.as_str(), row.active), ("b", false));
        assert!(store.module("s", 3).await.unwrap().is_none());
    }

    crate::test_dbs::on_every_dialect!(versions_count_up_and_one_is_active,);
}
