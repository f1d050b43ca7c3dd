//! Console sessions: an admin or viewer token, presented once at login, becomes a signed,
//! expiring, `HttpOnly`, `SameSite=Strict` cookie. Nothing is stored: the cookie names the
//! token by a keyed fingerprint (never the token, nor its plain hash), so every instance of a
//! fleet sharing `admin.console.session_secret` accepts it, and removing a token from the
//! configuration ends its sessions at once. A change made with the cookie must also carry the
//! session's CSRF token in `X-Sluice-CSRF` (a header a cross-site form cannot set).
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use hmac::{Hmac, KeyInit, Mac};
use http::{HeaderMap, HeaderValue};
use sha2::Sha256;
use subtle::ConstantTimeEq;

use sluice_config::Role;

/// The session cookie's name.
pub const COOKIE: &str = "sluice_console";
/// The header a cookie-authenticated change carries its CSRF token in.
pub const CSRF_HEADER: &str = "x-sluice-csrf";

/// A configured token: its sha256 and its role (what the admin API's token list holds).
pub type TokenEntry = ([u8; 32], Role);

/// A valid session.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Session {
    /// The role of the token the session was opened with, as configured now.
    pub role: Role,
    /// What a change must carry in [`CSRF_HEADER`].
    pub csrf: String,
    /// When the session ends (seconds since the epoch).
    pub expires: u64,
    /// The sha256 of the token it was opened with (who made a change; never sent out).
    pub digest: [u8; 32],
}

impl Session {
    /// Whether `headers` carry this session's CSRF token (compared in constant time).
    pub fn csrf_ok(&self, headers: &HeaderMap) -> bool {
        headers
            .get(CSRF_HEADER)
            .is_some_and(|v| bool::from(v.as_bytes().ct_eq(self.csrf.as_bytes())))
    }
}

/// Signs and reads session cookies.
pub struct Sessions {
    key: Vec<u8>,
    ttl: Duration,
}

fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

impl Sessions {
    /// Sessions signed with `secret` (every instance of a fleet needs the same one), or with a
    /// random key of this process when there is none; each lasts `ttl`.
    pub fn new(secret: Option<&str>, ttl: Duration) -> Self {
        let key = match secret.filter(|s| !s.is_empty()) {
            Some(s) => s.as_bytes().to_vec(),
            None => {
                use rand::RngExt;
                let mut key = vec![0u8; 32];
                rand::rng().fill(&mut key[..]);
                key
            }
        };
        Self { key, ttl }
    }

    fn mac(&self, parts: &[&[u8]]) -> [u8; 32] {
        let mut mac = Hmac::<Sha256>::new_from_slice(&self.key).expect("HMAC takes any key");
        for p in parts {
            mac.update(p);
            mac.update(b"\n");
        }
        mac.finalize().into_bytes().into()
    }

    /// The keyed fingerprint of a token's digest (what the cookie names it by).
    fn fingerprint(&self, digest: &[u8; 32]) -> String {
        hex::encode(&self.mac(&[b"token", digest])[..12])
    }

    /// Open a session for the token with `digest` and `role`: the session and its
    /// `Set-Cookie` value (`Secure` when the console is served over HTTPS).
    pub fn open(&self, digest: &[u8; 32], role: Role, secure: bool) -> (Session, HeaderValue) {
        let expires = now() + self.ttl.as_secs();
        let mut nonce = [0u8; 12];
        {
            use rand::RngExt;
            rand::rng().fill(&mut nonce[..]);
        }
        let payload = format!(
            "{expires}.{}.{}",
            self.fingerprint(digest),
            hex::encode(nonce)
        );
        let sig = hex::encode(self.mac(&[b"session", payload.as_bytes()]));
        let cookie = format!(
            "{COOKIE}={sig}.{payload}; Path=/; Max-Age={}; HttpOnly; SameSite=Strict{}",
            self.ttl.as_secs(),
            if secure { "; Secure" } else { "" }
        );
        let session = Session {
            role,
            csrf: self.csrf(&payload),
            expires,
            digest: *digest,
        };
        (
            session,
            HeaderValue::from_str(&cookie).expect("hex and digits only"),
        )
    }

    fn csrf(&self, payload: &str) -> String {
        hex::encode(&self.mac(&[b"csrf", payload.as_bytes()])[..16])
    }

    /// The `Set-Cookie` value that ends a session in the browser.
    pub fn close(&self, secure: bool) -> HeaderValue {
        let cookie = format!(
            "{COOKIE}=; Path=/; Max-Age=0; HttpOnly; SameSite=Strict{}",
            if secure { "; Secure" } else { "" }
        );
        HeaderValue::from_str(&cookie).expect("fixed text")
    }

