"""Console rules beyond the matrix: the audit log is append-only in the database, a role
change or disabled account takes effect on the next request, a stale store edit is
refused while a retried one is not, a blocked card is refused at the till, and an
adjustment's label reaches the customer's history. Last, what a staff member covers
(webapp.staff.roles), decided from the staff record alone: the console and the rulebook
both ask it."""

from __future__ import annotations

from datetime import datetime

import pytest
from sqlalchemy import delete, select, text, update
from sqlalchemy import exc as sa_exc

from tests.conftest import PASSWORD
from webapp.audit import record
from webapp.auth.services import register
from webapp.auth.tokens import Principal
from webapp.database.schema import accounts, audit_log, cards, stores
from webapp.errors import CardBlocked, Forbidden, PasswordChangeRequired, StaleEdit
from webapp.extensions import db
from webapp.ledger import services as ledger
from webapp.staff import console, create_staff, services
from webapp.staff.roles import ADMIN, BARISTA, MANAGER, Actor, actor_from, require


def _principal(account) -> Principal:
    return Principal(account["id"], account["role"], account["name"])


def test_audit_log_refuses_update_and_delete(app):
    with app.app_context():
        record(actor_id=1, actor_role="admin", action="store.update", event_key="k1")
        for statement in (update(audit_log).values(action="edited"), delete(audit_log)):
            with pytest.raises(sa_exc.DBAPIError, match="append-only"), \
                    db.engine.begin() as conn:
                conn.execute(statement)
        rows = db.read(lambda conn: conn.execute(select(audit_log)).mappings().all(),
                       name="test", causal=True)
        assert [(r["action"], r["event_key"]) for r in rows] == [("store.update", "k1")]
        # Recorded once even when the same event is recorded again (a replay).
        record(actor_id=1, actor_role="admin", action="store.update", event_key="k1")
        assert db.read(lambda conn: conn.execute(text("SELECT COUNT(*) FROM audit_log"))
                       .scalar(), name="test", causal=True) == 1


def test_disabled_or_demoted_staff_refused_on_next_request(app):
    with app.app_context():
        manager = create_staff(email="m@example.com", store_code="US-NYC-01", name="M",
                               password=PASSWORD, role="manager")
        principal = _principal(manager)  # the token still says "manager"
        assert console.list_staff(principal) == []
        db.write(lambda conn: conn.execute(update(accounts).where(
            accounts.c.id == manager["id"]).values(role="staff")), name="test")
        with pytest.raises(Forbidden):
            console.list_staff(principal)
        db.write(lambda conn: conn.execute(update(accounts).where(
            accounts.c.id == manager["id"]).values(disabled_at=accounts.c.created_at)),
            name="test")
        with pytest.raises(Forbidden, match="disabled"):
            services.working_store(principal)


def test_stale_store_edit_refused_and_own_retry_is_not_a_conflict(app):
    with app.app_context():
        admin = register(name="A", email="a@example.com", password=PASSWORD, region="us",
                         role="admin")
        store = db.read(lambda conn: conn.execute(select(stores).where(
            stores.c.code == "US-NYC-01")).mappings().one(), name="test")
        values = {k: store[k] for k in ("name", "region", "currency", "minor_per_coin")}
        first = console.update_store(_principal(admin), store["id"], store["version"],
                                     {**values, "name": "Edited once"})
        assert first["version"] == store["version"] + 1
        with pytest.raises(StaleEdit):
            console.update_store(_principal(admin), store["id"], store["version"],
                                 {**values, "name": "Edited by someone else"})


