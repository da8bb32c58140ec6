"""SQL for coin expiry: when a wallet was last active, and which wallets are due."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import Connection, bindparam, func, select

from webapp.database.schema import accounts, ledger, wallets
from webapp.ledger.kinds import ACTIVITY

# The newest activity row by id, as the history orders movements: every movement of a
# wallet updates its row, so they are serialized and a later one has the higher id. An
# index walk (ix_ledger_wallet_history, backwards) that stops at the first activity row,
# usually the first row, where MAX(created_at) would read all of the wallet's rows.
_LAST_ACTIVITY = (
    select(ledger.c.created_at)
    .where(ledger.c.wallet_id == bindparam("wallet_id"), ledger.c.kind.in_(ACTIVITY))
    .order_by(ledger.c.id.desc())
    .limit(1)
)
_WALLET = (
    select(wallets.c.balance, accounts.c.home_region)
    .join(accounts, accounts.c.id == wallets.c.account_id)
    .where(wallets.c.id == bindparam("wallet_id"))
)


def last_activity(conn: Connection, wallet_id: int) -> datetime | None:
    """The newest earn, redeem or adjustment on the wallet (anyone in the family)."""
    return conn.execute(_LAST_ACTIVITY, {"wallet_id": wallet_id}).scalar()


def wallet(conn: Connection, wallet_id: int) -> dict[str, Any] | None:
    """Balance and the holder's home region (where an expiry is dated)."""
    row = conn.execute(_WALLET, {"wallet_id": wallet_id}).mappings().first()
    return dict(row) if row else None


def home_region(conn: Connection, wallet_id: int) -> str | None:
    row = wallet(conn, wallet_id)
    return row["home_region"] if row else None


def wallets_inactive_since(conn: Connection, cutoff: datetime) -> list[dict[str, Any]]:
    """Wallets holding coins whose last activity is at or before ``cutoff``, by id.

    One pass over the ledger (a GROUP BY of every wallet's activity): fine for a daily
    job; each wallet is checked again, exactly, in its own transaction.
    """
    last = (
        select(ledger.c.wallet_id, func.max(ledger.c.created_at).label("last_activity"))
        .where(ledger.c.kind.in_(ACTIVITY))
        .group_by(ledger.c.wallet_id)
        .subquery()
    )
    query = (
        select(wallets.c.id, wallets.c.balance, last.c.last_activity)
        .join(last, last.c.wallet_id == wallets.c.id)
        .where(wallets.c.balance > 0, last.c.last_activity <= cutoff)
        .order_by(wallets.c.id)
    )
    return [dict(row) for row in conn.execute(query).mappings()]
