//! Sending one request to one backend over a pooled keep-alive client, with connect and response
//! timeouts and header hygiene.
use std::time::Duration;

use http::{header, request, Request, Response, Uri};
use hyper::body::Incoming;
use sluice_cluster::Backend;
use sluice_config::ProxyConfig;
use sluice_http::client::{self, Client, ClientOptions};
use sluice_http::relay::{Relay, RelayBody, RelayError, RelayOptions};
use sluice_http::tls::Outbound;
use sluice_http::Body;

use tracing::Instrument;

use crate::error::GatewayError;
use crate::headers::{strip_hop_by_hop, Forwarded};

/// Why a forward failed.
#[derive(Debug)]
pub enum ForwardError {
    /// The connection could not be opened: nothing reached the backend, so a retry elsewhere is safe.
    Connect(GatewayError),
    /// Anything after the connection was open.
    Other(GatewayError),
}

impl ForwardError {
    /// The gateway error to answer with.
    pub fn into_gateway_error(self) -> GatewayError {
        match self {
            Self::Connect(e) | Self::Other(e) => e,
        }
    }
}

/// The pooled clients shared by all forwards: hyper's, and the relay for bodiless requests.
#[derive(Clone)]
pub struct Forwarder {
    client: Client,
    relay: Option<Relay>,
    response_timeout: Duration,
}

impl Forwarder {
    /// A client with the configured timeouts and pool size, trusting `tls` for `https://`
    /// backends (`None`: the system's roots).
    pub fn new(config: &ProxyConfig, tls: Option<Outbound>) -> Self {
        let client = client::build(&ClientOptions {
            connect_timeout: Some(Duration::from_millis(config.connect_timeout_ms)),
            pool_max_idle_per_host: config.pool_max_idle_per_host,
            pool_idle_timeout: Duration::from_secs(90),
            tcp_keepalive: Some(Duration::from_secs(60)),
            tls,
        });
        let relay = config.relay.then(|| {
            Relay::new(RelayOptions {
                connect_timeout: Some(Duration::from_millis(config.connect_timeout_ms)),
                tcp_keepalive: Some(Duration::from_secs(60)),
                max_idle_per_host: config.pool_max_idle_per_host,
                idle_timeout: Duration::from_secs(90),
            })
        });
        Self {
            client,
            relay,
            response_timeout: Duration::from_millis(config.response_timeout_ms),
        }
    }

    /// The relay, when it is on and `backend` speaks plain HTTP.
    fn relay_to(&self, backend: &Backend) -> Option<&Relay> {
        self.relay
            .as_ref()
            .filter(|_| backend.uri.scheme() == Some(&http::uri::Scheme::HTTP))
    }

    /// Whether the request `parts` describes goes over the relay: it has no body, its method
    /// may be repeated (a pooled connection that turns out closed is retried), and `backend`
    /// speaks plain HTTP.
    pub fn relays(&self, backend: &Backend, parts: &request::Parts) -> bool {
        self.relay_to(backend).is_some()
            && matches!(
                parts.method,
                http::Method::GET
                    | http::Method::HEAD
                    | http::Method::DELETE
                    | http::Method::OPTIONS
            )
            && !parts.headers.contains_key(header::TRANSFER_ENCODING)
            && parts
                .headers
                .get(header::CONTENT_LENGTH)
                .is_none_or(|v| v.as_bytes() == b"0")
    }

    /// A statement read whole (a new query, a kill) to `backend`: over the relay when it speaks
    /// plain HTTP, else over hyper's client.
    pub async fn send_statement(
        &self,
        backend: &Backend,
        parts: &request::Parts,
        sql: &bytes::Bytes,
        forwarded: &Forwarded,
    ) -> Result<Response<Body>, ForwardError> {
        use http_body_util::BodyExt;
        if self.relay_to(backend).is_some() {
            let resp = self.relay(backend, parts, forwarded, Some(sql)).await?;
            return Ok(resp.map(|b| b.boxed()));
        }
        let body = sluice_http::full_body(sql.clone());
        let resp = self.send(backend, parts, body, forwarded).await?;
        Ok(resp.map(|b| b.map_err(Into::into).boxed()))
    }

