"""The cluster layer: health interpretation, routing, retries and consistency.

The first half needs no database: it pins how probe results map to member states for
both Galera and MySQL Group Replication (GR has no server on this machine, so its code
path is exercised here through the rows its SQL would return). The second half runs the
router against the real three-node Galera lab, without killing anything (kills are in
``test_faults.py``).
"""

from __future__ import annotations

import json
import socket
import threading
import time
from collections.abc import Iterator

import pymysql
import pytest
from flask import g
from sqlalchemy import exc as sa_exc
from sqlalchemy import text

from labs.stack import cluster_app as labs_cluster_app
from labs.stack import router_of
from webapp.database import RetryTransaction
from webapp.database.cluster import (
    GALERA,
    GROUP_REPLICATION,
    STANDALONE,
    MemberState,
    detect_kind,
    galera_health,
    group_replication_health,
    parse_members,
    preference_order,
    probe_sql,
)
from webapp.database.routing import ClusterRouter, consistency
from webapp.errors import ServiceUnavailable
from webapp.extensions import db

SYNCED = {
    "wsrep_cluster_status": "Primary",
    "wsrep_ready": "ON",
    "wsrep_local_state": "4",
    "wsrep_local_state_comment": "Synced",
    "wsrep_local_recv_queue": "3",
}


# ---------------------------------------------------------------------------- no database
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


# ---------------------------------------------------------------------------- the lab
@pytest.fixture(scope="module")
def lab(request):
    lab = request.getfixturevalue("galera_schema")
    lab.heal()
    with lab.admin_connect(0) as conn, conn.cursor() as cur:
        cur.execute(
            "CREATE TABLE IF NOT EXISTS loyalty.routing_scratch "
            "(id INT PRIMARY KEY, n INT NOT NULL)"
        )
    yield lab
    lab.heal()
    with lab.admin_connect(0) as conn, conn.cursor() as cur:
        cur.execute("DROP TABLE IF EXISTS loyalty.routing_scratch")


@pytest.fixture
def cluster_app(lab) -> Iterator:
    """``cluster_app(region, **settings)``: an app on the full cluster config."""
    made = []

    def make(region: str = "us", **settings):
        app = labs_cluster_app(lab, region, **settings)
        made.append(app)
        return app

    yield make
    for app in made:
        router_of(app).dispose()


def node_name(conn) -> str:
    return conn.execute(text("SELECT @@wsrep_node_name")).scalar()


def scratch_row(lab, row_id: int, n: int = 0) -> None:
    with lab.admin_connect(0) as conn, conn.cursor() as cur:
        cur.execute("REPLACE INTO loyalty.routing_scratch (id, n) VALUES (%s, %s)", (row_id, n))


def scratch_value(lab, node: int, row_id: int) -> int | None:
    with lab.admin_connect(node) as conn, conn.cursor() as cur:
        cur.execute("SET SESSION wsrep_sync_wait = 1")
        cur.execute("SELECT n FROM loyalty.routing_scratch WHERE id = %s", (row_id,))
        row = cur.fetchone()
    return row[0] if row else None


def wait_for_state(
    router: ClusterRouter, name: str, state: MemberState, timeout: float = 10.0
) -> float:
    started = time.monotonic()
    while time.monotonic() - started < timeout:
        if router.cluster.member(name).state is state:
            return time.monotonic() - started
        time.sleep(0.02)
    pytest.fail(
        f"{name} did not become {state.value} within {timeout}s: "
        f"{router.cluster.member(name).state.value}"
    )


@pytest.mark.mariadb
@pytest.mark.parametrize("region", ["us", "ie", "in"])
def test_each_region_reads_and_writes_on_its_own_member(cluster_app, region):
    app = cluster_app(region)
    with app.app_context():
        assert db.write(node_name, name="test.where") == region
        assert g.db_member == region
        assert db.read(node_name, name="test.where") == region
        assert db.read(node_name, name="test.where", causal=True) == region


@pytest.mark.mariadb
def test_region_preference_setting_orders_members(cluster_app):
    app = cluster_app("us", REGION_PREFERENCE="in,ie")
    with app.app_context():
        assert [m["name"] for m in db.status()] == ["in", "ie", "us"]
        assert db.write(node_name, name="test.where") == "in"


@pytest.mark.mariadb
def test_kind_is_detected_and_every_member_reports_health(cluster_app):
    app = cluster_app("ie", CLUSTER_KIND="auto")
    router = router_of(app)
    assert len(router.engines) == 3
    with app.app_context():
        members = db.status()
    assert router.cluster.kind == GALERA
    assert [m["name"] for m in members] == ["ie", "us", "in"]
    for member in members:
        assert member["state"] == "up", member
        assert member["role"] == "primary"
        assert member["queue"] == 0
        assert member["latency_ms"] is not None
        assert member["error"] is None
        assert member["details"]["cluster_size"] == 3
    response = app.test_client().get("/readyz")
    assert response.status_code == 200
    assert response.get_json()["status"] == "ready"


