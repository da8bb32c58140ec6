"""Where the rulebook books: a barista and a manager at their home store only, an admin at
any store of their region (a global admin anywhere), and what each refusal says."""

from __future__ import annotations

import re
import uuid

import pytest
from sqlalchemy import update

from tests.helpers import PASSWORD
from tests.ledger_helpers import ledger_count, new_customer
from webapp.auth.services import register
from webapp.auth.tokens import Principal
from webapp.database.schema import accounts
from webapp.errors import Forbidden, StoreNotAllowed, ValidationFailed
from webapp.extensions import db
from webapp.staff import create_staff
from webapp.staff import services as staff

pytestmark = pytest.mark.usefixtures("cheap_password_hashing")


def says(message: str) -> str:
    return f"^{re.escape(message)}$"


def _principal(account: dict) -> Principal:
    return Principal(account["id"], account["role"], account["name"])


@pytest.fixture
def people(app):
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


def _earn(people, who, store=None, currency="USD"):
    return staff.earn(people[who], card=people["card"]["number"], amount_minor=1000,
                      currency=currency, key=uuid.uuid4().hex, store=store)


def test_an_admin_books_at_any_store_of_their_region_and_no_other(app, people):
    with app.app_context():
        assert _earn(people, "ada", currency="EUR").store_code == "IE-DUB-01"
        assert _earn(people, "ada", store="IE-DUB-01", currency="EUR").store_code == "IE-DUB-01"
        with pytest.raises(StoreNotAllowed, match=says("That store is outside your region.")):
            _earn(people, "ada", store="US-SEA-01")
        with pytest.raises(ValidationFailed) as error:
            _earn(people, "ada", store="XX-NOPE-1")
        assert error.value.errors == {"store": ["Unknown store."]}
        # A global admin: any store, in its currency.
        assert _earn(people, "gil", store="IE-DUB-01", currency="EUR").store_code == "IE-DUB-01"
        assert _earn(people, "gil", store="US-SEA-01").store_code == "US-SEA-01"
        assert _earn(people, "gil").store_code == "US-NYC-01"
        assert ledger_count() == 5


def test_baristas_and_managers_book_at_their_home_store_only(app, people):
    with app.app_context():
        assert _earn(people, "sam", store="US-NYC-01").store_code == "US-NYC-01"
        for who in ("sam", "meg"):
            with pytest.raises(StoreNotAllowed, match=says(
                    "You can book only at the store you work at (US-NYC-01).")):
                _earn(people, who, store="US-SEA-01")
        # Without a home store: nothing to book at, named or not.
        with pytest.raises(StoreNotAllowed, match=says(
                "You can book only at the store you work at.")):
            _earn(people, "nina", store="US-SEA-01")
        with pytest.raises(Forbidden, match=says(staff.NO_STORE)):
            _earn(people, "nina")
        with pytest.raises(Forbidden, match=says(staff.NO_STORE)):
            staff.working_store(people["nina"])
        assert staff.working_store(people["meg"])["code"] == "US-NYC-01"
        assert ledger_count() == 1
