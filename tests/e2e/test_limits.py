"""Exhaustion from outside the process: the file descriptor limit is raised at start, and idle
sockets that never send a request neither stop new queries for long nor reach the admin API."""
import resource
import socket
import time

import trino

from conftest import Fake, Gateway, http_json, wait_until, write_config


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
