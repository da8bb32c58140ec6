"""SQL for cards and wallets as the customer sees them."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

from sqlalchemy import (
    Connection,
    Integer,
    bindparam,
    func,
    insert,
    literal,
    null,
    select,
    type_coerce,
    union_all,
    update,
)

from webapp.auth.queries import SESSION_FAMILY, session_live_column
from webapp.database.schema import accounts, cards, ledger, rewards, stores, wallets

ACTIVE = cards.c.slot.is_not(None)


def active_cards(conn: Connection, account_id: int) -> list[dict[str, Any]]:
    rows = conn.execute(
        select(cards).where(cards.c.account_id == account_id, ACTIVE).order_by(cards.c.slot)
    ).mappings()
    return [dict(row) for row in rows]


def wallet_for_account(conn: Connection, account_id: int) -> dict[str, Any] | None:
    row = conn.execute(select(wallets).where(wallets.c.account_id == account_id)).mappings().first()
    return dict(row) if row else None


# The card page's two statements are built once: constructing a select() and its cache
# key on every request cost more CPU than sending it.
_CARDS_WITH_BALANCE = (
    select(cards.c.id, cards.c.number, cards.c.display_name, cards.c.code_secret,
           cards.c.slot, wallets.c.id.label("wallet_id"), wallets.c.balance,
           session_live_column())
    .join(wallets, wallets.c.id == cards.c.wallet_id)
    .where(cards.c.account_id == bindparam("account_id"), ACTIVE)
    .order_by(cards.c.slot)
)
_RECENT_ACTIVITY = (
    select(ledger.c.id, ledger.c.kind, ledger.c.coins, ledger.c.created_at,
           ledger.c.amount_minor, ledger.c.currency, ledger.c.region,
           cards.c.display_name.label("card_name"), stores.c.name.label("store_name"),
           stores.c.timezone.label("store_timezone"), ledger.c.label,
           rewards.c.name.label("reward_name"))
    .outerjoin(cards, cards.c.id == ledger.c.card_id)
    .outerjoin(stores, stores.c.id == ledger.c.store_id)
    # The customer reads what they redeemed ("Chai") and an adjustment's label, not
    # only "Redeem" / "Adjustment" (the reason stays staff-only).
    .outerjoin(rewards, rewards.c.id == ledger.c.reward_id)
    .where(ledger.c.wallet_id == bindparam("wallet_id"))
    .order_by(ledger.c.id.desc())
    .limit(bindparam("limit", type_=Integer))
)


_MEMBER_CARD_WITH_BALANCE = (
    select(cards.c.id, cards.c.number, cards.c.display_name, cards.c.code_secret,
           cards.c.slot, wallets.c.id.label("wallet_id"), wallets.c.balance,
           session_live_column())
    .join(wallets, wallets.c.id == cards.c.wallet_id)
    .join(accounts, accounts.c.member_card_id == cards.c.id)
    .where(accounts.c.id == bindparam("member_id"), accounts.c.role == "member", ACTIVE)
)
_MEMBER_ACTIVITY = _RECENT_ACTIVITY.where(ledger.c.card_id == bindparam("card_id"))
# The live card's version: the wallet's newest ledger row (one index probe on
# ix_ledger_wallet_history) and the balance, so any family member's earn shows.
_LIVE_VERSION = (
    select(wallets.c.balance,
           select(func.max(ledger.c.id)).where(ledger.c.wallet_id == wallets.c.id)
           .scalar_subquery().label("last_id"))
    .where(wallets.c.id == bindparam("wallet_id"))
)


def member_card_with_balance(conn: Connection, member_id: int,
                             session_family: str | None = None) -> list[dict[str, Any]]:
    """A member sign-in's one card (empty once revoked or the card was removed). Each
    row's ``session_live`` is the check of ``session_family`` (1 when None)."""
    rows = conn.execute(_MEMBER_CARD_WITH_BALANCE,
                        {"member_id": member_id, SESSION_FAMILY: session_family}).mappings()
    return [dict(row) for row in rows]


def member_activity(conn: Connection, wallet_id: int, card_id: int, limit: int
                    ) -> list[dict[str, Any]]:
    """A member's own transactions on the shared wallet."""
    rows = conn.execute(_MEMBER_ACTIVITY, {"wallet_id": wallet_id, "card_id": card_id,
                                           "limit": limit}).mappings()
    return [dict(row) for row in rows]


