//! Submitting an admitted query: what a waiting query keeps of its request (no credentials),
//! the head that submits it with the admitting poll's credentials, and watching a tracked
//! query's pages for its end.
use std::sync::Arc;

use bytes::Bytes;
use http::{request, HeaderMap, HeaderName, HeaderValue, Response, StatusCode};

use sluice_cluster::Backend;
use sluice_http::Body;
use sluice_queue::answer::{self, Uris};
use sluice_queue::Queue;
use sluice_routing::QueryRequest;
use sluice_store::queue::Entry;

use super::json_ok;
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

impl Proxy {
    /// Submit an admitted query to `backend` with the poll's credentials; its first answer goes
    /// to the client, which polls the cluster's query from then on.
    #[allow(clippy::too_many_arguments)]
    pub(super) async fn submit_admitted(
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

#[cfg(test)]
mod tests {
    use super::*;
    use http::Method;

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
}
