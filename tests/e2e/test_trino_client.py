"""End-to-end: the real Python `trino` client through Sluice to fake Trino clusters."""
import signal
import subprocess
import threading

import pytest
import trino

from conftest import Fake, Gateway, concurrently, http_json, sluice_bin, write_config


def connect(gw, group=None, user="alice"):
    headers = {"X-Trino-Routing-Group": group} if group else None
    return trino.dbapi.connect(host=gw.host, port=gw.port, user=user, http_scheme="http", http_headers=headers, max_attempts=1)


def misroutes(fakes):
    return sum(f.stats()["unknown_query_requests"] for f in fakes.values())


def test_queries_in_several_groups_return_every_page(three_clusters):
    gw, fakes = three_clusters
    for group, expect in [(None, {"adhoc-1", "adhoc-2"}), ("adhoc", {"adhoc-1", "adhoc-2"}), ("etl", {"etl-1"})]:
        seen = set()
        for _ in range(6):
            cur = connect(gw, group).cursor()
            cur.execute("SELECT n, cluster FROM t")
            rows = cur.fetchall()
            assert [r[0] for r in rows] == list(range(12)), "4 pages x 3 rows, in order"
            assert len({r[1] for r in rows}) == 1, "one query, one cluster"
            assert [c[0] for c in cur.description] == ["n", "cluster"]
            seen.add(rows[0][1])
        assert seen <= expect and seen, (group, seen)
    assert misroutes(fakes) == 0


def test_cancel_reaches_the_owning_cluster(three_clusters):
    gw, fakes = three_clusters
    cur = connect(gw).cursor()
    cur.execute("SELECT * FROM big -- fake:pages=1000")
    assert cur.fetchone() is not None
    cur.cancel()
    assert cur._query.cancelled
    cancelled = {n: f.stats()["cancelled"] for n, f in fakes.items()}
    assert sum(cancelled.values()) == 1, cancelled
    assert misroutes(fakes) == 0


def test_kill_query_call_goes_to_the_owner(three_clusters):
    gw, fakes = three_clusters
    for _ in range(4):
        victim = connect(gw).cursor()
        victim.execute("SELECT * FROM big -- fake:pages=1000")
        qid = victim.query_id
        killer = connect(gw, user="admin").cursor()
        killer.execute(f"-- operator kill\nCALL system.runtime.kill_query(query_id => '{qid}', message => 'too slow')")
        killer.fetchall()
        with pytest.raises(trino.exceptions.TrinoQueryError) as err:
            victim.fetchall()
        assert "canceled" in str(err.value).lower()
    assert misroutes(fakes) == 0


def test_200_concurrent_queries_have_zero_misrouted_follow_ups(three_clusters):
    gw, fakes = three_clusters

    def one(i):
        cur = connect(gw, "etl" if i % 4 == 0 else None, user=f"user{i % 7}").cursor()
        cur.execute(f"SELECT {i} -- fake:pages=5")
        return cur.fetchall()

    results, wall = concurrently(200, one)
    assert all(len(r) == 15 for r in results)
    created = {n: f.stats()["queries_created"] for n, f in fakes.items()}
    bad = misroutes(fakes)
    print(f"\n200 concurrent queries x 5 pages: wall {wall:.2f}s, mis-routed follow-ups {bad}, per cluster {created}")
    assert bad == 0
    assert sum(created.values()) == 200
    assert created["etl-1"] == 50
    assert created["adhoc-1"] > 0 and created["adhoc-2"] > 0


def test_a_killed_backend_stops_receiving_new_queries(three_clusters, procs):
    gw, fakes = three_clusters
    fakes["adhoc-2"].stop(signal.SIGKILL)
    took = gw.wait_health("adhoc-2", "UNHEALTHY", limit=10.0)
    print(f"\nkilled backend marked UNHEALTHY after {took:.2f}s (interval 200 ms, timeout 300 ms)")
    for _ in range(10):
        cur = connect(gw).cursor()
        cur.execute("SELECT 1")
        assert {r[1] for r in cur.fetchall()} == {"adhoc-1"}
    assert fakes["adhoc-1"].stats()["unknown_query_requests"] == 0


