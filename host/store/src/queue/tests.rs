use super::*;
use crate::Store;

fn entry<'a>(id: &'a str, user: &'a str, priority: i64, now: i64) -> NewEntry<'a> {
    NewEntry {
        id,
        slug: "s",
        priority,
        group: "adhoc",
        user,
        source: None,
        query_text: "SELECT 1",
        statement: b"SELECT 1",
        headers: "[]",
        now_ms: now,
        deadline_ms: now + 60_000,
    }
}

const LIMITS: WaitLimits = WaitLimits {
    max_queued: 100,
    group_max_queued: None,
    user_max_queued: None,
};

fn no_user_limit(_: &str) -> Option<u32> {
    None
}

fn ask<'a>(
    id: &'a str,
    user: &'a str,
    seq: Option<i64>,
    rooms: &'a [Room],
    now: i64,
) -> AdmitAsk<'a> {
    AdmitAsk {
        slot_id: id,
        group: "adhoc",
        user,
        priority: 0,
        seq,
        rooms,
        group_max: None,
        user_max: &no_user_limit,
        live_since_ms: now - 10_000,
        now_ms: now,
    }
}

fn rooms(max: u32) -> Vec<Room> {
    vec![
        Room {
            backend: "a".into(),
            max: Some(max),
        },
        Room {
            backend: "b".into(),
            max: Some(max),
        },
    ]
}

async fn slots_stop_at_the_limit_and_move_to_the_backend_with_room(s: Store) {
    let r = rooms(1);
    let now = crate::now_ms();
    assert_eq!(
        s.admit(&ask("q1", "u", None, &r, now)).await.unwrap(),
        Admission::Admitted("a".into())
    );
    // a is full: the next goes to b although the router chose a
    assert_eq!(
        s.admit(&ask("q2", "u", None, &r, now)).await.unwrap(),
        Admission::Admitted("b".into())
    );
    assert_eq!(
        s.admit(&ask("q3", "u", None, &r, now)).await.unwrap(),
        Admission::NoRoom
    );
    s.submitted("q1", "real1", None).await.unwrap();
    assert!(s.release_query("real1").await.unwrap());
    assert!(
        !s.release_query("real1").await.unwrap(),
        "a slot is freed once"
    );
    assert_eq!(
        s.admit(&ask("q3", "u", None, &r, now)).await.unwrap(),
        Admission::Admitted("a".into())
    );
}

async fn waiting_entries_go_first_in_order_of_priority_then_arrival(s: Store) {
    let r = rooms(1);
    let now = crate::now_ms();
    for id in ["x1", "x2"] {
        assert!(matches!(
            s.admit(&ask(id, "u", None, &r, now)).await.unwrap(),
            Admission::Admitted(_)
        ));
    }
    let low = s
        .enqueue(&entry("low", "u", 0, now), LIMITS)
        .await
        .unwrap()
        .unwrap();
    let high = s
        .enqueue(&entry("high", "v", 5, now), LIMITS)
        .await
        .unwrap()
        .unwrap();
    assert!(low < high);
    s.release_slot("x1").await.unwrap();
    // a query that never waited is behind everyone waiting
    assert_eq!(
        s.admit(&ask("new", "w", None, &r, now)).await.unwrap(),
        Admission::Behind
    );
    // `low` arrived first but `high` has the higher priority
    let mut low_ask = ask("low", "u", Some(low), &r, now);
    assert_eq!(s.admit(&low_ask).await.unwrap(), Admission::Behind);
    let mut high_ask = ask("high", "v", Some(high), &r, now);
    high_ask.priority = 5;
    assert_eq!(
        s.admit(&high_ask).await.unwrap(),
        Admission::Admitted("a".into())
    );
    assert_eq!(
        s.admit(&high_ask).await.unwrap(),
        Admission::NotWaiting("admitted".into())
    );
    assert_eq!(s.admit(&low_ask).await.unwrap(), Admission::NoRoom);
    s.release_slot("x2").await.unwrap();
    low_ask.now_ms = now + 1;
    assert_eq!(
        s.admit(&low_ask).await.unwrap(),
        Admission::Admitted("b".into())
    );
    assert!(s.waiting(10).await.unwrap().is_empty());
}

async fn a_user_at_quota_waits_without_holding_up_others(s: Store) {
    let r = rooms(5);
    let now = crate::now_ms();
    let one = |u: &str| (u == "greedy").then_some(1);
    let mut a = ask("g1", "greedy", None, &r, now);
    a.user_max = &one;
    assert!(matches!(s.admit(&a).await.unwrap(), Admission::Admitted(_)));
    let seq = s
        .enqueue(&entry("g2", "greedy", 0, now), LIMITS)
        .await
        .unwrap()
        .unwrap();
    let mut g2 = ask("g2", "greedy", Some(seq), &r, now);
    g2.user_max = &one;
    assert_eq!(s.admit(&g2).await.unwrap(), Admission::UserQuota);
    let mut other = ask("o1", "other", None, &r, now);
    other.user_max = &one;
    assert!(matches!(
        s.admit(&other).await.unwrap(),
        Admission::Admitted(_)
    ));
    // a group limit counts every slot of the group
    let mut capped = ask("o2", "other", None, &r, now);
    capped.group_max = Some(2);
    capped.user_max = &one;
    assert_eq!(s.admit(&capped).await.unwrap(), Admission::GroupFull);
}

