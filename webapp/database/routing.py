"""Read/write routing over a multi-primary cluster: where a transaction runs, how it is
retried, and how consistent it is.

:meth:`ClusterRouter.run` is the one entry point (the :class:`webapp.database.Router`
protocol). For each transaction it

1. picks a member: the most preferred one (own region first, see ``REGION_PREFERENCE``)
   whose state allows the transaction -- ``up`` for writes, ``up``/``read_only`` for
   reads, and, only for non-causal reads with ``ALLOW_STALE_READS``, a ``non_primary``
   member (the read is then flagged ``flask.g.stale_read = True``);
2. runs the whole unit of work in one transaction on it, with the consistency the
   caller asked for (below), inside a span that names the member;
3. on failure, by :func:`webapp.database.errors.classify`:

   * ``CONFLICT`` (Galera 1213 -- also raised *at COMMIT* --, GR 3101, lock wait 1205,
     :class:`RetryTransaction`): run the whole transaction again on the same member
     after a jittered exponential pause (full jitter, 5 ms doubling, capped at 250 ms);
   * ``MEMBER_UNAVAILABLE`` (1047 non-Primary, read-only, lost connection -- also
     during COMMIT --, can't connect): tell the :class:`Cluster` (which marks the
     member and confirms with a probe) and run it again on the next member at once;
   * ``PERMANENT``: raise; the transaction was rolled back.

   Retries are bounded by ``DB_RETRY_BUDGET`` extra attempts and ``DB_RETRY_TIME_BUDGET``
   seconds (10 by default), one :class:`~webapp.database.retry.RetryPolicy` that a
   single database (a one-member cluster, :mod:`webapp.database.single`) shares. A frozen
   member costs one ``DB_STATEMENT_TIMEOUT`` (the work engines' socket timeout, 3 s)
   before the work moves on. When no member can take the transaction -- quorum lost,
   every member down -- the router first waits while a probe verdict is pending or a
   member was writable less than ``DB_QUORUM_GRACE`` ago (a view change); then, or when
   the budget runs out, :class:`webapp.errors.ServiceUnavailable` is raised (HTTP 503 +
   Retry-After, a friendly page): refused, nothing happened.

**The contract with callers: only work that is safe to repeat is repeated blindly.**
Every failure *before* COMMIT was sent (a conflict, a lost connection, a member outside
the quorum) rolled the transaction back, so every unit of work is retried after it. A
connection lost *during* COMMIT is different: the writeset may have been certified and
applied cluster-wide, or not at all, and the router cannot tell. What happens then is
the caller's declaration (``db.write(work, idempotent=...)``):

* ``idempotent=True``: the work finds its own earlier result when it runs again (money
  movements by their idempotency key, a family card by its request id, a refresh token
  by its successor...). It is retried, possibly on another member; the attempt's
  connection carries :func:`~webapp.database.retry.after_unknown_commit` so the work can
  answer as the first run would have (a 201, not a "replayed" 200).
* ``idempotent=False`` (the default): it is not run again. The caller gets
  :class:`webapp.errors.OutcomeUnknown` (503, problem type ``outcome-unknown``): it may
  or may not have happened; a client must retry with the same idempotency key. The
  transaction is atomic, so it happened wholly or not at all.

If the retries of idempotent work run out after an unknown outcome, the answer is
:class:`~webapp.errors.OutcomeUnknown` too, never the plain "nothing happened" 503.
Reads are always idempotent.

Consistency (Galera)
    Reads that do not ask for causality are fast local reads (``wsrep_sync_wait=0``):
    they may miss a write committed on another member a moment ago.

    Writes and ``causal=True`` reads start with a *causal barrier*: a causal read carries it
    on its first statement, ``SET STATEMENT wsrep_sync_wait=1 FOR <that SELECT>`` (no round
    trip of its own, see :func:`carry_causal_barrier`); a write (or a read that starts with
    anything else) sends ``SET STATEMENT wsrep_sync_wait=1 FOR SELECT 1`` first (see
    :func:`consistency` for why writes keep it separate). Bit 1 makes that SELECT wait until
    this node has applied every writeset the cluster committed before it started (verified
    on the lab: a read blocked until a paused applier caught up). Every later statement of
    the transaction runs on a node at least that fresh, so a redeem in India sees an earn
    committed in the US a moment earlier: the conditional ``UPDATE ... WHERE balance >= :n``
    reads the new balance instead of refusing with "not enough coins". Why not leave a wider
    mask (3 = reads + UPDATE/DELETE, or 7 + INSERT) set for the whole transaction? Each
    flagged statement waits again, and a wait is a round of group communication -- one
    inter-region RTT (~190 ms between us and in) per statement instead of one per
    transaction. Writes that race with ours after the barrier are certification's business:
    one side gets 1213 and is retried. The barrier is what GR's ``BEFORE`` does per
    transaction.

Consistency (MySQL Group Replication)
    Writes and causal reads run with ``group_replication_consistency='BEFORE'`` (the
    transaction waits for all preceding group transactions to be applied before it
    starts); other reads with ``'EVENTUAL'``.

Session variables changed for a transaction are put back before the connection returns
to the pool; if that cannot be done the connection is invalidated instead, so a pooled
connection never carries one transaction's settings into the next. A stale read on a
non-Primary Galera node needs ``wsrep_dirty_reads=ON`` until after its COMMIT, so that
connection is always discarded. A connection whose member failed is invalidated at once
(a non-Primary node refuses even the ROLLBACK the pool would send).

Each attempt is a span ``db.transaction <name>`` with ``loyalty.db.member``/``region``/
``attempt``; counters ``loyalty.db.failovers``, ``loyalty.db.retries`` (``reason``:
``conflict``, ``member_unavailable``, ``commit_unknown``, ``reconnect``),
``loyalty.db.conflicts``, ``loyalty.db.unavailable``, ``loyalty.db.stale_reads``; the cluster adds
``loyalty.db.member_state_changes`` and the gauge ``loyalty.db.member.state``. The
same numbers are kept in-process in :class:`RouterStats` (``router.stats``). After each
transaction ``flask.g.db_member`` names the member that served it.
"""

