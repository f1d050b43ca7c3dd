"""End-to-end TLS: the real Python `trino` client over HTTPS (with password authentication, which
Trino's client allows only over HTTPS) through Sluice to coordinators that serve HTTPS, all with
a private CA the test makes with the `openssl` command."""
import json
import os
import ssl
import subprocess
import urllib.error
import urllib.request

import pytest
import requests
import trino
from trino.auth import BasicAuthentication

from conftest import Fake, Gateway, free_port, sluice_bin, wait_until, write_config


def openssl(*args, cwd):
    subprocess.run(["openssl", *args], cwd=cwd, check=True, capture_output=True, timeout=60)


class Pki:
    """A CA and server certificates for loopback (localhost, 127.0.0.1) it signed, as files."""

    def __init__(self, dir):
        self.dir = dir
        self.ca = dir / "ca.pem"
        openssl("req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
                "-keyout", "ca.key", "-out", "ca.pem", "-days", "2", "-subj", "/CN=sluice e2e CA",
                "-addext", "basicConstraints=critical,CA:TRUE",
                "-addext", "keyUsage=critical,keyCertSign,cRLSign", cwd=dir)

    def server(self, name):
        (self.dir / f"{name}.ext").write_text(
            "subjectAltName=DNS:localhost,IP:127.0.0.1\nbasicConstraints=CA:FALSE\n"
            "keyUsage=critical,digitalSignature\nextendedKeyUsage=serverAuth\n")
        openssl("req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
                "-keyout", f"{name}.key", "-out", f"{name}.csr", "-subj", f"/CN={name}", cwd=self.dir)
        openssl("x509", "-req", "-in", f"{name}.csr", "-CA", "ca.pem", "-CAkey", "ca.key",
                "-CAcreateserial", "-out", f"{name}.pem", "-days", "2", "-extfile", f"{name}.ext", cwd=self.dir)
        return self.dir / f"{name}.pem", self.dir / f"{name}.key"


@pytest.fixture
def https_everywhere(procs, tmp_path, monkeypatch):
    """Two coordinators serving HTTPS, and a gateway serving HTTPS on `listen` that trusts only
    the test CA for its backends."""
    # requests lets these override a session's `verify` (which is how the trino client passes it)
    for var in ("REQUESTS_CA_BUNDLE", "CURL_CA_BUNDLE"):
        monkeypatch.delenv(var, raising=False)
    pki = Pki(tmp_path)
    cert, key = pki.server("coordinator")
    fakes = {n: Fake(n, "--pages", "3", "--rows-per-page", "2", "--tls-cert", str(cert), "--tls-key", str(key))
             for n in ("c1", "c2")}
    procs.extend(fakes.values())
    gw_cert, gw_key = pki.server("gateway")
    cfg = write_config(
        tmp_path, [(n, "adhoc", f.url) for n, f in fakes.items()],
        proxy=f"{{ tls: {{ cert: '{gw_cert}', key: '{gw_key}' }} }}",
        backend_tls=f"{{ ca: '{pki.ca}', system_roots: false }}")
    gw = Gateway(cfg)
    procs.append(gw)
    return gw, fakes, pki


def fake_stats(fake, pki):
    ctx = ssl.create_default_context(cafile=str(pki.ca))
    with urllib.request.urlopen(fake.url + "/fake/stats", context=ctx, timeout=10) as resp:
        return json.loads(resp.read())


def test_python_client_over_https_with_a_password_to_https_coordinators(https_everywhere):
    gw, fakes, pki = https_everywhere
    assert all(f.url.startswith("https://") for f in fakes.values())
    assert gw.health("c1") == "HEALTHY" and gw.health("c2") == "HEALTHY"
    seen = set()
    for i in range(6):
        conn = trino.dbapi.connect(host="localhost", port=gw.port, user="alice", http_scheme="https",
                                   auth=BasicAuthentication("alice", "s3cret"), verify=str(pki.ca),
                                   max_attempts=1)
        cur = conn.cursor()
        cur.execute(f"SELECT n, cluster FROM t -- {i}")
        rows = cur.fetchall()
        assert [r[0] for r in rows] == list(range(6)), "3 pages x 2 rows, in order"
        seen.add(rows[0][1])
    assert seen == {"c1", "c2"}
    assert sum(fake_stats(f, pki)["unknown_query_requests"] for f in fakes.values()) == 0


