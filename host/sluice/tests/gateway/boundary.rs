//! The filter boundary as properties, with a real guest: the hostile filter's `script` mode runs
//! any sequence of host calls a test generates (keys of any length and text, values of any bytes,
//! over-long ones, counters, cluster reads) and answers any decision (statuses a rejection may not
//! use, backends and groups that do not exist). The host must answer each call as a model of the
//! cache says, and the gateway must follow a decision that can be followed and route natively,
//! counting a fault, when it cannot — never fail the query for it.
use std::collections::HashMap;

use http::StatusCode;
use proptest::prelude::*;
use proptest::strategy::ValueTree;
use proptest::test_runner::TestRunner;
use serde_json::{json, Value};
use sluice_config::SlotConfig;

use sluice_testkit::*;

const MAX_KEY: usize = sluice_filters::cache::MAX_KEY;
const MAX_VALUE: usize = sluice_filters::cache::MAX_VALUE;

fn key() -> impl Strategy<Value = String> {
    prop_oneof![
        4 => "[abc]{1,2}",               // few keys, so calls meet
        2 => "\\PC{0,12}",               // any text
        1 => Just("k".repeat(MAX_KEY)),  // the longest allowed
        1 => Just("k".repeat(MAX_KEY + 1)),
    ]
}

fn value() -> impl Strategy<Value = Vec<u8>> {
    prop::collection::vec(any::<u8>(), 0..24)
}

fn op() -> impl Strategy<Value = Value> {
    prop_oneof![
        (key(), value(), 0u32..100_000)
            .prop_map(|(k, v, t)| json!({"set": {"key": k, "value": v, "ttl": t}})),
        // values around the limit, made by the guest (too long for a query text)
        (
            key(),
            any::<u8>(),
            prop_oneof![Just(MAX_VALUE), Just(MAX_VALUE + 1)]
        )
            .prop_map(|(k, b, n)| json!({"fill": {"key": k, "byte": b, "len": n, "ttl": 60}})),
        key().prop_map(|k| json!({"get": {"key": k}})),
        prop::collection::vec(key(), 0..4).prop_map(|ks| json!({"get_many": {"keys": ks}})),
        key().prop_map(|k| json!({"delete": {"key": k}})),
        (key(), -1000i64..1000, 0u32..100_000)
            .prop_map(|(k, d, t)| json!({"increment": {"key": k, "delta": d, "ttl": t}})),
        prop_oneof![
            Just("adhoc".to_string()),
            Just("etl".to_string()),
            "\\PC{0,6}"
        ]
        .prop_map(|g| json!({"backends": {"group": g}})),
        Just(json!("groups")),
        (any::<u8>(), "\\PC{0,40}").prop_map(|(l, m)| json!({"log": {"level": l, "message": m}})),
    ]
}

/// What the cache holds, as far as the test knows.
#[derive(Clone, Debug)]
enum Held {
    Bytes(Vec<u8>),
    Count(i64),
    /// Incremented after bytes were set: what it holds is the cache's business.
    Unknown,
}

/// Check one call's answer against the model, and update the model.
fn check(op: &Value, seen: &Value, model: &mut HashMap<String, Held>) {
    let expect_get = |k: &str, model: &HashMap<String, Held>| -> Option<Value> {
        if k.len() > MAX_KEY {
            return Some(Value::Null);
        }
        match model.get(k) {
            None => Some(Value::Null),
            Some(Held::Bytes(v)) => Some(json!(v)),
            Some(_) => None,
        }
    };
    let (name, args) = match op {
        Value::String(s) => (s.as_str(), &Value::Null),
        Value::Object(m) => m.iter().next().map(|(k, v)| (k.as_str(), v)).unwrap(),
        _ => unreachable!(),
    };
    let key = args["key"].as_str().unwrap_or_default().to_string();
    match name {
        "set" | "fill" => {
            let v: Vec<u8> = match name {
                "set" => serde_json::from_value(args["value"].clone()).unwrap(),
                _ => vec![
                    args["byte"].as_u64().unwrap() as u8;
                    args["len"].as_u64().unwrap() as usize
                ],
            };
            if key.len() <= MAX_KEY && v.len() <= MAX_VALUE {
                model.insert(key, Held::Bytes(v));
            }
        }
        "get" => {
            if let Some(want) = expect_get(&key, model) {
                assert_eq!(seen, &want, "get {key:?}");
            }
        }
        "get_many" => {
            let keys = args["keys"].as_array().unwrap();
            let seen = seen.as_array().expect("one answer per key");
            assert_eq!(seen.len(), keys.len(), "get_many answers every key");
            for (k, s) in keys.iter().zip(seen) {
                if let Some(want) = expect_get(k.as_str().unwrap(), model) {
                    assert_eq!(s, &want, "get_many {k}");
                }
            }
        }
        "delete" => {
            if key.len() <= MAX_KEY {
                model.remove(&key);
            }
        }
        "increment" => {
            let delta = args["delta"].as_i64().unwrap();
            if key.len() > MAX_KEY {
                assert_eq!(seen, &json!(0), "increment of an over-long key");
                return;
            }
            let next = match model.get(&key) {
                None => Some(delta),
                Some(Held::Count(n)) => Some(n + delta),
                Some(_) => None,
            };
            match next {
                Some(n) => {
                    assert_eq!(seen, &json!(n), "increment {key:?} by {delta}");
                    model.insert(key, Held::Count(n));
                }
                None => {
                    model.insert(key, Held::Unknown);
                }
            }
        }
        "backends" => {
            let want = match args["group"].as_str().unwrap() {
                "adhoc" => json!(["adhoc-1", "adhoc-2"]),
                "etl" => json!(["etl-1"]),
                _ => json!([]),
            };
            assert_eq!(seen, &want, "backends of {}", args["group"]);
        }
        "groups" => {
            let mut got: Vec<String> = serde_json::from_value(seen.clone()).unwrap();
            got.sort();
            assert_eq!(got, ["adhoc", "etl"]);
        }
        _ => assert_eq!(seen, &Value::Null),
    }
}

