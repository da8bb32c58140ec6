"""The rulebook's limits on staff, called as the till and the API call them.

- Where they book: a barista and a manager at their home store only, an admin at any
  store of their region (a global admin anywhere), and what each refusal says.
- A barista's two limits: the purchase limit (the store's own, else the configured one
  per currency) and the coins a barista may issue per hour (the store's own, else
  ``COINS_PER_BARISTA_HOUR``). Managers book above both; an amount that is not valid at
  all gets the ledger's 422, not a 403."""

from __future__ import annotations

import re
import time
import uuid
from datetime import timedelta

import pytest
from sqlalchemy import update

from tests.helpers import PASSWORD
from tests.ledger_helpers import assert_invariants, ledger_count, new_customer
from webapp.auth.services import register
from webapp.auth.tokens import Principal
from webapp.card import codes
from webapp.clock import utcnow
from webapp.database.schema import accounts, stores
from webapp.errors import (
    CardCodeRejected,
    Forbidden,
    PurchaseLimitExceeded,
    StaffLimitExceeded,
    StoreNotAllowed,
    ValidationFailed,
)
from webapp.extensions import db
from webapp.ledger import services as ledger
from webapp.staff import create_staff, home_store
from webapp.staff import services as staff

HOME = "US-NYC-01"  # USD, 1.00 a coin


def says(message: str) -> str:
    return f"^{re.escape(message)}$"


def _principal(account: dict) -> Principal:
    return Principal(account["id"], account["role"], account["name"])


def _set_store(code: str, **values) -> None:
    db.write(lambda conn: conn.execute(update(stores).where(stores.c.code == code)
                                       .values(**values)), name="test.store")


@pytest.fixture
def people(app):
    with app.app_context():
        yield {
            "sam": _principal(create_staff(email="sam@example.com", store_code=HOME,
                                           name="Sam", password=PASSWORD)),
            "bo": _principal(create_staff(email="bo@example.com", store_code=HOME,
                                          name="Bo", password=PASSWORD)),
            "meg": _principal(create_staff(email="meg@example.com", store_code=HOME,
                                           name="Meg", password=PASSWORD, role="manager")),
            "card": new_customer("cleo@example.com", name="Cleo Customer"),
        }


def _earn(people, who: str, amount_minor: int, currency: str = "USD"):
    return staff.earn(people[who], card=people["card"]["number"], amount_minor=amount_minor,
                      currency=currency, key=uuid.uuid4().hex)


def _hourly_refusal(issued: int, limit: int) -> str:
    return says(f"You have issued {issued} coins in the last hour; the limit at this store "
                f"is {limit}. A manager must book this sale.")


def test_a_barista_issues_up_to_the_stores_hourly_limit_and_no_more(app, people):
    with app.app_context():
        _set_store(HOME, coins_per_hour=20)
        assert _earn(people, "sam", 1200).coins == 12
        assert _earn(people, "sam", 800).balance == 20  # exactly the limit
        with pytest.raises(StaffLimitExceeded, match=_hourly_refusal(20, 20)):
            _earn(people, "sam", 100)
        assert ledger_count() == 2
        # The limit is each barista's own; a manager books above it.
        assert _earn(people, "bo", 1500).coins == 15
        assert _earn(people, "meg", 5000).coins == 50
        # An hour later Sam's first sales no longer count.
        later = utcnow() + timedelta(hours=1, seconds=5)
        with pytest.MonkeyPatch.context() as patch:
            patch.setattr("webapp.staff.services.utcnow", lambda: later)
            assert _earn(people, "sam", 1900).coins == 19
        assert ledger_count() == 5
        assert assert_invariants()[people["card"]["wallet_id"]] == 104


def test_without_a_store_limit_the_configured_hourly_limit_applies(app, people, monkeypatch):
    with app.app_context():
        _set_store(HOME, coins_per_hour=None)
        monkeypatch.setitem(app.config, "COINS_PER_BARISTA_HOUR", 15)
        assert staff.coins_per_hour({"coins_per_hour": None}) == 15
        assert staff.coins_per_hour({"coins_per_hour": 0}) == 0  # a store may allow none
        with pytest.raises(StaffLimitExceeded, match=_hourly_refusal(0, 15)):
            _earn(people, "sam", 1600)
        assert _earn(people, "sam", 1500).coins == 15
        assert ledger_count() == 1


def test_invalid_amounts_get_the_ledgers_answer_not_a_limit(app, people):
    """Over both limits and not a valid amount at all: the barista is told what is wrong
    with the amount (422), not sent to a manager (403)."""
    with app.app_context():
        _set_store(HOME, coins_per_hour=1, max_purchase_minor=100)
        for amount in (0, -500, 100_000_001):
            with pytest.raises(ValidationFailed) as error:
                _earn(people, "sam", amount)
            assert list(error.value.errors) == ["amount"]
        with pytest.raises(ValidationFailed) as error:
            _earn(people, "sam", 100, currency="EUR")
        assert list(error.value.errors) == ["currency"]
        assert ledger_count() == 0


