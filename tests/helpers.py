"""Helpers every kind of test may import: ``from tests.helpers import csrf_token, ...``.

Fixtures live in ``tests/conftest.py`` (``app``, ``client``, ``auth``, ``cluster_apps``)
and ``tests/lab_plugin.py`` (the Galera lab); plain functions and classes live here so
tests in any folder (unit, app, cluster, ops) import them the same way.
"""

from __future__ import annotations

import contextlib
import os
import re
import sqlite3
import threading
import time
from collections.abc import Callable, Iterator
from datetime import datetime
from pathlib import Path

import pytest

# The repository root, for tests that read the project's own files (deploy/, jmeter/).
ROOT = Path(__file__).resolve().parent.parent

PASSWORD = "correct-horse-battery"

# Input every money form and parser must refuse (the till pages and the parsers alike).
SCARY = ["<script>alert(1)</script>", "1'; DROP TABLE ledger; --", "' OR '1'='1"]
BAD_AMOUNTS = [
    "", "   ", "abc", "-5", "-0.01", "0", "0.00", "12.345", "1e3", "NaN", "Infinity",
    "99999999999999999999999999", "1000000.01", "12,50", "١٢", "0x10", "+5", "1 000",
    "0.50",  # fine as money, but earns no coin at 1 USD a coin
    *SCARY,
]
BAD_COINS = ["", "abc", "-1", "0", "1.5", "2e2", "99999999", "١", *SCARY]


def production_env(database: Path, **settings: str) -> dict[str, str]:
    """The environment of the app run as production (gunicorn) on a SQLite file: fresh
    secrets, and no cluster or trace exporter inherited from the shell; ``settings`` on top."""
    env = {
        **os.environ,
        "LOYALTY_ENV": "production",
        "SECRET_KEY": os.urandom(32).hex(),
        "JWT_KEYS": f"t1:{os.urandom(32).hex()}",
        "JWT_ACTIVE_KID": "t1",
        "LOYALTY_DATABASE_URL": f"sqlite:///{database}",
        "HOST": "127.0.0.1",
        **settings,
    }
    for name in ("LOYALTY_CLUSTER", "OTEL_EXPORTER_OTLP_ENDPOINT"):
        env.pop(name, None)
    return env


def csrf_token(html: str) -> str:
    match = re.search(r'name="csrf_token" type="hidden" value="([^"]+)"', html) or re.search(
        r'name="csrf_token" value="([^"]+)"', html)
    assert match, "page has no CSRF token"
    return match.group(1)


class AuthActions:
    """Register and sign in through the real pages, CSRF and all."""

    def __init__(self, client):
        self.client = client

    def register(self, email="ana@example.com", name="Ana Silva", password=PASSWORD,
                 region="ie", verify=True):
        """Registers through the page and, with ``verify``, opens the verification link
        from the mail the app queued: the answer is then the signed-in redirect."""
        page = self.client.get("/register").get_data(as_text=True)
        response = self.client.post("/register", data={
            "csrf_token": csrf_token(page), "name": name, "email": email,
            "password": password, "region": region})
        if not verify or response.status_code != 302:
            return response
        from tests.mail_helpers import verify_via_outbox

        return verify_via_outbox(self.client, email)

    def login(self, email="ana@example.com", password=PASSWORD):
        page = self.client.get("/login").get_data(as_text=True)
        return self.client.post("/login", data={
            "csrf_token": csrf_token(page), "email": email, "password": password})

    def logout(self):
        page = self.client.get("/card").get_data(as_text=True)
        return self.client.post("/logout", data={"csrf_token": csrf_token(page)})


class Clock:
    """A controllable ``utcnow``: what the app's clock answers until the test moves it.

    Install it over :func:`webapp.clock.utcnow` and every module that imported the name
    (``monkeypatch.setattr("webapp.ledger.services.utcnow", clock)``)."""

    def __init__(self, now: datetime) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now

    def set(self, moment: datetime) -> None:
        self.now = moment

    @classmethod
    def install(cls, monkeypatch: pytest.MonkeyPatch, now: datetime) -> Clock:
        """A clock at ``now`` over the app's ``utcnow`` and the ledger's imported copy."""
        fake = cls(now)
        monkeypatch.setattr("webapp.clock.utcnow", fake)
        monkeypatch.setattr("webapp.ledger.services.utcnow", fake)
        return fake


def wait_for(check: Callable[[], bool], timeout: float, what: str) -> float:
    """Poll ``check()`` until true; return the seconds it took (fail the test if never)."""
    started = time.monotonic()
    while time.monotonic() - started < timeout:
        if check():
            return time.monotonic() - started
        time.sleep(0.05)
    pytest.fail(f"timed out after {timeout}s waiting for {what}")


# --- Decoding the inline SVG QR like a till's scanner would ---------------------------


def qr_modules(svg: str) -> list[list[bool]]:
    """The dark modules of the card page's inline SVG (qrcode's single-path image): one
    unit per module, each dark module a ``Mx,yHx+1Vy+1Hxz`` square in one path."""
    view = re.search(r'viewBox="0 0 (\d+) (\d+)"', svg)
    dark = re.search(r'<path d="([^"]*)"', svg)
    assert view, "not the SVG shape qrcode makes"
    assert dark, "not the SVG shape qrcode makes"
    size = int(view.group(1))
    grid = [[False] * size for _ in range(size)]
    squares = re.findall(r"M(\d+),(\d+)H(\d+)V(\d+)H\d+z", dark.group(1))
    for x0, y0, x1, y1 in squares:
        for y in range(int(y0), int(y1)):
            for x in range(int(x0), int(x1)):
                grid[y][x] = True
    return grid


