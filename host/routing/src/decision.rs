//! What a router answers. A filter's raw [`Decision`] names things by string; [`Decision::check`]
//! turns it into a [`Route`] against the live cluster — the one place a decision is validated —
//! or says why it cannot be followed.
use std::sync::Arc;

use http::StatusCode;
use sluice_cluster::{Backend, Cluster};

/// A router's raw answer (what a Wasm filter returns).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    /// Send the query to this backend (by name).
    RouteTo(String),
    /// Narrow the query to this routing group; the native router picks within it.
    UseGroup(String),
    /// Answer the client with this error.
    Reject {
        /// HTTP status.
        status: u16,
        /// Message for the client.
        message: String,
    },
    /// No opinion: the native router decides.
    Pass,
}

/// A decision checked against the cluster: what [`crate::Routing`] applies.
#[derive(Debug, Clone)]
pub enum Route {
    /// This backend, which is routable and not excluded.
    Backend(Arc<Backend>),
    /// This routing group, which exists.
    Group(String),
    /// Answer the client with this error.
    Reject {
        /// HTTP status.
        status: StatusCode,
        /// Message for the client.
        message: String,
    },
    /// No opinion.
    Pass,
}

/// A decision that cannot be followed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum InvalidDecision {
    /// The group does not exist.
    #[error("chose routing group '{0}', which does not exist")]
    UnknownGroup(String),
    /// The backend does not exist.
    #[error("chose backend '{0}', which does not exist")]
    UnknownBackend(String),
    /// The backend exists but cannot take this query.
    #[error("chose backend '{0}', which is inactive, unhealthy or just refused the query")]
    Unroutable(String),
    /// A rejection must be an error status: 101 would hang the client, 2xx/3xx would lie.
    #[error("rejected with status {0}; only 400-599 may be answered")]
    RejectStatus(u16),
}

impl Decision {
    /// Check this decision against `cluster`, never choosing a backend in `exclude`. A reject
    /// status outside 400-599 is an invalid decision (counted as a filter fault, routed natively).
    pub fn check(self, cluster: &Cluster, exclude: &[String]) -> Result<Route, InvalidDecision> {
        match self {
            Decision::Pass => Ok(Route::Pass),
            Decision::UseGroup(g) if cluster.has_group(&g) => Ok(Route::Group(g)),
            Decision::UseGroup(g) => Err(InvalidDecision::UnknownGroup(g)),
            Decision::RouteTo(name) => match cluster.get(&name) {
                Some(b) if b.is_routable() && !exclude.contains(&name) => Ok(Route::Backend(b)),
                Some(_) => Err(InvalidDecision::Unroutable(name)),
                None => Err(InvalidDecision::UnknownBackend(name)),
            },
            Decision::Reject { status, message } => match StatusCode::from_u16(status) {
                Ok(s) if s.is_client_error() || s.is_server_error() => {
                    Ok(Route::Reject { status: s, message })
                }
                _ => Err(InvalidDecision::RejectStatus(status)),
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_error_statuses_may_reject() {
        let cluster = Cluster::new(&[], sluice_config::StatsSource::InfoOnly);
        let reject = |status| Decision::Reject {
            status,
            message: "no".into(),
        };
        for ok in [400, 403, 429, 503, 599] {
            assert!(
                matches!(reject(ok).check(&cluster, &[]), Ok(Route::Reject { .. })),
                "{ok}"
            );
        }
        for bad in [0, 100, 101, 200, 204, 304, 600, 65535] {
            assert_eq!(
                reject(bad).check(&cluster, &[]).unwrap_err(),
                InvalidDecision::RejectStatus(bad)
            );
        }
    }
}
