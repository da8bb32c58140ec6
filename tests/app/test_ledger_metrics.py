"""The ledger's metrics are produced, and docs/operations.md names no metric the app
does not produce.

An in-memory metric reader is installed as this process's meter provider
(``tests.helpers.metric_reader``). Counters are cumulative over the whole test run, so
each check compares before and after.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest
from opentelemetry.sdk.metrics.export import InMemoryMetricReader

from tests.helpers import PASSWORD, metric_reader, metric_total
from tests.mail_helpers import verify_via_outbox
from webapp.staff import create_staff

ROOT = Path(__file__).resolve().parents[2]
@pytest.fixture
def reader() -> InMemoryMetricReader:
    return metric_reader()


def test_an_idempotent_replay_is_counted_once_and_moves_no_coins(app, client, reader):
    with app.app_context():
        create_staff(email="barista@example.com", store_code="IE-DUB-01", name="Aoife",
                     password=PASSWORD)
    client.post("/api/v1/auth/register", json={
        "name": "Ana", "email": "ana@example.com", "password": PASSWORD, "region": "ie"})
    verify_via_outbox(app.test_client(), "ana@example.com")
    customer = client.post("/api/v1/auth/token", json={"email": "ana@example.com",
                                                      "password": PASSWORD})
    staff = client.post("/api/v1/auth/token", json={"email": "barista@example.com",
                                                   "password": PASSWORD})
    me = client.get("/api/v1/me", headers={
        "Authorization": f"Bearer {customer.get_json()['access_token']}"}).get_json()
    headers = {"Authorization": f"Bearer {staff.get_json()['access_token']}",
               "Idempotency-Key": "metrics-earn-1"}
    body = {"kind": "earn", "card": me["cards"][0]["number"], "amount": "9.80",
            "currency": "EUR"}

    before = {name: metric_total(reader, name, kind="earn", region="ie") for name in (
        "loyalty.ledger.replays", "loyalty.ledger.transactions", "loyalty.ledger.coins")}
    first = client.post("/api/v1/transactions", json=body, headers=headers)
    assert first.status_code == 201, first.get_data(as_text=True)
    replays = [client.post("/api/v1/transactions", json=body, headers=headers)
               for _ in range(2)]
    assert [r.status_code for r in replays] == [200, 200]
    assert all(r.headers["Idempotent-Replayed"] == "true" for r in replays)

    after = {name: metric_total(reader, name, kind="earn", region="ie") for name in before}
    assert after["loyalty.ledger.replays"] - before["loyalty.ledger.replays"] == 2
    assert after["loyalty.ledger.transactions"] - before["loyalty.ledger.transactions"] == 1
    assert after["loyalty.ledger.coins"] - before["loyalty.ledger.coins"] == (
        first.get_json()["coins"])


def _names_in_code() -> tuple[set[str], set[str]]:
    """``loyalty.*`` names in webapp/: those passed to ``meter.create_*`` (metrics), and
    every other such string (span attributes, like ``loyalty.db.member``)."""
    instruments, literals = set(), set()
    for path in (ROOT / "webapp").rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)
                    and node.func.attr.startswith("create_") and node.args
                    and isinstance(node.args[0], ast.Constant)):
                instruments.add(str(node.args[0].value))
            elif isinstance(node, ast.Constant) and str(node.value).startswith("loyalty."):
                literals.add(node.value)
    return instruments, literals


def test_every_metric_the_operations_guide_names_is_produced():
    guide = (ROOT / "docs" / "operations.md").read_text()
    # Two dots at least: `loyalty.region` is a resource attribute, not the app's.
    named = set(re.findall(r"`(loyalty\.[a-z_]+\.[a-z_.]+)`", guide))
    instruments, literals = _names_in_code()
    assert {"loyalty.ledger.replays", "loyalty.db.retries"} <= named & instruments
    assert named <= instruments | literals, named - instruments - literals


def test_spending_reversing_and_expiring_count_the_coins_moved(app, reader):
    """Coins moved are counted as a positive number whatever the direction; a replayed
    redemption counts as a replay only; a movement booked outside the ledger's services
    (an expiry) counts the same way."""
    from tests.ledger_helpers import new_customer
    from webapp.ledger import services as ledger

    names = ("loyalty.ledger.replays", "loyalty.ledger.transactions", "loyalty.ledger.coins")

    def totals(kind: str, region: str) -> dict[str, int]:
        return {name: metric_total(reader, name, kind=kind, region=region) for name in names}

    def moved(before: dict[str, int], after: dict[str, int]) -> tuple[int, ...]:
        return tuple(after[name] - before[name] for name in names)

    with app.app_context():
        card = new_customer("metrics-redeem@example.com")["number"]
        ledger.earn(card=card, store_code="IE-DUB-01", amount_minor=2000, currency="EUR",
                    idempotency_key="metrics-redeem-earn", staff_id=None)
        before = {kind: totals(kind, "ie") for kind in ("redeem", "reversal")}
        for _ in range(2):
            spent = ledger.redeem(card=card, store_code="IE-DUB-01", coins=6,
                                  idempotency_key="metrics-redeem-1", staff_id=None,
                                  confirmed=True)
        ledger.reverse(transaction_id=spent.transaction_id,
                       idempotency_key="metrics-redeem-undo", staff_id=None)
        assert moved(before["redeem"], totals("redeem", "ie")) == (1, 1, 6)
        assert moved(before["reversal"], totals("reversal", "ie")) == (0, 1, 6)

        before = totals("expiry", "in")
        ledger.count_movement("expiry", "in", -7)
        assert moved(before, totals("expiry", "in")) == (0, 1, 7)
