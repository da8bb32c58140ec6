"""The cluster router against the real three-node Galera lab: routing by region,
health, retries and consistency, without killing anything (kills are in
``test_faults.py``). How probe results map to member states, with no database:
``tests/unit/test_cluster_probes.py``.
"""

from __future__ import annotations

import json
import socket
import threading
import time

import pytest
from flask import g
from sqlalchemy import exc as sa_exc
from sqlalchemy import text

from labs.galera import APP_USER
from labs.stack import router_of
from tests.helpers import runs_until_busy, wait_for
from webapp.config import REGIONS
from webapp.database.probes import GALERA, MemberState
from webapp.database.routing import ClusterRouter, consistency
from webapp.extensions import db


# ---------------------------------------------------------------------------- the lab
@pytest.fixture(scope="module", autouse=True)
def lab(request):
    """The session lab, healed, with a scratch table the routing tests write to."""
    lab = request.getfixturevalue("galera_schema")
    lab.heal()
    with lab.admin_connect(0) as conn, conn.cursor() as cur:
        cur.execute(
            "CREATE TABLE IF NOT EXISTS loyalty.routing_scratch "
            "(id INT PRIMARY KEY, n INT NOT NULL)"
        )
        # The app's account may change only the tables it was granted (append-only).
        cur.execute(f"GRANT UPDATE, DELETE ON loyalty.routing_scratch TO '{APP_USER}'@'%'")
    yield lab
    lab.heal()
    with lab.admin_connect(0) as conn, conn.cursor() as cur:
        cur.execute(f"REVOKE UPDATE, DELETE ON loyalty.routing_scratch FROM '{APP_USER}'@'%'")
        cur.execute("DROP TABLE IF EXISTS loyalty.routing_scratch")


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


def increment_scratch(app, lab, row_id: int, *, name: str, disturb=None,
                      **write_options) -> list[str]:
    """One db.write that adds 1 to scratch row ``row_id``. On its first run, after the
    UPDATE and before COMMIT, ``disturb(conn, cursor)`` (if given) acts through an admin
    connection to member 0. Returns the members the work ran on, in order (and checks
    that the write answered with the last run's result)."""
    admin = lab.admin_connect(0) if disturb else None
    runs = []

    def work(conn):
        runs.append(node_name(conn))
        conn.execute(text("UPDATE routing_scratch SET n = n + 1 WHERE id = :id"),
                     {"id": row_id})
        if admin is not None and len(runs) == 1:
            with admin.cursor() as cur:
                disturb(conn, cur)
        return len(runs)

    try:
        with app.app_context():
            assert db.write(work, name=name, **write_options) == len(runs)
    finally:
        if admin is not None:
            admin.close()
    return runs


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
@pytest.mark.parametrize("region", REGIONS)
def test_each_region_reads_and_writes_on_its_own_member(cluster_apps, region):
    app = cluster_apps(region)
    with app.app_context():
        assert db.write(node_name, name="test.where") == region
        assert g.db_member == region
        assert db.read(node_name, name="test.where") == region
        assert db.read(node_name, name="test.where", causal=True) == region


@pytest.mark.mariadb
def test_region_preference_setting_orders_members(cluster_apps):
    app = cluster_apps("us", REGION_PREFERENCE="in,ie")
    with app.app_context():
        assert [m["name"] for m in db.status()] == ["in", "ie", "us"]
        assert db.write(node_name, name="test.where") == "in"


