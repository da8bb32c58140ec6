"""OpenTelemetry: traces, metrics and logs.

Nothing is exported by default (``OTEL_TRACES_EXPORTER=console`` prints spans);
with ``OTEL_EXPORTER_OTLP_ENDPOINT`` set, everything goes over OTLP/HTTP (SigNoz in
production). The region is a resource attribute so dashboards can split by it.
"""

from __future__ import annotations

import logging
import os
from typing import TYPE_CHECKING

from opentelemetry import metrics, trace
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import (
    ConsoleMetricExporter,
    PeriodicExportingMetricReader,
)
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, ConsoleSpanExporter
from opentelemetry.sdk.trace.sampling import ALWAYS_OFF

if TYPE_CHECKING:
    from flask import Flask

tracer = trace.get_tracer("webapp")
meter = metrics.get_meter("webapp")

_providers_installed = False


class TraceIdFilter(logging.Filter):
    """Puts the current trace and span ids on every log record."""

    def filter(self, record: logging.LogRecord) -> bool:
        context = trace.get_current_span().get_span_context()
        record.trace_id = format(context.trace_id, "032x") if context.is_valid else "-"
        record.span_id = format(context.span_id, "016x") if context.is_valid else "-"
        return True


def _install_providers(region: str) -> None:
    """Global providers can be set once per process; later apps (tests) reuse them."""
    global _providers_installed
    if _providers_installed:
        return
    _providers_installed = True
    resource = Resource.create(
        {
            "service.name": os.environ.get("OTEL_SERVICE_NAME", "loyalty-card"),
            "cloud.region": region,
            "loyalty.region": region,
        }
    )
    exporting = bool(os.environ.get("OTEL_EXPORTER_OTLP_ENDPOINT")) or (
        os.environ.get("OTEL_TRACES_EXPORTER") == "console"
    )
    # With nowhere to send spans, recording them is pure cost (about a third of a card
    # page's CPU, see docs/performance.md): ALWAYS_OFF still gives every request a valid
    # trace id for the log lines, but spans skip their attributes and events. With an
    # exporter, the SDK's default (or OTEL_TRACES_SAMPLER) applies.
    sampler = None if exporting or os.environ.get("OTEL_TRACES_SAMPLER") else ALWAYS_OFF
    tracer_provider = TracerProvider(resource=resource, sampler=sampler)
    readers = []
    if os.environ.get("OTEL_EXPORTER_OTLP_ENDPOINT"):
        from opentelemetry.exporter.otlp.proto.http.metric_exporter import OTLPMetricExporter
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

        tracer_provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter()))
        readers.append(PeriodicExportingMetricReader(OTLPMetricExporter()))
    elif os.environ.get("OTEL_TRACES_EXPORTER") == "console":
        tracer_provider.add_span_processor(BatchSpanProcessor(ConsoleSpanExporter()))
        readers.append(PeriodicExportingMetricReader(ConsoleMetricExporter()))
    trace.set_tracer_provider(tracer_provider)
    if readers:  # without a reader every measurement would be aggregated for nobody
        metrics.set_meter_provider(MeterProvider(resource=resource, metric_readers=readers))


def init_app(app: Flask) -> None:
    """Call before the database is bound: engines created afterwards are traced."""
    from opentelemetry.instrumentation.flask import FlaskInstrumentor
    from opentelemetry.instrumentation.sqlalchemy import SQLAlchemyInstrumentor

    _install_providers(app.config["REGION"])
    FlaskInstrumentor().instrument_app(app, excluded_urls="healthz,static")
    instrumentor = SQLAlchemyInstrumentor()
    if not instrumentor.is_instrumented_by_opentelemetry:
        # Wraps sqlalchemy.create_engine for the whole process. The package declares
        # SQLAlchemy < 2.1 but only uses engine events, which 2.1 keeps;
        # tests/app/test_telemetry.py proves the hooks are attached.
        instrumentor.instrument(enable_commenter=False, skip_dep_check=True)
    _configure_logging(app)


def _configure_logging(app: Flask) -> None:
    handler = logging.StreamHandler()
    handler.addFilter(TraceIdFilter())
    handler.setFormatter(
        logging.Formatter(
            "%(asctime)s %(levelname)s [%(name)s] [trace_id=%(trace_id)s span_id=%(span_id)s]"
            " region=" + app.config["REGION"] + " %(message)s"
        )
    )
    root = logging.getLogger()
    if not any(isinstance(f, TraceIdFilter) for h in root.handlers for f in h.filters):
        root.addHandler(handler)
        root.setLevel(logging.INFO)
