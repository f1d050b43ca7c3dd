//! The console's endpoints on the admin listener, and how a console session authorises an API
//! request. The files themselves come from [`sluice_console`].
//!
//! | method and path | what |
//! | --- | --- |
//! | `GET /`, `/console/app.js`, `/console/app.css` | the console (open: the page asks for a login) |
//! | `POST /console/login` | body `{"token": "…"}` (JSON or a form): a session cookie; 401 for an unknown token |
//! | `GET /console/session` | the session's role, CSRF token and expiry; 401 without a session |
//! | `POST /console/logout` | ends the session (with its CSRF token) |
//!
//! With no token configured the API's reads are open and every change refused; the console then
//! runs read-only without a login.
use http::{header, HeaderMap, Method, Request, Response, StatusCode};
use http_body_util::{BodyExt, Limited};
use hyper::body::Incoming;
use serde::{Deserialize, Serialize};

use sluice_config::Role;
use sluice_console::Session;
use sluice_http::Body;

use crate::auth::{AuthRefusal, Tokens};
use crate::{error, Admin};

/// Why a cookie-authorised change without its CSRF token is refused.
const NO_CSRF: &str = "a change from the console needs its CSRF token (X-Sluice-CSRF)";

/// The longest login body read.
const MAX_LOGIN: usize = 4096;

/// What the console knows of its session.
#[derive(Debug, Serialize, Deserialize)]
pub struct SessionReply {
    /// `admin` or `viewer`.
    pub role: Role,
    /// What a change carries in `X-Sluice-CSRF` (empty when no token is configured).
    pub csrf: String,
    /// When the session ends (seconds since the epoch; 0 when no token is configured).
    pub expires: u64,
    /// No token is configured: reads are open, changes refused.
    pub open: bool,
}

#[derive(Deserialize)]
struct Login {
    token: String,
}

fn with_headers(mut resp: Response<Body>) -> Response<Body> {
    sluice_console::secure_headers(resp.headers_mut());
    resp
}

impl Admin {
    /// A request to a console path.
    pub(crate) async fn console(&self, req: Request<Incoming>) -> Response<Body> {
        let secure = req.extensions().get::<sluice_http::Https>().is_some();
        let path = req.uri().path().to_string();
        let resp = match (req.method().clone(), path.as_str()) {
            (Method::POST, "/console/login") => self.login(req, secure).await,
            (Method::GET, "/console/session") if self.tokens.entries().is_empty() => open_session(),
            (Method::GET, "/console/session") => match self.session_of(req.headers()) {
                Some(s) => session_reply(&s),
                None => error(StatusCode::UNAUTHORIZED, "no console session: log in"),
            },
            (Method::POST, "/console/logout") => match self.session_of(req.headers()) {
                Some(s) if !s.csrf_ok(req.headers()) => error(StatusCode::FORBIDDEN, NO_CSRF),
                _ => {
                    let mut resp = crate::reply(StatusCode::OK, &serde_json::json!({}));
                    resp.headers_mut()
                        .insert(header::SET_COOKIE, self.sessions.close(secure));
                    resp
                }
            },
            (Method::GET | Method::HEAD, p) => {
                sluice_console::asset(p).unwrap_or_else(sluice_console::not_found)
            }
            (m, p) => error(StatusCode::METHOD_NOT_ALLOWED, format!("no {m} {p}")),
        };
        with_headers(resp)
    }

    async fn login(&self, req: Request<Incoming>, secure: bool) -> Response<Body> {
        if self.tokens.entries().is_empty() {
            return error(
                StatusCode::CONFLICT,
                "no token is configured (admin.tokens): the console is read-only without a login",
            );
        }
        let form = req
            .headers()
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.starts_with("application/x-www-form-urlencoded"));
        let body = match Limited::new(req.into_body(), MAX_LOGIN).collect().await {
            Ok(b) => b.to_bytes(),
            Err(e) => return error(StatusCode::BAD_REQUEST, format!("login body: {e}")),
        };
        let token = match form {
            true => form_urlencoded::parse(&body)
                .find(|(k, _)| k == "token")
                .map(|(_, v)| v.into_owned()),
            false => serde_json::from_slice::<Login>(&body).ok().map(|l| l.token),
        };
        let Some(token) = token.filter(|t| !t.is_empty()) else {
            return error(
                StatusCode::BAD_REQUEST,
                "send {\"token\": \"…\"} (JSON) or token=… (a form)",
            );
        };
        match self.tokens.lookup(token.trim()) {
            None => {
                tracing::warn!("console login refused: unknown token");
                error(StatusCode::UNAUTHORIZED, "unknown token")
            }
            Some((digest, role)) => {
                let (session, cookie) = self.sessions.open(&digest, role, secure);
                tracing::info!(role = ?role, "console login");
                let mut resp = session_reply(&session);
                resp.headers_mut().insert(header::SET_COOKIE, cookie);
                resp
            }
        }
    }

    /// The valid console session `headers` carry, if any.
    pub(crate) fn session_of(&self, headers: &HeaderMap) -> Option<Session> {
        self.sessions.verify(headers, &self.tokens.entries())
    }

    /// Allow an API request needing `needed`: by its bearer token, or by a console session (a
    /// change then needs the session's CSRF token too). A session's request is marked with
    /// who it acts for.
    pub(crate) fn authorize(
        &self,
        headers: &mut HeaderMap,
        needed: Role,
        changes: bool,
    ) -> Result<(), AuthRefusal> {
        if headers.contains_key(header::AUTHORIZATION) {
            return self.tokens.check(headers, needed);
        }
        let Some(session) = self.session_of(headers) else {
            return self.tokens.check(headers, needed);
        };
        if session.role < needed {
            return Err(AuthRefusal {
                status: StatusCode::FORBIDDEN,
                message: "this session's role may only read",
            });
        }
        if changes && !session.csrf_ok(headers) {
            return Err(AuthRefusal {
                status: StatusCode::FORBIDDEN,
                message: NO_CSRF,
            });
        }
        Tokens::mark_session(headers, &session.digest);
        Ok(())
    }
}

fn session_reply(s: &Session) -> Response<Body> {
    let reply = SessionReply {
        role: s.role,
        csrf: s.csrf.clone(),
        expires: s.expires,
        open: false,
    };
    crate::reply(StatusCode::OK, &reply)
}

fn open_session() -> Response<Body> {
    let reply = SessionReply {
        role: Role::Viewer,
        csrf: String::new(),
        expires: 0,
        open: true,
    };
    crate::reply(StatusCode::OK, &reply)
}
