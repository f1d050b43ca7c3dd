//! Hot swap beyond one upload: config-only changes, chain order, several instances following one
//! store (pub/sub announcements and the L3 poll), an instance that cannot load a version, and the
//! watched directory.
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::{Method, StatusCode};
use serde_json::{json, Value};
use sluice_config::Config;

use crate::admin::{with_tokens, ADMIN, VIEWER};
use crate::filters::builtin_slot;
use sluice_testkit::*;

/// Two clusters, `adhoc-1` in group adhoc and `etl-1` in group etl, and a SQLite store of the
/// test's own that every instance of the test shares (removed on drop).
struct TwoGroups {
    a: FakeTrino,
    e: FakeTrino,
    store: TempSqlite,
}

impl TwoGroups {
    async fn start(name: &str) -> TwoGroups {
        TwoGroups {
            a: cluster("adhoc-1").await,
            e: cluster("etl-1").await,
            store: temp_sqlite(name),
        }
    }

    /// A config over them with admin tokens and `chain`; fleet polling off (each test turns on
    /// what it proves).
    fn config(&self, chain: Vec<sluice_config::SlotConfig>) -> Config {
        let (a, e) = (self.a.url(), self.e.url());
        let mut c = with_tokens(config(&[("adhoc-1", "adhoc", &a), ("etl-1", "etl", &e)]));
        c.store.url = self.store.url.clone();
        c.routing.chain = chain;
        c.filters.poll_interval_ms = 0;
        c
    }
}

/// A routing-rules slot that sends everything to `group`.
fn to_group(slot: &str, group: &str) -> sluice_config::SlotConfig {
    builtin_slot(
        slot,
        "routing-rules",
        &format!("{{default_group: {group}, rules: []}}"),
    )
}

/// Run one query; the cluster that answered it.
async fn lands(gw: &Gw) -> String {
    let (status, q) = gw.submit("SELECT 1", &[]).await;
    assert_eq!(status, StatusCode::OK, "{q}");
    owner(&gw.drain(&q).await.0)
}

async fn filters(gw: &Gw) -> Vec<Value> {
    let (status, v) = gw
        .admin_as(Method::GET, "/api/v1/filters", Some(VIEWER), Bytes::new())
        .await;
    assert_eq!(status, StatusCode::OK, "{v}");
    v.as_array().unwrap().clone()
}

async fn slot(gw: &Gw, name: &str) -> Value {
    filters(gw)
        .await
        .into_iter()
        .find(|f| f["slot"] == name)
        .unwrap_or(Value::Null)
}

pub(crate) async fn admin(gw: &Gw, method: Method, path: &str, body: &[u8]) -> (StatusCode, Value) {
    gw.admin_as(method, path, Some(ADMIN), Bytes::copy_from_slice(body))
        .await
}

/// How long a condition may take before the test fails: a bound on hanging, not a claim about
/// speed (the swap-to-visible figures come from `tests/e2e/test_hot_swap.py` and the benchmarks).
pub(crate) const PATIENCE: Duration = Duration::from_secs(20);

