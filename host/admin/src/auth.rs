//! Bearer-token authentication of the admin API: tokens (or their sha256) from the config, compared
//! in constant time, each with a role.
use http::{header, HeaderMap, StatusCode};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use sluice_config::{Role, TokenConfig};

/// An internal request field naming who a console session acts for; removed from every request
/// on arrival, set only by [`Tokens::mark_session`].
pub const SESSION_BY: &str = "x-sluice-internal-session-by";

/// The configured tokens, as sha256 digests (replaced whole by a reload).
pub struct Tokens {
    entries: arc_swap::ArcSwap<Vec<([u8; 32], Role)>>,
}

/// Why a request was refused.
#[derive(Debug, PartialEq, Eq)]
pub struct AuthRefusal {
    /// 401 or 403.
    pub status: StatusCode,
    /// Said to the client (and logged).
    pub message: &'static str,
}

/// The token of an `Authorization: Bearer …` header.
fn bearer(headers: &HeaderMap) -> Option<&str> {
    let value = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = value.split_once(' ')?;
    scheme
        .eq_ignore_ascii_case("bearer")
        .then_some(token.trim())
}

impl Tokens {
    /// Digest the configured tokens (config validation guarantees one form each).
    pub fn new(configs: &[TokenConfig]) -> Self {
        Self {
            entries: arc_swap::ArcSwap::from_pointee(Self::digests(configs)),
        }
    }

    /// Use `configs` from now on (a reload).
    pub fn replace(&self, configs: &[TokenConfig]) {
        self.entries
            .store(std::sync::Arc::new(Self::digests(configs)));
    }

    fn digests(configs: &[TokenConfig]) -> Vec<([u8; 32], Role)> {
        configs
            .iter()
            .filter_map(|t| {
                let digest: [u8; 32] = match (&t.token, &t.token_sha256) {
                    (Some(tok), _) => Sha256::digest(tok.as_bytes()).into(),
                    (None, Some(h)) => hex::decode(h).ok()?.try_into().ok()?,
                    _ => return None,
                };
                Some((digest, t.role))
            })
            .collect()
    }

    /// The role of the request's bearer token, if it carries a known one. Every configured
    /// digest is compared, in constant time, whatever matches first.
    pub fn role_of(&self, headers: &HeaderMap) -> Option<Role> {
        self.lookup(bearer(headers)?).map(|(_, role)| role)
    }

    /// Who made a change, for the record in L3: the start of the presented token's sha256 (it
    /// tells tokens apart and gives nothing away), the same for the token a console session was
    /// opened with, or `admin` without either.
    pub fn who(headers: &HeaderMap) -> String {
        match bearer(headers) {
            Some(t) => format!("token:{}", &hex::encode(Sha256::digest(t.as_bytes()))[..12]),
            None => match headers.get(SESSION_BY).and_then(|v| v.to_str().ok()) {
                Some(by) => by.to_string(),
                None => "admin".into(),
            },
        }
    }

    /// The configured tokens as (sha256, role).
    pub fn entries(&self) -> std::sync::Arc<Vec<([u8; 32], Role)>> {
        self.entries.load_full()
    }

    /// The digest and role of `token` if it is configured (every digest compared, in constant
    /// time).
    pub fn lookup(&self, token: &str) -> Option<([u8; 32], Role)> {
        let presented: [u8; 32] = Sha256::digest(token.as_bytes()).into();
        let mut found = None;
        for (digest, r) in self.entries.load().iter() {
            if bool::from(digest.ct_eq(&presented)) {
                found = Some((*digest, *r));
            }
        }
        found
    }

    /// Mark a request authorised by a console session opened with the token of `digest`, for
    /// [`Tokens::who`] (a client's own value of the field was removed on arrival).
    pub fn mark_session(headers: &mut HeaderMap, digest: &[u8; 32]) {
        let by = format!("token:{}", &hex::encode(digest)[..12]);
        if let Ok(v) = http::HeaderValue::from_str(&by) {
            headers.insert(SESSION_BY, v);
        }
    }

    /// Allow a request needing `needed`, or say why not. Without configured tokens, reads are
    /// open (the listener is on loopback by default) and changes are refused.
    pub fn check(&self, headers: &HeaderMap, needed: Role) -> Result<(), AuthRefusal> {
        if self.entries.load().is_empty() {
            return match needed {
                Role::Viewer => Ok(()),
                Role::Admin => Err(AuthRefusal {
                    status: StatusCode::FORBIDDEN,
                    message: "changes need an admin token, and admin.tokens is empty",
                }),
            };
        }
        match self.role_of(headers) {
            None => Err(AuthRefusal {
                status: StatusCode::UNAUTHORIZED,
                message: "missing or unknown bearer token",
            }),
            Some(role) if role >= needed => Ok(()),
            Some(_) => Err(AuthRefusal {
                status: StatusCode::FORBIDDEN,
                message: "this token's role may only read",
            }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(token: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(
            header::AUTHORIZATION,
            format!("Bearer {token}").parse().unwrap(),
        );
        h
    }

    fn tokens() -> Tokens {
        let viewer_hash = hex::encode(Sha256::digest(b"viewer-token-0123456789"));
        Tokens::new(&[
            TokenConfig {
                token: Some("admin-token-0123456789".into()),
                token_sha256: None,
                role: Role::Admin,
            },
            TokenConfig {
                token: None,
                token_sha256: Some(viewer_hash),
                role: Role::Viewer,
            },
        ])
    }

    #[test]
    fn roles_by_token_and_by_hash() {
        let t = tokens();
        assert_eq!(
            t.check(&headers("admin-token-0123456789"), Role::Admin),
            Ok(())
        );
        assert_eq!(
            t.check(&headers("viewer-token-0123456789"), Role::Viewer),
            Ok(())
        );
        assert_eq!(
            t.check(&headers("viewer-token-0123456789"), Role::Admin)
                .unwrap_err()
                .status,
            StatusCode::FORBIDDEN
        );
        assert_eq!(
            t.check(&headers("wrong"), Role::Viewer).unwrap_err().status,
            StatusCode::UNAUTHORIZED
        );
        assert_eq!(
            t.check(&HeaderMap::new(), Role::Viewer).unwrap_err().status,
            StatusCode::UNAUTHORIZED
        );
        let mut basic = HeaderMap::new();
        basic.insert(header::AUTHORIZATION, "Basic YWRtaW4=".parse().unwrap());
        assert_eq!(
            t.check(&basic, Role::Viewer).unwrap_err().status,
            StatusCode::UNAUTHORIZED
        );
    }

    #[test]
    fn without_tokens_reads_are_open_and_changes_refused() {
        let t = Tokens::new(&[]);
        assert_eq!(t.check(&HeaderMap::new(), Role::Viewer), Ok(()));
        assert_eq!(
            t.check(&headers("anything"), Role::Admin)
                .unwrap_err()
                .status,
            StatusCode::FORBIDDEN
        );
    }
}
