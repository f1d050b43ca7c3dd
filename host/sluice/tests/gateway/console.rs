//! The console on the admin listener: its page, login sessions as HttpOnly cookies, viewers who
//! read only, CSRF tokens on changes, logout, and cookies that must not work.
use bytes::Bytes;
use http::{header, Method, StatusCode};

use sluice_testkit::*;

use crate::admin::{with_tokens, ADMIN, VIEWER};

/// Log in with `token`; the cookie pair to send back and the session's CSRF token.
async fn login(gw: &Gw, token: &str) -> (String, String) {
    let body = Bytes::from(serde_json::json!({ "token": token }).to_string());
    let (status, headers, body) = gw
        .admin_with(Method::POST, "/console/login", &[], body)
        .await;
    assert_eq!(status, StatusCode::OK, "{}", String::from_utf8_lossy(&body));
    let set = headers[header::SET_COOKIE].to_str().unwrap().to_string();
    for attr in ["HttpOnly", "SameSite=Strict", "Max-Age=28800", "Path=/"] {
        assert!(set.contains(attr), "{attr} in {set}");
    }
    assert!(
        !set.contains(token),
        "the token itself is not in the cookie"
    );
    let csrf = json(&body)["csrf"].as_str().unwrap().to_string();
    (set.split(';').next().unwrap().to_string(), csrf)
}

async fn read(gw: &Gw, cookie: &str) -> StatusCode {
    let h = [("cookie", cookie)];
    gw.admin_with(Method::GET, "/api/v1/backends", &h, Bytes::new())
        .await
        .0
}

async fn drain(gw: &Gw, cookie: &str, csrf: Option<&str>) -> StatusCode {
    let mut h = vec![("cookie", cookie)];
    if let Some(c) = csrf {
        h.push(("x-sluice-csrf", c));
    }
    let path = "/api/v1/backends/adhoc-1/drain";
    gw.admin_with(Method::POST, path, &h, Bytes::new()).await.0
}

#[tokio::test]
async fn a_login_becomes_a_session_that_reads_and_with_its_csrf_token_changes() {
    let a = cluster("adhoc-1").await;
    let gw = Gw::start(with_tokens(config(&[("adhoc-1", "adhoc", &a.url())]))).await;

    // the page is open (it asks for a login) and locked down
    let (status, headers, page) = gw.admin_with(Method::GET, "/", &[], Bytes::new()).await;
    assert_eq!(status, StatusCode::OK);
    assert!(String::from_utf8_lossy(&page).contains("/console/app.js"));
    let csp = headers[header::CONTENT_SECURITY_POLICY].to_str().unwrap();
    assert!(csp.contains("default-src 'self'") && csp.contains("frame-ancestors 'none'"));
    for asset in ["/console/app.js", "/console/app.css"] {
        let (status, _, _) = gw.admin_with(Method::GET, asset, &[], Bytes::new()).await;
        assert_eq!(status, StatusCode::OK, "{asset}");
    }

    // an unknown token, a malformed body
    let bad = Bytes::from_static(br#"{"token": "not-a-token"}"#);
    let (status, headers, _) = gw
        .admin_with(Method::POST, "/console/login", &[], bad)
        .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert!(headers.get(header::SET_COOKIE).is_none());
    let junk = Bytes::from_static(b"{{{");
    let (status, _, _) = gw
        .admin_with(Method::POST, "/console/login", &[], junk)
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);

    // a viewer's session reads, and changes nothing even with its CSRF token
    let (viewer, viewer_csrf) = login(&gw, VIEWER).await;
    assert_eq!(read(&gw, &viewer).await, StatusCode::OK);
    assert_eq!(read(&gw, "").await, StatusCode::UNAUTHORIZED);
    assert_eq!(
        drain(&gw, &viewer, Some(&viewer_csrf)).await,
        StatusCode::FORBIDDEN
    );

    // an admin's session changes only with its own CSRF token
    let (admin, admin_csrf) = login(&gw, ADMIN).await;
    assert_eq!(drain(&gw, &admin, None).await, StatusCode::FORBIDDEN);
    assert_eq!(
        drain(&gw, &admin, Some(&viewer_csrf)).await,
        StatusCode::FORBIDDEN
    );
    assert_eq!(drain(&gw, &admin, Some(&admin_csrf)).await, StatusCode::OK);
    let (_, v) = gw
        .admin_as(
            Method::GET,
            "/api/v1/backends/adhoc-1",
            Some(VIEWER),
            Bytes::new(),
        )
        .await;
    assert!(v["draining"].as_bool().unwrap(), "{v}");

    // the session endpoint tells the page who it is
    let h = [("cookie", admin.as_str())];
    let (status, _, body) = gw
        .admin_with(Method::GET, "/console/session", &h, Bytes::new())
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(json(&body)["role"], "admin");
    assert_eq!(json(&body)["csrf"], admin_csrf.as_str());

    // logout clears the cookie
    let h = [
        ("cookie", admin.as_str()),
        ("x-sluice-csrf", admin_csrf.as_str()),
    ];
    let (status, headers, _) = gw
        .admin_with(Method::POST, "/console/logout", &h, Bytes::new())
        .await;
    assert_eq!(status, StatusCode::OK);
    assert!(headers[header::SET_COOKIE]
        .to_str()
        .unwrap()
        .contains("Max-Age=0"));
    gw.stop().await;
}

#[tokio::test]
async fn forged_and_foreign_cookies_and_smuggled_fields_get_nothing() {
    let a = cluster("adhoc-1").await;
    let gw = Gw::start(with_tokens(config(&[("adhoc-1", "adhoc", &a.url())]))).await;
    let (admin, csrf) = login(&gw, ADMIN).await;
    // a flipped signature byte
    let (name, value) = admin.split_once('=').unwrap();
    let flipped = match value.as_bytes()[0] {
        b'0' => format!("{name}=1{}", &value[1..]),
        _ => format!("{name}=0{}", &value[1..]),
    };
    // a session of another gateway (another key)
    let other = Gw::start(with_tokens(config(&[("adhoc-1", "adhoc", &a.url())]))).await;
    let (foreign, foreign_csrf) = login(&other, ADMIN).await;
    for (cookie, token) in [(&flipped, &csrf), (&foreign, &foreign_csrf)] {
        assert_eq!(
            drain(&gw, cookie, Some(token)).await,
            StatusCode::UNAUTHORIZED,
            "{cookie}"
        );
    }
    // a client cannot claim to be a session by the field sessions are marked with
    let smuggled = [
        ("x-sluice-internal-session-by", "token:aaaaaaaaaaaa"),
        ("x-sluice-csrf", csrf.as_str()),
    ];
    let (status, _, _) = gw
        .admin_with(
            Method::POST,
            "/api/v1/backends/adhoc-1/drain",
            &smuggled,
            Bytes::new(),
        )
        .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    // bearer tokens work as before, cookie or not
    let bearer = format!("Bearer {ADMIN}");
    let h = [
        ("authorization", bearer.as_str()),
        ("cookie", flipped.as_str()),
    ];
    let (status, _, _) = gw
        .admin_with(Method::GET, "/api/v1/backends", &h, Bytes::new())
        .await;
    assert_eq!(status, StatusCode::OK);
    other.stop().await;
    gw.stop().await;
}