@pytest.mark.mariadb
def test_kind_is_detected_and_every_member_reports_health(cluster_apps):
    app = cluster_apps("ie", CLUSTER_KIND="auto")
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
def test_cli_prints_every_member(cluster_apps):
    app = cluster_apps("in")
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
@pytest.mark.parametrize("first", [
    "SELECT COUNT(*) FROM routing_scratch WHERE id = 2",  # carries the barrier itself
    # Not a plain SELECT: the barrier's own SELECT 1 is sent before it.
    "WITH found AS (SELECT COUNT(*) AS n FROM routing_scratch WHERE id = 2) SELECT n FROM found",
])
def test_causal_barrier_waits_for_a_lagging_member(cluster_apps, lab, first):
    """The barrier really waits: with node ``in``'s applier paused (FTWRL), a fast read
    there misses a row committed on ``us``; the causal read blocks until it is applied,
    whether the barrier rides on the transaction's first statement or goes before it."""
    router = router_of(cluster_apps("in"))
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
        count = text(first)
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
def test_session_settings_do_not_leak_into_pooled_connections(cluster_apps):
    app = cluster_apps("us", ALLOW_STALE_READS=True)

    def session(conn):
        # A causal transaction's first SELECT carries the barrier (SET STATEMENT
        # wsrep_sync_wait = 1 FOR ...): within it the variable is 1, by design. What
        # must not leak is the setting after that statement, into the next transaction.
        conn.execute(text("SELECT 1"))
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
def test_conflict_at_commit_is_retried_on_the_same_member(cluster_apps, lab):
    """A real certification conflict: our transaction on ``ie`` updates a row that ``us``
    updates and commits meanwhile; our COMMIT fails with 1213 and the whole transaction
    runs again on ``ie``. Both increments survive: no lost update."""
    scratch_row(lab, 1, 0)
    app = cluster_apps("ie")
    router = router_of(app)

    def commit_on_us_meanwhile(conn, cur):
        cur.execute("UPDATE loyalty.routing_scratch SET n = n + 10 WHERE id = 1")

    runs = increment_scratch(app, lab, 1, name="test.conflict", disturb=commit_on_us_meanwhile)
    assert runs == ["ie", "ie"]
    stats = router.stats.snapshot()
    assert stats["conflicts"] == 1
    assert stats["retries"] == {"conflict": 1}
    assert stats["failovers"] == 0
    assert [scratch_value(lab, i, 1) for i in range(3)] == [11, 11, 11]


@pytest.mark.mariadb
def test_conflict_retries_are_bounded(cluster_apps):
    app = cluster_apps("us", DB_RETRY_BUDGET=3)
    assert runs_until_busy(app) == 4
    stats = router_of(app).stats.snapshot()
    assert stats["max_attempts"] == 4
    assert stats["conflicts"] == 4
    assert stats["retries"] == {"conflict": 3}


@pytest.mark.mariadb
def test_time_budget_bounds_retries(cluster_apps):
    app = cluster_apps("us", DB_RETRY_BUDGET=1000, DB_RETRY_TIME_BUDGET=0.5)
    runs_until_busy(app)
    # The time budget, not the 1000-attempt budget, is what stopped it.
    assert 1 < router_of(app).stats.snapshot()["max_attempts"] < 1000


@pytest.fixture
def read_only_node(lab):
    """``read_only_node(i)``: ``SET GLOBAL read_only=1`` on node ``i`` for the test.

    Real: the app's account has privileges on the ``loyalty`` schema only (no SUPER, no
    READ_ONLY ADMIN), so the server refuses its writes with 1290; replication still
    applies other members' writesets there.
    """
    nodes = []

    def make(i: int) -> None:
        nodes.append(i)
        with lab.admin_connect(i) as conn, conn.cursor() as cur:
            cur.execute("SET GLOBAL read_only = 1")

    yield make
    for i in nodes:
        with lab.admin_connect(i) as conn, conn.cursor() as cur:
            cur.execute("SET GLOBAL read_only = 0")