def test_a_stores_own_purchase_limit_applies_to_baristas(app, people):
    with app.app_context():
        _set_store(HOME, max_purchase_minor=2000)
        assert _earn(people, "sam", 2000).coins == 20  # exactly the limit
        with pytest.raises(PurchaseLimitExceeded, match=says(
                "Purchases above 20.00 USD must be booked by a manager.")):
            _earn(people, "sam", 2001)
        assert _earn(people, "meg", 9000).coins == 90
        assert ledger_count() == 2


def test_the_purchase_limit_of_a_currency(app):
    """The store's own limit counts in the store's currency only; otherwise the
    configured limit for the currency; none for a currency without one."""
    with app.app_context():
        usd_store = {"currency": "USD", "max_purchase_minor": 2000}
        assert staff.purchase_limit("USD", usd_store) == 2000
        default_usd = staff.purchase_limit("USD")
        assert default_usd == staff.purchase_limit("USD", {"currency": "USD",
                                                           "max_purchase_minor": None})
        assert default_usd == 50_000  # 500.00 USD
        assert staff.purchase_limit("EUR", usd_store) == staff.purchase_limit("EUR") == 50_000
        assert staff.purchase_limit("XXX") is None


# -- where each role books ---------------------------------------------------------


@pytest.fixture
def everyone(app):
    with app.app_context():
        ada = create_staff(email="ada@example.com", store_code="IE-DUB-01", name="Ada",
                           password=PASSWORD, role="admin")
        db.write(lambda conn: conn.execute(update(accounts).where(accounts.c.id == ada["id"])
                                           .values(admin_region="ie")), name="test.scope")
        yield {
            "sam": _principal(create_staff(email="sam@example.com", store_code="US-NYC-01",
                                           name="Sam", password=PASSWORD)),
            "meg": _principal(create_staff(email="meg@example.com", store_code="US-NYC-01",
                                           name="Meg", password=PASSWORD, role="manager")),
            "ada": _principal(ada),
            "gil": _principal(create_staff(email="gil@example.com", store_code="US-NYC-01",
                                           name="Gil", password=PASSWORD, role="admin")),
            "nina": _principal(register(name="Nina", email="nina@example.com",
                                        password=PASSWORD, region="us", role="staff",
                                        store_id=None)),
            "card": new_customer("cleo@example.com", name="Cleo Customer"),
        }


def _earn_at(people, who, store=None, currency="USD"):
    return staff.earn(people[who], card=people["card"]["number"], amount_minor=1000,
                      currency=currency, key=uuid.uuid4().hex, store=store)


def test_an_admin_books_at_any_store_of_their_region_and_no_other(app, everyone):
    people = everyone
    with app.app_context():
        assert _earn_at(people, "ada", currency="EUR").store_code == "IE-DUB-01"
        assert _earn_at(people, "ada", store="IE-DUB-01", currency="EUR").store_code == "IE-DUB-01"
        with pytest.raises(StoreNotAllowed, match=says("That store is outside your region.")):
            _earn_at(people, "ada", store="US-SEA-01")
        with pytest.raises(ValidationFailed) as error:
            _earn_at(people, "ada", store="XX-NOPE-1")
        assert error.value.errors == {"store": ["Unknown store."]}
        # A global admin: any store, in its currency.
        assert _earn_at(people, "gil", store="IE-DUB-01", currency="EUR").store_code == "IE-DUB-01"
        assert _earn_at(people, "gil", store="US-SEA-01").store_code == "US-SEA-01"
        assert _earn_at(people, "gil").store_code == "US-NYC-01"
        assert ledger_count() == 5


def test_baristas_and_managers_book_at_their_home_store_only(app, everyone):
    people = everyone
    with app.app_context():
        assert _earn_at(people, "sam", store="US-NYC-01").store_code == "US-NYC-01"
        for who in ("sam", "meg"):
            with pytest.raises(StoreNotAllowed, match=says(
                    "You can book only at the store you work at (US-NYC-01).")):
                _earn_at(people, who, store="US-SEA-01")
        # Without a home store: nothing to book at, named or not.
        with pytest.raises(StoreNotAllowed, match=says(
                "You can book only at the store you work at.")):
            _earn_at(people, "nina", store="US-SEA-01")
        with pytest.raises(Forbidden, match=says(staff.NO_STORE)):
            _earn_at(people, "nina")
        with pytest.raises(Forbidden, match=says(staff.NO_STORE)):
            staff.working_store(people["nina"])
        assert staff.working_store(people["meg"])["code"] == "US-NYC-01"
        assert ledger_count() == 1


