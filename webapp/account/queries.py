"""SQL for the account page: devices, profile, export and erasure."""

from __future__ import annotations

from datetime import date, datetime
from typing import Any

from sqlalchemy import Connection, delete, func, select, update

from webapp.database.schema import (
    account_tokens,
    accounts,
    cards,
    ledger,
    refresh_tokens,
    stores,
    wallets,
    webauthn_challenges,
)


def devices(conn: Connection, account_id: int, now: datetime) -> list[dict[str, Any]]:
    """One row per signed-in device (a refresh-token family with a live token): its
    current token says where and on what it was last refreshed; the family's first
    token says when it signed in."""
    live = (select(refresh_tokens.c.family_id, refresh_tokens.c.created_at.label("last_used"),
                   refresh_tokens.c.region, refresh_tokens.c.user_agent)
            .where(refresh_tokens.c.account_id == account_id,
                   refresh_tokens.c.used_at.is_(None), refresh_tokens.c.revoked_at.is_(None),
                   refresh_tokens.c.expires_at > now)
            .order_by(refresh_tokens.c.created_at.desc()))
    rows = [dict(row) for row in conn.execute(live).mappings()]
    if not rows:
        return []
    started = dict(conn.execute(
        select(refresh_tokens.c.family_id, func.min(refresh_tokens.c.created_at))
        .where(refresh_tokens.c.account_id == account_id,
               refresh_tokens.c.family_id.in_([row["family_id"] for row in rows]))
        .group_by(refresh_tokens.c.family_id)).all())
    for row in rows:
        row["created"] = started.get(row["family_id"], row["last_used"])
    return rows


def all_device_rows(conn: Connection, account_id: int) -> list[dict[str, Any]]:
    query = (select(refresh_tokens.c.family_id, refresh_tokens.c.created_at,
                    refresh_tokens.c.expires_at, refresh_tokens.c.used_at,
                    refresh_tokens.c.revoked_at, refresh_tokens.c.region,
                    refresh_tokens.c.user_agent)
             .where(refresh_tokens.c.account_id == account_id).order_by(refresh_tokens.c.id))
    return [dict(row) for row in conn.execute(query).mappings()]


def revoke_family(conn: Connection, account_id: int, family_id: str, now: datetime) -> int:
    return conn.execute(
        update(refresh_tokens)
        .where(refresh_tokens.c.account_id == account_id,
               refresh_tokens.c.family_id == family_id, refresh_tokens.c.revoked_at.is_(None))
        .values(revoked_at=now)).rowcount


def update_profile(conn: Connection, account_id: int, name: str, birthday: date | None) -> None:
    """The holder's name is on the account and on their own card (slot 0)."""
    conn.execute(update(accounts).where(accounts.c.id == account_id).values(name=name))
    conn.execute(update(cards).where(cards.c.account_id == account_id, cards.c.slot == 0)
                 .values(display_name=name, birthday=birthday))


def all_cards(conn: Connection, account_id: int) -> list[dict[str, Any]]:
    query = (select(cards.c.id, cards.c.number, cards.c.display_name, cards.c.slot,
                    cards.c.birthday, cards.c.created_at, cards.c.removed_at)
             .where(cards.c.account_id == account_id).order_by(cards.c.id))
    return [dict(row) for row in conn.execute(query).mappings()]


def ledger_page(conn: Connection, wallet_id: int, after_id: int,
                limit: int) -> list[dict[str, Any]]:
    """Oldest first, with the card and store each entry names."""
    query = (
        select(ledger.c.id, ledger.c.kind, ledger.c.coins, ledger.c.balance_after,
               ledger.c.amount_minor, ledger.c.currency, ledger.c.region,
               ledger.c.created_at, ledger.c.reverses_id,
               cards.c.number.label("card_number"), stores.c.code.label("store_code"),
               stores.c.name.label("store_name"))
        .outerjoin(cards, cards.c.id == ledger.c.card_id)
        .outerjoin(stores, stores.c.id == ledger.c.store_id)
        .where(ledger.c.wallet_id == wallet_id, ledger.c.id > after_id)
        .order_by(ledger.c.id).limit(limit))
    return [dict(row) for row in conn.execute(query).mappings()]


def take_balance(conn: Connection, wallet_id: int, balance: int, now: datetime) -> bool:
    """Empties the wallet only if it still holds ``balance``: a till transaction that
    committed since it was read makes this change nothing, and the erasure runs again."""
    result = conn.execute(update(wallets)
                          .where(wallets.c.id == wallet_id, wallets.c.balance == balance)
                          .values(balance=0, updated_at=now))
    return result.rowcount == 1


def retire_cards(conn: Connection, account_id: int, now: datetime,
                 secrets_by_card: dict[int, str]) -> None:
    """Every card stops working and loses its holder's name and birthday. The rows stay:
    the ledger refers to them by id."""
    for card_id, secret in secrets_by_card.items():
        conn.execute(update(cards).where(cards.c.id == card_id, cards.c.account_id == account_id)
                     .values(slot=None, display_name="", birthday=None, code_secret=secret,
                             removed_at=func.coalesce(cards.c.removed_at, now)))


# Not an argon2 hash, so no password ever verifies against it.
UNUSABLE_PASSWORD = "!"  # noqa: S105


def blank_account(conn: Connection, account_id: int, now: datetime) -> None:
    # The lookup key is the address too: it goes with it.
    erased = f"erased-{account_id}@erased.invalid"
    conn.execute(update(accounts).where(accounts.c.id == account_id).values(
        email=erased, email_key=erased, name="", password_hash=UNUSABLE_PASSWORD,
        erased_at=now))


def delete_sign_in_data(conn: Connection, account_id: int) -> None:
    for table in (refresh_tokens, account_tokens, webauthn_challenges):
        conn.execute(delete(table).where(table.c.account_id == account_id))


def pending_addresses(conn: Connection, account_id: int) -> list[str]:
    query = select(account_tokens.c.email).where(account_tokens.c.account_id == account_id,
                                                 account_tokens.c.email.is_not(None))
    return [row[0] for row in conn.execute(query)]


def _has_ledger():
    return (select(ledger.c.id).join(wallets, wallets.c.id == ledger.c.wallet_id)
            .where(wallets.c.account_id == accounts.c.id).exists())


def unverified_before(conn: Connection, moment: datetime) -> list[int]:
    """Unverified accounts registered before ``moment`` whose wallet never moved."""
    query = select(accounts.c.id).where(
        accounts.c.email_verified_at.is_(None), accounts.c.erased_at.is_(None),
        accounts.c.created_at < moment, ~_has_ledger())
    return [row[0] for row in conn.execute(query)]


def delete_unverified(conn: Connection, account_id: int) -> bool:
    """Deletes an account that is still unverified and has no history (checked in the
    same statement, so one verified a moment ago stays), then its wallet and cards."""
    deleted = conn.execute(delete(accounts).where(
        accounts.c.id == account_id, accounts.c.email_verified_at.is_(None), ~_has_ledger()
    )).rowcount
    if not deleted:
        return False
    conn.execute(delete(cards).where(cards.c.account_id == account_id))
    conn.execute(delete(wallets).where(wallets.c.account_id == account_id))
    delete_sign_in_data(conn, account_id)
    return True


def delete_expired_sign_in_data(conn: Connection, now: datetime) -> int:
    """Refresh tokens and mailed links past their expiry: they can do nothing more."""
    deleted = conn.execute(delete(refresh_tokens).where(refresh_tokens.c.expires_at < now))
    links = conn.execute(delete(account_tokens).where(account_tokens.c.expires_at < now))
    return deleted.rowcount + links.rowcount
