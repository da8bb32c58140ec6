"""Wallet passes: who may have which card's pass, and Apple's pass web service.

A pass shows one card (its holder's name and number) and the family's shared balance.
Apple's phones keep theirs current through the web service below: a phone registers the
pass with its push token; when the balance changes, the operator's push sender tells it
(docs/operations.md); the phone then asks which of its passes changed and fetches them.
"""

from __future__ import annotations

import hashlib
import hmac
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from flask import current_app
from sqlalchemy import Connection
from sqlalchemy import exc as sa_exc

from webapp import clock
from webapp.database import RetryTransaction, after_unknown_commit
from webapp.errors import NotFound, Unauthorized, ValidationFailed
from webapp.extensions import db

from . import apple, google, queries
from .keys import WalletKeys

EPOCH = datetime(1970, 1, 1)
# How far apart two app servers' clocks (and a transaction's start and its COMMIT) may
# be. Timestamps written by other servers are trusted only this far back, so "what
# changed since" answers err on the side of sending a pass again (harmless), never of
# missing a change.
CLOCK_SKEW = timedelta(seconds=60)
_AUTH_LABEL = b"apple-pass-authentication\0"


def wallet_keys() -> WalletKeys:
    return current_app.extensions["wallet_passes"]


# --- Whose pass -------------------------------------------------------------------------


def own_card(account_id: int, card_id: int) -> dict[str, Any]:
    """The account's active card and the shared balance, or 404: the same cards the card
    page lets this account show (``webapp.card.services.card_view``)."""
    card = db.read(lambda conn: queries.card_for_pass(conn, card_id), name="passes.card",
                   causal=True)
    if card is None or card["account_id"] != account_id or card["slot"] is None:
        raise NotFound("No such card.")
    return card


# --- Apple Wallet -----------------------------------------------------------------------


def authentication_token(pass_type_id: str, serial: str) -> str:
    """Derived, not stored: HMAC of the pass with the app's SECRET_KEY. Only this server
    can make it, and it costs no write when a customer downloads a pass."""
    key = current_app.config["SECRET_KEY"].encode()
    message = _AUTH_LABEL + pass_type_id.encode() + b"\0" + serial.encode()
    return hmac.new(key, message, hashlib.sha256).hexdigest()


def serial_of(card: dict[str, Any]) -> str:
    return str(card["id"])


def modified_at(card: dict[str, Any]) -> datetime:
    """When the pass's content last changed: a coin movement (anyone in the family) or
    the card's removal."""
    return max(card["wallet_updated_at"], card["removed_at"] or EPOCH)


def build_apple_pass(card: dict[str, Any], web_service_url: str) -> bytes:
    keys = wallet_keys()
    serial = serial_of(card)
    content = apple.PassContent(
        serial=serial, holder=card["display_name"], number=card["number"],
        balance=card["balance"], voided=card["slot"] is None,
        web_service_url=web_service_url,
        authentication_token=authentication_token(keys.apple.pass_type_id, serial))
    return apple.build(content, keys.apple, keys.organization, modified_at(card))


def apple_pass(account_id: int, card_id: int, web_service_url: str) -> tuple[bytes, datetime]:
    _require_apple()
    card = own_card(account_id, card_id)
    return build_apple_pass(card, web_service_url), modified_at(card)


def _require_apple() -> None:
    if wallet_keys().apple is None:
        raise NotFound("Apple Wallet passes are not set up here.")


def _authorized_card(pass_type_id: str, serial: str, authorization: str | None,
                     conn: Connection | None = None) -> dict[str, Any]:
    """The card behind an ``ApplePass <token>`` request, or 401 (404 for another pass
    type: not ours)."""
    keys = wallet_keys()
    if keys.apple is None or pass_type_id != keys.apple.pass_type_id:
        raise NotFound("Unknown pass type.")
    scheme, _, token = (authorization or "").partition(" ")
    expected = authentication_token(pass_type_id, serial)
    if scheme != "ApplePass" or not hmac.compare_digest(token.strip().encode(),
                                                        expected.encode()):
        raise Unauthorized("Wrong or missing ApplePass token.")
    card_id = int(serial) if serial.isascii() and serial.isdigit() and len(serial) < 19 else 0
    card = (queries.card_for_pass(conn, card_id) if conn is not None else db.read(
        lambda c: queries.card_for_pass(c, card_id), name="passes.card", causal=True))
    if card is None:
        raise Unauthorized("No such pass.")
    return card


def register_device(device_id: str, pass_type_id: str, serial: str, push_token: str,
                    authorization: str | None) -> bool:
    """True if this registration is new (Apple wants 201), False if it existed (200)."""
    _check_push_token(push_token)
    inserted: set[tuple[str, str, str]] = set()
    key = (device_id, pass_type_id, serial)

    def work(conn: Connection) -> bool:
        card = _authorized_card(pass_type_id, serial, authorization, conn)
        now = clock.utcnow()
        existing = queries.registration(conn, *key)
        if existing is not None:
            if existing["push_token"] != push_token:
                queries.update_push_token(conn, *key, push_token, now)
            # Our own attempt's row (its COMMIT answer was lost) is still "created".
            return key in inserted and after_unknown_commit(conn)
        try:
            queries.insert_registration(conn, device_id=device_id, pass_type_id=pass_type_id,
                                        serial=serial, card_id=card["id"],
                                        push_token=push_token, created_at=now,
                                        updated_at=now)
        except sa_exc.IntegrityError as error:
            raise RetryTransaction() from error  # the same phone, twice at once
        inserted.add(key)
        return True

    # Idempotent: a second run finds the registration (above) and answers as the first.
    return db.write(work, name="passes.register", idempotent=True)


