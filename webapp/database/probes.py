"""Health probes of a cluster member: the SQL they run and what the answers mean.

Pure functions over rows and cursors, no state: :mod:`webapp.database.cluster` runs
them on an interval and turns their verdicts into member state transitions.

Member states (``MemberState``):

``up``
    In the primary component / group majority and accepts writes.
``suspect``
    A request just failed on it, its probe has gone unanswered for longer than the
    cluster's ``stall_timeout`` (a frozen or overloaded member: a TCP connection that
    stays open but answers nothing), or it was never probed; the checker is confirming.
``down``
    Cannot be reached. Probed again with exponential backoff.
``joining``
    Reachable, in the primary component, but not serving: Galera Joiner/Joined/
    Donor-Desynced (``wsrep_local_state`` != 4 or ``wsrep_ready`` = OFF), GR RECOVERING.
``non_primary``
    Reachable but outside the quorum: Galera ``wsrep_cluster_status`` != Primary
    (answers 1047 to every query), GR member in ERROR/OFFLINE or in a minority partition.
    Only ever read from with ``ALLOW_STALE_READS``.
``read_only``
    In the quorum but refusing writes (``read_only``/``super_read_only``, a GR secondary).
    Serves reads, never writes.

Two cluster kinds are understood: MariaDB Galera (``SHOW GLOBAL STATUS LIKE 'wsrep_%'``)
and MySQL Group Replication (``performance_schema.replication_group_members`` and
``@@super_read_only``). ``CLUSTER_KIND=auto`` detects the kind on the first member that
answers.
"""

from __future__ import annotations

import enum
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

import pymysql

GALERA = "galera"
GROUP_REPLICATION = "group_replication"
STANDALONE = "standalone"
KINDS = (GALERA, GROUP_REPLICATION)


class MemberState(enum.StrEnum):
    UP = "up"
    SUSPECT = "suspect"
    DOWN = "down"
    JOINING = "joining"
    NON_PRIMARY = "non_primary"
    READ_ONLY = "read_only"


@dataclass(frozen=True)
class Health:
    """What one probe learned about a member."""

    state: MemberState
    role: str | None = None
    queue: int | None = None
    details: Mapping[str, Any] = field(default_factory=dict)
    error: str | None = None


def galera_health(status: Mapping[str, Any], variables: Mapping[str, Any]) -> Health:
    """Reads ``SHOW GLOBAL STATUS``/``VARIABLES`` of a Galera node.

    Only a node that is in the Primary component *and* Synced (local state 4) with
    ``wsrep_ready=ON`` takes traffic: a Joiner answers 1047 until synced, a Donor/
    Desynced node lags (and blocks writes during an rsync SST).
    """
    cluster_status = str(status.get("wsrep_cluster_status") or "")
    ready = str(status.get("wsrep_ready") or "").upper() == "ON"
    local_state = _int(status.get("wsrep_local_state"))
    comment = str(status.get("wsrep_local_state_comment") or "")
    queue = _int(status.get("wsrep_local_recv_queue"))
    details = {
        "cluster_status": cluster_status,
        "cluster_size": _int(status.get("wsrep_cluster_size")),
        "local_state": comment or local_state,
        "last_committed": _int(status.get("wsrep_last_committed")),
    }
    if str(variables.get("wsrep_on") or "ON").upper() != "ON":
        return Health(
            MemberState.NON_PRIMARY,
            "wsrep-off",
            queue,
            details,
            error="wsrep_on=OFF: this node does not replicate",
        )
    if cluster_status != "Primary":
        return Health(
            MemberState.NON_PRIMARY,
            "non-primary",
            queue,
            details,
            error=f"wsrep_cluster_status={cluster_status or '?'}",
        )
    if not ready or local_state != 4:
        role = (comment or f"state {local_state}").lower()
        return Health(
            MemberState.JOINING,
            role,
            queue,
            details,
            error=f"wsrep_local_state={comment or local_state}, wsrep_ready="
            f"{'ON' if ready else 'OFF'}",
        )
    if _on(variables.get("read_only")):
        return Health(MemberState.READ_ONLY, "read-only", queue, details)
    return Health(MemberState.UP, "primary", queue, details)


