"""Queueing mail: rendered from templates/mail/<kind>.txt and .html, written to the
outbox inside the caller's transaction, so the mail exists exactly when the change it
reports committed."""

from __future__ import annotations

import logging
import secrets
from typing import Any

from flask import current_app, render_template
from sqlalchemy import Connection

from webapp.clock import utcnow
from webapp.errors import ServiceUnavailable

from . import queries

log = logging.getLogger(__name__)

SUBJECTS = {
    "verify": "Confirm your email address",
    "register_existing": "Someone tried to register with your address",
    "reset": "Reset your password",
    "password_changed": "Your password was changed",
    "email_change": "Confirm your new email address",
    "email_change_requested": "A change of your email address was requested",
    "email_changed": "Your email address was changed",
    "email_in_use": "Someone tried to move an account to your address",
}


def new_message_key() -> str:
    """Made before the transaction that queues the mail (see mail_outbox.message_key)."""
    return secrets.token_hex(16)


def public_url(endpoint: str, **values: Any) -> str:
    """An absolute link for a mail: PUBLIC_BASE_URL plus the route's path. Never the
    request's Host header, which a client chooses."""
    base = current_app.config.get("PUBLIC_BASE_URL")
    if not base:
        log.error("LOYALTY_PUBLIC_BASE_URL is not set: no links can be mailed")
        raise ServiceUnavailable("This can't be done right now. Please try again later.")
    path = current_app.url_map.bind("localhost").build(endpoint, values)
    return base.rstrip("/") + path


def already_queued(conn: Connection, key: str) -> bool:
    """True when an earlier run of the same unit of work committed its mail."""
    return queries.message_by_key(conn, key) is not None


def enqueue(conn: Connection, *, kind: str, recipient: str, key: str,
            account_id: int | None, **context: Any) -> None:
    subject = SUBJECTS[kind]
    context = {"subject": subject, **context}
    text = render_template(f"mail/{kind}.txt", **context)
    html = render_template(f"mail/{kind}.html", **context)
    now = utcnow()
    queries.insert_message(
        conn, message_key=key, account_id=account_id, recipient=recipient, kind=kind,
        subject=subject, body_text=text, body_html=html, created_at=now, next_attempt_at=now,
        attempts=0,
    )
    if current_app.config["MAIL_BACKEND"] == "outbox":
        # No mail server in the demo: the log (and /demo/outbox) is where mail arrives.
        log.info("mail queued (demo outbox, not sent) to %s: %s\n%s", recipient, subject, text)


def placeholder(conn: Connection, *, kind: str, key: str, **context: Any) -> None:
    """What :func:`enqueue` costs, for a request that mails nobody (a reset for an
    unknown address): the templates are rendered and one row committed, so the time
    of the answer does not tell whether the address has an account. The row holds no
    address, is born delivered, and goes with the next cleanup."""
    subject = SUBJECTS[kind]
    render_template(f"mail/{kind}.txt", subject=subject, **context)
    render_template(f"mail/{kind}.html", subject=subject, **context)
    now = utcnow()
    queries.insert_message(
        conn, message_key=key, account_id=None, recipient="", kind="none", subject="",
        body_text="", body_html="", created_at=now, next_attempt_at=now, attempts=0,
        sent_at=now)