def unregister_device(device_id: str, pass_type_id: str, serial: str,
                      authorization: str | None) -> None:
    def work(conn: Connection) -> None:
        _authorized_card(pass_type_id, serial, authorization, conn)
        queries.delete_registration(conn, device_id, pass_type_id, serial)

    # Idempotent: deleting what is already gone deletes nothing, and answers the same.
    db.write(work, name="passes.unregister", idempotent=True)


@dataclass(frozen=True)
class UpdatedSerials:
    serials: list[str]
    last_updated: str


def updated_serials(device_id: str, pass_type_id: str,
                    passes_updated_since: str | None) -> UpdatedSerials | None:
    """The device's passes that changed after the tag it got last time, and a new tag;
    None when none did (Apple wants 204). Unauthenticated, as Apple defines it: it tells
    a device only the serials it registered itself."""
    keys = wallet_keys()
    if keys.apple is None or pass_type_id != keys.apple.pass_type_id:
        return None
    since = _parse_tag(passes_updated_since)
    now = clock.utcnow()
    rows = db.read(lambda conn: queries.device_passes(conn, device_id, pass_type_id),
                   name="passes.updated", causal=True)
    changed = [row["serial"] for row in rows if since is None or modified_at(row) > since]
    if not changed:
        return None
    # The next tag looks CLOCK_SKEW back: a change committed just after this read, with
    # a timestamp from a slower clock, is still "after" it.
    tag = max(since or EPOCH, now - CLOCK_SKEW)
    return UpdatedSerials(changed, _format_tag(tag))


def _format_tag(moment: datetime) -> str:
    return str((moment - EPOCH) // timedelta(microseconds=1))


def _parse_tag(tag: str | None) -> datetime | None:
    if not tag or not tag.isascii() or not tag.isdigit() or len(tag) > 18:
        return None  # no tag, or not one of ours: send everything
    return EPOCH + timedelta(microseconds=int(tag))


@dataclass(frozen=True)
class LatestPass:
    body: bytes | None  # None: not modified since the phone's copy
    last_modified: datetime


def latest_pass(pass_type_id: str, serial: str, authorization: str | None,
                if_modified_since: datetime | None, web_service_url: str) -> LatestPass:
    card = _authorized_card(pass_type_id, serial, authorization)
    modified = modified_at(card)
    # HTTP dates have whole seconds. Claiming a moment at least CLOCK_SKEW (+1 s) in the
    # past for a recent change means a later change in the same second, or stamped by a
    # slower clock, is never answered "not modified".
    last_modified = min(modified, clock.utcnow() - CLOCK_SKEW - timedelta(seconds=1))
    last_modified = last_modified.replace(microsecond=0)
    if if_modified_since is not None and modified.replace(microsecond=0) <= if_modified_since:
        return LatestPass(None, last_modified)
    return LatestPass(build_apple_pass(card, web_service_url), last_modified)


def _check_push_token(push_token: str) -> None:
    if not push_token or len(push_token) > 200 or not push_token.isascii() or not (
            push_token.isprintable()):
        raise ValidationFailed({"pushToken": ["A push token is required."]})


# --- Google Wallet ----------------------------------------------------------------------


def google_save_url(account_id: int, card_id: int, *, origin: str, logo_url: str) -> str:
    keys = wallet_keys()
    if keys.google is None:
        raise NotFound("Google Wallet passes are not set up here.")
    card = own_card(account_id, card_id)
    now = clock.utcnow()
    obj = google.loyalty_object(
        keys.google, card_id=card["id"], holder=card["display_name"], number=card["number"],
        code_secret=card["code_secret"], balance=card["balance"], as_of=now)
    token = google.save_jwt(
        keys.google, origins=[origin], loyalty_objects=[obj],
        loyalty_classes=[google.loyalty_class(keys.google, keys.organization, logo_url)],
        issued_at=int((now - EPOCH).total_seconds()))
    return google.save_url(token)


@dataclass(frozen=True)
class PushTargets:
    push_tokens: list[str]
    next_tag: str


def push_targets(since_tag: str | None) -> PushTargets:
    """The push tokens of phones holding a pass that changed after ``since_tag``: what a
    push sender notifies (an empty APNs push per token; docs/operations.md). Its next run
    passes ``next_tag``, which looks CLOCK_SKEW back like the phones' own tag."""
    keys = wallet_keys()
    if keys.apple is None:
        raise NotFound("Apple Wallet passes are not set up here.")
    since = _parse_tag(since_tag) or EPOCH
    now = clock.utcnow()
    rows = db.read(lambda conn: queries.push_targets(conn, keys.apple.pass_type_id, since),
                   name="passes.push_targets", causal=True)
    tokens = list(dict.fromkeys(row["push_token"] for row in rows))
    return PushTargets(tokens, _format_tag(max(since, now - CLOCK_SKEW)))
