"""What a database error means for a retry: one place that knows the error codes.

MySQL Group Replication reports a certification conflict as 3101 (at COMMIT); Galera
as 1213 deadlock (also at COMMIT). A Galera node outside the Primary component answers
1047 "WSREP has not yet prepared node for application use"; a GR member that lost the
majority turns super_read_only (1290 / 1836). Lost connections are 2006/2013/2003.
"""

from __future__ import annotations

import enum

from sqlalchemy import exc as sa_exc

CONFLICT_CODES = {1213, 1205, 3101, 1180, 1181}
NOT_PRIMARY_CODES = {1047, 1290, 1836, 3100, 1792, 1837}
CONNECTION_CODES = {2002, 2003, 2006, 2013, 2014, 2055, 0}


class Failure(enum.Enum):
    """Why a transaction failed, and therefore what a retry should do."""

    CONFLICT = "conflict"  # retry on the same member after a jittered pause
    MEMBER_UNAVAILABLE = "member_unavailable"  # mark the member down, retry on the next
    PERMANENT = "permanent"  # a bug or a constraint: do not retry


def mysql_code(error: BaseException) -> int | None:
    orig = getattr(error, "orig", error)
    args = getattr(orig, "args", ())
    if args and isinstance(args[0], int):
        return args[0]
    return None


class RetryTransaction(Exception):
    """Raised by work that lost a race it can resolve by running again from the start.

    Example: two tills insert the same idempotency key on one node; the loser gets a
    duplicate key, and its retry reads the winner's row and returns that result.
    """


def classify(error: BaseException) -> Failure:
    if isinstance(error, RetryTransaction):
        return Failure.CONFLICT
    if isinstance(error, sa_exc.DBAPIError) and error.connection_invalidated:
        return Failure.MEMBER_UNAVAILABLE
    code = mysql_code(error)
    if code in CONFLICT_CODES:
        return Failure.CONFLICT
    if code in NOT_PRIMARY_CODES or code in CONNECTION_CODES:
        return Failure.MEMBER_UNAVAILABLE
    if isinstance(error, sa_exc.OperationalError):
        text = str(getattr(error, "orig", error)).lower()
        if "database is locked" in text:  # SQLite writer contention
            return Failure.CONFLICT
        if code is None and ("lost connection" in text or "can't connect" in text):
            return Failure.MEMBER_UNAVAILABLE
    if isinstance(error, (ConnectionError, TimeoutError, OSError)):
        return Failure.MEMBER_UNAVAILABLE
    return Failure.PERMANENT
