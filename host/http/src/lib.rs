//! HTTP plumbing shared by every Sluice part that speaks HTTP: one body type, one way to build a
//! client, one accept loop.
//!
//! # Layout
//!
//! | module | one job |
//! | --- | --- |
//! | this file | [`Body`] (streamed or built in place), [`full_body`], [`empty_body`], [`json_response`], [`cookie_values`] |
//! | [`client`] | [`client::build`]: the pooled hyper client of the forwarder, the health poller, the owner search and the CLI |
//! | [`hop`] | hop-by-hop fields, removed in both directions by both clients |
//! | [`multipart`] | [`multipart::parts`] and [`multipart::upload`]: `multipart/form-data` uploads, read and written |
//! | [`serve`] | [`serve::serve`]: accept HTTP/1.1 connections on a bound listener until cancelled, then drain them |
//! | [`per_core`] | [`per_core::serve_per_core`]: the same loop on one current-thread runtime per core, one `SO_REUSEPORT` socket each |
//! | [`relay`] | [`relay::Relay`]: a lean HTTP/1.1 client for bodiless requests (follow-ups), its head written by the caller, its answer read in place |
//! | [`tls`] | PEM certificates and keys; the outbound clients' TLS ([`tls::client_config`]) |
//! | [`tls_server`] | [`tls_server::ServerTls`]: a listener's certificate, reloaded when its files change |
#![forbid(unsafe_code)]

use http::{header, Response, StatusCode};
use http_body_util::BodyExt;

pub mod client;
pub mod hop;
pub mod multipart;
pub mod per_core;
pub mod relay;
pub mod serve;
pub mod tls;
pub mod tls_server;

/// Marks a request that arrived over TLS (set by [`serve::serve_with_tls`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Https;

/// The body type every Sluice request and response uses: streamed from a peer or built in place.
pub type Body = http_body_util::combinators::BoxBody<bytes::Bytes, BoxError>;
/// A boxed error for bodies and glue.
pub type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// The values of the cookies named `name` in a request's `Cookie` fields.
pub fn cookie_values<'a>(
    headers: &'a http::HeaderMap,
    name: &'a str,
) -> impl Iterator<Item = &'a str> + 'a {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(move |c| c.trim().strip_prefix(name)?.strip_prefix('='))
}

/// A complete (non-streamed) body.
pub fn full_body(bytes: impl Into<bytes::Bytes>) -> Body {
    http_body_util::Full::new(bytes.into())
        .map_err(|never| match never {})
        .boxed()
}

/// An empty body.
pub fn empty_body() -> Body {
    http_body_util::Empty::new()
        .map_err(|never| match never {})
        .boxed()
}

/// A response with `status` and `body` as JSON (serialised once, straight to bytes). Every JSON
/// answer Sluice builds itself goes through here: admin replies, Trino-style errors, the fake
/// coordinator.
pub fn json_response(status: StatusCode, body: &impl serde::Serialize) -> Response<Body> {
    let bytes = serde_json::to_vec(body).unwrap_or_else(|e| {
        format!(r#"{{"error": "the answer could not be serialised: {e}"}}"#).into_bytes()
    });
    let mut resp = Response::new(full_body(bytes));
    *resp.status_mut() = status;
    resp.headers_mut().insert(
        header::CONTENT_TYPE,
        header::HeaderValue::from_static("application/json"),
    );
    resp
}
