"""The cluster router's decisions, over three real SQLite databases as three members.

:class:`ClusterRouter` decides where a transaction runs and what happens after a
failure; :class:`webapp.database.cluster.Cluster` tells it which members are usable,
from probes of real Galera or Group Replication members. Here the members are SQLite
files and their states are set by the test (``ScriptedMembers``), so every routing rule
is checked in milliseconds: preference order, failover after a member failure, the one
reconnect of a stale pooled connection, conflicts retried on the same member, stale
reads, the quorum grace, refusals and the unknown-COMMIT contract. The probes that set
states are tested in ``tests/unit/test_cluster_probes.py``; the same rules against real
Galera nodes killed, frozen and partitioned are the drills in ``tests/cluster/``.
"""

from __future__ import annotations

import contextlib
import logging
import sqlite3
import time
from collections.abc import Iterator

import pytest
from flask import Flask, g
from sqlalchemy import create_engine, event, text
from sqlalchemy import exc as sa_exc

from tests.helpers import commit_answers_lost, metric_reader, metric_total
from webapp.database import RetryTransaction, after_unknown_commit, routing
from webapp.database.members import Member
from webapp.database.pool import make_engine
from webapp.database.probes import GALERA, GROUP_REPLICATION, MemberState
from webapp.database.retry import RetryPolicy
from webapp.database.routing import (
    _BARRIER_PENDING as BARRIER_PENDING,
)
from webapp.database.routing import (
    CAUSAL_BARRIER,
    ClusterRouter,
    _restoring,
    carry_causal_barrier,
    consistency,
)
from webapp.errors import OutcomeUnknown, ServiceUnavailable

UP, DOWN = MemberState.UP, MemberState.DOWN


class ScriptedMembers:
    """The router's view of a cluster (:class:`webapp.database.routing.Members`) whose
    member states the test sets. A member reported failed goes down, as a failed probe
    would take it; ``comes_back`` members go up again at the next wait for a change."""

    kind = None  # no session consistency settings: SQLite
    interval = 0.01

    def __init__(self, tmp_path, names: tuple[str, ...] = ("us", "ie", "in")) -> None:
        self.members = []
        for index, name in enumerate(names):
            engine = make_engine(f"sqlite:///{tmp_path / name}.db", {})
            with engine.begin() as conn:
                conn.execute(text("CREATE TABLE IF NOT EXISTS t (n INTEGER)"))
            member = Member(name, name, str(engine.url), engine, index)
            member.state = UP
            self.members.append(member)
        self.reported: list[str] = []
        self.errors: list[BaseException] = []
        self.mark_failed_down = True
        self.settling = 0  # how many more calls of unsettled() answer True
        self.writable_recently = False
        self.grace_asked: list[float] = []
        self.waits: list[float] = []
        self.comes_back: list[Member] = []
        self._exits = contextlib.ExitStack()

    def record(self) -> dict[str, list[str]]:
        """Records each member's statements, running a harmless SELECT in place of each
        MySQL/MariaDB SET (SQLite has none), so ``kind`` may be set to a cluster's."""
        sent: dict[str, list[str]] = {}
        for member in self.members:
            sent[member.name] = statements = []
            event.listen(member.engine, "before_cursor_execute", _recorder(statements),
                         retval=True)
        return sent

    def lose_commit_answer(self, name: str) -> None:
        """The member's next COMMIT happens, then fails as if its answer was lost."""
        self._exits.enter_context(commit_answers_lost(self[name].engine))

    def __getitem__(self, name: str) -> Member:
        return next(m for m in self.members if m.name == name)

    def ensure_started(self) -> None:
        pass

    def candidates(self, *, write: bool) -> list[Member]:
        usable = {UP} if write else {UP, MemberState.READ_ONLY}
        return [m for m in self.members if m.state in usable]

    def stale_candidates(self) -> list[Member]:
        return [m for m in self.members if m.state is MemberState.NON_PRIMARY]

    def unsettled(self) -> bool:
        if self.settling:
            self.settling -= 1
            return True
        return False

    def writable_within(self, seconds: float) -> bool:
        self.grace_asked.append(seconds)
        return self.writable_recently

    def wait_for_change(self, timeout: float) -> None:
        self.waits.append(timeout)
        if not self.comes_back:
            time.sleep(timeout)  # as the real one blocks until a probe answers
        for member in self.comes_back:
            member.state = UP
        self.comes_back = []

    def report_failure(self, member: Member, error: BaseException) -> MemberState:
        self.reported.append(member.name)
        self.errors.append(error)
        if self.mark_failed_down:
            member.state = DOWN
        return member.state

    def status(self) -> list[dict]:
        return [{"name": m.name, "state": m.state.value} for m in self.members]

    def close(self) -> None:
        self._exits.close()
        for member in self.members:
            member.engine.dispose()


