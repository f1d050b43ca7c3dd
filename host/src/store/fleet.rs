//! What hot swap across a fleet keeps in L3: the active version of every slot (in
//! `filter_modules`), the chain order, and what each instance runs (`filter_instances`).
use serde::Serialize;
use sqlx::AssertSqlSafe;

use super::{now_ms, Store};

/// What one instance runs in one slot, as it last reported.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct InstanceSlot {
    pub instance_id: String,
    pub slot: String,
    pub position: i64,
    pub sha256: String,
    pub version: i64,
    /// Why it could not load the active version, if it could not.
    pub error: Option<String>,
    /// Milliseconds since the epoch.
    pub updated_at: i64,
}

/// `?` placeholders as PostgreSQL's `$1, $2, …`.
fn numbered(sql: &str) -> String {
    let mut out = String::with_capacity(sql.len() + 8);
    let mut n = 0;
    for c in sql.chars() {
        if c == '?' {
            n += 1;
            out.push('$');
            out.push_str(&n.to_string());
        } else {
            out.push(c);
        }
    }
    out
}

macro_rules! on_pool {
    ($store:expr, $sql:expr, |$q:ident, $pool:ident| $body:expr) => {
        match $store {
            Store::Sqlite($pool) => {
                let $q = AssertSqlSafe($sql.to_string());
                $body
            }
            Store::Postgres($pool) => {
                let $q = AssertSqlSafe(numbered($sql));
                $body
            }
        }
    };
}

impl Store {
    /// The active version of every slot that has one: (slot, version, sha256).
    pub async fn active_modules(&self) -> Result<Vec<(String, i64, String)>, String> {
        const SQL: &str =
            "SELECT slot, version, sha256 FROM filter_modules WHERE active = TRUE ORDER BY slot";
        on_pool!(self, SQL, |q, p| sqlx::query_as(q).fetch_all(p).await).map_err(|e| e.to_string())
    }

    /// The chain order set through the admin API, if one was.
    pub async fn chain_order(&self) -> Result<Option<Vec<String>>, String> {
        const SQL: &str = "SELECT slots FROM filter_chain WHERE id = 1";
        let row: Option<(String,)> =
            on_pool!(self, SQL, |q, p| sqlx::query_as(q).fetch_optional(p).await)
                .map_err(|e| e.to_string())?;
        row.map(|(json,)| {
            serde_json::from_str(&json).map_err(|e| format!("filter_chain.slots: {e}"))
        })
        .transpose()
    }

    /// Record the chain order every instance follows.
    pub async fn set_chain_order(&self, slots: &[String], by: &str) -> Result<(), String> {
        const SQL: &str = "INSERT INTO filter_chain (id, slots, updated_at, updated_by) VALUES (1, ?, ?, ?) \
             ON CONFLICT (id) DO UPDATE SET slots = excluded.slots, updated_at = excluded.updated_at, updated_by = excluded.updated_by";
        let json = serde_json::to_string(slots).map_err(|e| e.to_string())?;
        on_pool!(self, SQL, |q, p| sqlx::query(q)
            .bind(&json)
            .bind(now_ms())
            .bind(by)
            .execute(p)
            .await
            .map(|_| ()))
        .map_err(|e| e.to_string())
    }

    /// Record what `instance` runs now: one row per slot, replacing its earlier report.
    pub async fn report_instance(
        &self,
        instance: &str,
        slots: &[InstanceSlot],
    ) -> Result<(), String> {
        const DELETE: &str = "DELETE FROM filter_instances WHERE instance_id = ?";
        const INSERT: &str = "INSERT INTO filter_instances (instance_id, slot, position, sha256, version, error, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?)";
        macro_rules! run {
            ($p:expr, $del:expr, $ins:expr) => {{
                let _turn = super::write_turn($p).await;
                let mut tx = $p
                    .begin_with(super::write_tx($p))
                    .await
                    .map_err(|e| e.to_string())?;
                sqlx::query(AssertSqlSafe($del.clone()))
                    .bind(instance)
                    .execute(&mut *tx)
                    .await
                    .map_err(|e| e.to_string())?;
                for s in slots {
                    sqlx::query(AssertSqlSafe($ins.clone()))
                        .bind(instance)
                        .bind(&s.slot)
                        .bind(s.position)
                        .bind(&s.sha256)
                        .bind(s.version)
                        .bind(&s.error)
                        .bind(s.updated_at)
                        .execute(&mut *tx)
                        .await
                        .map_err(|e| e.to_string())?;
                }
                tx.commit().await.map_err(|e| e.to_string())
            }};
        }
        match self {
            Store::Sqlite(p) => run!(p, DELETE.to_string(), INSERT.to_string()),
            Store::Postgres(p) => run!(p, numbered(DELETE), numbered(INSERT)),
        }
    }

    /// What every instance last reported, by instance then chain position.
    pub async fn instances(&self) -> Result<Vec<InstanceSlot>, String> {
        const SQL: &str = "SELECT instance_id, slot, position, sha256, version, error, updated_at \
             FROM filter_instances ORDER BY instance_id, position";
        type Row = (String, String, i64, String, i64, Option<String>, i64);
        let rows: Vec<Row> = on_pool!(self, SQL, |q, p| sqlx::query_as(q).fetch_all(p).await)
            .map_err(|e| e.to_string())?;
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
    pub async fn forget_instances(&self, before_ms: i64) -> Result<u64, String> {
        const SQL: &str = "DELETE FROM filter_instances WHERE updated_at < ?";
        on_pool!(self, SQL, |q, p| sqlx::query(q)
            .bind(before_ms)
            .execute(p)
            .await
            .map(|r| r.rows_affected()))
        .map_err(|e| e.to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn placeholders_are_numbered_for_postgres() {
        assert_eq!(
            numbered("UPDATE t SET a = ? WHERE b = ? AND c = ?"),
            "UPDATE t SET a = $1 WHERE b = $2 AND c = $3"
        );
    }

    #[tokio::test]
    async fn chain_order_and_instance_reports_round_trip_in_sqlite() {
        let store = Store::open("sqlite::memory:").unwrap();
        store.migrate().await.unwrap();
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
}
