"""OpenTelemetry is wired in the factory: requests and queries make spans, and log lines
written while handling a request carry its trace id."""

from __future__ import annotations

import logging

from opentelemetry import trace

from webapp.telemetry import TraceIdFilter


def test_request_logs_carry_the_trace_id(app, client, caplog):
    seen: list[str] = []

    @app.route("/_trace_probe")
    def probe():
        record = logging.LogRecord("probe", logging.INFO, __file__, 1, "probe", None, None)
        TraceIdFilter().filter(record)
        seen.append(record.trace_id)
        context = trace.get_current_span().get_span_context()
        return {"valid": context.is_valid}

    response = client.get("/_trace_probe")
    assert response.json == {"valid": True}
    assert seen
    assert seen[0] != "-"
    assert len(seen[0]) == 32


def test_database_calls_are_traced(app, client):
    """The SQLAlchemy instrumentation is attached to the app's engines."""
    from webapp.extensions import db

    engines = getattr(db.router, "engines", None) or [db.engine]
    assert all(
        any("opentelemetry" in getattr(fn, "__module__", "") for fn in
            engine.dispatch.before_cursor_execute) for engine in engines)
