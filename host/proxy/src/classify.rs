//! Sorting an incoming request: a new query, a follow-up of a known query, another Trino path, or
//! a path Sluice does not serve.
use http::Method;

use sluice_config::ProxyConfig;

use crate::query_id::{self, under};

/// Paths forwarded by default (and everything below them).
pub const DEFAULT_PATHS: &[&str] = &[
    "/v1/statement",
    "/v1/query",
    "/v1/info",
    "/v1/node",
    "/v1/spooled",
    "/ui",
    "/oauth2",
];

/// What kind of request this is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RequestKind {
    /// `POST` to a statement path: a new query to route.
    NewQuery,
    /// A request that belongs to the query with this id.
    FollowUp(String),
    /// A spooled segment (`/v1/spooled/download|ack/…`): owned by the backend its URI names.
    Spooled,
    /// A served path that belongs to no query (`/v1/info`, UI assets …).
    Other,
    /// A path this gateway does not forward.
    NotServed,
    /// A path with `.` or `..` segments: refused (400), never forwarded.
    DotSegments,
}

/// The path tables of one configuration.
#[derive(Debug, Clone)]
pub struct Paths {
    served: Vec<String>,
    statement: Vec<String>,
}

/// Whether `path` has a `.` or `..` segment (also percent-encoded): such a path could reach
/// something other than it seems once a backend resolves it (`/ui/../v1/jmx`), so it is refused.
pub fn has_dot_segment(path: &str) -> bool {
    path.split('/').any(is_dot_segment)
}

/// `.` or `..`, each dot written as it is or as `%2e` / `%2E` (checked in place: this runs on
/// every request).
fn is_dot_segment(seg: &str) -> bool {
    let mut rest = seg.as_bytes();
    let mut dots = 0;
    while !rest.is_empty() {
        rest = match rest {
            [b'.', tail @ ..] => tail,
            [b'%', b'2', e, tail @ ..] if e.eq_ignore_ascii_case(&b'e') => tail,
            _ => return false,
        };
        dots += 1;
        if dots > 2 {
            return false;
        }
    }
    dots > 0
}

impl Paths {
    /// Default paths plus the configured extras.
    pub fn new(config: &ProxyConfig) -> Self {
        let statement: Vec<String> = config
            .statement_paths
            .iter()
            .map(|p| p.trim_end_matches('/').to_string())
            .collect();
        let served = DEFAULT_PATHS
            .iter()
            .map(|p| p.to_string())
            .chain(
                config
                    .extra_paths
                    .iter()
                    .map(|p| p.trim_end_matches('/').to_string()),
            )
            .chain(statement.iter().cloned())
            .collect();
        Self { served, statement }
    }

    /// Classify a request by method, path and query string.
    pub fn classify(&self, method: &Method, path: &str, query: Option<&str>) -> RequestKind {
        if has_dot_segment(path) {
            return RequestKind::DotSegments;
        }
        if !self.served.iter().any(|p| under(path, p)) {
            return RequestKind::NotServed;
        }
        if method == Method::POST && self.is_statement_root(path) {
            return RequestKind::NewQuery;
        }
        if under(path, "/v1/spooled") {
            return RequestKind::Spooled;
        }
        match query_id::extract(path, query, &self.statement) {
            Some(id) => RequestKind::FollowUp(id),
            None => RequestKind::Other,
        }
    }

    /// What a follow-up request says of its query's end: a statement page may be its last (the
    /// answer is watched), a cancel or kill ends it; anything else (the query's info, its UI
    /// page, a partial cancel) says nothing.
    pub fn query_end(&self, method: &Method, path: &str) -> QueryEnd {
        let statement =
            under(path, "/v1/statement") || self.statement.iter().any(|p| under(path, p));
        if statement && !path.contains("/partialCancel/") {
            return match *method {
                Method::GET => QueryEnd::MaybeLastPage,
                Method::DELETE => QueryEnd::Ends,
                _ => QueryEnd::Nothing,
            };
        }
        let kill = (*method == Method::DELETE && under(path, "/v1/query"))
            || (*method == Method::PUT
                && path.starts_with("/ui/api/query/")
                && path.ends_with("/killed"));
        match kill {
            true => QueryEnd::Ends,
            false => QueryEnd::Nothing,
        }
    }

    fn is_statement_root(&self, path: &str) -> bool {
        let path = path.trim_end_matches('/');
        path == "/v1/statement" || self.statement.iter().any(|p| p == path)
    }
}

