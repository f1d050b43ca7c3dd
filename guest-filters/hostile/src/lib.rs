//! A filter that misbehaves on purpose, for the gateway's sandbox tests. Its config (a JSON
//! string) picks the misbehaviour: `"spin"` loops forever, `"bomb"` allocates until it runs out of
//! memory, `"trap"` panics, `"ghost"` routes to a backend that does not exist, `"unhealthy"`
//! routes to the first unhealthy backend, `"reject-init"` fails `init`, `"spin-init"` loops in
//! `init`, `"hoard-init"` keeps 24 MiB from `init` on (it loads only under a larger memory
//! limit), `"echo-user"` rejects users named `reject-*` (403) and passes the rest, `"script"` runs the
//! query text as a script of host calls (see [`script`]), `"fine"` passes.
use std::sync::Mutex;

mod script;

use sluice_filter_sdk::{export_filter, Ctx, Decision, Health, InitInfo, QueryRequest};

static MODE: Mutex<String> = Mutex::new(String::new());
static HOARD: Mutex<Vec<u8>> = Mutex::new(Vec::new());

fn init(config: &str) -> Result<InitInfo, String> {
    let mode = config.trim().trim_matches('"').to_string();
    match mode.as_str() {
        "reject-init" => return Err("hostile filter refuses this config".into()),
        "spin-init" => loop {
            std::hint::black_box(());
        },
        "hoard-init" => *HOARD.lock().unwrap() = vec![1u8; 24 << 20],
        _ => {}
    }
    *MODE.lock().unwrap() = mode;
    Ok(InitInfo {
        wants_sql_objects: false,
    })
}

fn route(req: &QueryRequest, ctx: &Ctx) -> Decision {
    let mode = MODE.lock().unwrap().clone();
    match mode.as_str() {
        "spin" => {
            let mut x: u64 = 0;
            loop {
                x = std::hint::black_box(x.wrapping_add(1));
            }
        }
        "bomb" => {
            let mut hoard: Vec<Vec<u8>> = Vec::new();
            loop {
                hoard.push(vec![1u8; 1 << 20]);
                std::hint::black_box(&hoard);
            }
        }
        "trap" => panic!("hostile filter traps"),
        "ghost" => Decision::RouteTo("no-such-backend".into()),
        "unhealthy" => ctx
            .backends(ctx.group())
            .into_iter()
            .find(|b| b.health != Health::Healthy)
            .map(|b| Decision::RouteTo(b.name))
            .unwrap_or(Decision::Pass),
        "echo-user" => match &req.user {
            Some(u) if u.starts_with("reject-") => Decision::Reject(sluice_filter_sdk::Rejection {
                status: 403,
                message: format!("user {u} is not allowed"),
            }),
            _ => Decision::Pass,
        },
        "script" => script::run(&req.query_text, ctx),
        _ => Decision::Pass,
    }
}

export_filter!(route, init = init);
