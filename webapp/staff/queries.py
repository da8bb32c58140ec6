"""SQL the staff rulebook reads before it lets an action through."""

from __future__ import annotations

from typing import Any

from sqlalchemy import Connection, bindparam, select

from webapp.database.schema import accounts, cards, ledger, stores, wallets

# Built once: these run before every till and API transaction (docs/performance.md).
_HOME_STORE = (select(stores).join(accounts, accounts.c.store_id == stores.c.id)
               .where(accounts.c.id == bindparam("account_id")))
# Removed cards too: a family card retired yesterday still belongs to the same wallet,
# but only an active card can be booked on, which the ledger checks.
_CARD_OWNER = select(cards.c.account_id).where(cards.c.number == bindparam("number"))
_ENTRY_WITH_OWNER = (
    select(ledger.c.id, ledger.c.staff_id, ledger.c.wallet_id,
           wallets.c.account_id.label("wallet_owner"))
    .join(wallets, wallets.c.id == ledger.c.wallet_id)
    .where(ledger.c.id == bindparam("entry_id"))
)


def home_store(conn: Connection, account_id: int) -> dict[str, Any] | None:
    """The store a staff account works at (accounts.store_id), or None: one joined query."""
    row = conn.execute(_HOME_STORE, {"account_id": account_id}).mappings().first()
    return dict(row) if row else None


def card_owner(conn: Connection, number: str) -> int | None:
    """The account whose wallet a card number books on (the holder's, for a family card)."""
    return conn.execute(_CARD_OWNER, {"number": number}).scalar()


def entry_with_owner(conn: Connection, entry_id: int) -> dict[str, Any] | None:
    """A ledger entry's author (staff_id) and the account that owns its wallet."""
    row = conn.execute(_ENTRY_WITH_OWNER, {"entry_id": entry_id}).mappings().first()
    return dict(row) if row else None