    /// The session a valid, unexpired cookie in `headers` names, with the role its token has in
    /// `tokens` now; `None` for a missing, tampered, expired or revoked one.
    pub fn verify(&self, headers: &HeaderMap, tokens: &[TokenEntry]) -> Option<Session> {
        sluice_http::cookie_values(headers, COOKIE).find_map(|value| self.check(value, tokens))
    }

    fn check(&self, value: &str, tokens: &[TokenEntry]) -> Option<Session> {
        let (sig, payload) = value.split_once('.')?;
        let expected = hex::encode(self.mac(&[b"session", payload.as_bytes()]));
        if !bool::from(expected.as_bytes().ct_eq(sig.as_bytes())) {
            return None;
        }
        let mut fields = payload.split('.');
        let expires: u64 = fields.next()?.parse().ok()?;
        let fingerprint = fields.next()?;
        if expires <= now() {
            return None;
        }
        let (digest, role) = tokens
            .iter()
            .filter(|(digest, _)| self.fingerprint(digest) == fingerprint)
            .max_by_key(|(_, role)| *role)?;
        Some(Session {
            role: *role,
            csrf: self.csrf(payload),
            expires,
            digest: *digest,
        })
    }
}

#[cfg(test)]
mod tests {
    use http::header;

    use super::*;

    fn cookie_headers(set_cookie: &HeaderValue) -> HeaderMap {
        let pair = set_cookie.to_str().unwrap().split(';').next().unwrap();
        let mut h = HeaderMap::new();
        h.insert(header::COOKIE, format!("other=1; {pair}").parse().unwrap());
        h
    }

    const ADMIN: [u8; 32] = [1; 32];
    const VIEWER: [u8; 32] = [2; 32];

    #[test]
    fn a_session_carries_its_tokens_current_role_and_a_csrf_token() {
        let s = Sessions::new(Some("a-secret-of-sixteen+"), Duration::from_secs(60));
        let tokens = [(ADMIN, Role::Admin), (VIEWER, Role::Viewer)];
        let (opened, set) = s.open(&VIEWER, Role::Viewer, true);
        let v = set.to_str().unwrap();
        assert!(v.contains("HttpOnly") && v.contains("SameSite=Strict") && v.contains("Secure"));
        let h = cookie_headers(&set);
        let seen = s.verify(&h, &tokens).unwrap();
        assert_eq!(seen, opened);
        // the token's role changed in the configuration: the session follows it
        assert_eq!(
            s.verify(&h, &[(VIEWER, Role::Admin)]).unwrap().role,
            Role::Admin
        );
        // the token is gone: so is the session
        assert_eq!(s.verify(&h, &[(ADMIN, Role::Admin)]), None);
        let mut with_csrf = HeaderMap::new();
        with_csrf.insert(CSRF_HEADER, seen.csrf.parse().unwrap());
        assert!(seen.csrf_ok(&with_csrf) && !seen.csrf_ok(&HeaderMap::new()));
    }

    #[test]
    fn tampered_foreign_and_expired_cookies_are_refused() {
        let s = Sessions::new(Some("a-secret-of-sixteen+"), Duration::from_secs(60));
        let tokens = [(ADMIN, Role::Admin)];
        let (_, set) = s.open(&ADMIN, Role::Admin, false);
        let good = cookie_headers(&set);
        let value = good[header::COOKIE].to_str().unwrap().to_string();
        // a later expiry, same signature
        let (head, tail) = value.split_once(&format!("{COOKIE}=")).unwrap();
        let (sig, payload) = tail.split_once('.').unwrap();
        let later = payload.replacen(|c: char| c.is_ascii_digit(), "9", 1);
        let mut h = HeaderMap::new();
        h.insert(
            header::COOKIE,
            format!("{head}{COOKIE}={sig}.{later}").parse().unwrap(),
        );
        assert_eq!(s.verify(&h, &tokens), None);
        // another key (another gateway, or a restart without a configured secret)
        let other = Sessions::new(Some("another-secret-16+"), Duration::from_secs(60));
        assert_eq!(other.verify(&good, &tokens), None);
        // expired
        let short = Sessions::new(Some("a-secret-of-sixteen+"), Duration::ZERO);
        let (_, set) = short.open(&ADMIN, Role::Admin, false);
        assert_eq!(short.verify(&cookie_headers(&set), &tokens), None);
        // garbage
        let mut h = HeaderMap::new();
        h.insert(header::COOKIE, "sluice_console=x.y.z; a=b".parse().unwrap());
        assert_eq!(s.verify(&h, &tokens), None);
        assert!(s.close(false).to_str().unwrap().contains("Max-Age=0"));
    }
}