from __future__ import annotations

import collections
import contextlib
import logging
import random
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any, NoReturn, Protocol, TypeVar

import pymysql
from flask import g, has_app_context
from sqlalchemy import Connection, Engine, event
from sqlalchemy import exc as sa_exc

from webapp.errors import OutcomeUnknown, ServiceUnavailable
from webapp.telemetry import meter, tracer

from .cluster import Cluster
from .errors import Failure, RetryTransaction, classify
from .members import Member, build_members
from .probes import GALERA, GROUP_REPLICATION
from .retry import COMMIT_UNKNOWN_OPTION, RetryPolicy

T = TypeVar("T")
log = logging.getLogger(__name__)

_failovers = meter.create_counter(
    "loyalty.db.failovers", description="Transactions moved to another member after a failure"
)
_retries = meter.create_counter(
    "loyalty.db.retries", description="Transaction attempts retried, by reason"
)
_conflicts = meter.create_counter(
    "loyalty.db.conflicts", description="Certification conflicts / deadlocks seen"
)
_unavailable = meter.create_counter(
    "loyalty.db.unavailable", description="Transactions refused with 503: no usable member"
)
_stale_reads = meter.create_counter(
    "loyalty.db.stale_reads", description="Reads served by a member outside the quorum"
)
_outcome_unknown = meter.create_counter(
    "loyalty.db.outcome_unknown",
    description="Transactions answered 503 outcome-unknown: COMMIT sent, answer lost",
)


class Members(Protocol):
    """What the router needs from the members it routes over: a :class:`Cluster`, or
    the one database of :class:`webapp.database.single.SingleDatabase`."""

    kind: str | None
    interval: float
    members: list[Member]

    def ensure_started(self) -> None: ...
    def candidates(self, *, write: bool) -> list[Member]: ...
    def stale_candidates(self) -> list[Member]: ...
    def unsettled(self) -> bool: ...
    def writable_within(self, seconds: float) -> bool: ...
    def wait_for_change(self, timeout: float) -> None: ...
    def report_failure(self, member: Member, error: BaseException) -> object: ...
    def status(self) -> list[dict[str, Any]]: ...
    def close(self) -> None: ...


