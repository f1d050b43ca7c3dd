//! Queries that wait in Sluice ([`sluice_queue`]): the QUEUED answer with a Sluice-issued id,
//! the polls that follow it (held, then admitted and submitted with the poll's credentials),
//! and every other request that names an issued id (`infoUri`, `/v1/query/{id}`, cancel) —
//! answered by the queue while the query waits, by the cluster's query once it runs.
use std::sync::Arc;

use bytes::Bytes;
use http::{header, request, Method, Response, StatusCode};
use hyper::body::Incoming;

use sluice_http::{json_response, Body};
use sluice_queue::answer::{self, Uris};
use sluice_queue::{Ending, Poll, Queue, Waiting};
use sluice_routing::QueryRequest;
use sluice_store::queue::Entry;

use crate::headers::Forwarded;
use crate::{GatewayError, Proxy};

mod submit;
pub(crate) use submit::{kept_headers, watch_last_page};

/// What a request naming an issued id asks.
enum Asked<'a> {
    /// `GET /v1/statement/queued/{id}/{slug}/{token}`.
    Poll { slug: &'a str, token: u64 },
    /// `DELETE` of the same: cancel.
    Cancel { slug: &'a str },
    /// Anything else (`/v1/query/{id}`, `/ui/query.html?{id}` …).
    Other,
}

fn asked<'a>(method: &Method, path: &'a str, id: &str) -> Asked<'a> {
    let rest = path
        .strip_prefix("/v1/statement/queued/")
        .and_then(|r| r.strip_prefix(id))
        .and_then(|r| r.strip_prefix('/'));
    let Some((slug, token)) = rest.and_then(|r| r.split_once('/')) else {
        return Asked::Other;
    };
    match *method {
        Method::DELETE => Asked::Cancel { slug },
        Method::GET => Asked::Poll {
            slug,
            token: token.parse().unwrap_or(0),
        },
        // only a client's poll may admit a query
        _ => Asked::Other,
    }
}

fn json_ok(v: &serde_json::Value) -> Response<Body> {
    json_response(StatusCode::OK, v)
}

fn queue_error(e: sluice_queue::QueueError) -> GatewayError {
    match e {
        sluice_queue::QueueError::Full(message) => GatewayError::Rejected {
            status: StatusCode::SERVICE_UNAVAILABLE,
            message,
        },
        other => GatewayError::Rejected {
            status: StatusCode::SERVICE_UNAVAILABLE,
            message: format!("the gateway's queue is unavailable: {other}"),
        },
    }
}

impl Proxy {
    /// A new query with no room for it now: it waits, and its client gets a QUEUED answer.
    #[allow(clippy::too_many_arguments)]
    pub(crate) async fn wait_in_queue(
        &self,
        queue: &Queue,
        group: &str,
        priority: i32,
        parts: &request::Parts,
        sql: &Bytes,
        request: &QueryRequest,
        forwarded: &Forwarded,
    ) -> Result<Response<Body>, GatewayError> {
        let headers = kept_headers(&parts.headers);
        let (id, slug) = queue
            .enqueue(Waiting {
                group,
                user: request.user.as_deref(),
                source: request.source.as_deref(),
                priority,
                query_text: &request.query_text,
                statement: sql,
                headers: &headers,
            })
            .await
            .map_err(queue_error)?;
        tracing::debug!(
            query_id = id,
            group,
            priority,
            "new query waits in the queue"
        );
        let base = forwarded.external_base();
        let uris = Uris {
            base: &base,
            id: &id,
            slug: &slug,
        };
        Ok(json_ok(&answer::queued(&uris, 1, 0)))
    }

    /// Any request that names issued id `id`.
    pub(crate) async fn queued_request(
        &self,
        queue: &Arc<Queue>,
        id: &str,
        parts: request::Parts,
        body: Incoming,
        forwarded: &Forwarded,
    ) -> Result<Response<Body>, GatewayError> {
        match asked(&parts.method, parts.uri.path(), id) {
            Asked::Poll { slug, token } => {
                let slug = slug.to_string();
                self.queued_poll(queue, id, &slug, token, parts, forwarded)
                    .await
            }
            Asked::Cancel { slug } => {
                let entry = queue.entry(id, false).await.map_err(queue_error)?;
                match entry {
                    Some(e) if e.slug == slug => {
                        self.cancel_entry(queue, e, parts, forwarded).await
                    }
                    _ => Err(GatewayError::UnknownQuery(id.to_string())),
                }
            }
            Asked::Other => {
                let entry = queue.entry(id, false).await.map_err(queue_error)?;
                let Some(entry) = entry else {
                    return Err(GatewayError::UnknownQuery(id.to_string()));
                };
                if let (Some(real), Some(_)) = (&entry.query_id, &entry.backend) {
                    // it runs: the same request, for the cluster's query
                    let real = real.clone();
                    let parts = renamed(parts, id, &real)?;
                    return self.follow_up(&real, parts, Some(body), forwarded).await;
                }
                if parts.method == Method::DELETE {
                    return self.cancel_entry(queue, entry, parts, forwarded).await;
                }
                let base = forwarded.external_base();
                let uris = Uris {
                    base: &base,
                    id,
                    slug: "",
                };
                Ok(json_ok(&serde_json::json!({
                    "queryId": id, "state": state_name(&entry), "self": uris.info(),
                    "routingGroup": entry.routing_group, "user": entry.user_name,
                    "priority": entry.priority, "query": entry.query_text,
                    "queuedTimeMillis": sluice_store::now_ms() - entry.enqueued_ms,
                })))
            }
        }
    }

