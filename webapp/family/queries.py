"""SQL for family invites and members' own sign-ins."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import Connection, delete, insert, select, update

from webapp.database.schema import accounts, cards, family_invites, refresh_tokens

PENDING = (family_invites.c.used_at.is_(None), family_invites.c.revoked_at.is_(None))


def family_card(conn: Connection, account_id: int, card_id: int) -> dict[str, Any] | None:
    """An active family card (not the holder's own) of this account."""
    row = conn.execute(select(cards).where(
        cards.c.id == card_id, cards.c.account_id == account_id, cards.c.slot > 0,
    )).mappings().first()
    return dict(row) if row else None


def revoke_pending_invites(conn: Connection, card_id: int, now: datetime) -> int:
    return conn.execute(update(family_invites).where(
        family_invites.c.card_id == card_id, *PENDING).values(revoked_at=now)).rowcount


def insert_invite(conn: Connection, **values: Any) -> int:
    return conn.execute(insert(family_invites).values(**values)).inserted_primary_key[0]


def invite_by_hash(conn: Connection, token_hash: str) -> dict[str, Any] | None:
    row = conn.execute(select(family_invites).where(
        family_invites.c.token_hash == token_hash)).mappings().first()
    return dict(row) if row else None


def claim_invite(conn: Connection, invite_id: int, now: datetime) -> bool:
    """Single use: of two phones accepting at once, one matches the row."""
    return conn.execute(update(family_invites).where(
        family_invites.c.id == invite_id, *PENDING, family_invites.c.expires_at > now,
    ).values(used_at=now)).rowcount == 1


def set_invite_member(conn: Connection, invite_id: int, member_id: int) -> None:
    conn.execute(update(family_invites).where(family_invites.c.id == invite_id)
                 .values(member_account_id=member_id))


def member_of_card(conn: Connection, card_id: int) -> dict[str, Any] | None:
    row = conn.execute(select(accounts).where(
        accounts.c.member_card_id == card_id, accounts.c.role == "member")).mappings().first()
    return dict(row) if row else None


def delete_member(conn: Connection, member_id: int) -> bool:
    """The member's sign-in and its refresh tokens: the access token they hold no longer
    finds a card, and the refresh token no longer rotates."""
    conn.execute(delete(refresh_tokens).where(refresh_tokens.c.account_id == member_id))
    return conn.execute(delete(accounts).where(
        accounts.c.id == member_id, accounts.c.role == "member")).rowcount == 1


def pending_invites(conn: Connection, account_id: int, now: datetime) -> list[dict[str, Any]]:
    rows = conn.execute(select(family_invites).where(
        family_invites.c.account_id == account_id, *PENDING, family_invites.c.expires_at > now,
    )).mappings()
    return [dict(row) for row in rows]


def members_of_account(conn: Connection, account_id: int) -> list[dict[str, Any]]:
    """The member sign-ins on this account's family cards (email for the owner's list)."""
    rows = conn.execute(
        select(accounts.c.id, accounts.c.email, accounts.c.member_card_id)
        .join(cards, cards.c.id == accounts.c.member_card_id)
        .where(cards.c.account_id == account_id, accounts.c.role == "member")
    ).mappings()
    return [dict(row) for row in rows]
