//! The filter endpoints: uploads (raw or multipart), config changes, rollback, activation, chain
//! order, versions and the fleet view. Every change goes through the filter chain's swap
//! pipeline; a refusal names the step, and [`step_status`] is the one place a step becomes an HTTP
//! status.
use std::sync::atomic::Ordering;
use std::sync::Arc;

use bytes::Bytes;
use http::{header, Request, Response, StatusCode};
use http_body_util::{BodyExt, Limited};
use hyper::body::Incoming;
use sluice_filters::{Candidate, FilterChain, Persist, Step, SwapError, Swapped};
use sluice_http::Body;

use crate::api::{ChainOrder, ErrorReply, SwapReply};
use crate::{auth, error, reply, Admin};

/// Largest module upload.
const MAX_MODULE_BYTES: usize = 64 << 20;

/// The status of a change refused at `step`: 503 when the store is down, 404 for a slot or
/// version that does not exist, 400 for a body that cannot be read, 422 for a module, config or
/// order that is wrong.
pub fn step_status(step: Step) -> StatusCode {
    match step {
        Step::Store => StatusCode::SERVICE_UNAVAILABLE,
        Step::Version | Step::Slot => StatusCode::NOT_FOUND,
        Step::Upload => StatusCode::BAD_REQUEST,
        Step::Config | Step::Compile | Step::Link | Step::Init | Step::SelfTest | Step::Order => {
            StatusCode::UNPROCESSABLE_ENTITY
        }
    }
}

/// A refused change: the step's status, and a body naming the step.
fn refused(e: &SwapError) -> Response<Body> {
    let body = ErrorReply {
        error: e.to_string(),
        step: Some(e.step),
    };
    reply(step_status(e.step), &body)
}

/// A request that is wrong before any step ran (400, naming the step it stands for).
fn bad_request(step: Step, message: impl Into<String>) -> Response<Body> {
    let body = ErrorReply {
        error: message.into(),
        step: Some(step),
    };
    reply(StatusCode::BAD_REQUEST, &body)
}

/// The answer to a swap: the new version, or the step that failed (the running version stays).
fn swap_reply(slot: &str, result: Result<Swapped, SwapError>) -> Response<Body> {
    match result {
        Ok((new, old)) => reply(
            StatusCode::OK,
            &SwapReply {
                slot: slot.to_string(),
                sha256: new.sha256.to_string(),
                version: new.version.load(Ordering::Relaxed),
                previous_sha256: old.as_ref().map(|o| o.sha256.to_string()),
            },
        ),
        Err(e) => {
            tracing::warn!(slot, step = e.step.as_str(), error = %e, "filter swap refused; the running version stays");
            refused(&e)
        }
    }
}

type Refused = Box<Response<Body>>;

impl Admin {
    fn chain(&self) -> Result<&Arc<FilterChain>, Refused> {
        self.chain.as_ref().ok_or_else(|| {
            Box::new(error(
                StatusCode::CONFLICT,
                "no filter chain is configured (routing.chain is empty)",
            ))
        })
    }

    /// `GET /api/v1/chain`.
    pub(crate) fn order(&self) -> Response<Body> {
        match self.chain() {
            Ok(chain) => reply(
                StatusCode::OK,
                &ChainOrder {
                    order: chain.order(),
                },
            ),
            Err(resp) => *resp,
        }
    }

    /// `GET /api/v1/filters/{slot}/versions`.
    pub(crate) async fn versions(&self, slot: &str) -> Response<Body> {
        match self.chain() {
            Ok(chain) => match chain.versions(slot).await {
                Ok(v) => reply(StatusCode::OK, &v),
                Err(e) => refused(&e),
            },
            Err(resp) => *resp,
        }
    }

    /// `POST /api/v1/filters/{slot}/rollback`.
    pub(crate) async fn rollback(&self, slot: &str) -> Response<Body> {
        match self.chain() {
            Ok(chain) => swap_reply(slot, chain.rollback(slot).await),
            Err(resp) => *resp,
        }
    }

    /// `POST /api/v1/filters/{slot}/activate/{version}`.
    pub(crate) async fn activate(&self, slot: &str, version: &str) -> Response<Body> {
        match (self.chain(), version.parse::<i64>()) {
            (Err(resp), _) => *resp,
            (Ok(chain), Ok(v)) => swap_reply(slot, chain.activate(slot, v).await),
            (_, Err(_)) => error(
                StatusCode::BAD_REQUEST,
                format!("'{version}' is not a version number"),
            ),
        }
    }

    /// `PUT /api/v1/filters/{slot}`: swap the uploaded component into the slot. The body is the
    /// component, with the config in the `config` query parameter; or `multipart/form-data` with
    /// a `module` part and an optional `config` part.
    pub(crate) async fn upload(&self, slot: &str, req: Request<Incoming>) -> Response<Body> {
        let chain = match self.chain() {
            Ok(c) => c,
            Err(resp) => return *resp,
        };
        if !sluice_config::valid_slot_name(slot) {
            return bad_request(
                Step::Slot,
                "slot names are 1-64 characters of a-z, 0-9, '-' and '_'",
            );
        }
        let mut config_json = match config_param(req.uri().query()) {
            Ok(c) => c,
            Err(e) => return bad_request(Step::Config, e.to_string()),
        };
        let boundary = req
            .headers()
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .filter(|ct| ct.starts_with("multipart/form-data"))
            .map(sluice_http::multipart::boundary);
        let who = auth::Tokens::who(req.headers());
        let body = match read_body(req).await {
            Ok(b) => b,
            Err(resp) => return *resp,
        };
        let bytes = match boundary {
            None => body,
            Some(Err(e)) => return bad_request(Step::Upload, e.to_string()),
            Some(Ok(boundary)) => match multipart(body, boundary).await {
                Ok((module, config)) => {
                    if let Some(c) = config {
                        config_json = c;
                    }
                    module
                }
                Err(e) => return bad_request(e.step, e.message),
            },
        };
        let persist = Persist::New { created_by: &who };
        let candidate = Candidate {
            slot,
            module: "upload",
            bytes: &bytes,
            config_json,
        };
        let result = chain.swap(candidate, persist).await;
        swap_reply(slot, result)
    }