def live_version(conn: Connection, wallet_id: int) -> tuple[int, int]:
    row = conn.execute(_LIVE_VERSION, {"wallet_id": wallet_id}).first()
    return (row.balance, row.last_id or 0) if row else (0, 0)


def rotate_code_secret(conn: Connection, card_id: int, secret: str) -> None:
    """A new rotating-code secret: codes from a cached card or pass stop working."""
    conn.execute(update(cards).where(cards.c.id == card_id).values(code_secret=secret))


def _typed_null(column: Any) -> Any:
    # The union's column types come from its first SELECT: a typed NULL keeps the
    # result processing (SQLite's datetimes are text until the type parses them).
    return type_coerce(null(), column.type)


# The whole card page in one statement: the active cards with the shared balance and
# the session check (part 0), the newest ledger rows of their wallet (part 1) and the
# rewards of the holder's home region (part 2). Each statement costs a round trip and,
# on its own, a transaction with its COMMIT; on this PyMySQL stack a round trip is the
# price of a page (docs/performance.md).
_ACCOUNT_WALLETS = select(cards.c.wallet_id).where(
    cards.c.account_id == bindparam("account_id"), ACTIVE
)
_HISTORY_ROWS = (
    select(literal(1).label("part"), ledger.c.id, _typed_null(cards.c.number).label("number"),
           cards.c.display_name, _typed_null(cards.c.code_secret).label("code_secret"),
           _typed_null(cards.c.slot).label("slot"), ledger.c.wallet_id,
           _typed_null(wallets.c.balance).label("balance"), ledger.c.kind, ledger.c.coins,
           ledger.c.created_at, stores.c.name.label("store_name"), ledger.c.amount_minor,
           ledger.c.currency, ledger.c.region, stores.c.timezone.label("store_timezone"),
           ledger.c.label, rewards.c.name.label("reward_name"),
           type_coerce(null(), Integer).label("session_live"))
    .outerjoin(cards, cards.c.id == ledger.c.card_id)
    .outerjoin(stores, stores.c.id == ledger.c.store_id)
    .outerjoin(rewards, rewards.c.id == ledger.c.reward_id)
    .where(ledger.c.wallet_id.in_(_ACCOUNT_WALLETS))
    .order_by(ledger.c.id.desc())
    .limit(bindparam("limit", type_=Integer))
    .subquery("history")
)
# A reward's name, sort and coins ride in display_name, slot and coins.
_HOME_REWARDS = (
    select(literal(2).label("part"), rewards.c.id, _typed_null(cards.c.number),
           rewards.c.name, _typed_null(cards.c.code_secret), rewards.c.sort,
           _typed_null(ledger.c.wallet_id), _typed_null(wallets.c.balance),
           _typed_null(ledger.c.kind), rewards.c.coins, _typed_null(ledger.c.created_at),
           _typed_null(stores.c.name), _typed_null(ledger.c.amount_minor),
           _typed_null(ledger.c.currency), _typed_null(ledger.c.region),
           _typed_null(stores.c.timezone), _typed_null(ledger.c.label),
           _typed_null(rewards.c.name), type_coerce(null(), Integer))
    .select_from(rewards)
    .join(accounts, accounts.c.home_region == rewards.c.region)
    .where(accounts.c.id == bindparam("account_id"), rewards.c.active.is_(True))
)
_CARD_PAGE = union_all(
    select(literal(0).label("part"), cards.c.id, cards.c.number, cards.c.display_name,
           cards.c.code_secret, cards.c.slot, wallets.c.id.label("wallet_id"), wallets.c.balance,
           _typed_null(ledger.c.kind).label("kind"), _typed_null(ledger.c.coins).label("coins"),
           _typed_null(ledger.c.created_at).label("created_at"),
           _typed_null(stores.c.name).label("store_name"),
           _typed_null(ledger.c.amount_minor).label("amount_minor"),
           _typed_null(ledger.c.currency).label("currency"),
           _typed_null(ledger.c.region).label("region"),
           _typed_null(stores.c.timezone).label("store_timezone"),
           _typed_null(ledger.c.label).label("label"),
           _typed_null(rewards.c.name).label("reward_name"),
           session_live_column())
    .join(wallets, wallets.c.id == cards.c.wallet_id)
    .where(cards.c.account_id == bindparam("account_id"), ACTIVE),
    select(*_HISTORY_ROWS.c),
    _HOME_REWARDS,
)


@dataclass
class CardPage:
    cards: list[dict[str, Any]]  # by slot, each with the shared balance
    history: list[dict[str, Any]]  # newest first
    rewards: list[dict[str, Any]]  # the home region's active rewards, in catalogue order
    session_live: bool  # the session check's answer (True when none was asked)


