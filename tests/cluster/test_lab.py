"""The Galera lab itself: it must be a real cluster that behaves like one under faults.

The fault tests double as the measured facts the cluster layer is built on: how long
survivors stall after a crash, that a restarted node catches up by IST, and that a
whole-cluster crash loses nothing that was committed.
"""

from __future__ import annotations

import os
import socket
import time
from collections.abc import Iterator

import pymysql
import pytest

from labs.galera import (
    APP_PASSWORD,
    APP_USER,
    OWNER_PASSWORD,
    OWNER_USER,
    REGIONS,
    SYNCED,
    GaleraLab,
    LabError,
)
from tests.helpers import wait_for

pytestmark = pytest.mark.mariadb

NOT_PRIMARY = 1047


def _connect(
    lab: GaleraLab, i: int, *, causal: bool = False, owner: bool = False
) -> pymysql.connections.Connection:
    """As the app's account (SELECT/INSERT here), or as the schema owner (DDL)."""
    conn = pymysql.connect(
        host="127.0.0.1",
        port=lab.port(i),
        user=OWNER_USER if owner else APP_USER,
        password=OWNER_PASSWORD if owner else APP_PASSWORD,
        database="loyalty",
        autocommit=True,
        connect_timeout=3,
        read_timeout=30,
        write_timeout=30,
    )
    if causal:
        with conn.cursor() as cur:
            # Wait until this node has applied everything committed cluster-wide.
            cur.execute("SET SESSION wsrep_sync_wait = 1")
    return conn


def _insert(lab: GaleraLab, i: int, row_id: int, note: str) -> None:
    with _connect(lab, i) as conn, conn.cursor() as cur:
        cur.execute("INSERT INTO lab_probe (id, note) VALUES (%s, %s)", (row_id, note))


def _ids(lab: GaleraLab, i: int) -> list[int]:
    with _connect(lab, i, causal=True) as conn, conn.cursor() as cur:
        cur.execute("SELECT id FROM lab_probe ORDER BY id")
        return [row[0] for row in cur.fetchall()]


def _assert_synced(lab: GaleraLab, size: int = 3) -> None:
    for i in range(3):
        status = lab.status(i)
        assert status is not None, f"node {i} unreachable"
        assert status["wsrep_cluster_status"] == "Primary", (i, status)
        assert status["wsrep_ready"] == "ON", (i, status)
        assert status["wsrep_local_state"] == SYNCED, (i, status)
        assert status["wsrep_cluster_size"] == size, (i, status)


@pytest.fixture
def probe(galera_clean: GaleraLab) -> Iterator[GaleraLab]:
    """A small table on the cluster; dropped afterwards so app tests never see it."""
    with _connect(galera_clean, 0, owner=True) as conn, conn.cursor() as cur:
        cur.execute("CREATE TABLE IF NOT EXISTS lab_probe (id INT PRIMARY KEY, note VARCHAR(40))")
    yield galera_clean
    galera_clean.heal()
    with _connect(galera_clean, 0, owner=True) as conn, conn.cursor() as cur:
        cur.execute("DROP TABLE IF EXISTS lab_probe")


def test_cluster_is_synced_with_three_members(galera_lab: GaleraLab) -> None:
    _assert_synced(galera_lab)
    print(f"\nlab start: {galera_lab.timings['start']:.1f}s")


def test_members_env_names_every_region(galera_lab: GaleraLab, mariadb_url: str) -> None:
    base = galera_lab.port_base
    assert mariadb_url == f"mysql+pymysql://loyalty:loyalty-lab@127.0.0.1:{base}/loyalty"
    assert galera_lab.members_env() == ",".join(
        f"{region}=mysql+pymysql://loyalty:loyalty-lab@127.0.0.1:{base + i}/loyalty"
        for i, region in enumerate(REGIONS)
    )


def test_write_on_us_is_read_on_in_with_sync_wait(probe: GaleraLab) -> None:
    _insert(probe, 0, 1, "earned in us")
    assert _ids(probe, 2) == [1]


def test_busy_port_is_a_clear_error() -> None:
    with socket.socket() as squatter:
        squatter.bind(("127.0.0.1", 0))
        squatter.listen()
        port = squatter.getsockname()[1]
        lab = GaleraLab(port_base=port)
        with pytest.raises(LabError, match=f"port {port} is busy"):
            lab.start()


@pytest.mark.cluster
def test_killed_node_leaves_survivors_primary_and_rejoins_by_ist(probe: GaleraLab) -> None:
    lab = probe
    _insert(lab, 0, 1, "before the crash")
    lab.kill(1)
    stall = wait_for(
        lambda: all(
            (s := lab.status(i)) is not None
            and s["wsrep_cluster_status"] == "Primary"
            and s["wsrep_cluster_size"] == 2
            for i in (0, 2)
        ),
        timeout=15,
        what="survivors to form a Primary component of 2",
    )
    assert lab.status(1) is None
    _insert(lab, 0, 2, "while ie was down")
    assert _ids(lab, 2) == [1, 2]

    started = time.monotonic()
    lab.restart(1)
    rejoin = time.monotonic() - started
    _assert_synced(lab)
    assert lab.join_method(1) == "IST"
    assert _ids(lab, 1) == [1, 2]
    print(f"\nsurvivors Primary(2) after {stall:.1f}s; restart via IST {rejoin:.1f}s")


@pytest.mark.cluster
def test_whole_cluster_crash_loses_no_commit(probe: GaleraLab) -> None:
    lab = probe
    for row_id in range(1, 6):
        _insert(lab, row_id % 3, row_id, "committed before the crash")
    started = time.monotonic()
    lab.kill_all()
    assert all(lab.status(i) is None for i in range(3))
    lab.recover_all()
    took = time.monotonic() - started
    _assert_synced(lab)
    for i in range(3):
        assert _ids(lab, i) == [1, 2, 3, 4, 5]
    print(f"\nkill_all + recover_all: {took:.1f}s")


@pytest.mark.cluster
def test_last_survivor_is_non_primary_until_bootstrapped(probe: GaleraLab) -> None:
    lab = probe
    _insert(lab, 0, 1, "before")
    lab.kill(1)
    lab.kill(2)
    wait_for(
        lambda: (s := lab.status(0)) is not None and s["wsrep_cluster_status"] != "Primary",
        timeout=15,
        what="the lone survivor to lose quorum",
    )
    with pytest.raises(pymysql.err.OperationalError) as refused:
        _insert(lab, 0, 2, "no quorum")
    assert refused.value.args[0] == NOT_PRIMARY

    lab.bootstrap_survivor(0)
    _insert(lab, 0, 2, "after pc.bootstrap")
    lab.restart(1)
    lab.restart(2)
    _assert_synced(lab)
    for i in range(3):
        assert _ids(lab, i) == [1, 2]


@pytest.mark.cluster
def test_second_lab_coexists_and_stop_leaves_no_process(galera_lab: GaleraLab) -> None:
    other = GaleraLab(port_base=galera_lab.port_base + 50)
    with other:
        assert other.base_dir is not None
        base_dir = str(other.base_dir)
        other.kill(1)
    leftovers = []
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            with open(f"/proc/{pid}/cmdline", "rb") as fh:
                if base_dir.encode() in fh.read():
                    leftovers.append(int(pid))
        except OSError:
            continue
    assert leftovers == []
    assert not os.path.exists(base_dir)
    _assert_synced(galera_lab)