def _recorder(sent: list[str]):
    def record(conn, cursor, statement, parameters, context, executemany):
        sent.append(statement)
        return ("SELECT 1" if statement.startswith("SET ") else statement), parameters
    return record


@pytest.fixture
def members(tmp_path) -> Iterator[ScriptedMembers]:
    scripted = ScriptedMembers(tmp_path)
    yield scripted
    scripted.close()


@pytest.fixture
def context() -> Iterator[None]:
    """An app context, where the router notes the serving member in ``flask.g``."""
    with Flask(__name__).app_context():
        yield


def make_router(members, **options) -> ClusterRouter:
    policy = options.pop("policy", RetryPolicy(retry_budget=4, time_budget=5.0))
    return ClusterRouter(members, policy=policy, **options)


def rows(member: Member) -> int:
    with member.engine.connect() as conn:
        return conn.execute(text("SELECT COUNT(*) FROM t")).scalar_one()


def lost_connection() -> sa_exc.OperationalError:
    """What a write on a member that went away raises before COMMIT."""
    return sa_exc.OperationalError("INSERT", {}, sqlite3.OperationalError(
        "lost connection to the database during query"))


def member_of(conn) -> str:
    return conn.engine.url.database.rsplit("/", 1)[-1].removesuffix(".db")


def insert_then(failures: dict[str, BaseException], ran: list[str]):
    """Work that inserts a row, then raises the failure scripted for its member."""
    def work(conn):
        member = member_of(conn)
        ran.append(member)
        conn.execute(text("INSERT INTO t VALUES (1)"))
        if member in failures:
            raise failures.pop(member)
        return member
    return work


def test_work_runs_on_the_most_preferred_member_and_names_it(members, context):
    router = make_router(members)
    ran: list[str] = []
    assert router.run(insert_then({}, ran), write=True, causal=True, name="t") == "us"
    assert g.db_member == "us"
    assert "stale_read" not in g
    assert [rows(m) for m in members.members] == [1, 0, 0]
    stats = router.stats.snapshot()
    assert (stats["transactions"], stats["attempts"], stats["failovers"]) == (1, 1, 0)
    assert stats["by_member"] == {"us": 1}
    assert stats["max_attempts"] == 1
    assert stats["retries"] == {}
    assert stats["unavailable"] == 0


def test_a_member_failing_before_commit_is_reported_and_the_work_moves_on(members, context):
    router = make_router(members)
    ran: list[str] = []
    served = router.run(insert_then({"us": lost_connection()}, ran), write=True, causal=True,
                        name="t")
    assert (served, ran, members.reported) == ("ie", ["us", "ie"], ["us"])
    assert [rows(m) for m in members.members] == [0, 1, 0]  # the failed attempt rolled back
    assert g.db_member == "ie"
    stats = router.stats.snapshot()
    assert stats["failovers"] == 1
    assert stats["retries"] == {"member_unavailable": 1}
    assert stats["attempts"] == 2
    assert stats["max_attempts"] == 2
    assert stats["by_member"] == {"ie": 1}


def test_a_member_that_failed_this_transaction_is_avoided_even_if_still_listed(members,
                                                                             context):
    members.mark_failed_down = False  # its probe has not answered yet
    router = make_router(members)
    ran: list[str] = []
    failures = {"us": lost_connection(), "ie": lost_connection()}
    assert router.run(insert_then(failures, ran), write=True, causal=True, name="t") == "in"
    assert ran == ["us", "ie", "in"]
    assert router.stats.snapshot()["failovers"] == 2


def test_when_every_listed_member_failed_once_the_first_is_tried_again(members, context):
    members.mark_failed_down = False
    for name in ("ie", "in"):
        members[name].state = DOWN
    router = make_router(members)
    ran: list[str] = []
    assert router.run(insert_then({"us": lost_connection()}, ran), write=True, causal=True,
                      name="t") == "us"
    assert ran == ["us", "us"]
    assert rows(members["us"]) == 1
    assert router.stats.snapshot()["failovers"] == 0  # the same member, not a failover


def test_a_conflict_is_retried_on_the_same_member(members, context):
    router = make_router(members)
    ran: list[str] = []
    served = router.run(insert_then({"us": RetryTransaction()}, ran), write=True, causal=True,
                        name="t")
    assert (served, ran, members.reported) == ("us", ["us", "us"], [])
    assert rows(members["us"]) == 1
    stats = router.stats.snapshot()
    assert stats["conflicts"] == 1
    assert stats["retries"] == {"conflict": 1}
    assert stats["failovers"] == 0


def test_endless_conflicts_are_refused_as_busy_after_the_budget(members, context):
    router = make_router(members, policy=RetryPolicy(retry_budget=2, time_budget=5.0))
    runs: list[int] = []

    def conflicts(conn):
        runs.append(1)
        raise RetryTransaction()

    with pytest.raises(ServiceUnavailable, match="very busy"):
        router.run(conflicts, write=True, causal=True, name="t")
    assert len(runs) == 3
    stats = router.stats.snapshot()
    assert stats["unavailable"] == 1
    assert stats["outcome_unknown"] == 0
    assert stats["retries"] == {"conflict": 2}
    assert stats["conflicts"] == 3