/// What a follow-up says of its query's end ([`Paths::query_end`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum QueryEnd {
    /// Nothing.
    Nothing,
    /// A statement page: the query ended if it has no `nextUri`.
    MaybeLastPage,
    /// A cancel or a kill.
    Ends,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_statement_pages_cancels_and_kills_speak_of_a_querys_end() {
        let p = paths();
        let page = format!("/v1/statement/executing/{ID}/y1/2");
        assert_eq!(p.query_end(&Method::GET, &page), QueryEnd::MaybeLastPage);
        assert_eq!(p.query_end(&Method::DELETE, &page), QueryEnd::Ends);
        let partial = format!("/v1/statement/executing/partialCancel/{ID}/0/y1/2");
        assert_eq!(p.query_end(&Method::DELETE, &partial), QueryEnd::Nothing);
        // the query's info has no nextUri and says nothing of its end
        assert_eq!(
            p.query_end(&Method::GET, &format!("/v1/query/{ID}")),
            QueryEnd::Nothing
        );
        assert_eq!(
            p.query_end(&Method::DELETE, &format!("/v1/query/{ID}")),
            QueryEnd::Ends
        );
        assert_eq!(
            p.query_end(&Method::PUT, &format!("/ui/api/query/{ID}/killed")),
            QueryEnd::Ends
        );
        assert_eq!(
            p.query_end(&Method::GET, &format!("/ui/api/query/{ID}")),
            QueryEnd::Nothing
        );
    }

    const ID: &str = "20240101_120000_00042_abcde";

    fn paths() -> Paths {
        Paths::new(&ProxyConfig {
            extra_paths: vec!["/login".into()],
            statement_paths: vec!["/custom/statement".into()],
            ..ProxyConfig::default()
        })
    }

    #[test]
    fn dot_segments_are_never_forwarded() {
        let p = paths();
        for path in [
            "/ui/../v1/jmx",
            "/ui/./x",
            "/v1/query/%2e%2e/jmx",
            "/ui/.%2E/x",
            "/ui/..",
        ] {
            assert!(has_dot_segment(path), "{path}");
            assert_eq!(
                p.classify(&Method::GET, path, None),
                RequestKind::DotSegments,
                "{path}"
            );
        }
        assert!(!has_dot_segment("/ui/app.js") && !has_dot_segment("/ui/...x"));
        for not_dots in [
            "/ui/...",
            "/ui/%2e%2e%2e",
            "/ui/%2f",
            "/ui/%2",
            "/ui/.%2",
            "/",
            "",
        ] {
            assert!(!has_dot_segment(not_dots), "{not_dots}");
        }
        assert!(has_dot_segment("/a/%2E") && has_dot_segment("/a/.%2e/b"));
    }

    #[test]
    fn new_queries() {
        let p = paths();
        assert_eq!(
            p.classify(&Method::POST, "/v1/statement", None),
            RequestKind::NewQuery
        );
        assert_eq!(
            p.classify(&Method::POST, "/v1/statement/", None),
            RequestKind::NewQuery
        );
        assert_eq!(
            p.classify(&Method::POST, "/custom/statement", None),
            RequestKind::NewQuery
        );
        assert_eq!(
            p.classify(&Method::GET, "/v1/statement", None),
            RequestKind::Other
        );
    }

    #[test]
    fn follow_ups_including_cancel() {
        let p = paths();
        let path = format!("/v1/statement/executing/{ID}/y/2");
        for m in [Method::GET, Method::DELETE, Method::HEAD] {
            assert_eq!(
                p.classify(&m, &path, None),
                RequestKind::FollowUp(ID.into())
            );
        }
        assert_eq!(
            p.classify(
                &Method::GET,
                "/login",
                Some(&format!("redirect=%2Fui%2Fapi%2Fquery%2F{ID}"))
            ),
            RequestKind::FollowUp(ID.into())
        );
        assert_eq!(
            p.classify(
                &Method::GET,
                &format!("/custom/statement/queued/{ID}/y/1"),
                None
            ),
            RequestKind::FollowUp(ID.into())
        );
    }

    #[test]
    fn other_and_not_served() {
        let p = paths();
        assert_eq!(
            p.classify(&Method::GET, "/v1/info", None),
            RequestKind::Other
        );
        assert_eq!(
            p.classify(&Method::GET, "/ui/", Some("id=0_1_2_a")),
            RequestKind::Other
        );
        assert_eq!(
            p.classify(&Method::GET, "/ui/api/query/myOtherThing", None),
            RequestKind::Other
        );
        assert_eq!(p.classify(&Method::GET, "/", None), RequestKind::NotServed);
        assert_eq!(
            p.classify(&Method::GET, "/admin", None),
            RequestKind::NotServed
        );
        assert_eq!(
            p.classify(&Method::GET, "/v1/infox", None),
            RequestKind::NotServed
        );
        assert_eq!(
            p.classify(&Method::GET, "/v2/statement", None),
            RequestKind::NotServed
        );
    }
}
