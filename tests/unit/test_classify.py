"""What each database error means for a retry, and for the member that raised it.

No database: every MySQL/MariaDB/Group Replication error code that docs/database.md
names is built the way PyMySQL raises it and wrapped the way SQLAlchemy hands it to the
router, then fed to ``classify`` (what the router does with the transaction) and to
``Cluster.report_failure`` (what the member's state becomes). GR cannot run on this
machine, so this is where its codes (3101, 3100, 1836, 1792) are exercised.
"""

from __future__ import annotations

import sqlite3

import pymysql
import pytest
from sqlalchemy import create_engine
from sqlalchemy import exc as sa_exc

from webapp.database import Failure, RetryTransaction, classify
from webapp.database.cluster import Cluster, Member, MemberState
from webapp.errors import InsufficientCoins


def mysql_error(code: int, message: str = "from the server") -> sa_exc.DBAPIError:
    """The error as the router sees it: PyMySQL's exception class for ``code`` (the same
    table PyMySQL uses when a server answers with an error packet), wrapped by
    SQLAlchemy."""
    error_class = pymysql.err.error_map.get(code, pymysql.err.InternalError)
    if code >= 2000:  # client-side codes: PyMySQL raises these as OperationalError
        error_class = pymysql.err.OperationalError
    orig = error_class(code, message)
    return sa_exc.DBAPIError.instance(
        "SELECT 1", {}, orig, pymysql.err.Error, connection_invalidated=False
    )


CONFLICTS = {
    1213: "Galera certification failure / InnoDB deadlock (also at COMMIT)",
    3101: "GR: plugin instructed the server to rollback (certification conflict)",
    1205: "lock wait timeout",
    1180: "error during COMMIT",
    1181: "error during ROLLBACK",
}
# What each error proves about the member that raised it: its new state, then the codes.
MEMBER_FAILURES = {
    MemberState.NON_PRIMARY: {
        1047: "Galera: WSREP has not yet prepared node for application use",
        3100: "GR: error on observer while running replication hook",
        1837: "GR: member not ONLINE (gtid_next)",
    },
    MemberState.READ_ONLY: {
        1290: "--read-only / --super-read-only",
        1836: "GR: running in read-only mode (super_read_only)",
        1792: "cannot execute statement in a READ ONLY transaction",
    },
    MemberState.SUSPECT: {
        2002: "can't connect through socket",
        2003: "can't connect to server",
        2006: "server has gone away",
        2013: "lost connection during query (also during COMMIT)",
        2014: "commands out of sync",
        2055: "lost connection at handshake",
    },
}
MEMBER_STATE = {code: state for state, codes in MEMBER_FAILURES.items() for code in codes}
PERMANENT = {
    1062: "duplicate key the work did not turn into RetryTransaction",
    1146: "no such table",
    1064: "SQL syntax",
    1452: "foreign key",
    3819: "check constraint violated (negative balance)",
}


@pytest.mark.parametrize("code", sorted(CONFLICTS))
def test_conflicts_are_retried_on_the_same_member(code):
    assert classify(mysql_error(code)) is Failure.CONFLICT


@pytest.mark.parametrize("code", sorted(MEMBER_STATE))
def test_member_failures_move_the_transaction_to_the_next_member(code):
    assert classify(mysql_error(code)) is Failure.MEMBER_UNAVAILABLE
    # Also raised bare (the router catches PyMySQL's errors from its own probes too).
    assert classify(pymysql.err.OperationalError(code, "bare")) is Failure.MEMBER_UNAVAILABLE


@pytest.mark.parametrize("code", sorted(PERMANENT))
def test_everything_else_is_permanent(code):
    assert classify(mysql_error(code)) is Failure.PERMANENT


def test_errors_without_a_code():
    assert classify(RetryTransaction()) is Failure.CONFLICT
    locked = sa_exc.OperationalError("INSERT", {}, sqlite3.OperationalError("database is locked"))
    assert classify(locked) is Failure.CONFLICT
    lost = sa_exc.OperationalError("SELECT 1", {}, Exception("Lost connection to server"))
    assert classify(lost) is Failure.MEMBER_UNAVAILABLE
    invalidated = sa_exc.DBAPIError.instance(
        "SELECT 1", {}, pymysql.err.InterfaceError(0, ""), pymysql.err.Error,
        connection_invalidated=True,
    )
    assert classify(invalidated) is Failure.MEMBER_UNAVAILABLE
    assert classify(TimeoutError("timed out")) is Failure.MEMBER_UNAVAILABLE
    assert classify(ConnectionResetError()) is Failure.MEMBER_UNAVAILABLE
    assert classify(InsufficientCoins()) is Failure.PERMANENT
    assert classify(ValueError("a bug")) is Failure.PERMANENT


@pytest.fixture
def cluster():
    """Two members that are never connected to: report_failure only updates state."""
    members = [
        Member(name, name, url, create_engine(url), index)
        for index, (name, url) in enumerate(
            [
                ("us", "mysql+pymysql://app:pw@127.0.0.1:1/loyalty"),
                ("ie", "mysql+pymysql://app:pw@127.0.0.1:2/loyalty"),
            ]
        )
    ]
    cluster = Cluster(members, kind="group_replication", region="us")
    with cluster._lock:
        for member in members:
            member.state = MemberState.UP
    yield cluster
    cluster.close()


@pytest.mark.parametrize("code", sorted(MEMBER_STATE))
def test_report_failure_marks_the_member_by_what_the_error_proves(cluster, code):
    """A "not primary" or "read only" answer is itself proof of the state; a lost or
    refused connection only makes the member suspect until a probe confirms."""
    us = cluster.member("us")
    new = cluster.report_failure(us, mysql_error(code))
    assert new is MEMBER_STATE[code]
    assert us.state is new
    assert str(code) in us.error
    assert cluster.member("ie").state is MemberState.UP
    assert [m.name for m in cluster.candidates(write=True)] == ["ie"]
    readers = [m.name for m in cluster.candidates(write=False)]
    assert readers == (["us", "ie"] if new is MemberState.READ_ONLY else ["ie"])