def test_a_permanent_error_is_raised_at_once(members, context):
    router = make_router(members)
    runs: list[int] = []

    def bug(conn):
        runs.append(1)
        conn.execute(text("SELECT * FROM no_such_table"))

    with pytest.raises(sa_exc.OperationalError, match="no_such_table"):
        router.run(bug, write=True, causal=True, name="t")
    assert runs == [1]
    assert members.reported == []


@pytest.mark.parametrize(("write", "message"), [
    (True, "No database member accepts writes right now (quorum lost or every member down)."),
    (False, "No database member can be reached right now (quorum lost or all down)."),
])
def test_no_usable_member_is_refused_with_what_is_missing(members, context, write, message):
    for member in members.members:
        member.state = DOWN
    router = make_router(members)
    with pytest.raises(ServiceUnavailable) as refused:
        router.run(lambda conn: 1, write=write, causal=True, name="t")
    assert refused.value.detail == message
    assert router.stats.snapshot()["unavailable"] == 1
    assert members.waits == []  # nothing unsettled, not writable a moment ago: no wait


def test_reads_may_use_a_read_only_member_writes_may_not(members, context):
    for name in ("us", "ie"):
        members[name].state = MemberState.READ_ONLY
    router = make_router(members)
    router.run(lambda conn: 1, write=False, causal=True, name="t")
    assert g.db_member == "us"
    assert router.run(insert_then({}, []), write=True, causal=True, name="t") == "in"


def test_a_stale_read_is_served_outside_the_quorum_only_when_allowed(members, context):
    for member in members.members:
        member.state = MemberState.NON_PRIMARY
    discarded: list[object] = []
    event.listen(members["us"].engine, "invalidate", lambda *args: discarded.append(args))

    def read(conn):
        return conn.execute(text("SELECT COUNT(*) FROM t")).scalar_one()

    strict = make_router(members)
    with pytest.raises(ServiceUnavailable):
        strict.run(read, write=False, causal=False, name="t")

    router = make_router(members, allow_stale_reads=True)
    assert router.run(read, write=False, causal=False, name="t") == 0
    assert g.db_member == "us"
    assert g.stale_read is True
    assert router.stats.snapshot()["stale_reads"] == 1
    assert len(discarded) == 1  # its session settings must never be pooled
    for kind in ({"write": True, "causal": True}, {"write": False, "causal": True}):
        with pytest.raises(ServiceUnavailable):  # writes and causal reads need the quorum
            router.run(read, name="t", **kind)


def test_an_unsettled_cluster_is_waited_for_not_refused(members, context):
    us = members["us"]
    for member in members.members:
        member.state = DOWN
    members.settling = 1  # a probe verdict is on its way...
    members.comes_back = [us]  # ...and it finds the member up again
    router = make_router(members)
    assert router.run(insert_then({}, []), write=True, causal=True, name="t") == "us"
    assert members.waits == [members.interval]


def test_a_cluster_writable_within_the_quorum_grace_is_waited_for(members, context):
    for member in members.members:
        member.state = DOWN
    members.writable_recently = True
    members.comes_back = [members["ie"]]
    router = make_router(members, quorum_grace=2.5)
    assert router.run(insert_then({}, []), write=True, causal=True, name="t") == "ie"
    assert members.grace_asked == [2.5]
    assert len(members.waits) == 1
    assert router.stats.snapshot()["unavailable"] == 0


def test_the_wait_for_quorum_ends_with_the_time_budget(members, context):
    for member in members.members:
        member.state = DOWN
    members.writable_recently = True  # and it stays writable "a moment ago" forever
    router = make_router(members, policy=RetryPolicy(retry_budget=4, time_budget=0.2))
    with pytest.raises(ServiceUnavailable, match="accepts writes"):
        router.run(lambda conn: 1, write=True, causal=True, name="t")
    assert members.waits
    assert all(0 <= wait <= members.interval for wait in members.waits)


def test_a_pooled_connection_dropped_before_commit_is_retried_once_on_the_same_member(
        members, context):
    def dropped() -> sa_exc.OperationalError:
        error = lost_connection()
        error.connection_invalidated = True
        return error

    router = make_router(members)
    ran: list[str] = []
    assert router.run(insert_then({"us": dropped()}, ran), write=True, causal=True,
                      name="t") == "us"
    assert ran == ["us", "us"]
    assert members.reported == []
    assert router.stats.snapshot()["retries"] == {"reconnect": 1}

    # A second drop in the same transaction is the member, not the pool.
    ran.clear()
    drops = [dropped(), dropped()]

    def drops_twice(conn):
        ran.append(member_of(conn))
        if ran[-1] == "us" and drops:
            raise drops.pop()
        return ran[-1]

    assert router.run(drops_twice, write=True, causal=True, name="t") == "ie"
    assert ran == ["us", "us", "ie"]
    assert members.reported == ["us"]