async fn scripted_gateway(fakes: &[FakeTrino]) -> Gw {
    let mut c = config(&[
        ("adhoc-1", "adhoc", &fakes[0].url()),
        ("adhoc-2", "adhoc", &fakes[1].url()),
        ("etl-1", "etl", &fakes[2].url()),
    ]);
    c.routing.chain = vec![SlotConfig {
        slot: "script".into(),
        module: sluice_testkit::HOSTILE_WASM.into(),
        config: serde_yaml::Value::String("script".into()),
        limits: Default::default(),
    }];
    c.filters.timeout_ms = 5_000;
    Gw::start(c).await
}

async fn fakes() -> Vec<FakeTrino> {
    vec![
        cluster("adhoc-1").await,
        cluster("adhoc-2").await,
        cluster("etl-1").await,
    ]
}

/// `n` values of `strategy`, from a random seed (a failure prints the case).
fn cases<S: Strategy>(strategy: S, n: usize) -> Vec<S::Value> {
    let mut runner = TestRunner::default();
    (0..n)
        .map(|_| strategy.new_tree(&mut runner).unwrap().current())
        .collect()
}

#[tokio::test]
async fn every_host_call_answers_as_the_cache_model_says() {
    let fakes = fakes().await;
    let gw = scripted_gateway(&fakes).await;
    let scripts = cases(prop::collection::vec(op(), 1..12), 40);
    // one model for the whole run: the cache outlives each query, as it does in production
    let mut model = HashMap::new();
    for ops in scripts {
        let script = json!({"ops": ops, "decide": "report"}).to_string();
        let (status, body) = gw.submit(&script, &[]).await;
        assert_eq!(status.as_u16(), 499, "{body}");
        let seen: Value = serde_json::from_str(body["error"]["message"].as_str().unwrap())
            .unwrap_or_else(|e| panic!("report is JSON ({e}): {body}"));
        let seen = seen.as_array().unwrap();
        assert_eq!(seen.len(), ops.len());
        for (op, s) in ops.iter().zip(seen) {
            check(op, s, &mut model);
        }
    }
    gw.stop().await;
}

fn decision() -> impl Strategy<Value = Value> {
    let name = prop_oneof![
        Just("adhoc-1".to_string()),
        Just("etl-1".to_string()),
        Just("adhoc".to_string()),
        Just("etl".to_string()),
        "\\PC{0,10}",
    ];
    prop_oneof![
        name.clone().prop_map(|b| json!({"route_to": b})),
        name.prop_map(|g| json!({"use_group": g})),
        (prop_oneof![any::<u16>(), 0u16..700], "\\PC{0,60}")
            .prop_map(|(s, m)| json!({"reject": {"status": s, "message": m}})),
        Just(json!("pass")),
    ]
}

#[tokio::test]
async fn any_decision_is_followed_or_routed_natively_never_failed() {
    let fakes = fakes().await;
    let gw = scripted_gateway(&fakes).await;
    for decide in cases(decision(), 60) {
        let script = json!({"ops": [], "decide": decide}).to_string();
        let (status, body) = gw.submit(&script, &[]).await;
        let case = format!("{decide} -> {status} {body}");
        if let Some(r) = decide.get("reject") {
            let wanted = r["status"].as_u64().unwrap() as u16;
            if (400..=599).contains(&wanted) {
                assert_eq!(status.as_u16(), wanted, "{case}");
                assert_eq!(body["error"]["message"], r["message"], "{case}");
                continue;
            }
        }
        assert_eq!(status, StatusCode::OK, "{case}");
        let got = owner(&gw.drain(&body).await.0);
        let want: &[&str] = match (decide.get("route_to"), decide.get("use_group")) {
            (Some(b), _) if b == "adhoc-1" || b == "etl-1" => &[b.as_str().unwrap()][..],
            (_, Some(g)) if g == "etl" => &["etl-1"],
            // the default group, natively
            _ => &["adhoc-1", "adhoc-2"],
        };
        assert!(want.contains(&got.as_str()), "{case}: ran on {got}");
    }
    gw.stop().await;
}
