//! Trino Gateway's external routing service, kept: before the chain runs, a `POST` to the
//! service with the query's headers and what the gateway knows of it (Trino Gateway's body:
//! `trinoQueryProperties`, `trinoRequestUser`, `method`, `requestURI`, …), answered with
//! `{"routingGroup": "…", "errors": […], "externalHeaders": {…}}`. The group it names is the
//! query's group for the chain. A call that fails, times out, answers `errors` or no group leaves
//! the group the query had (its `X-Trino-Routing-Group`, else the default group): routing never
//! waits longer than the time limit and never stops for the service.
//!
//! Credentials never leave: the request carries only the headers routers see (no
//! `Authorization`, `Cookie`, …), minus `exclude_headers`. `externalHeaders` is not applied
//! (Sluice forwards the client's request as sent).
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use http_body_util::{BodyExt, Limited};
use serde::Deserialize;
use serde_json::{json, Value};
use sluice_config::ExternalRouting;
use sluice_http::client::{build, Client, ClientOptions};

use sluice_routing::{BoxFuture, QueryRequest, Route, RouteContext, Router};

/// The largest answer read from the service.
const MAX_ANSWER: usize = 64 * 1024;

/// The external service in front of `inner` (the chain, or the native router).
pub struct External {
    url: http::Uri,
    timeout: Duration,
    exclude: Vec<String>,
    client: Client,
    inner: Box<dyn Router>,
    failing: AtomicBool,
    stats: std::sync::Arc<ExternalStats>,
}

/// What the calls to the service came to.
#[derive(Debug, Default)]
pub struct ExternalStats {
    /// Calls that named a group other than the query's.
    pub chose_group: AtomicU64,
    /// Calls that named no group, or the query's own.
    pub kept_group: AtomicU64,
    /// Calls that failed, timed out or answered `errors`.
    pub failed: AtomicU64,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Answer {
    #[serde(default)]
    routing_group: Option<String>,
    #[serde(default)]
    errors: Option<Vec<String>>,
}

impl External {
    /// The service of `config` in front of `inner`; `tls` for an `https://` service.
    pub fn new(
        config: &ExternalRouting,
        inner: Box<dyn Router>,
        tls: Option<sluice_http::tls::Outbound>,
    ) -> Result<External, String> {
        let url = config
            .url
            .parse::<http::Uri>()
            .map_err(|e| format!("routing.external.url: {e}"))?;
        let timeout = Duration::from_millis(config.timeout_ms);
        Ok(External {
            url,
            timeout,
            exclude: config
                .exclude_headers
                .iter()
                .map(|h| h.to_ascii_lowercase())
                .collect(),
            client: build(&ClientOptions::connect_within(timeout).pool(8).tls(tls)),
            inner,
            failing: AtomicBool::new(false),
            stats: Default::default(),
        })
    }

    /// The counters of the calls (for metrics).
    pub fn stats(&self) -> std::sync::Arc<ExternalStats> {
        self.stats.clone()
    }

    /// What the service is sent about `req`.
    pub fn request_body(req: &QueryRequest) -> Value {
        let header = |name: &str| {
            req.headers
                .iter()
                .find(|(n, _)| n == name)
                .map(|(_, v)| v.clone())
        };
        let schemas: Vec<&str> = req
            .schemas
            .iter()
            .map(|s| s.split_once('.').map_or(s.as_str(), |(_, s)| s))
            .collect();
        json!({
            "trinoQueryProperties": {
                "body": req.query_text,
                "defaultCatalog": header("x-trino-catalog"),
                "defaultSchema": header("x-trino-schema"),
                "catalogs": req.catalogs,
                "schemas": schemas,
                "catalogSchemas": req.schemas,
                "tables": req.tables,
                "isNewQuerySubmission": true,
                "isQueryParsingSuccessful": true,
            },
            "trinoRequestUser": { "user": req.user },
            "contentType": header("content-type"),
            "remoteUser": null,
            "method": "POST",
            "requestURI": "/v1/statement",
            "queryString": null,
            "session": null,
            "remoteAddr": null,
            "remoteHost": null,
            "parameters": {},
        })
    }

    /// The group the service names for `req`, if it names one.
    async fn ask(&self, req: &QueryRequest) -> Result<Option<String>, String> {
        let body = serde_json::to_vec(&Self::request_body(req)).map_err(|e| e.to_string())?;
        let mut builder = http::Request::post(self.url.clone());
        for (name, value) in &req.headers {
            let skip = matches!(name.as_str(), "content-length" | "content-type" | "host")
                || self.exclude.contains(name);
            if !skip {
                builder = builder.header(name.as_str(), value.as_str());
            }
        }
        let request = builder
            .header(
                http::header::CONTENT_TYPE,
                "application/json; charset=utf-8",
            )
            .body(sluice_http::full_body(body))
            .map_err(|e| e.to_string())?;
        let call = async {
            let response = self
                .client
                .request(request)
                .await
                .map_err(|e| e.to_string())?;
            let status = response.status();
            let bytes = Limited::new(response.into_body(), MAX_ANSWER)
                .collect()
                .await
                .map_err(|e| e.to_string())?
                .to_bytes();
            if !status.is_success() {
                return Err(format!("answered {status}"));
            }
            serde_json::from_slice::<Answer>(&bytes).map_err(|e| format!("unreadable answer: {e}"))
        };
        let answer = tokio::time::timeout(self.timeout, call)
            .await
            .map_err(|_| format!("no answer within {} ms", self.timeout.as_millis()))??;
        if let Some(errors) = answer.errors.filter(|e| !e.is_empty()) {
            return Err(format!("answered errors: {}", errors.join("; ")));
        }
        Ok(answer.routing_group.filter(|g| !g.is_empty()))
    }
}

impl Router for External {
    fn route<'a>(&'a self, req: &'a QueryRequest, ctx: RouteContext<'a>) -> BoxFuture<'a, Route> {
        Box::pin(async move {
            let group = match self.ask(req).await {
                Ok(named) => {
                    if self.failing.swap(false, Ordering::Relaxed) {
                        tracing::info!(url = %self.url, "external routing service answers again");
                    }
                    let named = named.filter(|g| g != ctx.group);
                    let counter = match named {
                        Some(_) => &self.stats.chose_group,
                        None => &self.stats.kept_group,
                    };
                    counter.fetch_add(1, Ordering::Relaxed);
                    named
                }
                Err(why) => {
                    self.stats.failed.fetch_add(1, Ordering::Relaxed);
                    if !self.failing.swap(true, Ordering::Relaxed) {
                        tracing::warn!(url = %self.url, reason = why, "external routing service failed; queries keep their group");
                    }
                    None
                }
            };
            let Some(group) = group else {
                return self.inner.route(req, ctx).await;
            };
            let inner = RouteContext {
                group: &group,
                cluster: ctx.cluster,
                exclude: ctx.exclude,
                priority: ctx.priority,
            };
            match self.inner.route(req, inner).await {
                Route::Pass => Route::Group(group.clone()),
                route => route,
            }
        })
    }

    fn wants_sql_objects(&self) -> bool {
        true
    }
}