/// Poll `probe` every 5 ms until it holds; how long that took. Panics after `limit`.
pub(crate) async fn within<F, Fut>(limit: Duration, what: &str, mut probe: F) -> Duration
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let started = Instant::now();
    while started.elapsed() < limit {
        if probe().await {
            return started.elapsed();
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    panic!("{what}: not within {limit:?}");
}

#[tokio::test]
async fn a_config_change_runs_the_same_module_as_a_new_version() {
    let fx = TwoGroups::start("reconfigure").await;

    let gw = Gw::start(fx.config(vec![to_group("rules", "adhoc")])).await;
    wait_drained(&gw).await;
    assert_eq!(lands(&gw).await, "adhoc-1");
    let before = slot(&gw, "rules").await;

    let (status, v) = admin(
        &gw,
        Method::PUT,
        "/api/v1/filters/rules/config",
        b"{default_group: etl, rules: []}",
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{v}");
    assert_eq!(v["version"], 1);
    assert_eq!(v["sha256"], before["sha256"], "same module");
    assert_eq!(lands(&gw).await, "etl-1");
    let after = slot(&gw, "rules").await;
    assert_eq!(
        after["config"],
        json!({"default_group": "etl", "rules": []})
    );

    // a config the filter refuses: named step, nothing changes
    let (status, v) = admin(
        &gw,
        Method::PUT,
        "/api/v1/filters/rules/config",
        b"{rules: 5}",
    )
    .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{v}");
    assert_eq!(v["step"], "init");
    let (status, v) = admin(
        &gw,
        Method::PUT,
        "/api/v1/filters/rules/config",
        b"{rules: [",
    )
    .await;
    assert_eq!(
        (status, v["step"].as_str()),
        (StatusCode::BAD_REQUEST, Some("config")),
        "{v}"
    );
    let (status, _) = admin(&gw, Method::PUT, "/api/v1/filters/nope/config", b"{}").await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(slot(&gw, "rules").await["version"], 1);
    assert_eq!(lands(&gw).await, "etl-1");
    // a viewer may not change it
    let (status, _) = gw
        .admin_as(
            Method::PUT,
            "/api/v1/filters/rules/config",
            Some(VIEWER),
            Bytes::from_static(b"{}"),
        )
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    gw.stop().await;
}

#[tokio::test]
async fn a_multipart_upload_carries_module_and_config() {
    let fx = TwoGroups::start("multipart").await;

    let gw = Gw::start(fx.config(vec![to_group("rules", "adhoc")])).await;
    wait_drained(&gw).await;
    let module = sluice_filters::builtin::bytes("routing-rules").unwrap();
    let (ct, body) = sluice_http::multipart::upload(module, "default_group: etl\nrules: []\n");
    let uri = format!("http://{}/api/v1/filters/rules", gw.gateway.admin_addr);
    let req = http::Request::put(uri)
        .header("authorization", format!("Bearer {ADMIN}"))
        .header("content-type", ct)
        .body(sluice_http::full_body(body))
        .unwrap();
    let (status, body) = send(&gw.client, req).await;
    assert_eq!(status, StatusCode::OK, "{}", String::from_utf8_lossy(&body));
    assert_eq!(lands(&gw).await, "etl-1");
    gw.stop().await;
}

#[tokio::test]
async fn the_chain_order_changes_and_other_instances_follow_it_by_polling() {
    let fx = TwoGroups::start("order").await;

    // use-group narrows and goes on: the last slot of the chain has the final word
    let mut cfg = fx.config(vec![
        to_group("to-etl", "etl"),
        to_group("to-adhoc", "adhoc"),
    ]);
    cfg.filters.poll_interval_ms = 200;
    let one = Gw::start(cfg.clone()).await;
    let two = Gw::start(cfg).await;
    wait_drained(&one).await;
    assert_eq!(lands(&one).await, "adhoc-1");

    let (status, v) = admin(
        &one,
        Method::PUT,
        "/api/v1/chain",
        br#"{"order": ["to-adhoc", "to-etl"]}"#,
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{v}");
    assert_eq!(v["order"], json!(["to-adhoc", "to-etl"]));
    assert_eq!(lands(&one).await, "etl-1");
    let took = within(PATIENCE, "instance two follows the order", || async {
        admin(&two, Method::GET, "/api/v1/chain", b"").await.1["order"]
            == json!(["to-adhoc", "to-etl"])
    })
    .await;
    eprintln!("chain order visible on instance two after {took:?} (poll interval 200 ms)");
    assert_eq!(lands(&two).await, "etl-1");

    for bad in [
        &br#"{"order": ["to-adhoc"]}"#[..],
        br#"["to-adhoc", "to-etl", "x"]"#,
        b"not json",
    ] {
        let (status, v) = admin(&one, Method::PUT, "/api/v1/chain", bad).await;
        assert!(status.is_client_error(), "{status} {v}");
        assert_eq!(v["step"], "order");
    }
    assert_eq!(lands(&one).await, "etl-1");
    one.stop().await;
    two.stop().await;
}

#[tokio::test]
async fn an_upload_reaches_every_instance_by_announcement_or_by_poll() {
    let redis = RedisServer::start().await;
    let fx = TwoGroups::start("announce").await;

    let base = fx.config(vec![builtin_slot("balance", "query-count", "{}")]);
    let mut announced = base.clone();
    announced.cache.valkey.enabled = true;
    announced.cache.valkey.url = redis.url();
    // no poll: only the announcement can move instance two
    let one = Gw::start(announced.clone()).await;
    let two = Gw::start(announced).await;
    // no Valkey at all: only the poll can move instance three
    let mut polled = base;
    polled.filters.poll_interval_ms = 300;
    let three = Gw::start(polled).await;
    for gw in [&one, &two, &three] {
        wait_drained(gw).await;
    }
    within(PATIENCE, "instance two subscribed", || async {
        admin(&two, Method::GET, "/api/v1/fleet", b"").await.1["subscribed"] == true
    })
    .await;

    let module = sluice_filters::builtin::bytes("stochastic").unwrap();
    let (status, v) = admin(&one, Method::PUT, "/api/v1/filters/balance", module).await;
    assert_eq!(status, StatusCode::OK, "{v}");
    let sha = v["sha256"].clone();
    let via_pubsub = within(PATIENCE, "instance two runs the upload", || async {
        slot(&two, "balance").await["sha256"] == sha
    })
    .await;
    let via_poll = within(PATIENCE, "instance three runs the upload", || async {
        slot(&three, "balance").await["sha256"] == sha
    })
    .await;
    eprintln!("swap visible: announced {via_pubsub:?}, polled {via_poll:?}");
    assert_eq!(slot(&two, "balance").await["version"], 1);

    // every instance reports what it runs: the fleet view converges on version 1
    let fleet = within(PATIENCE, "the fleet view converges", || async {
        let v = admin(&three, Method::GET, "/api/v1/fleet", b"").await.1;
        v["converged"] == true && v["instances"].as_array().is_some_and(|i| i.len() == 3)
    })
    .await;
    assert!(fleet < Duration::from_secs(3));
    let (_, view) = admin(&one, Method::GET, "/api/v1/fleet", b"").await;
    for i in view["instances"].as_array().unwrap() {
        assert_eq!(i["slots"][0]["sha256"], sha, "{view}");
        assert_eq!(i["slots"][0]["current"], true);
    }
    // a rollback travels the same way (back to the config file's module is not stored: version 0
    // is not a stored version, so upload a second one and roll back to the first)
    let (status, _) = admin(
        &one,
        Method::PUT,
        "/api/v1/filters/balance",
        sluice_filters::builtin::bytes("query-count").unwrap(),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    let (status, v) = admin(&two, Method::POST, "/api/v1/filters/balance/rollback", b"").await;
    assert_eq!(status, StatusCode::OK, "{v}");
    assert_eq!(v["version"], 1);
    within(
        PATIENCE,
        "instance one follows a rollback made on two",
        || async { slot(&one, "balance").await["version"] == 1 },
    )
    .await;
    for gw in [one, two, three] {
        gw.stop().await;
    }
}

#[tokio::test]
async fn an_instance_that_cannot_load_a_version_keeps_its_own_and_says_so() {
    let fx = TwoGroups::start("cannot-load").await;

    let mut roomy = fx.config(vec![builtin_slot("balance", "query-count", "{}")]);
    roomy.filters.poll_interval_ms = 200;
    roomy.filters.memory_limit_mb = 64;
    let mut tight = roomy.clone();
    tight.filters.memory_limit_mb = 16;
    let one = Gw::start(roomy).await;
    let two = Gw::start(tight).await;
    wait_drained(&one).await;
    let old = slot(&two, "balance").await["sha256"].clone();

    // keeps 24 MiB from init on: fits in 64 MiB, not in 16
    let hostile = std::fs::read(sluice_testkit::HOSTILE_WASM).unwrap();
    let (status, v) = admin(
        &one,
        Method::PUT,
        "/api/v1/filters/balance?config=hoard-init",
        &hostile,
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{v}");
    within(PATIENCE, "instance two reports the failure", || async {
        let v = admin(&one, Method::GET, "/api/v1/fleet", b"").await.1;
        v["instances"]
            .as_array()
            .is_some_and(|i| i.iter().any(|i| i["slots"][0]["error"].is_string()))
    })
    .await;
    let (_, view) = admin(&one, Method::GET, "/api/v1/fleet", b"").await;
    assert_eq!(view["converged"], false, "{view}");
    let failing: Vec<&Value> = view["instances"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|i| i["slots"][0]["error"].is_string())
        .collect();
    assert_eq!(failing.len(), 1, "{view}");
    let err = failing[0]["slots"][0]["error"].as_str().unwrap();
    assert!(err.contains("version 1") && err.contains("init"), "{err}");
    assert_eq!(
        failing[0]["slots"][0]["sha256"], old,
        "it keeps the module it had"
    );
    assert_eq!(slot(&two, "balance").await["sha256"], old);
    assert_eq!(lands(&two).await, "adhoc-1", "and keeps serving");

    // the next version loads everywhere, and the failure is gone
    let (status, v) = admin(
        &one,
        Method::PUT,
        "/api/v1/filters/balance",
        sluice_filters::builtin::bytes("stochastic").unwrap(),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{v}");
    within(PATIENCE, "the fleet converges on version 2", || async {
        let v = admin(&one, Method::GET, "/api/v1/fleet", b"").await.1;
        v["converged"] == true
            && v["instances"].as_array().is_some_and(|i| {
                i.len() == 2
                    && i.iter()
                        .all(|i| i["slots"][0]["version"] == 2 && i["slots"][0]["error"].is_null())
            })
    })
    .await;
    one.stop().await;
    two.stop().await;
}

#[tokio::test]
async fn a_module_written_into_the_watched_directory_is_swapped_in() {
    let fx = TwoGroups::start("watch").await;
    let watched = fx.store.dir.join("filters");
    let mut cfg = fx.config(vec![to_group("rules", "adhoc")]);
    cfg.filters.watch_dir = Some(watched.display().to_string());
    let gw = Gw::start(cfg).await;
    wait_drained(&gw).await;
    assert_eq!(lands(&gw).await, "adhoc-1");

    // a module with its config next to it (config first, so the module loads with it)
    std::fs::write(
        watched.join("rules.yaml"),
        "default_group: etl\nrules: []\n",
    )
    .unwrap();
    std::fs::write(
        watched.join("rules.wasm"),
        sluice_filters::builtin::bytes("routing-rules").unwrap(),
    )
    .unwrap();
    within(PATIENCE, "slot 'rules' runs the new config", || async {
        slot(&gw, "rules").await["config"]["default_group"] == "etl"
    })
    .await;
    assert_eq!(lands(&gw).await, "etl-1");
    assert_eq!(
        slot(&gw, "rules").await["version"],
        1,
        "stored like an upload"
    );

    // a new slot is appended to the chain
    std::fs::write(
        watched.join("extra.wasm"),
        sluice_filters::builtin::bytes("stochastic").unwrap(),
    )
    .unwrap();
    within(PATIENCE, "slot 'extra' appears", || async {
        filters(&gw)
            .await
            .iter()
            .map(|f| f["slot"].clone())
            .collect::<Vec<_>>()
            == vec![json!("rules"), json!("extra")]
    })
    .await;

    // a config change alone reloads the module with it
    std::fs::write(
        watched.join("rules.yaml"),
        "default_group: adhoc\nrules: []\n",
    )
    .unwrap();
    within(PATIENCE, "the new config is live", || async {
        slot(&gw, "rules").await["config"]["default_group"] == "adhoc"
    })
    .await;
    assert_eq!(lands(&gw).await, "adhoc-1");

    // garbage is refused; the running version stays
    let running = slot(&gw, "rules").await;
    std::fs::write(watched.join("rules.wasm"), b"not a module").unwrap();
    std::fs::write(watched.join("notes.txt"), b"ignored").unwrap();
    // files are taken in the order they went quiet: once a module written after the garbage is
    // live, the garbage has been tried (and refused)
    std::fs::write(
        watched.join("marker.wasm"),
        sluice_filters::builtin::bytes("query-count").unwrap(),
    )
    .unwrap();
    within(PATIENCE, "slot 'marker' appears", || async {
        slot(&gw, "marker").await != Value::Null
    })
    .await;
    assert_eq!(slot(&gw, "rules").await["sha256"], running["sha256"]);
    assert_eq!(slot(&gw, "rules").await["version"], running["version"]);
    assert_eq!(lands(&gw).await, "adhoc-1");
    gw.stop().await;
}

#[tokio::test]
async fn uploads_are_stored_while_query_history_is_being_written() {
    // SQLite: a transaction that read before writing used to fail at once with "database is
    // locked" when the history writer committed in between; uploads were refused under load
    let fx = TwoGroups::start("busy-store").await;

    let mut cfg = fx.config(vec![builtin_slot("balance", "query-count", "{}")]);
    cfg.store.flush_interval_ms = 5; // the writer commits often
    let gw = std::sync::Arc::new(Gw::start(cfg).await);
    wait_drained(&gw).await;
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let mut load = Vec::new();
    for _ in 0..8 {
        let (gw, stop) = (gw.clone(), stop.clone());
        load.push(tokio::spawn(async move {
            let mut n = 0;
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                let (status, _) = gw.submit("SELECT 1", &[]).await;
                assert_eq!(status, StatusCode::OK);
                n += 1;
            }
            n
        }));
    }
    let modules = ["stochastic", "query-count"];
    let mut refused = Vec::new();
    for i in 0..12 {
        let bytes = sluice_filters::builtin::bytes(modules[i % 2]).unwrap();
        let (status, v) = admin(&gw, Method::PUT, "/api/v1/filters/balance", bytes).await;
        if status != StatusCode::OK {
            refused.push(v);
        }
    }
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let mut queries = 0;
    for l in load {
        queries += l.await.unwrap();
    }
    assert!(
        queries > 50,
        "the history writer was busy: {queries} queries"
    );
    assert!(
        refused.is_empty(),
        "uploads refused under load: {refused:?}"
    );
    assert_eq!(slot(&gw, "balance").await["version"], 12);
}
