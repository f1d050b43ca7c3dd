//! Routing of new queries: a [`QueryRequest`] goes through a [`Router`] which returns a
//! [`Decision`]; [`Routing::choose`] applies it to the live cluster state (groups, health, strict
//! or fallback mode) and always ends with one routable backend or a clear error.
//!
//! The native [`LeastLoaded`] router is the default today; a chain of Wasm filters implements the
//! same [`Router`] trait.
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use arc_swap::ArcSwap;
use base64::Engine;
use http::{header, HeaderMap, StatusCode};
use rand::RngExt;

use crate::cluster::{Backend, Cluster};
use crate::config::RoutingConfig;
use crate::error::GatewayError;

pub mod sql;

/// A boxed future, for the object-safe [`Router`] trait.
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// Longest query text handed to a router; longer text is cut and flagged.
pub const MAX_QUERY_TEXT: usize = 64 * 1024;

/// Headers copied into [`QueryRequest::headers`] (lower-case).
const SELECTED_HEADERS: &[&str] = &[
    "x-trino-catalog",
    "x-trino-schema",
    "x-trino-time-zone",
    "x-trino-language",
    "x-trino-trace-token",
    "x-trino-client-info",
    "x-trino-session",
    "user-agent",
];

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
    /// A selection of other headers (lower-case names).
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
        let mut end = body.len().min(MAX_QUERY_TEXT);
        while end > 0 && std::str::from_utf8(&body[..end]).is_err() {
            end -= 1; // do not cut a UTF-8 sequence in half
        }
        let query_text = String::from_utf8_lossy(&body[..end]).into_owned();
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
            headers: SELECTED_HEADERS
                .iter()
                .filter_map(|h| get(h).map(|v| (h.to_string(), v)))
                .collect(),
            query_text,
            query_text_truncated: truncated,
            catalogs: Vec::new(),
            schemas: Vec::new(),
            tables: Vec::new(),
        }
    }

    /// Parse the SQL and fill `catalogs`, `schemas` and `tables`, qualified with the session's
    /// `X-Trino-Catalog` / `X-Trino-Schema`.
    pub fn extract_sql_objects(&mut self) {
        let header = |name: &str| {
            self.headers
                .iter()
                .find(|(k, _)| k == name)
                .map(|(_, v)| v.as_str())
        };
        let objects = sql::objects(
            &self.query_text,
            header("x-trino-catalog"),
            header("x-trino-schema"),
        );
        self.catalogs = objects.catalogs;
        self.schemas = objects.schemas;
        self.tables = objects.tables;
    }
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

/// A router's answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    /// Send the query to this backend (by name).
    RouteTo(String),
    /// Narrow the query to this routing group; the native router picks within it.
    UseGroup(String),
    /// Answer the client with this error.
    Reject { status: u16, message: String },
    /// No opinion: the native router decides.
    Pass,
}

/// What a router sees besides the request.
pub struct RouteContext<'a> {
    /// The routing group the query is in so far.
    pub group: &'a str,
    /// The backends and their live state.
    pub cluster: &'a Cluster,
    /// Backends not to choose (they refused this very query a moment ago).
    pub exclude: &'a [String],
}

/// The routing seam: a decision for a new query.
pub trait Router: Send + Sync {
    /// Decide where `req` goes.
    fn route<'a>(&'a self, req: &'a QueryRequest, ctx: RouteContext<'a>)
        -> BoxFuture<'a, Decision>;

    /// Whether this router reads the catalogs/schemas/tables of the query (parsing costs time,
    /// so the proxy only parses the SQL for routers that look at it).
    fn wants_sql_objects(&self) -> bool {
        false
    }
}

impl<R: Router + ?Sized> Router for Arc<R> {
    fn route<'a>(
        &'a self,
        req: &'a QueryRequest,
        ctx: RouteContext<'a>,
    ) -> BoxFuture<'a, Decision> {
        (**self).route(req, ctx)
    }
    fn wants_sql_objects(&self) -> bool {
        (**self).wants_sql_objects()
    }
}

