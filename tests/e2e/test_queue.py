"""The gateway's queue, end to end: two clusters with `max_queries: 2`, three Sluice instances
sharing PostgreSQL behind a real HAProxy, 30 concurrent multi-page queries from the real Python
client — never more than 2 running on a cluster, all finish, admitted FIFO within a priority;
then the same with an instance killed mid-run."""
import signal
import subprocess
import threading
import time

import trino

from conftest import Fake, Gateway, concurrently, haproxy, http_json, wait_until, write_config

TOKEN = "queue-admin-token-0123456789"
QUEUE = ("{ poll_wait_ms: 300, recheck_ms: 50, abandon_after_ms: 30000, "
         "priorities: [ { user: 'vip*', priority: 10 } ] }")


def queue_fleet(procs, tmp_path, db_url, instances=3):
    fakes = {n: Fake(n, "--pages", "4", "--rows-per-page", "2", "--delay-ms", "40") for n in ("c1", "c2")}
    procs.extend(fakes.values())
    gateways = []
    for i in range(instances):
        d = tmp_path / f"gw{i}"
        d.mkdir()
        cfg = write_config(
            d,
            [(n, "adhoc", f.url, "max_queries: 2") for n, f in fakes.items()],
            admin=f"{{ listen: 127.0.0.1:0, tokens: [ {{ token: {TOKEN}, role: admin }} ] }}",
            store=f"{{ url: '{db_url}' }}",
            proxy="{ trust_forwarded_headers: false }",
            queue=QUEUE,
        )
        gw = Gateway(cfg)
        procs.append(gw)
        gateways.append(gw)
    return gateways, fakes


def queue_view(gw):
    return http_json("GET", gw.admin + "/api/v1/queue", headers={"Authorization": f"Bearer {TOKEN}"})[1]


def run(port, i, errors):
    user = f"vip{i}" if i >= 24 else f"user{i}"
    try:
        conn = trino.dbapi.connect(host="127.0.0.1", port=port, user=user, request_timeout=30)
        cur = conn.cursor()
        cur.execute(f"SELECT {i}")
        rows = cur.fetchall()
        assert len(rows) == 8, rows
        return cur.query_id
    except Exception as e:  # noqa: BLE001 - reported by the test
        errors.append((i, repr(e)))
        return None


def entries(db_name):
    out = subprocess.run(
        ["psql", "-h", "127.0.0.1", "-U", "postgres", "-d", db_name, "-tAF,", "-c",
         "SELECT id, seq, priority, COALESCE(admitted_turn, -1), state FROM queue_entries"],
        check=True, capture_output=True, text=True)
    rows = [line.split(",") for line in out.stdout.split()]
    return [dict(id=r[0], seq=int(r[1]), priority=int(r[2]), turn=int(r[3]), state=r[4]) for r in rows]


def assert_fifo_per_priority(rows):
    """No entry was admitted while one ahead of it (higher priority, or the same and earlier)
    was waiting: arrivals (`seq`) and admissions (`turn`) are one sequence."""
    admitted = [r for r in rows if r["turn"] >= 0]
    for b in admitted:
        for a in rows:
            waiting = a["seq"] < b["turn"] and (a["turn"] < 0 or a["turn"] > b["turn"])
            ahead = a["priority"] > b["priority"] or (a["priority"] == b["priority"] and a["seq"] < b["seq"])
            assert not (waiting and ahead), f"{b} admitted while {a} waited ahead of it"


def start_queries(port, errors):
    """24 ordinary queries at once, and 6 from `vip*` users (priority 10) once they wait."""
    results = {}

    def one(i):
        results[i] = run(port, i, errors)

    threads = [threading.Thread(target=one, args=(i,)) for i in range(24)]
    for t in threads:
        t.start()
    return results, threads, one


