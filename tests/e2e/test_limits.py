"""Exhaustion from outside the process: the file descriptor limit is raised at start, idle
sockets that never send a request neither stop new queries for long nor reach the admin API, and
filter versions that are no longer active give back what they held."""
import os
import resource
import socket
import subprocess
import time

import trino

from conftest import Fake, Gateway, http_json, sluice_bin, wait_until, write_config
from test_hot_swap import TOKEN, put_module, variant


def limits_of(pid):
    with open(f"/proc/{pid}/limits") as f:
        line = next(l for l in f if l.startswith("Max open files"))
    soft, hard = line.split()[3:5]
    return int(soft), int(hard)


def test_the_soft_fd_limit_is_raised_to_the_hard_one(procs, tmp_path):
    fake = Fake("adhoc-1")
    procs.append(fake)
    cfg = write_config(tmp_path, [("adhoc-1", "adhoc", fake.url)])
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (256, hard))
    try:
        gw = Gateway(cfg)
    finally:
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))
    procs.append(gw)
    assert limits_of(gw.p.pid) == (hard, hard)


def test_idle_sockets_do_not_starve_queries_or_the_admin_api(procs, tmp_path):
    fake = Fake("adhoc-1")
    procs.append(fake)
    cfg = write_config(tmp_path, [("adhoc-1", "adhoc", fake.url)],
                       proxy="{ header_read_timeout_ms: 500, max_connections: 150 }")
    # a process that may open 256 files at most: 400 idle sockets would exhaust it
    gw = Gateway(cfg, preexec_fn=lambda: resource.setrlimit(resource.RLIMIT_NOFILE, (256, 256)))
    procs.append(gw)
    assert limits_of(gw.p.pid) == (256, 256)
    idle = []
    for _ in range(400):  # more than the descriptors it has, sending nothing
        s = socket.create_connection((gw.host, gw.port), timeout=5)
        idle.append(s)
    try:
        # the admin listener has its own budget: it answers at once
        assert http_json("GET", gw.admin + "/healthz")[0] == 200

        def query_works():
            try:
                cur = trino.dbapi.connect(host=gw.host, port=gw.port, user="u", max_attempts=1).cursor()
                cur.execute("SELECT 1")
                return len(cur.fetchall()) == 6
            except Exception:
                return False

        start = time.time()
        wait_until("queries never came back while idle sockets were open", query_works, limit=15)
        print(f"\n400 idle sockets: queries served again after {time.time() - start:.2f}s "
              f"(header_read_timeout 500 ms)")
    finally:
        for s in idle:
            s.close()


def fds_and_rss(pid):
    with open(f"/proc/{pid}/status") as f:
        rss_kb = next(int(l.split()[1]) for l in f if l.startswith("VmRSS:"))
    return len(os.listdir(f"/proc/{pid}/fd")), rss_kb / 1024


def test_versions_that_are_no_longer_active_are_released(procs, tmp_path):
    """Every upload of new code compiles it and runs it; the versions it replaces must give back
    their compiled code, instances and descriptors. 120 uploads, each routing queries: descriptors
    and memory after the last are what they were after the 40th (the cache of 32 compiled
    components is full by then). With that cache unbounded, this fails: +81 fds, +35% RSS."""
    fake = Fake("adhoc-1")
    procs.append(fake)
    cfg = write_config(tmp_path, [("adhoc-1", "adhoc", fake.url)],
                       admin=f"{{ listen: 127.0.0.1:0, tokens: [{{ token: '{TOKEN}', role: admin }}] }}",
                       routing="{ chain: [{ slot: balance, module: 'builtin:query-count' }] }")
    gw = Gateway(cfg)
    procs.append(gw)
    path = tmp_path / "qc.wasm"
    out = subprocess.run([sluice_bin(), "filter", "builtin", "query-count", str(path)], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    module = path.read_bytes()
    conn = trino.dbapi.connect(host=gw.host, port=gw.port, user="swap", max_attempts=1)
    seen = {}
    for n in range(1, 121):
        status, body = put_module(gw.admin, "balance", variant(module, n))
        assert status == 200, body
        for _ in range(3):  # instances of this version exist, and go idle
            cur = conn.cursor()
            cur.execute("SELECT 1")
            assert cur.fetchall()
        if n in (40, 120):
            seen[n] = fds_and_rss(gw.p.pid)
    (fds_warm, rss_warm), (fds_end, rss_end) = seen[40], seen[120]
    print(f"\nafter 40 uploads: {fds_warm} fds, {rss_warm:.1f} MB; after 120: {fds_end} fds, {rss_end:.1f} MB")
    # 80 more versions, each holding a descriptor and its code if kept, would add 80 fds and MBs
    assert fds_end <= fds_warm + 8, seen
    assert rss_end <= rss_warm * 1.10 + 4, seen