class RouterStats:
    """In-process counters mirroring the OpenTelemetry ones, for tests and the CLI."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.transactions = 0
        self.attempts = 0
        self.failovers = 0
        self.conflicts = 0
        self.retries: collections.Counter[str] = collections.Counter()
        self.unavailable = 0
        self.outcome_unknown = 0
        self.stale_reads = 0
        self.max_attempts = 0  # most attempts any one transaction needed
        self.by_member: collections.Counter[str] = collections.Counter()

    def add(self, **deltas: int) -> None:
        with self._lock:
            for name, delta in deltas.items():
                setattr(self, name, getattr(self, name) + delta)

    def retried(self, reason: str) -> None:
        with self._lock:
            self.retries[reason] += 1

    def finished(self, attempts: int, member: str | None) -> None:
        with self._lock:
            self.transactions += 1
            self.max_attempts = max(self.max_attempts, attempts)
            if member is not None:
                self.by_member[member] += 1

    def snapshot(self) -> dict[str, Any]:
        with self._lock:
            return {
                "transactions": self.transactions,
                "attempts": self.attempts,
                "failovers": self.failovers,
                "conflicts": self.conflicts,
                "retries": dict(self.retries),
                "unavailable": self.unavailable,
                "outcome_unknown": self.outcome_unknown,
                "stale_reads": self.stale_reads,
                "max_attempts": self.max_attempts,
                "by_member": dict(self.by_member),
            }


class ClusterRouter:
    """Routes transactions over the members of one cluster (or the one member of a
    single database); see the module docstring."""

    def __init__(
        self,
        cluster: Members,
        *,
        policy: RetryPolicy | None = None,
        allow_stale_reads: bool = False,
        quorum_grace: float = 3.0,
    ) -> None:
        self.cluster = cluster
        self.policy = policy or RetryPolicy()
        self.quorum_grace = float(quorum_grace)
        self.allow_stale_reads = allow_stale_reads
        self.stats = RouterStats()
        for member in cluster.members:
            if member.engine.dialect.name in ("mysql", "mariadb"):
                # SQLAlchemy adds a function once per engine: a second router over the
                # same engines (the CLI, tests) does not stack a second barrier.
                event.listen(member.engine, "before_cursor_execute", carry_causal_barrier,
                             retval=True)

    @property
    def retry_budget(self) -> int:
        return self.policy.retry_budget

    @property
    def time_budget(self) -> float:
        return self.policy.time_budget

    @classmethod
    def from_config(cls, config: Mapping[str, Any]) -> ClusterRouter:
        members = build_members(config["CLUSTER"], config)
        interval = float(config.get("HEALTH_CHECK_INTERVAL") or 1.0)
        cluster = Cluster(
            members,
            kind=(config.get("CLUSTER_KIND") or "auto").lower(),
            region=config.get("REGION"),
            preference=config.get("REGION_PREFERENCE"),
            interval=interval,
            probe_timeout=float(min(2, config.get("DB_CONNECT_TIMEOUT") or 2)),
            stall_timeout=float(config.get("HEALTH_CHECK_TIMEOUT") or 1.0),
        )
        policy = RetryPolicy.from_config(config)
        time_budget = policy.time_budget
        statement_timeout = float(config.get("DB_STATEMENT_TIMEOUT") or 3)
        if time_budget < 2 * statement_timeout + float(config.get("DB_CONNECT_TIMEOUT") or 2):
            # A transaction stuck on a frozen member waits one statement timeout; if that
            # spends the budget, it is refused instead of being retried elsewhere.
            log.warning(
                "DB_RETRY_TIME_BUDGET %.1fs leaves no room to fail over after a "
                "DB_STATEMENT_TIMEOUT of %.1fs",
                time_budget,
                statement_timeout,
            )
        return cls(
            cluster,
            policy=policy,
            allow_stale_reads=bool(config.get("ALLOW_STALE_READS", False)),
            quorum_grace=float(config.get("DB_QUORUM_GRACE", 3.0)),
        )

    @property
    def engines(self) -> list[Engine]:
        """One engine per member, in configuration order (telemetry instruments them)."""
        return [m.engine for m in sorted(self.cluster.members, key=lambda m: m.index)]

    # ------------------------------------------------------------------ Router protocol
    def run(
        self,
        work: Callable[[Connection], T],
        *,
        write: bool,
        causal: bool,
        name: str,
        idempotent: bool = False,
    ) -> T:
        """Run ``work`` in one transaction on the best member, retrying as described in
        the module docstring. Only ``idempotent`` work (and every read) runs again after
        a COMMIT whose outcome is unknown; other work gets :class:`OutcomeUnknown`."""
        self.cluster.ensure_started()
        tx = _Transaction(
            name,
            write,
            causal,
            time.monotonic() + self.policy.time_budget,
            idempotent=idempotent or not write,
        )
        try:
            return self._run(work, tx)
        finally:
            self.stats.finished(tx.attempts, tx.served_by)

    def _run(self, work: Callable[[Connection], T], tx: _Transaction) -> T:
        member: Member | None = None
        stale = False
        previous: Member | None = None
        while True:
            if member is None:
                member, stale = self._choose(write=tx.write, causal=tx.causal, avoid=tx.failed)
                if member is None:
                    if tx.remaining() > 0 and (
                        self.cluster.unsettled()
                        or self.cluster.writable_within(self.quorum_grace)
                    ):
                        # A member just failed and its probe is on the way, or the whole
                        # cluster was writable a moment ago (a view change: a resuming
                        # member can cost every node its Primary component for ~1 s): wait
                        # for the verdict rather than refuse while quorum may be back.
                        self.cluster.wait_for_change(min(tx.remaining(), self.cluster.interval))
                        continue
                    self._refuse(tx, tx.last_error)
                if previous is not None and member is not previous:
                    self.stats.add(failovers=1)
                    _failovers.add(
                        1, {"member": previous.name, "region": previous.region, "to": member.name}
                    )
                    log.info("%s: failing over from %s to %s", tx.name, previous.name, member.name)
            tx.attempts += 1
            tx.committing = False
            self.stats.add(attempts=1)
            try:
                result = self._attempt(member, work, tx, stale=stale)
            except (sa_exc.DBAPIError, RetryTransaction, pymysql.MySQLError) as error:
                failure = classify(error)
                if failure is Failure.PERMANENT:
                    raise
                tx.last_error = error
                if _stale_pooled_connection(error, tx):
                    # No pool ping: a connection the server closed while it sat in the
                    # pool fails here, before COMMIT. The pool is invalidated already;
                    # try the same member once on a fresh connection before suspecting
                    # it (a dead member refuses the connect and fails over below).
                    tx.reconnected = True
                    self.stats.retried("reconnect")
                    _retries.add(
                        1, {"reason": "reconnect", "member": member.name, "region": member.region}
                    )
                    continue
                if failure is Failure.CONFLICT:
                    tx.conflicts += 1
                    self.stats.add(conflicts=1)
                    _conflicts.add(1, {"member": member.name, "region": member.region})
                else:
                    self.cluster.report_failure(member, error)
                    tx.failed.add(member.name)
                reason = failure.value
                if failure is Failure.MEMBER_UNAVAILABLE and tx.committing:
                    # The COMMIT was sent and the answer lost: it may or may not have
                    # happened. Only work that finds its own earlier result runs again.
                    reason = "commit_unknown"
                    tx.outcome_unknown = True
                    if not tx.idempotent:
                        log.warning(
                            "%s: outcome of COMMIT on %s unknown (%s); not safe to repeat",
                            tx.name,
                            member.name,
                            error,
                        )
                        self._refuse(tx, error)
                    log.warning(
                        "%s: outcome of COMMIT on %s unknown (%s); running it again, "
                        "it finds its own earlier result",
                        tx.name,
                        member.name,
                        error,
                    )
                if self.policy.exhausted(tx.attempts, tx.remaining()):
                    log.warning(
                        "%s: giving up after %d attempts in %.1fs (%s)",
                        tx.name,
                        tx.attempts,
                        tx.elapsed(),
                        failure.value,
                    )
                    self._refuse(tx, error, busy=failure is Failure.CONFLICT)
                self.stats.retried(reason)
                _retries.add(1, {"reason": reason, "member": member.name, "region": member.region})
                if failure is Failure.CONFLICT:
                    # Same member: the conflict was about data, not the member.
                    time.sleep(self.policy.conflict_pause(tx.conflicts, tx.remaining()))
                    continue
                previous, member = member, None
                continue
            tx.served_by = member.name
            if stale:
                self.stats.add(stale_reads=1)
                _stale_reads.add(1, {"member": member.name, "region": member.region})
            _note_request(member, stale)
            return result

    def status(self) -> list[dict[str, Any]]:
        self.cluster.ensure_started()
        return self.cluster.status()

    def schema_engine(self) -> Engine:
        """The engine of the most preferred member that takes writes (for migrations)."""
        self.cluster.ensure_started()
        writable = self.cluster.candidates(write=True)
        if not writable:
            raise ServiceUnavailable("No database member accepts writes right now.")
        return writable[0].engine

    def dispose(self) -> None:
        self.cluster.close()

    # ------------------------------------------------------------------ internals
    def _choose(self, *, write: bool, causal: bool, avoid: set[str]) -> tuple[Member | None, bool]:
        candidates = self.cluster.candidates(write=write)
        for member in candidates:
            if member.name not in avoid:
                return member, False
        if candidates:
            # Every usable member already failed this transaction once, yet a probe says
            # one is healthy again (a dropped connection, not a dead node): try again,
            # after a short pause so a flapping member is not hammered.
            time.sleep(random.uniform(0, 0.05))
            return candidates[0], False
        if not write and not causal and self.allow_stale_reads:
            stale = self.cluster.stale_candidates()
            if stale:
                return stale[0], True
        return None, False

    def _refuse(
        self, tx: _Transaction, error: BaseException | None, busy: bool = False
    ) -> NoReturn:
        if tx.outcome_unknown:
            # Not "nothing happened": a COMMIT was sent and may have been applied. A
            # client that took this for a refusal and tried again with a new key would
            # book twice.
            self.stats.add(outcome_unknown=1)
            _outcome_unknown.add(1, {"idempotent": tx.idempotent})
            log.warning(
                "%s: outcome unknown after %d attempts (last error: %s)",
                tx.name,
                tx.attempts,
                error,
            )
            raise OutcomeUnknown(
                "The connection to the database was lost while saving, so we cannot tell "
                "whether it was saved. Send the same request again with the same "
                "Idempotency-Key: it will not be applied twice."
            ) from error
        self.stats.add(unavailable=1)
        _unavailable.add(1, {"write": tx.write, "busy": busy})
        if busy:
            detail = "The loyalty service is very busy right now. Please try again."
        elif tx.write:
            detail = (
                "No database member accepts writes right now (quorum lost or every member down)."
            )
        else:
            detail = "No database member can be reached right now (quorum lost or all down)."
        log.warning(
            "%s refused after %d attempts: %s (last error: %s)", tx.name, tx.attempts, detail, error
        )
        raise ServiceUnavailable(detail) from error

    def _attempt(
        self, member: Member, work: Callable[[Connection], T], tx: _Transaction, *, stale: bool
    ) -> T:
        attributes = {
            "loyalty.db.member": member.name,
            "loyalty.db.region": member.region,
            "loyalty.db.attempt": tx.attempts,
            "loyalty.db.write": tx.write,
            "loyalty.db.causal": tx.causal,
            "loyalty.db.stale": stale,
        }
        with (
            tracer.start_as_current_span(f"db.transaction {tx.name}", attributes=attributes),
            member.engine.connect() as conn,
        ):
            conn.execution_options(
                loyalty_write=tx.write, **{COMMIT_UNKNOWN_OPTION: tx.outcome_unknown}
            )
            try:
                with conn.begin():
                    try:
                        with consistency(
                            conn, self.cluster.kind, causal=tx.causal or tx.write,
                            stale=stale, write=tx.write,
                        ):
                            result = work(conn)
                        tx.committing = True  # leaving the block sends COMMIT
                        return result
                    except BaseException as error:
                        _discard_if_member_failed(conn, error)
                        raise
            except BaseException as error:
                _discard_if_member_failed(conn, error)
                raise
            finally:
                if stale and not conn.invalidated:
                    # wsrep_dirty_reads stays with this connection: discard, never pool it.
                    conn.invalidate()


@dataclass
class _Transaction:
    """One call of :meth:`ClusterRouter.run`: what it asked for and how it is going."""

    name: str
    write: bool
    causal: bool
    deadline: float
    idempotent: bool = False  # safe to run again after an unknown COMMIT outcome
    started: float = field(default_factory=time.monotonic)
    attempts: int = 0
    conflicts: int = 0
    failed: set[str] = field(default_factory=set)  # members that failed it
    last_error: BaseException | None = None
    served_by: str | None = None
    committing: bool = False  # the unit of work returned; COMMIT is on its way
    outcome_unknown: bool = False  # some attempt's COMMIT was sent and its answer lost
    reconnected: bool = False  # already ran again once after a dropped pooled connection

    def remaining(self) -> float:
        return self.deadline - time.monotonic()

    def elapsed(self) -> float:
        return time.monotonic() - self.started


@contextlib.contextmanager
def consistency(conn: Connection, kind: str | None, *, causal: bool, stale: bool,
                write: bool = False) -> Iterator[None]:
    """Session settings for one transaction, put back before the connection is pooled."""
    restore: list[str] = []
    if kind == GALERA:
        if causal and write:
            # A write keeps its barrier as a statement of its own. Carried on the first
            # SELECT it waits the same, but measured on the lab it let writes run ~1.5x
            # faster into the same hot rows, and under the fault drills' load (8 wallets
            # written from three nodes, one node killed) an earn now and then ran out
            # of conflict retries ("very busy"). docs/performance.md, item 16.
            conn.exec_driver_sql(CAUSAL_BARRIER)
        elif causal:
            # A causal read: the barrier (module docstring) rides on the transaction's
            # first statement (see carry_causal_barrier), no round trip of its own.
            conn.execution_options(**{_BARRIER_PENDING: True})
        if stale:
            # Not reset here: the COMMIT needs it too on a non-Primary node. The router
            # discards the connection afterwards instead.
            conn.exec_driver_sql("SET SESSION wsrep_dirty_reads = ON")
    elif kind == GROUP_REPLICATION and causal and not stale:
        # Takes effect when the transaction starts at its first table access, below.
        conn.exec_driver_sql("SET SESSION group_replication_consistency = 'BEFORE'")
        restore.append("SET SESSION group_replication_consistency = 'EVENTUAL'")
    with _restoring(conn, restore):
        yield


# The causal barrier: MariaDB's SET STATEMENT holds the variable for one statement
# only, so there is nothing to put back. Verified on the lab: it blocks while the node's
# applier is paused (tests/cluster/test_cluster.py).
CAUSAL_BARRIER = "SET STATEMENT wsrep_sync_wait = 1 FOR SELECT 1"
_BARRIER_PENDING = "loyalty_causal_barrier_pending"


def carry_causal_barrier(conn: Connection, cursor: Any, statement: str, parameters: Any,
                         context: Any, executemany: bool) -> tuple[str, Any]:
    """``before_cursor_execute`` listener of every MySQL-family engine (inert unless
    :func:`consistency` asked for a barrier: causal reads). The barrier used to be a
    ``SELECT 1`` of its own: one round trip in every causal read. Bit 1 of
    ``wsrep_sync_wait`` makes a *read* wait for the node to catch up before it runs, so
    when the transaction's first statement is a SELECT it carries the barrier itself
    (``SET STATEMENT wsrep_sync_wait = 1 FOR SELECT ...``): the same wait, before the
    same first read. Any other first statement gets the ``SELECT 1`` barrier sent just
    before it, as before."""
    if not conn.get_execution_options().get(_BARRIER_PENDING):
        return statement, parameters
    conn.execution_options(**{_BARRIER_PENDING: False})
    if not executemany and statement.lstrip()[:7].upper() == "SELECT ":
        return f"SET STATEMENT wsrep_sync_wait = 1 FOR {statement}", parameters
    cursor.execute(CAUSAL_BARRIER)
    cursor.fetchall()
    return statement, parameters


@contextlib.contextmanager
def _restoring(conn: Connection, statements: list[str]) -> Iterator[None]:
    """Runs ``statements`` after the block, even when it fails. A connection that cannot
    be reset is invalidated rather than pooled; the block's own error, if any, is the
    one that propagates."""
    try:
        yield
    except BaseException:
        with contextlib.suppress(Exception):
            _reset(conn, statements)
        raise
    _reset(conn, statements)


def _reset(conn: Connection, statements: list[str]) -> None:
    if not statements or conn.invalidated:
        return
    try:
        for statement in statements:
            conn.exec_driver_sql(statement)
    except Exception:
        with contextlib.suppress(Exception):
            conn.invalidate()
        raise


def _stale_pooled_connection(error: BaseException, tx: _Transaction) -> bool:
    """The first disconnect of a transaction, before its COMMIT was sent: what the pool's
    ping used to catch at checkout. Only once: a second one means the member."""
    return (
        not tx.reconnected
        and not tx.committing
        and isinstance(error, sa_exc.DBAPIError)
        and error.connection_invalidated
    )


def _discard_if_member_failed(conn: Connection, error: BaseException) -> None:
    """A connection to a member that failed is invalidated at once, before SQLAlchemy
    tries to roll it back: a non-Primary Galera node refuses even ROLLBACK (1047)."""
    if not conn.invalidated and classify(error) is Failure.MEMBER_UNAVAILABLE:
        with contextlib.suppress(Exception):
            conn.invalidate()


def _note_request(member: Member, stale: bool) -> None:
    """Tells the page (and tests) which member served the request and whether the data
    may be stale, through ``flask.g`` when there is an app context."""
    if has_app_context():
        g.db_member = member.name
        if stale:
            g.stale_read = True