def test_two_clusters_of_two_three_instances_thirty_queries(procs, tmp_path, fleet_db):
    db_url, db_name = fleet_db
    gateways, fakes = queue_fleet(procs, tmp_path, db_url)
    lb, port = haproxy(tmp_path, [f"{g.host}:{g.port}" for g in gateways])
    procs.append(lb)
    errors = []
    started = time.time()
    results, threads, one = start_queries(port, errors)
    wait_until("the queue never filled", lambda: len(queue_view(gateways[0])["waiting"]) >= 10, limit=30)
    vips = [threading.Thread(target=one, args=(i,)) for i in range(24, 30)]
    for t in vips:
        t.start()
    for t in threads + vips:
        t.join(timeout=120)
    assert not errors, errors
    assert len([r for r in results.values() if r]) == 30
    peaks = {n: f.stats()["peak_active"] for n, f in fakes.items()}
    print(f"\n30 queries, 2 clusters x max_queries 2, 3 instances: {time.time() - started:.1f} s, peaks {peaks}")
    assert all(p <= 2 for p in peaks.values()), peaks
    assert all(p == 2 for p in peaks.values()), f"both clusters were used to their limit: {peaks}"
    rows = entries(db_name)
    assert len(rows) >= 20, "most queries waited"
    assert all(r["state"] == "admitted" for r in rows), rows
    assert_fifo_per_priority(rows)
    vip = [r for r in rows if r["priority"] == 10]
    assert vip and any(n["seq"] < v["seq"] and v["turn"] < n["turn"] for v in vip for n in rows if n["priority"] == 0), \
        "a vip query overtook an ordinary one that arrived earlier"
    # every instance admitted some: the polls were spread by the balancer
    admitted = []
    for g in gateways:
        m = subprocess.run(["curl", "-s", g.admin + "/metrics"], capture_output=True, text=True).stdout
        admitted.append(sum(float(line.rsplit(" ", 1)[1]) for line in m.splitlines()
                            if line.startswith("sluice_queue_admissions_total{")))
    assert sum(admitted) == 30 and all(a > 0 for a in admitted), admitted
    # nothing waits, no slot is left held
    view = queue_view(gateways[1])
    assert view["waiting"] == [] and all(b["running"] == 0 for b in view["backends"]), view


def test_an_instance_killed_mid_run_loses_no_waiting_query(procs, tmp_path, fleet_db):
    db_url, db_name = fleet_db
    gateways, fakes = queue_fleet(procs, tmp_path, db_url)
    lb, port = haproxy(tmp_path, [f"{g.host}:{g.port}" for g in gateways], checks=True)
    procs.append(lb)
    errors = []
    results, threads, one = start_queries(port, errors)
    vips = [threading.Thread(target=one, args=(i,)) for i in range(24, 30)]
    for t in vips:
        t.start()
    wait_until("the queue never filled", lambda: len(queue_view(gateways[1])["waiting"]) >= 12, limit=30)
    gateways[0].p.send_signal(signal.SIGKILL)
    gateways[0].p.wait()
    for t in threads + vips:
        t.join(timeout=180)
    # a poll in flight on the killed instance while it submitted its query is the one thing
    # that may be lost: it fails, saying so, and is never sent twice
    lost = [e for e in errors if "stopped while it submitted" in e[1]]
    assert len(lost) == len(errors) and len(lost) <= 1, errors
    assert len([r for r in results.values() if r]) == 30 - len(lost)
    peaks = {n: f.stats()["peak_active"] for n, f in fakes.items()}
    print(f"\nkilled an instance mid-run: {30 - len(lost)} finished, {len(lost)} lost in flight, peaks {peaks}")
    assert all(p <= 2 for p in peaks.values()), peaks
    rows = entries(db_name)
    assert not [r for r in rows if r["state"] == "queued"], "nothing is left waiting"
    # a POST whose answer the kill lost leaves its entry behind (the client sent the query again
    # through another instance): never polled, it is abandoned after abandon_after_ms, and what
    # was admitted after that passed it rightly; the rows do not say when it ended, so it is left
    # out of the order check (at most one: the one request in flight on the killed instance)
    orphans = [r for r in rows if r["state"] == "abandoned"]
    assert len(orphans) <= 1, orphans
    assert_fifo_per_priority([r for r in rows if r["state"] not in ("failed", "abandoned")])


