"""End-to-end tracing: Sluice exports OpenTelemetry spans over OTLP/HTTP (protobuf) to an endpoint
the test runs, continues the trace a client's `traceparent` names, and hands the coordinator a
`traceparent` naming its own forward span."""
import http.server
import threading

import requests
import trino
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest, ExportTraceServiceResponse)

from conftest import Fake, Gateway, free_port, wait_until, write_config

TRACE_ID = "4bf92f3577b34da6a3ce929d0e0e4736"
CLIENT_SPAN = "00f067aa0ba902b7"


class Collector:
    """An OTLP/HTTP traces endpoint: keeps every span it is sent."""

    def __init__(self):
        self.spans, self.resources, self.lock = [], [], threading.Lock()
        outer = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_POST(self):
                body = self.rfile.read(int(self.headers["Content-Length"]))
                req = ExportTraceServiceRequest()
                req.ParseFromString(body)
                with outer.lock:
                    for rs in req.resource_spans:
                        outer.resources.append({a.key: a.value.string_value for a in rs.resource.attributes})
                        for ss in rs.scope_spans:
                            outer.spans.extend(ss.spans)
                answer = ExportTraceServiceResponse().SerializeToString()
                self.send_response(200)
                self.send_header("Content-Type", "application/x-protobuf")
                self.send_header("Content-Length", str(len(answer)))
                self.end_headers()
                self.wfile.write(answer)

            def log_message(self, *args):
                pass

        self.port = free_port()
        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def named(self, name):
        with self.lock:
            return [s for s in self.spans if s.name == name]

    def stop(self):
        self.server.shutdown()
        self.server.server_close()


def attrs(span):
    return {a.key: a.value.string_value or a.value.int_value or a.value.bool_value for a in span.attributes}


def test_spans_reach_an_otlp_endpoint_and_the_trace_reaches_the_coordinator(procs, tmp_path, monkeypatch):
    monkeypatch.setenv("OTEL_BSP_SCHEDULE_DELAY", "100")  # export every 100 ms, not every 5 s
    collector = Collector()
    try:
        fake = Fake("c1", "--pages", "2", "--rows-per-page", "1")
        procs.append(fake)
        cfg = write_config(tmp_path, [("c1", "adhoc", fake.url)],
                           tracing=f"{{ otlp_endpoint: 'http://127.0.0.1:{collector.port}/v1/traces', service_name: sluice-e2e }}")
        gw = Gateway(cfg)
        procs.append(gw)
        traceparent = f"00-{TRACE_ID}-{CLIENT_SPAN}-01"
        conn = trino.dbapi.connect(host=gw.host, port=gw.port, user="alice", http_scheme="http",
                                   http_headers={"traceparent": traceparent}, max_attempts=1)
        cur = conn.cursor()
        cur.execute("SELECT 1")
        assert len(cur.fetchall()) == 2
        # an id no tier knows: L3 and the search are asked, each in a span
        assert requests.get(gw.url + "/v1/statement/executing/20260101_000000_00009_zzzzz/x/1",
                            headers={"traceparent": traceparent}, timeout=5).status_code == 404

        names = ("sluice.request", "sluice.route", "sluice.filter", "sluice.forward", "sluice.cache")
        wait_until("every kind of span arrives", lambda: all(collector.named(n) for n in names), limit=20)
        assert {"service.name": "sluice-e2e"}.items() <= collector.resources[0].items()
        ours = [s for s in collector.spans if s.trace_id.hex() == TRACE_ID]
        requests_ = [s for s in ours if s.name == "sluice.request"]
        # the new query and its follow-ups continue the client's trace, below the client's span
        assert len(requests_) >= 3, len(requests_)
        assert all(s.parent_span_id.hex() == CLIENT_SPAN for s in requests_)
        assert {attrs(s)["http.request.method"] for s in requests_} == {"POST", "GET"}
        route = collector.named("sluice.route")[0]
        assert attrs(route)["sluice.backend"] == "c1" and attrs(route)["sluice.group"] == "adhoc"
        assert attrs(collector.named("sluice.filter")[0])["sluice.slot"] == "query-count"
        tiers = {attrs(s)["sluice.tier"] for s in collector.named("sluice.cache")}
        assert {"l3", "search"} <= tiers, tiers
        # the coordinator got a traceparent naming one of Sluice's forward spans in this trace
        got = fake.stats()["last_traceparent"]
        _, trace_id, parent, _ = got.split("-")
        assert trace_id == TRACE_ID
        forwards = {s.span_id.hex() for s in ours if s.name == "sluice.forward"}
        wait_until("the forward span is exported", lambda: parent in {
            s.span_id.hex() for s in collector.named("sluice.forward")}, limit=20)
        assert parent != CLIENT_SPAN
        assert forwards, "forward spans in the client's trace"
    finally:
        collector.stop()


def test_without_an_endpoint_no_span_is_made_and_traceparent_passes_through(procs, tmp_path):
    fake = Fake("c1", "--pages", "1")
    procs.append(fake)
    gw = Gateway(write_config(tmp_path, [("c1", "adhoc", fake.url)]))
    procs.append(gw)
    traceparent = f"00-{TRACE_ID}-{CLIENT_SPAN}-01"
    cur = trino.dbapi.connect(host=gw.host, port=gw.port, user="alice", http_scheme="http",
                              http_headers={"traceparent": traceparent}, max_attempts=1).cursor()
    cur.execute("SELECT 1")
    cur.fetchall()
    assert fake.stats()["last_traceparent"] == traceparent
