"""What the console's actions look like to the customer: a redemption of a catalogue
reward is named on the card ("Redeem: Chai") and in the API's history, a support
adjustment shows its customer-facing label there (never the staff-only reason), and a
store made in the console is dated in its region's time zone, like a store made on the
command line. And the reward edit page: saves, refuses a stale or invalid edit."""

from __future__ import annotations

from sqlalchemy import insert, select

from tests.conftest import PASSWORD
from tests.helpers import AuthActions, csrf_token
from tests.ledger_helpers import new_customer
from webapp.auth.services import register
from webapp.auth.tokens import Principal
from webapp.database.schema import rewards, stores
from webapp.extensions import db
from webapp.ledger import services as ledger
from webapp.staff import console


def _admin() -> Principal:
    admin = register(name="A", email="a.view@example.com", password=PASSWORD, region="us",
                     role="admin")
    return Principal(admin["id"], admin["role"], admin["name"])


def test_card_history_names_the_reward_and_shows_the_adjustments_label(app, client):
    with app.app_context():
        admin = _admin()
        chai = db.write(lambda conn: conn.execute(insert(rewards).values(
            region="us", name="Chai", coins=4, active=True, sort=0)).inserted_primary_key[0],
            name="test")
        dana = new_customer("dana.view@example.com", name="Dana")
        ledger.earn(card=dana["number"], store_code="US-NYC-01", amount_minor=1000,
                    currency="USD", idempotency_key="view-earn", staff_id=None)
        ledger.redeem(card=dana["number"], store_code="US-NYC-01", coins=4,
                      idempotency_key="view-redeem", staff_id=None, confirmed=True,
                      reward_id=chai)
        console.adjust(admin, dana["account"]["id"], coins=3, reason="Cold coffee (staff)",
                       label="Sorry about the coffee", key="view-adjust")
    AuthActions(client).login("dana.view@example.com", "correct-horse-battery")
    page = client.get("/card?fresh=1").get_data(as_text=True)
    assert "Adjustment: Sorry about the coffee" in page
    assert "Redeem: Chai" in page
    assert "Cold coffee" not in page  # the reason is for staff
    # The API's history says the same to an app.
    token = client.post("/api/v1/auth/token", json={
        "email": "dana.view@example.com", "password": "correct-horse-battery"}).get_json()
    items = client.get("/api/v1/wallet/transactions", headers={
        "Authorization": f"Bearer {token['access_token']}"}).get_json()["items"]
    assert [(i["kind"], i["coins"], i["reward_id"], i["reward_name"], i["label"])
            for i in items] == [("adjustment", 3, None, None, "Sorry about the coffee"),
                                ("redeem", -4, chai, "Chai", None),
                                ("earn", 10, None, None, None)]
    assert "reason" not in items[0]


def test_a_store_made_in_the_console_has_its_regions_time_zone_and_locale(app):
    with app.app_context():
        made = console.create_store(_admin(), {
            "code": "IN-DEL-09", "name": "Delhi", "region": "in", "currency": "INR",
            "minor_per_coin": "5000"})
        row = db.read(lambda conn: conn.execute(select(stores).where(
            stores.c.id == made["id"])).mappings().one(), name="test", causal=True)
    assert (row["timezone"], row["locale"]) == ("Asia/Kolkata", "en_IN")


def _admin_and_chai(app) -> int:
    """The admin, and a reward of theirs to edit: its id."""
    with app.app_context():
        _admin()
        return db.write(lambda conn: conn.execute(insert(rewards).values(
            region="us", name="Chai", coins=4, active=True, sort=0)).inserted_primary_key[0],
            name="test")


def test_reward_edit_page_saves_refuses_a_stale_edit_and_retires_a_reward(app, client):
    chai = _admin_and_chai(app)
    AuthActions(client).login("a.view@example.com")
    page = client.get(f"/admin/rewards/{chai}").get_data(as_text=True)
    assert 'name="version" value="1"' in page
    form = {"csrf_token": csrf_token(page), "version": "1", "region": "us", "name": "Chai",
            "coins": "6", "sort": "0", "active": "0"}
    saved = client.post(f"/admin/rewards/{chai}", data=form)
    assert saved.status_code == 302
    # A second admin's form, made from version 1, is refused and changes nothing.
    stale = client.post(f"/admin/rewards/{chai}", data={**form, "coins": "9"})
    assert stale.status_code == 409
    assert "changed by someone else" in stale.get_data(as_text=True)
    bad = client.post(f"/admin/rewards/{chai}", data={**form, "version": "2", "coins": "0"})
    assert bad.status_code == 422
    assert "coin cost as a whole number above 0" in bad.get_data(as_text=True)
    with app.app_context():
        row = db.read(lambda conn: conn.execute(select(rewards).where(
            rewards.c.id == chai)).mappings().one(), name="test", causal=True)
    assert (row["coins"], row["active"], row["version"]) == (6, False, 2)
    assert client.get("/admin/rewards/999999").status_code == 404


def test_reward_edit_over_the_api(app, client):
    chai = _admin_and_chai(app)
    token = client.post("/api/v1/auth/token", json={
        "email": "a.view@example.com", "password": PASSWORD}).get_json()["access_token"]
    headers = {"Authorization": f"Bearer {token}"}
    body = {"version": 1, "region": "us", "name": "Masala chai", "coins": 5, "sort": 2,
            "active": False}
    saved = client.put(f"/api/v1/console/rewards/{chai}", json=body, headers=headers)
    assert saved.status_code == 200, saved.get_json()
    assert {k: saved.get_json()[k] for k in ("name", "coins", "active", "version")} == {
        "name": "Masala chai", "coins": 5, "active": False, "version": 2}
    stale = client.put(f"/api/v1/console/rewards/{chai}", json={**body, "coins": 8},
                       headers=headers)
    assert stale.status_code == 409
    assert stale.get_json()["type"].endswith("stale-edit")
    missing = client.put("/api/v1/console/rewards/999999", json=body, headers=headers)
    assert missing.status_code == 404