@pytest.mark.mariadb
def test_cli_prints_every_member(cluster_app):
    app = cluster_app("in")
    result = app.test_cli_runner().invoke(args=["cluster", "status"])
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert "galera" in lines[0]
    assert "in > us > ie" in lines[0]
    assert lines[1].split()[:6] == ["MEMBER", "REGION", "STATE", "ROLE", "QUEUE", "LATENCY"]
    assert [line.split()[:3] for line in lines[2:5]] == [
        ["in", "in", "up"],
        ["us", "us", "up"],
        ["ie", "ie", "up"],
    ]
    result = app.test_cli_runner().invoke(args=["cluster", "status", "--json"])
    assert result.exit_code == 0
    document = json.loads(result.output)
    assert document["writable"] is True
    assert {m["name"]: m["state"] for m in document["members"]} == {
        "in": "up",
        "us": "up",
        "ie": "up",
    }


@pytest.mark.mariadb
def test_causal_barrier_waits_for_a_lagging_member(cluster_app, lab):
    """The barrier really waits: with node ``in``'s applier paused (FTWRL), a fast read
    there misses a row committed on ``us``; the causal read blocks until it is applied."""
    router = router_of(cluster_app("in"))
    router.cluster.ensure_started()
    engine = router.cluster.member("in").engine
    with lab.admin_connect(0) as conn, conn.cursor() as cur:
        cur.execute("DELETE FROM loyalty.routing_scratch WHERE id = 2")
    time.sleep(0.2)
    lock = lab.admin_connect(2)
    try:
        with lock.cursor() as cur:
            cur.execute("FLUSH TABLES WITH READ LOCK")
        scratch_row(lab, 2, 1)  # committed on us while in cannot apply it
        count = text("SELECT COUNT(*) FROM routing_scratch WHERE id = 2")
        with (
            engine.connect() as conn,
            conn.begin(),
            consistency(conn, GALERA, causal=False, stale=False),
        ):
            assert conn.execute(count).scalar() == 0  # a fast local read: stale
        release = threading.Timer(1.0, lambda: lock.cursor().execute("UNLOCK TABLES"))
        release.start()
        started = time.monotonic()
        with (
            engine.connect() as conn,
            conn.begin(),
            consistency(conn, GALERA, causal=True, stale=False),
        ):
            assert conn.execute(count).scalar() == 1
            assert conn.execute(text("SELECT @@session.wsrep_sync_wait")).scalar() == 0
        waited = time.monotonic() - started
        release.join()
    finally:
        lock.close()
    assert waited >= 0.8, f"the causal read returned after {waited:.2f}s without waiting"


@pytest.mark.mariadb
def test_session_settings_do_not_leak_into_pooled_connections(cluster_app):
    app = cluster_app("us", ALLOW_STALE_READS=True)

    def session(conn):
        return tuple(
            conn.execute(
                text(
                    "SELECT CONNECTION_ID(), @@session.wsrep_sync_wait, @@session.wsrep_dirty_reads"
                )
            ).one()
        )

    with app.app_context():
        seen = [
            db.write(session, name="t"),
            db.read(session, name="t", causal=True),
            db.read(session, name="t"),
        ]
    assert len({s[0] for s in seen}) == 1, "expected one pooled connection to be reused"
    assert all(s[1:] == (0, 0) for s in seen), seen


@pytest.mark.mariadb
def test_conflict_at_commit_is_retried_on_the_same_member(cluster_app, lab):
    """A real certification conflict: our transaction on ``ie`` updates a row that ``us``
    updates and commits meanwhile; our COMMIT fails with 1213 and the whole transaction
    runs again on ``ie``. Both increments survive: no lost update."""
    scratch_row(lab, 1, 0)
    app = cluster_app("ie")
    router = router_of(app)
    other = lab.admin_connect(0)
    runs = []

    def work(conn):
        runs.append(node_name(conn))
        conn.execute(text("UPDATE routing_scratch SET n = n + 1 WHERE id = 1"))
        if len(runs) == 1:
            with other.cursor() as cur:
                cur.execute("UPDATE loyalty.routing_scratch SET n = n + 10 WHERE id = 1")
        return len(runs)

    with app.app_context():
        assert db.write(work, name="test.conflict") == 2
    other.close()
    assert runs == ["ie", "ie"]
    stats = router.stats.snapshot()
    assert stats["conflicts"] == 1
    assert stats["retries"] == {"conflict": 1}
    assert stats["failovers"] == 0
    assert [scratch_value(lab, i, 1) for i in range(3)] == [11, 11, 11]


@pytest.mark.mariadb
def test_conflict_retries_are_bounded(cluster_app):
    app = cluster_app("us", DB_RETRY_BUDGET=3)
    runs = []

    def always_conflicts(conn):
        runs.append(1)
        raise RetryTransaction()

    with app.app_context(), pytest.raises(ServiceUnavailable, match="busy"):
        db.write(always_conflicts, name="test.busy")
    assert len(runs) == 4
    stats = router_of(app).stats.snapshot()
    assert stats["max_attempts"] == 4
    assert stats["conflicts"] == 4
    assert stats["retries"] == {"conflict": 3}


