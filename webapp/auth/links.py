"""Mailed links: a random secret in the URL, only its SHA-256 in ``account_tokens``;
single use, short-lived, and for one purpose and one account.

Every refusal has its own reason (:mod:`webapp.errors`: invalid, expired, used,
replaced, another account's), so the page can say what to do next.
"""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from flask import url_for
from sqlalchemy import Connection

from webapp.errors import (
    LinkExpired,
    LinkInvalid,
    LinkOtherAccount,
    LinkReplaced,
    LinkUsed,
)

from . import queries

# What each purpose's refusal page offers next.
_NEXT = {
    "verify": ("auth.register", "Register again to get a new link"),
    "reset": ("auth.forgot_password", "Ask for a new link"),
    "email": ("account.show", "Ask again from your account page"),
}


@dataclass(frozen=True)
class NewLink:
    secret: str
    token_hash: str


def new_link() -> NewLink:
    secret = secrets.token_urlsafe(32)
    return NewLink(secret, digest(secret))


def digest(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def store(conn: Connection, link: NewLink, *, account_id: int, purpose: str, now: datetime,
          ttl: timedelta, **values: Any) -> None:
    queries.insert_account_token(
        conn, account_id=account_id, purpose=purpose, token_hash=link.token_hash,
        created_at=now, expires_at=now + ttl, **values)


def _action(purpose: str) -> dict[str, str]:
    endpoint, label = _NEXT[purpose]
    return {"action": url_for(endpoint), "action_label": label}


def usable(conn: Connection, secret: str, purpose: str, now: datetime, *,
           signed_in_as: int | None, spent_by: datetime | None = None) -> dict[str, Any]:
    """The token row if ``secret`` may be used now, else the reason it may not.

    ``spent_by``: the moment this request spends tokens at. A row spent at exactly that
    moment was spent by an earlier run of the same request whose COMMIT acknowledgement
    was lost, and counts as usable again, so a retried request gives the same answer.
    """
    row = queries.account_token_by_hash(conn, digest(secret)) if secret else None
    action = _action(purpose)
    if row is None or row["purpose"] != purpose:
        raise LinkInvalid("This link is not valid. Check that you opened the whole link "
                          "from the message.", **action)
    if signed_in_as is not None and signed_in_as != row["account_id"]:
        raise LinkOtherAccount("This link was sent for another account. Sign out, then "
                               "open the link again.", action=url_for("account.show"),
                               action_label="Your account")
    if spent_by is not None and row["used_at"] == spent_by:
        return row
    if row["used_at"] is not None:
        raise LinkUsed("This link was already used. Each link works once.", **action)
    if row["revoked_at"] is not None:
        raise LinkReplaced("This link no longer works: a newer one was sent, or your "
                           "password was changed. Use the newest message.", **action)
    if row["expires_at"] <= now:
        raise LinkExpired("This link has expired.", **action)
    return row


def spend(conn: Connection, row: dict[str, Any], stamp: datetime) -> None:
    """Marks the token used; if another request spent it a moment ago, says so."""
    if row["used_at"] == stamp:
        return  # our own earlier run
    if not queries.spend_account_token(conn, row["id"], stamp):
        raise LinkUsed("This link was already used. Each link works once.",
                       **_action(row["purpose"]))
