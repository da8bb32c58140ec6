"""Shared checks for tests that move coins: the invariants the product promises."""

from __future__ import annotations

from sqlalchemy import func, select

from webapp.auth.services import register
from webapp.card.queries import active_cards
from webapp.database.schema import ledger
from webapp.extensions import db
from webapp.ledger.queries import balances, ledger_sums


def assert_invariants() -> dict[int, int]:
    """Every wallet's balance equals the sum of its ledger and is never negative."""

    def read(conn):
        return balances(conn), ledger_sums(conn)

    wallet_balances, sums = db.read(read, name="test.invariants", causal=True)
    for wallet_id, balance in wallet_balances.items():
        assert balance >= 0, f"wallet {wallet_id} is negative: {balance}"
        assert balance == sums.get(wallet_id, 0), (
            f"wallet {wallet_id}: balance {balance} != ledger sum {sums.get(wallet_id, 0)}")
    return wallet_balances


def ledger_count() -> int:
    return db.read(lambda conn: conn.execute(select(func.count()).select_from(ledger)).scalar(),
                   name="test.count", causal=True)


def new_customer(email: str, name: str = "Test Customer") -> dict:
    """An account with its holder card; returns account, card number and wallet id."""
    account = register(name=name, email=email, password="correct-horse-battery", region="us")
    card = db.read(lambda conn: active_cards(conn, account["id"])[0], name="test.card")
    return {"account": account, "number": card["number"], "wallet_id": card["wallet_id"],
            "card_id": card["id"], "secret": card["code_secret"]}
