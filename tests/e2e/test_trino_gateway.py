"""End-to-end: Sluice started on a Trino Gateway configuration file as Trino Gateway's documentation
writes it, on Trino Gateway's own database (PostgreSQL, then MariaDB) with its clusters already in
`gateway_backend`, its routing rules file, the query-count module and the seed's Valkey section; the
real Python client runs queries routed by those rules; history reaches Sluice's history API and
Trino Gateway's `query_history`; changes flow both ways; the converted file and the import work."""
import json
import os
import subprocess
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
import trino

from conftest import Fake, Proc, free_port, http_json, psql, sluice_bin, wait_until

TOKEN = "tg-e2e-admin-token-0123456789"

# Trino Gateway's schema as its migrations leave it (V1, then routing_group and external_url)
TG_SCHEMA = [
    "CREATE TABLE gateway_backend (name VARCHAR(256) PRIMARY KEY, routing_group VARCHAR (256), "
    "backend_url VARCHAR (256), external_url VARCHAR (256), active BOOLEAN)",
    "CREATE TABLE query_history (query_id VARCHAR(256) PRIMARY KEY, query_text VARCHAR (256), created bigint, "
    "backend_url VARCHAR (256), user_name VARCHAR(256), source VARCHAR(256), routing_group VARCHAR (255), "
    "external_url VARCHAR (255))",
    "CREATE INDEX query_history_created_idx ON query_history(created)",
]

RULES = """---
name: "airflow"
description: "if query from airflow, route to etl group"
condition: 'request.getHeader("X-Trino-Source") == "airflow"'
actions:
  - 'result.put("routingGroup", "etl")'
---
name: "etl tables"
description: "queries of the sales schema go to etl"
priority: 1
condition: 'trinoQueryProperties.getCatalogSchemas().contains("hive.sales")'
actions:
  - 'result.put("routingGroup", "etl")'
"""


def mariadb(sql, db=None):
    args = ["mariadb", "-h", "127.0.0.1", "-P", "3306", "-u", "root", "-N", "-B"]
    if db:
        args += ["-D", db]
    out = subprocess.run(args + ["-e", sql], check=True, capture_output=True, text=True, timeout=30)
    return out.stdout


def pg_rows(sql, db):
    out = subprocess.run(["psql", "-h", "127.0.0.1", "-U", "postgres", "-d", db, "-At", "-F", "\t", "-c", sql],
                         check=True, capture_output=True, text=True, timeout=30)
    return out.stdout


class TgDatabase:
    """Trino Gateway's database on the machine's PostgreSQL or MariaDB, with its schema."""

    def __init__(self, kind):
        self.kind = kind
        self.name = f"tg_e2e_{os.getpid()}"
        if kind == "postgres":
            psql(f"DROP DATABASE IF EXISTS {self.name} WITH (FORCE)")
            psql(f"CREATE DATABASE {self.name}")
            self.jdbc = f"jdbc:postgresql://127.0.0.1:5432/{self.name}"
            self.user = "postgres"
        else:
            mariadb(f"DROP DATABASE IF EXISTS {self.name}; DROP DATABASE IF EXISTS sluice; CREATE DATABASE {self.name}")
            self.jdbc = f"jdbc:mysql://127.0.0.1:3306/{self.name}"
            self.user = "root"
        for sql in TG_SCHEMA:
            self.run(sql)

    def run(self, sql):
        if self.kind == "postgres":
            psql(sql, db=self.name)
        else:
            mariadb(sql, db=self.name)

    def rows(self, sql):
        text = pg_rows(sql, self.name) if self.kind == "postgres" else mariadb(sql, db=self.name)
        return [line.split("\t") for line in text.splitlines() if line]

    def drop(self):
        if self.kind == "postgres":
            psql(f"DROP DATABASE IF EXISTS {self.name} WITH (FORCE)")
        else:
            mariadb(f"DROP DATABASE IF EXISTS {self.name}; DROP DATABASE IF EXISTS sluice")


