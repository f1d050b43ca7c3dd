//! Query-count routing, as Trino Gateway's QueryCountBasedRouter: among the healthy backends of the
//! group, prefer the one where this user has the fewest queued queries, then the fewest queued
//! queries overall, then the fewest running.
//!
//! Between two stats polls the counts are stale, so every decision is also counted in the shared
//! cache (`increment` with a short TTL, one key per backend and one per backend and user); the
//! next decision — on this gateway instance or another — adds those counts, so a burst spreads
//! instead of herding onto the backend that looked idle.
//!
//! Config (all optional): `{ "window_seconds": 3 }` — how long a decision is counted; set it to
//! about the health poll interval.
use std::sync::OnceLock;

use sluice_filter_sdk::{export_filter, Backend, Ctx, Decision, QueryRequest};

#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct Config {
    #[serde(default = "default_window")]
    window_seconds: u32,
}

fn default_window() -> u32 {
    3
}

static CONFIG: OnceLock<Config> = OnceLock::new();

fn init(config: &str) -> Result<(), String> {
    let parsed: Config = if config.trim().is_empty() || config.trim() == "null" {
        Config { window_seconds: default_window() }
    } else {
        serde_json::from_str(config).map_err(|e| format!("query-count config: {e}"))?
    };
    if parsed.window_seconds == 0 {
        return Err("query-count config: window_seconds must be at least 1".into());
    }
    let _ = CONFIG.set(parsed);
    Ok(())
}

/// The ordering key of a backend: (user queued, queued, running), each including recent decisions.
fn load(b: &Backend, user: Option<&str>, ctx: &Ctx) -> (i64, i64, i64) {
    let routed = ctx.counter(&format!("routed:{}", b.name));
    let user_routed = user
        .map(|u| ctx.counter(&format!("routed:{}:{u}", b.name)))
        .unwrap_or(0);
    (
        b.user_queued_queries as i64 + user_routed,
        b.queued_queries as i64 + routed,
        b.running_queries as i64,
    )
}

fn route(req: &QueryRequest, ctx: &Ctx) -> Decision {
    let user = req.user.as_deref();
    let Some(best) = ctx
        .routable_backends()
        .into_iter()
        .map(|b| (load(&b, user, ctx), b))
        .min_by(|(a, _), (b, _)| a.cmp(b))
        .map(|(_, b)| b)
    else {
        return Decision::Pass;
    };
    let window = CONFIG.get().map(|c| c.window_seconds).unwrap_or(default_window());
    ctx.increment(&format!("routed:{}", best.name), 1, window);
    if let Some(u) = user {
        ctx.increment(&format!("routed:{}:{u}", best.name), 1, window);
    }
    Decision::RouteTo(best.name)
}

export_filter!(route, init = init);
