//! [`Extension`]: endpoints another crate adds to the admin API — the seam through which Trino
//! Gateway's backend API (in `sluice-trino-gateway`) is served without this crate knowing it.
//! The admin listener authorizes a request before it hands it over (GET and HEAD need the viewer
//! role, anything else the admin role), and an extension's changes go through
//! [`Backends::apply`](sluice_backends::Backends::apply) like Sluice's own ([`Ctx`]).
use std::sync::Arc;

use http::{Request, Response};
use hyper::body::Incoming;
use sluice_backends::{Backends, Change, Outcome};
use sluice_cluster::Cluster;
use sluice_http::Body;

pub use crate::backends::{body_bytes, change_status, forced, json_body, MAX_BODY_BYTES};
pub use crate::{error, reply};

use crate::api::BackendView;
use crate::Admin;

/// Endpoints added to the admin API.
#[async_trait::async_trait]
pub trait Extension: Send + Sync {
    /// Whether `path` is one of its endpoints (asked before Sluice's own).
    fn claims(&self, path: &str) -> bool;

    /// Answer an authorized request.
    async fn handle(&self, req: Request<Incoming>, ctx: &Ctx<'_>) -> Response<Body>;
}

/// What an extension's endpoints reach.
pub struct Ctx<'a> {
    pub(crate) admin: &'a Admin,
}

impl Ctx<'_> {
    /// The backends and their health.
    pub fn cluster(&self) -> &Arc<Cluster> {
        &self.admin.cluster
    }

    /// The backend list and its changes.
    pub fn backends(&self) -> &Backends {
        &self.admin.backends
    }

    /// Who made the request, for the record of a change.
    pub fn who(&self, headers: &http::HeaderMap) -> String {
        crate::auth::Tokens::who(headers)
    }

    /// Apply `change` for the request's token; the backend as Sluice's API shows it now, or the
    /// refusal as Sluice's API answers it.
    pub async fn change_backend(
        &self,
        change: Change,
        headers: &http::HeaderMap,
    ) -> Result<(Outcome, Option<BackendView>), Box<Response<Body>>> {
        self.admin.change_backend(change, headers).await
    }
}
