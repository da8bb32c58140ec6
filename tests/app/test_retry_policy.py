"""One retry policy: the single database (SQLite here) runs the cluster router's code.

A single database is a one-member cluster for :class:`ClusterRouter`, so conflicts,
budgets and the unknown-COMMIT contract behave on SQLite exactly as on Galera. The lost
COMMIT answer is produced here by letting SQLite commit and then raising the error a
lost connection raises (the Galera drills in ``test_ackloss.py`` lose it on the wire).
"""

from __future__ import annotations

import sqlite3
import threading

import pytest
from sqlalchemy import text

from db.seed import seed_stores
from tests.helpers import answer_lost, runs_until_busy
from webapp import create_app
from webapp.auth.services import register
from webapp.commands import upgrade_schema
from webapp.database import RetryTransaction, after_unknown_commit
from webapp.database.routing import ClusterRouter
from webapp.errors import OutcomeUnknown
from webapp.extensions import db
from webapp.family import services as family
from webapp.ledger import services as ledger


@pytest.fixture
def make_app(tmp_path):
    made = []

    def make(**settings):
        app = create_app(
            {"PROFILE": "test", "DATABASE_URL": f"sqlite:///{tmp_path / 'retry.db'}", **settings}
        )
        with app.app_context():
            upgrade_schema()
            seed_stores()
            db.write(
                lambda conn: conn.execute(
                    text("CREATE TABLE IF NOT EXISTS scratch (id INTEGER PRIMARY KEY, n INT)")
                ),
                name="test.scratch",
            )
            db.write(
                lambda conn: conn.execute(text("REPLACE INTO scratch VALUES (1, 0)")),
                name="test.scratch",
            )
        made.append(app)
        return app

    yield make
    for app in made:
        router(app).dispose()



def router(app) -> ClusterRouter:
    return app.extensions["loyalty_db.router"]


def scratch(app) -> int:
    with app.app_context():
        return db.read(
            lambda conn: conn.execute(text("SELECT n FROM scratch WHERE id = 1")).scalar(),
            name="test.scratch",
        )


def increment(runs: list[bool]):
    def work(conn):
        runs.append(after_unknown_commit(conn))
        conn.execute(text("UPDATE scratch SET n = n + 1 WHERE id = 1"))

    return work


# ---------------------------------------------------------------------------- the policy
def test_the_single_database_runs_the_cluster_router_with_the_configured_policy(make_app):
    app = make_app(DB_RETRY_BUDGET=2, DB_RETRY_TIME_BUDGET=7.5)
    assert isinstance(router(app), ClusterRouter)
    assert (router(app).policy.retry_budget, router(app).policy.time_budget) == (2, 7.5)


def test_endless_conflicts_end_in_a_busy_503_after_the_retry_budget(make_app):
    app = make_app(DB_RETRY_BUDGET=3)
    assert runs_until_busy(app) == 4
    assert router(app).stats.snapshot()["retries"] == {"conflict": 3}


def test_the_time_budget_bounds_retries(make_app):
    app = make_app(DB_RETRY_BUDGET=100_000, DB_RETRY_TIME_BUDGET=0.3)
    runs_until_busy(app)
    # The time budget, not the attempt budget, stopped it; the pause is capped, so it
    # kept trying meanwhile.
    assert 3 < router(app).stats.snapshot()["max_attempts"] < 100_000


# ---------------------------------------------------------------------------- the contract
def test_work_not_declared_idempotent_is_not_run_again_after_a_lost_answer(make_app):
    app = make_app()
    runs: list[bool] = []
    with app.app_context(), answer_lost(app), pytest.raises(OutcomeUnknown):
        db.write(increment(runs), name="test.increment")
    assert runs == [False]
    assert scratch(app) == 1  # it happened, once; the caller was told "unknown"


def test_idempotent_work_runs_again_and_knows_an_earlier_answer_was_lost(make_app):
    app = make_app()
    runs: list[bool] = []
    with app.app_context(), answer_lost(app):
        db.write(increment(runs), name="test.increment", idempotent=True)
    # Run again (this work is not really idempotent: the flag is the caller's promise).
    assert runs == [False, True]
    assert router(app).stats.snapshot()["retries"] == {"commit_unknown": 1}


def test_retries_that_run_out_after_a_lost_answer_are_outcome_unknown(make_app):
    app = make_app(DB_RETRY_BUDGET=2)
    with app.app_context(), answer_lost(app, times=10) as lost, pytest.raises(OutcomeUnknown):
        db.write(lambda conn: None, name="test.noop", idempotent=True)
    assert len(lost) == 3


def test_conflicts_before_commit_are_retried_for_all_work(make_app):
    app = make_app()
    runs = []

    def conflicts_once(conn):
        runs.append(1)
        if len(runs) == 1:
            raise RetryTransaction()
        return "done"

    with app.app_context():
        assert db.write(conflicts_once, name="test.conflict") == "done"
    assert len(runs) == 2


