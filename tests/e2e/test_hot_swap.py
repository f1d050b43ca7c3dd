"""The zero-failure proof of hot swap: the real Python trino client and a raw-HTTP load generator
keep running queries (in processes of their own) through 2 Sluice instances (sharing one Redis and one PostgreSQL) while a
module is swapped 20 times back and forth on alternating instances, one deliberately broken upload
among them. No query may fail, and every instance must run the new hash within 1 s of the upload;
the swap-to-visible latencies are printed as p50/p99."""
import json
import multiprocessing
import os
import statistics
import subprocess
import time
import urllib.error
import urllib.request

import trino

from conftest import Fake, Gateway, http_json, shared_fleet, sluice_bin, wait_until, write_config

TOKEN = "hot-swap-admin-token-0123456789"
# trino-client processes and load-generator processes, each; the proof runs 2 + 2
LOAD_PROCESSES = int(os.environ.get("SLUICE_SWAP_LOAD", "2"))
AUTH = {"Authorization": f"Bearer {TOKEN}"}


def put_module(admin, slot, data):
    req = urllib.request.Request(f"{admin}/api/v1/filters/{slot}", data=data, method="PUT",
                                 headers={**AUTH, "Content-Type": "application/wasm"})
    try:
        with urllib.request.urlopen(req, timeout=30) as resp:
            return resp.status, json.loads(resp.read())
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read())


def running_sha(admin, slot):
    filters = http_json("GET", admin + "/api/v1/filters", headers=AUTH)[1]
    return next(f["sha256"] for f in filters if f["slot"] == slot)


def cli(admin, *args):
    env = {"SLUICE_ADMIN_URL": admin, "SLUICE_ADMIN_TOKEN": TOKEN, "PATH": "/usr/bin:/bin"}
    return subprocess.run([sluice_bin(), "filter", *args], env=env, capture_output=True, text=True, timeout=60)


def client_worker(i, target, stop, count, failures):
    """The real trino client, one query after another."""
    host, port, url = target
    while not stop.is_set():
        try:
            conn = trino.dbapi.connect(host=host, port=port, user=f"user{i}", max_attempts=1)
            cur = conn.cursor()
            cur.execute(f"SELECT {i}")
            rows = cur.fetchall()
            assert len(rows) == 6 and len({r[1] for r in rows}) == 1, rows
            with count.get_lock():
                count.value += 1
        except Exception as e:  # any failure is the test's finding
            failures.put(f"trino client via {url}: {e!r}")


def raw_worker(i, target, stop, count, failures):
    """A load generator: POST /v1/statement and follow nextUri to the end, as fast as it can."""
    _, _, url = target
    while not stop.is_set():
        try:
            status, page = http_json("POST", url + "/v1/statement", body=f"SELECT {i}", headers={"X-Trino-User": f"load{i}"})
            assert status == 200, (status, page)
            while "nextUri" in page:
                status, page = http_json("GET", page["nextUri"], headers={"X-Trino-User": f"load{i}"})
                assert status == 200, (status, page)
            assert page["stats"]["state"] == "FINISHED", page
            with count.get_lock():
                count.value += 1
        except Exception as e:
            failures.put(f"load generator via {url}: {e!r}")


def leb128(n):
    out = bytearray()
    while True:
        byte, n = n & 0x7F, n >> 7
        out.append(byte | (0x80 if n else 0))
        if not n:
            return bytes(out)


def variant(component, n):
    """The same component with a custom section appended: a valid, never-seen module (another
    sha256), so every swap compiles, as a real upload of new code does."""
    name = b"sluice-hot-swap-test"
    body = leb128(len(name)) + name + str(n).encode()
    return component + b"\x00" + leb128(len(body)) + body


def percentile(values, p):
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(p / 100 * (len(ordered) - 1))))]


