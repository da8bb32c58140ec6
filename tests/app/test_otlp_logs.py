"""With OTEL_EXPORTER_OTLP_ENDPOINT set, log records leave over OTLP/HTTP with the trace
id of the request that wrote them.

The collector is played by a small HTTP server here that accepts ``POST /v1/logs`` (and
the traces and metrics the app sends alongside) and decodes the protobuf with
opentelemetry-proto. The app runs in a child process: OpenTelemetry's providers are
global and set once per process, and this one's were set without an exporter.
"""

from __future__ import annotations

import gzip
import os
import subprocess
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import (
    ExportLogsServiceRequest,
    ExportLogsServiceResponse,
)

ROOT = Path(__file__).resolve().parents[2]

# Writes one warning while handling a request, prints the request's trace id, then exits
# (the SDK flushes its batch at exit, as a gunicorn worker's does).
APP = """
import logging, sys
from opentelemetry import trace
from webapp import create_app

app = create_app({"PROFILE": "test", "REGION": "ie"})

@app.route("/_log_probe")
def probe():
    logging.getLogger("webapp.probe").warning("coins %s for card %s", 7, "probe")
    return format(trace.get_current_span().get_span_context().trace_id, "032x")

print(app.test_client().get("/_log_probe").get_data(as_text=True))
"""


class Receiver(ThreadingHTTPServer):
    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.logs: list[ExportLogsServiceRequest] = []
        self.paths: list[str] = []


class _Handler(BaseHTTPRequestHandler):
    server: Receiver

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
        if self.headers.get("Content-Encoding") == "gzip":
            body = gzip.decompress(body)
        self.server.paths.append(self.path)
        reply = b""
        if self.path == "/v1/logs":
            assert self.headers["Content-Type"] == "application/x-protobuf"
            request = ExportLogsServiceRequest()
            request.ParseFromString(body)
            self.server.logs.append(request)
            reply = ExportLogsServiceResponse().SerializeToString()
        self.send_response(200)
        self.send_header("Content-Type", "application/x-protobuf")
        self.send_header("Content-Length", str(len(reply)))
        self.end_headers()
        self.wfile.write(reply)

    def log_message(self, *args) -> None:  # quiet
        pass


@pytest.fixture
def receiver():
    server = Receiver()
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()


def test_log_records_reach_the_otlp_receiver_with_the_trace_id(receiver):
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OTEL_", "LOYALTY_"))}
    env.update(PYTHONPATH=str(ROOT), LOYALTY_ENV="test",
               OTEL_EXPORTER_OTLP_ENDPOINT=f"http://127.0.0.1:{receiver.server_port}")
    result = subprocess.run([sys.executable, "-c", APP], cwd=ROOT, env=env, capture_output=True,
                            text=True, timeout=60, check=False)
    assert result.returncode == 0, result.stderr
    trace_id = result.stdout.strip().splitlines()[-1]
    assert len(trace_id) == 32
    assert trace_id != "0" * 32

    assert "/v1/logs" in receiver.paths, receiver.paths
    records = [
        (resource_logs.resource, record)
        for request in receiver.logs
        for resource_logs in request.resource_logs
        for scope_logs in resource_logs.scope_logs
        for record in scope_logs.log_records
    ]
    probe = [(resource, record) for resource, record in records
             if record.body.string_value == "coins 7 for card probe"]
    assert len(probe) == 1, [r.body.string_value for _, r in records]
    resource, record = probe[0]
    assert record.trace_id.hex() == trace_id
    assert len(record.span_id) == 8
    assert record.span_id != bytes(8)
    assert record.severity_text == "WARN"
    resource_attributes = {kv.key: kv.value.string_value for kv in resource.attributes}
    assert resource_attributes["loyalty.region"] == "ie"
    assert resource_attributes["service.name"] == "loyalty-card"
    # The line still goes to stderr too, with the same trace id.
    assert f"trace_id={trace_id}" in result.stderr
