"""One-tap rewards: the till's redeem panel offers the region's rewards as buttons and a
tap books the reward's price with the reward on the ledger row; the customer's card shows
"N coins to <next reward>" with a labelled <progress>; the API's redeem takes `reward`."""

from __future__ import annotations

import re

from sqlalchemy import insert, select

from tests.app.test_till import Till
from tests.helpers import PASSWORD, AuthActions
from tests.ledger_helpers import new_customer
from webapp.database.schema import ledger, rewards
from webapp.extensions import db
from webapp.ledger import services as ledger_services
from webapp.staff import catalogue, create_staff


def _reward(region: str, name: str, coins: int, *, active: bool = True) -> int:
    return db.write(lambda conn: conn.execute(insert(rewards).values(
        region=region, name=name, coins=coins, active=active, sort=0)
    ).inserted_primary_key[0], name="test")


def test_till_reward_button_card_progress_and_api(app, client):
    with app.app_context():
        coffee = _reward("us", "Coffee", 10)
        pastry = _reward("us", "Pastry", 25)
        chai = _reward("in", "Chai", 5)
        # Added later and cheaper: listed first all the same; a withdrawn one not at all.
        cookie = _reward("us", "Cookie", 5)
        _reward("us", "Withdrawn", 7, active=False)
        create_staff(email="sam.r@example.com", store_code="US-NYC-01", name="Sam",
                     password=PASSWORD)
        dana = new_customer("dana.r@example.com", name="Dana Demo")
        ledger_services.earn(card=dana["number"], store_code="US-NYC-01", amount_minor=3000,
                             currency="USD", idempotency_key="gift-rewards-1", staff_id=None)
    AuthActions(client).login("sam.r@example.com")
    till = Till(client, app)
    till.lookup(dana["number"])
    buttons = re.findall(r'<button type="submit" name="redeem-reward" value="(\d+)"[^>]*>'
                         r'([^<]*)</button>', till.last)
    assert [(int(v), t) for v, t in buttons] == [(cookie, "Cookie · 5 coins"),
                                                  (coffee, "Coffee · 10 coins"),
                                                  (pastry, "Pastry · 25 coins")]
    # Another region's reward is refused, nothing booked.
    data = {"redeem-card": dana["number"], "redeem-key": till.form_value("redeem-key"),
            "redeem-confirm": "y", "redeem-coins": ""}
    refused = till.post("/till/redeem", {**data, "redeem-reward": str(chai)})
    assert refused.status_code == 422
    assert "not offered at this store" in till.last
    answer = till.post("/till/redeem", {**data, "redeem-reward": str(coffee)})
    assert answer.status_code == 200, till.alert()
    assert "Redeemed 10 coins" in till.last
    with app.app_context():
        row = db.read(lambda conn: conn.execute(select(ledger).where(
            ledger.c.kind == "redeem")).mappings().one(), name="test", causal=True)
    assert (row["coins"], row["reward_id"]) == (-10, coffee)

    customer = app.test_client()
    AuthActions(customer).login("dana.r@example.com", "correct-horse-battery")
    page = customer.get("/card?fresh=1").get_data(as_text=True)
    # 30 - 10 = 20 coins: 5 to the pastry (25), as text and as a labelled progress bar.
    assert re.search(r'<label for="next-reward-progress"[^>]*>5 coins to Pastry</label>', page)
    assert re.search(r'<progress id="next-reward-progress" max="25" value="20">', page)

    token = client.post("/api/v1/auth/token", json={"email": "sam.r@example.com",
                                                    "password": PASSWORD}).get_json()
    headers = {"Authorization": f"Bearer {token['access_token']}",
               "Idempotency-Key": "api-reward-1"}
    body = {"kind": "redeem", "card": dana["number"], "confirm_static": True}
    both = app.test_client().post("/api/v1/transactions", headers=headers,
                                  json={**body, "coins": 3, "reward": coffee})
    assert both.status_code == 422
    booked = app.test_client().post("/api/v1/transactions", headers=headers,
                                    json={**body, "reward": coffee})
    assert booked.status_code == 201, booked.get_json()
    assert booked.get_json()["balance"] == 10


def test_the_next_reward_is_the_cheapest_the_balance_does_not_reach():
    cake, coffee, tea = ({"name": n, "coins": c} for n, c in (("Cake", 40), ("Coffee", 3),
                                                               ("Tea", 2)))
    offers = [cake, coffee, tea]  # as the catalogue's sort order lists them
    assert catalogue.next_reward(0, offers) == {**tea, "missing": 2, "percent": 0}
    # 2 of 3 coins: 66 %, rounded down (a bar never shows a reward as reached early).
    assert catalogue.next_reward(2, offers) == {**coffee, "missing": 1, "percent": 66}
    assert catalogue.next_reward(3, offers) == {**cake, "missing": 37, "percent": 7}
    assert catalogue.next_reward(39, offers) == {**cake, "missing": 1, "percent": 97}
    assert catalogue.next_reward(40, offers) is None
    assert catalogue.next_reward(5, []) is None
