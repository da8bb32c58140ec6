"""The rulebook's reversals, called as the till and the API call them: where a reversal
is booked, who needs a home store, what a refusal says, and an old till key's retry."""

from __future__ import annotations

import re
import uuid
from datetime import timedelta

import pytest
from sqlalchemy import update

from tests.ledger_helpers import assert_invariants, ledger_count, new_customer
from webapp.auth.services import register
from webapp.auth.tokens import Principal
from webapp.database.schema import accounts
from webapp.errors import AlreadyReversed, Conflict, Forbidden, NotFound, NotYourTransaction
from webapp.extensions import db
from webapp.ledger import queries
from webapp.ledger import services as ledger
from webapp.staff import create_staff
from webapp.staff import services as staff

PASSWORD = "correct-horse-battery"


def says(message: str) -> str:
    return f"^{re.escape(message)}$"


def _principal(account: dict) -> Principal:
    return Principal(account["id"], account["role"], account["name"])


@pytest.fixture
def people(app):
    with app.app_context():
        yield {
            "sam": create_staff(email="sam@example.com", store_code="US-NYC-01", name="Sam",
                                password=PASSWORD),
            "ada": create_staff(email="ada@example.com", store_code="IE-DUB-01", name="Ada",
                                password=PASSWORD, role="admin"),
            # Staff accounts whose store was removed from them (accounts.store_id NULL).
            "nina": register(name="Nina", email="nina@example.com", password=PASSWORD,
                             region="us", role="staff", store_id=None),
            "max": register(name="Max", email="max@example.com", password=PASSWORD,
                            region="us", role="admin", store_id=None),
            "card": new_customer("cleo@example.com", name="Cleo Customer"),
        }


def _sale(people, by: str, amount_minor: int = 1000, key: str | None = None):
    return ledger.earn(card=people["card"]["number"], store_code="US-NYC-01",
                       amount_minor=amount_minor, currency="USD",
                       idempotency_key=key or uuid.uuid4().hex, staff_id=people[by]["id"])


def test_a_reversal_is_booked_at_the_reversing_staff_members_store(app, people):
    with app.app_context():
        sale = _sale(people, "sam")
        undone = staff.reverse(_principal(people["ada"]), transaction_id=sale.transaction_id,
                               key=uuid.uuid4().hex)
        assert (undone.store_code, undone.region, undone.coins) == ("IE-DUB-01", "ie", -10)


def test_an_admin_without_a_store_reverses_at_the_sales_store(app, people):
    with app.app_context():
        sale = _sale(people, "sam")
        undone = staff.reverse(_principal(people["max"]), transaction_id=sale.transaction_id,
                               key=uuid.uuid4().hex)
        assert (undone.store_code, undone.region) == ("US-NYC-01", "us")
        assert assert_invariants()[people["card"]["wallet_id"]] == 0


def test_a_barista_without_a_store_cannot_reverse_even_their_own(app, people):
    with app.app_context():
        sale = _sale(people, "nina")
        with pytest.raises(Forbidden, match=says(staff.NO_STORE)):
            staff.reverse(_principal(people["nina"]), transaction_id=sale.transaction_id,
                          key=uuid.uuid4().hex)
        assert ledger_count() == 1


def test_refusals_say_why(app, people):
    with app.app_context():
        sale = _sale(people, "sam")
        with pytest.raises(NotFound, match=says("No such transaction.")):
            staff.reverse(_principal(people["sam"]), transaction_id=sale.transaction_id + 99,
                          key=uuid.uuid4().hex)
        bo = create_staff(email="bo@example.com", store_code="US-NYC-01", name="Bo",
                          password=PASSWORD)
        with pytest.raises(NotYourTransaction,
                           match=says("You can only undo a transaction you made yourself.")):
            staff.reverse(_principal(bo), transaction_id=sale.transaction_id,
                          key=uuid.uuid4().hex)
        assert ledger_count() == 1


def test_a_till_key_from_before_scoping_replays_its_reversal(app, people):
    """A reversal the till stored under its old, unscoped key ("till-…") and retried
    after the upgrade finds that row instead of reversing again."""
    with app.app_context():
        sale = _sale(people, "sam")
        old_key = f"{staff.LEGACY_TILL_KEY_PREFIX}{uuid.uuid4().hex}"
        first = ledger.reverse(transaction_id=sale.transaction_id, idempotency_key=old_key,
                               staff_id=people["sam"]["id"], store_code="US-NYC-01")
        again = staff.reverse(_principal(people["sam"]), transaction_id=sale.transaction_id,
                              key=old_key)
        assert (again.transaction_id, again.replayed) == (first.transaction_id, True)
        with pytest.raises(AlreadyReversed):
            staff.reverse(_principal(people["sam"]), transaction_id=sale.transaction_id,
                          key=uuid.uuid4().hex)
        assert ledger_count() == 2


def test_a_manager_reverses_their_own_stores_sales_and_no_other_stores(app, people):
    """A manager's reach is their store: a sale of their store by any barista, yes; a
    sale of another store, no (and nothing is written)."""
    with app.app_context():
        manager = create_staff(email="mona@example.com", store_code="US-NYC-01", name="Mona",
                               password=PASSWORD, role="manager")
        elsewhere = create_staff(email="olaf@example.com", store_code="IE-DUB-01",
                                 name="Olaf", password=PASSWORD, role="manager")
        sale = _sale(people, "sam")
        with pytest.raises(NotYourTransaction,
                           match=says("A manager reverses only their own store's transactions.")):
            staff.reverse(_principal(elsewhere), transaction_id=sale.transaction_id,
                          key=uuid.uuid4().hex)
        assert ledger_count() == 1
        undone = staff.reverse(_principal(manager), transaction_id=sale.transaction_id,
                               key=uuid.uuid4().hex)
        assert (undone.store_code, undone.coins) == ("US-NYC-01", -10)
        assert assert_invariants()[people["card"]["wallet_id"]] == 0


