//! [`QueryRequest`]: what a router knows about a new query, read from the headers and body of a
//! `POST /v1/statement`.
use base64::Engine;
use http::{header, HeaderMap};

use crate::sql;

/// Longest query text handed to a router; longer text is cut and flagged.
pub const MAX_QUERY_TEXT: usize = 64 * 1024;

/// Headers never handed to routers: credentials, and the framing of the request.
pub const WITHHELD_HEADERS: &[&str] = &[
    "authorization",
    "proxy-authorization",
    "cookie",
    "x-trino-extra-credential",
    "content-length",
    "transfer-encoding",
    "connection",
];

/// At most this many headers are handed to routers (the first ones, in request order).
const MAX_HEADERS: usize = 64;

/// What a router knows about a new query.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct QueryRequest {
    /// `X-Trino-User`, else the Basic auth user, else the `sub` claim of a bearer JWT.
    pub user: Option<String>,
    /// `X-Trino-Source`.
    pub source: Option<String>,
    /// `X-Trino-Client-Tags`, split on commas.
    pub client_tags: Vec<String>,
    /// `X-Trino-Routing-Group`, if sent.
    pub routing_group: Option<String>,
    /// Every request header but credentials and framing (lower-case names, in request order;
    /// a repeated header appears once per value).
    pub headers: Vec<(String, String)>,
    /// The SQL text, cut at [`MAX_QUERY_TEXT`] bytes.
    pub query_text: String,
    /// Whether `query_text` was cut.
    pub query_text_truncated: bool,
    /// Catalogs the statement uses (filled by [`QueryRequest::extract_sql_objects`]).
    pub catalogs: Vec<String>,
    /// Schemas as `catalog.schema`.
    pub schemas: Vec<String>,
    /// Tables as `catalog.schema.table`.
    pub tables: Vec<String>,
}

impl QueryRequest {
    /// Build from the headers and body of a `POST /v1/statement`.
    pub fn from_http(headers: &HeaderMap, body: &[u8]) -> Self {
        let get = |name: &str| {
            headers
                .get(name)
                .and_then(|v| v.to_str().ok())
                .map(str::trim)
                .filter(|v| !v.is_empty())
                .map(String::from)
        };
        let truncated = body.len() > MAX_QUERY_TEXT;
        let query_text = cut_text(body, MAX_QUERY_TEXT);
        Self {
            user: get("x-trino-user").or_else(|| user_from_authorization(headers)),
            source: get("x-trino-source"),
            client_tags: get("x-trino-client-tags")
                .map(|t| {
                    t.split(',')
                        .map(|s| s.trim().to_string())
                        .filter(|s| !s.is_empty())
                        .collect()
                })
                .unwrap_or_default(),
            routing_group: get("x-trino-routing-group"),
            headers: headers
                .iter()
                .filter(|(name, _)| !WITHHELD_HEADERS.contains(&name.as_str()))
                .filter_map(|(name, v)| {
                    Some((
                        name.as_str().to_string(),
                        v.to_str().ok()?.trim().to_string(),
                    ))
                })
                .take(MAX_HEADERS)
                .collect(),
            query_text,
            query_text_truncated: truncated,
            catalogs: Vec::new(),
            schemas: Vec::new(),
            tables: Vec::new(),
        }
    }

    /// [`QueryRequest::extract_sql_objects_from`] the (possibly cut) `query_text`.
    pub fn extract_sql_objects(&mut self) {
        let text = std::mem::take(&mut self.query_text);
        self.extract_sql_objects_from(&text);
        self.query_text = text;
    }

    /// Read the whole statement `sql` (not only the text handed to routers) and fill
    /// `catalogs`, `schemas` and `tables`, qualified with the session's `X-Trino-Catalog` /
    /// `X-Trino-Schema`; `EXECUTE name` reads `X-Trino-Prepared-Statement`.
    pub fn extract_sql_objects_from(&mut self, sql: &str) {
        let header = |name: &str| {
            self.headers
                .iter()
                .find(|(k, _)| k == name)
                .map(|(_, v)| v.as_str())
                .filter(|v| !v.is_empty())
        };
        let session = sql::Session {
            catalog: header("x-trino-catalog"),
            schema: header("x-trino-schema"),
            prepared: header("x-trino-prepared-statement"),
        };
        let objects = sql::objects(sql, &session);
        self.catalogs = objects.catalogs;
        self.schemas = objects.schemas;
        self.tables = objects.tables;
    }
}

