"""SQL for accounts, their wallet and first card, and refresh tokens."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import Connection, insert, select, update

from webapp.database.schema import accounts, cards, refresh_tokens, wallets

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