def test_a_till_key_from_before_scoping_replays_its_redemption(app, people):
    """As for a reversal: a redemption stored under the till's old key and retried after
    the upgrade finds its row, and is booked in the staff member's name."""
    with app.app_context():
        _sale(people, "sam", amount_minor=2000)
        old_key = f"{staff.LEGACY_TILL_KEY_PREFIX}{uuid.uuid4().hex}"
        first = ledger.redeem(card=people["card"]["number"], store_code="US-NYC-01", coins=5,
                              idempotency_key=old_key, staff_id=people["sam"]["id"],
                              confirmed=True)
        again = staff.redeem(_principal(people["sam"]), card=people["card"]["number"],
                             coins=5, key=old_key, confirmed=True)
        assert (again.transaction_id, again.replayed) == (first.transaction_id, True)
        assert ledger_count() == 2
        assert assert_invariants()[people["card"]["wallet_id"]] == 15


def test_a_barista_undoes_their_own_redemption(app, people):
    """The redemption is booked in the barista's name, so it is theirs to undo."""
    with app.app_context():
        _sale(people, "sam", amount_minor=2000)
        spent = staff.redeem(_principal(people["sam"]), card=people["card"]["number"],
                             coins=5, key=uuid.uuid4().hex, confirmed=True)
        undone = staff.reverse(_principal(people["sam"]), transaction_id=spent.transaction_id,
                               key=uuid.uuid4().hex)
        assert (undone.kind, undone.coins, undone.balance) == ("reversal", 5, 20)


def test_an_admin_reverses_in_their_region_within_the_managers_window(app, people,
                                                                       monkeypatch):
    """An admin's reach is their region, and their window the manager's (longer than a
    barista's): a sale two days old is theirs to reverse, one in another region not."""
    with app.app_context():
        db.write(lambda conn: conn.execute(update(accounts).where(
            accounts.c.id == people["ada"]["id"]).values(admin_region="us")),
            name="test.scope")
        sale = _sale(people, "sam")
        created = db.read(lambda conn: queries.entry_by_id(conn, sale.transaction_id),
                          name="test.row", causal=True)["created_at"]
        later = created + app.config["REVERSAL_WINDOW"] + timedelta(days=1)
        monkeypatch.setattr("webapp.ledger.services.utcnow", lambda: later)
        undone = staff.reverse(_principal(people["ada"]), transaction_id=sale.transaction_id,
                               key=uuid.uuid4().hex)
        assert (undone.kind, undone.coins) == ("reversal", -10)
        irish = ledger.earn(card=people["card"]["number"], store_code="IE-DUB-01",
                            amount_minor=1000, currency="EUR", idempotency_key=uuid.uuid4().hex,
                            staff_id=people["sam"]["id"])
        with pytest.raises(NotYourTransaction, match=says(
                "That transaction is outside your region.")):
            staff.reverse(_principal(people["ada"]), transaction_id=irish.transaction_id,
                          key=uuid.uuid4().hex)
        assert ledger_count() == 3


def test_a_managers_window_is_longer_than_a_baristas(app, people, monkeypatch):
    """A sale older than the barista's window is still the store manager's to reverse,
    until the manager's window closes too."""
    with app.app_context():
        manager = _principal(create_staff(email="mona@example.com", store_code="US-NYC-01",
                                          name="Mona", password=PASSWORD, role="manager"))
        old, older = _sale(people, "sam"), _sale(people, "sam")

        def created(sale):
            return db.read(lambda conn: queries.entry_by_id(conn, sale.transaction_id),
                           name="test.row", causal=True)["created_at"]

        day_late = created(old) + app.config["REVERSAL_WINDOW"] + timedelta(days=1)
        monkeypatch.setattr("webapp.ledger.services.utcnow", lambda: day_late)
        assert staff.reverse(manager, transaction_id=old.transaction_id,
                             key=uuid.uuid4().hex).coins == -10
        too_late = created(older) + app.config["MANAGER_REVERSAL_WINDOW"] + timedelta(days=1)
        monkeypatch.setattr("webapp.ledger.services.utcnow", lambda: too_late)
        with pytest.raises(Conflict, match=says("This transaction is too old to reverse.")):
            staff.reverse(manager, transaction_id=older.transaction_id, key=uuid.uuid4().hex)
        assert ledger_count() == 3


def test_a_reversals_reason_is_kept_on_its_ledger_row(app, people):
    with app.app_context():
        sales = [_sale(people, "sam"), _sale(people, "sam")]
        with_reason = staff.reverse(_principal(people["sam"]),
                                    transaction_id=sales[0].transaction_id,
                                    key=uuid.uuid4().hex, reason="Wrong card")
        blank = staff.reverse(_principal(people["sam"]), transaction_id=sales[1].transaction_id,
                              key=uuid.uuid4().hex, reason="")
        rows = [db.read(lambda conn, r=r: queries.entry_by_id(conn, r.transaction_id),
                        name="test.row", causal=True) for r in (with_reason, blank)]
        assert [row["reason"] for row in rows] == ["Wrong card", None]
