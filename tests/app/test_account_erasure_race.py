"""Erasure racing the till: till transactions on the account's cards while the owner
erases it. Each either lands before the erasure (and its coins are forfeited with the
rest) or is refused after; nothing is lost, doubled or half-done. On the Galera lab the
erasure runs on another node than the till, and afterwards every node agrees: balances
equal ledger sums, and the erased address is in no row of any table."""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor

import pytest
from sqlalchemy import select

from tests.conftest import galera_config
from tests.ledger_helpers import assert_invariants, new_customer
from webapp import create_app
from webapp.account import services as account_services
from webapp.database.schema import ledger
from webapp.errors import NotFound
from webapp.extensions import db
from webapp.ledger import services as ledger_services

EARNS = 12
EMAIL = "erase.me@example.com"


def _erasing_app(app, request):
    """On the lab: an app of another region, so the erasure commits on another node."""
    if not app.config.get("CLUSTER"):
        return app
    lab = request.getfixturevalue("galera_schema")
    return create_app({"PROFILE": "test", **galera_config(lab), "REGION": "ie",
                       "REGION_PREFERENCE": "ie,in,us"})


def test_till_transactions_racing_an_erasure_land_before_or_are_refused(app, request):
    with app.app_context():
        customer = new_customer(EMAIL, name="Erin Erased")
        ledger_services.earn(card=customer["number"], store_code="IE-DUB-01",
                             amount_minor=5000, currency="EUR", idempotency_key="race-0",
                             staff_id=None)
    eraser = _erasing_app(app, request)
    start = threading.Barrier(EARNS + 1)

    def earn(i: int):
        with app.app_context():
            start.wait(30)
            try:
                return ledger_services.earn(
                    card=customer["number"], store_code="IE-DUB-01", amount_minor=100 + i,
                    currency="EUR", idempotency_key=f"race-{i + 1}", staff_id=None)
            except NotFound:
                return None

    def erase():
        with eraser.app_context():
            start.wait(30)
            return account_services.erase_now(customer["account"]["id"])

    with ThreadPoolExecutor(EARNS + 1) as pool:
        earns = [pool.submit(earn, i) for i in range(EARNS)]
        forfeited = pool.submit(erase).result(timeout=120)
        receipts = [future.result(timeout=120) for future in earns]
    if eraser is not app:
        with eraser.app_context():
            db.dispose()

    landed = [r for r in receipts if r is not None]
    with app.app_context():
        entries = db.read(lambda conn: [dict(r) for r in conn.execute(
            select(ledger).where(ledger.c.wallet_id == customer["wallet_id"])).mappings()],
            name="test.ledger", causal=True)
        by_key = {e["idempotency_key"]: e for e in entries}
        # Every acknowledged earn is in the ledger; every refused one wrote nothing.
        assert {r.transaction_id for r in landed} <= {e["id"] for e in entries}
        assert len(entries) == 1 + len(landed) + 1
        erasure = by_key[f"erasure:{customer['wallet_id']}"]
        # What was forfeited is everything that landed, the first earn included.
        assert -erasure["coins"] == forfeited == 50 + sum(r.coins for r in landed)
        assert assert_invariants()[customer["wallet_id"]] == 0
        # After the erasure the card is unknown to the till.
        with pytest.raises(NotFound):
            ledger_services.lookup(customer["number"])
    print(f"\n{len(landed)} of {EARNS} racing earns landed before the erasure; "
          f"{forfeited} coins forfeited")

    if app.config.get("CLUSTER"):
        _every_node_agrees(request.getfixturevalue("galera_lab"))


def _every_node_agrees(lab) -> None:
    for node in range(3):
        with lab.admin_connect(node) as conn, conn.cursor() as cur:
            cur.execute("SET SESSION wsrep_sync_wait = 1")
            cur.execute(
                "SELECT w.id, w.balance, COALESCE(SUM(l.coins), 0) FROM loyalty.wallets w "
                "LEFT JOIN loyalty.ledger l ON l.wallet_id = w.id GROUP BY w.id, w.balance")
            for wallet, balance, total in cur.fetchall():
                assert balance == total, f"node {node}: wallet {wallet} {balance} != {total}"
            cur.execute("SELECT table_name FROM information_schema.tables "
                        "WHERE table_schema = 'loyalty' AND table_type = 'BASE TABLE'")
            for (table,) in cur.fetchall():
                cur.execute(f"SELECT * FROM loyalty.`{table}`")  # noqa: S608 - lab tables
                for row in cur.fetchall():
                    text = repr(row)
                    assert EMAIL not in text, f"node {node}: {table} still holds {row}"
                    assert "Erin Erased" not in text, f"node {node}: {table} holds {row}"
