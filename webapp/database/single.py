"""One database, no cluster: SQLite (the embedded default) or a single MySQL/MariaDB."""

from __future__ import annotations

import logging
import random
import time
from collections.abc import Callable, Mapping
from typing import Any, TypeVar

from sqlalchemy import Connection, Engine, text
from sqlalchemy import exc as sa_exc

from webapp.errors import ServiceUnavailable

from .errors import Failure, RetryTransaction, classify

T = TypeVar("T")
log = logging.getLogger(__name__)


class SingleRouter:
    def __init__(self, engine: Engine, config: Mapping[str, Any]) -> None:
        self.engine = engine
        self.retry_budget = int(config.get("DB_RETRY_BUDGET", 8))
        self.retries = 0

    def run(self, work: Callable[[Connection], T], *, write: bool, causal: bool, name: str) -> T:
        del causal  # one database is always consistent with itself
        for attempt in range(self.retry_budget + 1):
            try:
                with self.engine.connect() as conn:
                    conn = conn.execution_options(loyalty_write=write)
                    with conn.begin():
                        return work(conn)
            except (sa_exc.DBAPIError, RetryTransaction) as error:
                failure = classify(error)
                if failure is Failure.PERMANENT or attempt == self.retry_budget:
                    if failure is Failure.MEMBER_UNAVAILABLE:
                        raise ServiceUnavailable("The database cannot be reached.") from error
                    raise
                self.retries += 1
                log.info("retrying %s after %s (attempt %d)", name, failure.value, attempt + 1)
                time.sleep(random.uniform(0, 0.01 * 2**attempt))
        raise AssertionError("unreachable")

    def status(self) -> list[dict[str, Any]]:
        started = time.perf_counter()
        try:
            with self.engine.connect() as conn:
                conn.execute(text("SELECT 1"))
            state, error = "up", None
        except sa_exc.DBAPIError as exc:
            state, error = "down", type(exc.orig).__name__
        return [
            {
                "name": "primary",
                "region": None,
                "state": state,
                "role": "primary",
                "backend": self.engine.dialect.name,
                "latency_ms": round((time.perf_counter() - started) * 1000, 2),
                "error": error,
            }
        ]

    def schema_engine(self) -> Engine:
        return self.engine

    def dispose(self) -> None:
        self.engine.dispose()
