//! Login flows stay on one cluster. An OAuth2 dance or the web UI's login runs over several
//! requests that carry no query id, and each cluster knows only its own flow and session. The
//! first request of a flow (a path in `proxy.login_cookie.paths`) is routed as usual and its answer
//! sets `sluice_route`, a cookie naming the backend, signed with HMAC-SHA256 and expiring after
//! `ttl_seconds`; every later `/ui` or login request that carries a valid cookie goes to that
//! backend, in any state (a flow begun before a drain completes). A tampered, expired or foreign
//! cookie is ignored: the request is routed as if it had none.
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use hmac::{Hmac, KeyInit, Mac};
use http::{HeaderMap, HeaderValue};
use sha2::Sha256;
use sluice_config::LoginCookieConfig;

/// The cookie's name.
pub const COOKIE: &str = "sluice_route";

/// Signs and reads the cookie.
#[derive(Clone)]
pub struct LoginCookie {
    key: Vec<u8>,
    ttl: Duration,
    paths: Vec<String>,
}

impl LoginCookie {
    /// From the configuration; without a secret, a random key of this process.
    pub fn new(config: &LoginCookieConfig) -> Self {
        let key = match config.secret.as_deref().filter(|s| !s.is_empty()) {
            Some(secret) => secret.as_bytes().to_vec(),
            None => {
                use rand::RngExt;
                let mut key = vec![0u8; 32];
                rand::rng().fill(&mut key[..]);
                key
            }
        };
        Self {
            key,
            ttl: Duration::from_secs(config.ttl_seconds),
            paths: config.paths.clone(),
        }
    }

    /// Whether `path` begins a login flow (its answer sets the cookie).
    pub fn starts_flow(&self, path: &str) -> bool {
        self.paths.iter().any(|p| crate::query_id::under(path, p))
    }

    /// Whether a valid cookie pins `path` (login paths and the web UI).
    pub fn pins(&self, path: &str) -> bool {
        self.starts_flow(path) || crate::query_id::under(path, "/ui")
    }

    fn sign(&self, payload: &str) -> String {
        let mut mac = Hmac::<Sha256>::new_from_slice(&self.key).expect("HMAC takes any key");
        mac.update(payload.as_bytes());
        hex::encode(mac.finalize().into_bytes())
    }

    /// The `Set-Cookie` value naming `backend`; `secure` when clients reach Sluice over HTTPS.
    pub fn set_cookie(&self, backend: &str, secure: bool) -> Option<HeaderValue> {
        let expires = SystemTime::now().duration_since(UNIX_EPOCH).ok()? + self.ttl;
        let payload = format!("{}.{backend}", expires.as_secs());
        let value = format!(
            "{COOKIE}={}.{payload}; Path=/; Max-Age={}; HttpOnly; SameSite=Lax{}",
            self.sign(&payload),
            self.ttl.as_secs(),
            if secure { "; Secure" } else { "" }
        );
        HeaderValue::from_str(&value).ok()
    }

    /// The backend a valid, unexpired cookie in `headers` names.
    pub fn backend(&self, headers: &HeaderMap) -> Option<String> {
        let now = SystemTime::now().duration_since(UNIX_EPOCH).ok()?.as_secs();
        sluice_http::cookie_values(headers, COOKIE).find_map(|value| {
            let (sig, payload) = value.split_once('.')?;
            let (expires, backend) = payload.split_once('.')?;
            let mut mac = Hmac::<Sha256>::new_from_slice(&self.key).ok()?;
            mac.update(payload.as_bytes());
            mac.verify_slice(&hex::decode(sig).ok()?).ok()?;
            (expires.parse::<u64>().ok()? > now).then(|| backend.to_string())
        })
    }
}

#[cfg(test)]
mod tests {
    use http::header;

    use super::*;

    fn cookie(secret: &str) -> LoginCookie {
        LoginCookie::new(&LoginCookieConfig {
            secret: Some(secret.into()),
            ..Default::default()
        })
    }

    fn request_with(set_cookie: &HeaderValue) -> HeaderMap {
        let pair = set_cookie.to_str().unwrap().split(';').next().unwrap();
        let mut h = HeaderMap::new();
        h.insert(header::COOKIE, format!("other=1; {pair}").parse().unwrap());
        h
    }

    #[test]
    fn a_signed_cookie_names_its_backend_and_nothing_else_does() {
        let c = cookie("fleet-secret-0123456789");
        let set = c.set_cookie("blue.1", true).unwrap();
        assert!(
            set.to_str().unwrap().contains("HttpOnly") && set.to_str().unwrap().contains("Secure")
        );
        assert_eq!(c.backend(&request_with(&set)).as_deref(), Some("blue.1"));
        // another instance with the same secret reads it; another secret does not
        assert_eq!(
            cookie("fleet-secret-0123456789")
                .backend(&request_with(&set))
                .as_deref(),
            Some("blue.1")
        );
        assert_eq!(
            cookie("another-secret-0123456789").backend(&request_with(&set)),
            None
        );
        // a tampered backend name is refused
        let forged = set.to_str().unwrap().replace("blue.1", "green");
        assert_eq!(
            c.backend(&request_with(&HeaderValue::from_str(&forged).unwrap())),
            None
        );
        // an expired one too
        let mut h = HeaderMap::new();
        let payload = "1000.blue";
        h.insert(
            header::COOKIE,
            format!("{COOKIE}={}.{payload}", c.sign(payload))
                .parse()
                .unwrap(),
        );
        assert_eq!(c.backend(&h), None);
        assert!(c.starts_flow("/oauth2/callback") && c.starts_flow("/ui/login"));
        assert!(!c.starts_flow("/ui/api/stats") && c.pins("/ui/api/stats") && !c.pins("/v1/info"));
    }
}
