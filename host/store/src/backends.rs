//! `backends`: the clusters behind the gateway. The YAML seeds the table once (a marker row in
//! `gateway_meta` says it was done); after that the table is the truth, changed through the admin
//! API, and every instance of a fleet follows it.
use sluice_config::{BackendConfig, StatsSource};

use crate::db::write_tx;
use crate::dialect::Sql;
use crate::with_pool;
use crate::{now_ms, Store, StoreError};

const SELECT: &str = "SELECT name, proxy_url, external_url, routing_group, active, draining, rewrite_next_uri, stats, max_queries \
     FROM backends ORDER BY name";
const SEEDED: &str = "backends_seeded";

type Row = (
    String,
    String,
    Option<String>,
    String,
    bool,
    bool,
    bool,
    Option<String>,
    Option<i64>,
);

fn from_row(r: Row) -> Result<BackendConfig, StoreError> {
    let (name, url, external_url, group, active, draining, rewrite_next_uri, stats, max_queries) =
        r;
    let stats = match stats.as_deref() {
        None => None,
        Some(s) => Some(StatsSource::parse(s).ok_or_else(|| StoreError::Corrupt {
            what: "backend stats source",
            why: format!("'{s}' for backend '{name}'"),
        })?),
    };
    Ok(BackendConfig {
        name,
        url,
        group,
        active,
        draining,
        external_url,
        rewrite_next_uri,
        stats,
        max_queries: max_queries
            .and_then(|n| u32::try_from(n).ok())
            .filter(|n| *n > 0),
    })
}

/// Bind a backend's columns, in the order of [`INSERT`] and [`UPDATE`]: its settings, when and
/// who, then its name (each placeholder once and in order, as MySQL's `?` needs).
macro_rules! bind_backend {
    ($q:expr, $b:expr, $by:expr) => {
        $q.bind(&$b.url)
            .bind(&$b.external_url)
            .bind(&$b.group)
            .bind($b.active)
            .bind($b.draining)
            .bind($b.rewrite_next_uri)
            .bind($b.stats.map(StatsSource::as_str))
            .bind($b.max_queries.map(i64::from))
            .bind(now_ms())
            .bind($by)
            .bind(&$b.name)
    };
}

const INSERT: &str = "INSERT INTO backends (proxy_url, external_url, routing_group, active, draining, rewrite_next_uri, stats, max_queries, updated_at, updated_by, name) \
     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11) ON CONFLICT (name) DO NOTHING";
const UPDATE: &str = "UPDATE backends SET proxy_url = $1, external_url = $2, routing_group = $3, active = $4, draining = $5, \
     rewrite_next_uri = $6, stats = $7, max_queries = $8, updated_at = $9, updated_by = $10 WHERE name = $11";

impl Store {
    /// Every backend, by name.
    pub async fn backends(&self) -> Result<Vec<BackendConfig>, StoreError> {
        let rows: Vec<Row> =
            with_pool!(self, |p| sqlx::query_as(p.sql(SELECT)).fetch_all(p).await)?;
        rows.into_iter().map(from_row).collect()
    }

    /// Write `backends` unless the table was seeded before; whether this call seeded it. Names
    /// already in the table keep their row.
    pub async fn seed_backends(
        &self,
        backends: &[BackendConfig],
        by: &str,
    ) -> Result<bool, StoreError> {
        const MARK: &str =
            "INSERT INTO gateway_meta (name, value) VALUES ($1, $2) ON CONFLICT (name) DO NOTHING";
        write_tx!(self, |tx| {
            let marked = sqlx::query(tx.sql(MARK))
                .bind(SEEDED)
                .bind(now_ms().to_string())
                .execute(&mut *tx)
                .await?
                .rows_affected();
            if marked == 1 {
                for b in backends {
                    bind_backend!(sqlx::query(tx.sql(INSERT)), b, by)
                        .execute(&mut *tx)
                        .await?;
                }
            }
            marked == 1
        })
    }

