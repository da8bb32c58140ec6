"""SQL for passkeys and their one-time challenges."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import Connection, delete, insert, select, update

from webapp.database.schema import passkeys, webauthn_challenges


def insert_challenge(conn: Connection, **values: Any) -> None:
    conn.execute(insert(webauthn_challenges).values(**values))


def spend_challenge(conn: Connection, challenge_hash: str, purpose: str,
                    account_id: int | None, now: datetime) -> bool:
    """Single use and short-lived: one conditional UPDATE decides."""
    condition = [
        webauthn_challenges.c.challenge_hash == challenge_hash,
        webauthn_challenges.c.purpose == purpose,
        webauthn_challenges.c.used_at.is_(None),
        webauthn_challenges.c.expires_at > now,
    ]
    if account_id is not None:
        condition.append(webauthn_challenges.c.account_id == account_id)
    result = conn.execute(update(webauthn_challenges).where(*condition).values(used_at=now))
    return result.rowcount == 1


def delete_challenges_before(conn: Connection, moment: datetime) -> int:
    return conn.execute(delete(webauthn_challenges)
                        .where(webauthn_challenges.c.expires_at < moment)).rowcount


def passkeys_of(conn: Connection, account_id: int) -> list[dict[str, Any]]:
    query = select(passkeys).where(passkeys.c.account_id == account_id).order_by(passkeys.c.id)
    return [dict(row) for row in conn.execute(query).mappings()]


def passkey_by_hash(conn: Connection, credential_hash: str) -> dict[str, Any] | None:
    row = conn.execute(select(passkeys).where(passkeys.c.credential_hash == credential_hash)
                       ).mappings().first()
    return dict(row) if row else None


def insert_passkey(conn: Connection, **values: Any) -> int:
    return conn.execute(insert(passkeys).values(**values)).inserted_primary_key[0]


def record_use(conn: Connection, passkey_id: int, sign_count: int, now: datetime) -> None:
    conn.execute(update(passkeys).where(passkeys.c.id == passkey_id)
                 .values(sign_count=sign_count, last_used_at=now))


def rename(conn: Connection, account_id: int, passkey_id: int, name: str) -> bool:
    result = conn.execute(update(passkeys)
                          .where(passkeys.c.id == passkey_id, passkeys.c.account_id == account_id)
                          .values(name=name))
    return result.rowcount == 1


def remove(conn: Connection, account_id: int, passkey_id: int) -> bool:
    result = conn.execute(delete(passkeys).where(passkeys.c.id == passkey_id,
                                                 passkeys.c.account_id == account_id))
    return result.rowcount == 1


def remove_all(conn: Connection, account_id: int) -> int:
    return conn.execute(delete(passkeys).where(passkeys.c.account_id == account_id)).rowcount
