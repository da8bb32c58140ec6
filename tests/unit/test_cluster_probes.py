"""How the cluster layer reads its members' health, with no database.

Pins how probe results map to member states for both Galera and MySQL Group Replication
(GR has no server on this machine, so its code path is exercised here through the rows
its SQL would return), how the cluster kind is detected, and how members and the region
preference are parsed. The router against the real lab: ``tests/cluster/test_cluster.py``.
"""

from __future__ import annotations

import pymysql
import pytest

from webapp.database.members import parse_members, preference_order
from webapp.database.probes import (
    GALERA,
    GROUP_REPLICATION,
    STANDALONE,
    MemberState,
    detect_kind,
    galera_health,
    group_replication_health,
    probe_sql,
)

SYNCED = {
    "wsrep_cluster_status": "Primary",
    "wsrep_ready": "ON",
    "wsrep_local_state": "4",
    "wsrep_local_state_comment": "Synced",
    "wsrep_local_recv_queue": "3",
}


@pytest.mark.parametrize(
    ("status", "variables", "state", "role"),
    [
        ({}, {"read_only": "OFF"}, MemberState.NON_PRIMARY, "non-primary"),
        (SYNCED, {"read_only": "OFF", "wsrep_on": "ON"}, MemberState.UP, "primary"),
        (SYNCED, {"read_only": "ON"}, MemberState.READ_ONLY, "read-only"),
        (SYNCED, {"wsrep_on": "OFF"}, MemberState.NON_PRIMARY, "wsrep-off"),
        (
            {
                **SYNCED,
                "wsrep_cluster_status": "non-Primary",
                "wsrep_ready": "OFF",
                "wsrep_local_state": "0",
            },
            {},
            MemberState.NON_PRIMARY,
            "non-primary",
        ),
        (
            {**SYNCED, "wsrep_cluster_status": "Disconnected"},
            {},
            MemberState.NON_PRIMARY,
            "non-primary",
        ),
        (
            {
                **SYNCED,
                "wsrep_local_state": "1",
                "wsrep_local_state_comment": "Joining",
                "wsrep_ready": "OFF",
            },
            {},
            MemberState.JOINING,
            "joining",
        ),
        (
            {**SYNCED, "wsrep_local_state": "3", "wsrep_local_state_comment": "Joined"},
            {},
            MemberState.JOINING,
            "joined",
        ),
        (
            {**SYNCED, "wsrep_local_state": "2", "wsrep_local_state_comment": "Donor/Desynced"},
            {},
            MemberState.JOINING,
            "donor/desynced",
        ),
        ({**SYNCED, "wsrep_ready": "OFF"}, {}, MemberState.JOINING, "synced"),
    ],
)
def test_galera_health(status, variables, state, role):
    health = galera_health(status, variables)
    assert (health.state, health.role) == (state, role)
    if status:
        assert health.queue == 3
    assert (health.error is None) == (state in (MemberState.UP, MemberState.READ_ONLY))


GR_ONLINE = {
    "member_state": "ONLINE",
    "member_role": "PRIMARY",
    "group_size": 3,
    "online": 3,
    "queue": 2,
    "applier_queue": 0,
    "super_read_only": 0,
    "read_only": 0,
}


@pytest.mark.parametrize(
    ("row", "state", "role"),
    [
        (GR_ONLINE, MemberState.UP, "primary"),
        (
            {**GR_ONLINE, "member_role": "SECONDARY", "super_read_only": 1},
            MemberState.READ_ONLY,
            "read-only",
        ),
        ({**GR_ONLINE, "member_state": "RECOVERING"}, MemberState.JOINING, "primary"),
        (
            {**GR_ONLINE, "member_state": "ERROR", "super_read_only": 1},
            MemberState.NON_PRIMARY,
            "primary",
        ),
        ({**GR_ONLINE, "member_state": "OFFLINE"}, MemberState.NON_PRIMARY, "primary"),
        # Cut off from the majority: still ONLINE in its own view, the others UNREACHABLE.
        ({**GR_ONLINE, "online": 1}, MemberState.NON_PRIMARY, "primary"),
        ({**GR_ONLINE, "group_size": 2, "online": 1}, MemberState.NON_PRIMARY, "primary"),
        ({**GR_ONLINE, "group_size": 5, "online": 3}, MemberState.UP, "primary"),
        (None, MemberState.NON_PRIMARY, None),
    ],
)
def test_group_replication_health(row, state, role):
    health = group_replication_health(row)
    assert (health.state, health.role) == (state, role)
    if row:
        assert health.queue == 2


