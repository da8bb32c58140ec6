"""Fixtures in the style of Flask's tutorial: ``app``, ``client``, ``runner``, ``auth``,
and ``cluster_apps`` for apps on the whole Galera lab. Helpers: ``tests/helpers.py``.

``app`` is parametrized over the embedded default (SQLite, a fresh file per test) and the
real 3-node MariaDB Galera lab started once per session, so every app test proves its SQL
on both. Run one side with ``-m "not mariadb"`` or ``-k sqlite``.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator

import pytest
from argon2 import PasswordHasher
from sqlalchemy import delete, text

from db.seed import seed_stores
from labs.stack import cluster_app, router_of
from tests.helpers import PASSWORD as PASSWORD  # re-exported: tests import them from here too
from tests.helpers import AuthActions as AuthActions
from tests.helpers import csrf_token as csrf_token
from webapp import create_app
from webapp.commands import upgrade_schema
from webapp.database.schema import APPEND_ONLY, metadata
from webapp.extensions import db

pytest_plugins = ["tests.lab_plugin", "tests.mail_helpers"]


def pytest_collection_modifyitems(config, items):
    """The region lab needs root, namespaces and minutes: it runs only when asked for
    with ``-m regions`` (``make regions``), never as part of the default suite."""
    if "regions" in (config.getoption("-m") or ""):
        return
    kept = [item for item in items if item.get_closest_marker("regions") is None]
    if len(kept) != len(items):
        config.hook.pytest_deselected(items=[i for i in items if i not in kept])
        items[:] = kept


def _galera_param():
    return pytest.param("galera", marks=pytest.mark.mariadb)


@pytest.fixture(scope="session")
def galera_schema(request):
    """Migrates the lab once; tests then start from empty tables."""
    lab = request.getfixturevalue("galera_lab")
    app = create_app({"PROFILE": "test", **galera_config(lab)})
    with app.app_context():
        upgrade_schema()
    db.dispose()
    return lab


def galera_config(lab) -> dict:
    """The whole cluster behind the ClusterRouter, as production runs it (region us)."""
    return {"CLUSTER": lab.members_env(), "CLUSTER_KIND": "galera", "REGION": "us",
            "SCHEMA_DATABASE_URL": lab.schema_dsn(0)}


@pytest.fixture(scope="session")
def sqlite_template(tmp_path_factory):
    """One migrated SQLite file per session. Running the migrations for every test cost
    most of a fast test's time (and all of a mutation run's); a copy costs nothing."""
    path = tmp_path_factory.mktemp("sqlite-template") / "migrated.db"
    app = create_app({"PROFILE": "test", "DATABASE_URL": f"sqlite:///{path}"})
    with app.app_context():
        upgrade_schema()
    db.dispose()
    return path


def _copy_sqlite(source, target) -> None:
    # The backup API copies a consistent database whatever the journal (WAL) holds.
    with sqlite3.connect(source) as src, sqlite3.connect(target) as dst:
        src.backup(dst)
    src.close()
    dst.close()


@pytest.fixture(params=["sqlite", _galera_param()])
def app(request, tmp_path):
    if request.param == "sqlite":
        _copy_sqlite(request.getfixturevalue("sqlite_template"), tmp_path / "test.db")
        config = {"PROFILE": "test", "DATABASE_URL": f"sqlite:///{tmp_path / 'test.db'}"}
    else:
        lab = request.getfixturevalue("galera_schema")
        config = {"PROFILE": "test", **galera_config(lab)}
    app = create_app(config)
    with app.app_context():
        if request.param != "sqlite":
            reset_tables(db.engine)
        seed_stores()
    yield app
    db.dispose()


def reset_tables(owner_engine) -> None:
    """Empties every table as the schema owner: DELETE where rows may be deleted, TRUNCATE
    for the append-only tables (their triggers refuse DELETE even to the owner; TRUNCATE
    fires no trigger, and only the owner holds the DROP privilege it needs)."""
    with owner_engine.begin() as conn:
        for table in reversed(metadata.sorted_tables):
            if table.name in APPEND_ONLY:
                conn.execute(text(f"TRUNCATE TABLE {table.name}"))
            else:
                conn.execute(delete(table))


@pytest.fixture(autouse=True)
def cheap_password_hashing(request, monkeypatch):
    """argon2id at full cost (64 MiB, three passes) is the subject of the tests marked
    ``full_password_cost`` (the hashes, the sign-in answers and their timings); anywhere
    else it cost 0.45-0.75 s of CPU per registration or sign-in, most of an app test's
    time and thousands of times over in the page fuzz. Still argon2id, only cheaper.
    The e2e tests and the gunicorn processes tests start hash at full cost."""
    if request.node.get_closest_marker("full_password_cost") is None:
        monkeypatch.setattr("webapp.auth.services.hasher",
                            PasswordHasher(time_cost=1, memory_cost=1024, parallelism=1))


@pytest.fixture
def client(app):
    return app.test_client()


@pytest.fixture
def runner(app):
    return app.test_cli_runner()


@pytest.fixture
def auth(client):
    return AuthActions(client)


@pytest.fixture
def cluster_apps(galera_schema) -> Iterator:
    """``cluster_apps(region="us", **settings)`` makes an in-process app of that region on
    the whole Galera lab (``labs.stack.cluster_app``: the test profile, every member,
    this region preferred); as many as the test wants, all disposed after it."""
    made = []

    def make(region: str = "us", **settings):
        app = cluster_app(galera_schema, region, **settings)
        made.append(app)
        return app

    yield make
    for app in made:
        router_of(app).dispose()
