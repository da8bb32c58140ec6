"""The cluster state machine: every member's state, and the one object that owns it.

A :class:`Cluster` knows every member (one engine each, see :mod:`.members`), which
region it serves and what state it is in (the states are described in :mod:`.probes`).
State changes in exactly two ways: a background health checker probes every member on
an interval (backing off for members that are down), and the router reports every
connection-level failure it sees (:meth:`Cluster.report_failure`), which marks the
member ``suspect`` and wakes the checker to confirm at once. Callers never flip states
themselves; they ask for :meth:`Cluster.candidates`.
"""

from __future__ import annotations

import collections
import contextlib
import logging
import threading
import time
import weakref
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

import pymysql
from opentelemetry.metrics import CallbackOptions, Observation
from sqlalchemy import Engine, event

from webapp.telemetry import meter

from .errors import NOT_PRIMARY_CODES, mysql_code
from .members import Member, describe_error, preference_order
from .probes import GALERA, GROUP_REPLICATION, KINDS, Health, MemberState, detect_kind, probe_sql

log = logging.getLogger(__name__)

# MySQL error codes that mean "reachable, in the group, but will not take writes".
READ_ONLY_CODES = {1290, 1836, 1792}

_state_changes = meter.create_counter(
    "loyalty.db.member_state_changes",
    description="Cluster member state transitions seen by this process",
)
_clusters: weakref.WeakSet[Cluster] = weakref.WeakSet()


def _observe_states(_options: CallbackOptions) -> Iterable[Observation]:
    """``loyalty.db.member.state``: 1 per member, labelled with its current state."""
    for cluster in list(_clusters):
        for member in cluster.members:
            yield Observation(
                1,
                {
                    "member": member.name,
                    "region": member.region,
                    "state": member.state.value,
                    "app_region": cluster.region or "",
                },
            )


meter.create_observable_gauge(
    "loyalty.db.member.state",
    callbacks=[_observe_states],
    description="Current state of each cluster member as this process sees it",
)


@dataclass(frozen=True)
class StateChange:
    at: float  # time.monotonic()
    member: str
    region: str
    old: MemberState
    new: MemberState
    reason: str | None