def test_twenty_swaps_under_load_fail_no_query(procs, tmp_path, fleet_db):
    db_url, _ = fleet_db
    gateways, fakes = shared_fleet(
        procs, tmp_path, db_url, 2, pages=3,
        admin=f"{{ listen: 127.0.0.1:0, tokens: [{{ token: '{TOKEN}', role: admin }}] }}",
        # each instance compiles for itself, as on separate machines
        filters=lambda d: f"{{ poll_interval_ms: 1000, cache_dir: '{d}/modules' }}",
        routing="{ chain: [{ slot: balance, module: 'builtin:query-count' }] }",
    )
    wait_until("instances never subscribed to announcements",
               lambda: all(http_json("GET", g.admin + "/api/v1/fleet", headers=AUTH)[1].get("subscribed") for g in gateways))

    modules = {}
    for name in ("query-count", "stochastic"):
        path = tmp_path / f"{name}.wasm"
        out = cli(gateways[0].admin, "builtin", name, str(path))
        assert out.returncode == 0, out.stderr
        modules[name] = path.read_bytes()

    # the load runs in processes of its own, so it never holds the GIL of the thread that
    # measures swap-to-visible
    stop = multiprocessing.Event()
    counts = {"client": multiprocessing.Value("i", 0), "raw": multiprocessing.Value("i", 0)}
    failures = multiprocessing.Queue()
    targets = [(g.host, g.port, g.url) for g in gateways]
    workers = [multiprocessing.Process(target=client_worker, args=(i, targets[i % 2], stop, counts["client"], failures)) for i in range(LOAD_PROCESSES)]
    workers += [multiprocessing.Process(target=raw_worker, args=(i, targets[i % 2], stop, counts["raw"], failures)) for i in range(LOAD_PROCESSES)]
    for w in workers:
        w.start()
    time.sleep(0.5)

    visible = []  # seconds from sending the upload to each instance running the new hash
    names = ["stochastic", "query-count"]
    expected = running_sha(gateways[0].admin, "balance")
    try:
        for n in range(20):
            source = gateways[n % 2]
            if n == 10:
                # the deliberately broken upload, through the CLI: refused, and nothing changes
                bad = tmp_path / "broken.wasm"
                bad.write_bytes(b"\0asm\x0d\0\x01\0 truncated")
                out = cli(source.admin, "push", "balance", str(bad))
                assert out.returncode != 0 and "compile failed" in out.stderr, (out.returncode, out.stderr)
                time.sleep(0.3)
                assert all(running_sha(g.admin, "balance") == expected for g in gateways)
                continue
            started = time.perf_counter()
            # back and forth between two modules, as operators do (and as a rollback does); with
            # SLUICE_SWAP_FRESH=1 every upload is a never-seen module that every instance compiles
            module = modules[names[n % 2]]
            if os.environ.get("SLUICE_SWAP_FRESH") == "1":
                module = variant(module, n)
            status, body = put_module(source.admin, "balance", module)
            assert status == 200, body
            expected = body["sha256"]
            pending = set(range(2))
            while pending:
                for i in list(pending):
                    if running_sha(gateways[i].admin, "balance") == expected:
                        visible.append(time.perf_counter() - started)
                        pending.discard(i)
                assert time.perf_counter() - started < 5, f"swap {n} not visible on instances {pending}"
                time.sleep(0.002)
            time.sleep(0.15)  # let traffic run on this version
    finally:
        time.sleep(0.5)
        stop.set()
        for w in workers:
            w.join(timeout=30)
            if w.is_alive():
                w.kill()
    done = {k: v.value for k, v in counts.items()}
    failed = []
    while not failures.empty():
        failed.append(failures.get())

    p50, p99 = statistics.median(visible), percentile(visible, 99)
    print(f"\n19 accepted swaps + 1 refused, 2 instances, under load: {done['client']} trino-client queries "
          f"and {done['raw']} load-generator queries, {len(failed)} failed; swap-to-visible across instances "
          f"p50 {p50 * 1000:.1f} ms, p99 {p99 * 1000:.1f} ms, max {max(visible) * 1000:.1f} ms")
    assert not failed, failed[:5]
    assert done["client"] > 20 and done["raw"] > 20, done
    assert len(visible) == 2 * 19
    assert max(visible) < 1.0, sorted(visible)[-3:]
    misrouted = sum(f.stats()["unknown_query_requests"] for f in fakes.values())
    assert misrouted == 0

    # the CLI sees the fleet converged on the last version, and can roll it back everywhere
    listed = json.loads(cli(gateways[1].admin, "list", "--json").stdout)
    assert listed[0]["sha256"] == expected and listed[0]["version"] == 19, listed
    fleet = json.loads(cli(gateways[0].admin, "fleet", "--json").stdout)
    assert fleet["converged"] is True and len(fleet["instances"]) == 2, fleet
    out = cli(gateways[1].admin, "rollback", "balance")
    assert out.returncode == 0 and "version 18" in out.stdout, out
    wait_until("the rollback never reached instance 0",
               lambda: running_sha(gateways[0].admin, "balance") != expected)
    out = cli(gateways[0].admin, "activate", "balance", "999")
    assert out.returncode != 0 and "no version 999" in out.stderr, out