def card_page(conn: Connection, account_id: int, limit: int,
              session_family: str | None = None) -> CardPage:
    """Active cards, the newest ``limit`` ledger rows of their wallet, the home region's
    rewards and the check of ``session_family``, in one round trip. When the cards do
    not share one wallet (never today) the history is for all of them: the caller checks.
    With no card there is no row to carry the check: ``session_live`` is False then."""
    page = CardPage([], [], [], False)
    params = {"account_id": account_id, "limit": limit, SESSION_FAMILY: session_family}
    for row in conn.execute(_CARD_PAGE, params).mappings():
        if row["part"] == 0:
            page.session_live = bool(row["session_live"])
            page.cards.append({k: row[k] for k in ("id", "number", "display_name",
                                                   "code_secret", "slot", "wallet_id",
                                                   "balance")})
        elif row["part"] == 1:
            page.history.append({
                "id": row["id"], "kind": row["kind"], "coins": row["coins"],
                "created_at": row["created_at"], "card_name": row["display_name"],
                "store_name": row["store_name"], "amount_minor": row["amount_minor"],
                "currency": row["currency"], "region": row["region"],
                "store_timezone": row["store_timezone"], "label": row["label"],
                "reward_name": row["reward_name"]})
        else:
            page.rewards.append({"id": row["id"], "name": row["display_name"],
                                 "coins": row["coins"], "sort": row["slot"]})
    page.cards.sort(key=lambda card: card["slot"])
    page.history.sort(key=lambda entry: entry["id"], reverse=True)
    page.rewards.sort(key=lambda reward: (reward["sort"], reward["coins"], reward["id"]))
    return page


def cards_with_balance(conn: Connection, account_id: int,
                       session_family: str | None = None) -> list[dict[str, Any]]:
    """Active cards, each row carrying the shared balance and the check of
    ``session_family`` (``session_live``, 1 when None).

    Only the columns the page shows: PyMySQL parses every column's metadata in Python,
    which made ``SELECT *`` the largest CPU cost of a card page (docs/performance.md).
    """
    rows = conn.execute(_CARDS_WITH_BALANCE,
                        {"account_id": account_id, SESSION_FAMILY: session_family}).mappings()
    return [dict(row) for row in rows]


def recent_activity(conn: Connection, wallet_id: int, limit: int) -> list[dict[str, Any]]:
    """The card page's history: newest first, just what one line of it shows (with the
    store's time zone: times are shown there)."""
    rows = conn.execute(_RECENT_ACTIVITY, {"wallet_id": wallet_id, "limit": limit}).mappings()
    return [dict(row) for row in rows]


def card_by_request(conn: Connection, account_id: int, request_id: str) -> dict[str, Any] | None:
    """The card a family add with this request id created, if any (removed ones too)."""
    row = conn.execute(
        select(cards).where(cards.c.account_id == account_id, cards.c.request_id == request_id)
    ).mappings().first()
    return dict(row) if row else None


def card_was_retired(conn: Connection, account_id: int, card_id: int) -> bool:
    row = conn.execute(
        select(cards.c.id).where(
            cards.c.id == card_id, cards.c.account_id == account_id, cards.c.slot.is_(None),
            cards.c.removed_at.is_not(None),
        )
    ).first()
    return row is not None


def insert_family_card(conn: Connection, **values: Any) -> int:
    return conn.execute(insert(cards).values(**values)).inserted_primary_key[0]


def rename_family_card(
    conn: Connection, account_id: int, card_id: int, name: str, birthday: date | None
) -> bool:
    return _update_family_card(conn, account_id, card_id, display_name=name, birthday=birthday)


def retire_family_card(conn: Connection, account_id: int, card_id: int, now: datetime) -> bool:
    """Frees the slot but keeps the row: the ledger's history still names the card."""
    return _update_family_card(conn, account_id, card_id, slot=None, removed_at=now)


def _update_family_card(conn: Connection, account_id: int, card_id: int, **values: Any) -> bool:
    """Changes one active family card of the account (never the holder's, slot 0)."""
    result = conn.execute(
        update(cards)
        .where(cards.c.id == card_id, cards.c.account_id == account_id, ACTIVE,
               cards.c.slot > 0)
        .values(**values)
    )
    return result.rowcount == 1


def home_region(conn: Connection, account_id: int) -> str | None:
    return conn.execute(select(accounts.c.home_region)
                        .where(accounts.c.id == account_id)).scalar()