    /// Add a backend; false if the name is taken.
    pub async fn insert_backend(&self, b: &BackendConfig, by: &str) -> Result<bool, StoreError> {
        let n = with_pool!(self, |p| bind_backend!(sqlx::query(p.sql(INSERT)), b, by)
            .execute(p)
            .await
            .map(|r| r.rows_affected()))?;
        Ok(n == 1)
    }

    /// Replace a backend's row (matched by name); false if there is none.
    pub async fn update_backend(&self, b: &BackendConfig, by: &str) -> Result<bool, StoreError> {
        let n = with_pool!(self, |p| bind_backend!(sqlx::query(p.sql(UPDATE)), b, by)
            .execute(p)
            .await
            .map(|r| r.rows_affected()))?;
        Ok(n == 1)
    }

    /// Add or replace a backend; whether it was added.
    pub async fn upsert_backend(&self, b: &BackendConfig, by: &str) -> Result<bool, StoreError> {
        write_tx!(self, |tx| {
            let n = bind_backend!(sqlx::query(tx.sql(UPDATE)), b, by)
                .execute(&mut *tx)
                .await?
                .rows_affected();
            if n == 0 {
                bind_backend!(sqlx::query(tx.sql(INSERT)), b, by)
                    .execute(&mut *tx)
                    .await?;
            }
            n == 0
        })
    }

    /// Remove a backend; false if there was none.
    pub async fn delete_backend(&self, name: &str) -> Result<bool, StoreError> {
        let n = with_pool!(self, |p| sqlx::query(
            p.sql("DELETE FROM backends WHERE name = $1")
        )
        .bind(name)
        .execute(p)
        .await
        .map(|r| r.rows_affected()))?;
        Ok(n == 1)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn backend(name: &str, group: &str) -> BackendConfig {
        BackendConfig::new(name, group, format!("http://{name}:8080"))
    }

    async fn the_seed_is_written_once_then_the_table_is_the_truth(store: Store) {
        assert!(store
            .seed_backends(&[backend("a", "adhoc"), backend("b", "etl")], "seed")
            .await
            .unwrap());
        assert!(store.delete_backend("b").await.unwrap());
        // a second seed (a restart, a reload) changes nothing
        assert!(!store
            .seed_backends(&[backend("b", "etl"), backend("c", "etl")], "seed")
            .await
            .unwrap());
        let names: Vec<String> = store
            .backends()
            .await
            .unwrap()
            .into_iter()
            .map(|b| b.name)
            .collect();
        assert_eq!(names, ["a"]);
    }

    async fn insert_refuses_a_taken_name_and_update_an_unknown_one(store: Store) {
        let mut a = backend("a", "adhoc");
        assert!(store.insert_backend(&a, "t").await.unwrap());
        assert!(!store.insert_backend(&a, "t").await.unwrap());
        a.draining = true;
        a.active = false;
        a.stats = Some(StatsSource::Metrics);
        a.external_url = Some("https://ui".into());
        assert!(store.update_backend(&a, "t").await.unwrap());
        let back = &store.backends().await.unwrap()[0];
        assert!(back.draining && !back.active);
        assert_eq!(back.stats, Some(StatsSource::Metrics));
        assert_eq!(back.external_url.as_deref(), Some("https://ui"));
        assert!(!store
            .update_backend(&backend("zz", "adhoc"), "t")
            .await
            .unwrap());
        assert!(store
            .upsert_backend(&backend("b", "etl"), "t")
            .await
            .unwrap());
        assert!(!store
            .upsert_backend(&backend("b", "adhoc"), "t")
            .await
            .unwrap());
        assert_eq!(store.backends().await.unwrap()[1].group, "adhoc");
        assert!(!store.delete_backend("zz").await.unwrap());
    }

    crate::test_dbs::on_every_dialect!(
        the_seed_is_written_once_then_the_table_is_the_truth,
        insert_refuses_a_taken_name_and_update_an_unknown_one,
    );
}
