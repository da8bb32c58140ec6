"""Shared checks for tests that move coins: the invariants the product promises."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

from sqlalchemy import Engine, event, func, select

from webapp.auth.services import register
from webapp.card.queries import active_cards
from webapp.database.schema import ledger
from webapp.errors import OutcomeUnknown
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


@contextlib.contextmanager
def lost_commit_answer() -> Iterator[dict]:
    """The next transaction that appends a ledger row commits for real, and then the app
    is told the outcome is unknown (:class:`OutcomeUnknown`), as the database layer says
    when the connection drops after COMMIT was sent.

    This stands in for the real trigger (an acknowledgement-loss proxy in front of a
    Galera node, the router raising OutcomeUnknown) to test what the till and the API
    show the user; it goes through SQLAlchemy's public connection events, on every engine
    (SQLite, or each Galera member's). Yields a dict whose ``fired`` counts the losses.
    """
    state = {"armed": True, "fired": 0}
    flag = "loyalty_test_ledger_insert"

    def before_execute(conn, cursor, statement, parameters, context, executemany):
        if state["armed"] and statement.lstrip().upper().startswith("INSERT INTO LEDGER"):
            conn.info[flag] = True

    def on_commit(conn):
        if conn.info.pop(flag, False) and state["armed"]:
            state["armed"] = False
            state["fired"] += 1
            conn.connection.driver_connection.commit()  # it happened...
            raise OutcomeUnknown("The connection was lost after COMMIT was sent.")  # ...unheard

    def on_rollback(conn):
        conn.info.pop(flag, None)

    listeners = [("before_cursor_execute", before_execute), ("commit", on_commit),
                 ("rollback", on_rollback)]
    for name, listener in listeners:
        event.listen(Engine, name, listener)
    try:
        yield state
    finally:
        for name, listener in listeners:
            event.remove(Engine, name, listener)
