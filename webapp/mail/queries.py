"""SQL for the mail outbox."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import Connection, delete, insert, or_, select, update

from webapp.database.schema import mail_outbox


def message_by_key(conn: Connection, key: str) -> dict[str, Any] | None:
    row = conn.execute(select(mail_outbox).where(mail_outbox.c.message_key == key)).mappings()
    found = row.first()
    return dict(found) if found else None


def insert_message(conn: Connection, **values: Any) -> int:
    return conn.execute(insert(mail_outbox).values(**values)).inserted_primary_key[0]


def due_messages(conn: Connection, now: datetime, max_attempts: int,
                 limit: int) -> list[dict[str, Any]]:
    query = (
        select(mail_outbox)
        .where(
            mail_outbox.c.sent_at.is_(None),
            mail_outbox.c.next_attempt_at <= now,
            mail_outbox.c.attempts < max_attempts,
            or_(mail_outbox.c.claimed_until.is_(None), mail_outbox.c.claimed_until < now),
        )
        .order_by(mail_outbox.c.id)
        .limit(limit)
    )
    return [dict(row) for row in conn.execute(query).mappings()]


def claim(conn: Connection, message_id: int, now: datetime, until: datetime) -> bool:
    """One conditional UPDATE: of two senders that picked the same row, one sends it."""
    result = conn.execute(
        update(mail_outbox)
        .where(
            mail_outbox.c.id == message_id,
            mail_outbox.c.sent_at.is_(None),
            or_(mail_outbox.c.claimed_until.is_(None), mail_outbox.c.claimed_until < now),
        )
        .values(claimed_until=until)
    )
    return result.rowcount == 1


def mark_sent(conn: Connection, message_id: int, now: datetime) -> None:
    # The bodies carry single-use links: once delivered they are not kept.
    conn.execute(
        update(mail_outbox).where(mail_outbox.c.id == message_id)
        .values(sent_at=now, claimed_until=None, body_text="", body_html="",
                attempts=mail_outbox.c.attempts + 1, last_error=None)
    )


def mark_failed(conn: Connection, message_id: int, *, next_attempt_at: datetime,
                error: str, give_up: bool, max_attempts: int) -> None:
    values: dict[str, Any] = {
        "claimed_until": None, "next_attempt_at": next_attempt_at, "last_error": error[:200],
        "attempts": max_attempts if give_up else mail_outbox.c.attempts + 1,
    }
    conn.execute(update(mail_outbox).where(mail_outbox.c.id == message_id).values(**values))


def recent_messages(conn: Connection, limit: int) -> list[dict[str, Any]]:
    query = (select(mail_outbox).where(mail_outbox.c.kind != "none")
             .order_by(mail_outbox.c.id.desc()).limit(limit))
    return [dict(row) for row in conn.execute(query).mappings()]


def messages_for(conn: Connection, account_id: int) -> list[dict[str, Any]]:
    query = (select(mail_outbox.c.kind, mail_outbox.c.recipient, mail_outbox.c.subject,
                    mail_outbox.c.created_at, mail_outbox.c.sent_at)
             .where(mail_outbox.c.account_id == account_id).order_by(mail_outbox.c.id))
    return [dict(row) for row in conn.execute(query).mappings()]


def delete_for(conn: Connection, account_id: int, addresses: list[str]) -> int:
    condition = mail_outbox.c.account_id == account_id
    if addresses:
        condition = or_(condition, mail_outbox.c.recipient.in_(addresses))
    return conn.execute(delete(mail_outbox).where(condition)).rowcount


def delete_sent_before(conn: Connection, moment: datetime) -> int:
    return conn.execute(
        delete(mail_outbox).where(mail_outbox.c.sent_at.is_not(None),
                                  mail_outbox.c.sent_at < moment)).rowcount