def test_the_filter_cli_reads_changes_and_fails_with_the_servers_message(procs, tmp_path):
    fakes = {n: Fake(n) for n in ("adhoc-1", "etl-1")}
    procs.extend(fakes.values())
    cfg = write_config(
        tmp_path,
        [(n, n.split("-")[0], f.url) for n, f in fakes.items()],
        admin=f"{{ listen: 127.0.0.1:0, tokens: [{{ token: '{TOKEN}', role: admin }}] }}",
        routing="{ chain: [{ slot: rules, module: 'builtin:routing-rules', config: { default_group: adhoc, rules: [] } }, "
                "{ slot: balance, module: 'builtin:query-count' }] }",
    )
    gw = Gateway(cfg)
    procs.append(gw)

    def owner(user="cli"):
        cur = trino.dbapi.connect(host=gw.host, port=gw.port, user=user, max_attempts=1).cursor()
        cur.execute("SELECT 1")
        return {row[1] for row in cur.fetchall()}

    assert owner() == {"adhoc-1"}
    listed = cli(gw.admin, "list")
    assert listed.returncode == 0 and listed.stdout.splitlines()[0].split()[:3] == ["SLOT", "VERSION", "SHA256"], listed
    assert [line.split()[0] for line in listed.stdout.splitlines()[1:]] == ["rules", "balance"]

    # a config change through the CLI, from a YAML file
    (tmp_path / "etl.yaml").write_text("default_group: etl\nrules: []\n")
    out = cli(gw.admin, "config", "rules", str(tmp_path / "etl.yaml"))
    assert out.returncode == 0 and "version 1" in out.stdout, out
    assert owner() == {"etl-1"}
    versions = json.loads(cli(gw.admin, "versions", "rules", "--json").stdout)
    assert [(v["version"], v["active"]) for v in versions] == [(1, True)]

    # a slot name with a dash survives the trip through the URL
    module = tmp_path / "rules.wasm"
    assert cli(gw.admin, "builtin", "stochastic", str(module)).returncode == 0
    out = cli(gw.admin, "push", "spare-slot_1", str(module))
    assert out.returncode == 0 and "slot spare-slot_1 now runs version 1" in out.stdout, out
    assert [line.split()[0] for line in cli(gw.admin, "list").stdout.splitlines()[1:]] == ["rules", "balance", "spare-slot_1"]

    # push with a config, then the chain order, then a rollback
    assert cli(gw.admin, "builtin", "routing-rules", str(module)).returncode == 0
    (tmp_path / "adhoc.yaml").write_text("{default_group: adhoc, rules: []}")
    out = cli(gw.admin, "push", "rules", str(module), "--config", str(tmp_path / "adhoc.yaml"))
    assert out.returncode == 0 and "version 2" in out.stdout, out
    assert owner() == {"adhoc-1"}
    out = cli(gw.admin, "order", "balance", "rules", "spare-slot_1")
    assert out.returncode == 0 and "balance -> rules -> spare-slot_1" in out.stdout, out
    out = cli(gw.admin, "rollback", "rules")
    assert out.returncode == 0 and "version 1" in out.stdout, out

    # failures: non-zero exit and the server's message
    out = cli(gw.admin, "order", "rules")
    assert out.returncode != 0 and "must name every slot once" in out.stderr, out
    out = subprocess.run([sluice_bin(), "filter", "push", "rules", str(module)], capture_output=True, text=True,
                         env={"SLUICE_ADMIN_URL": gw.admin, "PATH": "/usr/bin:/bin"}, timeout=60)
    assert out.returncode != 0 and "401" in out.stderr and "SLUICE_ADMIN_TOKEN" in out.stderr, out
    out = cli("http://127.0.0.1:9", "list")
    assert out.returncode != 0 and "cannot reach the admin API" in out.stderr, out
    out = cli(gw.admin, "push", "rules", str(tmp_path / "missing.wasm"))
    assert out.returncode != 0 and "cannot read" in out.stderr, out
