"""Rules on tables reach statements the real client sends: parameterized queries (EXECUTE
IMMEDIATE, and PREPARE/EXECUTE with X-Trino-Prepared-Statement in legacy mode), CTEs that shadow
a table name, headers of the team's own. And hostile statements: multi-MiB bodies (a kill_query
call with a huge message, a huge IN list) leave the process's memory flat."""
import json
import urllib.request

import trino

from conftest import Fake, Gateway, http_json, write_config

CHAIN = (
    "[{ slot: rules, module: 'builtin:routing-rules', config: { default_group: adhoc, rules: ["
    "{ name: sales, when: { tables: [hive.sales.orders] }, group: etl },"
    "{ name: team, when: { headers: { x-team: growth } }, group: etl } ] } }]"
)


def gateway(procs, tmp_path, **sections):
    fakes = {n: Fake(n) for n in ("adhoc-1", "etl-1")}
    procs.extend(fakes.values())
    cfg = write_config(tmp_path, [("adhoc-1", "adhoc", fakes["adhoc-1"].url), ("etl-1", "etl", fakes["etl-1"].url)],
                       routing=f"{{ default_group: adhoc, chain: {CHAIN} }}", **sections)
    gw = Gateway(cfg)
    procs.append(gw)
    return gw, fakes


def lands(gw, sql, params=None, **kwargs):
    conn = trino.dbapi.connect(host=gw.host, port=gw.port, user="bob", catalog="hive", schema="web",
                               max_attempts=1, **kwargs)
    cur = conn.cursor()
    cur.execute(sql, params) if params is not None else cur.execute(sql)
    return {r[1] for r in cur.fetchall()}


def test_parameterized_queries_route_by_table_rule(procs, tmp_path):
    gw, fakes = gateway(procs, tmp_path)
    assert lands(gw, "SELECT * FROM sales.orders") == {"etl-1"}
    # the client sends EXECUTE IMMEDIATE '…' USING …
    assert lands(gw, "SELECT * FROM sales.orders WHERE id = ?", (42,)) == {"etl-1"}
    assert lands(gw, "SELECT * FROM sales.returns WHERE id = ?", (42,)) == {"adhoc-1"}
    # legacy mode: PREPARE, then EXECUTE with the text in X-Trino-Prepared-Statement
    assert lands(gw, "SELECT * FROM sales.orders WHERE id = ?", (7,), legacy_prepared_statements=True) == {"etl-1"}
    # a CTE named like the table is not the table
    assert lands(gw, "WITH orders AS (SELECT 1) SELECT * FROM orders") == {"adhoc-1"}
    # a header of the team's own
    assert lands(gw, "SELECT 1", http_headers={"X-Team": "growth"}) == {"etl-1"}
    assert sum(f.stats()["unknown_query_requests"] for f in fakes.values()) == 0


def rss_peak_kib(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1])
    raise AssertionError("no VmHWM")


def post(url, body):
    req = urllib.request.Request(url + "/v1/statement", data=body, method="POST",
                                 headers={"X-Trino-User": "bob", "X-Trino-Catalog": "hive", "X-Trino-Schema": "web"})
    try:
        with urllib.request.urlopen(req, timeout=60) as resp:
            return resp.status
    except urllib.error.HTTPError as e:
        return e.code