def test_unknown_group_and_unknown_query_get_documented_errors(three_clusters):
    gw, fakes = three_clusters
    # as in Trino Gateway, a group nobody serves is the default group (routing.strict_groups: off)
    cur = connect(gw, "nosuchgroup").cursor()
    cur.execute("SELECT 1")
    assert {row[1] for row in cur.fetchall()} <= {"adhoc-1", "adhoc-2"}

    status, body = http_json("GET", gw.url + "/v1/statement/executing/20200101_000000_00001_xxxxx/y/1")
    assert status == 404 and body["error"]["errorName"] == "QUERY_NOT_FOUND"
    # not a query id: no stickiness, forwarded to a cluster, which answers for itself
    status, body = http_json("GET", gw.url + "/v1/query/not_an_id")
    assert not (isinstance(body, dict) and body.get("source") == "sluice"), body
    status, body = http_json("GET", gw.url + "/not/trino")
    assert status == 404 and body["error"]["errorName"] == "NOT_FOUND"
    status, body = http_json("POST", gw.url + "/v1/statement", body="SELECT 1", headers={"X-Trino-User": "a", "X-Trino-Routing-Group": "etl"})
    assert status == 200 and body["nextUri"].startswith(gw.url)
    assert misroutes(fakes) == 0


def test_sigterm_stops_the_gateway_cleanly(procs, tmp_path):
    fake = Fake("adhoc-1")
    procs.append(fake)
    gw = Gateway(write_config(tmp_path, [("adhoc-1", "adhoc", fake.url)]))
    procs.append(gw)
    cur = connect(gw).cursor()
    cur.execute("SELECT 1")
    assert len(cur.fetchall()) == 6
    assert gw.stop(signal.SIGTERM) == 0


# files `serve` refuses only after binding: on ports of their own
EPHEMERAL = "listen: 127.0.0.1:0\nadmin: { listen: 127.0.0.1:0 }\n"

BAD_CONFIGS = {
    "unknown key": ("backends:\n  - name: a\n    url: http://127.0.0.1:1\n    colour: red\n", ["colour", "line 4"]),
    "broken yaml": ("backends: [\n  { name: a\n", ["line"]),
    "duplicate name": ("backends:\n  - { name: a, url: 'http://h:1' }\n  - { name: a, url: 'http://h:2' }\n", ["backends[1].name", "line 3"]),
    "unset variable": ("listen: ${SLUICE_SURELY_UNSET_VAR}\n", ["SLUICE_SURELY_UNSET_VAR", "line 1"]),
    "bad stats source": ("health: { stats: jmx }\n", ["health.stats", "jmx"]),
    "port out of range": ("backends: [{ name: a, url: 'http://127.0.0.1:99999' }]\n", ["backends[0].url", "port 99999"]),
    "ttl overflows": ("cache: { l1: { ttl_seconds: 18446744073709551615 } }\n", ["cache.l1.ttl_seconds", "line 1"]),
    "bad valkey url": ("cache: { valkey: { enabled: true, url: 'redis://h:70000/0' } }\n", ["cache.valkey.url", "port"]),
    "module is not a component": (EPHEMERAL + "store: { url: '' }\nrouting: { chain: [ { slot: a, module: '{dir}/junk.wasm' } ] }\n", ["slot 'a'", "compile"]),
    "sqlite directory missing": (EPHEMERAL + "store: { url: 'sqlite:///surely/missing/dir/x.db' }\n", ["store.url", "does not exist"]),
    "certificate file missing": (EPHEMERAL + "store: { url: '' }\nproxy: { tls: { cert: '{dir}/none.pem', key: '{dir}/none.key' } }\n", ["proxy.tls", "none.pem"]),
    "certificate is not PEM": ("listen: 127.0.0.1:0\nstore: { url: '' }\nadmin: { listen: 127.0.0.1:0, tls: { cert: '{dir}/junk.wasm', key: '{dir}/junk.wasm' } }\n", ["admin.tls", "junk.wasm"]),
    "backend CA missing": (EPHEMERAL + "store: { url: '' }\nbackend_tls: { ca: '{dir}/none-ca.pem' }\n", ["backend_tls", "none-ca.pem"]),
    "sentinel without sentinels": ("cache: { valkey: { enabled: true, mode: sentinel } }\n", ["cache.valkey.nodes", "line 1"]),
    "otlp endpoint not http": ("tracing: { otlp_endpoint: 'grpc://collector:4317' }\n", ["tracing.otlp_endpoint", "line 1"]),
}