    /// Cancel a waiting query, or the cluster's query it became.
    async fn cancel_entry(
        &self,
        queue: &Arc<Queue>,
        entry: Entry,
        parts: request::Parts,
        forwarded: &Forwarded,
    ) -> Result<Response<Body>, GatewayError> {
        if let Some(real) = &entry.query_id {
            // a kill of the cluster's query, as any client's: the follow-up path frees its slot
            let (mut kill, ()) = http::Request::delete(format!("/v1/query/{real}"))
                .body(())
                .expect("a valid path")
                .into_parts();
            kill.headers = parts.headers;
            return self.follow_up(real, kill, None, forwarded).await;
        }
        queue
            .cancel(&entry.id, "cancelled by the client while waiting")
            .await
            .map_err(queue_error)?;
        let mut resp = Response::new(sluice_http::empty_body());
        *resp.status_mut() = StatusCode::NO_CONTENT;
        Ok(resp)
    }

    /// A poll of a waiting query: held while there is no room; admitted and submitted with
    /// this poll's credentials when there is.
    async fn queued_poll(
        &self,
        queue: &Arc<Queue>,
        id: &str,
        slug: &str,
        token: u64,
        parts: request::Parts,
        forwarded: &Forwarded,
    ) -> Result<Response<Body>, GatewayError> {
        let base = forwarded.external_base();
        let uris = Uris {
            base: &base,
            id,
            slug,
        };
        let waited = |e: &Entry| sluice_store::now_ms() - e.enqueued_ms;
        match queue.poll(id, slug).await.map_err(queue_error)? {
            Poll::Unknown => Err(GatewayError::UnknownQuery(id.to_string())),
            Poll::Waiting(e) => Ok(json_ok(&answer::queued(&uris, token + 1, waited(&e)))),
            Poll::Ended(e, ending) => {
                let message = e.message.clone().unwrap_or_else(|| match ending {
                    Ending::Cancelled => "the query was cancelled while it waited".into(),
                    Ending::Abandoned => "the client stopped polling while the query waited".into(),
                    _ => "the query could not be started".into(),
                });
                Ok(json_ok(&answer::ended(&uris, ending, &message, waited(&e))))
            }
            Poll::Running(e) => {
                // a poll of the issued id again (a retry): the cluster's first page again
                let (Some(real), Some(next)) = (e.query_id.clone(), e.next_uri.as_deref()) else {
                    return Ok(json_ok(&answer::queued(&uris, token + 1, waited(&e))));
                };
                let path = next
                    .parse::<http::Uri>()
                    .ok()
                    .and_then(|u| u.path_and_query().cloned())
                    .ok_or_else(|| GatewayError::UnknownQuery(id.to_string()))?;
                let mut parts = parts;
                parts.uri = path.as_str().parse().expect("a path and query");
                self.follow_up(&real, parts, None, forwarded).await
            }
            Poll::Admitted(e, backend) => {
                self.submit_admitted(queue, e, &backend, parts, forwarded, &uris, token)
                    .await
            }
        }
    }
}

fn state_name(e: &Entry) -> &'static str {
    match e.state.as_str() {
        "queued" => "QUEUED",
        "admitted" => "DISPATCHING",
        _ => "FAILED",
    }
}

/// The same request with the issued id replaced by the cluster's in its path and query.
fn renamed(
    mut parts: request::Parts,
    id: &str,
    real: &str,
) -> Result<request::Parts, GatewayError> {
    let target = parts
        .uri
        .path_and_query()
        .map_or("/", |p| p.as_str())
        .replace(id, real);
    parts.uri = target
        .parse()
        .map_err(|e| GatewayError::BadRequest(format!("bad request target: {e}")))?;
    parts.headers.remove(header::CONTENT_LENGTH);
    Ok(parts)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_naming_an_issued_id_are_told_apart() {
        let id = "20261206_000000_00001_lqabcdef";
        let poll = format!("/v1/statement/queued/{id}/yslug/4");
        assert!(matches!(
            asked(&Method::GET, &poll, id),
            Asked::Poll {
                slug: "yslug",
                token: 4
            }
        ));
        assert!(matches!(
            asked(&Method::DELETE, &poll, id),
            Asked::Cancel { slug: "yslug" }
        ));
        assert!(matches!(
            asked(&Method::GET, &format!("/v1/query/{id}"), id),
            Asked::Other
        ));
        assert!(matches!(asked(&Method::POST, &poll, id), Asked::Other));
    }
}
