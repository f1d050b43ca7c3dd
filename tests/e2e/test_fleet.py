"""Several Sluice instances as one: 3 gateways share one Redis behind a real round-robin HAProxy,
and the real Python trino client runs 300 concurrent multi-page queries through it."""
import subprocess

import pytest
import trino

from conftest import concurrently, haproxy, http_json, shared_fleet, wait_until


def test_three_instances_behind_haproxy_route_every_follow_up(procs, tmp_path, fleet_db):
    db_url, db_name = fleet_db
    gateways, fakes = shared_fleet(procs, tmp_path, db_url, 3, pages=5, proxy="{ trust_forwarded_headers: false }")
    wait_until("L2 never came up",
               lambda: all(http_json("GET", g.admin + "/api/v1/cache")[1]["l2_healthy"] for g in gateways))
    lb, port = haproxy(tmp_path, [f"{g.host}:{g.port}" for g in gateways])
    procs.append(lb)

    def one(i):
        conn = trino.dbapi.connect(host="127.0.0.1", port=port, user=f"user{i % 11}", max_attempts=1)
        cur = conn.cursor()
        cur.execute(f"SELECT {i}")
        return cur.fetchall()

    results, wall = concurrently(300, one)
    assert all(len(r) == 10 and len({row[1] for row in r}) == 1 for r in results)
    misrouted = sum(f.stats()["unknown_query_requests"] for f in fakes.values())
    tiers = {"l1": 0, "l2": 0, "l3": 0, "search": 0}
    for g in gateways:
        stats = http_json("GET", g.admin + "/api/v1/cache")[1]
        for t in tiers:
            tiers[t] += stats[t]["hits"]
    total = sum(tiers.values())
    shares = ", ".join(f"{t} {100 * n / total:.1f}% ({n})" for t, n in tiers.items())
    print(f"\n300 concurrent queries x 5 pages through HAProxy to 3 instances: wall {wall:.2f}s, "
          f"mis-routed {misrouted}; follow-up lookups served by {shares}")
    assert misrouted == 0
    # round robin really spread the follow-ups: other instances found them in the shared tier
    assert tiers["l2"] > 300, tiers
    # every query has its history row in the shared PostgreSQL once the writers drain
    wait_until("L3 never drained",
               lambda: not any(http_json("GET", g.admin + "/api/v1/cache")[1]["l3_store"]["queued"] for g in gateways))
    out = subprocess.run(["psql", "-h", "127.0.0.1", "-U", "postgres", "-d", db_name, "-tAc", "SELECT count(*) FROM query_history"],
                         check=True, capture_output=True, text=True)
    assert int(out.stdout.strip()) == 300