@pytest.mark.parametrize("case", sorted(BAD_CONFIGS))
def test_bad_config_is_refused_with_the_field_and_line(case, tmp_path):
    text, needles = BAD_CONFIGS[case]
    (tmp_path / "junk.wasm").write_bytes(b"junk, not a component")
    path = tmp_path / "bad.yaml"
    path.write_text(text.replace("{dir}", str(tmp_path)))
    # what `serve` refuses, `check-config` refuses first, with the same words
    for args in (["check-config", str(path)], ["serve", "--config", str(path)]):
        out = subprocess.run([sluice_bin(), *args], capture_output=True, text=True, timeout=20)
        assert out.returncode != 0, (args, out.stdout)
        for needle in needles:
            assert needle in out.stderr, (case, args, out.stderr)


def test_example_configs_pass_check_config():
    from conftest import ROOT
    for path in sorted((ROOT / "config").glob("*.yaml")):
        out = subprocess.run([sluice_bin(), "check-config", str(path)], capture_output=True, text=True, timeout=20)
        assert out.returncode == 0, (path, out.stderr)
        assert "OK" in out.stdout


def test_routing_rules_filter_routes_by_source_and_tags(procs, tmp_path):
    fakes = {n: Fake(n) for n in ("adhoc-1", "etl-1", "special-1")}
    procs.extend(fakes.values())
    chain = (
        "[{ slot: rules, module: 'builtin:routing-rules', config: { rules: ["
        "{ name: special, priority: 10, when: { source: airflow, client_tags: [label=special] }, group: etl-special },"
        "{ name: airflow, when: { source: airflow }, group: etl } ] } },"
        " { slot: balance, module: 'builtin:query-count' }]"
    )
    cfg = write_config(
        tmp_path,
        [("adhoc-1", "adhoc", fakes["adhoc-1"].url), ("etl-1", "etl", fakes["etl-1"].url), ("special-1", "etl-special", fakes["special-1"].url)],
        routing=f"{{ default_group: adhoc, chain: {chain} }}",
    )
    gw = Gateway(cfg)
    procs.append(gw)

    def cluster_of(**kwargs):
        conn = trino.dbapi.connect(host=gw.host, port=gw.port, user="bob", max_attempts=1, **kwargs)
        cur = conn.cursor()
        cur.execute("SELECT 1")
        return {r[1] for r in cur.fetchall()}

    assert cluster_of(source="airflow") == {"etl-1"}
    assert cluster_of(source="airflow", client_tags=["label=special"]) == {"special-1"}
    assert cluster_of(source="trino-cli") == {"adhoc-1"}
    filters = http_json("GET", gw.admin + "/api/v1/filters")[1]
    assert [f["slot"] for f in filters] == ["rules", "balance"]
    assert all(f["stats"]["traps"] == 0 and f["stats"]["calls"] >= 3 for f in filters)
    assert sum(f.stats()["unknown_query_requests"] for f in fakes.values()) == 0
