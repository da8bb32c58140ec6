"""SQL for wallet passes: the card behind a pass, and Apple's device registrations."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import Connection, delete, insert, select, update

from webapp.database.schema import apple_pass_registrations as registrations
from webapp.database.schema import cards, wallets

_CARD = (
    select(cards.c.id, cards.c.account_id, cards.c.number, cards.c.display_name,
           cards.c.code_secret, cards.c.slot, cards.c.removed_at, wallets.c.balance,
           wallets.c.updated_at.label("wallet_updated_at"))
    .join(wallets, wallets.c.id == cards.c.wallet_id)
)


def card_for_pass(conn: Connection, card_id: int) -> dict[str, Any] | None:
    """The card with its wallet's balance, removed ones too (their pass is voided)."""
    row = conn.execute(_CARD.where(cards.c.id == card_id)).mappings().first()
    return dict(row) if row else None


def registration(conn: Connection, device_id: str, pass_type_id: str,
                 serial: str) -> dict[str, Any] | None:
    row = conn.execute(select(registrations).where(
        registrations.c.device_id == device_id, registrations.c.pass_type_id == pass_type_id,
        registrations.c.serial == serial)).mappings().first()
    return dict(row) if row else None


def insert_registration(conn: Connection, **values: Any) -> None:
    conn.execute(insert(registrations).values(**values))


def update_push_token(conn: Connection, device_id: str, pass_type_id: str, serial: str,
                      push_token: str, now: datetime) -> None:
    conn.execute(update(registrations).where(
        registrations.c.device_id == device_id, registrations.c.pass_type_id == pass_type_id,
        registrations.c.serial == serial).values(push_token=push_token, updated_at=now))


def delete_registration(conn: Connection, device_id: str, pass_type_id: str,
                        serial: str) -> int:
    return conn.execute(delete(registrations).where(
        registrations.c.device_id == device_id, registrations.c.pass_type_id == pass_type_id,
        registrations.c.serial == serial)).rowcount


def device_passes(conn: Connection, device_id: str, pass_type_id: str) -> list[dict[str, Any]]:
    """The passes a device registered, each with what says when it last changed."""
    rows = conn.execute(
        select(registrations.c.serial, cards.c.removed_at,
               wallets.c.updated_at.label("wallet_updated_at"))
        .join(cards, cards.c.id == registrations.c.card_id)
        .join(wallets, wallets.c.id == cards.c.wallet_id)
        .where(registrations.c.device_id == device_id,
               registrations.c.pass_type_id == pass_type_id)
        .order_by(registrations.c.serial)
    ).mappings()
    return [dict(row) for row in rows]


def push_targets(conn: Connection, pass_type_id: str,
                 since: datetime) -> list[dict[str, Any]]:
    """Registrations whose pass changed after ``since``: whom to push (docs/operations.md)."""
    rows = conn.execute(
        select(registrations.c.push_token, registrations.c.serial)
        .join(cards, cards.c.id == registrations.c.card_id)
        .join(wallets, wallets.c.id == cards.c.wallet_id)
        .where(registrations.c.pass_type_id == pass_type_id,
               (wallets.c.updated_at > since) | (cards.c.removed_at > since))
        .order_by(registrations.c.push_token, registrations.c.serial)
    ).mappings()
    return [dict(row) for row in rows]
