//! Queries that wait in Sluice ([`sluice_queue`]): the QUEUED answer with a Sluice-issued id,
//! the polls that follow it (held, then admitted and submitted with the poll's credentials),
//! and every other request that names an issued id (`infoUri`, `/v1/query/{id}`, cancel) —
//! answered by the queue while the query waits, by the cluster's query once it runs.
use std::sync::Arc;

use bytes::Bytes;
use http::{header, request, HeaderMap, HeaderName, HeaderValue, Method, Response, StatusCode};
use hyper::body::Incoming;

use sluice_cluster::Backend;
use sluice_http::{json_response, Body};
use sluice_queue::answer::{self, Uris};
use sluice_queue::{Ending, Poll, Queue, Waiting};
use sluice_routing::QueryRequest;
use sluice_store::queue::Entry;

use crate::forward::ForwardError;
use crate::headers::Forwarded;
use crate::{last_page, GatewayError, Proxy};

/// Fields a waiting query does not keep: credentials (the admitting poll brings its own),
/// framing, and what the gateway writes itself.
const NOT_KEPT: &[&str] = &[
    "authorization",
    "proxy-authorization",
    "cookie",
    "x-trino-extra-credential",
    "x-presto-extra-credential",
    "host",
    "content-length",
    "transfer-encoding",
    "forwarded",
    "x-forwarded-for",
    "x-forwarded-host",
    "x-forwarded-proto",
    "x-forwarded-port",
    "traceparent",
    "tracestate",
];

/// The credentials an admitting poll lends the statement it submits.
const CREDENTIALS: &[&str] = &[
    "authorization",
    "cookie",
    "x-trino-extra-credential",
    "x-presto-extra-credential",
];

/// The headers of a new query a waiting entry keeps, as JSON `[[name, value], …]`.
pub(crate) fn kept_headers(headers: &HeaderMap) -> String {
    let mut kept = headers.clone();
    crate::headers::strip_hop_by_hop(&mut kept);
    let pairs: Vec<(&str, &str)> = kept
        .iter()
        .filter(|(n, _)| !NOT_KEPT.contains(&n.as_str()))
        .filter_map(|(n, v)| Some((n.as_str(), v.to_str().ok()?)))
        .collect();
    serde_json::to_string(&pairs).unwrap_or_else(|_| "[]".into())
}

/// The `POST /v1/statement` head that submits `entry`: its kept headers and the credentials of
/// the poll answered (`poll`).
fn submission(entry: &Entry, poll: &HeaderMap) -> Result<request::Parts, GatewayError> {
    let pairs: Vec<(String, String)> =
        serde_json::from_str(&entry.headers).map_err(|e| GatewayError::BackendInvalid {
            backend: "queue".into(),
            reason: format!("a waiting query's stored headers are unreadable: {e}"),
        })?;
    let (mut parts, ()) = http::Request::post("/v1/statement")
        .body(())
        .expect("a fixed method and path")
        .into_parts();
    for (name, value) in pairs {
        if let (Ok(n), Ok(v)) = (
            HeaderName::from_bytes(name.as_bytes()),
            HeaderValue::from_str(&value),
        ) {
            parts.headers.append(n, v);
        }
    }
    for name in CREDENTIALS {
        for v in poll.get_all(*name) {
            parts.headers.append(*name, v.clone());
        }
    }
    Ok(parts)
}

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
        _ => Asked::Poll {
            slug,
            token: token.parse().unwrap_or(0),
        },
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
        let base = forwarded.external_base();
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
        if let (Some(real), Some(backend)) = (&entry.query_id, &entry.backend) {
            let backend = self
                .routing
                .cluster()
                .get(backend)
                .ok_or_else(|| GatewayError::UnknownQuery(real.clone()))?;
            let (mut kill, ()) = http::Request::delete(format!("/v1/query/{real}"))
                .body(())
                .expect("a valid path")
                .into_parts();
            kill.headers = parts.headers;
            let resp = self.stream(&backend, kill, None, forwarded, None).await?;
            queue.release(real);
            return Ok(resp);
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

    /// Submit an admitted query to `backend` with the poll's credentials; its first answer goes
    /// to the client, which polls the cluster's query from then on.
    #[allow(clippy::too_many_arguments)]
    async fn submit_admitted(
        &self,
        queue: &Arc<Queue>,
        entry: Entry,
        backend: &Arc<Backend>,
        poll: request::Parts,
        forwarded: &Forwarded,
        uris: &Uris<'_>,
        token: u64,
    ) -> Result<Response<Body>, GatewayError> {
        let parts = match submission(&entry, &poll.headers) {
            Ok(p) => p,
            Err(e) => {
                queue.unadmit(&entry.id, false, &e.to_string()).await;
                return Err(e);
            }
        };
        let sql = Bytes::from(entry.statement.clone());
        let request = QueryRequest::from_http(&parts.headers, &sql);
        let sent = self
            .forwarder
            .send_statement(backend, &parts, &sql, forwarded)
            .await;
        let resp = match sent {
            Ok(resp) => resp,
            Err(ForwardError::Connect(e)) => {
                tracing::warn!(query_id = entry.id, backend = backend.name(), error = %e, "an admitted query could not be submitted; it waits again");
                queue.unadmit(&entry.id, true, "").await;
                let waited = sluice_store::now_ms() - entry.enqueued_ms;
                return Ok(json_ok(&answer::queued(uris, token + 1, waited)));
            }
            Err(ForwardError::Other(e)) => {
                queue.unadmit(&entry.id, false, &e.to_string()).await;
                return Err(e);
            }
        };
        let (resp, first) = self
            .first_response(backend, &entry.routing_group, resp, forwarded, &request)
            .await
            .inspect_err(|e| {
                let (queue, id, m) = (queue.clone(), entry.id.clone(), e.to_string());
                tokio::spawn(async move { queue.unadmit(&id, false, &m).await });
            })?;
        match first.id {
            Some(real) => {
                let recorded = queue
                    .submitted(&entry.id, &real, first.next_uri.as_deref())
                    .await;
                if let Err(e) = recorded {
                    tracing::warn!(query_id = entry.id, error = %e, "could not record the submitted query; reconciling frees its slot");
                }
                if first.next_uri.is_none() {
                    queue.release(&real);
                }
                tracing::debug!(
                    query_id = entry.id,
                    cluster_query_id = real,
                    backend = backend.name(),
                    "a waiting query was admitted"
                );
            }
            None => {
                let message = format!("cluster answered {} to the submission", resp.status());
                queue.unadmit(&entry.id, false, &message).await;
            }
        }
        Ok(resp)
    }
}