    /// [`Forwarder::send`] over the relay, for a request [`Forwarder::relays`] accepts (`body`
    /// `None`), or a statement read whole.
    pub async fn relay(
        &self,
        backend: &Backend,
        parts: &request::Parts,
        forwarded: &Forwarded,
        body: Option<&[u8]>,
    ) -> Result<Response<RelayBody>, ForwardError> {
        let relay = self
            .relay_to(backend)
            .expect("the relay serves this backend (relays() was asked)");
        let authority = backend.uri.authority().expect("validated backend url");
        let span = forward_span(backend);
        let trace = (!span.is_disabled()).then(|| {
            let mut h = http::HeaderMap::new();
            sluice_telemetry::propagate::inject(&span, &mut h);
            h
        });
        let head = crate::head::request_head(parts, authority, forwarded, trace.as_ref(), body);
        let sent = async {
            match body {
                None => {
                    let head_request = parts.method == http::Method::HEAD;
                    relay.send(authority, &head, head_request).await
                }
                Some(_) => relay.send_once(authority, &head).await,
            }
        };
        let result = tokio::time::timeout(self.response_timeout, sent)
            .instrument(span)
            .await;
        let name = || backend.name().to_string();
        let mut resp = match result {
            Err(_) => {
                return Err(ForwardError::Other(GatewayError::BackendTimeout {
                    backend: name(),
                    timeout_ms: self.response_timeout.as_millis() as u64,
                }))
            }
            Ok(Err(RelayError::Connect(e))) => {
                return Err(ForwardError::Connect(GatewayError::BackendUnreachable {
                    backend: name(),
                    reason: format!("could not connect: {e}"),
                }))
            }
            Ok(Err(e @ RelayError::Head(_))) => {
                return Err(ForwardError::Other(GatewayError::BackendInvalid {
                    backend: name(),
                    reason: e.to_string(),
                }))
            }
            Ok(Err(e)) => {
                return Err(ForwardError::Other(GatewayError::BackendUnreachable {
                    backend: name(),
                    reason: e.to_string(),
                }))
            }
            Ok(Ok(resp)) => resp,
        };
        resp.extensions_mut()
            .insert(crate::metrics::ServedBy(backend.label().clone()));
        Ok(resp)
    }

    /// Send a request described by `parts` with `body` to `backend`; returns the backend's
    /// response with hop-by-hop headers removed.
    pub async fn send(
        &self,
        backend: &Backend,
        parts: &request::Parts,
        body: Body,
        forwarded: &Forwarded,
    ) -> Result<Response<Incoming>, ForwardError> {
        // the client's path and query as they are (a shared buffer: cloned, not copied)
        let path_and_query = parts
            .uri
            .path_and_query()
            .cloned()
            .unwrap_or_else(|| http::uri::PathAndQuery::from_static("/"));
        let base = &backend.uri;
        let uri = Uri::builder()
            .scheme(base.scheme().cloned().unwrap_or(http::uri::Scheme::HTTP))
            .authority(base.authority().cloned().expect("validated backend url"))
            .path_and_query(path_and_query)
            .build()
            .map_err(|e| {
                ForwardError::Other(GatewayError::BadRequest(format!("bad request target: {e}")))
            })?;
        let mut req = Request::new(body);
        *req.method_mut() = parts.method.clone();
        *req.uri_mut() = uri;
        *req.headers_mut() = parts.headers.clone();
        let headers = req.headers_mut();
        strip_hop_by_hop(headers);
        headers.remove(header::HOST); // the client sets the backend's authority
        forwarded.apply(headers);
        let span = forward_span(backend);
        sluice_telemetry::propagate::inject(&span, headers);

        let name = || backend.name().to_string();
        let sent = tokio::time::timeout(self.response_timeout, self.client.request(req));
        let result = sent.instrument(span).await;
        let mut resp = match result {
            Err(_) => {
                return Err(ForwardError::Other(GatewayError::BackendTimeout {
                    backend: name(),
                    timeout_ms: self.response_timeout.as_millis() as u64,
                }))
            }
            Ok(Err(e)) if client_body_failed(&e) => {
                // the client's own body broke off or is malformed (e.g. a bad chunk size)
                return Err(ForwardError::Other(GatewayError::BadRequest(format!(
                    "the request body could not be read: {}",
                    error_chain(&e)
                ))));
            }
            Ok(Err(e)) if e.is_connect() => {
                return Err(ForwardError::Connect(GatewayError::BackendUnreachable {
                    backend: name(),
                    reason: error_chain(&e),
                }))
            }
            Ok(Err(e)) => {
                return Err(ForwardError::Other(GatewayError::BackendUnreachable {
                    backend: name(),
                    reason: error_chain(&e),
                }))
            }
            Ok(Ok(resp)) => resp,
        };
        strip_hop_by_hop(resp.headers_mut());
        resp.extensions_mut()
            .insert(crate::metrics::ServedBy(backend.label().clone()));
        Ok(resp)
    }
}

/// The span of one forward to `backend` (disabled unless tracing is on).
fn forward_span(backend: &Backend) -> tracing::Span {
    tracing::info_span!(
        target: sluice_telemetry::TARGET,
        "sluice.forward",
        otel.kind = "client",
        sluice.backend = backend.name(),
        server.address = backend.uri.host(),
    )
}

/// Whether a forward failed because the request body (the client's) failed, not the backend.
fn client_body_failed(e: &(dyn std::error::Error + 'static)) -> bool {
    let mut current = Some(e);
    while let Some(err) = current {
        if err
            .downcast_ref::<hyper::Error>()
            .is_some_and(|h| h.is_user())
        {
            return true;
        }
        current = err.source();
    }
    false
}

fn error_chain(e: &dyn std::error::Error) -> String {
    let mut out = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        out.push_str(": ");
        out.push_str(&s.to_string());
        source = s.source();
    }
    out
}
