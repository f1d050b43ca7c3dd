//! `POST /v1/statement`: a new query routed, through the queue when its group has limits, sent,
//! and its first answer read for the query id the follow-ups will name.
use std::sync::Arc;

use bytes::Bytes;
use http::{request, Response, StatusCode};
use hyper::body::Incoming;
use tracing::Instrument;

use sluice_cache::QueryLocation;
use sluice_cluster::Backend;
use sluice_http::Body;
use sluice_routing::QueryRequest;
use sluice_store::{now_ms, HistoryRow};
use sluice_telemetry::TARGET as TRACING;

use crate::forward::ForwardError;
use crate::headers::Forwarded;
use crate::stream::{collect, finish};
use crate::{kill_query, query_id, rewrite, spooled, GatewayError, Proxy, MAX_FIRST_RESPONSE};
use sluice_queue::{Queue, Start};

/// A direct admission's slot after the first answer: it runs the cluster's query now, or it is
/// freed (no query, or one that ended at once).
async fn settle(queue: &Arc<Queue>, slot: &str, first: Option<&First>) {
    match first.and_then(|f| f.id.as_deref().map(|id| (id, f.next_uri.as_deref()))) {
        Some((id, next)) => {
            if let Err(e) = queue.submitted(slot, id, next).await {
                tracing::warn!(error = %e, "could not record a slot's query; reconciling frees it");
            }
            if next.is_none() {
                queue.release(id);
            }
        }
        None => queue.release_slot(slot).await,
    }
}

/// What the first answer of a new query said.
#[derive(Debug, Default)]
pub(crate) struct First {
    /// The cluster's query id.
    pub id: Option<String>,
    /// Where its client polls next (none: it ended at once).
    pub next_uri: Option<String>,
}

impl Proxy {
    /// `POST /v1/statement`: route, forward (retrying once elsewhere if the connection is
    /// refused), read the query id from the answer and remember its owner.
    pub(crate) async fn new_query(
        &self,
        parts: request::Parts,
        body: Incoming,
        forwarded: &Forwarded,
    ) -> Result<Response<Body>, GatewayError> {
        let statement = self.statements.read(body).await?;
        let sql = statement.bytes.clone();

        let mut request = QueryRequest::from_http(&parts.headers, &sql);
        let session = |name: &str| parts.headers.get(name).and_then(|v| v.to_str().ok());
        let kill = kill_query::target_query_id(
            &sql,
            session("x-trino-catalog"),
            session("x-trino-schema"),
        );
        if let Some(mut target) = kill {
            let mut sql = sql.clone();
            if let Some(queue) = self.queue.as_ref() {
                if sluice_queue::ids::is_issued(&target) {
                    match self.kill_waiting(queue, &target, forwarded).await? {
                        Ok(resp) => return Ok(resp),
                        Err(real) => {
                            // it runs: kill the cluster's query it became
                            sql =
                                Bytes::from(String::from_utf8_lossy(&sql).replace(&target, &real));
                            target = real;
                        }
                    }
                }
            }
            let location = self
                .locator
                .locate(&target)
                .await
                .ok_or_else(|| GatewayError::UnknownQuery(target.clone()))?;
            let backend = self.owner(&target, &location)?;
            tracing::info!(
                query_id = target,
                backend = backend.name(),
                "kill_query routed to the query's owner"
            );
            let resp = self
                .forwarder
                .send_statement(&backend, &parts, &sql, forwarded)
                .await
                .map_err(ForwardError::into_gateway_error)?;
            return self
                .first_response(&backend, &location.group, resp, forwarded, &request)
                .await
                .map(|(resp, _)| resp);
        }

        if self.routing.wants_sql_objects() {
            // the whole statement, not only the text routers get
            request.extract_sql_objects_from(&String::from_utf8_lossy(&sql));
        }
        let mut excluded: Vec<String> = Vec::new();
        loop {
            let span = tracing::info_span!(
                target: TRACING,
                "sluice.route",
                sluice.group = tracing::field::Empty,
                sluice.backend = tracing::field::Empty,
            );
            let choice = self
                .routing
                .choose(&request, &excluded)
                .instrument(span.clone())
                .await?;
            span.record("sluice.group", choice.group.as_str());
            span.record("sluice.backend", choice.backend.name());
            let (mut backend, mut slot) = (choice.backend.clone(), None);
            if let Some(queue) = self.queue.as_ref().filter(|q| q.applies(&choice.group)) {
                let user = request.user.as_deref().unwrap_or("");
                let priority = choice.priority.unwrap_or_else(|| {
                    queue.config().priority_of(
                        request.user.as_deref(),
                        request.source.as_deref(),
                        &request.client_tags,
                        &choice.group,
                    )
                });
                match queue.start(&backend, &choice.group, user, priority).await {
                    Ok(Start::Go {
                        backend: b,
                        slot: s,
                    }) => (backend, slot) = (b, Some(s)),
                    Ok(Start::Wait) => {
                        return self
                            .wait_in_queue(
                                queue,
                                &choice.group,
                                priority,
                                &parts,
                                &sql,
                                &request,
                                forwarded,
                            )
                            .await
                    }
                    // the store is down: queries go through without a slot, as without limits
                    Err(e) => {
                        tracing::warn!(error = %e, group = choice.group, "the queue cannot admit; the query goes through without a slot")
                    }
                }
            }
            let sent = self
                .forwarder
                .send_statement(&backend, &parts, &sql, forwarded)
                .await;
            let queue = self.queue.as_ref().zip(slot.as_deref());
            match sent {
                Ok(resp) => {
                    let answer = self
                        .first_response(&backend, &choice.group, resp, forwarded, &request)
                        .await;
                    if let Some((queue, slot)) = queue {
                        settle(queue, slot, answer.as_ref().ok().map(|(_, f)| f)).await;
                    }
                    return answer.map(|(resp, _)| resp);
                }
                Err(ForwardError::Connect(e)) if excluded.is_empty() => {
                    if let Some((queue, slot)) = queue {
                        queue.release_slot(slot).await;
                    }
                    tracing::warn!(backend = backend.name(), error = %e, "backend refused a new query; retrying once on another backend");
                    excluded.push(backend.name().to_string());
                }
                Err(e) => {
                    if let Some((queue, slot)) = queue {
                        queue.release_slot(slot).await;
                    }
                    return Err(e.into_gateway_error());
                }
            }
        }
    }

