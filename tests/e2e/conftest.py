"""Process-level harness: real `sluice` and `sluice fake-trino` processes on ephemeral loopback
ports, driven by the real Python `trino` client. Every process started is stopped at teardown."""
import json
import concurrent.futures
import os
import shutil
import signal
import socket
import subprocess
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def sluice_bin() -> str:
    if os.environ.get("SLUICE_BIN"):
        return os.environ["SLUICE_BIN"]
    target = os.environ.get("CARGO_TARGET_DIR", str(ROOT / "target"))
    return str(Path(target) / "debug" / "sluice")


def http_json(method, url, body=None, headers=None, timeout=10):
    """(status, parsed JSON or text) of one HTTP request."""
    req = urllib.request.Request(url, data=body.encode() if body else None, method=method, headers=headers or {})
    try:
        with urllib.request.urlopen(req, timeout=timeout) as resp:
            status, raw = resp.status, resp.read()
    except urllib.error.HTTPError as e:
        status, raw = e.code, e.read()
    try:
        return status, json.loads(raw)
    except ValueError:
        return status, raw.decode(errors="replace")


class Proc:
    def __init__(self, args, cwd=None, preexec_fn=None):
        self.args = args
        self.p = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=cwd,
                                  preexec_fn=preexec_fn)
        line = self.p.stdout.readline()
        if not line:
            err = self.p.stderr.read()
            raise RuntimeError(f"{args} exited early: {err}")
        self.info = json.loads(line)

    def stop(self, sig=signal.SIGTERM, timeout=10):
        if self.p.poll() is None:
            self.p.send_signal(sig)
            try:
                self.p.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.p.kill()
                self.p.wait()
        return self.p.returncode


class Fake(Proc):
    def __init__(self, name, *extra):
        super().__init__([sluice_bin(), "fake-trino", "--name", name, *extra])
        self.name = name
        self.url = self.info.get("url") or f"http://{self.info['addr']}"

    def stats(self):
        return http_json("GET", self.url + "/fake/stats")[1]


class Gateway(Proc):
    def __init__(self, config_path, preexec_fn=None):
        super().__init__([sluice_bin(), "serve", "--config", str(config_path), "--print-addrs"],
                         preexec_fn=preexec_fn)
        self.host, port = self.info["proxy"].rsplit(":", 1)
        self.port = int(port)
        self.admin = f"http://{self.info['admin']}"
        self.url = f"http://{self.info['proxy']}"
        deadline = time.time() + 10
        while time.time() < deadline:
            if http_json("GET", self.admin + "/readyz")[0] == 200:
                return
            time.sleep(0.02)
        raise RuntimeError("gateway not ready")

    def health(self, name):
        backends = http_json("GET", self.admin + "/api/v1/backends")[1]
        return next(b for b in backends if b["name"] == name)["status"]["health"]

    def wait_health(self, name, want, limit=5.0):
        start = time.time()
        while time.time() - start < limit:
            if self.health(name) == want:
                return time.time() - start
            time.sleep(0.02)
        raise AssertionError(f"{name} not {want} after {limit}s")


def write_config(tmp_path, backends, **sections):
    lines = ["listen: 127.0.0.1:0", "admin: " + sections.pop("admin", "{ listen: 127.0.0.1:0 }"), "backends:"]
    for name, group, url, *extra in backends:
        more = "".join(f", {e}" for e in extra)
        lines.append(f"  - {{ name: {name}, url: '{url}', group: {group}{more} }}")
    sections.setdefault("health", "{ interval_ms: 200, timeout_ms: 300, stats: ui_api }")
    sections.setdefault("log", "{ level: warn }")
    sections.setdefault("store", f"{{ url: 'sqlite://{tmp_path}/sluice.db' }}")
    for key, value in sections.items():
        lines.append(f"{key}: {value}")
    path = tmp_path / "sluice.yaml"
    path.write_text("\n".join(lines) + "\n")
    return path


@pytest.fixture
def procs():
    started = []
    yield started
    for p in reversed(started):
        p.stop()