/// Native router: the least-loaded routable backend of the group (running + queued as last
/// polled, plus queries sent since); ties are broken at random so bursts spread.
#[derive(Debug, Default)]
pub struct LeastLoaded;

impl Router for LeastLoaded {
    fn route<'a>(
        &'a self,
        _req: &'a QueryRequest,
        ctx: RouteContext<'a>,
    ) -> BoxFuture<'a, Decision> {
        let decision = match least_loaded(ctx.cluster, ctx.group, ctx.exclude) {
            Some(b) => Decision::RouteTo(b.name().to_string()),
            None => Decision::Pass,
        };
        Box::pin(std::future::ready(decision))
    }
}

/// The least-loaded routable backend of `group`, not in `exclude`.
pub fn least_loaded(cluster: &Cluster, group: &str, exclude: &[String]) -> Option<Arc<Backend>> {
    let backends = cluster.backends();
    // read each estimate once: other requests update them concurrently
    let candidates: Vec<(u64, &Arc<Backend>)> = backends
        .iter()
        .filter(|b| b.group() == group && b.is_routable())
        .filter(|b| !exclude.iter().any(|e| e == b.name()))
        .map(|b| (b.load_estimate(), b))
        .collect();
    let min = candidates.iter().map(|(load, _)| *load).min()?;
    let best: Vec<&Arc<Backend>> = candidates
        .iter()
        .filter(|(load, _)| *load == min)
        .map(|(_, b)| *b)
        .collect();
    let pick = if best.len() == 1 {
        0
    } else {
        rand::rng().random_range(0..best.len())
    };
    Some(Arc::clone(best[pick]))
}

/// Where a new query goes.
#[derive(Debug, Clone)]
pub struct Choice {
    /// The backend.
    pub backend: Arc<Backend>,
    /// The routing group the query ended up in.
    pub group: String,
}

/// Applies a router's decision to the cluster.
pub struct Routing {
    cluster: Arc<Cluster>,
    config: RoutingConfig,
    router: ArcSwap<Box<dyn Router>>,
}

impl Routing {
    /// Routing over `cluster` with `router` deciding first.
    pub fn new(cluster: Arc<Cluster>, config: RoutingConfig, router: Box<dyn Router>) -> Self {
        Self {
            cluster,
            config,
            router: ArcSwap::from_pointee(router),
        }
    }

    /// Replace the router (in-flight decisions finish on the old one).
    pub fn set_router(&self, router: Box<dyn Router>) {
        self.router.store(Arc::new(router));
    }

    /// The cluster routed over.
    pub fn cluster(&self) -> &Arc<Cluster> {
        &self.cluster
    }

    /// Whether the current router wants [`QueryRequest::extract_sql_objects`].
    pub fn wants_sql_objects(&self) -> bool {
        self.router.load().wants_sql_objects()
    }

    /// Choose a backend for a new query, skipping `exclude`.
    pub async fn choose(
        &self,
        req: &QueryRequest,
        exclude: &[String],
    ) -> Result<Choice, GatewayError> {
        let mut group = req
            .routing_group
            .clone()
            .unwrap_or_else(|| self.config.default_group.clone());
        if !self.cluster.has_group(&group) {
            return Err(GatewayError::UnknownGroup(group));
        }
        let ctx = RouteContext {
            group: &group,
            cluster: &self.cluster,
            exclude,
        };
        let router = self.router.load_full();
        match router.route(req, ctx).await {
            Decision::RouteTo(name) => match self.cluster.get(&name) {
                Some(b) if b.is_routable() && !exclude.contains(&name) => {
                    b.note_routed();
                    return Ok(Choice {
                        group: b.group().to_string(),
                        backend: b,
                    });
                }
                _ => tracing::warn!(
                    backend = name,
                    "router chose a backend that is unknown, unroutable or excluded; using the native router"
                ),
            },
            Decision::UseGroup(g) => {
                if !self.cluster.has_group(&g) {
                    return Err(GatewayError::UnknownGroup(g));
                }
                group = g;
            }
            Decision::Reject { status, message } => {
                return Err(GatewayError::Rejected {
                    status: StatusCode::from_u16(status).unwrap_or(StatusCode::FORBIDDEN),
                    message,
                })
            }
            Decision::Pass => {}
        }
        self.native_pick(group, exclude)
    }

