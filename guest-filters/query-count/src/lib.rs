//! Query-count routing, as Trino Gateway's QueryCountBasedRouter: among the healthy backends of the
//! group, prefer the one where this user has the fewest queued queries, then the fewest queued
//! queries overall, then the fewest running.
//!
//! Between two stats polls the counts are stale, so every decision is also counted in the shared
//! cache (`increment`, one key per backend and one per backend and user); the next decision — on
//! this gateway instance or another — adds those counts, so a burst spreads instead of herding
//! onto the backend that looked idle. Counters live in time windows of `window_seconds` (the key
//! names the window), so they reset each window even under steady traffic — a counter whose TTL
//! were refreshed by every increment would grow for ever.
//!
//! Config (all optional): `{ "window_seconds": 3 }` — how long a decision is counted; set it to
//! about the health poll interval.
use std::sync::OnceLock;

use sluice_filter_sdk::{export_filter, Backend, Ctx, Decision, InitInfo, QueryRequest};

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

fn init(config: &str) -> Result<InitInfo, String> {
    let parsed: Config = if config.trim().is_empty() || config.trim() == "null" {
        Config {
            window_seconds: default_window(),
        }
    } else {
        serde_json::from_str(config).map_err(|e| format!("query-count config: {e}"))?
    };
    if parsed.window_seconds == 0 {
        return Err("query-count config: window_seconds must be at least 1".into());
    }
    let _ = CONFIG.set(parsed);
    Ok(InitInfo {
        wants_sql_objects: false,
    })
}

fn route(req: &QueryRequest, ctx: &Ctx) -> Decision {
    let user = req.user.as_deref();
    let backends: Vec<Backend> = ctx.routable_backends();
    if backends.is_empty() {
        return Decision::Pass;
    }
    let window = CONFIG
        .get()
        .map(|c| c.window_seconds)
        .unwrap_or(default_window());
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    let slot = now / window as u64;
    // one cache round trip for the counters of this window: per backend, then per backend and user
    let mut keys: Vec<String> = backends
        .iter()
        .map(|b| format!("routed:{slot}:{}", b.name))
        .collect();
    if let Some(u) = user {
        keys.extend(
            backends
                .iter()
                .map(|b| format!("routed:{slot}:{}:{u}", b.name)),
        );
    }
    let counts = ctx.counters(&keys);
    let n = backends.len();
    // the ordering key: (user queued, queued, running), each including recent decisions
    let load = |i: usize, b: &Backend| {
        let user_routed = if user.is_some() { counts[n + i] } else { 0 };
        (
            b.user_queued_queries as i64 + user_routed,
            b.queued_queries as i64 + counts[i],
            b.running_queries as i64,
        )
    };
    let best = (0..n)
        .min_by_key(|&i| load(i, &backends[i]))
        .expect("at least one backend");
    // the key outlives its window a little, so a read at the boundary still finds it
    ctx.increment(&keys[best], 1, window * 2);
    if user.is_some() {
        ctx.increment(&keys[n + best], 1, window * 2);
    }
    Decision::RouteTo(backends[best].name.clone())
}

export_filter!(route, init = init);
