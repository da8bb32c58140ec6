"""One database, no cluster: SQLite (the embedded default) or a single MySQL/MariaDB.

It is served by the same :class:`~webapp.database.routing.ClusterRouter` as a cluster,
as a cluster of one member that is always a candidate: the retry policy, the conflict
backoff, the time budget and the unknown-COMMIT contract are one code path, so the
SQLite tests exercise what production runs. There is no health checker: a failure of
the one member is retried on it within the policy's budgets, then refused with 503.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from typing import Any

from sqlalchemy import Engine, text
from sqlalchemy import exc as sa_exc

from .members import Member
from .probes import MemberState
from .retry import RetryPolicy
from .routing import ClusterRouter

NAME = "primary"


class SingleDatabase:
    """The router's view of one database (see :class:`webapp.database.routing.Members`)."""

    kind: str | None = None  # no replication: no session consistency settings
    interval = 0.0

    def __init__(self, engine: Engine) -> None:
        member = Member(NAME, "", str(engine.url), engine, 0)
        member.state = MemberState.UP
        member.role = "primary"
        self.members = [member]

    def ensure_started(self) -> None:
        """Nothing to probe in the background."""

    def probe_all(self) -> None:
        """:meth:`status` probes on every call."""

    def candidates(self, *, write: bool) -> list[Member]:
        del write
        return list(self.members)

    def stale_candidates(self) -> list[Member]:
        return []

    def unsettled(self) -> bool:
        return False

    def writable_within(self, seconds: float) -> bool:
        del seconds  # one database: no quorum to wait for
        return False

    def wait_for_change(self, timeout: float) -> None:
        del timeout

    def report_failure(self, member: Member, error: BaseException) -> MemberState:
        # The only member stays the candidate: the next attempt is the check.
        del member, error
        return MemberState.UP

    def status(self) -> list[dict[str, Any]]:
        engine = self.members[0].engine
        started = time.perf_counter()
        try:
            with engine.connect() as conn:
                conn.execute(text("SELECT 1"))
            state, error = "up", None
        except sa_exc.DBAPIError as exc:
            state, error = "down", type(exc.orig).__name__
        return [
            {
                "name": NAME,
                "region": None,
                "state": state,
                "role": "primary",
                "backend": engine.dialect.name,
                "latency_ms": round((time.perf_counter() - started) * 1000, 2),
                "error": error,
            }
        ]

    def close(self) -> None:
        self.members[0].engine.dispose()


def single_router(engine: Engine, config: Mapping[str, Any]) -> ClusterRouter:
    """The router for one database, with the cluster's retry policy from ``config``."""
    return ClusterRouter(SingleDatabase(engine), policy=RetryPolicy.from_config(config))