/// Watch a page of a tracked query: its end frees its slot when it has no `nextUri`.
pub(crate) fn watch_last_page(
    queue: &Arc<Queue>,
    id: &str,
    resp: Response<Body>,
) -> Response<Body> {
    let json = crate::stream::is_json(resp.headers());
    if resp.status() != StatusCode::OK || !json {
        return resp;
    }
    let (queue, id) = (queue.clone(), id.to_string());
    resp.map(|body| {
        http_body_util::BodyExt::boxed(last_page::Watched::new(body, move || queue.release(&id)))
    })
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
    fn a_waiting_query_keeps_no_credentials_and_the_admitting_poll_lends_its_own() {
        let mut h = HeaderMap::new();
        h.insert("x-trino-user", "alice".parse().unwrap());
        h.insert("authorization", "Basic c2VjcmV0".parse().unwrap());
        h.insert("x-trino-extra-credential", "k=secret".parse().unwrap());
        h.insert("cookie", "s=secret".parse().unwrap());
        h.insert("x-trino-session", "a=1".parse().unwrap());
        let kept = kept_headers(&h);
        assert!(
            !kept.contains("secret") && !kept.contains("c2VjcmV0"),
            "{kept}"
        );
        assert!(kept.contains("alice") && kept.contains("a=1"));

        let entry = Entry {
            id: "i".into(),
            slug: "s".into(),
            seq: 1,
            priority: 0,
            routing_group: "g".into(),
            user_name: "alice".into(),
            source: None,
            query_text: String::new(),
            statement: Vec::new(),
            headers: kept,
            state: "admitted".into(),
            enqueued_ms: 0,
            deadline_ms: 0,
            last_poll_ms: 0,
            admitted_ms: None,
            admitted_turn: None,
            backend: None,
            query_id: None,
            next_uri: None,
            message: None,
        };
        let mut poll = HeaderMap::new();
        poll.insert("authorization", "Bearer fresh".parse().unwrap());
        poll.insert("x-trino-user", "mallory".parse().unwrap());
        let parts = submission(&entry, &poll).unwrap();
        assert_eq!(parts.method, Method::POST);
        assert_eq!(parts.headers["authorization"], "Bearer fresh");
        // the query's own session, not the poll's
        assert_eq!(parts.headers["x-trino-user"], "alice");
        assert_eq!(parts.headers["x-trino-session"], "a=1");
    }

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
    }
}
