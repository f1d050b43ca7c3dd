"""Routing filters written in Python and JavaScript: built with componentize-py and
componentize-js (each build cached between runs by `guest-filters/*/build`), pushed into a live
gateway with `sluice filter push`, routing the real Python client's queries, and held in the
sandbox — no filesystem, no network, no environment."""
import json
import os
import subprocess

import pytest
import trino

from conftest import ROOT, Fake, Gateway, http_json, sluice_bin, write_config

TOKEN = "guest-admin-token-0123456789"
LANGUAGES = {
    # language: (build script, the query-count filter, the sandbox probe)
    "python": ("guest-filters/python/build", "query_count", "sandbox_probe"),
    "js": ("guest-filters/js/build", "query-count", "sandbox-probe"),
}


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    out = tmp_path_factory.mktemp("guests")
    for script, *_ in LANGUAGES.values():
        subprocess.run([str(ROOT / script), str(out)], check=True, timeout=1200)
    return out


def filter_cli(gw, *args):
    env = {**os.environ, "SLUICE_ADMIN_TOKEN": TOKEN, "SLUICE_ADMIN_URL": gw.admin}
    done = subprocess.run([sluice_bin(), "filter", *args], env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr
    return done.stdout


def gateway(procs, tmp_path):
    fakes = {n: Fake(n, "--pages", "2") for n in ("a1", "a2")}
    procs.extend(fakes.values())
    cfg = write_config(
        tmp_path, [(n, "adhoc", f.url) for n, f in fakes.items()],
        admin=f"{{ listen: 127.0.0.1:0, tokens: [ {{ token: {TOKEN}, role: admin }} ] }}",
    )
    gw = Gateway(cfg)
    procs.append(gw)
    return gw, fakes


def slots(gw):
    return {s["slot"]: {**s, **s["stats"]} for s in json.loads(filter_cli(gw, "list", "--json"))}


@pytest.mark.parametrize("language", LANGUAGES)
def test_a_filter_in_another_language_routes_queries(language, built, procs, tmp_path):
    _, query_count, _ = LANGUAGES[language]
    gw, fakes = gateway(procs, tmp_path)
    (tmp_path / "window.json").write_text('{"window_seconds": 30}')
    filter_cli(gw, "push", "qc", str(built / f"{query_count}.wasm"), "--config", str(tmp_path / "window.json"))
    filter_cli(gw, "order", "qc", "query-count")
    clusters = []
    for i in range(12):
        cur = trino.dbapi.connect(host=gw.host, port=gw.port, user=f"user{i % 3}").cursor()
        cur.execute(f"SELECT {i}")
        rows = cur.fetchall()
        clusters.append(rows[0][1])
    # its counters in the shared cache spread the queries: the clusters' own counts never change
    # between two health polls here, so only the filter's bookkeeping can alternate them
    assert sorted(set(clusters)) == ["a1", "a2"], clusters
    assert abs(clusters.count("a1") - clusters.count("a2")) <= 2, clusters
    qc = slots(gw)["qc"]
    assert qc["calls"] >= 12 and qc["traps"] == 0 and qc["timeouts"] == 0, qc
    # an interpreter's heap, within the default 32 MiB an instance may grow to
    print(f"\n{language} query-count: one instance grew to {qc['instance_memory_bytes'] / 2**20:.1f} MiB")
    assert 1 << 20 < qc["instance_memory_bytes"] <= 32 << 20, qc
    assert sum(f.stats()["unknown_query_requests"] for f in fakes.values()) == 0
    # a bad config is refused by its init, and the running version stays
    (tmp_path / "bad.json").write_text('{"window_seconds": 0}')
    env = {**os.environ, "SLUICE_ADMIN_TOKEN": TOKEN, "SLUICE_ADMIN_URL": gw.admin}
    bad = subprocess.run([sluice_bin(), "filter", "config", "qc", str(tmp_path / "bad.json")],
                         env=env, capture_output=True, text=True, timeout=600)
    assert bad.returncode != 0 and "window_seconds" in bad.stderr, bad.stderr
    assert slots(gw)["qc"]["version"] == qc["version"]


@pytest.mark.parametrize("language", LANGUAGES)
def test_a_filter_in_another_language_stays_in_the_sandbox(language, built, procs, tmp_path):
    _, _, probe = LANGUAGES[language]
    gw, _ = gateway(procs, tmp_path)
    filter_cli(gw, "push", "probe", str(built / f"{probe}.wasm"))
    filter_cli(gw, "order", "probe", "query-count")
    status, answer = http_json("POST", gw.url + "/v1/statement", body="SELECT 1", headers={"X-Trino-User": "u"})
    assert status == 418, answer
    found = json.loads(answer["error"]["message"])
    print(f"\n{language} sandbox probes: {found}")
    expected = {"python": {"read_file", "write_file", "list_dir", "environment", "connect", "resolve"},
                "js": {"fetch", "environment", "filesystem"}}[language]
    assert set(found) == expected
    denied = {k for k, v in found.items() if v.startswith("denied")}
    if language == "js":
        # the runtime is built without HTTP: fetch exists, and calling it traps; the gateway counts
        # the trap and routes the query natively
        assert denied == expected - {"fetch"}, found
        status, page = http_json("POST", gw.url + "/v1/statement", body="SELECT 1",
                                 headers={"X-Trino-User": "probe-fetch"})
        assert status == 200 and "nextUri" in page, page
        assert slots(gw)["probe"]["traps"] == 1
    else:
        assert denied == expected, found