def tg_config(tmp_path, db, port, app_port, valkey_db):
    """A Trino Gateway configuration file as its documentation shows it."""
    (tmp_path / "routing_rules.yml").write_text(RULES)
    text = f"""requestRouter:
  port: {port}
  name: testTrinoRouter
  historySize: 1000

server:
  applicationConnectors:
    - type: http
      port: {app_port}
  adminConnectors:
    - type: http
      port: {free_port()}

dataStore:
  jdbcUrl: {db.jdbc}
  user: {db.user}
  password: ${{ENV:TG_DB_PASSWORD}}
  driver: {"org.postgresql.Driver" if db.kind == "postgres" else "com.mysql.cj.jdbc.Driver"}

clusterStatsConfiguration:
  monitorType: UI_API

monitor:
  taskDelaySeconds: 1

backendState:
  username: gateway
  ssl: false

routingRules:
  rulesEngineEnabled: true
  rulesConfigPath: {tmp_path / "routing_rules.yml"}

routing:
  defaultRoutingGroup: adhoc

modules:
  - io.trino.gateway.ha.module.HaGatewayProviderModule
  - io.trino.gateway.ha.module.ClusterStateListenerModule
  - io.trino.gateway.ha.module.ClusterStatsMonitorModule
  - io.trino.gateway.ha.module.QueryCountBasedRouterProvider

managedApps:
  - io.trino.gateway.ha.GatewayManagedApp
  - io.trino.gateway.ha.clustermonitor.ActiveClusterMonitor

valkeyConfiguration:
  enabled: true
  host: ${{VALKEY_HOST:127.0.0.1}}
  port: 6379
  database: {valkey_db}
  maxTotal: 20
  maxIdle: 10
  minIdle: 5
  timeoutMs: 2000
  cacheTtlSeconds: 1800
  healthCheckIntervalMs: 30000
"""
    path = tmp_path / "gateway-ha-config.yml"
    path.write_text(text)
    return path


class TgGateway(Proc):
    def __init__(self, config_path):
        super().__init__([sluice_bin(), "serve", "--trino-gateway-config", str(config_path), "--print-addrs"],
                         cwd=config_path.parent)
        self.host, port = self.info["proxy"].rsplit(":", 1)
        self.port = int(port)
        self.admin = f"http://{self.info['admin']}"
        wait_until("ready", lambda: http_json("GET", self.admin + "/readyz")[0] == 200)


AUTH = {"Authorization": f"Bearer {TOKEN}"}


def backends(gw):
    status, answer = http_json("GET", gw.admin + "/api/v1/backends", headers=AUTH)
    assert status == 200, answer
    return {b["name"]: b for b in answer}


@pytest.fixture
def tg_env(monkeypatch):
    monkeypatch.setenv("TG_DB_PASSWORD", "")
    monkeypatch.setenv("SLUICE_ADMIN_TOKEN", TOKEN)
    monkeypatch.setenv("RUST_LOG", "warn")