def test_idempotent_work_whose_commit_answer_was_lost_runs_again_elsewhere_knowing_it(
        members, context, caplog):
    members.lose_commit_answer("us")
    router = make_router(members)
    seen: list[tuple[str, bool]] = []

    def work(conn):
        seen.append((member_of(conn), after_unknown_commit(conn)))
        conn.execute(text("INSERT INTO t VALUES (1)"))
        return len(seen)

    with caplog.at_level(logging.WARNING, logger="webapp.database.routing"):
        assert router.run(work, write=True, causal=True, name="t", idempotent=True) == 2
    assert seen == [("us", False), ("ie", True)]
    assert "running it again" in caplog.text
    assert router.stats.snapshot()["retries"] == {"commit_unknown": 1}
    assert router.stats.snapshot()["outcome_unknown"] == 0


def test_other_work_whose_commit_answer_was_lost_is_outcome_unknown_not_refused(members,
                                                                               context):
    members.lose_commit_answer("us")
    router = make_router(members)
    ran: list[str] = []
    with pytest.raises(OutcomeUnknown, match="same Idempotency-Key"):
        router.run(insert_then({}, ran), write=True, causal=True, name="t")
    assert ran == ["us"]
    assert rows(members["us"]) == 1
    stats = router.stats.snapshot()
    assert stats["outcome_unknown"] == 1
    assert stats["unavailable"] == 0


def test_retries_that_run_out_after_a_lost_answer_are_outcome_unknown(members, context):
    for member in members.members:
        members.lose_commit_answer(member.name)
    router = make_router(members, policy=RetryPolicy(retry_budget=2, time_budget=5.0))
    with pytest.raises(OutcomeUnknown):
        router.run(insert_then({}, []), write=True, causal=True, name="t", idempotent=True)
    assert router.stats.snapshot()["outcome_unknown"] == 1


def test_reads_are_always_safe_to_run_again(members, context):
    members.lose_commit_answer("us")
    router = make_router(members)
    assert router.run(lambda conn: 7, write=False, causal=True, name="t") == 7
    assert g.db_member == "ie"


def test_the_schema_engine_is_the_first_writable_member(members):
    router = make_router(members)
    members["us"].state = MemberState.READ_ONLY
    assert router.schema_engine() is members["ie"].engine
    for member in members.members:
        member.state = DOWN
    with pytest.raises(ServiceUnavailable) as refused:
        router.schema_engine()
    assert refused.value.detail == "No database member accepts writes right now."
    assert router.status() == [{"name": n, "state": "down"} for n in ("us", "ie", "in")]
    assert router.engines == [m.engine for m in members.members]


def test_budgets_come_from_the_policy(members):
    router = make_router(members, policy=RetryPolicy(retry_budget=3, time_budget=1.5))
    assert (router.retry_budget, router.time_budget) == (3, 1.5)
    assert make_router(members, quorum_grace="2").quorum_grace == 2.0


# ---------------------------------------------------------------- session consistency
# What each kind of transaction tells its member, on a SQLite connection that records
# the statements and runs a harmless SELECT in place of each MySQL/MariaDB SET (the
# Galera runs of tests/cluster/test_cluster.py prove the settings do what they should).

@pytest.fixture
def recorded(tmp_path):
    engine = create_engine(f"sqlite:///{tmp_path / 'session.db'}")
    sent: list[str] = []

    @event.listens_for(engine, "before_cursor_execute", retval=True)
    def record(conn, cursor, statement, parameters, context, executemany):
        sent.append(statement)
        return ("SELECT 1" if statement.startswith("SET ") else statement), parameters

    with engine.connect() as conn:
        yield conn, sent
    engine.dispose()


def settings_of(recorded, kind, *, causal, stale=False, write=False, fail=False):
    conn, sent = recorded
    sent.clear()
    with contextlib.suppress(ZeroDivisionError), \
            consistency(conn, kind, causal=causal, stale=stale, write=write):
        sent.append("-- work")
        if fail:
            raise ZeroDivisionError
    return sent, conn.get_execution_options().get(BARRIER_PENDING, False)


def test_a_galera_write_sends_its_causal_barrier_first(recorded):
    assert settings_of(recorded, GALERA, causal=True, write=True) == (
        [CAUSAL_BARRIER, "-- work"], False)


def test_a_galera_causal_read_leaves_its_barrier_to_the_first_statement(recorded):
    assert settings_of(recorded, GALERA, causal=True) == (["-- work"], True)


def test_a_galera_stale_read_may_read_outside_the_quorum(recorded):
    assert settings_of(recorded, GALERA, causal=False, stale=True) == (
        ["SET SESSION wsrep_dirty_reads = ON", "-- work"], False)


