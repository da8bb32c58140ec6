"""The audit log: one :func:`record` for every staff action, and its reader.

Rows name people by account id only (a customer's email or name never enters the log,
so erasing a customer needs no change here). The table is append-only in the database:
triggers refuse UPDATE and DELETE (migration 0005_console), so not even a bug in this
application can rewrite it.
"""

from __future__ import annotations

import json
import secrets
from typing import Any

from flask import has_request_context, request
from sqlalchemy import Connection, insert, select
from sqlalchemy import exc as sa_exc

from webapp.clock import utcnow
from webapp.database import RetryTransaction
from webapp.database.schema import audit_log
from webapp.extensions import db

# What the log records; the console's filter offers these.
ACTIONS = (
    "sign-in", "earn", "redeem", "reversal", "adjustment", "refused", "card.block",
    "card.reissue", "store.create", "store.update", "staff.create", "staff.update",
    "staff.reset", "reward.create", "reward.update", "support.open",
)


def _client_ip() -> str | None:
    # ProxyFix (PROXY_HOPS) has already put the client's address here behind a proxy.
    return request.remote_addr if has_request_context() else None


def _row(*, actor_id: int | None, actor_role: str | None, action: str,
         region: str | None = None, store_id: int | None = None,
         subject_id: int | None = None, target: str | None = None,
         details: dict[str, Any] | None = None, event_key: str | None = None
         ) -> dict[str, Any]:
    return {
        "created_at": utcnow(), "actor_id": actor_id, "actor_role": actor_role,
        "action": action, "region": region, "store_id": store_id, "subject_id": subject_id,
        "target": target, "client_ip": _client_ip(),
        "details": json.dumps(details, sort_keys=True, default=str) if details else None,
        "event_key": event_key or f"event:{secrets.token_hex(16)}",
    }


def _insert_once(conn: Connection, row: dict[str, Any]) -> None:
    if conn.execute(select(audit_log.c.id).where(
            audit_log.c.event_key == row["event_key"])).first() is not None:
        return  # this event is recorded: a replayed request, or our own lost COMMIT answer
    try:
        conn.execute(insert(audit_log).values(**row))
    except sa_exc.IntegrityError as error:
        raise RetryTransaction() from error  # a concurrent twin won; the re-run finds it


def record_in(conn: Connection, **fields: Any) -> None:
    """Records inside the caller's transaction (settings changes: the change and its
    audit row commit together or not at all)."""
    _insert_once(conn, _row(**fields))


def record_new_in(conn: Connection, **fields: Any) -> None:
    """Records inside the caller's transaction, without looking for the event first:
    for an event whose key the same transaction just made unique (a new ledger row's
    id). Should the key be taken after all, the transaction runs again."""
    try:
        conn.execute(insert(audit_log).values(**_row(**fields)))
    except sa_exc.IntegrityError as error:
        raise RetryTransaction() from error


def record(**fields: Any) -> None:
    """Records in a transaction of its own, after the action (a ledger movement, which
    carries its own key: pass ``event_key=f"ledger:{id}"`` so a replayed request is
    logged once)."""
    row = _row(**fields)
    # Idempotent: a second run finds the row by its unique event key.
    db.write(lambda conn: _insert_once(conn, row), name="audit.record", idempotent=True)