@pytest.mark.parametrize("kind", ["postgres", "mariadb"])
def test_sluice_runs_on_a_trino_gateway_config_and_database(kind, tmp_path, procs, tg_env):
    fakes = {n: Fake(n, "--pages", "3", "--rows-per-page", "2") for n in ("adhoc-1", "adhoc-2", "etl-1")}
    procs.extend(fakes.values())
    db = TgDatabase(kind)
    try:
        # the clusters Trino Gateway stored
        for name, f in fakes.items():
            group = name.split("-")[0]
            db.run(f"INSERT INTO gateway_backend VALUES ('{name}', '{group}', '{f.url}', '{f.url}', true)")
        db.run("INSERT INTO query_history VALUES ('20250101_000000_00000_old00', 'SELECT 0', 1000, "
               f"'{fakes['adhoc-1'].url}', 'ann', 'cli', 'adhoc', NULL)")
        port, app_port = free_port(), free_port()
        cfg = tg_config(tmp_path, db, port, app_port, valkey_db=3 if kind == "postgres" else 4)

        check = subprocess.run([sluice_bin(), "check-config", "--trino-gateway", str(cfg)],
                               capture_output=True, text=True, timeout=30)
        assert check.returncode == 0, check.stderr
        for key in ["requestRouter.historySize", "managedApps", "valkeyConfiguration.maxIdle",
                    "modules: HaGatewayProviderModule"]:
            assert f"not honoured: {key}" in check.stdout, check.stdout

        gw = TgGateway(cfg)
        procs.append(gw)
        assert gw.port == port and gw.admin.endswith(f":{app_port}")
        wait_until("the clusters of gateway_backend", lambda: set(backends(gw)) == set(fakes))
        for name in fakes:
            wait_until(f"{name} healthy", lambda: backends(gw)[name]["status"]["health"] == "HEALTHY")

        def run(user, source=None, sql="SELECT n, cluster FROM t"):
            conn = trino.dbapi.connect(host=gw.host, port=gw.port, user=user, source=source or "e2e",
                                       http_scheme="http", max_attempts=1)
            cur = conn.cursor()
            cur.execute(sql)
            rows = cur.fetchall()
            assert [r[0] for r in rows] == list(range(6))
            return rows[0][1], cur.query_id

        ran = {}
        for i in range(6):
            cluster, qid = run("alice")
            ran[qid] = cluster
            assert cluster.startswith("adhoc-"), "no rule: the default group"
        cluster, qid = run("bob", source="airflow")
        assert cluster == "etl-1", "the airflow rule"
        ran[qid] = cluster
        cluster, qid = run("carol", sql="SELECT n, cluster FROM hive.sales.orders")
        assert cluster == "etl-1", "the rule on the statement's schema"
        ran[qid] = cluster
        assert {c for c in ran.values() if c.startswith("adhoc")} == {"adhoc-1", "adhoc-2"}, "query-count spreads"

        # history: Sluice's API, and Trino Gateway's table for its UI and tools
        def sluice_history():
            return {q["query_id"]: q for q in http_json("GET", gw.admin + "/api/v1/queries?limit=100", headers=AUTH)[1]["queries"]}
        wait_until("history in the API", lambda: set(ran) <= set(sluice_history()))
        h = sluice_history()
        assert all(h[q]["backend"] == c for q, c in ran.items())
        assert h[qid]["routing_group"] == "etl"

        def tg_history():
            return {r[0]: r for r in db.rows("SELECT query_id, backend_url, user_name, routing_group FROM query_history")}
        wait_until("history in Trino Gateway's query_history", lambda: set(ran) <= set(tg_history()))
        t = tg_history()
        assert t[qid][1] == fakes["etl-1"].url and t[qid][2] == "carol" and t[qid][3] == "etl"
        assert "20250101_000000_00000_old00" in t, "its own rows stay"

        # Trino Gateway's API on Sluice writes gateway_backend; a row added there is followed
        auth = {"Authorization": f"Bearer {TOKEN}"}
        status, _ = http_json("POST", gw.admin + "/gateway/backend/deactivate/adhoc-2", headers=auth)
        assert status == 200
        wait_until("deactivation written back", lambda: db.rows(
            "SELECT active FROM gateway_backend WHERE name = 'adhoc-2'")[0][0] in ("f", "0"))
        extra = Fake("etl-2", "--pages", "1")
        procs.append(extra)
        db.run(f"INSERT INTO gateway_backend VALUES ('etl-2', 'etl', '{extra.url}', '{extra.url}', true)")
        wait_until("a row added to gateway_backend is followed", lambda: "etl-2" in backends(gw), limit=15)
        assert db.rows("SELECT active FROM gateway_backend WHERE name = 'adhoc-2'")[0][0] in ("f", "0"), \
            "not undone by the next read"
        wait_until("etl-2 healthy", lambda: backends(gw)["etl-2"]["status"]["health"] == "HEALTHY")
        for _ in range(4):
            cluster, _ = run("alice")
            assert cluster == "adhoc-1", "adhoc-2 is deactivated"

        # a reload reads Trino Gateway's file and its rules file again
        (tmp_path / "routing_rules.yml").write_text(RULES.replace('"airflow"', '"airflow2"'))
        reload = subprocess.run([sluice_bin(), "reload", "--admin-url", gw.admin], capture_output=True, text=True,
                                timeout=30, env={**os.environ, "SLUICE_ADMIN_TOKEN": TOKEN})
        assert reload.returncode == 0, reload.stderr + reload.stdout
        cluster, _ = run("bob", source="airflow")
        assert cluster == "adhoc-1", "the old rule is gone"
        cluster, _ = run("bob", source="airflow2")
        assert cluster in ("etl-1", "etl-2"), "the new rule routes"
        gw.stop()

        # the converted file runs as Sluice's own
        out = tmp_path / "sluice.yaml"
        conv = subprocess.run([sluice_bin(), "convert-config", str(cfg), "-o", str(out)],
                              capture_output=True, text=True, timeout=30)
        assert conv.returncode == 0, conv.stderr
        text = out.read_text()
        assert "trino_gateway:" in text and "builtin:query-count" in text and TOKEN not in text
        check = subprocess.run([sluice_bin(), "check-config", str(out)], capture_output=True, text=True, timeout=30)
        assert check.returncode == 0, check.stderr + check.stdout

        # and everything can move into Sluice's own tables
        rows = len(tg_history())
        imp = subprocess.run([sluice_bin(), "store", "import", "--from-trino-gateway", db.jdbc, "--user", db.user,
                              "--store-url", f"sqlite://{tmp_path}/imported.db"],
                             capture_output=True, text=True, timeout=60)
        assert imp.returncode == 0, imp.stderr
        assert "imported 4 of 4 backends" in imp.stdout, imp.stdout
        assert f"{rows} of {rows} history rows" in imp.stdout, imp.stdout
    finally:
        db.drop()


