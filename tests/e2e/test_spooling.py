"""Trino's spooling protocol through Sluice with the real Python client: result pages carry
segments (inline and spooled, under opaque tokens); Sluice makes every segment URI name its query
and backend, so each download and ack reaches the cluster that wrote it, with no state kept."""
import trino

from conftest import Fake, Gateway, concurrently, write_config


def test_spooled_mode_end_to_end_with_two_clusters_in_one_group(procs, tmp_path):
    fakes = {n: Fake(n, "--pages", "5", "--rows-per-page", "3") for n in ("c1", "c2")}
    procs.extend(fakes.values())
    cfg = write_config(tmp_path, [(n, "adhoc", f.url) for n, f in fakes.items()],
                       cache="{ search: { enabled: false } }")
    gw = Gateway(cfg)
    procs.append(gw)

    def one(i):
        conn = trino.dbapi.connect(host=gw.host, port=gw.port, user=f"u{i}", encoding="json", max_attempts=1)
        cur = conn.cursor()
        cur.execute(f"SELECT {i}")
        return cur.fetchall()

    results, wall = concurrently(24, one)
    for rows in results:
        assert [r[0] for r in rows] == list(range(15)), "5 pages x 3 rows, in order"
        assert len({r[1] for r in rows}) == 1, "one query, one cluster"
    stats = {n: f.stats() for n, f in fakes.items()}
    print(f"\n24 spooled queries in {wall:.2f}s; segments downloaded "
          f"{ {n: s['segments_downloaded'] for n, s in stats.items()} }")
    # both clusters ran queries, and every segment request reached the cluster that wrote it
    assert all(s["queries_created"] > 0 for s in stats.values()), stats
    assert sum(s["segments_downloaded"] for s in stats.values()) == 24 * 4, stats
    assert sum(s["unknown_segment_requests"] for s in stats.values()) == 0, stats
    assert sum(s["unknown_query_requests"] for s in stats.values()) == 0, stats
