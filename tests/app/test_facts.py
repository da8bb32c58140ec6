"""Facts defined once (``webapp/config.py``) hold wherever they are used: the family slots
the database holds, the app's family limit under them, and the API's description of both."""

from __future__ import annotations

import pytest
from sqlalchemy import exc as sa_exc
from sqlalchemy import insert, select

from tests.ledger_helpers import new_customer
from webapp import create_app
from webapp.config import FAMILY_SLOTS
from webapp.database.schema import cards
from webapp.errors import FamilyFull
from webapp.extensions import db
from webapp.family import services as family


def test_a_family_limit_above_the_database_slots_is_refused_at_start():
    with pytest.raises(RuntimeError, match="FAMILY_LIMIT must be a whole number from 0 to"):
        create_app({"PROFILE": "test", "FAMILY_LIMIT": FAMILY_SLOTS + 1})


@pytest.mark.parametrize("limit", [-1, "4", True, None])
def test_a_family_limit_that_is_not_a_slot_count_is_refused_at_start(limit):
    with pytest.raises(RuntimeError, match="FAMILY_LIMIT"):
        create_app({"PROFILE": "test", "FAMILY_LIMIT": limit})


def _card_in_slot(holder: dict, slot: int) -> None:
    with db.engine.begin() as conn:
        row = conn.execute(select(cards).where(cards.c.id == holder["card_id"])).mappings().one()
        values = {**row, "slot": slot, "number": f"9{slot:011d}", "display_name": f"Slot {slot}"}
        values.pop("id")
        conn.execute(insert(cards).values(**values))


def test_the_migrated_database_holds_exactly_the_family_slots(app):
    with app.app_context():
        holder = new_customer("slots@example.com")
        _card_in_slot(holder, FAMILY_SLOTS)
        with pytest.raises(sa_exc.DBAPIError, match="slot_range"):
            _card_in_slot(holder, FAMILY_SLOTS + 1)


def test_a_lower_family_limit_is_enforced_under_the_slots(app):
    app.config["FAMILY_LIMIT"] = 2
    with app.app_context():
        holder = new_customer("two@example.com")
        account_id = holder["account"]["id"]
        family.add(account_id, "One", None)
        family.add(account_id, "Two", None)
        with pytest.raises(FamilyFull, match="at most 2 members"):
            family.add(account_id, "Three", None)


def test_the_api_describes_the_same_slots():
    app = create_app({"PROFILE": "test"})
    doc = app.test_client().get("/api/v1/openapi.json").get_json()
    schemas = doc["components"]["schemas"]
    assert schemas["FamilyMember"]["properties"]["slot"]["maximum"] == FAMILY_SLOTS
    assert schemas["Card"]["properties"]["slot"]["maximum"] == FAMILY_SLOTS
    with app.app_context():
        db.dispose()