def test_two_instances_on_one_trino_gateway_database_follow_it_as_one(tmp_path, procs, tg_env):
    fakes = {n: Fake(n, "--pages", "1") for n in ("adhoc-1", "adhoc-2")}
    procs.extend(fakes.values())
    db = TgDatabase("postgres")
    try:
        db.run(f"INSERT INTO gateway_backend VALUES ('adhoc-1', 'adhoc', '{fakes['adhoc-1'].url}', NULL, true)")
        gateways = []
        for i in range(2):
            d = tmp_path / f"i{i}"
            d.mkdir()
            gw = TgGateway(tg_config(d, db, free_port(), free_port(), valkey_db=5))
            procs.append(gw)
            gateways.append(gw)
        for gw in gateways:
            wait_until("the first cluster", lambda: set(backends(gw)) == {"adhoc-1"})
        # a row both instances see at once: each applies it, one first
        db.run(f"INSERT INTO gateway_backend VALUES ('adhoc-2', 'adhoc', '{fakes['adhoc-2'].url}', NULL, true)")
        for gw in gateways:
            wait_until("the added cluster on every instance", lambda: "adhoc-2" in backends(gw), limit=15)
        # a change through one instance reaches the other and the table, and stays
        status, _ = http_json("POST", gateways[1].admin + "/gateway/backend/deactivate/adhoc-1", headers=AUTH)
        assert status == 200
        wait_until("written back", lambda: db.rows(
            "SELECT active FROM gateway_backend WHERE name = 'adhoc-1'")[0][0] == "f")
        wait_until("followed by the other instance", lambda: backends(gateways[0])["adhoc-1"]["draining"])
        # the next reads of gateway_backend (every 5 s on each instance) must not undo it
        reads = time.time() + 6
        wait_until("two reads later", lambda: time.time() > reads)
        assert all(backends(gw)["adhoc-1"]["draining"] for gw in gateways)
        for gw in gateways:
            gw.stop()
        logs = "".join(gw.p.stderr.read() for gw in gateways)
        bad = [line for line in logs.splitlines() if "not applied" in line or "cannot follow" in line
               or "not written back" in line]
        assert not bad, bad
        assert db.rows("SELECT active FROM gateway_backend WHERE name = 'adhoc-1'")[0][0] == "f"
    finally:
        db.drop()