def test_a_plain_galera_read_and_a_single_database_change_nothing(recorded):
    assert settings_of(recorded, GALERA, causal=False) == (["-- work"], False)
    assert settings_of(recorded, None, causal=True, write=True) == (["-- work"], False)


@pytest.mark.parametrize("fail", [False, True])
def test_group_replication_consistency_is_set_and_put_back(recorded, fail):
    sent, _ = settings_of(recorded, GROUP_REPLICATION, causal=True, write=True, fail=fail)
    assert sent == ["SET SESSION group_replication_consistency = 'BEFORE'", "-- work",
                    "SET SESSION group_replication_consistency = 'EVENTUAL'"]


def test_group_replication_leaves_eventual_reads_and_stale_reads_alone(recorded):
    assert settings_of(recorded, GROUP_REPLICATION, causal=False) == (["-- work"], False)
    assert settings_of(recorded, GROUP_REPLICATION, causal=True, stale=True) == (
        ["-- work"], False)


def test_a_setting_that_cannot_be_put_back_discards_the_connection(tmp_path):
    engine = create_engine(f"sqlite:///{tmp_path / 'reset.db'}")
    with engine.connect() as conn:  # SQLite refuses any SET: the reset fails
        with pytest.raises(sa_exc.OperationalError), _restoring(conn, ["SET x = 1"]):
            pass
        assert conn.invalidated
    with engine.connect() as conn:  # the block's own error is the one that propagates
        with pytest.raises(ZeroDivisionError), _restoring(conn, ["SET x = 1"]):
            raise ZeroDivisionError
        assert conn.invalidated
    with engine.connect() as conn:
        with _restoring(conn, ["SELECT 1"]):
            pass
        assert not conn.invalidated
    engine.dispose()


class RecordingCursor:
    """A DB-API cursor that records what it is asked to run."""

    def __init__(self) -> None:
        self.executed: list[str] = []
        self.fetched = 0

    def execute(self, statement: str) -> None:
        self.executed.append(statement)

    def fetchall(self) -> list:
        self.fetched += 1
        return []


@pytest.mark.parametrize(("statement", "many", "sent", "barrier_first"), [
    ("SELECT n FROM t", False, "SET STATEMENT wsrep_sync_wait = 1 FOR SELECT n FROM t", False),
    ("  select n from t", False,
     "SET STATEMENT wsrep_sync_wait = 1 FOR   select n from t", False),
    ("INSERT INTO t VALUES (1)", False, "INSERT INTO t VALUES (1)", True),
    ("SELECT n FROM t", True, "SELECT n FROM t", True),
    ("SELECTED", False, "SELECTED", True),
])
def test_a_pending_barrier_rides_on_the_first_select_or_goes_before_it(
        recorded, statement, many, sent, barrier_first):
    conn, _ = recorded
    conn.execution_options(**{BARRIER_PENDING: True})
    cursor = RecordingCursor()
    assert carry_causal_barrier(conn, cursor, statement, {"p": 1}, None, many) == (
        sent, {"p": 1})
    assert cursor.executed == ([CAUSAL_BARRIER] if barrier_first else [])
    assert cursor.fetched == (1 if barrier_first else 0)
    # Once: the transaction's later statements go as they are.
    assert carry_causal_barrier(conn, cursor, "SELECT 2", None, None, False) == ("SELECT 2", None)
    assert conn.get_execution_options()[BARRIER_PENDING] is False


def test_no_barrier_is_added_unless_one_is_pending(recorded):
    conn, _ = recorded
    cursor = RecordingCursor()
    assert carry_causal_barrier(conn, cursor, "SELECT 1", (), None, False) == ("SELECT 1", ())
    assert cursor.executed == []


# ---------------------------------------------------------------- from the configuration
# A cluster router is built from settings without connecting (members are probed on
# first use), so the settings' effect is checked here against unreachable addresses.

CLUSTER = ("us=mysql+pymysql://app:pw@127.0.0.1:9/loyalty,"
           "ie=mariadb+pymysql://app:pw@127.0.0.1:9/loyalty,"
           "in=mysql+pymysql://app:pw@127.0.0.1:9/loyalty")


def router_from(**settings) -> ClusterRouter:
    return ClusterRouter.from_config({"CLUSTER": CLUSTER, **settings})