    fn native_pick(&self, group: String, exclude: &[String]) -> Result<Choice, GatewayError> {
        if let Some(b) = least_loaded(&self.cluster, &group, exclude) {
            b.note_routed();
            return Ok(Choice { backend: b, group });
        }
        let default = &self.config.default_group;
        if self.config.strict_groups || &group == default {
            return Err(GatewayError::NoHealthyBackend(group));
        }
        match least_loaded(&self.cluster, default, exclude) {
            Some(b) => {
                tracing::warn!(
                    group,
                    fallback = default.as_str(),
                    "no healthy backend in group; falling back to the default group"
                );
                b.note_routed();
                Ok(Choice {
                    backend: b,
                    group: default.clone(),
                })
            }
            None => Err(GatewayError::NoHealthyBackend(group)),
        }
    }

    /// A backend for requests that belong to no query (`/v1/info`, `/ui` assets …): the
    /// least-loaded routable backend of the default group, else of any group.
    pub fn choose_for_other(&self) -> Result<Arc<Backend>, GatewayError> {
        if let Some(b) = least_loaded(&self.cluster, &self.config.default_group, &[]) {
            return Ok(b);
        }
        self.cluster
            .groups()
            .iter()
            .find_map(|g| least_loaded(&self.cluster, g, &[]))
            .ok_or_else(|| GatewayError::NoHealthyBackend(self.config.default_group.clone()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cluster::{BackendStatus, Health};
    use crate::config::{BackendConfig, StatsSource};

    fn backend(name: &str, group: &str) -> BackendConfig {
        BackendConfig {
            name: name.into(),
            url: "http://127.0.0.1:1".into(),
            group: group.into(),
            active: true,
            external_url: None,
            rewrite_next_uri: false,
            stats: None,
        }
    }

    fn set(cluster: &Cluster, name: &str, health: Health, running: u32, queued: u32) {
        cluster.get(name).unwrap().publish(BackendStatus {
            health,
            running_queries: running,
            queued_queries: queued,
            user_queued: Default::default(),
            reason: None,
            checked_at: None,
        });
    }

    fn routing(strict: bool) -> Routing {
        let mut inactive = backend("etl-off", "etl");
        inactive.active = false;
        let cluster = Arc::new(Cluster::new(
            &[
                backend("adhoc-1", "adhoc"),
                backend("adhoc-2", "adhoc"),
                backend("etl-1", "etl"),
                inactive,
            ],
            StatsSource::InfoOnly,
        ));
        for name in ["adhoc-1", "adhoc-2", "etl-1", "etl-off"] {
            set(&cluster, name, Health::Healthy, 0, 0);
        }
        let config = RoutingConfig {
            default_group: "adhoc".into(),
            strict_groups: strict,
            ..RoutingConfig::default()
        };
        Routing::new(cluster, config, Box::new(LeastLoaded))
    }

    fn req(group: Option<&str>) -> QueryRequest {
        QueryRequest {
            routing_group: group.map(String::from),
            ..Default::default()
        }
    }

    #[tokio::test]
    async fn header_group_and_default_group() {
        let r = routing(false);
        assert_eq!(
            r.choose(&req(Some("etl")), &[])
                .await
                .unwrap()
                .backend
                .name(),
            "etl-1"
        );
        assert_eq!(r.choose(&req(None), &[]).await.unwrap().group, "adhoc");
    }

    #[tokio::test]
    async fn unknown_group_is_a_client_error_naming_it() {
        let err = routing(false)
            .choose(&req(Some("nope")), &[])
            .await
            .unwrap_err();
        assert!(matches!(err, GatewayError::UnknownGroup(ref g) if g == "nope"));
        assert_eq!(err.status(), StatusCode::BAD_REQUEST);
    }

    #[tokio::test]
    async fn least_loaded_wins_and_routed_queries_count_until_the_next_poll() {
        let r = routing(false);
        set(r.cluster(), "adhoc-1", Health::Healthy, 5, 0);
        set(r.cluster(), "adhoc-2", Health::Healthy, 2, 1);
        // adhoc-2 has 3, adhoc-1 has 5: the next three go to adhoc-2, then they tie.
        for _ in 0..2 {
            assert_eq!(
                r.choose(&req(None), &[]).await.unwrap().backend.name(),
                "adhoc-2"
            );
        }
        let mut seen = std::collections::BTreeMap::new();
        for _ in 0..20 {
            *seen
                .entry(
                    r.choose(&req(None), &[])
                        .await
                        .unwrap()
                        .backend
                        .name()
                        .to_string(),
                )
                .or_insert(0) += 1;
        }
        assert!(seen.len() == 2, "a burst spreads over both: {seen:?}");
    }

    #[tokio::test]
    async fn unhealthy_pending_inactive_and_excluded_are_never_chosen() {
        let r = routing(true);
        set(r.cluster(), "adhoc-1", Health::Unhealthy, 0, 0);
        set(r.cluster(), "adhoc-2", Health::Pending, 0, 0);
        let err = r.choose(&req(None), &[]).await.unwrap_err();
        assert!(matches!(err, GatewayError::NoHealthyBackend(ref g) if g == "adhoc"));

        let r = routing(true);
        for _ in 0..50 {
            let c = r
                .choose(&req(None), &["adhoc-1".to_string()])
                .await
                .unwrap();
            assert_eq!(c.backend.name(), "adhoc-2");
        }
        set(r.cluster(), "etl-1", Health::Unhealthy, 0, 0);
        // etl-off is healthy but inactive
        let err = r.choose(&req(Some("etl")), &[]).await.unwrap_err();
        assert_eq!(err.status(), StatusCode::SERVICE_UNAVAILABLE);
        assert!(err.to_string().contains("'etl'"));
    }

    #[tokio::test]
    async fn empty_group_falls_back_to_default_unless_strict() {
        let r = routing(false);
        set(r.cluster(), "etl-1", Health::Unhealthy, 0, 0);
        let c = r.choose(&req(Some("etl")), &[]).await.unwrap();
        assert_eq!(c.group, "adhoc");
        assert!(c.backend.name().starts_with("adhoc-"));
    }

    struct Fixed(Decision);
    impl Router for Fixed {
        fn route<'a>(
            &'a self,
            _: &'a QueryRequest,
            _: RouteContext<'a>,
        ) -> BoxFuture<'a, Decision> {
            Box::pin(std::future::ready(self.0.clone()))
        }
    }

    #[tokio::test]
    async fn router_decisions_are_applied_and_checked() {
        let r = routing(false);
        r.set_router(Box::new(Fixed(Decision::UseGroup("etl".into()))));
        assert_eq!(
            r.choose(&req(None), &[]).await.unwrap().backend.name(),
            "etl-1"
        );

        r.set_router(Box::new(Fixed(Decision::RouteTo("etl-off".into()))));
        let c = r.choose(&req(None), &[]).await.unwrap();
        assert!(
            c.backend.name().starts_with("adhoc-"),
            "inactive pick is overruled"
        );

        r.set_router(Box::new(Fixed(Decision::Reject {
            status: 429,
            message: "slow down".into(),
        })));
        let err = r.choose(&req(None), &[]).await.unwrap_err();
        assert_eq!(err.status(), StatusCode::TOO_MANY_REQUESTS);
    }

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
        let q = QueryRequest::from_http(&h, b"SELECT 1");
        assert_eq!(q.user.as_deref(), Some("alice"));
        assert_eq!(q.source.as_deref(), Some("airflow"));
        assert_eq!(q.client_tags, vec!["label=special", "nightly"]);
        assert_eq!(q.headers, vec![("x-trino-catalog".into(), "hive".into())]);
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
    }
}