def decode_qr_svg(svg: str, pixels_per_module: int = 4) -> list[str]:
    """Rasterizes the modules to a grayscale image and decodes it with zxing-cpp."""
    import zxingcpp  # a test-only dependency (requirements-dev.txt)

    rows = []
    for row in qr_modules(svg):
        line = bytes(0 if dark else 255 for dark in row for _ in range(pixels_per_module))
        rows.extend([line] * pixels_per_module)
    image = memoryview(b"".join(rows)).cast("B", (len(rows), len(rows[0])))
    return [result.text for result in zxingcpp.read_barcodes(image)]


@contextlib.contextmanager
def commit_answers_lost(engine, times: int = 1) -> Iterator[list[int]]:
    """On a SQLite engine: the next ``times`` COMMITs happen, and then fail as if their
    answer was lost on the way back. Yields the list of losses so far."""
    dialect = engine.dialect
    original = dialect.do_commit
    lost: list[int] = []

    def do_commit(dbapi_connection) -> None:
        original(dbapi_connection)
        if len(lost) < times:
            lost.append(1)
            raise sqlite3.OperationalError("lost connection to the database during COMMIT")

    dialect.do_commit = do_commit
    try:
        yield lost
    finally:
        del dialect.do_commit


def answer_lost(app, times: int = 1) -> contextlib.AbstractContextManager[list[int]]:
    """:func:`commit_answers_lost` on the SQLite app's database."""
    engine = app.extensions["loyalty_db.router"].cluster.members[0].engine
    return commit_answers_lost(engine, times)


def runs_until_busy(app) -> int:
    """Runs a write that conflicts on every attempt until the router gives up with its
    "very busy" 503; returns how many times the work ran."""
    from webapp.database import RetryTransaction
    from webapp.errors import ServiceUnavailable
    from webapp.extensions import db

    runs: list[int] = []

    def always_conflicts(conn):
        runs.append(1)
        raise RetryTransaction()

    with app.app_context(), pytest.raises(ServiceUnavailable, match="busy"):
        db.write(always_conflicts, name="test.busy")
    return len(runs)


class RoundTrips:
    """Counts what an app sends its database from this thread. On MariaDB: every
    command PyMySQL sends (statements, the causal barrier, COMMIT, ROLLBACK, a ping),
    each one a round trip. On SQLite: every statement and COMMIT/ROLLBACK through the
    engine, without SQLite's own BEGIN (MariaDB starts a transaction implicitly), so a
    regression shows on both."""

    def __init__(self, app) -> None:
        router = app.extensions["loyalty_db.router"]
        self.engines = [member.engine for member in router.cluster.members]
        self.sqlite = self.engines[0].dialect.name == "sqlite"
        self.statements: list[str] = []
        self.counting = False
        self._thread = threading.get_ident()

    def _note(self, what: str) -> None:
        if self.counting and threading.get_ident() == self._thread:
            self.statements.append(" ".join(what.split())[:120])

    def _statement(self, conn, cursor, statement, parameters, context, executemany):
        if not statement.lstrip().upper().startswith("BEGIN"):
            self._note(statement)

    def __enter__(self) -> RoundTrips:
        if self.sqlite:
            self._engine_events(listen=True)
        else:
            import pymysql.connections

            original = pymysql.connections.Connection._execute_command
            counter = self

            def execute_command(connection, command, sql):
                counter._note(sql.decode() if isinstance(sql, bytes) else str(sql))
                return original(connection, command, sql)

            self._original = original
            pymysql.connections.Connection._execute_command = execute_command
        return self

    def _engine_events(self, *, listen: bool) -> None:
        from sqlalchemy import event

        change = event.listen if listen else event.remove
        for engine in self.engines:
            for name, handler in (("before_cursor_execute", self._statement),
                                  ("commit", self._commit), ("rollback", self._rollback)):
                change(engine, name, handler)

    def _commit(self, conn) -> None:
        self._note("COMMIT")

    def _rollback(self, conn) -> None:
        self._note("ROLLBACK")

    def __exit__(self, *exc) -> None:
        if self.sqlite:
            self._engine_events(listen=False)
        else:
            import pymysql.connections

            pymysql.connections.Connection._execute_command = self._original

    @contextlib.contextmanager
    def counted(self) -> Iterator[list[str]]:
        """Counts the block's round trips into the list it yields (fresh each time)."""
        self.statements = []
        self.counting = True
        try:
            yield self.statements
        finally:
            self.counting = False


_metric_reader = None


def metric_reader():
    """This process's in-memory metric reader, installed as the meter provider on first
    use (once: the OpenTelemetry API allows one provider). The instruments the app
    created at import time through the API's proxy meter then record into it."""
    global _metric_reader
    if _metric_reader is None:
        from opentelemetry import metrics
        from opentelemetry.sdk.metrics import MeterProvider
        from opentelemetry.sdk.metrics.export import InMemoryMetricReader

        candidate = InMemoryMetricReader()
        provider = MeterProvider(metric_readers=[candidate])
        metrics.set_meter_provider(provider)
        if metrics.get_meter_provider() is not provider:
            pytest.fail("another meter provider was installed first; cannot read metrics")
        _metric_reader = candidate
    return _metric_reader


def metric_total(reader, name: str, **attributes) -> int:
    """The sum of counter ``name`` over the points carrying ``attributes``."""
    data = reader.get_metrics_data()
    total = 0
    for resource_metrics in data.resource_metrics if data else ():
        for scope_metrics in resource_metrics.scope_metrics:
            for metric in scope_metrics.metrics:
                if metric.name != name:
                    continue
                for point in metric.data.data_points:
                    if attributes.items() <= dict(point.attributes).items():
                        total += point.value
    return total