def test_a_cluster_router_is_built_as_configured():
    router = router_from(
        REGION="ie", REGION_PREFERENCE="ie,in,us", CLUSTER_KIND="Galera",
        HEALTH_CHECK_INTERVAL=0.5, DB_CONNECT_TIMEOUT=1.5, HEALTH_CHECK_TIMEOUT=0.75,
        DB_RETRY_BUDGET=5, DB_RETRY_TIME_BUDGET=12, ALLOW_STALE_READS=True,
        DB_QUORUM_GRACE=1.25)
    try:
        cluster = router.cluster
        assert [m.name for m in cluster.members] == ["ie", "in", "us"]
        assert cluster.kind == GALERA
        assert cluster.region == "ie"
        assert (cluster.interval, cluster.probe_timeout, cluster.stall_timeout) == (
            0.5, 1.5, 0.75)
        assert (router.retry_budget, router.time_budget) == (5, 12.0)
        assert router.allow_stale_reads is True
        assert router.quorum_grace == 1.25
        assert router.engines == [m.engine for m in sorted(cluster.members,
                                                             key=lambda m: m.index)]
        assert [m.name for m in cluster.members if event.contains(
            m.engine, "before_cursor_execute", carry_causal_barrier)] == ["ie", "in", "us"]
    finally:
        router.dispose()


def test_a_cluster_routers_defaults():
    router = router_from()
    try:
        cluster = router.cluster
        assert [m.name for m in cluster.members] == ["us", "ie", "in"]
        assert cluster.kind is None  # "auto": the probes find out
        assert (cluster.interval, cluster.probe_timeout, cluster.stall_timeout) == (
            1.0, 2.0, 1.0)
        assert (router.retry_budget, router.time_budget) == (8, 10.0)
        assert router.allow_stale_reads is False
        assert router.quorum_grace == 3.0
    finally:
        router.dispose()


def test_a_probe_never_waits_longer_than_two_seconds():
    router = router_from(DB_CONNECT_TIMEOUT=10)
    try:
        assert router.cluster.probe_timeout == 2.0
    finally:
        router.dispose()


@pytest.mark.parametrize(("budget", "statement", "connect", "warned"), [
    (10, 3, 2, False),  # 2 x 3 + 2 = 8 s fit: a frozen member leaves time to fail over
    (8, 3, 2, False),
    (7.9, 3, 2, True),
    (10, 5, 2, True),  # 12 s needed
    (7.5, 3, 1, False),  # 7 s needed
    (8.5, None, None, False),  # the defaults: 3 s statements, 2 s connects
    (7.9, None, None, True),
])
def test_a_time_budget_too_short_to_fail_over_is_warned_about(caplog, budget, statement,
                                                             connect, warned):
    settings = {"DB_RETRY_TIME_BUDGET": budget, "DB_STATEMENT_TIMEOUT": statement,
                "DB_CONNECT_TIMEOUT": connect}
    with caplog.at_level(logging.WARNING, logger="webapp.database.routing"):
        router_from(**{k: v for k, v in settings.items() if v is not None}).dispose()
    expected = (f"DB_RETRY_TIME_BUDGET {float(budget):.1f}s leaves no room to fail over after "
                f"a DB_STATEMENT_TIMEOUT of {float(statement or 3):.1f}s")
    assert [r.getMessage() for r in caplog.records] == ([expected] if warned else [])


def test_only_mysql_family_engines_carry_the_barrier_listener_once(members):
    make_router(members)
    assert not any(event.contains(m.engine, "before_cursor_execute", carry_causal_barrier)
                   for m in members.members)
    router = router_from()
    try:
        again = ClusterRouter(router.cluster)  # a second router over the same engines
        assert again.cluster is router.cluster
        engine = router.cluster.members[0].engine
        # (OpenTelemetry's SQLAlchemy instrumentation may have added its own listener.)
        assert list(engine.dispatch.before_cursor_execute).count(carry_causal_barrier) == 1
    finally:
        router.dispose()


# ---------------------------------------------------------------- what each attempt runs

def test_each_attempt_runs_with_its_transactions_consistency_and_lock(members, context):
    members.kind = GALERA
    sent = members.record()
    router = make_router(members)
    router.run(lambda conn: conn.execute(text("SELECT 1 FROM t")).all(), write=False,
               causal=False, name="t")
    assert sent["us"] == ["BEGIN DEFERRED", "SELECT 1 FROM t"]
    sent["us"].clear()
    router.run(insert_then({}, []), write=True, causal=False, name="t")
    # A write is causal even when not asked, and takes SQLite's write lock up front.
    assert sent["us"] == ["BEGIN IMMEDIATE", CAUSAL_BARRIER, "INSERT INTO t VALUES (1)"]


def test_a_stale_galera_read_may_read_outside_the_quorum(members, context):
    members.kind = GALERA
    sent = members.record()
    members["us"].state = MemberState.NON_PRIMARY
    for name in ("ie", "in"):
        members[name].state = DOWN
    make_router(members, allow_stale_reads=True).run(
        lambda conn: conn.execute(text("SELECT 1 FROM t")).all(), write=False, causal=False,
        name="t")
    assert sent["us"] == ["BEGIN DEFERRED", "SET SESSION wsrep_dirty_reads = ON",
                          "SELECT 1 FROM t"]