# ---------------------------------------------------------------------------- cluster
class Cluster:
    """Members, their state and the health checker. Thread-safe; one per app."""

    def __init__(
        self,
        members: Sequence[Member],
        *,
        kind: str = "auto",
        region: str | None = None,
        preference: str | Sequence[str] | None = None,
        interval: float = 1.0,
        probe_timeout: float = 2.0,
        stall_timeout: float | None = None,
        max_backoff: float | None = None,
    ) -> None:
        if kind not in (*KINDS, "auto"):
            raise ValueError(f"CLUSTER_KIND must be galera, group_replication or auto, not {kind}")
        self.kind: str | None = None if kind == "auto" else kind
        self.region = region
        regions = list(dict.fromkeys(m.region for m in members))
        self.region_order = preference_order(regions, region, preference)
        ranks = {r: i for i, r in enumerate(self.region_order)}
        for member in members:
            member.rank = ranks[member.region] * 1000 + member.index
        # Preference order: own (or preferred) region first, then by configuration order.
        self.members: list[Member] = sorted(members, key=lambda m: m.rank)
        self.interval = max(0.05, float(interval))
        self.probe_timeout = probe_timeout
        # A probe is a few status reads: one still unanswered after this means a stalled
        # member, and routing should not wait for the socket timeout to say so.
        self.stall_timeout = min(probe_timeout, stall_timeout or probe_timeout)
        self.max_backoff = (
            max_backoff
            if max_backoff is not None
            else max(self.interval, min(5.0, 10 * self.interval))
        )
        self.history: collections.deque[StateChange] = collections.deque(maxlen=500)
        self.writable_at: float | None = None  # when a probe last found a member up
        self._lock = threading.RLock()
        self._changed = threading.Condition(self._lock)
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._start_lock = threading.Lock()
        self._thread: threading.Thread | None = None
        self._executor: ThreadPoolExecutor | None = None
        self._inflight: dict[str, float] = {}  # member name -> when its probe was sent
        self._listeners: list[Callable[[StateChange], None]] = []
        for member in self.members:
            self._set_session_defaults_on_connect(member.engine)
        _clusters.add(self)

    # ------------------------------------------------------------------ routing view
    def candidates(self, *, write: bool) -> list[Member]:
        """Members that can take this kind of transaction now, most preferred first."""
        usable = {MemberState.UP} if write else {MemberState.UP, MemberState.READ_ONLY}
        with self._lock:
            return [m for m in self.members if m.state in usable]

    def stale_candidates(self) -> list[Member]:
        """Reachable members outside the quorum: only for reads that accept stale data."""
        with self._lock:
            return [m for m in self.members if m.state is MemberState.NON_PRIMARY]

    def unsettled(self) -> bool:
        """True while some member's state is unconfirmed (a probe is on its way)."""
        with self._lock:
            return any(m.state is MemberState.SUSPECT for m in self.members)

    def writable_within(self, seconds: float) -> bool:
        """True when a probe found a member ``up`` less than ``seconds`` ago: no member
        takes writes now, but the cluster had quorum a moment ago (a view change)."""
        with self._lock:
            return self.writable_at is not None and time.monotonic() - self.writable_at < seconds

    def wait_for_change(self, timeout: float) -> None:
        """Blocks until the next probe result (or ``timeout``)."""
        with self._changed:
            self._changed.wait(timeout=max(0.0, timeout))

    def member(self, name: str) -> Member:
        for member in self.members:
            if member.name == name:
                return member
        raise KeyError(name)

    def add_listener(self, listener: Callable[[StateChange], None]) -> None:
        self._listeners.append(listener)

    # ------------------------------------------------------------------ failures
    def report_failure(self, member: Member, error: BaseException) -> MemberState:
        """A transaction on ``member`` failed for a member-level reason: update its state.

        A "not primary" answer is itself proof of the state; a lost or refused
        connection only makes the member suspect until the checker confirms.
        """
        code = mysql_code(error)
        reason = describe_error(error)
        if code in READ_ONLY_CODES:
            new = MemberState.READ_ONLY
        elif code in NOT_PRIMARY_CODES:
            new = MemberState.NON_PRIMARY
        else:
            new = MemberState.SUSPECT
        with self._lock:
            if member.state is MemberState.DOWN and new is MemberState.SUSPECT:
                new = MemberState.DOWN  # already known; the backoff schedule stands
            else:
                member.next_check_at = 0.0  # confirm at once
            member.error = reason
            self._transition(member, new, reason)
        self._wake.set()
        return new

    # ------------------------------------------------------------------ probing
    def ensure_started(self) -> None:
        """First use: probe every member once (so routing starts informed), then start
        the background checker. Cheap after the first call."""
        if self._thread is not None and self._thread.is_alive():
            return
        with self._start_lock:
            if self._thread is not None and self._thread.is_alive():
                return
            self._stop.clear()
            self.probe_all()
            self._thread = threading.Thread(
                target=self._run, name=f"loyalty-db-health-{self.region or 'app'}", daemon=True
            )
            self._thread.start()

    def probe_all(self) -> None:
        """Probe every member now, concurrently, and wait for the answers."""
        executor = self._pool()
        for future in [executor.submit(self.probe, m) for m in self.members]:
            future.result()

    def probe(self, member: Member) -> Health:
        """One health check of ``member``; records and returns what it found."""
        started = time.perf_counter()
        with member._probe_lock:
            try:
                conn = self._probe_connection(member)
                with conn.cursor() as cursor:
                    if self.kind is None:
                        with self._lock:
                            if self.kind is None:
                                self.kind = detect_kind(cursor)
                                log.info(
                                    "cluster kind detected: %s (on %s)", self.kind, member.name
                                )
                    health = probe_sql(self.kind, cursor)
            except (pymysql.MySQLError, OSError) as error:
                self._drop_probe_connection(member)
                code = mysql_code(error)
                if code in NOT_PRIMARY_CODES:
                    health = Health(MemberState.NON_PRIMARY, None, error=describe_error(error))
                else:
                    health = Health(MemberState.DOWN, None, error=describe_error(error))
        latency = round((time.perf_counter() - started) * 1000, 2)
        self._record(member, health, latency)
        return health

    def _probe_connection(self, member: Member) -> pymysql.connections.Connection:
        if member._probe_conn is not None:
            return member._probe_conn
        engine = member.engine
        cargs, cparams = engine.dialect.create_connect_args(engine.url)
        # No default schema: a probe must work before migrations and on a node that
        # refuses everything but SHOW (non-Primary).
        cparams.pop("database", None)
        cparams.pop("db", None)
        cparams.update(
            connect_timeout=self.probe_timeout,
            read_timeout=self.probe_timeout,
            write_timeout=self.probe_timeout,
            autocommit=True,
        )
        member._probe_conn = pymysql.connect(*cargs, **cparams)
        member.server_version = member._probe_conn.get_server_info()
        return member._probe_conn

    def _drop_probe_connection(self, member: Member) -> None:
        conn, member._probe_conn = member._probe_conn, None
        if conn is not None:
            with contextlib.suppress(Exception):
                conn.close()

    def _record(self, member: Member, health: Health, latency_ms: float) -> None:
        now = time.monotonic()
        with self._lock:
            member.checked_at = now
            member.latency_ms = latency_ms if health.state is not MemberState.DOWN else None
            member.role = health.role
            member.queue = health.queue
            member.details = dict(health.details)
            member.error = health.error
            if health.state is MemberState.DOWN:
                member.failures += 1
                backoff = min(self.max_backoff, self.interval * 2 ** (member.failures - 1))
                member.next_check_at = now + backoff
            else:
                member.failures = 0
                member.next_check_at = now + self.interval
            if health.state is MemberState.UP:
                self.writable_at = now
            self._transition(member, health.state, health.error)
            self._changed.notify_all()

    def _transition(self, member: Member, new: MemberState, reason: str | None) -> None:
        old = member.state
        if old is new:
            return
        member.state = new
        member.changed_at = time.monotonic()
        change = StateChange(member.changed_at, member.name, member.region, old, new, reason)
        self.history.append(change)
        log_level = (
            logging.INFO if new in (MemberState.UP, MemberState.SUSPECT) else (logging.WARNING)
        )
        log.log(
            log_level,
            "cluster member %s (%s) seen from %s: %s -> %s%s",
            member.name,
            member.region,
            self.region or "-",
            old.value,
            new.value,
            f" ({reason})" if reason else "",
        )
        _state_changes.add(
            1, {"member": member.name, "region": member.region, "from": old.value, "to": new.value}
        )
        for listener in self._listeners:
            with contextlib.suppress(Exception):
                listener(change)

    # ------------------------------------------------------------------ checker thread
    def _pool(self) -> ThreadPoolExecutor:
        with self._lock:
            if self._executor is None:
                self._executor = ThreadPoolExecutor(
                    max_workers=len(self.members), thread_name_prefix="loyalty-db-probe"
                )
            return self._executor

    def _run(self) -> None:
        while not self._stop.is_set():
            now = time.monotonic()
            next_due = now + self.interval
            with self._lock:
                due = [
                    m
                    for m in self.members
                    if m.next_check_at <= now and m.name not in self._inflight
                ]
                for member in due:
                    self._inflight[member.name] = now
                for member in self.members:
                    sent = self._inflight.get(member.name)
                    if sent is None:
                        next_due = min(next_due, member.next_check_at)
                    elif not self._suspect_if_stalled(member, now - sent):
                        next_due = min(next_due, sent + self.stall_timeout)
            for member in due:
                try:
                    self._pool().submit(self._probe_in_background, member)
                except RuntimeError:  # executor shut down by dispose()
                    return
            self._wake.wait(timeout=max(0.01, next_due - time.monotonic()))
            self._wake.clear()

    def _probe_in_background(self, member: Member) -> None:
        try:
            self.probe(member)
        except Exception:  # a checker must never die on a surprise
            log.exception("health probe of %s failed unexpectedly", member.name)
        finally:
            with self._lock:
                self._inflight.pop(member.name, None)
            self._wake.set()

    def _suspect_if_stalled(self, member: Member, waited: float) -> bool:
        """Marks a serving member whose probe has waited ``stall_timeout`` suspect (under
        the lock). True once the probe is overdue, whatever the member's state."""
        if waited < self.stall_timeout:
            return False
        if member.state in (MemberState.UP, MemberState.READ_ONLY):
            reason = f"health probe unanswered for {waited:.1f}s"
            member.error = reason
            self._transition(member, MemberState.SUSPECT, reason)
            self._changed.notify_all()
        return True

    def close(self) -> None:
        """Stop the checker, close probe connections and every member's pool."""
        self._stop.set()
        self._wake.set()
        thread, self._thread = self._thread, None
        if thread is not None:
            thread.join(timeout=5)
        with self._lock:
            executor, self._executor = self._executor, None
        if executor is not None:
            executor.shutdown(wait=True, cancel_futures=True)
        for member in self.members:
            with member._probe_lock:
                self._drop_probe_connection(member)
            member.engine.dispose()
        with self._lock:
            self._inflight.clear()

    # ------------------------------------------------------------------ status
    def status(self) -> list[dict[str, Any]]:
        now = time.monotonic()
        with self._lock:
            return [
                {
                    "name": m.name,
                    "region": m.region,
                    "state": m.state.value,
                    "role": m.role,
                    "kind": self.kind,
                    "backend": m.backend,
                    "version": m.server_version,
                    "address": m.address,
                    "preference": position,
                    "queue": m.queue,
                    "latency_ms": m.latency_ms,
                    "checked_s_ago": None if m.checked_at is None else round(now - m.checked_at, 2),
                    "in_state_s": round(now - m.changed_at, 2),
                    "error": m.error,
                    **({"details": dict(m.details)} if m.details else {}),
                }
                for position, m in enumerate(self.members)
            ]

    # ------------------------------------------------------------------ sessions
    def _set_session_defaults_on_connect(self, engine: Engine) -> None:
        """New connections start with the fast, eventual settings; causal transactions
        raise them for themselves and put them back (see routing)."""

        @event.listens_for(engine, "connect")
        def _on_connect(dbapi_connection: Any, _record: Any) -> None:
            statement = SESSION_DEFAULTS.get(self.kind or "")
            if statement:
                with dbapi_connection.cursor() as cursor:
                    cursor.execute(statement)


SESSION_DEFAULTS = {
    GALERA: "SET SESSION wsrep_sync_wait = 0",
    GROUP_REPLICATION: "SET SESSION group_replication_consistency = 'EVENTUAL'",
}
