"""SQL for accounts, their wallet and first card, refresh tokens and mailed tokens."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import (
    Connection,
    String,
    and_,
    bindparam,
    case,
    exists,
    insert,
    literal_column,
    or_,
    select,
    update,
)

from webapp.database.schema import account_tokens, accounts, cards, refresh_tokens, wallets

from .emails import normalize_email


def account_by_email(conn: Connection, email: str) -> dict[str, Any] | None:
    """The account with this address, in whatever form it was typed."""
    query = select(accounts).where(accounts.c.email_key == normalize_email(email))
    row = conn.execute(query).mappings().first()
    return dict(row) if row else None


def account_by_id(conn: Connection, account_id: int) -> dict[str, Any] | None:
    row = conn.execute(select(accounts).where(accounts.c.id == account_id)).mappings().first()
    return dict(row) if row else None


def insert_account(conn: Connection, **values: Any) -> int:
    values["email_key"] = normalize_email(values["email"])
    return conn.execute(insert(accounts).values(**values)).inserted_primary_key[0]


def insert_wallet(conn: Connection, account_id: int, now: datetime) -> int:
    result = conn.execute(insert(wallets).values(account_id=account_id, balance=0, updated_at=now))
    return result.inserted_primary_key[0]


def insert_card(conn: Connection, **values: Any) -> int:
    return conn.execute(insert(cards).values(**values)).inserted_primary_key[0]


def insert_refresh_token(conn: Connection, **values: Any) -> None:
    conn.execute(insert(refresh_tokens).values(**values))


def spend_refresh_token(conn: Connection, token_hash: str, now: datetime) -> bool:
    """Marks a live token used. One conditional UPDATE, so two racing refreshes can't
    both win: exactly one sees a row change."""
    result = conn.execute(
        update(refresh_tokens)
        .where(
            refresh_tokens.c.token_hash == token_hash,
            refresh_tokens.c.used_at.is_(None),
            refresh_tokens.c.revoked_at.is_(None),
            refresh_tokens.c.expires_at > now,
        )
        .values(used_at=now)
    )
    return result.rowcount == 1


def refresh_token_by_hash(conn: Connection, token_hash: str) -> dict[str, Any] | None:
    row = (
        conn.execute(select(refresh_tokens).where(refresh_tokens.c.token_hash == token_hash))
        .mappings()
        .first()
    )
    return dict(row) if row else None


def revoke_token_family(conn: Connection, family_id: str, now: datetime) -> None:
    conn.execute(
        update(refresh_tokens)
        .where(refresh_tokens.c.family_id == family_id, refresh_tokens.c.revoked_at.is_(None))
        .values(revoked_at=now)
    )


# -- mailed tokens (verify, reset, email change) ------------------------------------


def insert_account_token(conn: Connection, **values: Any) -> None:
    conn.execute(insert(account_tokens).values(**values))


def account_token_by_hash(conn: Connection, token_hash: str) -> dict[str, Any] | None:
    row = (conn.execute(select(account_tokens).where(account_tokens.c.token_hash == token_hash))
           .mappings().first())
    return dict(row) if row else None


def spend_account_token(conn: Connection, token_id: int, now: datetime) -> bool:
    """Single use: one conditional UPDATE, so two clicks racing can't both win."""
    result = conn.execute(
        update(account_tokens)
        .where(account_tokens.c.id == token_id, account_tokens.c.used_at.is_(None),
               account_tokens.c.revoked_at.is_(None), account_tokens.c.expires_at > now)
        .values(used_at=now)
    )
    return result.rowcount == 1


def revoke_account_tokens(conn: Connection, account_id: int, purpose: str,
                          now: datetime) -> None:
    conn.execute(
        update(account_tokens)
        .where(account_tokens.c.account_id == account_id, account_tokens.c.purpose == purpose,
               account_tokens.c.used_at.is_(None), account_tokens.c.revoked_at.is_(None))
        .values(revoked_at=now)
    )


# -- account changes ----------------------------------------------------------------


def mark_verified(conn: Connection, account_id: int, now: datetime,
                  password_hash: str | None = None) -> None:
    values: dict[str, Any] = {"email_verified_at": now}
    if password_hash:
        values["password_hash"] = password_hash
    conn.execute(update(accounts).where(accounts.c.id == account_id).values(**values))


def set_password_hash(conn: Connection, account_id: int, password_hash: str) -> None:
    conn.execute(update(accounts).where(accounts.c.id == account_id)
                 .values(password_hash=password_hash))


def set_email(conn: Connection, account_id: int, email: str) -> None:
    conn.execute(update(accounts).where(accounts.c.id == account_id)
                 .values(email=email, email_key=normalize_email(email)))


def revoke_all_refresh_tokens(conn: Connection, account_id: int, now: datetime,
                              except_family: str | None = None) -> None:
    condition = [refresh_tokens.c.account_id == account_id, refresh_tokens.c.revoked_at.is_(None)]
    if except_family:
        condition.append(refresh_tokens.c.family_id != except_family)
    conn.execute(update(refresh_tokens).where(*condition).values(revoked_at=now))


def family_is_live(conn: Connection, family_id: str) -> bool:
    """A signed-in device: some token of its family not revoked. Signing it out (or
    erasing the account, which deletes the rows) makes this false."""
    query = (select(refresh_tokens.c.id)
             .where(refresh_tokens.c.family_id == family_id,
                    refresh_tokens.c.revoked_at.is_(None))
             .limit(1))
    return conn.execute(query).first() is not None


# The session check as a column of another statement (``session_live_column``): a page
# that reads the database anyway asks it in the same round trip instead of a
# transaction of its own (docs/performance.md). Bound as ``session_family``; None (no
# device to check: a token from before devices, a session just rotated) counts as live.
SESSION_FAMILY = "session_family"


def session_live_column(name: str = "session_live"):
    """1 while the bound family still has a refresh token that was not revoked (the
    same test as :func:`family_is_live`), else 0."""
    family = bindparam(SESSION_FAMILY, type_=String)
    live = or_(family.is_(None), exists().where(
        and_(refresh_tokens.c.family_id == family, refresh_tokens.c.revoked_at.is_(None))))
    return case((live, literal_column("1")), else_=literal_column("0")).label(name)
