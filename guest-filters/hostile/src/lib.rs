//! A filter that misbehaves on purpose, for the gateway's sandbox tests. Its config (a JSON
//! string) picks the misbehaviour: `"spin"` loops forever, `"bomb"` allocates until it runs out of
//! memory, `"trap"` panics, `"ghost"` routes to a backend that does not exist, `"unhealthy"`
//! routes to the first unhealthy backend, `"reject-init"` fails `init`, `"spin-init"` loops in
//! `init`, `"leak"` remembers the previous request's user in a static and rejects with it,
//! `"fine"` passes.
use std::sync::Mutex;

use sluice_filter_sdk::{export_filter, Ctx, Decision, Health, QueryRequest, Rejection};

static MODE: Mutex<String> = Mutex::new(String::new());
static LAST_USER: Mutex<Option<String>> = Mutex::new(None);

fn init(config: &str) -> Result<(), String> {
    let mode = config.trim().trim_matches('"').to_string();
    match mode.as_str() {
        "reject-init" => return Err("hostile filter refuses this config".into()),
        "spin-init" => loop {
            std::hint::black_box(());
        },
        _ => {}
    }
    *MODE.lock().unwrap() = mode;
    Ok(())
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
        "leak" => {
            let previous = LAST_USER.lock().unwrap().replace(req.user.clone().unwrap_or_default());
            match previous {
                Some(p) => Decision::Reject(Rejection { status: 418, message: format!("previous user: {p}") }),
                None => Decision::Pass,
            }
        }
        _ => Decision::Pass,
    }
}

export_filter!(route, init = init);
