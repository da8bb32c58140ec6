"""All SQL that moves or reads coins.

A balance changes only here, and only as one conditional UPDATE in the same
transaction as its ledger row: never read-then-write (Jepsen saw Lost Update on Galera
for exactly that), and ``balance + delta >= 0`` in the WHERE clause is what keeps a
wallet from going negative when two tills redeem at once.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import (
    BigInteger,
    Connection,
    String,
    and_,
    bindparam,
    exists,
    func,
    insert,
    select,
    update,
)

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
_APPLY_TO_WALLET_MYSQL = _APPLY_TO_WALLET.values(
    balance=func.last_insert_id(wallets.c.balance + bindparam("delta")))
_APPLY_TO_WALLET_RETURNING = _APPLY_TO_WALLET.returning(wallets.c.balance)
_WALLET_BALANCE = select(wallets.c.balance).where(wallets.c.id == bindparam("wallet_id"))
_INSERT_ENTRY = insert(ledger)
_CARD_BY_NUMBER = (
    select(cards, wallets.c.balance, accounts.c.name.label("account_name"))
    .join(wallets, wallets.c.id == cards.c.wallet_id)
    .join(accounts, accounts.c.id == cards.c.account_id)
    .where(cards.c.number == bindparam("number"), cards.c.slot.is_not(None))
)
_STORE_BY_CODE = select(stores).where(stores.c.code == bindparam("code"))

# What an earn or redeem needs before it books, in one statement (it was three, plus the
# rotating code's check): the entry already stored under the idempotency key, the store,
# and the active card with its wallet's balance and holder's name. Each part is a LEFT
# JOIN on a unique key from a one-row source, so the answer is always exactly one row,
# with NULLs for what does not exist. On Galera it also carries the causal barrier
# (webapp.database.routing.carry_causal_barrier).
# The one-row source carries the request's own values, which the joins then look up.
_REQUEST = select(bindparam("code", type_=String).label("store_code"),
                  bindparam("number", type_=String).label("card_number")).subquery("request")
_CONTEXT_COLUMNS = (
    select(ledger.c.id).where(ledger.c.idempotency_key == bindparam("key"))
    .scalar_subquery().label("replay_id"),
    stores.c.id.label("store_id"), stores.c.code.label("store_code"),
    stores.c.region.label("store_region"), stores.c.currency.label("store_currency"),
    stores.c.minor_per_coin.label("store_minor_per_coin"),
    cards.c.id.label("card_id"), cards.c.wallet_id, cards.c.account_id, cards.c.number,
    cards.c.display_name, cards.c.code_secret, cards.c.blocked_at, wallets.c.balance,
    accounts.c.name.label("account_name"),
)
_CONTEXT_FROM = (
    _REQUEST.outerjoin(stores, stores.c.code == _REQUEST.c.store_code)
    .outerjoin(cards.join(wallets, wallets.c.id == cards.c.wallet_id)
               .join(accounts, accounts.c.id == cards.c.account_id),
               and_(cards.c.number == _REQUEST.c.card_number, cards.c.slot.is_not(None)))
)
# A redemption by rotating code also asks whether each step the code may be for
# (codes.candidate_steps) was spent already.
_CODE_STEPS = 3
_STEPS_USED = [
    exists().where(used_codes.c.card_id == cards.c.id,
                   used_codes.c.step == bindparam(f"step{i}", type_=BigInteger)).label(f"used{i}")
    for i in range(_CODE_STEPS)
]

_EARN_CONTEXT = select(*_CONTEXT_COLUMNS).select_from(_CONTEXT_FROM)
_REDEEM_CONTEXT = select(*_CONTEXT_COLUMNS, *_STEPS_USED).select_from(_CONTEXT_FROM)

_STORE_FIELDS = {"store_id": "id", "store_code": "code", "store_region": "region",
                 "store_currency": "currency", "store_minor_per_coin": "minor_per_coin"}
_CARD_FIELDS = ("card_id", "wallet_id", "account_id", "number", "display_name",
                "code_secret", "blocked_at", "balance", "account_name")


@dataclass(frozen=True)
class Context:
    replay_id: int | None  # the entry stored under the key, if any
    store: dict[str, Any] | None  # id, code, region, currency, minor_per_coin
    card: dict[str, Any] | None  # the card_by_number fields an earn or redeem needs
    used_steps: frozenset[int]  # of the steps asked about, those already spent


def movement_context(conn: Connection, *, key: str, store_code: str, number: str | None,
                     steps: Sequence[int] = ()) -> Context:
    """One round trip for what :func:`webapp.ledger.services.earn` and ``redeem`` check
    first. ``number`` None (text that is no card number) finds no card; ``steps`` (at
    most three) are the rotating code's candidate steps, for a redemption."""
    params: dict[str, Any] = {"key": key, "code": store_code, "number": number}
    statement = _EARN_CONTEXT
    if steps:
        statement = _REDEEM_CONTEXT
        padded = list(steps)[:_CODE_STEPS] + [None] * (_CODE_STEPS - len(steps))
        params.update({f"step{i}": step for i, step in enumerate(padded)})
    row = conn.execute(statement, params).mappings().one()
    store = ({field: row[column] for column, field in _STORE_FIELDS.items()}
             if row["store_id"] is not None else None)
    card = ({("id" if f == "card_id" else f): row[f] for f in _CARD_FIELDS}
            if row["card_id"] is not None else None)
    used = frozenset(step for i, step in enumerate(steps[:_CODE_STEPS]) if row[f"used{i}"])
    return Context(row["replay_id"], store, card, used)


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


def apply_to_wallet(conn: Connection, wallet_id: int, delta: int, now: datetime) -> int | None:
    """Adds ``delta`` (negative to spend) unless that would go below zero; returns the new
    balance, or None when refused.

    The one place the dialects differ here, to learn the new balance without reading the
    row again (a SELECT was one round trip in eight of an earn):

    * MariaDB and MySQL have no ``UPDATE ... RETURNING``. ``SET balance =
      LAST_INSERT_ID(balance + :delta)`` stores the same value and hands it to the
      client in the UPDATE's own OK packet (the C API's ``mysql_insert_id()``,
      PyMySQL's ``lastrowid``), documented alike by MySQL and MariaDB. It is this
      session's value only, and the ledger INSERT after it sets its own.
    * SQLite (3.35+) returns it with ``RETURNING``.
    * Anything else: the UPDATE, then a SELECT of the row it holds locked.
    """
    params = {"wallet_id": wallet_id, "delta": delta, "now": now}
    if conn.dialect.name in ("mysql", "mariadb"):
        result = conn.execute(_APPLY_TO_WALLET_MYSQL, params)
        return int(result.lastrowid) if result.rowcount == 1 else None
    if conn.dialect.update_returning:
        return conn.execute(_APPLY_TO_WALLET_RETURNING, params).scalar()
    if conn.execute(_APPLY_TO_WALLET, params).rowcount != 1:
        return None
    return wallet_balance(conn, wallet_id)


def wallet_balance(conn: Connection, wallet_id: int) -> int | None:
    return conn.execute(_WALLET_BALANCE, {"wallet_id": wallet_id}).scalar()


def insert_entry(conn: Connection, **values: Any) -> int:
    return conn.execute(_INSERT_ENTRY, values).inserted_primary_key[0]


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
