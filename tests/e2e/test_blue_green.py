"""A blue/green upgrade as an operator plays it, with the real Python trino client: queries run on
`blue`, `green` is added through Trino Gateway's `/entity` API, `blue` is drained, every new query
lands on `green`, every query already on `blue` finishes, `blue` reports drained and is removed.
Once on one instance, once on two instances behind HAProxy sharing Valkey and PostgreSQL (the
change made on one, obeyed by the other). Also: SIGHUP with a broken file keeps serving."""
import json
import os
import signal
import statistics
import time

import trino

from conftest import Daemon, Fake, Gateway, free_port, haproxy, http_json, wait_until, write_config

TOKEN = "blue-green-admin-token-0123456789"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
ADMIN = f"{{ listen: 127.0.0.1:0, tokens: [{{ token: '{TOKEN}', role: admin }}] }}"


def api(method, url, body=None):
    data = body if isinstance(body, str) or body is None else json.dumps(body)
    return http_json(method, url, data, {**AUTH, "Content-Type": "application/json"})


def backend(admin, name):
    status, b = api("GET", f"{admin}/api/v1/backends/{name}")
    return b if status == 200 else None


def start_running(port, n, pages=30):
    """n queries running on the current routing target, each holding its first page."""
    cursors = []
    for i in range(n):
        cur = trino.dbapi.connect(host="127.0.0.1", port=port, user=f"etl{i}", max_attempts=1).cursor()
        cur.execute(f"SELECT * FROM long_{i} -- fake:pages={pages}")
        assert cur.fetchone() is not None
        cursors.append(cur)
    return cursors


def one_query(port, i):
    cur = trino.dbapi.connect(host="127.0.0.1", port=port, user=f"user{i}", max_attempts=1).cursor()
    cur.execute(f"SELECT {i}")
    rows = cur.fetchall()
    owners = {r[1] for r in rows}
    assert len(owners) == 1, owners
    return owners.pop()


def upgrade(admin_change, admin_watch, port, blue, green):
    """The runbook: changes go to `admin_change`, `admin_watch` must obey; clients use `port`."""
    running = start_running(port, 8)
    assert {c.fetchone()[1] for c in running} == {"blue"}
    # green joins through Trino Gateway's API, exactly as its users' scripts call it
    status, _ = api("POST", f"{admin_change}/entity?entityType=GATEWAY_BACKEND",
                    {"name": "green", "proxyTo": green.url, "active": True, "routingGroup": "adhoc"})
    assert status == 200
    wait_until("green never became healthy on the other instance",
               lambda: (backend(admin_watch, "green") or {}).get("status", {}).get("health") == "HEALTHY")
    # blue drains: no new queries, follow-ups still served
    status, b = api("POST", f"{admin_change}/api/v1/backends/blue/drain")
    assert status == 200 and b["state"] == "draining", b
    wait_until("the other instance never saw the drain", lambda: backend(admin_watch, "blue")["draining"])
    owners = [one_query(port, i) for i in range(30)]
    assert set(owners) == {"green"}, owners
    # blue cannot be removed while it runs queries
    status, refused = api("DELETE", f"{admin_change}/api/v1/backends/blue")
    assert status == 409, refused
    # every query already on blue finishes: 0 failed
    failed = 0
    for cur in running:
        try:
            rows = cur.fetchall()
            assert rows and {r[1] for r in rows} == {"blue"}
        except Exception:
            failed += 1
    assert failed == 0
    for admin in (admin_change, admin_watch):
        wait_until("blue never reported drained", lambda: backend(admin, "blue")["state"] == "drained")
    # and is removed, through Trino Gateway's delete
    status, _ = api("POST", f"{admin_change}/gateway/backend/modify/delete", "blue")
    assert status == 200
    wait_until("blue still listed on the other instance", lambda: backend(admin_watch, "blue") is None)
    status, listed = api("GET", f"{admin_watch}/gateway/backend/all")
    assert [b["name"] for b in listed] == ["green"]
    assert blue.stats()["unknown_query_requests"] == 0 and green.stats()["unknown_query_requests"] == 0


def test_blue_green_on_one_instance(procs, tmp_path):
    blue, green = Fake("blue"), Fake("green")
    procs.extend([blue, green])
    cfg = write_config(tmp_path, [("blue", "adhoc", blue.url)], admin=ADMIN,
                       health="{ interval_ms: 100, timeout_ms: 300, stats: ui_api }")
    gw = Gateway(cfg)
    procs.append(gw)
    upgrade(gw.admin, gw.admin, gw.port, blue, green)