def test_an_admin_redeems_at_a_named_store_and_home_stores_are_known(app, everyone):
    people = everyone
    with app.app_context():
        card = people["card"]["number"]
        _earn_at(people, "gil", store="IE-DUB-01", currency="EUR")
        spent = staff.redeem(people["gil"], card=card, coins=4, key=uuid.uuid4().hex,
                             confirmed=True, store="IE-DUB-01")
        assert (spent.store_code, spent.region, spent.coins) == ("IE-DUB-01", "ie", -4)
        assert home_store(people["sam"].account_id)["code"] == "US-NYC-01"
        assert home_store(people["nina"].account_id) is None
        assert home_store(999_999) is None


def test_the_largest_amount_is_above_a_baristas_purchase_limit(app, people):
    """MAX_AMOUNT_MINOR is a valid amount, so the purchase limit (not the hourly one, not
    the ledger) is what sends it to a manager."""
    with app.app_context():
        with pytest.raises(PurchaseLimitExceeded, match=says(
                "Purchases above 500.00 USD must be booked by a manager.")):
            _earn(people, "sam", 100_000_000)
        assert ledger_count() == 0


def test_a_regional_admin_books_at_another_store_of_their_region(app, everyone):
    # Not their home store, so the rulebook checks the named store's region.
    with app.app_context():
        una = create_staff(email="una@example.com", store_code="US-NYC-01", name="Una",
                           password=PASSWORD, role="admin")
        db.write(lambda conn: conn.execute(update(accounts).where(accounts.c.id == una["id"])
                                           .values(admin_region="us")), name="test.scope")
        everyone["una"] = _principal(una)
        assert _earn_at(everyone, "una", store="US-SEA-01").store_code == "US-SEA-01"
        with pytest.raises(StoreNotAllowed, match=says("That store is outside your region.")):
            _earn_at(everyone, "una", store="IE-DUB-01", currency="EUR")
        assert ledger_count() == 1


def test_text_that_is_no_card_is_the_rulebooks_field_error_on_every_action(app, people):
    not_a_card = {"card": ["That is not a card number or card QR code."]}
    with app.app_context():
        for action in (
            lambda: staff.earn(people["sam"], card="hello", amount_minor=1000, currency="USD",
                               key=uuid.uuid4().hex),
            lambda: staff.redeem(people["sam"], card="hello", coins=1, key=uuid.uuid4().hex,
                                 confirmed=True),
            lambda: staff.lookup(people["sam"], "hello", by_number=True),
        ):
            with pytest.raises(ValidationFailed) as error:
                action()
            assert error.value.errors == not_a_card
        assert ledger_count() == 0


def test_a_lookup_says_how_the_card_was_scanned_and_by_number_outlives_the_code(app, people):
    card = people["card"]
    with app.app_context():
        typed = staff.lookup(people["sam"], card["number"])
        assert (typed.last4, typed.rotating, typed.own_wallet) == (card["number"][-4:], False,
                                                                    False)
        live = staff.lookup(people["sam"], codes.rotating_payload(card["number"], card["secret"]))
        assert live.rotating is True
        # After an action the till shows the card again by the code it scanned, which may
        # have expired meanwhile: showing needs no proof of presence.
        expired = codes.rotating_payload(card["number"], card["secret"], now=time.time() - 300)
        with pytest.raises(CardCodeRejected):
            staff.lookup(people["sam"], expired)
        again = staff.lookup(people["sam"], expired, by_number=True)
        assert (again.last4, again.rotating) == (card["number"][-4:], True)


def test_only_till_keys_are_looked_up_unscoped(app, people):
    # A till form stored its key bare ("till-…"); any other bare key in the ledger is not
    # the staff member's earlier request, even when they send the same text.
    card = people["card"]["number"]
    with app.app_context():
        ledger.earn(card=card, store_code=HOME, amount_minor=1000, currency="USD",
                    idempotency_key="k-1", staff_id=people["sam"].account_id)
        booked = staff.earn(people["sam"], card=card, amount_minor=2000, currency="USD",
                            key="k-1")
        assert (booked.replayed, booked.coins, booked.balance) == (False, 20, 30)
        assert ledger_count() == 2


def test_no_rule_runs_for_someone_who_is_not_staff(app, people):
    customer = people["card"]["account"]
    with app.app_context():
        for principal in (None, _principal(customer)):
            with pytest.raises(Forbidden, match=says("This is for café staff.")):
                staff.earn(principal, card=people["card"]["number"], amount_minor=1000,
                           currency="USD", key=uuid.uuid4().hex)
        assert ledger_count() == 0