    /// What a change request brings: the chain, who sent it, and its body.
    async fn change(
        &self,
        req: Request<Incoming>,
    ) -> Result<(&Arc<FilterChain>, String, Bytes), Refused> {
        let chain = self.chain()?;
        let who = auth::Tokens::who(req.headers());
        Ok((chain, who, read_body(req).await?))
    }

    /// `PUT /api/v1/filters/{slot}/config`: the slot's module with a new config (YAML or JSON).
    pub(crate) async fn reconfigure(&self, slot: &str, req: Request<Incoming>) -> Response<Body> {
        let (chain, who, body) = match self.change(req).await {
            Ok(c) => c,
            Err(resp) => return *resp,
        };
        let config_json = match std::str::from_utf8(&body) {
            Err(e) => return bad_request(Step::Config, format!("config is not UTF-8: {e}")),
            Ok(text) => match sluice_filters::config_to_json(text) {
                Ok(c) => c,
                Err(e) => return bad_request(Step::Config, e.to_string()),
            },
        };
        swap_reply(slot, chain.reconfigure(slot, config_json, &who).await)
    }

    /// `PUT /api/v1/chain`: body `{"order": ["slot", …]}` (or just the list).
    pub(crate) async fn reorder(&self, req: Request<Incoming>) -> Response<Body> {
        let (chain, who, body) = match self.change(req).await {
            Ok(c) => c,
            Err(resp) => return *resp,
        };
        #[derive(serde::Deserialize)]
        #[serde(untagged)]
        enum Order {
            Wrapped(ChainOrder),
            List(Vec<String>),
        }
        let order = match serde_json::from_slice::<Order>(&body) {
            Ok(Order::Wrapped(ChainOrder { order }) | Order::List(order)) => order,
            Err(e) => {
                return bad_request(
                    Step::Order,
                    format!("expected {{\"order\": [\"slot\", …]}}: {e}"),
                )
            }
        };
        match chain.reorder(&order, &who).await {
            Ok(order) => reply(StatusCode::OK, &ChainOrder { order }),
            Err(e) => refused(&e),
        }
    }

    /// `GET /api/v1/fleet`: what L3 marks active, and what every instance reports it runs.
    pub(crate) async fn fleet(&self) -> Response<Body> {
        let (Some(_), Some(fleet)) = (&self.chain, &self.fleet) else {
            return error(
                StatusCode::CONFLICT,
                "no fleet state: it needs a filter chain and a store (L3)",
            );
        };
        let store = match self.store() {
            Ok(store) => store,
            Err(resp) => return *resp,
        };
        match fleet.view(store, sluice_store::now_ms()).await {
            Ok(view) => reply(StatusCode::OK, &view),
            Err(e) => error(StatusCode::SERVICE_UNAVAILABLE, e.to_string()),
        }
    }
}

/// The `config` query parameter (YAML or JSON) as the JSON handed to `init`; absent → `null`.
fn config_param(query: Option<&str>) -> Result<String, sluice_filters::ConfigTextError> {
    match query.and_then(|q| {
        form_urlencoded::parse(q.as_bytes())
            .find(|(k, _)| k == "config")
            .map(|(_, v)| v.into_owned())
    }) {
        Some(text) => sluice_filters::config_to_json(&text),
        None => Ok("null".into()),
    }
}

/// A request body up to [`MAX_MODULE_BYTES`].
async fn read_body(req: Request<Incoming>) -> Result<Bytes, Refused> {
    match Limited::new(req.into_body(), MAX_MODULE_BYTES)
        .collect()
        .await
    {
        Ok(b) => Ok(b.to_bytes()),
        Err(e) => Err(Box::new(bad_request(
            Step::Upload,
            format!(
                "could not read the body (at most {} MiB): {e}",
                MAX_MODULE_BYTES >> 20
            ),
        ))),
    }
}

/// The `module` and `config` parts of a `multipart/form-data` upload.
async fn multipart(body: Bytes, boundary: String) -> Result<(Bytes, Option<String>), SwapError> {
    let upload = |message: String| SwapError::new(Step::Upload, message);
    let parts = sluice_http::multipart::parts(body, boundary, &["module", "config"])
        .await
        .map_err(|e| upload(e.to_string()))?;
    let (mut module, mut config) = (None, None);
    for (name, bytes) in parts {
        if name == "module" {
            module = Some(bytes);
            continue;
        }
        let text = std::str::from_utf8(&bytes)
            .map_err(|e| SwapError::new(Step::Config, format!("config is not UTF-8: {e}")))?;
        let json = sluice_filters::config_to_json(text)
            .map_err(|e| SwapError::new(Step::Config, e.to_string()))?;
        config = Some(json);
    }
    let module = module.ok_or_else(|| upload("multipart upload without a 'module' part".into()))?;
    Ok((module, config))
}