def test_multi_mib_statements_keep_memory_flat(procs, tmp_path):
    # a generous filter time limit: this is about memory, and a machine busy with other work
    # could otherwise push one routing call past the default 50 ms (the native fallback decides)
    # and a generous health time limit: an unoptimised build scans each 15 MiB statement for
    # seconds on the runtime's threads, and a 300 ms limit would mark both clusters down meanwhile
    # (then the last query lands in the default group) — not what this test measures
    gw, _ = gateway(procs, tmp_path, proxy="{ max_statement_bytes: 16777216 }", filters="{ timeout_ms: 2000 }",
                    health="{ interval_ms: 200, timeout_ms: 5000, stats: ui_api }")
    before = rss_peak_kib(gw.p.pid)
    size = 15 << 20
    bodies = [
        # a kill_query call with a 15 MiB message: one linear pass, nothing kept
        b"CALL system.runtime.kill_query(message => '" + b"x" * size + b"', query_id => '20240101_000000_00000_aaaaa')",
        b"CALL system.runtime.kill_query(" + b"'a'," * (size // 4),
        # a 15 MiB IN list: read by the scanner, not parsed into a tree
        b"SELECT * FROM sales.orders WHERE id IN (" + b",".join(b"%d" % i for i in range(1_800_000)) + b")",
    ]
    statuses = [post(gw.url, b) for b in bodies for _ in range(2)]
    assert all(s in (200, 404) for s in statuses), statuses
    peak = rss_peak_kib(gw.p.pid)
    grown_mib = (peak - before) / 1024
    print(f"\npeak RSS {peak / 1024:.0f} MiB after 6 statements of 15 MiB (grew {grown_mib:.0f} MiB)")
    # the body itself is held once or twice while it is forwarded; a parse tree would be gigabytes
    assert grown_mib < 200, grown_mib
    # and the gateway still routes
    assert lands(gw, "SELECT * FROM sales.orders") == {"etl-1"}


TG_RULES = """
---
name: "airflow"
description: "if query from airflow, route to etl group"
priority: 0
condition: 'request.getHeader("X-Trino-Source") == "airflow"'
actions:
  - 'result.put("routingGroup", "etl")'
---
name: "airflow special"
description: "if query from airflow with special label, route to etl-special group"
priority: 1
condition: 'request.getHeader("X-Trino-Source") == "airflow" && request.getHeader("X-Trino-Client-Tags") contains "label=special"'
actions:
  - 'result.put("routingGroup", "etl-special")'
---
name: "orders"
priority: 2
condition: 'trinoQueryProperties.tablesContains("hive.sales.orders")'
actions:
  - 'result.put("routingGroup", "etl")'
"""


def test_trino_gateway_rules_import_and_route_the_same(procs, tmp_path):
    import subprocess
    import yaml
    from conftest import sluice_bin
    rules = tmp_path / "routing_rules.yml"
    rules.write_text(TG_RULES)
    out = subprocess.run([sluice_bin(), "rules", "import", str(rules)], capture_output=True, text=True, timeout=30)
    assert out.returncode == 0, out.stderr
    chain = yaml.safe_load(out.stdout)
    fakes = {n: Fake(n) for n in ("adhoc-1", "etl-1", "special-1")}
    procs.extend(fakes.values())
    cfg = write_config(tmp_path, [("adhoc-1", "adhoc", fakes["adhoc-1"].url), ("etl-1", "etl", fakes["etl-1"].url),
                                  ("special-1", "etl-special", fakes["special-1"].url)],
                       routing=json.dumps({"default_group": "adhoc", "chain": chain}))
    assert subprocess.run([sluice_bin(), "check-config", str(cfg)], capture_output=True, timeout=30).returncode == 0
    gw = Gateway(cfg)
    procs.append(gw)
    # Trino Gateway fires both airflow rules and the later one wins: so here
    assert lands(gw, "SELECT 1", source="airflow", client_tags=["label=special"]) == {"special-1"}
    assert lands(gw, "SELECT 1", source="airflow") == {"etl-1"}
    assert lands(gw, "SELECT 1", source="cli") == {"adhoc-1"}
    assert lands(gw, "SELECT * FROM sales.orders WHERE id = ?", (1,), source="cli") == {"etl-1"}
    # what cannot be translated is named, and the command fails
    rules.write_text(TG_RULES + """---
name: "untagged"
condition: 'request.getHeader("X-Trino-Client-Tags") == null'
actions:
  - 'result.put("routingGroup", "etl")'
""")
    out = subprocess.run([sluice_bin(), "rules", "import", str(rules)], capture_output=True, text=True, timeout=30)
    assert out.returncode != 0 and "rule 'untagged'" in out.stderr, out.stderr
