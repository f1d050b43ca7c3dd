//! The backend endpoints: list, read one, add, update, remove, activate, deactivate, drain.
//! Every change goes through [`Backends::apply`] (checked, stored, applied, announced); a refusal
//! maps to its status here, once.
use http::{Method, Request, Response, StatusCode};
use hyper::body::Incoming;
use serde::de::DeserializeOwned;
use sluice_backends::{BackendPatch, Change, ChangeError, Outcome};
use sluice_cluster::Backend;
use sluice_config::BackendConfig;
use sluice_http::Body;

use crate::api::{BackendHealth, BackendView, Removed};
use crate::{auth, error, reply, Admin};

/// Largest change body.
pub const MAX_BODY_BYTES: usize = 64 << 10;

/// The status of a refused change.
pub fn change_status(e: &ChangeError) -> StatusCode {
    match e {
        ChangeError::Invalid(_) => StatusCode::BAD_REQUEST,
        ChangeError::Duplicate(_) | ChangeError::Busy { .. } => StatusCode::CONFLICT,
        ChangeError::Unknown(_) => StatusCode::NOT_FOUND,
        ChangeError::Store(_) => StatusCode::SERVICE_UNAVAILABLE,
    }
}

/// A backend as the API shows it.
pub(crate) fn view(b: &Backend) -> BackendView {
    let s = b.status();
    let health = serde_json::to_value(s.health)
        .ok()
        .and_then(|v| v.as_str().map(String::from))
        .unwrap_or_default();
    BackendView {
        name: b.name().to_string(),
        url: b.config.url.clone(),
        group: b.group().to_string(),
        external_url: b.config.external_url.clone(),
        active: b.config.active,
        draining: b.config.draining,
        state: b.state().as_str().to_string(),
        stats: b.stats_source.as_str().to_string(),
        rewrite_next_uri: b.config.rewrite_next_uri,
        max_queries: b.config.max_queries,
        status: BackendHealth {
            health,
            running_queries: s.running_queries,
            queued_queries: s.queued_queries,
            reason: s.reason.clone(),
            checked_at: s
                .checked_at
                .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
                .map(|d| d.as_millis() as u64),
        },
    }
}

/// Read a change's body (at most [`MAX_BODY_BYTES`]); a 400 otherwise.
pub async fn body_bytes(req: Request<Incoming>) -> Result<bytes::Bytes, Box<Response<Body>>> {
    use http_body_util::{BodyExt, Limited};
    Ok(Limited::new(req.into_body(), MAX_BODY_BYTES)
        .collect()
        .await
        .map_err(|e| {
            Box::new(error(
                StatusCode::BAD_REQUEST,
                format!("could not read the body (at most {MAX_BODY_BYTES} bytes): {e}"),
            ))
        })?
        .to_bytes())
}

/// Read a JSON body of type `T`; a 400 naming the field (serde's message) otherwise.
pub async fn json_body<T: DeserializeOwned>(
    req: Request<Incoming>,
) -> Result<T, Box<Response<Body>>> {
    let bytes = body_bytes(req).await?;
    serde_json::from_slice(&bytes)
        .map_err(|e| Box::new(error(StatusCode::BAD_REQUEST, format!("body: {e}"))))
}

/// Whether the query string has `force=true` (or `force=1`, or a bare `force`).
pub fn forced(query: Option<&str>) -> bool {
    form_urlencoded::parse(query.unwrap_or("").as_bytes())
        .any(|(k, v)| k == "force" && matches!(&*v, "" | "true" | "1"))
}

impl Admin {
    /// Apply `change` for the request's token; the backend as it is now, or the refusal.
    pub(crate) async fn change_backend(
        &self,
        change: Change,
        headers: &http::HeaderMap,
    ) -> Result<(Outcome, Option<BackendView>), Box<Response<Body>>> {
        let by = auth::Tokens::who(headers);
        match self.backends.apply(change, &by).await {
            Ok((outcome, now)) => {
                let view = now
                    .and_then(|b| self.cluster.get(&b.name))
                    .map(|b| view(&b));
                Ok((outcome, view))
            }
            Err(e) => Err(Box::new(error(change_status(&e), e.to_string()))),
        }
    }

    /// `/api/v1/backends` and `/api/v1/backends/{name}[/{action}]`.
    pub(crate) async fn backend_endpoint(
        &self,
        req: Request<Incoming>,
        rest: &str,
    ) -> Response<Body> {
        let parts: Vec<&str> = rest.split('/').filter(|p| !p.is_empty()).collect();
        let method = req.method().clone();
        let headers = req.headers().clone();
        let query = req.uri().query().map(String::from);
        let answer = |r: Result<(Outcome, Option<BackendView>), Box<Response<Body>>>| match r {
            Ok((Outcome::Added, Some(v))) => reply(StatusCode::CREATED, &v),
            Ok((_, Some(v))) => reply(StatusCode::OK, &v),
            Ok((_, None)) => error(StatusCode::INTERNAL_SERVER_ERROR, "the backend vanished"),
            Err(refused) => *refused,
        };
        match (method, parts.as_slice()) {
            (Method::GET, []) => reply(StatusCode::OK, &self.backend_views()),
            (Method::POST, []) => match json_body::<BackendConfig>(req).await {
                Ok(b) => answer(self.change_backend(Change::Add(b), &headers).await),
                Err(refused) => *refused,
            },
            (Method::GET, [name]) => match self.cluster.get(name) {
                Some(b) => reply(StatusCode::OK, &view(&b)),
                None => error(StatusCode::NOT_FOUND, format!("no backend named '{name}'")),
            },
            (Method::PATCH | Method::PUT, [name]) => {
                let name = name.to_string();
                match json_body::<BackendPatch>(req).await {
                    Ok(p) => answer(self.change_backend(Change::Update(name, p), &headers).await),
                    Err(refused) => *refused,
                }
            }
            (Method::DELETE, [name]) => {
                let change = Change::Remove {
                    name: name.to_string(),
                    force: forced(query.as_deref()),
                };
                match self.change_backend(change, &headers).await {
                    Ok(_) => reply(
                        StatusCode::OK,
                        &Removed {
                            removed: name.to_string(),
                        },
                    ),
                    Err(refused) => *refused,
                }
            }
            (Method::POST, [name, action]) => {
                let name = name.to_string();
                let change = match *action {
                    "activate" => Change::Activate(name),
                    "deactivate" => Change::Deactivate(name),
                    "drain" => Change::Drain(name),
                    other => {
                        return error(
                            StatusCode::NOT_FOUND,
                            format!("no backend action '{other}' (activate, deactivate, drain)"),
                        )
                    }
                };
                answer(self.change_backend(change, &headers).await)
            }
            (m, _) => error(
                StatusCode::NOT_FOUND,
                format!("no admin endpoint {m} /api/v1/backends/{rest}"),
            ),
        }
    }

    /// Every backend, in order.
    pub(crate) fn backend_views(&self) -> Vec<BackendView> {
        self.cluster.backends().iter().map(|b| view(b)).collect()
    }
}
