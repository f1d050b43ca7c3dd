//! The operators' web console, served by the admin listener at `/`. Every asset is compiled
//! into the binary (no CDN, no build step: plain HTML, CSS and JavaScript modules that call the
//! admin API), and answered with a strict Content-Security-Policy. Logging in turns a token into
//! a session cookie ([`session`]); the admin API accepts that cookie as it accepts the token,
//! with a CSRF token on every change.
//!
//! # Layout
//!
//! | module | one job |
//! | --- | --- |
//! | this file | [`asset`]: the embedded files by path, with their headers |
//! | [`session`] | signed, expiring session cookies and their CSRF tokens |
#![forbid(unsafe_code)]
use http::{header, HeaderValue, Response, StatusCode};
use sluice_http::{full_body, Body};

pub mod session;

pub use session::{Session, Sessions, TokenEntry, COOKIE, CSRF_HEADER};

/// The embedded files: path, content type, bytes.
const ASSETS: &[(&str, &str, &str)] = &[
    (
        "/",
        "text/html; charset=utf-8",
        include_str!("../assets/index.html"),
    ),
    (
        "/console/app.js",
        "text/javascript; charset=utf-8",
        include_str!("../assets/app.js"),
    ),
    (
        "/console/app.css",
        "text/css; charset=utf-8",
        include_str!("../assets/app.css"),
    ),
];

/// Only the console's own files and the admin API, nothing inline, never framed.
const CSP: &str = "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; \
                   connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'self'";

/// Whether `path` is the console's (its files, and its login endpoints under `/console/`).
pub fn is_console_path(path: &str) -> bool {
    path == "/" || path == "/console" || path.starts_with("/console/")
}

/// The embedded file at `path`, if there is one.
pub fn asset(path: &str) -> Option<Response<Body>> {
    let path = if path == "/console" { "/" } else { path };
    let (_, content_type, text) = ASSETS.iter().find(|(p, _, _)| *p == path)?;
    let mut resp = Response::new(full_body(*text));
    let h = resp.headers_mut();
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    secure_headers(h);
    Some(resp)
}

/// The headers every console answer carries.
pub fn secure_headers(h: &mut http::HeaderMap) {
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(CSP),
    );
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    h.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    // small files, always revalidated: a new binary's console is seen at once
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
}

/// 404 for a console path with no file.
pub fn not_found() -> Response<Body> {
    let mut resp = Response::new(full_body("no such console page"));
    *resp.status_mut() = StatusCode::NOT_FOUND;
    secure_headers(resp.headers_mut());
    resp
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_asset_is_served_with_its_type_and_a_strict_policy() {
        for (path, ty, _) in ASSETS {
            let resp = asset(path).unwrap();
            assert_eq!(resp.headers()[header::CONTENT_TYPE], *ty);
            let csp = resp.headers()[header::CONTENT_SECURITY_POLICY]
                .to_str()
                .unwrap();
            assert!(csp.contains("frame-ancestors 'none'") && !csp.contains("unsafe"));
        }
        assert!(asset("/console/nope.js").is_none());
        assert!(is_console_path("/console/login") && !is_console_path("/api/v1/status"));
        // the page loads only its own files
        let index = ASSETS[0].2;
        assert!(index.contains("/console/app.js") && !index.contains("http"));
    }
}