def test_connections_are_pooled_unless_their_member_failed(members, context):
    discarded: dict[str, list[object]] = {m.name: [] for m in members.members}
    for member in members.members:
        event.listen(member.engine, "invalidate",
                     lambda *args, name=member.name: discarded[name].append(args))
    router = make_router(members)
    router.run(insert_then({}, []), write=True, causal=True, name="t")
    router.run(insert_then({"us": RetryTransaction()}, []), write=True, causal=True, name="t")
    assert discarded == {"us": [], "ie": [], "in": []}  # a conflict is about the data
    router.run(insert_then({"us": lost_connection()}, []), write=True, causal=True, name="t")
    assert [len(discarded[n]) for n in ("us", "ie", "in")] == [1, 0, 0]
    members.lose_commit_answer("ie")
    router.run(lambda conn: 1, write=False, causal=True, name="t")
    assert [len(discarded[n]) for n in ("us", "ie", "in")] == [1, 1, 0]


def test_a_reset_on_a_discarded_connection_is_not_attempted(tmp_path):
    engine = create_engine(f"sqlite:///{tmp_path / 'gone.db'}")
    with engine.connect() as conn:
        conn.invalidate()
        with _restoring(conn, ["SET x = 1"]):  # would fail if it were sent
            pass
    engine.dispose()


def test_a_retry_after_every_member_failed_pauses_briefly(members, context, monkeypatch):
    pauses = pause_recorder(monkeypatch)
    members.mark_failed_down = False
    for name in ("ie", "in"):
        members[name].state = DOWN
    router = make_router(members)
    router.run(insert_then({"us": lost_connection()}, []), write=True, causal=True, name="t")
    assert len(pauses) == 1
    assert 0 <= pauses[0] <= 0.05
    assert "stale_read" not in g


def pause_recorder(monkeypatch) -> list[float]:
    """Records the router's pauses instead of sleeping them (its clock is left alone)."""
    pauses: list[float] = []

    class Clock:
        monotonic = staticmethod(time.monotonic)
        sleep = staticmethod(pauses.append)

    monkeypatch.setattr(routing, "time", Clock)
    return pauses


def test_conflict_pauses_grow_with_each_conflict(members, context, monkeypatch):
    pauses = pause_recorder(monkeypatch)
    asked: list[int] = []

    class Policy(RetryPolicy):
        def conflict_pause(self, conflicts: int, remaining: float) -> float:
            asked.append(conflicts)
            return super().conflict_pause(conflicts, remaining)

    failures = [RetryTransaction() for _ in range(3)]

    def conflicts_three_times(conn):
        if failures:
            raise failures.pop()
        return "done"

    router = make_router(members, policy=Policy(retry_budget=4, time_budget=5.0))
    assert router.run(conflicts_three_times, write=True, causal=True, name="t") == "done"
    assert asked == [1, 2, 3]
    assert len(pauses) == 3


# ---------------------------------------------------------------- what operators see

def test_failovers_retries_and_refusals_are_counted_with_their_labels(members, context):
    reader = metric_reader()

    def totals() -> dict[str, int]:
        return {
            "failover": metric_total(reader, "loyalty.db.failovers", member="us",
                                     region="us", to="ie"),
            "unavailable": metric_total(reader, "loyalty.db.retries",
                                        reason="member_unavailable", member="us", region="us"),
            "reconnect": metric_total(reader, "loyalty.db.retries", reason="reconnect",
                                      member="ie", region="ie"),
            "conflict_retry": metric_total(reader, "loyalty.db.retries", reason="conflict",
                                           member="ie", region="ie"),
            "conflict": metric_total(reader, "loyalty.db.conflicts", member="ie", region="ie"),
            "stale": metric_total(reader, "loyalty.db.stale_reads", member="in", region="in"),
            "refused_write": metric_total(reader, "loyalty.db.unavailable", write=True,
                                          busy=False),
            "busy": metric_total(reader, "loyalty.db.unavailable", write=True, busy=True),
            "unknown": metric_total(reader, "loyalty.db.outcome_unknown", idempotent=False),
        }

    before = totals()
    router = make_router(members, allow_stale_reads=True,
                         policy=RetryPolicy(retry_budget=1, time_budget=5.0))
    router.run(insert_then({"us": lost_connection()}, []), write=True, causal=True, name="t")
    dropped = lost_connection()
    dropped.connection_invalidated = True
    router.run(insert_then({"ie": dropped}, []), write=True, causal=True, name="t")
    router.run(insert_then({"ie": RetryTransaction()}, []), write=True, causal=True, name="t")
    with pytest.raises(ServiceUnavailable, match="busy"):
        router.run(_always_conflicts, write=True, causal=True, name="t")
    members.lose_commit_answer("ie")
    with pytest.raises(OutcomeUnknown):
        router.run(insert_then({}, []), write=True, causal=True, name="t")
    members["in"].state = MemberState.NON_PRIMARY  # us and ie failed above
    router.run(lambda conn: 1, write=False, causal=False, name="t")
    with pytest.raises(ServiceUnavailable, match="accepts writes"):
        router.run(lambda conn: 1, write=True, causal=True, name="t")
    after = totals()
    assert {k: after[k] - before[k] for k in before} == {
        "failover": 1, "unavailable": 1, "reconnect": 1, "conflict_retry": 2, "conflict": 3,
        "stale": 1, "refused_write": 1, "busy": 1, "unknown": 1}