class Router(BaseHTTPRequestHandler):
    """An external routing service: etl for user bob; a slow answer for user slow."""
    seen = []

    def do_POST(self):
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        Router.seen.append((dict(self.headers), body))
        user = body["trinoRequestUser"]["user"]
        if user == "slow":
            time.sleep(2)
        answer = {"routingGroup": "etl" if user == "bob" else None, "errors": ["no"] if user == "err" else None}
        data = json.dumps(answer).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, *args):
        pass


def test_the_external_routing_service_routes_and_a_failing_one_does_not_stop_queries(tmp_path, procs, tg_env):
    fakes = {n: Fake(n, "--pages", "1") for n in ("adhoc-1", "etl-1")}
    procs.extend(fakes.values())
    server = ThreadingHTTPServer(("127.0.0.1", 0), Router)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        port = free_port()
        cfg = tmp_path / "config.yaml"
        cfg.write_text(f"""serverConfig:
  node.environment: test
  http-server.http.port: {port}
routingRules:
  rulesEngineEnabled: true
  rulesType: EXTERNAL
  rulesExternalConfiguration:
    urlPath: http://127.0.0.1:{server.server_port}/get-routing-group
    excludeHeaders:
      - X-Secret-Header
""")
        gw = TgGateway(cfg)
        procs.append(gw)
        auth = {"Authorization": f"Bearer {TOKEN}", "Content-Type": "application/json"}
        for name, f in fakes.items():
            body = json.dumps({"name": name, "proxyTo": f.url, "externalUrl": f.url, "routingGroup": name.split("-")[0],
                               "active": True})
            # Trino Gateway's API, on its one airlift port
            status, answer = http_json("POST", f"http://127.0.0.1:{port}/entity?entityType=GATEWAY_BACKEND",
                                       body=body, headers=auth)
            assert status == 200, answer
        for name in fakes:
            wait_until(f"{name} healthy", lambda: backends(gw)[name]["status"]["health"] == "HEALTHY")

        def run(user):
            conn = trino.dbapi.connect(host=gw.host, port=gw.port, user=user, http_scheme="http", max_attempts=1,
                                       http_headers={"X-Secret-Header": "s3cret", "Authorization": "Bearer abc"})
            cur = conn.cursor()
            cur.execute("SELECT n, cluster FROM hive.web.clicks")
            return cur.fetchall()[0][1]

        assert run("bob") == "etl-1", "the service's group"
        assert run("carol") == "adhoc-1", "no group named: the default"
        assert run("err") == "adhoc-1", "errors answered: the default"
        start = time.time()
        assert run("slow") == "adhoc-1", "past the time limit: the default"
        assert time.time() - start < 1.9, "the query did not wait for the slow service"
        headers, body = Router.seen[0]
        assert body["trinoQueryProperties"]["tables"] == ["hive.web.clicks"]
        assert body["trinoQueryProperties"]["catalogSchemas"] == ["hive.web"]
        lower = {k.lower() for k in headers}
        assert "x-trino-user" in lower and "x-secret-header" not in lower, headers
        assert all("authorization" not in {k.lower() for k in h} for h, _ in Router.seen), "credentials never leave"
        metrics = http_json("GET", gw.admin + "/metrics")[1]
        counts = {r: float(line.split()[-1]) for line in metrics.splitlines() for r in ("group", "kept", "failed")
                  if line.startswith(f'sluice_external_routing_calls_total{{result="{r}"}}')}
        assert counts == {"group": 1, "kept": 1, "failed": 2}, metrics
    finally:
        server.shutdown()
