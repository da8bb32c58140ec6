"""OpenTelemetry: traces, metrics and logs.

Log lines always go to stderr, each with its trace and span ids. Nothing else is exported
by default (``OTEL_TRACES_EXPORTER=console`` prints spans); with
``OTEL_EXPORTER_OTLP_ENDPOINT`` set, traces, metrics and log records all go over
OTLP/HTTP (to the collector, then SigNoz in production), the log records carrying the
trace and span of the request that wrote them. The region is a resource attribute so
dashboards can split by it.
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
# Set when log records are exported: the handler that turns them into OTLP log records.
_otlp_log_handler: logging.Handler | None = None


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
        _export_logs(resource)
    elif os.environ.get("OTEL_TRACES_EXPORTER") == "console":
        tracer_provider.add_span_processor(BatchSpanProcessor(ConsoleSpanExporter()))
        readers.append(PeriodicExportingMetricReader(ConsoleMetricExporter()))
    trace.set_tracer_provider(tracer_provider)
    if readers:  # without a reader every measurement would be aggregated for nobody
        metrics.set_meter_provider(MeterProvider(resource=resource, metric_readers=readers))


def _export_logs(resource: Resource) -> None:
    """Log records over OTLP/HTTP (``$OTEL_EXPORTER_OTLP_ENDPOINT/v1/logs``), batched.

    The handler is opentelemetry-instrumentation-logging's: the SDK's own LoggingHandler
    is deprecated in its favour. It reads the current context, so a record written while
    a request is traced carries that trace and span id.
    """
    global _otlp_log_handler
    from opentelemetry._logs import set_logger_provider
    from opentelemetry.exporter.otlp.proto.http._log_exporter import OTLPLogExporter
    from opentelemetry.instrumentation.logging.handler import LoggingHandler
    from opentelemetry.sdk._logs import LoggerProvider
    from opentelemetry.sdk._logs.export import BatchLogRecordProcessor

    provider = LoggerProvider(resource=resource)
    provider.add_log_record_processor(BatchLogRecordProcessor(OTLPLogExporter()))
    set_logger_provider(provider)
    _otlp_log_handler = LoggingHandler(level=logging.INFO, logger_provider=provider)
    # The exporter's own complaints (collector unreachable) would be exported, fail and
    # complain again: they stay on stderr.
    _otlp_log_handler.addFilter(
        lambda record: not record.name.startswith(("opentelemetry", "urllib3")))


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
    if _otlp_log_handler is not None and _otlp_log_handler not in root.handlers:
        root.addHandler(_otlp_log_handler)
