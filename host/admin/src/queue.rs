//! The queue API: `GET /api/v1/queue` (what waits, in admission order; slots held per backend
//! against `max_queries`; the queue settings), `DELETE /api/v1/queue/{id}` (cancel a waiting
//! query), `PUT /api/v1/queue/config` (new `queue:` settings for this instance, as JSON or
//! YAML: priorities and quotas change at once; a reload of the file replaces them again).
use http::{Method, Request, Response, StatusCode};
use http_body_util::{BodyExt, Limited};
use hyper::body::Incoming;
use sluice_config::QueueConfig;
use sluice_http::Body;

use crate::{auth, error, reply, Admin};

/// Largest settings document.
const MAX_CONFIG: usize = 1 << 20;
/// Waiting queries listed at most.
const LISTED: i64 = 1000;

impl Admin {
    /// Requests under `/api/v1/queue`.
    pub(crate) async fn queue_endpoint(
        &self,
        req: Request<Incoming>,
        rest: &str,
    ) -> Response<Body> {
        let Some(queue) = &self.queue else {
            return error(StatusCode::NOT_FOUND, "this gateway runs without a queue");
        };
        let rest = rest.trim_matches('/');
        match (req.method().clone(), rest) {
            (Method::GET, "") => match queue.view(LISTED).await {
                Ok(v) => reply(StatusCode::OK, &v),
                Err(e) => error(StatusCode::SERVICE_UNAVAILABLE, e.to_string()),
            },
            (Method::PUT, "config") => {
                let who = auth::Tokens::who(req.headers());
                let body = match Limited::new(req.into_body(), MAX_CONFIG).collect().await {
                    Ok(b) => b.to_bytes(),
                    Err(e) => {
                        return error(
                            StatusCode::BAD_REQUEST,
                            format!("could not read the body: {e}"),
                        )
                    }
                };
                // YAML is a superset of JSON: one parser for both
                let config: QueueConfig = match serde_yaml::from_slice(&body) {
                    Ok(c) => c,
                    Err(e) => {
                        return error(StatusCode::BAD_REQUEST, format!("queue settings: {e}"))
                    }
                };
                if let Err(e) = config.validate() {
                    return error(StatusCode::BAD_REQUEST, format!("queue.{e}"));
                }
                queue.set_config(config.clone());
                tracing::info!(by = who, "queue settings changed through the admin API");
                reply(StatusCode::OK, &config)
            }
            (Method::DELETE, id) if !id.is_empty() && !id.contains('/') => {
                match queue.cancel(id, "cancelled by an operator").await {
                    Ok(true) => {
                        let who = auth::Tokens::who(req.headers());
                        tracing::info!(
                            query_id = id,
                            by = who,
                            "waiting query cancelled through the admin API"
                        );
                        reply(StatusCode::OK, &serde_json::json!({ "cancelled": id }))
                    }
                    Ok(false) => error(StatusCode::NOT_FOUND, format!("query {id} is not waiting")),
                    Err(e) => error(StatusCode::SERVICE_UNAVAILABLE, e.to_string()),
                }
            }
            (m, _) => error(
                StatusCode::NOT_FOUND,
                format!("no admin endpoint {m} /api/v1/queue/{rest}"),
            ),
        }
    }
}