def test_blue_green_on_two_instances_behind_haproxy(procs, tmp_path, fleet_db):
    db_url, _ = fleet_db
    redis_port = free_port()
    procs.append(Daemon(["redis-server", "--port", str(redis_port), "--bind", "127.0.0.1", "--save", "",
                         "--appendonly", "no"], redis_port))
    blue, green = Fake("blue"), Fake("green")
    procs.extend([blue, green])
    gateways = []
    for i in range(2):
        d = tmp_path / f"gw{i}"
        d.mkdir()
        cfg = write_config(
            d, [("blue", "adhoc", blue.url)], admin=ADMIN,
            health="{ interval_ms: 100, timeout_ms: 300, stats: ui_api }",
            cache=f"{{ valkey: {{ enabled: true, url: 'redis://127.0.0.1:{redis_port}/0', timeout_ms: 200, health_check_interval_ms: 200 }} }}",
            store=f"{{ url: '{db_url}' }}",
        )
        gw = Gateway(cfg)
        procs.append(gw)
        gateways.append(gw)
    one, two = gateways
    wait_until("instance two never subscribed to backend announcements",
               lambda: api("GET", f"{two.admin}/api/v1/status")[1]["backend_sync"]["subscribed"])
    lb, port = haproxy(tmp_path, [f"{g.host}:{g.port}" for g in gateways])
    procs.append(lb)
    upgrade(one.admin, two.admin, port, blue, green)

    # how long a change made on one instance takes to be visible on the other
    latencies = []
    for i in range(40):
        url = f"http://ui-{i}.example"
        start = time.monotonic()
        status, _ = api("PATCH", f"{one.admin}/api/v1/backends/green", {"external_url": url})
        assert status == 200
        while backend(two.admin, "green")["external_url"] != url:
            assert time.monotonic() - start < 10, "a change never reached instance two"
        latencies.append(time.monotonic() - start)
    latencies.sort()
    p50, p99 = statistics.median(latencies), latencies[int(0.99 * (len(latencies) - 1))]
    print(f"\nbackend change visible on the other instance: p50 {p50 * 1000:.1f} ms, p99 {p99 * 1000:.1f} ms, "
          f"max {latencies[-1] * 1000:.1f} ms over {len(latencies)} changes")


def test_sighup_with_a_broken_file_keeps_serving(procs, tmp_path):
    adhoc = Fake("adhoc-1")
    procs.append(adhoc)
    cfg = write_config(tmp_path, [("adhoc-1", "adhoc", adhoc.url)], admin=ADMIN)
    gw = Gateway(cfg)
    procs.append(gw)
    good = cfg.read_text()
    cfg.write_text(good + "routing: [\n")
    gw.p.send_signal(signal.SIGHUP)
    wait_until("the refused reload never showed in the status",
               lambda: (api("GET", f"{gw.admin}/api/v1/status")[1].get("config") or {}).get("ok") is False)
    status = api("GET", f"{gw.admin}/api/v1/status")[1]["config"]
    assert "line" in status["error"], status
    metrics = http_json("GET", f"{gw.admin}/metrics")[1]
    assert "sluice_config_last_reload_ok 0" in metrics
    # still serving, and signals other than SIGTERM/SIGINT do not stop it
    for sig in (signal.SIGUSR1, signal.SIGUSR2, signal.SIGQUIT):
        gw.p.send_signal(sig)
    assert one_query(gw.port, 1) == "adhoc-1"
    assert gw.p.poll() is None
    # a fixed file applies: strict groups turn an unknown group into an error
    cfg.write_text(good + "routing: { default_group: adhoc, strict_groups: true }\n")
    gw.p.send_signal(signal.SIGHUP)
    wait_until("the fixed file was never applied",
               lambda: (api("GET", f"{gw.admin}/api/v1/status")[1].get("config") or {}).get("ok") is True)
    cur = trino.dbapi.connect(host="127.0.0.1", port=gw.port, user="u", max_attempts=1,
                              http_headers={"X-Trino-Routing-Group": "nosuch"}).cursor()
    try:
        cur.execute("SELECT 1")
        cur.fetchall()
        raise AssertionError("an unknown group must be refused once strict_groups is on")
    except trino.exceptions.HttpError as e:
        assert "nosuch" in str(e)
    # `sluice reload` does the same over the admin API
    out = os.popen(f"SLUICE_ADMIN_TOKEN={TOKEN} {gw.args[0]} reload --admin-url {gw.admin}").read()
    assert out.startswith("reloaded"), out
    assert gw.stop(signal.SIGTERM) == 0


def cli(gw, *args, ok=True):
    import subprocess
    out = subprocess.run([gw.args[0], "backend", "--admin-url", gw.admin, *args], capture_output=True, text=True,
                         env={**os.environ, "SLUICE_ADMIN_TOKEN": TOKEN}, timeout=60)
    assert (out.returncode == 0) == ok, (args, out.stdout, out.stderr)
    return out.stdout + out.stderr


def test_the_backend_cli_changes_the_fleet_and_fails_with_the_servers_message(procs, tmp_path):
    blue, green = Fake("blue"), Fake("green")
    procs.extend([blue, green])
    cfg = write_config(tmp_path, [("blue", "adhoc", blue.url)], admin=ADMIN,
                       health="{ interval_ms: 100, timeout_ms: 300, stats: ui_api }")
    gw = Gateway(cfg)
    procs.append(gw)
    assert "backend green" in cli(gw, "add", "green", green.url, "--group", "adhoc")
    assert "409" in cli(gw, "add", "green", green.url, ok=False)
    assert "url:" in cli(gw, "add", "x", "ftp://nope", ok=False)
    assert "404" in cli(gw, "drain", "nosuch", ok=False)
    out = cli(gw, "update", "green", "--external-url", "https://green.example")
    assert "green" in out
    assert backend(gw.admin, "green")["external_url"] == "https://green.example"
    cli(gw, "update", "green", "--external-url", "")
    assert backend(gw.admin, "green")["external_url"] is None
    # a drain with --wait returns once blue runs nothing
    out = cli(gw, "drain", "blue", "--wait", "--timeout-s", "30")
    assert "drained" in out, out
    listing = cli(gw, "list")
    assert "blue" in listing and "drained" in listing and "green" in listing, listing
    assert "removed" in cli(gw, "remove", "blue")
    assert json.loads(cli(gw, "list", "--json"))[0]["name"] == "green"
