"""The one retry policy, and what a unit of work may learn about earlier attempts.

The router (:mod:`webapp.database.routing`) serves a cluster and a single database alike
(a single database is a one-member cluster, :mod:`webapp.database.single`), so SQLite in
the tests runs exactly the policy production runs on Galera.
"""

from __future__ import annotations

import random
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Connection

# Execution option the router sets on the connection of every attempt.
COMMIT_UNKNOWN_OPTION = "loyalty_commit_unknown"


@dataclass(frozen=True)
class RetryPolicy:
    """How hard one transaction is tried before the caller gets a 503.

    ``retry_budget`` extra attempts and ``time_budget`` seconds, whichever runs out
    first. A conflict is retried on the same member after a full-jitter pause that
    doubles from ``conflict_backoff_base`` up to ``conflict_backoff_cap``; a failed
    member is left at once for the next one.
    """

    retry_budget: int = 8
    time_budget: float = 10.0
    conflict_backoff_base: float = 0.005
    conflict_backoff_cap: float = 0.25

    @classmethod
    def from_config(cls, config: Mapping[str, Any]) -> RetryPolicy:
        return cls(
            retry_budget=max(0, int(config.get("DB_RETRY_BUDGET", 8))),
            time_budget=float(config.get("DB_RETRY_TIME_BUDGET", 10.0)),
        )

    def conflict_pause(self, conflicts: int, remaining: float) -> float:
        """Seconds to wait before attempt number ``conflicts + 1`` after a conflict."""
        cap = min(self.conflict_backoff_cap, self.conflict_backoff_base * 2**conflicts)
        return min(random.uniform(0, cap), max(0.0, remaining))

    def exhausted(self, attempts: int, remaining: float) -> bool:
        return attempts > self.retry_budget or remaining <= 0


def after_unknown_commit(conn: Connection) -> bool:
    """True when an earlier attempt of this unit of work sent COMMIT and lost the answer.

    Work marked ``idempotent`` uses it to recognise its own earlier result: the row it
    finds may be the one that attempt wrote (the client sent the request once), not a
    second request's.
    """
    return bool(conn.get_execution_options().get(COMMIT_UNKNOWN_OPTION))
