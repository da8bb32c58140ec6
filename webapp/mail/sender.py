"""Delivering the outbox over SMTP: ``flask --app webapp mail send`` (once, or
``--watch`` as the production mail worker).

Delivery is at least once: a sender that dies after the server accepted a message but
before marking it sent leaves it claimed until the claim runs out, and it goes again.
Temporary failures (connection refused, 4xx) are retried with a growing pause; a
permanent one (5xx, such as an unknown recipient) is given up at once. Either way the
error stays on the row for the operator.
"""

from __future__ import annotations

import logging
import smtplib
import ssl
from dataclasses import dataclass
from datetime import timedelta
from email.message import EmailMessage
from email.utils import formatdate, make_msgid, parseaddr
from typing import Any

from flask import current_app

from webapp.clock import utcnow
from webapp.extensions import db

from . import queries

log = logging.getLogger(__name__)

CLAIM = timedelta(minutes=2)
BATCH = 50


@dataclass
class SendReport:
    sent: int = 0
    failed: int = 0


def build_message(row: dict[str, Any], sender: str) -> EmailMessage:
    message = EmailMessage()
    message["From"] = sender
    message["To"] = row["recipient"]
    message["Subject"] = row["subject"]
    message["Date"] = formatdate(localtime=False)
    domain = parseaddr(sender)[1].rpartition("@")[2] or None
    message["Message-ID"] = make_msgid(idstring=row["message_key"][:16], domain=domain)
    message["Auto-Submitted"] = "auto-generated"
    message.set_content(row["body_text"])
    message.add_alternative(row["body_html"], subtype="html")
    return message


class SmtpTransport:
    """One SMTP session for a batch, opened on first use; TLS and login from config."""

    def __init__(self, config: dict[str, Any]) -> None:
        self.config = config
        self.client: smtplib.SMTP | None = None

    def _context(self) -> ssl.SSLContext:
        return ssl.create_default_context(cafile=self.config.get("MAIL_CA_FILE"))

    def _connect(self) -> smtplib.SMTP:
        config = self.config
        security = (config.get("MAIL_SECURITY") or "starttls").lower()
        host, port, timeout = config["MAIL_SERVER"], config["MAIL_PORT"], config["MAIL_TIMEOUT"]
        if security == "ssl":
            client: smtplib.SMTP = smtplib.SMTP_SSL(host, port, timeout=timeout,
                                                    context=self._context())
        else:
            client = smtplib.SMTP(host, port, timeout=timeout)
            if security == "starttls":
                client.starttls(context=self._context())
        try:
            if config.get("MAIL_USERNAME"):
                client.login(config["MAIL_USERNAME"], config.get("MAIL_PASSWORD") or "")
        except Exception:
            client.close()
            raise
        return client

    def send(self, message: EmailMessage) -> None:
        if self.client is None:
            self.client = self._connect()
        try:
            self.client.send_message(message)
        except (smtplib.SMTPServerDisconnected, OSError):
            self.close()
            raise

    def close(self) -> None:
        if self.client is not None:
            try:
                self.client.quit()
            except (smtplib.SMTPException, OSError):
                self.client.close()
            self.client = None


def _is_permanent(error: Exception) -> bool:
    if isinstance(error, smtplib.SMTPRecipientsRefused):
        return all(code >= 500 for code, _ in error.recipients.values())
    code = getattr(error, "smtp_code", None)
    return isinstance(code, int) and code >= 500 and not isinstance(
        error, smtplib.SMTPAuthenticationError)  # a wrong password is fixed by the operator


def _backoff(attempts: int) -> timedelta:
    """1, 2, 4 ... minutes, at most an hour."""
    return timedelta(minutes=min(60, 2 ** max(0, attempts)))


def send_due(*, limit: int = BATCH, transport: SmtpTransport | None = None) -> SendReport:
    """Sends what is due now; returns how many went and how many failed."""
    config = current_app.config
    report = SendReport()
    if config["MAIL_BACKEND"] == "outbox":
        return report  # the demo keeps its mail in the outbox
    max_attempts = config["MAIL_MAX_ATTEMPTS"]
    now = utcnow()
    due = db.read(lambda conn: queries.due_messages(conn, now, max_attempts, limit),
                  name="mail.due", causal=True)
    transport = transport or SmtpTransport(config)
    try:
        for row in due:
            claimed = db.write(
                lambda conn, row=row: queries.claim(conn, row["id"], utcnow(),
                                                    utcnow() + CLAIM),
                name="mail.claim")
            if not claimed:
                continue
            try:
                transport.send(build_message(row, config["MAIL_SENDER"]))
            except (smtplib.SMTPException, OSError) as error:
                report.failed += 1
                give_up = _is_permanent(error)
                log.warning("mail %s to %s not sent (%s): %s", row["id"], row["recipient"],
                            "giving up" if give_up else "will retry", error)
                db.write(lambda conn, row=row, error=error, give_up=give_up: queries.mark_failed(
                    conn, row["id"], next_attempt_at=utcnow() + _backoff(row["attempts"]),
                    error=f"{type(error).__name__}: {error}", give_up=give_up,
                    max_attempts=max_attempts), name="mail.failed")
            else:
                report.sent += 1
                db.write(lambda conn, row=row: queries.mark_sent(conn, row["id"], utcnow()),
                         name="mail.sent")
    finally:
        transport.close()
    return report