def test_blocked_card_refused_at_till_and_adjustment_label_in_history(app):
    with app.app_context():
        admin = register(name="A", email="a@example.com", password=PASSWORD, region="us",
                         role="admin")
        barista = create_staff(email="b@example.com", store_code="US-NYC-01", name="B",
                               password=PASSWORD)
        customer = register(name="C", email="c@example.com", password=PASSWORD, region="us")
        card = db.read(lambda conn: conn.execute(select(cards).where(
            cards.c.account_id == customer["id"])).mappings().one(), name="test")
        receipt = console.adjust(_principal(admin), customer["id"], coins=7,
                                 reason="Machine broke", label="Sorry, on us", key="adj-1")
        again = console.adjust(_principal(admin), customer["id"], coins=7,
                               reason="Machine broke", label="Sorry, on us", key="adj-1")
        assert again.transaction_id == receipt.transaction_id
        assert again.replayed
        history = ledger.history(card["wallet_id"], causal=True)
        assert [(h["kind"], h["coins"], h["label"]) for h in history] == [
            ("adjustment", 7, "Sorry, on us")]
        console.set_card_blocked(_principal(admin), card["id"], blocked=True,
                                 reason="Lost phone")
        with pytest.raises(CardBlocked):
            services.earn(_principal(barista), card=card["number"], amount_minor=500,
                          currency="USD", key="k-blocked")


# -- what a staff member covers, from the record alone (no database) ----------------

DUBLIN = {"id": 3, "code": "IE-DUB-01", "region": "ie"}
NYC = {"id": 1, "code": "US-NYC-01", "region": "us"}


def _actor(role, store=None, admin_region=None):
    return Actor(7, role, "Ada", store, admin_region)


def test_a_barista_and_a_manager_see_their_stores_region_and_store():
    for role in (BARISTA, MANAGER):
        actor = _actor(role, DUBLIN)
        assert (actor.region_scope(), actor.store_scope()) == ("ie", 3)
        # Without a store they see nothing: a region and a store id that match no row.
        lost = _actor(role)
        assert (lost.region_scope(), lost.store_scope()) == ("--", -1)


def test_an_admin_sees_their_region_or_everything():
    assert (_actor(ADMIN, NYC, "ie").region_scope(), _actor(ADMIN, NYC, "ie").store_scope()) \
        == ("ie", None)
    assert (_actor(ADMIN).region_scope(), _actor(ADMIN).store_scope()) == (None, None)


def test_who_runs_a_store():
    assert _actor(MANAGER, DUBLIN).covers_store(DUBLIN) is True
    assert _actor(MANAGER, DUBLIN).covers_store(NYC) is False
    assert _actor(MANAGER).covers_store(DUBLIN) is False
    assert _actor(BARISTA, DUBLIN).covers_store(DUBLIN) is False
    assert _actor(ADMIN, None, "ie").covers_store(DUBLIN) is True
    assert _actor(ADMIN, None, "ie").covers_store(NYC) is False
    assert _actor(ADMIN).covers_store(NYC) is True
    assert _actor(ADMIN).covers_store(None) is False


def test_region_cover_is_for_admins_only():
    assert _actor(ADMIN, None, "ie").covers_region("ie") is True
    assert _actor(ADMIN, None, "ie").covers_region("us") is False
    assert _actor(ADMIN).covers_region("us") is True
    assert _actor(MANAGER, DUBLIN).covers_region("ie") is False


def _record(**changes):
    record = {"id": 7, "role": MANAGER, "name": "Ada", "store": DUBLIN, "admin_region": None,
              "disabled_at": None, "must_change_password": False}
    return {**record, **changes}


def test_an_actor_comes_from_a_current_staff_record_only():
    assert actor_from(_record()) == Actor(7, MANAGER, "Ada", DUBLIN, None)
    for staff_record in (None, _record(role="customer"), _record(role="member")):
        with pytest.raises(Forbidden, match=r"^This is for café staff\.$"):
            actor_from(staff_record)
    with pytest.raises(Forbidden, match=r"^Your staff account is disabled; ask a manager\.$"):
        actor_from(_record(disabled_at=datetime(2026, 1, 1)))
    with pytest.raises(PasswordChangeRequired,
                       match=r"^Change your temporary password before you start\.$"):
        actor_from(_record(must_change_password=True))
    assert actor_from(_record(must_change_password=True), password_ok=True).role == MANAGER


def test_require():
    require(True)
    with pytest.raises(Forbidden, match=r"^You can't do that with your role\.$"):
        require(False)
    with pytest.raises(Forbidden, match=r"^Not you\.$"):
        require(False, "Not you.")