class FakeCursor:
    """Answers the probe's SQL like a server of the given kind would."""

    def __init__(self, answers: list[tuple[str, list[tuple], list[str] | None]]) -> None:
        self.answers = answers
        self.executed: list[str] = []
        self.description = None
        self._rows: list[tuple] = []

    def execute(self, sql, params=None):
        self.executed.append(sql)
        for needle, rows, columns in self.answers:
            if needle in sql:
                if isinstance(rows, Exception):
                    raise rows
                self._rows = list(rows)
                self.description = [(c,) for c in columns] if columns else None
                return len(self._rows)
        raise AssertionError(f"unexpected SQL: {sql}")

    def fetchall(self):
        return self._rows

    def fetchone(self):
        return self._rows[0] if self._rows else None


GR_COLUMNS = [
    "MEMBER_STATE",
    "MEMBER_ROLE",
    "GROUP_SIZE",
    "ONLINE",
    "QUEUE",
    "APPLIER_QUEUE",
    "SUPER_READ_ONLY",
    "READ_ONLY",
]


def test_group_replication_probe_reads_performance_schema():
    row = ("ONLINE", "PRIMARY", 3, 3, 7, 1, 0, 0)
    cursor = FakeCursor([("replication_group_members", [row], GR_COLUMNS)])
    health = probe_sql(GROUP_REPLICATION, cursor)
    assert health.state is MemberState.UP
    assert health.queue == 7
    assert health.details["applier_queue"] == 1
    sql = cursor.executed[0]
    for needle in (
        "performance_schema.replication_group_members",
        "MEMBER_STATE",
        "COUNT_TRANSACTIONS_IN_QUEUE",
        "super_read_only",
        "@@server_uuid",
    ):
        assert needle in sql


def test_kind_detection():
    galera = FakeCursor([("SHOW GLOBAL VARIABLES", [("wsrep_on", "ON")], None)])
    assert detect_kind(galera) == GALERA
    gr = FakeCursor(
        [
            ("SHOW GLOBAL VARIABLES", [("wsrep_on", "OFF")], None),
            ("replication_group_members", [(1,)], None),
        ]
    )
    assert detect_kind(gr) == GROUP_REPLICATION
    plain = FakeCursor(
        [
            ("SHOW GLOBAL VARIABLES", [], None),
            ("replication_group_members", pymysql.err.ProgrammingError(1146), None),
        ]
    )
    assert detect_kind(plain) == STANDALONE


def test_members_and_preference_parse():
    members = parse_members(
        "us=mysql+pymysql://a@h1/db?x=1, ie=mysql+pymysql://a@h2/db,us=mysql+pymysql://a@h3/db"
    )
    assert members == [
        ("us", "us", "mysql+pymysql://a@h1/db?x=1"),
        ("ie", "ie", "mysql+pymysql://a@h2/db"),
        ("us-2", "us", "mysql+pymysql://a@h3/db"),
    ]
    with pytest.raises(ValueError, match="region=dsn"):
        parse_members("mysql+pymysql://a@h1/db")
    regions = ["us", "ie", "in"]
    assert preference_order(regions, "in", None) == ["in", "us", "ie"]
    assert preference_order(regions, "us", "ie,us,in") == ["ie", "us", "in"]
    assert preference_order(regions, "us", "in") == ["in", "us", "ie"]
