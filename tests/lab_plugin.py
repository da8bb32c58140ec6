"""pytest plugin: the real three-node MariaDB Galera lab as fixtures.

Listed in ``pytest_plugins`` (or loaded with ``-p tests.lab_plugin``). The lab is started
once per session because a start costs ~10 s; tests that break it (kills) are expected
to leave it as they found it, and ``galera_clean`` heals it anyway.

A lab that cannot start is a failure, never a skip: a green run must mean the tests ran
against a real cluster.
"""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest

from labs.galera import DEFAULT_PORT_BASE, GaleraLab
from tests.helpers import wait_for as wait_for  # re-exported for the lab-driven tests

# Ports a lab occupies plus room to spare, so each xdist worker gets its own lab.
_WORKER_PORT_STRIDE = 20


def _port_base() -> int:
    base = int(os.environ.get("LAB_PORT_BASE") or DEFAULT_PORT_BASE)
    worker = os.environ.get("PYTEST_XDIST_WORKER", "")
    if worker.startswith("gw") and worker[2:].isdigit():
        base += int(worker[2:]) * _WORKER_PORT_STRIDE
    return base


@pytest.fixture(scope="session")
def galera_lab() -> Iterator[GaleraLab]:
    """Three Synced Galera nodes (us, ie, in) with the ``loyalty`` database and user."""
    lab = GaleraLab(port_base=_port_base(), keep=os.environ.get("LAB_KEEP") == "1")
    try:
        lab.start()
    except Exception as exc:
        pytest.fail(f"could not start the MariaDB Galera lab: {exc}", pytrace=False)
    try:
        yield lab
    finally:
        lab.stop()


@pytest.fixture
def galera_clean(galera_lab: GaleraLab) -> GaleraLab:
    """The lab healed to three Synced nodes, every ``loyalty`` table emptied."""
    galera_lab.heal()
    empty_app_tables(galera_lab)
    return galera_lab


def empty_app_tables(lab: GaleraLab) -> None:
    """TRUNCATE every ``loyalty`` table but ``alembic_version``.

    ``alembic_version`` is kept: emptying it would make the next migration run try to
    create tables that already exist. TRUNCATE is DDL on Galera (replicated in total
    order), so the other nodes are empty too by the time this returns.
    """
    with lab.admin_connect(0) as conn, conn.cursor() as cur:
        cur.execute(
            "SELECT table_name FROM information_schema.tables "
            "WHERE table_schema = 'loyalty' AND table_type = 'BASE TABLE' "
            "AND table_name <> 'alembic_version'"
        )
        tables = [row[0] for row in cur.fetchall()]
        cur.execute("SET SESSION foreign_key_checks = 0")
        for table in tables:
            cur.execute(f"TRUNCATE TABLE `loyalty`.`{table}`")


@pytest.fixture
def mariadb_url(galera_lab: GaleraLab) -> str:
    """SQLAlchemy URL of the ``us`` node for the application user."""
    return galera_lab.dsn(0)
