"""All SQL that moves or reads coins.

A balance changes only here, and only as one conditional UPDATE in the same
transaction as its ledger row: never read-then-write (Jepsen saw Lost Update on Galera
for exactly that), and ``balance + delta >= 0`` in the WHERE clause is what keeps a
wallet from going negative when two tills redeem at once.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, bindparam, func, insert, select, update

from webapp.database.schema import (
    accounts,
    cards,
    ledger,
    rewards,
    stores,
    used_codes,
    wallets,
)

# The statements of an earn or redeem are built once: building a select() or update()
# and its cache key on every call cost more CPU than the round trip (docs/performance.md).
_ENTRY_BY_KEY = select(ledger.c.id).where(ledger.c.idempotency_key == bindparam("key"))
_APPLY_TO_WALLET = (
    update(wallets)
    .where(wallets.c.id == bindparam("wallet_id"), wallets.c.balance + bindparam("delta") >= 0)
    .values(balance=wallets.c.balance + bindparam("delta"), updated_at=bindparam("now"))
)
_WALLET_BALANCE = select(wallets.c.balance).where(wallets.c.id == bindparam("wallet_id"))
_INSERT_ENTRY = insert(ledger)
_CARD_BY_NUMBER = (
    select(cards, wallets.c.balance, accounts.c.name.label("account_name"))
    .join(wallets, wallets.c.id == cards.c.wallet_id)
    .join(accounts, accounts.c.id == cards.c.account_id)
    .where(cards.c.number == bindparam("number"), cards.c.slot.is_not(None))
)
_STORE_BY_CODE = select(stores).where(stores.c.code == bindparam("code"))


def entry_by_key(conn: Connection, key: str) -> dict[str, Any] | None:
    # Almost always absent (a new transaction), so ask for one column first: PyMySQL
    # parses the metadata of every column of a result, even an empty one.
    found = conn.execute(_ENTRY_BY_KEY, {"key": key}).first()
    return entry_by_id(conn, found.id) if found else None


def entry_by_legacy_key(conn: Connection, keys: Sequence[str],
                        staff_id: int | None) -> dict[str, Any] | None:
    """An entry stored under one of ``keys`` by ``staff_id`` (see services._replay)."""
    found = conn.execute(select(ledger.c.id).where(
        ledger.c.idempotency_key.in_(list(keys)), ledger.c.staff_id == staff_id)).first()
    return entry_by_id(conn, found.id) if found else None


def entry_by_id(conn: Connection, entry_id: int) -> dict[str, Any] | None:
    row = conn.execute(select(ledger).where(ledger.c.id == entry_id)).mappings().first()
    return dict(row) if row else None


def reversal_of(conn: Connection, entry_id: int) -> dict[str, Any] | None:
    row = conn.execute(select(ledger).where(ledger.c.reverses_id == entry_id)).mappings().first()
    return dict(row) if row else None


def apply_to_wallet(conn: Connection, wallet_id: int, delta: int, now: datetime) -> bool:
    """Adds ``delta`` (negative to spend) unless that would go below zero."""
    result = conn.execute(_APPLY_TO_WALLET, {"wallet_id": wallet_id, "delta": delta, "now": now})
    return result.rowcount == 1


def wallet_balance(conn: Connection, wallet_id: int) -> int | None:
    return conn.execute(_WALLET_BALANCE, {"wallet_id": wallet_id}).scalar()


def insert_entry(conn: Connection, **values: Any) -> int:
    return conn.execute(_INSERT_ENTRY, values).inserted_primary_key[0]


def code_already_used(conn: Connection, card_id: int, step: int) -> bool:
    query = select(used_codes.c.step).where(
        used_codes.c.card_id == card_id, used_codes.c.step == step
    )
    return conn.execute(query).first() is not None


def mark_code_used(conn: Connection, card_id: int, step: int, entry_id: int,
                   now: datetime) -> None:
    conn.execute(
        insert(used_codes).values(card_id=card_id, step=step, ledger_id=entry_id, created_at=now)
    )


def card_by_number(conn: Connection, number: str) -> dict[str, Any] | None:
    """An active card with its holder's first name and the shared balance."""
    row = conn.execute(_CARD_BY_NUMBER, {"number": number}).mappings().first()
    return dict(row) if row else None


def card_number(conn: Connection, card_id: int) -> str | None:
    return conn.execute(select(cards.c.number).where(cards.c.id == card_id)).scalar()


def store_by_code(conn: Connection, code: str) -> dict[str, Any] | None:
    row = conn.execute(_STORE_BY_CODE, {"code": code}).mappings().first()
    return dict(row) if row else None


def store_by_id(conn: Connection, store_id: int) -> dict[str, Any] | None:
    row = conn.execute(select(stores).where(stores.c.id == store_id)).mappings().first()
    return dict(row) if row else None


def all_stores(conn: Connection) -> list[dict[str, Any]]:
    return [dict(r) for r in conn.execute(select(stores).order_by(stores.c.code)).mappings()]


def history(conn: Connection, wallet_id: int, limit: int,
            before_id: int | None = None) -> list[dict[str, Any]]:
    """Newest first, with the card, store and reward names; ``before_id`` is the cursor."""
    query = (
        select(
            ledger,
            cards.c.display_name.label("card_name"),
            cards.c.number.label("card_number"),
            stores.c.name.label("store_name"),
            stores.c.code.label("store_code"),
            rewards.c.name.label("reward_name"),
        )
        .outerjoin(cards, cards.c.id == ledger.c.card_id)
        .outerjoin(stores, stores.c.id == ledger.c.store_id)
        .outerjoin(rewards, rewards.c.id == ledger.c.reward_id)
        .where(ledger.c.wallet_id == wallet_id)
        .order_by(ledger.c.id.desc())
        .limit(limit)
    )
    if before_id is not None:
        query = query.where(ledger.c.id < before_id)
    return [dict(row) for row in conn.execute(query).mappings()]


def ledger_sums(conn: Connection) -> dict[int, int]:
    """wallet id -> sum of its ledger; the invariant checks compare it with balances."""
    query = select(ledger.c.wallet_id, func.sum(ledger.c.coins)).group_by(ledger.c.wallet_id)
    return {wallet: int(total) for wallet, total in conn.execute(query)}


def balances(conn: Connection) -> dict[int, int]:
    return {wallet: int(balance) for wallet, balance in conn.execute(
        select(wallets.c.id, wallets.c.balance))}
