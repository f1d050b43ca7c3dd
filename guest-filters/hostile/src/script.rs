//! The `"script"` mode: the query text is a JSON script of host calls and a decision, so a test
//! can drive the host imports with any values a guest could send (property tests of the filter
//! boundary). `report` answers 499 with what the calls returned, as JSON.
use serde::Deserialize;
use serde_json::{json, Value};
use sluice_filter_sdk::{Ctx, Decision, Level, Rejection};

/// One host call.
#[derive(Deserialize)]
#[serde(rename_all = "snake_case")]
enum Op {
    Set {
        key: String,
        value: Vec<u8>,
        ttl: u32,
    },
    /// `set` of `len` copies of `byte` (values too long to spell out in a query text).
    Fill {
        key: String,
        byte: u8,
        len: u32,
        ttl: u32,
    },
    Get {
        key: String,
    },
    GetMany {
        keys: Vec<String>,
    },
    Delete {
        key: String,
    },
    Increment {
        key: String,
        delta: i64,
        ttl: u32,
    },
    Backends {
        group: String,
    },
    Groups,
    Log {
        level: u8,
        message: String,
    },
}

/// What to answer after the calls.
#[derive(Deserialize)]
#[serde(rename_all = "snake_case")]
enum Decide {
    RouteTo(String),
    UseGroup(String),
    Reject { status: u16, message: String },
    Pass,
    Report,
}

#[derive(Deserialize)]
struct Script {
    ops: Vec<Op>,
    decide: Decide,
}

/// Run the script in `text`; text that is no script passes.
pub fn run(text: &str, ctx: &Ctx) -> Decision {
    let Ok(script) = serde_json::from_str::<Script>(text) else {
        return Decision::Pass;
    };
    let seen: Vec<Value> = script.ops.into_iter().map(|op| call(op, ctx)).collect();
    match script.decide {
        Decide::RouteTo(b) => Decision::RouteTo(b),
        Decide::UseGroup(g) => Decision::UseGroup(g),
        Decide::Reject { status, message } => Decision::Reject(Rejection { status, message }),
        Decide::Pass => Decision::Pass,
        Decide::Report => Decision::Reject(Rejection {
            status: 499,
            message: Value::Array(seen).to_string(),
        }),
    }
}

fn call(op: Op, ctx: &Ctx) -> Value {
    match op {
        Op::Set { key, value, ttl } => {
            ctx.cache_set(&key, &value, ttl);
            Value::Null
        }
        Op::Fill {
            key,
            byte,
            len,
            ttl,
        } => {
            ctx.cache_set(&key, &vec![byte; len as usize], ttl);
            Value::Null
        }
        Op::Get { key } => json!(ctx.cache_get(&key)),
        Op::GetMany { keys } => json!(ctx.cache_get_many(&keys)),
        Op::Delete { key } => {
            ctx.cache_delete(&key);
            Value::Null
        }
        Op::Increment { key, delta, ttl } => json!(ctx.increment(&key, delta, ttl)),
        Op::Backends { group } => {
            json!(ctx
                .backends(&group)
                .into_iter()
                .map(|b| b.name)
                .collect::<Vec<_>>())
        }
        Op::Groups => json!(ctx.groups()),
        Op::Log { level, message } => {
            let level = match level % 5 {
                0 => Level::Trace,
                1 => Level::Debug,
                2 => Level::Info,
                3 => Level::Warn,
                _ => Level::Error,
            };
            ctx.log(level, &message);
            Value::Null
        }
    }
}