@pytest.mark.mariadb
def test_a_read_only_member_serves_reads_and_writes_go_elsewhere(
    cluster_apps, lab, read_only_node
):
    """A real read-only member: the first write there is refused (1290) and moved to
    the next member; reads stay on it; once writable again, writes come back."""
    scratch_row(lab, 4, 0)
    # No background probes during the test: the refusal itself must move the write.
    app = cluster_apps("us", HEALTH_CHECK_INTERVAL=60)
    router = router_of(app)
    with app.app_context():
        assert db.write(node_name, name="test.where") == "us"
    read_only_node(0)

    runs = increment_scratch(app, lab, 4, name="test.read_only")
    with app.app_context():
        assert db.read(node_name, name="test.where") == "us"
        assert db.read(node_name, name="test.where", causal=True) == "us"
    assert runs == ["us", "ie"]
    us = router.cluster.member("us")
    assert us.state is MemberState.READ_ONLY
    assert router.stats.snapshot()["retries"] == {"member_unavailable": 1}
    assert [scratch_value(lab, i, 4) for i in range(3)] == [1, 1, 1]

    with lab.admin_connect(0) as conn, conn.cursor() as cur:
        cur.execute("SET GLOBAL read_only = 0")
    assert router.cluster.probe(us).state is MemberState.UP
    with app.app_context():
        assert db.write(node_name, name="test.where") == "us"


@pytest.fixture
def isolated_node(lab):
    """``isolated_node(i)``: cut node ``i`` off from the group (Galera's
    ``gmcast.isolate``) until the test ends, then let it rejoin."""
    nodes = []

    def make(i: int) -> None:
        nodes.append(i)
        with lab.admin_connect(i) as conn, conn.cursor() as cur:
            cur.execute("SET GLOBAL wsrep_provider_options = 'gmcast.isolate=1'")
        wait_for(
            lambda: (lab.status(i) or {}).get("wsrep_cluster_status") == "non-Primary",
            30,
            f"node {i} to leave the Primary component",
        )

    yield make
    for i in nodes:
        with lab.admin_connect(i) as conn, conn.cursor() as cur:
            cur.execute("SET GLOBAL wsrep_provider_options = 'gmcast.isolate=0'")
    lab.heal()


@pytest.mark.mariadb
def test_a_non_primary_member_is_routed_around(cluster_apps, isolated_node):
    """A real non-Primary member: node us cut off from the group (``gmcast.isolate``)
    forms a one-node non-Primary component and answers 1047; the other two keep quorum.
    Writes and reads go to ie; a non-causal read may use us only with ALLOW_STALE_READS."""
    app = cluster_apps("us")
    stale_app = cluster_apps("us", ALLOW_STALE_READS=True)
    router = router_of(app)
    with app.app_context():
        assert db.write(node_name, name="test.where") == "us"
    with stale_app.app_context():
        assert db.read(node_name, name="test.where") == "us"
    isolated_node(0)
    runs = []

    def work(conn):
        runs.append(node_name(conn))
        return runs[-1]

    with app.app_context():
        assert db.write(work, name="test.non_primary") == "ie"
        assert db.read(node_name, name="test.where") == "ie"
    assert runs[-1] == "ie"
    assert set(runs) <= {"us", "ie"}
    assert router.cluster.member("us").state is MemberState.NON_PRIMARY
    with stale_app.app_context():  # another member is up: no stale read needed
        assert db.read(node_name, name="test.where") == "ie"
        assert not g.get("stale_read")


@pytest.mark.mariadb
def test_connection_lost_at_commit_is_retried_whole_on_the_next_member(cluster_apps, lab):
    """The connection dies before COMMIT is sent, so COMMIT fails: the outcome is
    unknown to the router, which runs work declared idempotent again on the next member.
    Here the first COMMIT did not happen, so the increment lands exactly once. (The hard
    case, COMMIT applied and its answer lost, is ``test_ackloss.py``'s.)"""
    scratch_row(lab, 3, 0)
    app = cluster_apps("us")
    router = router_of(app)

    def kill_our_connection(conn, cur):
        own = conn.execute(text("SELECT CONNECTION_ID()")).scalar()
        cur.execute(f"KILL CONNECTION {int(own)}")

    runs = increment_scratch(app, lab, 3, name="test.commit_lost", disturb=kill_our_connection,
                             idempotent=True)
    assert runs == ["us", "ie"]
    stats = router.stats.snapshot()
    assert stats["retries"] == {"commit_unknown": 1}
    assert stats["failovers"] == 1
    assert [scratch_value(lab, i, 3) for i in range(3)] == [1, 1, 1]
    wait_for_state(router, "us", MemberState.UP, timeout=5)


