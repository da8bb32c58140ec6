"""The database facade the rest of the app uses.

Callers hand a unit of work (a function of a SQLAlchemy ``Connection``) to
:meth:`Database.write` or :meth:`Database.read`; where it runs, how often it is retried
and how consistent the read is are this package's business, not theirs. Theirs is one
declaration: whether a write is safe to run again after its COMMIT's answer was lost
(``idempotent``). With no cluster configured a single engine serves everything (SQLite
by default); with ``LOYALTY_CLUSTER`` set, :mod:`webapp.database.routing` picks members
by region and health. Both go through the same router and retry policy.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Protocol, TypeVar

from flask import current_app, g, has_app_context
from sqlalchemy import Connection, Engine

from .errors import Failure, RetryTransaction, classify
from .pool import make_engine
from .retry import RetryPolicy, after_unknown_commit
from .single import single_router

if TYPE_CHECKING:
    from flask import Flask

T = TypeVar("T")
Work = Callable[[Connection], T]

__all__ = [
    "Database",
    "Failure",
    "RetryPolicy",
    "RetryTransaction",
    "Router",
    "after_unknown_commit",
    "classify",
]


class Router(Protocol):
    def run(
        self, work: Work[T], *, write: bool, causal: bool, name: str, idempotent: bool = False
    ) -> T: ...
    def status(self) -> list[dict[str, Any]]: ...
    def schema_engine(self) -> Engine: ...
    def dispose(self) -> None: ...


_BEFORE_COMMIT = "loyalty_db.before_commit"


def _checked(work: Work[T], check: Callable[[Connection], None]) -> Work[T]:
    def checked(conn: Connection) -> T:
        result = work(conn)
        check(conn)
        return result

    return checked


class Database:
    """Bound to an app by :meth:`init_app`, like every other extension."""

    def __init__(self) -> None:
        self.router: Router | None = None

    def init_app(self, app: Flask) -> None:
        config = app.config
        if config.get("CLUSTER"):
            from .routing import ClusterRouter

            self.router = ClusterRouter.from_config(config)
        else:
            self.router = single_router(make_engine(config["DATABASE_URL"], config), config)
        app.extensions["loyalty_db"] = self
        # Each app keeps its own router, so apps for several regions can share a process.
        app.extensions["loyalty_db.router"] = self.router

    def write(self, work: Work[T], *, name: str, idempotent: bool = False) -> T:
        """Run ``work`` in one write transaction, retried whole on conflicts/failover.

        Failures before COMMIT was sent are retried for all work. ``idempotent`` governs
        the one case a retry could do harm: the COMMIT was sent and its answer lost.
        Declare ``idempotent=True`` only when running ``work`` again finds its own
        earlier result (an idempotency key, a request id, a value only this call knows;
        see :func:`after_unknown_commit`) and answers as the first run would have.
        Otherwise the caller gets :class:`webapp.errors.OutcomeUnknown` (503), and the
        transaction happened wholly or not at all.
        """
        check = g.get(_BEFORE_COMMIT) if has_app_context() else None
        if check is not None:
            work = _checked(work, check)
        return self._router.run(work, write=True, causal=True, name=name, idempotent=idempotent)

    @staticmethod
    def before_commit(check: Callable[[Connection], None]) -> None:
        """For the rest of this request (app context), every write runs ``check`` in its
        own transaction after its work and before COMMIT; raising refuses the write, and
        nothing of it is written. A check deferred to the work (the API's session check,
        which the rulebook folds into its first statement) is thereby made before any
        write commits even when the work forgot it; ``check`` is then a no-op."""
        g.setdefault(_BEFORE_COMMIT, check)

    def read(self, work: Work[T], *, name: str, causal: bool = False) -> T:
        """Run a read. ``causal=True`` waits until this member has applied every write
        committed anywhere before the read started (read-your-writes across regions)."""
        return self._router.run(work, write=False, causal=causal, name=name)

    def status(self) -> list[dict[str, Any]]:
        return self._router.status()

    @property
    def engine(self) -> Engine:
        """The engine migrations and test resets use: the schema owner's
        (``SCHEMA_DATABASE_URL``) when one is configured, else the app's own."""
        owner = self._schema_owner_engine()
        return owner if owner is not None else self._router.schema_engine()

    @property
    def separate_schema_owner(self) -> bool:
        """True when migrations run as another account than the app (MySQL/MariaDB)."""
        return self._schema_owner_engine() is not None

    def dispose(self) -> None:
        router = self._app_router() or self.router
        if router is not None:
            router.dispose()
        if has_app_context():
            owner = current_app.extensions.pop("loyalty_db.schema_owner", None)
            if owner is not None:
                owner.dispose()

    @staticmethod
    def _schema_owner_engine() -> Engine | None:
        if not has_app_context():
            return None
        url = current_app.config.get("SCHEMA_DATABASE_URL")
        if not url:
            return None
        extensions = current_app.extensions
        if "loyalty_db.schema_owner" not in extensions:
            # Migrations are one-off: no pool to speak of, and no statement timeout that
            # would cut a long ALTER short.
            extensions["loyalty_db.schema_owner"] = make_engine(
                url,
                {**current_app.config, "DB_STATEMENT_TIMEOUT": None},
                pool_size=1,
                max_overflow=2,
            )
        return extensions["loyalty_db.schema_owner"]

    @property
    def _router(self) -> Router:
        router = self._app_router() or self.router
        if router is None:
            raise RuntimeError("Database used before init_app()")
        return router

    @staticmethod
    def _app_router() -> Router | None:
        return current_app.extensions.get("loyalty_db.router") if has_app_context() else None