@pytest.mark.mariadb
def test_time_budget_bounds_retries(cluster_app):
    app = cluster_app("us", DB_RETRY_BUDGET=1000, DB_RETRY_TIME_BUDGET=0.5)

    def always_conflicts(conn):
        raise RetryTransaction()

    with app.app_context(), pytest.raises(ServiceUnavailable):
        db.write(always_conflicts, name="test.busy")
    # The time budget, not the 1000-attempt budget, is what stopped it.
    assert 1 < router_of(app).stats.snapshot()["max_attempts"] < 1000


@pytest.mark.mariadb
@pytest.mark.parametrize(
    ("code", "marked"),
    [
        (1047, MemberState.NON_PRIMARY),
        (2013, MemberState.SUSPECT),
        (1290, MemberState.READ_ONLY),
    ],
)
def test_unavailable_member_fails_over_and_comes_back(cluster_app, code, marked):
    """A member-level error moves the transaction to the next member at once; the
    checker then finds the member healthy and routing returns to it."""
    app = cluster_app("us")
    router = router_of(app)
    states = []
    router.cluster.add_listener(lambda change: states.append((change.member, change.new)))
    runs = []

    def work(conn):
        runs.append(node_name(conn))
        if len(runs) == 1:
            raise pymysql.err.OperationalError(code, "simulated")
        return runs[-1]

    with app.app_context():
        assert db.write(work, name="test.failover") == "ie"
        assert g.db_member == "ie"
    assert runs == ["us", "ie"]
    assert ("us", marked) in states
    stats = router.stats.snapshot()
    assert stats["failovers"] == 1
    assert stats["retries"] == {"member_unavailable": 1}
    wait_for_state(router, "us", MemberState.UP, timeout=5)
    with app.app_context():
        assert db.write(node_name, name="test.where") == "us"


@pytest.mark.mariadb
def test_connection_lost_at_commit_is_retried_whole_on_the_next_member(cluster_app, lab):
    """The answer to COMMIT never arrives (the server dropped the connection): the
    outcome is unknown to the router, which runs the whole transaction again on the next
    member. Here the first COMMIT did not happen, so the increment lands exactly once."""
    scratch_row(lab, 3, 0)
    app = cluster_app("us")
    router = router_of(app)
    killer = lab.admin_connect(0)
    runs = []

    def work(conn):
        runs.append(node_name(conn))
        conn.execute(text("UPDATE routing_scratch SET n = n + 1 WHERE id = 3"))
        if len(runs) == 1:
            own = conn.execute(text("SELECT CONNECTION_ID()")).scalar()
            with killer.cursor() as cur:
                cur.execute(f"KILL CONNECTION {int(own)}")
        return runs[-1]

    with app.app_context():
        assert db.write(work, name="test.commit_lost") == "ie"
    killer.close()
    assert runs == ["us", "ie"]
    stats = router.stats.snapshot()
    assert stats["retries"] == {"commit_unknown": 1}
    assert stats["failovers"] == 1
    assert [scratch_value(lab, i, 3) for i in range(3)] == [1, 1, 1]
    wait_for_state(router, "us", MemberState.UP, timeout=5)


@pytest.mark.mariadb
def test_permanent_errors_are_not_retried(cluster_app):
    app = cluster_app("us")
    runs = []

    def broken(conn):
        runs.append(1)
        conn.execute(text("SELECT * FROM no_such_table"))

    with app.app_context(), pytest.raises(sa_exc.ProgrammingError):
        db.write(broken, name="test.broken")
    assert runs == [1]
    assert router_of(app).stats.snapshot()["retries"] == {}


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.mark.mariadb
def test_unreachable_member_is_down_backed_off_and_never_routed_to(cluster_app, lab):
    dead = f"mysql+pymysql://loyalty:loyalty-lab@127.0.0.1:{_free_port()}/loyalty"
    app = cluster_app("xx", CLUSTER=f"xx={dead},{lab.members_env()}")
    router = router_of(app)
    with app.app_context():
        members = {m["name"]: m for m in db.status()}
        assert members["xx"]["state"] == "down"
        assert "2003" in members["xx"]["error"]
        assert db.write(node_name, name="test.where") == "us"
    xx = router.cluster.member("xx")
    time.sleep(1.5)  # interval 0.2 s: ~4 probes with backoff instead of ~7 without
    assert 2 <= xx.failures <= 5
    assert xx.next_check_at - time.monotonic() <= router.cluster.max_backoff


@pytest.mark.mariadb
def test_dispose_stops_the_health_checker(cluster_app):
    app = cluster_app("us")
    router = router_of(app)
    with app.app_context():
        db.read(node_name, name="test.where")
    thread = router.cluster._thread
    assert thread is not None
    assert thread.is_alive()
    router.dispose()
    assert not thread.is_alive()
