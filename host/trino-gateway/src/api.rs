//! Trino Gateway's backend API, same paths and JSON, so its users' scripts work by changing only
//! the URL. Every call maps onto a [`Change`] of Sluice's own API (same checks, store, fleet
//! announcement and roles):
//!
//! | Trino Gateway | Sluice |
//! | --- | --- |
//! | `POST /entity?entityType=GATEWAY_BACKEND` | upsert |
//! | `GET /entity/GATEWAY_BACKEND`, `GET /gateway/backend/all` | list |
//! | `GET /gateway/backend/active` | active backends |
//! | `POST /gateway/backend/activate/{name}` | activate |
//! | `POST /gateway/backend/deactivate/{name}` | drain: the same routing as a deactivation (no new queries, running ones finish), and the backend reports `drained` once it runs nothing |
//! | `POST /gateway/backend/modify/add`, `…/update` | add, update (whole) |
//! | `POST /gateway/backend/modify/delete` (body: the name) | remove |
//! | `GET /api/public/backends[/{name}[/state]]` | list, one, its state |
//! | `POST`, `PUT /api/public/backends`, `DELETE /api/public/backends/{name}` | add, update, remove |
use http::{Method, Request, Response, StatusCode};
use hyper::body::Incoming;
use sluice_admin::extension::{
    body_bytes, change_status, error, forced, json_body, reply, Ctx, Extension,
};
use sluice_backends::{Change, ChangeError};
use sluice_config::BackendConfig;
use sluice_http::Body;

use crate::api_wire::{patch_of, state, BackendJson};

/// Whether `path` is one of Trino Gateway's backend endpoints.
pub fn is_trino_gateway_path(path: &str) -> bool {
    path == "/entity"
        || path.starts_with("/entity/")
        || path.starts_with("/gateway/backend/")
        || path == "/api/public/backends"
        || path.starts_with("/api/public/backends/")
}

/// Trino Gateway's backend API, as an [`Extension`] of Sluice's admin API.
pub struct Api;

#[async_trait::async_trait]
impl Extension for Api {
    fn claims(&self, path: &str) -> bool {
        is_trino_gateway_path(path)
    }

    async fn handle(&self, req: Request<Incoming>, ctx: &Ctx<'_>) -> Response<Body> {
        answer(ctx, req).await
    }
}

fn list(ctx: &Ctx<'_>, only_active: bool) -> Response<Body> {
    let list: Vec<BackendJson> = ctx
        .cluster()
        .backends()
        .iter()
        .filter(|b| !only_active || b.accepts_new())
        .map(|b| BackendJson::of(b))
        .collect();
    reply(StatusCode::OK, &list)
}

/// A Trino Gateway backend applied as `make(config)`; the backend as Trino Gateway shows it.
async fn apply(
    ctx: &Ctx<'_>,
    req: Request<Incoming>,
    make: fn(BackendConfig) -> Change,
) -> Response<Body> {
    let headers = req.headers().clone();
    let tg = match json_body::<BackendJson>(req).await {
        Ok(tg) => tg,
        Err(refused) => return *refused,
    };
    let name = tg.name.clone();
    let old = ctx.cluster().get(&name).map(|b| b.config.clone());
    let by = ctx.who(&headers);
    match ctx
        .backends()
        .apply(make(tg.into_config(old.as_ref())), &by)
        .await
    {
        Ok(_) => {
            let shown = ctx.cluster().get(&name).map(|b| BackendJson::of(&b));
            reply(StatusCode::OK, &shown)
        }
        // name the field as Trino Gateway's JSON does
        Err(ChangeError::Invalid(mut invalid)) => {
            invalid.path = match invalid.path.as_str() {
                "url" => "proxyTo".into(),
                "group" => "routingGroup".into(),
                "external_url" => "externalUrl".into(),
                other => other.into(),
            };
            error(StatusCode::BAD_REQUEST, invalid.to_string())
        }
        Err(e) => error(change_status(&e), e.to_string()),
    }
}

async fn set_state(ctx: &Ctx<'_>, headers: &http::HeaderMap, change: Change) -> Response<Body> {
    match ctx.change_backend(change, headers).await {
        Ok(_) => reply(StatusCode::OK, &serde_json::Value::Null),
        Err(refused) => *refused,
    }
}

