//! `proxy.serving: per_core`: a thread per core serves client connections, each with its own
//! backend pool, over the same routing and caches.
use std::time::Duration;

use http::StatusCode;
use sluice_config::Serving;
use sluice_testkit::*;

/// Held by every test of this binary that runs per-core workers: the threads are counted by
/// name, so two such gateways must not overlap.
pub static WORKERS: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// Threads of this process named `sluice-worker-*` (the per-core workers of any gateway in it).
fn worker_threads() -> usize {
    std::fs::read_dir("/proc/self/task")
        .unwrap()
        .filter_map(|t| std::fs::read_to_string(t.ok()?.path().join("comm")).ok())
        .filter(|name| name.starts_with("sluice-worker-"))
        .count()
}

#[tokio::test]
async fn per_core_workers_route_and_follow_queries_then_stop() {
    let _alone = WORKERS.lock().await;
    let a = cluster("adhoc-1").await;
    let b = cluster("adhoc-2").await;
    let mut cfg = config(&[
        ("adhoc-1", "adhoc", &a.url()),
        ("adhoc-2", "adhoc", &b.url()),
    ]);
    cfg.proxy.serving = Serving::PerCore;
    cfg.proxy.workers = 2;
    let gw = std::sync::Arc::new(Gw::start(cfg).await);
    // the two workers serve (not tokio's shared threads); other tests of this binary may run
    // their own, so at least two
    assert!(worker_threads() >= 2, "per-core workers running");
    let queries: Vec<_> = (0..12)
        .map(|i| {
            let gw = gw.clone();
            tokio::spawn(async move {
                let sql = format!("SELECT {i} -- fake:pages=4");
                let (status, first) = gw.submit(&sql, &[]).await;
                assert_eq!(status, StatusCode::OK);
                let (rows, last) = gw.drain(&first).await;
                assert_eq!(
                    (rows.len(), &last["stats"]["state"]),
                    (8, &"FINISHED".into())
                );
                owner(&rows)
            })
        })
        .collect();
    let mut owners = Vec::new();
    for q in queries {
        owners.push(q.await.unwrap());
    }
    assert!(
        owners.iter().all(|o| o == "adhoc-1" || o == "adhoc-2"),
        "{owners:?}"
    );
    // every follow-up reached the backend that ran its query
    assert_eq!(a.unknown_query_requests() + b.unknown_query_requests(), 0);
    let addr = gw.gateway.proxy_addr;
    let gw = std::sync::Arc::into_inner(gw).expect("queries done");
    tokio::time::timeout(Duration::from_secs(20), gw.stop())
        .await
        .expect("the workers stop with the gateway");
    assert!(
        tokio::net::TcpStream::connect(addr).await.is_err(),
        "nothing listens"
    );
    // and their threads end (each signals just before it returns)
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while worker_threads() > 0 {
        assert!(
            std::time::Instant::now() < deadline,
            "worker threads still alive"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}
