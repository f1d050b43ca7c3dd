//! Targets on what a client sends before any body: the request line and the headers.
use std::net::SocketAddr;

use http::{HeaderMap, HeaderName, HeaderValue, Method};
use sluice_config::{LoginCookieConfig, ProxyConfig};
use sluice_proxy::classify::{has_dot_segment, Paths, RequestKind};
use sluice_proxy::headers::Forwarded;
use sluice_proxy::login_cookie::LoginCookie;
use sluice_proxy::query_id::is_query_id;
use sluice_proxy::spooled;
use sluice_routing::request::WITHHELD_HEADERS;
use sluice_routing::{QueryRequest, MAX_QUERY_TEXT};

use crate::fields;

const METHODS: [Method; 5] = [
    Method::GET,
    Method::POST,
    Method::DELETE,
    Method::HEAD,
    Method::PUT,
];

/// A request target (as hyper parses it) sorted into new query, follow-up, segment, other, not
/// served or refused. A follow-up names a valid query id found in the target; only `POST` starts a
/// query; a dot-segment path is always refused.
pub fn classify(data: &[u8]) {
    let Some((&m, target)) = data.split_first() else {
        return;
    };
    let method = &METHODS[usize::from(m) % METHODS.len()];
    let Ok(uri) = http::Uri::try_from(target) else {
        return;
    };
    let paths = Paths::new(&ProxyConfig {
        extra_paths: vec!["/login".into(), "/custom/".into()],
        statement_paths: vec!["/custom/statement".into()],
        ..ProxyConfig::default()
    });
    let (path, query) = (uri.path(), uri.query());
    let kind = paths.classify(method, path, query);
    assert_eq!(
        has_dot_segment(path),
        kind == RequestKind::DotSegments,
        "{uri}"
    );
    match &kind {
        RequestKind::FollowUp(id) => {
            assert!(is_query_id(id), "follow-up of a bad id {id:?} from {uri}");
            let found =
                path.contains(id.as_str()) || query.is_some_and(|q| q.contains(id.as_str()));
            assert!(found, "id {id:?} is not in {uri}");
        }
        RequestKind::NewQuery => assert_eq!(method, Method::POST, "{uri}"),
        _ => {}
    }
    if kind == RequestKind::Spooled {
        let (backend, id) = spooled::owner_params(query);
        if let (Some(b), Some(i)) = (backend, id) {
            // what Sluice appends reads back as it was written
            let params = spooled::params(&i, &b);
            assert_eq!(
                spooled::owner_params(Some(&params)),
                (Some(b), Some(i)),
                "{params}"
            );
        }
    }
}

/// Headers as a client may send them: the forwarded view Sluice builds from them yields valid
/// headers and a base URL that parses; the login cookie never names a backend it did not sign;
/// routers never see credentials and never more than the cut query text.
pub fn headers(data: &[u8]) {
    let [head, body] = fields::<2>(data);
    let headers = header_map(head);
    let remote: SocketAddr = "10.1.2.3:40000".parse().unwrap();
    let local: SocketAddr = "[::1]:8080".parse().unwrap();
    for trust in [false, true] {
        let view = Forwarded::from_request(&headers, remote, local, trust);
        let mut out = headers.clone();
        view.apply(&mut out);
        let base = view.external_base();
        assert!(
            base.parse::<http::Uri>().is_ok(),
            "external base {base:?} from {headers:?}"
        );
        if !trust {
            let xff = out.get("x-forwarded-for").map(|v| v.to_str().unwrap());
            assert_eq!(xff, Some("10.1.2.3"), "untrusted X-Forwarded-For kept");
            let real = out.get("x-real-ip").map(|v| v.to_str().unwrap());
            assert_eq!(real, Some("10.1.2.3"), "untrusted X-Real-IP kept");
        }
    }
    let cookie = LoginCookie::new(&LoginCookieConfig {
        secret: Some("fuzz-secret-0123456789abcdef".into()),
        ..LoginCookieConfig::default()
    });
    if let Some(backend) = cookie.backend(&headers) {
        panic!("a cookie no one signed named backend {backend:?}");
    }
    let req = QueryRequest::from_http(&headers, body);
    assert!(req.query_text.len() <= MAX_QUERY_TEXT);
    if let Ok(sql) = std::str::from_utf8(body) {
        // valid text is cut at the last character boundary within the limit, nowhere else
        assert!(
            sql.starts_with(&req.query_text),
            "query text is not a prefix"
        );
        assert!(req.query_text.len() + 3 >= sql.len().min(MAX_QUERY_TEXT));
    }
    assert_eq!(req.query_text_truncated, body.len() > MAX_QUERY_TEXT);
    for (name, _) in &req.headers {
        assert!(
            !WITHHELD_HEADERS.contains(&name.as_str()),
            "{name} handed to routers"
        );
    }
    let mut req = req;
    req.extract_sql_objects();
}

/// Header lines `name: value` (one per line) as a header map; lines that are not valid headers
/// are skipped, as hyper would refuse them.
fn header_map(head: &[u8]) -> HeaderMap {
    let mut headers = HeaderMap::new();
    for line in head.split(|b| *b == b'\n') {
        let Some(colon) = line.iter().position(|b| *b == b':') else {
            continue;
        };
        let (Ok(name), Ok(value)) = (
            HeaderName::from_bytes(&line[..colon]),
            HeaderValue::from_bytes(line[colon + 1..].trim_ascii()),
        ) else {
            continue;
        };
        headers.append(name, value);
    }
    headers
}
