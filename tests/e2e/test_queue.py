"""The gateway's queue, end to end: two clusters with `max_queries: 2`, three Sluice instances
sharing PostgreSQL behind a real HAProxy, 30 concurrent multi-page queries from the real Python
client — never more than 2 running on a cluster, all finish, admitted FIFO within a priority;
then the same with an instance killed mid-run."""
import signal
import subprocess
import threading

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
    print(f"\n30 queries, 2 clusters x max_queries 2, 3 instances: peaks {peaks}")
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
    assert_fifo_per_priority([r for r in rows if r["state"] != "failed"])
