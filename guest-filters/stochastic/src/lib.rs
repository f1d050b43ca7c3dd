//! Uniform random choice among the healthy, active backends of the query's group.
use sluice_filter_sdk::{export_filter, Ctx, Decision, QueryRequest};

fn route(_req: &QueryRequest, ctx: &Ctx) -> Decision {
    let backends = ctx.routable_backends();
    if backends.is_empty() {
        return Decision::Pass;
    }
    // Rejection sampling keeps the choice exactly uniform.
    let n = backends.len() as u64;
    let zone = u64::MAX - (u64::MAX % n);
    loop {
        let Ok(r) = getrandom::u64() else {
            return Decision::Pass;
        };
        if r < zone {
            return Decision::RouteTo(backends[(r % n) as usize].name.clone());
        }
    }
}

export_filter!(route, sql_objects = false);
