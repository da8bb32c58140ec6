"""An earn or redeem through the API is one transaction: the staff rulebook's read
(the staff record, the device's session, the hourly total, the card's owner) in one
statement, the ledger's statements, and the audit row (docs/performance.md). What each
folded check guarded must hold as before:

* a device signed out elsewhere is refused on its next request (401), nothing written;
* a disabled or demoted staff member is refused on the next request (403), nothing
  written;
* an operation that leaves the session check to its service and forgets it fails
  closed: its writes do not commit and its answer does not leave;
* the ledger row and its audit row commit together or not at all, and a replay is
  logged once.
"""

from __future__ import annotations

import uuid

import pytest
from sqlalchemy import func, select, text, update

from tests.helpers import PASSWORD
from tests.ledger_helpers import assert_invariants, new_customer
from webapp import audit
from webapp.api.openapi import operation
from webapp.database.schema import accounts, audit_log, ledger
from webapp.extensions import csrf, db
from webapp.staff import create_staff

API = "/api/v1"


def _counts(app) -> tuple[int, int]:
    """(ledger rows, audit rows)."""
    with app.app_context():
        return db.read(lambda conn: (
            conn.execute(select(func.count()).select_from(ledger)).scalar(),
            conn.execute(select(func.count()).select_from(audit_log)).scalar()),
            name="test.counts", causal=True)


def _sign_in(client, email: str) -> dict:
    pair = client.post(f"{API}/auth/token", json={"email": email, "password": PASSWORD})
    assert pair.status_code == 200, pair.get_data(as_text=True)
    return pair.get_json()


def _book(client, pair: dict, body: dict):
    return client.post(f"{API}/transactions", json=body, headers={
        "Authorization": f"Bearer {pair['access_token']}", "Idempotency-Key": uuid.uuid4().hex})


@pytest.fixture
def till(app):
    with app.app_context():
        customer = new_customer("cleo@example.com")
        barista = create_staff(email="sam@example.com", store_code="US-NYC-01", name="Sam",
                               password=PASSWORD)
    return customer, barista


def _earn(customer) -> dict:
    return {"kind": "earn", "card": customer["number"], "amount": "10.00", "currency": "USD"}


def _redeem(customer) -> dict:
    return {"kind": "redeem", "card": customer["number"], "coins": 1, "confirm_static": True}


def test_a_barista_signed_out_elsewhere_books_nothing(app, client, till):
    customer, _ = till
    phone, laptop = _sign_in(client, "sam@example.com"), _sign_in(client, "sam@example.com")
    assert _book(client, phone, _earn(customer)).status_code == 201
    # The phone's device is signed out; its access token has minutes left.
    assert client.post(f"{API}/auth/logout",
                       json={"refresh_token": phone["refresh_token"]}).status_code == 204
    before = _counts(app)
    for body in (_earn(customer), _redeem(customer)):
        response = _book(client, phone, body)
        assert response.status_code == 401, response.get_data(as_text=True)
        assert 'error="invalid_token"' in response.headers["WWW-Authenticate"]
    # Signed out is what it is told, before what else is wrong with the request.
    bad = _book(client, phone, {**_earn(customer), "amount": "-1"})
    assert bad.status_code == 401, bad.get_data(as_text=True)
    assert _counts(app) == before
    # The laptop's device was not signed out.
    assert _book(client, laptop, _earn(customer)).status_code == 201
    with app.app_context():
        assert assert_invariants()[customer["wallet_id"]] == 20


def test_a_disabled_or_demoted_barista_books_nothing(app, client, till):
    customer, barista = till
    pair = _sign_in(client, "sam@example.com")
    assert _book(client, pair, _earn(customer)).status_code == 201
    before = _counts(app)
    for change, words in (({"disabled_at": accounts.c.created_at}, "disabled"),
                          ({"disabled_at": None, "role": "customer"}, "staff")):
        with app.app_context():
            db.write(lambda conn, change=change: conn.execute(update(accounts).where(
                accounts.c.id == barista["id"]).values(**change)), name="test")
        for body in (_earn(customer), _redeem(customer)):
            response = _book(client, pair, body)  # the token still says "staff"
            assert response.status_code == 403, response.get_data(as_text=True)
            assert words in response.get_json()["detail"]
    assert _counts(app) == before


def test_an_operation_that_forgets_its_session_check_fails_closed(app, client, till):
    """An operation declared ``checks_session_itself`` whose service never checks: a
    signed-out device's write is refused before COMMIT, its read's answer never leaves."""

    @operation(summary="test", tag="till", access="staff", checks_session_itself=True,
               responses={204: None})
    def forgetful_write():
        db.write(lambda conn: audit.record_in(conn, actor_id=None, actor_role=None,
                                              action="refused", event_key=f"test:{marker}"),
                 name="test.write", idempotent=True)

    @operation(summary="test", tag="till", access="staff", checks_session_itself=True,
               responses={204: None})
    def forgetful_read():
        db.read(lambda conn: conn.execute(text("SELECT 1")).scalar(), name="test.read")

    csrf.exempt(forgetful_write)  # an API view, as the API blueprint's are
    app.add_url_rule(f"{API}/test-forgetful-write", view_func=forgetful_write,
                     endpoint="test_forgetful_write", methods=["POST"])
    app.add_url_rule(f"{API}/test-forgetful-read", view_func=forgetful_read,
                     endpoint="test_forgetful_read", methods=["GET"])
    pair = _sign_in(client, "sam@example.com")
    headers = {"Authorization": f"Bearer {pair['access_token']}"}
    marker = "live"
    assert client.post(f"{API}/test-forgetful-write", headers=headers).status_code == 204
    assert client.get(f"{API}/test-forgetful-read", headers=headers).status_code == 204
    client.post(f"{API}/auth/logout", json={"refresh_token": pair["refresh_token"]})
    marker = "signed-out"
    assert client.post(f"{API}/test-forgetful-write", headers=headers).status_code == 401
    assert client.get(f"{API}/test-forgetful-read", headers=headers).status_code == 401
    with app.app_context():
        keys = db.read(lambda conn: conn.execute(select(audit_log.c.event_key).where(
            audit_log.c.event_key.like("test:%"))).scalars().all(), name="test", causal=True)
    assert keys == ["test:live"]


def test_the_ledger_row_and_its_audit_row_commit_together(app, client, till, monkeypatch):
    customer, _ = till
    pair = _sign_in(client, "sam@example.com")
    key = uuid.uuid4().hex
    headers = {"Authorization": f"Bearer {pair['access_token']}", "Idempotency-Key": key}
    first = client.post(f"{API}/transactions", json=_earn(customer), headers=headers)
    assert first.status_code == 201
    again = client.post(f"{API}/transactions", json=_earn(customer), headers=headers)
    assert again.headers["Idempotent-Replayed"] == "true"
    with app.app_context():
        logged = db.read(lambda conn: conn.execute(select(audit_log.c.action).where(
            audit_log.c.event_key == f"ledger:{first.get_json()['id']}")).scalars().all(),
            name="test", causal=True)
    assert logged == ["earn"]  # once, for the replay too

    def audit_fails(**fields):
        raise RuntimeError("the audit log is unavailable")

    monkeypatch.setattr(audit, "_row", audit_fails)
    before = _counts(app)
    response = _book(client, pair, _earn(customer))
    assert response.status_code == 500
    assert _counts(app) == before  # no ledger row without its audit row
    with app.app_context():
        assert assert_invariants()[customer["wallet_id"]] == 10