def test_a_client_that_does_not_trust_the_ca_is_refused_and_the_gateway_serves_on(https_everywhere):
    gw, fakes, pki = https_everywhere
    conn = trino.dbapi.connect(host="localhost", port=gw.port, user="alice", http_scheme="https",
                               max_attempts=1)
    with pytest.raises(trino.exceptions.TrinoConnectionError, match="CERTIFICATE_VERIFY_FAILED"):
        conn.cursor().execute("SELECT 1")
    # a plain-HTTP client on the HTTPS port gets no answer either
    with pytest.raises(requests.exceptions.ConnectionError):
        requests.post(f"http://localhost:{gw.port}/v1/statement", data="SELECT 1",
                      headers={"X-Trino-User": "alice"}, timeout=5)
    metrics = requests.get(gw.admin + "/metrics", timeout=5).text
    line = next(l for l in metrics.splitlines() if l.startswith('sluice_tls_handshake_errors_total{listener="proxy"}'))
    assert float(line.split()[-1]) >= 2
    cur = trino.dbapi.connect(host="localhost", port=gw.port, user="alice", http_scheme="https",
                              verify=str(pki.ca), max_attempts=1).cursor()
    cur.execute("SELECT 1")
    assert len(cur.fetchall()) == 6


def test_the_cli_reaches_an_https_admin_listener_with_a_private_ca(procs, tmp_path, monkeypatch):
    for var in ("REQUESTS_CA_BUNDLE", "CURL_CA_BUNDLE"):
        monkeypatch.delenv(var, raising=False)
    pki = Pki(tmp_path)
    cert, key = pki.server("admin")
    fake = Fake("c1")
    procs.append(fake)
    admin_port = free_port()
    cfg = write_config(tmp_path, [("c1", "adhoc", fake.url)],
                       admin=f"{{ listen: 127.0.0.1:{admin_port}, tls: {{ cert: '{cert}', key: '{key}' }} }}")
    # the harness polls /readyz over plain HTTP: here the admin listener speaks HTTPS only
    proc = subprocess.Popen([sluice_bin(), "serve", "--config", str(cfg), "--print-addrs"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert json.loads(proc.stdout.readline())["admin"].endswith(f":{admin_port}")
        url = f"https://localhost:{admin_port}"
        ctx = ssl.create_default_context(cafile=str(pki.ca))

        def ready():
            try:
                return urllib.request.urlopen(url + "/readyz", context=ctx, timeout=5).status == 200
            except urllib.error.HTTPError:
                return False  # 503 until the first health round is done

        wait_until("ready over https", ready)
        cli = [sluice_bin(), "backend", "list", "--admin-url", url, "--json"]
        trusted = subprocess.run(cli, capture_output=True, text=True, timeout=30,
                                 env={**os.environ, "SSL_CERT_FILE": str(pki.ca)})
        assert trusted.returncode == 0, trusted.stderr
        assert [b["name"] for b in json.loads(trusted.stdout)] == ["c1"]
        # without the CA the CLI refuses the server, saying why
        untrusted = subprocess.run(cli, capture_output=True, text=True, timeout=30,
                                   env={k: v for k, v in os.environ.items() if k != "SSL_CERT_FILE"})
        assert untrusted.returncode != 0
        assert "certificate" in untrusted.stderr.lower(), untrusted.stderr
    finally:
        proc.terminate()
        proc.wait(timeout=10)