@pytest.mark.mariadb
def test_pooled_connection_the_server_dropped_is_replaced_without_failover(cluster_apps, lab):
    """No pool ping: a pooled connection the server killed fails on its first statement.
    That must cost one reconnect to the same member, not a failover to another region
    nor a suspect member (what ``pool_pre_ping`` used to guarantee with a round trip)."""
    app = cluster_apps("us")
    router = router_of(app)

    def connection_id(conn):
        return conn.execute(text("SELECT CONNECTION_ID()")).scalar()

    with app.app_context():
        pooled = db.read(connection_id, name="test.warm")  # one thread: the only one pooled
    killer = lab.admin_connect(0)
    with killer.cursor() as cur:
        cur.execute(f"KILL CONNECTION {int(pooled)}")
    killer.close()
    states = []
    router.cluster.add_listener(lambda change: states.append((change.member, change.new)))
    with app.app_context():
        assert db.read(node_name, name="test.after_kill") == "us"
        assert db.write(node_name, name="test.after_kill_write") == "us"
    stats = router.stats.snapshot()
    assert stats["failovers"] == 0
    assert stats["retries"] == {"reconnect": 1}
    assert states == []


@pytest.mark.mariadb
def test_permanent_errors_are_not_retried(cluster_apps):
    app = cluster_apps("us")
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
def test_unreachable_member_is_down_backed_off_and_never_routed_to(cluster_apps, lab):
    dead = f"mysql+pymysql://loyalty:loyalty-lab@127.0.0.1:{_free_port()}/loyalty"
    app = cluster_apps("xx", CLUSTER=f"xx={dead},{lab.members_env()}")
    router = router_of(app)
    with app.app_context():
        members = {m["name"]: m for m in db.status()}
        assert members["xx"]["state"] == "down"
        assert "2003" in members["xx"]["error"]
        assert db.write(node_name, name="test.where") == "us"
    # Each failed probe schedules the next one later: interval x 2^(failures-1), capped.
    # Watch the checker's own schedule probe by probe (no wall-clock bounds).
    cluster = router.cluster
    xx = cluster.member("xx")
    schedule: dict[int, tuple[float, float]] = {}  # failures -> (probed at, next probe due)

    def probed_five_times() -> bool:
        with cluster._lock:
            schedule[xx.failures] = (xx.checked_at, xx.next_check_at)
            return xx.failures >= 5

    wait_for(probed_five_times, 60, "five failed probes of the dead member")
    assert xx.state is MemberState.DOWN
    backoffs = {n: round(due - at, 6) for n, (at, due) in schedule.items() if n}
    for failures, backoff in backoffs.items():
        expected = min(cluster.max_backoff, cluster.interval * 2 ** (failures - 1))
        assert backoff == pytest.approx(expected), (failures, backoffs)
    seen = [backoffs[n] for n in sorted(backoffs)]
    assert len(seen) >= 3, backoffs
    assert seen == sorted(seen)
    assert seen[0] < seen[-1] <= cluster.max_backoff
    for failures in sorted(schedule)[1:-1]:  # never probed before it was due
        if failures + 1 in schedule:
            assert schedule[failures + 1][0] >= schedule[failures][1]


@pytest.mark.mariadb
def test_dispose_stops_the_health_checker(cluster_apps):
    app = cluster_apps("us")
    router = router_of(app)
    with app.app_context():
        db.read(node_name, name="test.where")
    thread = router.cluster._thread
    assert thread is not None
    assert thread.is_alive()
    router.dispose()
    assert not thread.is_alive()