/// Answer one of Trino Gateway's backend endpoints (see the module's table).
async fn answer(ctx: &Ctx<'_>, req: Request<Incoming>) -> Response<Body> {
    let path = req.uri().path().to_string();
    let query = req.uri().query().unwrap_or("").to_string();
    let method = req.method().clone();
    let headers = req.headers().clone();
    let parts: Vec<&str> = path.split('/').filter(|p| !p.is_empty()).collect();
    let not_found = || {
        error(
            StatusCode::NOT_FOUND,
            format!("no endpoint {method} {path}"),
        )
    };
    match (&method, parts.as_slice()) {
        (&Method::GET, ["entity"]) => reply(StatusCode::OK, &["GATEWAY_BACKEND"]),
        (&Method::POST, ["entity"]) => {
            let entity = form_urlencoded::parse(query.as_bytes())
                .find(|(k, _)| k == "entityType")
                .map(|(_, v)| v.into_owned());
            match entity.as_deref() {
                Some("GATEWAY_BACKEND") => apply(ctx, req, Change::Upsert).await,
                other => error(
                    StatusCode::BAD_REQUEST,
                    format!(
                        "entityType: {} (only GATEWAY_BACKEND is supported)",
                        other.unwrap_or("missing")
                    ),
                ),
            }
        }
        (&Method::GET, ["entity", "GATEWAY_BACKEND"]) => list(ctx, false),
        (&Method::GET, ["entity", other]) => error(
            StatusCode::NOT_FOUND,
            format!("entity type {other}: only GATEWAY_BACKEND is supported"),
        ),
        (&Method::GET, ["gateway", "backend", "all"]) => list(ctx, false),
        (&Method::GET, ["gateway", "backend", "active"]) => list(ctx, true),
        (&Method::POST, ["gateway", "backend", "activate", name]) => {
            let change = Change::Activate(name.to_string());
            set_state(ctx, &headers, change).await
        }
        (&Method::POST, ["gateway", "backend", "deactivate", name]) => {
            let change = Change::Drain(name.to_string());
            set_state(ctx, &headers, change).await
        }
        (&Method::POST, ["gateway", "backend", "modify", "add"]) => {
            apply(ctx, req, Change::Add).await
        }
        (&Method::POST, ["gateway", "backend", "modify", "update"]) => {
            apply(ctx, req, |b| Change::Update(b.name.clone(), patch_of(b))).await
        }
        (&Method::POST, ["gateway", "backend", "modify", "delete"]) => match name_body(req).await {
            Ok(name) => remove(ctx, name, &query, &headers).await,
            Err(refused) => *refused,
        },
        (&Method::GET, ["api", "public", "backends"]) => list(ctx, false),
        (&Method::POST, ["api", "public", "backends"]) => apply(ctx, req, Change::Add).await,
        (&Method::PUT, ["api", "public", "backends"]) => {
            apply(ctx, req, |b| Change::Update(b.name.clone(), patch_of(b))).await
        }
        (&Method::GET, ["api", "public", "backends", name]) => match ctx.cluster().get(name) {
            Some(b) => reply(StatusCode::OK, &BackendJson::of(&b)),
            None => error(StatusCode::NOT_FOUND, format!("no backend named '{name}'")),
        },
        (&Method::GET, ["api", "public", "backends", name, "state"]) => {
            match ctx.cluster().get(name) {
                Some(b) => reply(StatusCode::OK, &state(&b)),
                None => error(StatusCode::NOT_FOUND, format!("no backend named '{name}'")),
            }
        }
        (&Method::DELETE, ["api", "public", "backends", name]) => {
            remove(ctx, name.to_string(), &query, &headers).await
        }
        _ => not_found(),
    }
}

async fn remove(
    ctx: &Ctx<'_>,
    name: String,
    query: &str,
    headers: &http::HeaderMap,
) -> Response<Body> {
    let force = forced(Some(query));
    match ctx
        .change_backend(Change::Remove { name, force }, headers)
        .await
    {
        Ok(_) => reply(StatusCode::OK, &serde_json::Value::Null),
        Err(refused) => *refused,
    }
}

/// The body of `modify/delete`: the name, as plain text or a JSON string.
async fn name_body(req: Request<Incoming>) -> Result<String, Box<Response<Body>>> {
    let bytes = body_bytes(req).await?;
    let text = String::from_utf8_lossy(&bytes).trim().to_string();
    let name = serde_json::from_str::<String>(&text).unwrap_or(text);
    match name.is_empty() {
        true => Err(Box::new(error(
            StatusCode::BAD_REQUEST,
            "body: the name of the backend to delete",
        ))),
        false => Ok(name),
    }
}
