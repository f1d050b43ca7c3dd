"""End-to-end: `/metrics` after real traffic, parsed by the Prometheus client library's strict
OpenMetrics parser; every family operators alert on is there, with the labels they group by."""
import requests
import trino
from prometheus_client.openmetrics.parser import text_string_to_metric_families

from conftest import shared_fleet, wait_until


def scrape(gw):
    resp = requests.get(gw.admin + "/metrics", timeout=5)
    assert resp.status_code == 200
    assert resp.headers["content-type"].startswith("application/openmetrics-text")
    return {f.name: f for f in text_string_to_metric_families(resp.text)}


def samples(family, name=None, **labels):
    """The samples of `family` (named `name`, default the family's own) whose labels include `labels`."""
    want = name or family.name
    return [s for s in family.samples if s.name == want and all(s.labels.get(k) == v for k, v in labels.items())]


def total(family, name=None, **labels):
    return sum(s.value for s in samples(family, name, **labels))


def test_every_family_is_present_and_counts_what_happened(procs, tmp_path, fleet_db):
    db_url, _ = fleet_db
    (a, b), fakes = shared_fleet(procs, tmp_path, db_url, instances=2, pages=3)
    wait_until("both instances use L2", lambda: all(
        total(scrape(g)["sluice_cache_tier_up"], tier="l2") == 1 for g in (a, b)))
    conn = trino.dbapi.connect(host=a.host, port=a.port, user="alice", http_scheme="http", max_attempts=1)
    for i in range(6):
        cur = conn.cursor()
        cur.execute(f"SELECT {i}")
        assert len(cur.fetchall()) == 6
    # a query started on a and followed on b: b finds it in L2 (or L3)
    first = requests.post(a.url + "/v1/statement", data="SELECT 1", headers={"X-Trino-User": "bob"}, timeout=5).json()
    nxt = first["nextUri"].replace(a.url, b.url)
    while nxt:
        page = requests.get(nxt, timeout=5).json()
        nxt = page.get("nextUri", "").replace(a.url, b.url)
    # Sluice's own answers: an unknown query (404) and an unknown path
    assert requests.get(a.url + "/v1/statement/executing/20260101_000000_00001_zzzzz/x/1", timeout=5).status_code == 404
    assert requests.get(a.url + "/nothing/here", timeout=5).status_code == 404
    assert requests.get(a.url + "/v1/info", timeout=5).status_code == 200

    m = scrape(a)
    req = m["sluice_requests"]
    assert req.type == "counter"
    assert total(req, "sluice_requests_total", kind="new", status="2xx") == 7
    served = {s.labels["backend"] for s in samples(req, "sluice_requests_total", kind="new")}
    assert served <= set(fakes) and served, served
    assert total(req, "sluice_requests_total", kind="follow_up", status="2xx") >= 6 * 4
    assert total(req, "sluice_requests_total", kind="follow_up", status="4xx", backend="none") == 1
    assert total(req, "sluice_requests_total", kind="other", status="4xx", backend="none") == 1
    assert total(req, "sluice_requests_total", kind="other", status="2xx") == 1
    dur = m["sluice_request_duration_seconds"]
    assert dur.type == "histogram"
    for kind in ("new", "follow_up", "other"):
        assert total(dur, "sluice_request_duration_seconds_count", kind=kind) > 0, kind

    for name in ("sluice_backend_healthy", "sluice_backend_running_queries", "sluice_backend_queued_queries"):
        assert m[name].type == "gauge"
        assert {s.labels["backend"] for s in m[name].samples} == set(fakes), name
    assert total(m["sluice_backend_healthy"]) == 3
    assert total(m["sluice_backend_state"], state="active") == 3

    decisions = m["sluice_filter_decisions"]
    assert total(decisions, "sluice_filter_decisions_total", slot="query-count") == 7
    assert {s.labels["decision"] for s in decisions.samples} >= {"backend", "group", "pass", "reject", "invalid"}
    assert total(m["sluice_filter_calls"], "sluice_filter_calls_total", slot="query-count") == 7
    assert total(m["sluice_filter_failures"], "sluice_filter_failures_total") == 0
    assert total(m["sluice_filter_fallbacks"], "sluice_filter_fallbacks_total") == 0

    lookups = m["sluice_cache_lookups"]
    assert total(lookups, "sluice_cache_lookups_total", tier="l1", purpose="query", result="hit") >= 6 * 4
    assert total(lookups, "sluice_cache_lookups_total", purpose="filter") > 0, "the query-count filter's cache calls"
    assert m["sluice_l3_write_queue_depth"].type == "gauge"
    assert "sluice_tls_handshake_errors" in m
    wait_until("fleet convergence is reported", lambda: "sluice_fleet_converged" in scrape(a))
    assert total(scrape(a)["sluice_fleet_converged"]) == 1
    assert total(scrape(a)["sluice_fleet_instances"]) == 2

    mb = scrape(b)
    below_l1 = total(mb["sluice_cache_lookups"], "sluice_cache_lookups_total", purpose="query", result="hit",
                     tier="l2") + total(mb["sluice_cache_lookups"], "sluice_cache_lookups_total", purpose="query",
                                        result="hit", tier="l3")
    assert below_l1 >= 1, "b found a's query below its own L1"