async fn waiting_limits_refuse_new_entries(s: Store) {
    let now = crate::now_ms();
    let limits = WaitLimits {
        max_queued: 3,
        group_max_queued: Some(2),
        user_max_queued: Some(1),
    };
    assert!(s
        .enqueue(&entry("a", "u", 0, now), limits)
        .await
        .unwrap()
        .is_ok());
    assert_eq!(
        s.enqueue(&entry("b", "u", 0, now), limits).await.unwrap(),
        Err(QueueFull::User(1))
    );
    assert!(s
        .enqueue(&entry("c", "v", 0, now), limits)
        .await
        .unwrap()
        .is_ok());
    assert_eq!(
        s.enqueue(&entry("d", "w", 0, now), limits).await.unwrap(),
        Err(QueueFull::Group(2))
    );
    assert!(s
        .end_entry("a", "cancelled", "by the client")
        .await
        .unwrap());
    assert!(!s.end_entry("a", "cancelled", "twice").await.unwrap());
    assert!(s
        .enqueue(&entry("d", "w", 0, now), limits)
        .await
        .unwrap()
        .is_ok());
}

async fn sweeping_times_out_abandons_and_fails_what_a_stopped_instance_admitted(s: Store) {
    let r = rooms(1);
    let now = crate::now_ms();
    let mut late = entry("late", "u", 0, now);
    late.deadline_ms = now - 1;
    s.enqueue(&late, LIMITS).await.unwrap().unwrap();
    let mut gone = entry("gone", "u", 0, now - 100_000);
    gone.deadline_ms = now + 100_000;
    s.enqueue(&gone, LIMITS).await.unwrap().unwrap();
    let seq = s
        .enqueue(&entry("stuck", "u", 0, now), LIMITS)
        .await
        .unwrap()
        .unwrap();
    // `late` and `gone` are past their deadline / not polled: they hold nobody up
    assert_eq!(
        s.admit(&ask("stuck", "u", Some(seq), &r, now))
            .await
            .unwrap(),
        Admission::Admitted("a".into())
    );
    let admitted = s.entry("stuck").await.unwrap().unwrap();
    assert!(
        admitted.admitted_turn.unwrap() > seq,
        "arrivals and admissions share one sequence"
    );
    let (t, a, l) = s
        .sweep_queue(now, now - 10_000, now + 1, now - 1_000_000)
        .await
        .unwrap();
    assert_eq!((t, a, l), (1, 1, 1));
    let e = s.poll_entry("stuck", now).await.unwrap().unwrap();
    assert_eq!(e.state, "failed", "never sent twice");
    assert!(e.message.unwrap().contains("stopped"));
    // its slot stays: the cluster may be running it; reconciling decides
    assert_eq!(s.slots().await.unwrap()[0].running, 1);
    assert_eq!(
        s.poll_entry("late", now).await.unwrap().unwrap().state,
        "timed_out"
    );
    assert_eq!(
        s.poll_entry("gone", now).await.unwrap().unwrap().state,
        "abandoned"
    );
}

async fn reconcile_frees_only_old_slots_the_cluster_cannot_be_running(s: Store) {
    let r = vec![Room {
        backend: "a".into(),
        max: Some(10),
    }];
    let now = crate::now_ms();
    for (id, at) in [("old1", now - 9000), ("old2", now - 8000), ("new", now)] {
        assert!(matches!(
            s.admit(&ask(id, "u", None, &r, at)).await.unwrap(),
            Admission::Admitted(_)
        ));
    }
    // the cluster runs 1: two are stale, but only slots older than the cutoff may go
    assert_eq!(s.reconcile("a", 1, now - 5000).await.unwrap(), 2);
    assert_eq!(s.reconcile("a", 1, now - 5000).await.unwrap(), 0);
    assert_eq!(s.slots().await.unwrap()[0].running, 1);
    assert_eq!(
        s.reconcile("a", 0, now - 5000).await.unwrap(),
        0,
        "the young slot stays"
    );
}

/// Instances admitting at once through one database never take more slots than the limit.
async fn concurrent_admissions_never_exceed_the_limit(s: Store) {
    let r = rooms(3);
    let now = crate::now_ms();
    let mut tasks = tokio::task::JoinSet::new();
    for i in 0..40 {
        let (s, r) = (s.clone(), r.clone());
        tasks.spawn(async move {
            s.admit(&ask(&format!("q{i}"), "u", None, &r, now))
                .await
                .unwrap()
        });
    }
    let results = tasks.join_all().await;
    let admitted = results
        .iter()
        .filter(|a| matches!(a, Admission::Admitted(_)))
        .count();
    assert_eq!(admitted, 6, "{results:?}");
    let held: i64 = s.slots().await.unwrap().iter().map(|c| c.running).sum();
    assert_eq!(held, 6);
}

crate::test_dbs::on_every_dialect!(
    concurrent_admissions_never_exceed_the_limit,
    slots_stop_at_the_limit_and_move_to_the_backend_with_room,
    waiting_entries_go_first_in_order_of_priority_then_arrival,
    a_user_at_quota_waits_without_holding_up_others,
    waiting_limits_refuse_new_entries,
    sweeping_times_out_abandons_and_fails_what_a_stopped_instance_admitted,
    reconcile_frees_only_old_slots_the_cluster_cannot_be_running,
);
