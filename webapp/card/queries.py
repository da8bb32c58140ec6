"""SQL for cards and wallets as the customer sees them."""

from __future__ import annotations

from datetime import date, datetime
from typing import Any

from sqlalchemy import Connection, insert, select, update

from webapp.database.schema import cards, wallets

ACTIVE = cards.c.slot.is_not(None)


def active_cards(conn: Connection, account_id: int) -> list[dict[str, Any]]:
    rows = conn.execute(
        select(cards).where(cards.c.account_id == account_id, ACTIVE).order_by(cards.c.slot)
    ).mappings()
    return [dict(row) for row in rows]


def wallet_for_account(conn: Connection, account_id: int) -> dict[str, Any] | None:
    row = conn.execute(select(wallets).where(wallets.c.account_id == account_id)).mappings().first()
    return dict(row) if row else None


def insert_family_card(conn: Connection, **values: Any) -> int:
    return conn.execute(insert(cards).values(**values)).inserted_primary_key[0]


def rename_family_card(
    conn: Connection, account_id: int, card_id: int, name: str, birthday: date | None
) -> bool:
    result = conn.execute(
        update(cards)
        .where(cards.c.id == card_id, cards.c.account_id == account_id, ACTIVE,
               cards.c.slot > 0)
        .values(display_name=name, birthday=birthday)
    )
    return result.rowcount == 1


def retire_family_card(conn: Connection, account_id: int, card_id: int, now: datetime) -> bool:
    """Frees the slot but keeps the row: the ledger's history still names the card."""
    result = conn.execute(
        update(cards)
        .where(cards.c.id == card_id, cards.c.account_id == account_id, ACTIVE,
               cards.c.slot > 0)
        .values(slot=None, removed_at=now)
    )
    return result.rowcount == 1
