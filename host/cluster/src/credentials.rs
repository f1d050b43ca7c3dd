//! How Sluice authenticates its own requests to the clusters (health and stats polls, the owner
//! search): a user (`X-Trino-User`), with a password (Basic auth) or a bearer token. The values
//! come from the configuration, where `${VAR}` takes them from the environment; they are never
//! logged (`Debug` shows only which kind is set).
use http::header;

/// A user, and how it proves who it is.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct Credentials {
    /// Sent as `X-Trino-User` (and the Basic auth user).
    pub user: String,
    /// Basic auth password.
    pub password: Option<String>,
    /// Bearer token (a JWT or an OAuth2 access token the clusters accept).
    pub bearer_token: Option<String>,
}

impl std::fmt::Debug for Credentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let kind = match (&self.password, &self.bearer_token) {
            (Some(_), _) => "basic",
            (_, Some(_)) => "bearer",
            _ => "none",
        };
        write!(f, "Credentials {{ user: {:?}, auth: {kind} }}", self.user)
    }
}

impl Credentials {
    /// `user`, with `password` or `bearer_token` (empty strings count as unset).
    pub fn new(user: &str, password: Option<&str>, bearer_token: Option<&str>) -> Self {
        let set = |v: Option<&str>| v.filter(|s| !s.is_empty()).map(String::from);
        Self {
            user: user.to_string(),
            password: set(password),
            bearer_token: set(bearer_token),
        }
    }

    /// Add the user and the `Authorization` header to a request.
    pub fn apply(&self, req: http::request::Builder) -> http::request::Builder {
        let req = req.header("X-Trino-User", &self.user);
        match (&self.password, &self.bearer_token) {
            (Some(password), _) => {
                req.header(header::AUTHORIZATION, basic_auth(&self.user, password))
            }
            (None, Some(token)) => req.header(header::AUTHORIZATION, format!("Bearer {token}")),
            (None, None) => req,
        }
    }
}

fn basic_auth(user: &str, password: &str) -> String {
    use base64::Engine;
    let token = base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"));
    format!("Basic {token}")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn authorization(c: &Credentials) -> Option<String> {
        let req = c.apply(http::Request::get("/")).body(()).unwrap();
        assert_eq!(req.headers()["x-trino-user"], c.user.as_str());
        req.headers()
            .get(header::AUTHORIZATION)
            .map(|v| v.to_str().unwrap().to_string())
    }

    #[test]
    fn basic_bearer_or_none_and_no_secret_in_debug() {
        let basic = Credentials::new("Aladdin", Some("open sesame"), None);
        assert_eq!(
            authorization(&basic).unwrap(),
            "Basic QWxhZGRpbjpvcGVuIHNlc2FtZQ=="
        );
        let bearer = Credentials::new("svc", None, Some("tok-123"));
        assert_eq!(authorization(&bearer).unwrap(), "Bearer tok-123");
        assert_eq!(authorization(&Credentials::new("u", Some(""), None)), None);
        let shown = format!("{basic:?} {bearer:?}");
        assert!(
            !shown.contains("sesame") && !shown.contains("tok-123"),
            "{shown}"
        );
    }
}
