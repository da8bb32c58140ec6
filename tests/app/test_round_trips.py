"""How many round trips a request costs: on this PyMySQL stack each one is a wake-up of
the database and most of a page's wall time (docs/performance.md), so a change that
adds one should fail here, not only show in a benchmark. Counted, not timed: every
statement (the causal barrier too) and every COMMIT/ROLLBACK the app sends."""

from __future__ import annotations

import uuid

import pytest

from tests.helpers import AuthActions, RoundTrips
from tests.ledger_helpers import assert_invariants, new_customer
from webapp.card import codes
from webapp.ledger import services as ledger

pytestmark = pytest.mark.usefixtures("cheap_password_hashing")

CARD_PAGE = 2  # the page's one statement + COMMIT (the session check folded into it)
EARN = 4  # (barrier +) one read, the wallet's UPDATE, the ledger row, COMMIT


@pytest.fixture
def trips(app):
    with RoundTrips(app) as counter:
        yield counter


def _describe(sent: list[str]) -> str:
    return "\n".join(sent)


def test_card_page_and_its_refresh(app, client, trips):
    AuthActions(client).register()
    client.get("/card")  # the worker's first view of a card draws its QR: not counted
    with trips.counted() as sent:
        assert client.get("/card").status_code == 200
    print("card page", len(sent), _describe(sent))
    with trips.counted() as sent:
        response = client.get("/card?fresh=1", headers={"HX-Request": "true"})
        assert response.status_code == 200
    print("refresh", len(sent), _describe(sent))


def test_earn_and_redeem(app, trips):
    with app.app_context():
        customer = new_customer("rt@example.com")
        with trips.counted() as sent:
            ledger.earn(card=customer["number"], store_code="US-NYC-01", amount_minor=5000,
                        currency="USD", idempotency_key=uuid.uuid4().hex, staff_id=None)
        print("earn", len(sent), _describe(sent))
        with trips.counted() as sent:
            ledger.redeem(card=customer["number"], store_code="US-NYC-01", coins=2,
                          idempotency_key=uuid.uuid4().hex, staff_id=None, confirmed=True)
        print("redeem", len(sent), _describe(sent))
        payload = codes.rotating_payload(customer["number"], customer["secret"])
        with trips.counted() as sent:
            ledger.redeem(card=payload, store_code="US-NYC-01", coins=1,
                          idempotency_key=uuid.uuid4().hex, staff_id=None)
        print("redeem rotating", len(sent), _describe(sent))
        assert_invariants()