    /// `CALL kill_query` of an issued id: a waiting query is cancelled and the CALL answered as
    /// done (`Ok`); one that runs names the cluster's query to kill instead (`Err`).
    async fn kill_waiting(
        &self,
        queue: &sluice_queue::Queue,
        target: &str,
        forwarded: &Forwarded,
    ) -> Result<Result<Response<Body>, String>, GatewayError> {
        let entry = queue
            .entry(target, false)
            .await
            .map_err(|e| GatewayError::Rejected {
                status: StatusCode::SERVICE_UNAVAILABLE,
                message: format!("the gateway's queue is unavailable: {e}"),
            })?
            .ok_or_else(|| GatewayError::UnknownQuery(target.to_string()))?;
        if let Some(real) = entry.query_id {
            return Ok(Err(real));
        }
        let _ = queue
            .cancel(target, "killed (system.runtime.kill_query)")
            .await;
        tracing::info!(query_id = target, "kill_query cancelled a waiting query");
        let id = sluice_queue::ids::issue();
        let done = sluice_queue::answer::kill_done(&forwarded.external_base(), &id);
        Ok(Ok(sluice_http::json_response(StatusCode::OK, &done)))
    }

    /// Read the first answer of a new query, remember `id` → backend, pass it on.
    pub(crate) async fn first_response(
        &self,
        backend: &Backend,
        group: &str,
        resp: Response<Body>,
        forwarded: &Forwarded,
        request: &QueryRequest,
    ) -> Result<(Response<Body>, First), GatewayError> {
        let (parts, body) = resp.into_parts();
        let mut bytes = collect(backend, body, MAX_FIRST_RESPONSE).await?;
        let mut first = First::default();
        if parts.status == StatusCode::OK {
            match answer_id(&bytes) {
                Ok(v) => match v.id.as_deref() {
                    Some(id) if query_id::is_query_id(id) => {
                        first.id = Some(id.to_string());
                        first.next_uri = v.next_uri;
                        let history = HistoryRow {
                            query_id: id.to_string(),
                            query_text: request.query_text.clone(),
                            user: request.user.clone(),
                            source: request.source.clone(),
                            routing_group: group.to_string(),
                            backend: backend.name().to_string(),
                            external_url: backend.config.external_url.clone(),
                            created_at_ms: now_ms(),
                        };
                        let location = QueryLocation {
                            backend: Arc::from(backend.name()),
                            group: Arc::from(group),
                        };
                        self.locator.remember_new(id, location, history).await;
                        tracing::debug!(
                            query_id = id,
                            backend = backend.name(),
                            group,
                            "new query routed"
                        );
                    }
                    _ => tracing::warn!(
                        backend = backend.name(),
                        "new-query answer has no valid query id"
                    ),
                },
                Err(e) => {
                    tracing::warn!(backend = backend.name(), error = %e, "new-query answer is not JSON")
                }
            }
            if backend.config.rewrite_next_uri {
                bytes = rewrite::rewrite_uris(&bytes, &forwarded.external_base());
            }
            if let Some(id) = first.id.as_deref() {
                bytes =
                    spooled::Rewriter::new(spooled::params(id, backend.name())).rewrite_all(bytes);
            }
        }
        Ok((finish(parts, bytes), first))
    }
}

/// The `id` and `nextUri` of a new query's first answer, read without building the rest of the
/// document (the other fields are skipped as they are parsed).
pub(crate) fn answer_id(bytes: &[u8]) -> Result<First, serde_json::Error> {
    use std::borrow::Cow;
    #[derive(serde::Deserialize)]
    struct Page<'a> {
        #[serde(borrow, default)]
        id: Option<Cow<'a, str>>,
        #[serde(borrow, default, rename = "nextUri")]
        next_uri: Option<Cow<'a, str>>,
    }
    serde_json::from_slice::<Page>(bytes).map(|f| First {
        id: f.id.map(Cow::into_owned),
        next_uri: f.next_uri.map(Cow::into_owned),
    })
}

#[cfg(test)]
mod tests {
    use super::answer_id;

    #[test]
    fn a_first_answers_id_is_read_and_the_rest_skipped() {
        let page = br#"{"data":[[1,{"id":"nested"}]],"id":"20240101_000000_00001_abcde","nextUri":"http://x/1","stats":{"state":"QUEUED"}}"#;
        let first = answer_id(page).unwrap();
        assert_eq!(first.id.as_deref(), Some("20240101_000000_00001_abcde"));
        assert_eq!(first.next_uri.as_deref(), Some("http://x/1"));
        // an escaped id is unescaped, as a DOM would
        let id = answer_id(br#"{"id":"2024\u005f1"}"#).unwrap().id;
        assert_eq!(id.as_deref(), Some("2024_1"));
        assert_eq!(answer_id(br#"{"error":{}}"#).unwrap().id, None);
        assert!(answer_id(b"[1]").is_err() && answer_id(b"<html>").is_err());
    }
}
