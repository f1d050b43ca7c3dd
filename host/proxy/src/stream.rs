//! Forwarding a request that is not a new query and passing the backend's answer on: over the
//! relay when the request has no body (every follow-up poll), else over hyper's client; the
//! answer streams through unless `nextUri` must be rewritten, and the segment URIs of a
//! query's pages get their owner appended ([`crate::spooled`]).
use bytes::Bytes;
use http::{header, request, Response, StatusCode};
use http_body_util::BodyExt;
use hyper::body::Incoming;

use sluice_cluster::Backend;
use sluice_http::{full_body, Body, BoxError};

use crate::forward::ForwardError;
use crate::headers::Forwarded;
use crate::{rewrite, spooled, GatewayError, Proxy, MAX_FIRST_RESPONSE};

impl Proxy {
    /// Forward with the body streamed both ways (`None`: a request Sluice makes, without one) (buffered only to rewrite `nextUri`); the
    /// segment URIs of answers for query `spool` are rewritten as they stream.
    pub(crate) async fn stream(
        &self,
        backend: &Backend,
        parts: request::Parts,
        body: Option<Incoming>,
        forwarded: &Forwarded,
        spool: Option<&str>,
    ) -> Result<Response<Body>, GatewayError> {
        if self.forwarder.relays(backend, &parts) {
            drop(body);
            let resp = self
                .forwarder
                .relay(backend, &parts, forwarded, None)
                .await
                .map_err(ForwardError::into_gateway_error)?;
            if let Some(bytes) = resp.body().as_full().cloned() {
                if !backend.config.rewrite_next_uri {
                    // a page read whole with its head: rewritten in place, its length kept right
                    let (mut parts, _) = resp.into_parts();
                    let spool = spool.filter(|_| spooled::mentions_segments(&bytes));
                    let bytes = match segments(backend, spool, parts.status, &parts.headers) {
                        None => bytes,
                        Some(r) => {
                            let out = r.rewrite_all(bytes);
                            parts
                                .headers
                                .insert(header::CONTENT_LENGTH, out.len().into());
                            out
                        }
                    };
                    return Ok(Response::from_parts(parts, full_body(bytes)));
                }
            }
            return pass_on(backend, resp, forwarded, spool).await;
        }
        // hyper's client, boxed: its future is large, and a relayed request's should not carry
        // its size
        Box::pin(async move {
            let body = match body {
                Some(b) => b.map_err(Into::into).boxed(),
                None => sluice_http::empty_body(),
            };
            let resp = self
                .forwarder
                .send(backend, &parts, body, forwarded)
                .await
                .map_err(ForwardError::into_gateway_error)?;
            pass_on(backend, resp, forwarded, spool).await
        })
        .await
    }
}

/// The rewriter of segment URIs for a JSON page of query `spool`.
fn segments(
    backend: &Backend,
    spool: Option<&str>,
    status: StatusCode,
    headers: &http::HeaderMap,
) -> Option<spooled::Rewriter> {
    spool
        .filter(|_| status == StatusCode::OK && is_json(headers))
        .map(|id| spooled::Rewriter::new(spooled::params(id, backend.name())))
}

/// Pass a backend's answer on: buffered and rewritten when the backend ignores forwarded
/// headers, else streamed (through the segment rewriter for a query's pages).
async fn pass_on<B>(
    backend: &Backend,
    resp: Response<B>,
    forwarded: &Forwarded,
    spool: Option<&str>,
) -> Result<Response<Body>, GatewayError>
where
    B: hyper::body::Body<Data = Bytes> + Send + Sync + 'static,
    B::Error: Into<BoxError> + std::fmt::Display,
{
    let segments = segments(backend, spool, resp.status(), resp.headers());
    if backend.config.rewrite_next_uri && is_json(resp.headers()) {
        return Box::pin(async move {
            let (parts, body) = resp.into_parts();
            let bytes = collect(backend, body, MAX_FIRST_RESPONSE).await?;
            let mut bytes = rewrite::rewrite_uris(&bytes, &forwarded.external_base());
            if let Some(r) = segments {
                bytes = r.rewrite_all(bytes);
            }
            Ok(finish(parts, bytes))
        })
        .await;
    }
    let resp = resp.map(|b| b.map_err(Into::into).boxed());
    match segments {
        None => Ok(resp),
        Some(r) => {
            let (mut parts, body) = resp.into_parts();
            parts.headers.remove(header::CONTENT_LENGTH);
            Ok(Response::from_parts(
                parts,
                spooled::Rewriting::new(body, r).boxed(),
            ))
        }
    }
}

pub(crate) fn is_json(headers: &http::HeaderMap) -> bool {
    headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.contains("json"))
}

/// A body read whole, at most `limit` bytes (one frame is passed on as it is, not copied).
pub(crate) async fn collect<B>(
    backend: &Backend,
    body: B,
    limit: usize,
) -> Result<Bytes, GatewayError>
where
    B: hyper::body::Body<Data = Bytes>,
    B::Error: std::fmt::Display,
{
    let invalid = |reason: String| GatewayError::BackendInvalid {
        backend: backend.name().to_string(),
        reason: format!("could not read the response body: {reason}"),
    };
    let mut body = std::pin::pin!(body);
    let (mut first, mut rest) = (None::<Bytes>, None::<bytes::BytesMut>);
    let mut len = 0;
    while let Some(frame) = body.frame().await {
        let Ok(data) = frame.map_err(|e| invalid(e.to_string()))?.into_data() else {
            continue; // trailers
        };
        len += data.len();
        if len > limit {
            return Err(invalid(format!("longer than {limit} bytes")));
        }
        match (&mut first, &mut rest) {
            (None, _) => first = Some(data),
            (Some(f), None) => {
                let mut all = bytes::BytesMut::from(&f[..]);
                all.extend_from_slice(&data);
                rest = Some(all);
            }
            (Some(_), Some(all)) => all.extend_from_slice(&data),
        }
    }
    Ok(match rest {
        Some(all) => all.freeze(),
        None => first.unwrap_or_default(),
    })
}

/// A buffered response with a correct length.
pub(crate) fn finish(mut parts: http::response::Parts, bytes: Bytes) -> Response<Body> {
    parts.headers.remove(header::CONTENT_LENGTH);
    Response::from_parts(parts, full_body(bytes))
}
