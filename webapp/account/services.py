"""What the owner can do with their account: see and sign out devices, correct their
profile, download their data, erase the account. Pages call these; nothing else
decides who may."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

from flask import current_app
from sqlalchemy import Connection

from webapp.auth import queries as account_queries
from webapp.auth import services as auth
from webapp.card import queries as card_queries
from webapp.card.numbers import new_code_secret
from webapp.clock import utcnow
from webapp.database import RetryTransaction
from webapp.errors import NotFound
from webapp.extensions import db
from webapp.family import invites as family_invites
from webapp.ledger import queries as ledger_queries
from webapp.mail import queries as mail_queries
from webapp.passkeys import queries as passkey_queries

from . import queries

EXPORT_FORMAT = "loyalty-card-export/1"
EXPORT_PAGE = 500


# -- devices ------------------------------------------------------------------------


def devices(account_id: int) -> list[dict[str, Any]]:
    return db.read(lambda conn: queries.devices(conn, account_id, utcnow()), name="devices",
                   causal=True)


def sign_out_device(account_id: int, family_id: str) -> None:
    """Ends one device's session: its refresh token stops working, and its access token
    is refused at its next request (webapp.auth.tokens.ensure_live)."""
    if not db.write(lambda conn: queries.revoke_family(conn, account_id, family_id, utcnow()),
                    name="devices.sign_out"):
        raise NotFound("That device is not signed in.")


def sign_out_everywhere(account_id: int) -> None:
    db.write(lambda conn: account_queries.revoke_all_refresh_tokens(conn, account_id, utcnow()),
             name="devices.sign_out_all")


# -- profile ------------------------------------------------------------------------


def update_profile(account_id: int, name: str, birthday: date | None) -> None:
    db.write(lambda conn: queries.update_profile(conn, account_id, name, birthday),
             name="account.profile")


def profile(account_id: int) -> dict[str, Any]:
    def work(conn: Connection) -> dict[str, Any]:
        account = account_queries.account_by_id(conn, account_id)
        cards = card_queries.active_cards(conn, account_id)
        wallet = card_queries.wallet_for_account(conn, account_id)
        return {"account": account, "cards": cards, "balance": wallet["balance"],
                "holder": next((c for c in cards if c["slot"] == 0), None)}

    return db.read(work, name="account.profile", causal=True)


# -- export -------------------------------------------------------------------------


def _iso(value: Any) -> Any:
    """A stored time is naive UTC: ISO 8601 marked Z. A date (a birthday) stays a date."""
    if isinstance(value, datetime):
        return value.isoformat() + "Z"
    if isinstance(value, date):
        return value.isoformat()
    return value


def _clean(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [{key: _iso(value) for key, value in row.items()} for row in rows]


def export(account_id: int) -> dict[str, Any]:
    """Everything held about the account and its family cards, in one consistent read:
    profile, cards (with removed ones), wallet, the full ledger with stores and kinds,
    devices, passkeys and mail sent. Card secrets and password hashes are credentials,
    not information about the person, and are left out."""

    def work(conn: Connection) -> dict[str, Any]:
        account = account_queries.account_by_id(conn, account_id)
        wallet = card_queries.wallet_for_account(conn, account_id)
        entries: list[dict[str, Any]] = []
        after = 0
        while True:  # a page at a time: a long history is never one huge result
            page = queries.ledger_page(conn, wallet["id"], after, EXPORT_PAGE)
            entries.extend(page)
            if len(page) < EXPORT_PAGE:
                break
            after = page[-1]["id"]
        passkeys = [{"name": p["name"], "created_at": p["created_at"],
                     "last_used_at": p["last_used_at"]}
                    for p in passkey_queries.passkeys_of(conn, account_id)]
        return {
            "format": EXPORT_FORMAT,
            "exported_at": _iso(utcnow()),
            "account": {key: _iso(account[key]) for key in (
                "id", "email", "name", "home_region", "role", "created_at",
                "email_verified_at")},
            "cards": _clean(queries.all_cards(conn, account_id)),
            "wallet": {"id": wallet["id"], "balance": wallet["balance"]},
            "ledger": _clean(entries),
            "devices": _clean(queries.all_device_rows(conn, account_id)),
            "passkeys": _clean(passkeys),
            "mail": _clean(mail_queries.messages_for(conn, account_id)),
        }

    return db.read(work, name="account.export", causal=True)


# -- erasure ------------------------------------------------------------------------


@dataclass(frozen=True)
class ErasurePreview:
    balance: int
    family: list[str]
    passkeys: int


def erasure_preview(account_id: int) -> ErasurePreview:
    data = profile(account_id)
    keys = db.read(lambda conn: passkey_queries.passkeys_of(conn, account_id), name="passkeys")
    return ErasurePreview(data["balance"], [c["display_name"] for c in data["cards"]
                                            if c["slot"] > 0], len(keys))


def _erasure_key(wallet_id: int) -> str:
    return f"erasure:{wallet_id}"


def erase(account_id: int, password: str) -> int:
    """Erases the account after checking the password; returns the coins forfeited.

    Personal data goes: the email, names and birthdays are blanked, devices, passkeys,
    mailed links and mail are deleted, every card stops working, and the sign-ins family
    members had for their cards are deleted with their own devices, links and mail. The
    ledger is never changed: one ``erasure`` row forfeits the remaining balance, so the
    balance still equals the ledger's sum, and the rows before it now lead to nobody.

    Idempotent (the erasure row's key is the wallet's), and safe against a till
    transaction racing it: the wallet is emptied only if it still holds the balance
    this transaction read, so a till transaction either commits first (and its coins
    are forfeited too) or finds no active card afterwards.
    """
    auth.check_password(account_id, password)
    return erase_now(account_id)


def erase_now(account_id: int) -> int:
    region = current_app.config["REGION"]

    def work(conn: Connection) -> int:
        account = account_queries.account_by_id(conn, account_id)
        if account is None:
            raise NotFound("No such account.")
        wallet = card_queries.wallet_for_account(conn, account_id)
        key = _erasure_key(wallet["id"])
        done = ledger_queries.entry_by_key(conn, key)
        if done is not None or account["erased_at"] is not None:
            return -done["coins"] if done else 0
        now = utcnow()
        balance = int(wallet["balance"])
        if not queries.take_balance(conn, wallet["id"], balance, now):
            raise RetryTransaction()  # a till transaction moved coins since the read
        digest = hashlib.sha256(json.dumps({"kind": "erasure", "wallet": wallet["id"]})
                                .encode()).hexdigest()
        ledger_queries.insert_entry(
            conn, wallet_id=wallet["id"], card_id=None, kind="erasure", coins=-balance,
            amount_minor=None, currency=None, store_id=None, region=region, staff_id=None,
            idempotency_key=key, request_hash=digest, reverses_id=None, balance_after=0,
            created_at=now)
        cards = queries.all_cards(conn, account_id)
        # A family member's own sign-in is there only to show the owner's card.
        members = family_invites.on_account_erased(conn, [c["id"] for c in cards])
        queries.retire_cards(conn, account_id, now, {c["id"]: new_code_secret() for c in cards})
        for person in (account, *members):
            addresses = [person["email"], *queries.pending_addresses(conn, person["id"])]
            mail_queries.delete_for(conn, person["id"], addresses)
            passkey_queries.remove_all(conn, person["id"])
            queries.delete_sign_in_data(conn, person["id"])
        queries.blank_account(conn, account_id, now)
        return balance

    return db.write(work, name="account.erase")


# -- housekeeping -------------------------------------------------------------------


def cleanup() -> dict[str, int]:
    """Deletes unverified accounts past UNVERIFIED_ACCOUNT_TTL, expired passkey
    challenges, refresh tokens and mailed links, and delivered mail older than
    MAIL_RETENTION (its bodies are already gone)."""
    from webapp.passkeys.queries import delete_challenges_before

    config = current_app.config
    now = utcnow()
    stale = db.read(lambda conn: queries.unverified_before(
        conn, now - config["UNVERIFIED_ACCOUNT_TTL"]), name="cleanup.unverified", causal=True)
    deleted = 0
    for account_id in stale:
        if db.write(lambda conn, account_id=account_id: _delete_unverified(conn, account_id),
                    name="cleanup.account"):
            deleted += 1
    challenges = db.write(lambda conn: delete_challenges_before(conn, now),
                          name="cleanup.challenges")
    mail = db.write(lambda conn: mail_queries.delete_sent_before(
        conn, now - config["MAIL_RETENTION"]), name="cleanup.mail")
    expired = db.write(lambda conn: queries.delete_expired_sign_in_data(conn, now),
                       name="cleanup.tokens")
    return {"accounts": deleted, "challenges": challenges, "mail": mail, "tokens": expired}


def _delete_unverified(conn: Connection, account_id: int) -> bool:
    account = account_queries.account_by_id(conn, account_id)
    if account is None or account["email_verified_at"] is not None:
        return False
    deleted = queries.delete_unverified(conn, account_id)
    if deleted:
        mail_queries.delete_for(conn, account_id, [account["email"]])
    return deleted
