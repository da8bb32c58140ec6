"""SQL the staff rulebook reads before it lets an action through."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, bindparam, func, select

from webapp.auth.queries import SESSION_FAMILY, family_is_live, session_live_column
from webapp.database.schema import accounts, cards, ledger, stores, wallets

_STORE_COLUMNS = [column.label(f"store_{column.name}") for column in stores.c]
# Built once: these run before every till and API transaction (docs/performance.md).
# The staff record: one primary-key read joined to the home store.
_STAFF_RECORD = (
    select(accounts.c.id, accounts.c.role, accounts.c.name, accounts.c.admin_region,
           accounts.c.disabled_at, accounts.c.home_region,
           accounts.c.must_change_password, *_STORE_COLUMNS)
    .outerjoin(stores, stores.c.id == accounts.c.store_id)
    .where(accounts.c.id == bindparam("account_id"))
)
# Removed cards too: a family card retired yesterday still belongs to the same wallet,
# but only an active card can be booked on, which the ledger checks.
_CARD_OWNER = select(cards.c.account_id).where(cards.c.number == bindparam("number"))
_ENTRY_WITH_OWNER = (
    select(ledger.c.id, ledger.c.staff_id, ledger.c.wallet_id, ledger.c.store_id,
           ledger.c.region, wallets.c.account_id.label("wallet_owner"))
    .join(wallets, wallets.c.id == ledger.c.wallet_id)
    .where(ledger.c.id == bindparam("entry_id"))
)
# Uses ix_ledger_staff_created.
_COINS_SINCE = select(func.coalesce(func.sum(ledger.c.coins), 0)).where(
    ledger.c.staff_id == bindparam("staff_id"), ledger.c.created_at >= bindparam("since"),
    ledger.c.kind == "earn")


# What the rulebook reads before an earn or redeem, in one statement (it was a
# transaction of its own, and the device's session check another): the staff record,
# whether the device's session is live, the card's owner and, for a barista's earn,
# the coins they issued since ``since``.
_OWNER_COLUMN = _CARD_OWNER.scalar_subquery().label("card_owner")
_RULES_CONTEXT = _STAFF_RECORD.add_columns(session_live_column(), _OWNER_COLUMN)
_RULES_CONTEXT_HOURLY = _RULES_CONTEXT.add_columns(
    _COINS_SINCE.scalar_subquery().label("coins_since"))


@dataclass(frozen=True)
class RulesContext:
    record: dict[str, Any] | None  # as staff_record
    session_live: bool
    card_owner: int | None
    coins_since: int  # 0 unless asked


def rules_context(conn: Connection, account_id: int, *, family: str | None, number: str,
                  since: datetime | None = None) -> RulesContext:
    """One round trip for the rulebook's checks (see services._read_context). ``family``:
    the device (refresh-token family) whose session to check, None for none."""
    params = {"account_id": account_id, SESSION_FAMILY: family, "number": number}
    statement = _RULES_CONTEXT
    if since is not None:
        statement = _RULES_CONTEXT_HOURLY
        params.update(staff_id=account_id, since=since)
    row = conn.execute(statement, params).mappings().first()
    if row is None:  # no such account: the session is asked alone (it was erased too)
        live = family is None or family_is_live(conn, family)
        return RulesContext(None, live, None, 0)
    return RulesContext(_record(row), bool(row["session_live"]), row["card_owner"],
                        int(row["coins_since"]) if since is not None else 0)


def staff_record(conn: Connection, account_id: int) -> dict[str, Any] | None:
    """The account's role, scope and state, with its home store as ``store`` (or None)."""
    row = conn.execute(_STAFF_RECORD, {"account_id": account_id}).mappings().first()
    return _record(row) if row is not None else None


def _record(row) -> dict[str, Any]:
    record = {key: row[key] for key in ("id", "role", "name", "admin_region", "disabled_at",
                                        "home_region", "must_change_password")}
    store = {column.name: row[f"store_{column.name}"] for column in stores.c}
    record["store"] = store if store["id"] is not None else None
    return record


def home_store(conn: Connection, account_id: int) -> dict[str, Any] | None:
    """The store a staff account works at (accounts.store_id), or None."""
    record = staff_record(conn, account_id)
    return record["store"] if record else None


def card_owner(conn: Connection, number: str) -> int | None:
    """The account whose wallet a card number books on (the holder's, for a family card)."""
    return conn.execute(_CARD_OWNER, {"number": number}).scalar()


def entry_with_owner(conn: Connection, entry_id: int) -> dict[str, Any] | None:
    """A ledger entry's author (staff_id), store, and the account that owns its wallet."""
    row = conn.execute(_ENTRY_WITH_OWNER, {"entry_id": entry_id}).mappings().first()
    return dict(row) if row else None


def coins_earned_since(conn: Connection, staff_id: int, since: datetime) -> int:
    return int(conn.execute(_COINS_SINCE, {"staff_id": staff_id, "since": since}).scalar())