def group_replication_health(row: Mapping[str, Any] | None) -> Health:
    """Reads this member's row of ``replication_group_members`` (+ stats, read-only flags).

    A member cut off from the majority still calls itself ONLINE and sees the others as
    UNREACHABLE; writes there would block, so fewer than a majority of ONLINE members
    in its own view counts as ``non_primary``.
    """
    if row is None:
        return Health(MemberState.NON_PRIMARY, None, error="not a Group Replication member")
    member_state = str(row.get("member_state") or "").upper()
    role = str(row.get("member_role") or "").lower() or None
    queue = _int(row.get("queue"))
    group_size = _int(row.get("group_size")) or 0
    online = _int(row.get("online")) or 0
    details = {
        "member_state": member_state,
        "group_size": group_size,
        "online": online,
        "applier_queue": _int(row.get("applier_queue")),
    }
    if member_state == "RECOVERING":
        return Health(MemberState.JOINING, role, queue, details, error="RECOVERING")
    if member_state != "ONLINE":
        return Health(
            MemberState.NON_PRIMARY,
            role,
            queue,
            details,
            error=f"MEMBER_STATE={member_state or '?'}",
        )
    if online * 2 <= group_size:
        return Health(
            MemberState.NON_PRIMARY,
            role,
            queue,
            details,
            error=f"only {online} of {group_size} members reachable: no majority",
        )
    if _on(row.get("super_read_only")) or _on(row.get("read_only")):
        return Health(MemberState.READ_ONLY, "read-only", queue, details)
    return Health(MemberState.UP, role or "primary", queue, details)


def standalone_health(variables: Mapping[str, Any]) -> Health:
    if _on(variables.get("read_only")):
        return Health(MemberState.READ_ONLY, "read-only")
    return Health(MemberState.UP, "primary")


_GALERA_STATUS = (
    "wsrep_cluster_status",
    "wsrep_ready",
    "wsrep_local_state",
    "wsrep_local_state_comment",
    "wsrep_local_recv_queue",
    "wsrep_cluster_size",
    "wsrep_last_committed",
)
_GR_SQL = """
SELECT m.MEMBER_STATE AS member_state, m.MEMBER_ROLE AS member_role,
       (SELECT COUNT(*) FROM performance_schema.replication_group_members) AS group_size,
       (SELECT COUNT(*) FROM performance_schema.replication_group_members
         WHERE MEMBER_STATE = 'ONLINE') AS online,
       s.COUNT_TRANSACTIONS_IN_QUEUE AS queue,
       s.COUNT_TRANSACTIONS_REMOTE_IN_APPLIER_QUEUE AS applier_queue,
       @@global.super_read_only AS super_read_only, @@global.read_only AS read_only
FROM performance_schema.replication_group_members m
LEFT JOIN performance_schema.replication_group_member_stats s ON s.MEMBER_ID = m.MEMBER_ID
WHERE m.MEMBER_ID = @@server_uuid
"""


def _show(cursor: Any, sql: str, names: Iterable[str]) -> dict[str, Any]:
    names = list(names)
    cursor.execute(f"{sql} WHERE Variable_name IN ({','.join(['%s'] * len(names))})", names)
    return {str(k).lower(): v for k, v in cursor.fetchall()}


def probe_sql(kind: str, cursor: Any) -> Health:
    """Runs the health queries for ``kind`` on an open PyMySQL cursor."""
    if kind == GALERA:
        status = _show(cursor, "SHOW GLOBAL STATUS", _GALERA_STATUS)
        variables = _show(cursor, "SHOW GLOBAL VARIABLES", ("read_only", "wsrep_on"))
        return galera_health(status, variables)
    if kind == GROUP_REPLICATION:
        cursor.execute(_GR_SQL)
        row = cursor.fetchone()
        columns = [d[0].lower() for d in cursor.description or ()]
        return group_replication_health(dict(zip(columns, row, strict=True)) if row else None)
    return standalone_health(_show(cursor, "SHOW GLOBAL VARIABLES", ("read_only",)))


def detect_kind(cursor: Any) -> str:
    """``galera`` when wsrep is on, ``group_replication`` when GR runs, else standalone."""
    variables = _show(cursor, "SHOW GLOBAL VARIABLES", ("wsrep_on",))
    if _on(variables.get("wsrep_on")):
        return GALERA
    try:
        cursor.execute(
            "SELECT COUNT(*) FROM performance_schema.replication_group_members"
            " WHERE MEMBER_ID = @@server_uuid AND MEMBER_STATE <> 'OFFLINE'"
        )
        (count,) = cursor.fetchone()
    except pymysql.MySQLError:
        return STANDALONE
    return GROUP_REPLICATION if count else STANDALONE


def _int(value: Any) -> int | None:
    try:
        return int(value)
    except (TypeError, ValueError):
        return None


def _on(value: Any) -> bool:
    return str(value).upper() in ("1", "ON", "YES", "TRUE")