def single(procs, tmp_path, max_queries, queue, **sections):
    """One gateway on SQLite in front of one fake cluster with `max_queries`."""
    fake = Fake("c1", "--pages", "2")
    procs.append(fake)
    cfg = write_config(
        tmp_path, [("c1", "adhoc", fake.url, f"max_queries: {max_queries}")],
        admin=f"{{ listen: 127.0.0.1:0, tokens: [ {{ token: {TOKEN}, role: admin }} ] }}",
        queue=queue, **sections,
    )
    gw = Gateway(cfg)
    procs.append(gw)
    return gw, fake


def post(url, sql, user="alice", headers=None):
    h = {"X-Trino-User": user, **(headers or {})}
    return http_json("POST", url + "/v1/statement", body=sql, headers=h)


def test_waiting_queries_time_out_cancel_and_are_killed_by_their_issued_id(procs, tmp_path):
    gw, fake = single(procs, tmp_path, 1, "{ timeout_ms: 1500, poll_wait_ms: 200, abandon_after_ms: 30000 }")
    # a query whose client never polls holds the only slot (the cluster runs it)
    status, blocker = post(gw.url, "SELECT 'blocker'")
    assert status == 200 and "_lq" not in blocker["id"], blocker

    # a client's query waits, then fails with Trino's time-limit error
    conn = trino.dbapi.connect(host=gw.host, port=gw.port, user="bob")
    cur = conn.cursor()
    try:
        cur.execute("SELECT 1")
        cur.fetchall()
        raise AssertionError("the query ran although the cluster was full")
    except trino.exceptions.TrinoQueryError as e:
        assert e.error_name == "EXCEEDED_TIME_LIMIT" and "queue" in e.message, e

    # a waiting query answers as Trino's do, keeps no credentials, and cancels
    status, waiting = post(gw.url, "SELECT 'waits'", headers={"Authorization": "Basic c2VjcmV0LXBhc3M="})
    issued, next_uri = waiting["id"], waiting["nextUri"]
    assert status == 200 and "_lq" in issued and waiting["stats"]["state"] == "QUEUED"
    assert next_uri.startswith(gw.url + "/v1/statement/queued/" + issued)
    status, info = http_json("GET", f"{gw.url}/v1/query/{issued}")
    assert status == 200 and info["state"] == "QUEUED" and info["user"] == "alice", info
    listed = queue_view(gw)["waiting"]
    assert [w["id"] for w in listed] == [issued]
    import sqlite3
    with sqlite3.connect(tmp_path / "sluice.db") as db:
        stored = db.execute("SELECT headers FROM queue_entries WHERE id = ?", (issued,)).fetchone()[0]
    assert "x-trino-user" in stored and "c2VjcmV0" not in stored and "authorization" not in stored, stored
    # a bogus slug is a stranger's guess: not found
    status, _ = http_json("GET", next_uri.replace("/y", "/ybogus", 1))
    assert status == 404
    status, _ = http_json("DELETE", next_uri)
    assert status == 204
    status, page = http_json("GET", next_uri)
    assert page["error"]["errorName"] == "USER_CANCELED" and "nextUri" not in page, page
    assert queue_view(gw)["waiting"] == []

    # kill_query by the issued id cancels a waiting query (the CALL itself does not wait)
    status, waiting = post(gw.url, "SELECT 'killed'")
    issued = waiting["id"]
    cur = conn.cursor()
    cur.execute(f"CALL system.runtime.kill_query(query_id => '{issued}', message => 'no')")
    cur.fetchall()
    status, page = http_json("GET", waiting["nextUri"])
    assert page["error"]["errorName"] == "USER_CANCELED", page

    # once room frees up, the issued id leads to the cluster's query
    status, waiting = post(gw.url, "SELECT 'admitted'")
    issued = waiting["id"]
    status, _ = http_json("DELETE", blocker["nextUri"])
    assert status == 204
    def admitted():
        s, p = http_json("GET", waiting["nextUri"])
        return s == 200 and "_lq" not in p["id"]
    wait_until("the waiting query was never admitted", admitted)
    status, page = http_json("GET", waiting["nextUri"])  # a poll again: the cluster's first page
    real = page["id"]
    assert status == 200 and "_lq" not in real and real.startswith("2026"), page
    status, info = http_json("GET", f"{gw.url}/v1/query/{issued}")
    assert status == 200 and info["queryId"] == real, info
    # a cancel of the issued nextUri kills the cluster's query and frees its slot
    assert queue_view(gw)["backends"][0]["running"] == 1
    cancelled = fake.stats()["cancelled"]
    status, _ = http_json("DELETE", waiting["nextUri"])
    assert status == 204 and fake.stats()["cancelled"] == cancelled + 1
    # (well before reconciling could: its grace is 5 s)
    wait_until("the slot was never freed", lambda: queue_view(gw)["backends"][0]["running"] == 0, limit=2)
    assert fake.stats()["unknown_query_requests"] == 0