@pytest.fixture
def three_clusters(procs, tmp_path):
    """adhoc-1 and adhoc-2 in group adhoc, etl-1 in group etl, and a gateway in front."""
    fakes = {n: Fake(n, "--pages", "4", "--rows-per-page", "3") for n in ("adhoc-1", "adhoc-2", "etl-1")}
    procs.extend(fakes.values())
    cfg = write_config(tmp_path, [(n, n.split("-")[0], f.url) for n, f in fakes.items()], routing="{ default_group: adhoc }")
    gw = Gateway(cfg)
    procs.append(gw)
    return gw, fakes


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Daemon:
    """A foreground process started and stopped by the test."""

    def __init__(self, args, ready_port):
        self.p = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        deadline = time.time() + 10
        while time.time() < deadline:
            if self.p.poll() is not None:
                raise RuntimeError(f"{args[0]} exited: {self.p.stderr.read()}")
            try:
                socket.create_connection(("127.0.0.1", ready_port), timeout=0.2).close()
                return
            except OSError:
                time.sleep(0.02)
        raise RuntimeError(f"{args[0]} did not listen on {ready_port}")

    def stop(self, sig=None):
        if self.p.poll() is None:
            self.p.terminate()
            try:
                self.p.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.p.kill()
                self.p.wait()
        return self.p.returncode


def psql(sql, db="test"):
    subprocess.run(["psql", "-h", "127.0.0.1", "-U", "postgres", "-d", db, "-v", "ON_ERROR_STOP=1", "-qc", sql],
                   check=True, capture_output=True, timeout=30)


@pytest.fixture
def fleet_db():
    """A fresh database on the machine's PostgreSQL (127.0.0.1:5432), dropped afterwards."""
    name = f"sluice_fleet_{os.getpid()}"
    psql(f"DROP DATABASE IF EXISTS {name}")
    psql(f"CREATE DATABASE {name}")
    yield f"postgres://postgres@127.0.0.1:5432/{name}", name
    psql(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")


def wait_until(what, ok, limit=10.0):
    """Poll `ok()` until it holds; fail naming `what` after `limit` seconds (a bound on hanging)."""
    deadline = time.time() + limit
    while not ok():
        assert time.time() < deadline, what
        time.sleep(0.05)


def concurrently(n, one):
    """Run one(i) for i in range(n) on n threads; returns (results, wall seconds)."""
    start = time.time()
    with concurrent.futures.ThreadPoolExecutor(max_workers=n) as pool:
        results = list(pool.map(one, range(n)))
    return results, time.time() - start


def shared_fleet(procs, tmp_path, db_url, instances, pages, **sections):
    """A Redis of the test's own, clusters c1..c3 (`pages` pages of 2 rows), and `instances`
    gateways sharing that Redis and the PostgreSQL database `db_url`. A section given as a
    function is called with the instance's own directory."""
    redis_port = free_port()
    procs.append(Daemon(["redis-server", "--port", str(redis_port), "--bind", "127.0.0.1", "--save", "",
                         "--appendonly", "no"], redis_port))
    fakes = {n: Fake(n, "--pages", str(pages), "--rows-per-page", "2") for n in ("c1", "c2", "c3")}
    procs.extend(fakes.values())
    gateways = []
    for i in range(instances):
        d = tmp_path / f"gw{i}"
        d.mkdir()
        own = {k: v(d) if callable(v) else v for k, v in sections.items()}
        cfg = write_config(
            d,
            [(n, "adhoc", f.url) for n, f in fakes.items()],
            cache=f"{{ valkey: {{ enabled: true, url: 'redis://127.0.0.1:{redis_port}/0', timeout_ms: 200, health_check_interval_ms: 200 }} }}",
            store=f"{{ url: '{db_url}' }}",
            **own,
        )
        gw = Gateway(cfg)
        procs.append(gw)
        gateways.append(gw)
    return gateways, fakes


def haproxy(tmp_path, servers, checks=False):
    """A round-robin HAProxy in front of `servers`; with `checks`, it health-checks them every
    100 ms and sends a request refused by a stopped one to another."""
    assert shutil.which("haproxy"), "haproxy is required (.ci/run installs it)"
    port = free_port()
    lines = [
        "global", "  maxconn 4096",
        "defaults", "  mode http", "  timeout connect 2s", "  timeout client 60s", "  timeout server 60s",
        # close the server side after each response, so every request is balanced on its own
        "  option http-server-close",
        "frontend trino", f"  bind 127.0.0.1:{port}", "  default_backend sluice",
        "backend sluice", "  balance roundrobin",
    ]
    if checks:
        lines += ["  option redispatch", "  retries 3", "  retry-on conn-failure"]
    check = " check inter 100 fall 1 rise 2" if checks else ""
    lines += [f"  server s{i} {addr}{check}" for i, addr in enumerate(servers)]
    cfg = tmp_path / "haproxy.cfg"
    cfg.write_text("\n".join(lines) + "\n")
    return Daemon(["haproxy", "-db", "-f", str(cfg)], port), port
