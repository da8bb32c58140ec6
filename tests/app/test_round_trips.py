"""How many round trips a request costs: on this PyMySQL stack each one is a wake-up of
the database and most of a page's wall time (docs/performance.md), so a change that
adds one should fail here, not only show in a benchmark. Counted, not timed: every
command the app sends from the test's thread (tests.helpers.RoundTrips), on SQLite and
on the Galera lab."""

from __future__ import annotations

import uuid

import pytest

from tests.helpers import PASSWORD, AuthActions, RoundTrips
from tests.ledger_helpers import assert_invariants, new_customer
from webapp.card import codes
from webapp.ledger import services as ledger
from webapp.staff import create_staff

# The card page and its refresh: one statement (cards, balance, history, rewards and the
# device's session check) and its COMMIT. Was 7: the session check's own transaction
# (2), the page (2), the rewards (3).
CARD_PAGE = 2
# The live poll: the card with the session check, the wallet's newest id, COMMIT. Was 5.
LIVE_POLL = 3
# An earn or a redeem by number: the key, store and card in one statement, the wallet's
# UPDATE (which returns the new balance), the ledger row, COMMIT; on Galera the causal
# barrier before them (a write keeps it as a statement of its own: routing.consistency).
# Was 8. A redeem by rotating code adds the spent code's row.
EARN = 4
REDEEM_BY_CODE = 5
# An earn or a redeem through the API (was 17, then 13): one transaction. The staff
# rulebook's read -- the barista, the device's session, their hourly total, the card's
# owner -- in one statement (1), the earn (its COMMIT included), and the audit row in the
# same transaction (1). Was: the session check and its COMMIT (2), the rulebook's three
# SELECTs and COMMIT (4), the earn, the audit row's probe, INSERT and COMMIT (3).
API_EARN = 1 + EARN + 1


@pytest.fixture
def trips(app):
    with RoundTrips(app) as counter:
        yield counter


def _shown(sent: list[str]) -> str:
    return f"{len(sent)} round trips:\n" + "\n".join(sent)


def test_card_page_its_refresh_and_live_poll(app, client, trips):
    AuthActions(client).register()
    client.get("/card")  # the worker's first view of a card draws its QR: not counted
    card_id = client.get_cookie("card").value
    with trips.counted() as sent:
        assert client.get("/card").status_code == 200
    assert len(sent) <= CARD_PAGE, _shown(sent)
    with trips.counted() as sent:  # a causal read (?fresh=1): the barrier rides along
        response = client.get("/card?fresh=1", headers={"HX-Request": "true"})
        assert response.status_code == 200
    assert len(sent) <= CARD_PAGE, _shown(sent)
    etag = client.get(f"/card/{card_id}/live").headers["ETag"]
    with trips.counted() as sent:  # what an open card costs while nothing changes
        response = client.get(f"/card/{card_id}/live", headers={"If-None-Match": etag})
        assert response.status_code == 304
    assert len(sent) <= LIVE_POLL, _shown(sent)


def test_earn_and_redeem(app, trips):
    barrier = 0 if trips.sqlite else 1  # Galera: a write's causal barrier
    with app.app_context():
        customer = new_customer("rt@example.com")
        with trips.counted() as sent:
            earned = ledger.earn(card=customer["number"], store_code="US-NYC-01",
                                 amount_minor=5000, currency="USD",
                                 idempotency_key=uuid.uuid4().hex, staff_id=None)
        assert (earned.coins, earned.balance) == (50, 50)
        assert len(sent) <= EARN + barrier, _shown(sent)
        with trips.counted() as sent:
            spent = ledger.redeem(card=customer["number"], store_code="US-NYC-01", coins=2,
                                  idempotency_key=uuid.uuid4().hex, staff_id=None,
                                  confirmed=True)
        assert spent.balance == 48
        assert len(sent) <= EARN + barrier, _shown(sent)
        payload = codes.rotating_payload(customer["number"], customer["secret"])
        with trips.counted() as sent:
            spent = ledger.redeem(card=payload, store_code="US-NYC-01", coins=48,
                                  idempotency_key=uuid.uuid4().hex, staff_id=None)
        assert spent.balance == 0  # the new balance comes back from the UPDATE, 0 too
        assert len(sent) <= REDEEM_BY_CODE + barrier, _shown(sent)
        assert assert_invariants()[customer["wallet_id"]] == 0


def test_earn_and_redeem_through_the_api(app, client, trips):
    barrier = 0 if trips.sqlite else 1  # Galera: the one transaction's causal barrier
    with app.app_context():
        customer = new_customer("rt-api@example.com")
        create_staff(email="barista-rt@example.com", store_code="IE-DUB-01", name="Aoife",
                     password=PASSWORD)
    token = client.post("/api/v1/auth/token", json={"email": "barista-rt@example.com",
                                                    "password": PASSWORD}).get_json()
    headers = {"Authorization": f"Bearer {token['access_token']}"}
    earn = {"kind": "earn", "card": customer["number"], "amount": "10.00", "currency": "EUR"}
    redeem = {"kind": "redeem", "card": customer["number"], "coins": 3, "confirm_static": True}
    for body, status in ((earn, 201), (redeem, 201)):
        with trips.counted() as sent:
            response = client.post("/api/v1/transactions", json=body,
                                   headers={**headers, "Idempotency-Key": uuid.uuid4().hex})
        assert response.status_code == status, response.get_data(as_text=True)
        assert len(sent) <= API_EARN + barrier, _shown(sent)
    with app.app_context():
        assert assert_invariants()[customer["wallet_id"]] == 7