def test_a_routing_filter_sets_the_priority_of_a_waiting_query(procs, tmp_path):
    rules = ("{ rules: [ { name: urgent, when: { source: urgent }, group: adhoc, queue_priority: 50 } ] }")
    gw, _ = single(procs, tmp_path, 1, "{ poll_wait_ms: 100, priorities: [ { user: alice, priority: 5 } ] }",
                   routing=f"{{ chain: [ {{ slot: rules, module: 'builtin:routing-rules', config: {rules} }} ] }}")
    _, blocker = post(gw.url, "SELECT 'blocker'")
    _, first = post(gw.url, "SELECT 'first'", user="alice")  # priority 5 by the YAML rule
    _, urgent = post(gw.url, "SELECT 'urgent'", user="bob", headers={"X-Trino-Source": "urgent"})
    waiting = queue_view(gw)["waiting"]
    assert [(w["id"], w["priority"]) for w in waiting] == [(urgent["id"], 50), (first["id"], 5)], waiting
    http_json("DELETE", blocker["nextUri"])
    # the earlier arrival stays queued while the filter's urgent query is ahead of it
    _, page = http_json("GET", first["nextUri"])
    assert page["stats"]["state"] == "QUEUED" and "_lq" in page["id"], page
    # the slot is freed in the background once the cancel is answered: poll as a client does
    state = {}

    def admitted():
        _, state["page"] = http_json("GET", urgent["nextUri"])
        return "_lq" not in state["page"]["id"]
    wait_until("the urgent query was never admitted", admitted)
    _, page = http_json("GET", first["nextUri"])
    assert page["stats"]["state"] == "QUEUED", "one slot: the first waits for the urgent one to end"


def test_user_quotas_hold_up_only_their_user_and_change_at_runtime(procs, tmp_path):
    gw, _ = single(procs, tmp_path, 3, "{ poll_wait_ms: 100, users: { '*': { max_running: 1 } } }")
    _, first = post(gw.url, "SELECT 1", user="alice")
    _, second = post(gw.url, "SELECT 2", user="alice")
    assert "_lq" not in first["id"] and "_lq" in second["id"], "alice's second query waits for her quota"
    # bob is not held up by alice's waiting query
    _, bobs = post(gw.url, "SELECT 3", user="bob")
    assert "_lq" not in bobs["id"], bobs
    _, page = http_json("GET", second["nextUri"])
    assert page["stats"]["state"] == "QUEUED"
    # a quota raised through the admin API applies at once, on the next poll
    status, applied = http_json("PUT", gw.admin + "/api/v1/queue/config",
                                body="{ poll_wait_ms: 100, users: { '*': { max_running: 2 } } }",
                                headers={"Authorization": f"Bearer {TOKEN}"})
    assert status == 200 and applied["users"]["*"]["max_running"] == 2, applied
    _, page = http_json("GET", second["nextUri"])
    assert "_lq" not in page["id"], page
    # broken settings are refused and change nothing
    status, err = http_json("PUT", gw.admin + "/api/v1/queue/config", body="{ poll_wait_ms: 0 }",
                            headers={"Authorization": f"Bearer {TOKEN}"})
    assert status == 400 and "poll_wait_ms" in err["error"], err
    assert queue_view(gw)["config"]["users"]["*"]["max_running"] == 2
    # a viewer's token (or none) changes nothing
    status, _ = http_json("PUT", gw.admin + "/api/v1/queue/config", body="{}")
    assert status == 401