/// At most `max` bytes of `body` as text, in one pass: a UTF-8 sequence cut by the limit is
/// left out, an invalid byte anywhere becomes U+FFFD (the text after it is kept).
fn cut_text(body: &[u8], max: usize) -> String {
    let mut end = body.len().min(max);
    // back off to the start of a character the limit cuts (at most 3 continuation bytes)
    let mut back = 0;
    while end > 0 && end < body.len() && back < 3 && (body[end] & 0b1100_0000) == 0b1000_0000 {
        end -= 1;
        back += 1;
    }
    String::from_utf8_lossy(&body[..end]).into_owned()
}

/// The user of a Basic `Authorization` header, or the `sub` claim of a bearer JWT (not verified:
/// the coordinator authenticates; Sluice only routes by it).
fn user_from_authorization(headers: &HeaderMap) -> Option<String> {
    let value = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = value.split_once(' ')?;
    if scheme.eq_ignore_ascii_case("basic") {
        let decoded = base64::engine::general_purpose::STANDARD
            .decode(token.trim())
            .ok()?;
        let text = String::from_utf8(decoded).ok()?;
        let user = text.split_once(':').map(|(u, _)| u).unwrap_or(&text);
        return (!user.is_empty()).then(|| user.to_string());
    }
    if scheme.eq_ignore_ascii_case("bearer") {
        let payload = token.trim().split('.').nth(1)?;
        let decoded = base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(payload.trim_end_matches('='))
            .ok()?;
        let claims: serde_json::Value = serde_json::from_slice(&decoded).ok()?;
        return claims.get("sub")?.as_str().map(String::from);
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn query_request_reads_trino_headers() {
        let mut h = HeaderMap::new();
        h.insert("x-trino-user", "alice".parse().unwrap());
        h.insert("x-trino-source", "airflow".parse().unwrap());
        h.insert(
            "x-trino-client-tags",
            "label=special, nightly".parse().unwrap(),
        );
        h.insert("x-trino-catalog", "hive".parse().unwrap());
        h.insert("x-team", "growth".parse().unwrap());
        h.insert(header::AUTHORIZATION, "Bearer secret".parse().unwrap());
        h.insert(header::COOKIE, "session=secret".parse().unwrap());
        let q = QueryRequest::from_http(&h, b"SELECT 1");
        assert_eq!(q.user.as_deref(), Some("alice"));
        assert_eq!(q.source.as_deref(), Some("airflow"));
        assert_eq!(q.client_tags, vec!["label=special", "nightly"]);
        // any header a rule may want, never a credential
        let names: Vec<&str> = q.headers.iter().map(|(k, _)| k.as_str()).collect();
        assert!(
            names.contains(&"x-trino-catalog") && names.contains(&"x-team"),
            "{names:?}"
        );
        assert!(
            !q.headers.iter().any(|(_, v)| v.contains("secret")),
            "{:?}",
            q.headers
        );
        assert_eq!(q.query_text, "SELECT 1");
        assert!(!q.query_text_truncated);
    }

    #[test]
    fn user_falls_back_to_basic_auth_then_jwt_sub() {
        let mut h = HeaderMap::new();
        h.insert(
            header::AUTHORIZATION,
            "Basic Ym9iOnNlY3JldA==".parse().unwrap(),
        );
        assert_eq!(
            QueryRequest::from_http(&h, b"").user.as_deref(),
            Some("bob")
        );
        // {"sub":"carol"} as a JWT payload
        let payload =
            base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(br#"{"sub":"carol"}"#);
        h.insert(
            header::AUTHORIZATION,
            format!("Bearer eyJhbGciOiJub25lIn0.{payload}.sig")
                .parse()
                .unwrap(),
        );
        assert_eq!(
            QueryRequest::from_http(&h, b"").user.as_deref(),
            Some("carol")
        );
    }

    #[test]
    fn long_query_text_is_cut_on_a_char_boundary_and_flagged() {
        let sql = "é".repeat(MAX_QUERY_TEXT); // 2 bytes each
        let q = QueryRequest::from_http(&HeaderMap::new(), sql.as_bytes());
        assert!(q.query_text_truncated);
        assert!(q.query_text.len() <= MAX_QUERY_TEXT);
        assert!(q.query_text.chars().all(|c| c == 'é'));
        // one invalid byte does not cut the text there (and costs one pass, not one per byte)
        let mut sql = b"SELECT 1 -- ".to_vec();
        sql.push(0xff);
        sql.extend_from_slice(&b"x".repeat(MAX_QUERY_TEXT));
        let q = QueryRequest::from_http(&HeaderMap::new(), &sql);
        assert!(
            q.query_text.len() >= MAX_QUERY_TEXT,
            "{}",
            q.query_text.len()
        );
        assert!(q.query_text.contains('\u{fffd}') && q.query_text.ends_with("xxx"));
    }
}
