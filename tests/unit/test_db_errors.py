"""What a database error means for a retry, for the errors the drivers really raise.

The lab tests see these errors come out of a real Galera cluster; here each rule of the
classifier is pinned with the driver's own exception classes, wrapped the way
SQLAlchemy wraps them, so a changed rule fails in a second.
"""

from __future__ import annotations

import sqlite3

import pymysql
import pytest
from sqlalchemy import exc as sa_exc

from webapp.database.errors import Failure, RetryTransaction, classify, mysql_code


def wrapped(orig: BaseException, kind=sa_exc.OperationalError, *,
            invalidated: bool = False) -> sa_exc.DBAPIError:
    return kind("COMMIT", {}, orig, connection_invalidated=invalidated)


@pytest.mark.parametrize(("code", "message", "failure"), [
    (1213, "Deadlock found when trying to get lock", Failure.CONFLICT),  # Galera certification
    (3101, "Plugin instructed the server to rollback", Failure.CONFLICT),  # GR certification
    (1205, "Lock wait timeout exceeded", Failure.CONFLICT),
    (1047, "WSREP has not yet prepared node for application use", Failure.MEMBER_UNAVAILABLE),
    (1290, "The MySQL server is running with the --super-read-only option",
     Failure.MEMBER_UNAVAILABLE),
    (1836, "Running in read-only mode", Failure.MEMBER_UNAVAILABLE),
    (2013, "Lost connection to MySQL server during query", Failure.MEMBER_UNAVAILABLE),
    (2006, "MySQL server has gone away", Failure.MEMBER_UNAVAILABLE),
    (2003, "Can't connect to MySQL server", Failure.MEMBER_UNAVAILABLE),
    (1146, "Table 'loyalty.nope' doesn't exist", Failure.PERMANENT),
])
def test_mysql_errors_by_code(code, message, failure):
    assert classify(wrapped(pymysql.err.OperationalError(code, message))) is failure


def test_a_duplicate_key_is_permanent():
    error = wrapped(pymysql.err.IntegrityError(1062, "Duplicate entry 'k' for key 'uq'"),
                    sa_exc.IntegrityError)
    assert classify(error) is Failure.PERMANENT


def test_work_that_lost_a_race_runs_again_on_the_same_member():
    assert classify(RetryTransaction()) is Failure.CONFLICT


def test_an_invalidated_connection_means_the_member_whatever_the_code():
    error = wrapped(pymysql.err.ProgrammingError(1064, "You have an error in your SQL"),
                    sa_exc.ProgrammingError, invalidated=True)
    assert classify(error) is Failure.MEMBER_UNAVAILABLE
    assert classify(wrapped(pymysql.err.ProgrammingError(1064, "You have an error in your SQL"),
                            sa_exc.ProgrammingError)) is Failure.PERMANENT


@pytest.mark.parametrize(("message", "failure"), [
    ("database is locked", Failure.CONFLICT),  # SQLite: another writer holds the lock
    ("Database is LOCKED", Failure.CONFLICT),
    ("no such table: ledger", Failure.PERMANENT),
])
def test_sqlite_errors_by_message(message, failure):
    assert classify(wrapped(sqlite3.OperationalError(message))) is failure


@pytest.mark.parametrize("message", [
    "Lost connection to server at 'handshake: reading initial communication packet'",
    "Can't connect to MySQL server on '127.0.0.1'",
])
def test_connection_trouble_without_a_code_is_the_member(message):
    assert classify(wrapped(sqlite3.OperationalError(message))) is Failure.MEMBER_UNAVAILABLE


@pytest.mark.parametrize("error", [
    ConnectionRefusedError(111, "Connection refused"),
    TimeoutError("timed out"),
    OSError(113, "No route to host"),
])
def test_socket_errors_are_the_member(error):
    assert classify(error) is Failure.MEMBER_UNAVAILABLE


def test_anything_else_is_permanent():
    assert classify(ValueError("not a database error")) is Failure.PERMANENT


def test_mysql_code_reads_the_driver_error_wrapped_or_not():
    orig = pymysql.err.OperationalError(1213, "Deadlock found")
    assert mysql_code(orig) == 1213
    assert mysql_code(wrapped(orig)) == 1213
    assert mysql_code(wrapped(sqlite3.OperationalError("database is locked"))) is None
    assert mysql_code(RetryTransaction()) is None
