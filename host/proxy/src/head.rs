//! A forwarded request's head written straight as bytes for the relay
//! ([`sluice_http::relay`]): the client's fields as they came, less the hop-by-hop ones (and
//! those `Connection` names), `Host` and the forwarded fields Sluice sets itself — the same
//! hygiene as the hyper path ([`crate::forward`]), without building a second header map.
use http::header::{self, HeaderMap, HeaderName};
use http::request;

use sluice_http::hop::{connection_named, is_hop_by_hop};

use crate::headers::Forwarded;

/// The head of `parts` for `authority`, with `forwarded`'s fields and `extra` ones (a trace
/// context, replacing the client's fields of the same names) added, ending with the empty line; then `body` when there is one (read whole:
/// sent with its `Content-Length`, whatever framing the client used).
pub fn request_head(
    parts: &request::Parts,
    authority: &http::uri::Authority,
    forwarded: &Forwarded,
    extra: Option<&HeaderMap>,
    body: Option<&[u8]>,
) -> Vec<u8> {
    let target = parts.uri.path_and_query().map_or("/", |p| p.as_str());
    let body_len = body.map_or(0, <[u8]>::len);
    let mut out = Vec::with_capacity(512 + target.len() + 64 * parts.headers.len() + body_len);
    out.extend_from_slice(parts.method.as_str().as_bytes());
    out.push(b' ');
    out.extend_from_slice(target.as_bytes());
    out.extend_from_slice(b" HTTP/1.1\r\nhost: ");
    out.extend_from_slice(authority.as_str().as_bytes());
    out.extend_from_slice(b"\r\n");
    let named = connection_named(&parts.headers);
    for (name, value) in &parts.headers {
        if name == header::HOST
            || is_hop_by_hop(name)
            || Forwarded::sets(name)
            || named.contains(name)
            || extra.is_some_and(|e| e.contains_key(name))
            || (body.is_some() && (name == header::CONTENT_LENGTH || name == header::EXPECT))
        {
            continue;
        }
        field(&mut out, name, value.as_bytes());
    }
    forwarded.write_fields(&mut out);
    for (name, value) in extra.into_iter().flatten() {
        field(&mut out, name, value.as_bytes());
    }
    if let Some(body) = body {
        out.extend_from_slice(b"content-length: ");
        out.extend_from_slice(body_len.to_string().as_bytes());
        out.extend_from_slice(b"\r\n\r\n");
        out.extend_from_slice(body);
    } else {
        out.extend_from_slice(b"\r\n");
    }
    out
}

fn field(out: &mut Vec<u8>, name: &HeaderName, value: &[u8]) {
    out.extend_from_slice(name.as_str().as_bytes());
    out.extend_from_slice(b": ");
    out.extend_from_slice(value);
    out.extend_from_slice(b"\r\n");
}

#[cfg(test)]
mod tests {
    use std::net::SocketAddr;

    use http::Request;

    use super::*;

    fn head_of(req: Request<()>, trust: bool) -> String {
        let (parts, ()) = req.into_parts();
        let remote: SocketAddr = "10.0.0.7:5000".parse().unwrap();
        let local: SocketAddr = "127.0.0.1:8080".parse().unwrap();
        let fwd = Forwarded::from_request(&parts.headers, remote, local, trust);
        let authority = "trino-a:8081".parse().unwrap();
        String::from_utf8(request_head(&parts, &authority, &fwd, None, None)).unwrap()
    }

    #[test]
    fn the_head_carries_the_clients_fields_less_hop_by_hop_host_and_forged_forwarding() {
        let req = Request::get("/v1/statement/executing/q1/tok/2?x=1")
            .header("host", "gateway:8080")
            .header("x-trino-user", "alice")
            .header("authorization", "Bearer t")
            .header("connection", "keep-alive, x-secret")
            .header("x-secret", "s")
            .header("te", "trailers")
            .header("x-forwarded-for", "6.6.6.6")
            .body(())
            .unwrap();
        let head = head_of(req, false);
        assert!(head.starts_with(
            "GET /v1/statement/executing/q1/tok/2?x=1 HTTP/1.1\r\nhost: trino-a:8081\r\n"
        ));
        assert!(head.ends_with("\r\n\r\n"));
        assert!(head.contains("x-trino-user: alice\r\n"));
        assert!(head.contains("authorization: Bearer t\r\n"));
        for gone in [
            "connection:",
            "x-secret:",
            "te:",
            "6.6.6.6",
            "gateway:8080\r\n",
        ] {
            assert!(!head.contains(gone), "{gone} in {head}");
        }
        assert!(head.contains("x-forwarded-for: 10.0.0.7\r\n"));
        assert!(head.contains("x-forwarded-host: gateway\r\n"));
        assert!(head.contains("x-forwarded-port: 8080\r\n"));
        assert_eq!(head.matches("\r\nhost:").count(), 1);
    }

    #[test]
    fn a_trusted_balancers_chain_is_extended_and_extra_fields_added() {
        let req = Request::delete("/v1/query/q1")
            .header("x-forwarded-for", "1.2.3.4")
            .body(())
            .unwrap();
        let head = head_of(req, true);
        assert!(head.starts_with("DELETE /v1/query/q1 HTTP/1.1\r\n"));
        assert!(head.contains("x-forwarded-for: 1.2.3.4, 10.0.0.7\r\n"));
        let (parts, ()) = Request::get("/").body(()).unwrap().into_parts();
        let fwd = Forwarded::from_request(
            &parts.headers,
            "10.0.0.7:1".parse().unwrap(),
            "127.0.0.1:1".parse().unwrap(),
            false,
        );
        let mut extra = HeaderMap::new();
        extra.insert("traceparent", "00-ab-cd-01".parse().unwrap());
        let authority = "b".parse().unwrap();
        let (mut parts, ()) = Request::get("/")
            .header("traceparent", "00-client-span-01")
            .body(())
            .unwrap()
            .into_parts();
        parts.headers.insert("x-kept", "1".parse().unwrap());
        let head =
            String::from_utf8(request_head(&parts, &authority, &fwd, Some(&extra), None)).unwrap();
        assert!(head.contains("traceparent: 00-ab-cd-01\r\n"));
        assert!(
            !head.contains("client-span"),
            "the client's trace context is replaced: {head}"
        );
        assert!(head.contains("x-kept: 1\r\n"));
    }

    #[test]
    fn a_statement_goes_with_its_own_length_whatever_the_client_sent() {
        let (parts, ()) = Request::post("/v1/statement")
            .header("transfer-encoding", "chunked")
            .header("expect", "100-continue")
            .header("content-length", "999")
            .body(())
            .unwrap()
            .into_parts();
        let fwd = Forwarded::from_request(
            &parts.headers,
            "10.0.0.7:1".parse().unwrap(),
            "127.0.0.1:1".parse().unwrap(),
            false,
        );
        let authority = "b:1".parse().unwrap();
        let out = request_head(&parts, &authority, &fwd, None, Some(b"SELECT 1"));
        let out = String::from_utf8(out).unwrap();
        let (head, body) = out.split_once("\r\n\r\n").unwrap();
        assert_eq!(body, "SELECT 1");
        assert!(head.contains("\r\ncontent-length: 8"));
        for gone in ["999", "chunked", "100-continue"] {
            assert!(!head.contains(gone), "{gone} in {head}");
        }
    }
}
