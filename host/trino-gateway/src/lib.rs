//! Everything Sluice does to stand in for Trino Gateway, in one place: its configuration file
//! read as it is, its routing rules translated, its database followed and filled, its backend
//! API served, its tables imported (docs/migrate.md). The core crates know nothing of Trino
//! Gateway; this crate plugs into the seams they own:
//!
//! | seam (owned by) | what plugs in here |
//! | --- | --- |
//! | [`sluice_store::Mirror`] | [`mirror::Database`]: Sluice's own schema made in Trino Gateway's database, history rows copied into its `query_history` |
//! | [`sluice_backends::BackendsMirror`] | [`follow::BackendTable`]: every change made through Sluice written back to `gateway_backend` |
//! | [`sluice_backends::Backends::apply`] | [`follow::follow`]: `gateway_backend` read every `poll_interval_ms`, each difference applied as a change |
//! | [`sluice_admin::Extension`] | [`api::Api`]: `/entity`, `/gateway/backend/…`, `/api/public/backends…` |
//! | [`sluice_routing::Router`] | [`external::External`]: its external routing service asked for the group before the chain (`routing.external`) |
//! | [`sluice_config::Config`] | [`file::load`] / [`file::convert`]: Trino Gateway's file as Sluice's configuration |
//!
//! The gateway asks [`TrinoGateway::attach`] once at start; what it returns is wired in one place
//! (`sluice-gateway`'s `start`).
//!
//! # Layout
//!
//! | module | one job |
//! | --- | --- |
//! | this file | [`TrinoGateway`]: the adapters a configuration asks for |
//! | [`file`] | [`load`] and [`convert`]: the file as Sluice's configuration (checked) or as the text of Sluice's file |
//! | [`translate`] | the file read section by section into Sluice's YAML document |
//! | `document` | the document read ([`Section`](document::Section)) and built; [`Note`], [`Secrets`], [`TgError`] |
//! | `sections` | the ports, the database, how clusters are polled, what is not honoured |
//! | `routing_sections` | the rules, the routers, L2, the admin API's access |
//! | [`subst`] | environment references in each of Trino Gateway's forms |
//! | [`jdbc`] | a JDBC URL as a database URL |
//! | [`rules`] | Trino Gateway's MVEL rules as `builtin:routing-rules` rules |
//! | [`tables`] | `gateway_backend` read and written; Sluice's own schema beside it |
//! | [`history_table`] | `query_history` written and read as each release has it |
//! | [`mirror`] | [`mirror::Database`]: the store's [`Mirror`](sluice_store::Mirror) |
//! | [`follow`] | `gateway_backend` followed; changes written back |
//! | [`api`] | Trino Gateway's backend API as an admin [`Extension`](sluice_admin::Extension) |
//! | `api_wire` | its JSON: `ProxyBackendConfiguration`, `ClusterStats` |
//! | [`external`] | its external routing service, with a time limit and a fallback |
//! | [`import`] | `store import --from-trino-gateway` |
#![forbid(unsafe_code)]
use std::sync::Arc;
use std::time::Duration;

use sluice_backends::Backends;
use sluice_config::Config;
use sluice_store::StoreError;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

pub mod api;
mod api_wire;
mod document;
pub mod external;
pub mod file;
pub mod follow;
pub mod history_table;
pub mod import;
pub mod jdbc;
pub mod mirror;
mod routing_sections;
pub mod rules;
mod sections;
pub mod subst;
pub mod tables;
pub mod translate;

pub use document::{Note, Secrets, TgError};
pub use file::{convert, load, Check};
pub use translate::Translated;

/// The adapters a configuration asks for: Trino Gateway's database (`store.trino_gateway`) and
/// its backend API (always served on the admin listener; on the client listener too with
/// `admin.trino_gateway_api_on_proxy`).
pub struct TrinoGateway {
    /// Trino Gateway's database, when Sluice runs on it.
    pub database: Option<Arc<mirror::Database>>,
    /// Its backend API.
    pub api: Arc<api::Api>,
}

impl TrinoGateway {
    /// What `config` asks for (nothing connects yet).
    pub fn attach(config: &Config) -> Result<TrinoGateway, StoreError> {
        let database = match &config.store.trino_gateway {
            Some(tg) if !config.store.url.is_empty() => Some(Arc::new(mirror::Database::open(tg)?)),
            _ => None,
        };
        Ok(TrinoGateway {
            database,
            api: Arc::new(api::Api),
        })
    }

    /// The store's [`Mirror`](sluice_store::Mirror), if Sluice runs on Trino Gateway's database.
    pub fn store_mirror(&self) -> Option<Arc<dyn sluice_store::Mirror>> {
        self.database
            .clone()
            .map(|d| d as Arc<dyn sluice_store::Mirror>)
    }

    /// Follow `gateway_backend` into `backends` and write their changes back to it, when
    /// `store.trino_gateway.backends`, in a task on `tasks` until `stop`.
    pub fn follow_backends(
        &self,
        backends: &Arc<Backends>,
        tasks: &TaskTracker,
        stop: CancellationToken,
    ) {
        let Some(db) = self.database.as_ref().filter(|d| d.config.backends) else {
            return;
        };
        backends.mirror_to(Arc::new(follow::BackendTable(db.store.clone())));
        follow::follow(
            backends.clone(),
            db.store.clone(),
            Duration::from_millis(db.config.poll_interval_ms),
            tasks,
            stop,
        );
    }
}

#[cfg(test)]
mod tables_tests;
#[cfg(test)]
mod tests;