# ---------------------------------------------------------------------------- the sites
def test_an_earn_whose_answer_was_lost_is_booked_once_and_is_no_replay(make_app):
    app = make_app()
    with app.app_context():
        account = register(name="Ana", email="ana@example.com", password="x" * 12, region="ie")
        number = db.read(
            lambda conn: conn.execute(
                text("SELECT number FROM cards WHERE account_id = :a"), {"a": account["id"]}
            ).scalar(),
            name="test.card",
        )

        def earn_with_key_k1():  # the same request, sent again by a retrying till
            return ledger.earn(card=number, store_code="IE-DUB-01", amount_minor=1000,
                               currency="EUR", idempotency_key="k1", staff_id=None)

        with answer_lost(app):
            receipt = earn_with_key_k1()
        assert (receipt.coins, receipt.balance, receipt.replayed) == (10, 10, False)
        again = earn_with_key_k1()
        assert (again.transaction_id, again.replayed) == (receipt.transaction_id, True)
        rows = db.read(
            lambda conn: conn.execute(text("SELECT COUNT(*) FROM ledger")).scalar(), name="t"
        )
    assert rows == 1


def test_an_earn_that_lost_its_answer_without_committing_replays_the_twin_that_did(make_app):
    # The till sent the request twice. The first's COMMIT answer is lost and it did NOT
    # commit; meanwhile the second commits. The first's retry finds a row under its key
    # that it did not write: that is the second's result, so it is a replay, although
    # this attempt followed a lost COMMIT answer.
    app = make_app()
    with app.app_context():
        ana = register(name="Ana", email="ana@example.com", password="x" * 12, region="ie")
        bo = register(name="Bo", email="bo@example.com", password="x" * 12, region="ie")
        numbers = {
            a["id"]: db.read(lambda conn, a=a: conn.execute(
                text("SELECT number FROM cards WHERE account_id = :a"), {"a": a["id"]}
            ).scalar(), name="test.card")
            for a in (ana, bo)
        }

    def earn(account, key):
        return ledger.earn(card=numbers[account["id"]], store_code="IE-DUB-01",
                           amount_minor=1000, currency="EUR", idempotency_key=key,
                           staff_id=None)

    dialect = router(app).cluster.members[0].engine.dialect
    original = dialect.do_commit
    others: dict[str, ledger.Receipt] = {}

    def twin_commits_instead(dbapi_connection) -> None:
        if others:  # the other requests' own commits
            original(dbapi_connection)
            return
        dbapi_connection.rollback()  # this attempt's row is gone...

        def other_requests():
            with app.app_context():
                # ...its id goes to another card's earn, and the twin gets the next one.
                others["bo"] = earn(bo, "b1")
                others["twin"] = earn(ana, "k1")

        others["started"] = None
        thread = threading.Thread(target=other_requests)
        thread.start()
        thread.join()
        raise sqlite3.OperationalError("lost connection to the database during COMMIT")

    dialect.do_commit = twin_commits_instead
    try:
        with app.app_context():
            receipt = earn(ana, "k1")
    finally:
        del dialect.do_commit
    twin = others["twin"]
    assert (twin.replayed, twin.balance) == (False, 10)
    assert (receipt.transaction_id, receipt.balance) == (twin.transaction_id, 10)
    assert receipt.replayed is True  # found after a lost answer, but not its own row
    assert router(app).stats.snapshot()["retries"] == {"commit_unknown": 1}
    with app.app_context():
        rows = db.read(lambda conn: conn.execute(
            text("SELECT COUNT(*) FROM ledger WHERE idempotency_key = 'k1'")).scalar(), name="t")
    assert rows == 1


def test_family_add_registration_and_removal_recognise_their_own_result(make_app):
    app = make_app()
    with app.app_context():
        with answer_lost(app):
            account = register(name="Ana", email="ana@example.com", password="x" * 12, region="ie")
        assert account["email"] == "ana@example.com"
        with answer_lost(app):
            added = family.add(account["id"], "Kid", None)
        assert added.replayed is False
        assert [m["display_name"] for m in family.members(account["id"])] == ["Kid"]
        with answer_lost(app):
            family.remove(account["id"], added.card["id"])  # no "No such family member"
        assert family.members(account["id"]) == []


def test_a_family_rename_whose_answer_was_lost_is_run_again_not_unknown(make_app):
    # Renaming sets the same values again: declared idempotent, the router runs it again
    # after the lost answer (and the second run matches the row the first one changed)
    # instead of telling the holder "we don't know if it happened".
    app = make_app()
    with app.app_context():
        account = register(name="Ana", email="ana@example.com", password="x" * 12, region="ie")
        added = family.add(account["id"], "Kid", None)
        with answer_lost(app) as lost:
            family.rename(account["id"], added.card["id"], "Robin", None)
        assert lost == [1]
        assert router(app).stats.snapshot()["retries"] == {"commit_unknown": 1}
        assert [m["display_name"] for m in family.members(account["id"])] == ["Robin"]