def _always_conflicts(conn):
    raise RetryTransaction()


def test_the_log_says_what_the_router_did_and_why(members, context, caplog):
    router = make_router(members, policy=RetryPolicy(retry_budget=2, time_budget=5.0))
    caplog.set_level(logging.INFO, logger="webapp.database.routing")
    router.run(insert_then({"us": lost_connection()}, []), write=True, causal=True,
               name="earn")
    started = time.monotonic()
    with pytest.raises(ServiceUnavailable):
        router.run(_always_conflicts, write=True, causal=True, name="redeem")
    took = time.monotonic() - started
    members.lose_commit_answer("ie")
    with pytest.raises(OutcomeUnknown):
        router.run(insert_then({}, []), write=True, causal=True, name="adjust")
    messages = [record.getMessage() for record in caplog.records]
    assert messages[0] == "earn: failing over from us to ie"
    assert messages[1].startswith("redeem: giving up after 3 attempts in ")
    seconds = float(messages[1].split(" in ")[1].split("s ")[0])
    # The transaction's own elapsed time, not a timing bound: at most what the call took.
    assert 0 <= seconds <= round(took, 1) + 0.1
    assert messages[1].endswith("s (conflict)")
    assert messages[2] == ("redeem refused after 3 attempts: The loyalty service is very "
                           "busy right now. Please try again. (last error: )")
    assert messages[3].startswith("adjust: outcome of COMMIT on ie unknown (")
    assert "lost connection to the database during COMMIT" in messages[3]
    assert messages[3].endswith("); not safe to repeat")
    assert messages[4].startswith("adjust: outcome unknown after 1 attempts (last error: ")
    assert "lost connection to the database during COMMIT" in messages[4]


def test_an_idempotent_retry_after_a_lost_answer_is_logged_as_such(members, context, caplog):
    members.lose_commit_answer("us")
    router = make_router(members)
    with caplog.at_level(logging.WARNING, logger="webapp.database.routing"):
        router.run(insert_then({}, []), write=True, causal=True, name="issue",
                   idempotent=True)
    [message] = [record.getMessage() for record in caplog.records]
    assert message.startswith("issue: outcome of COMMIT on us unknown (")
    assert "lost connection to the database during COMMIT" in message
    assert message.endswith("; running it again, it finds its own earlier result")


def test_refusals_carry_their_cause_and_say_what_to_do(members, context):
    router = make_router(members, policy=RetryPolicy(retry_budget=8, time_budget=5.0))
    failures = {name: lost_connection() for name in ("us", "ie", "in")}
    last = failures["in"]
    with pytest.raises(ServiceUnavailable) as refused:
        router.run(insert_then(failures, []), write=True, causal=True, name="t")
    assert refused.value.__cause__ is last
    assert members.errors == [m for m in members.errors if isinstance(m, sa_exc.OperationalError)]
    assert len(members.errors) == 3

    for member in members.members:
        member.state = UP
    busy_budget = make_router(members, policy=RetryPolicy(retry_budget=0, time_budget=5.0))
    conflict = RetryTransaction()

    def conflicts(conn):
        raise conflict

    with pytest.raises(ServiceUnavailable) as busy:
        busy_budget.run(conflicts, write=True, causal=True, name="t")
    assert busy.value.__cause__ is conflict

    members.lose_commit_answer("us")
    with pytest.raises(OutcomeUnknown) as unknown:
        router.run(insert_then({}, []), write=True, causal=True, name="t")
    assert isinstance(unknown.value.__cause__, sa_exc.OperationalError)
    assert str(unknown.value) == (
        "The connection to the database was lost while saving, so we cannot tell whether it "
        "was saved. Send the same request again with the same Idempotency-Key: it will not "
        "be applied twice.")


def test_the_member_failure_reported_is_the_error_that_happened(members, context):
    error = lost_connection()
    make_router(members).run(insert_then({"us": error}, []), write=True, causal=True,
                             name="t")
    assert members.errors == [error]


def test_stats_count_every_transaction(members, context):
    router = make_router(members)
    assert router.stats.snapshot()["max_attempts"] == 0
    for _ in range(2):
        router.run(lambda conn: 1, write=False, causal=True, name="t")
    snapshot = router.stats.snapshot()
    assert snapshot["transactions"] == 2
    assert snapshot["by_member"] == {"us": 2}
    assert ClusterRouter(members).quorum_grace == 3.0
