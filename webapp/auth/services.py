"""Accounts: create, verify, authenticate, recover. Password hashes are argon2id.

The public ways in (the register page and API v1 ``/auth/register``, the reset form)
answer the same whether or not the address has an account: what differs is only the
mail that the address's owner receives. Each such unit of work queues its mail with a
key made beforehand, so a run retried after an unknown COMMIT outcome recognises its
own earlier run and gives the same answer (see ``mail_outbox.message_key``).
"""

from __future__ import annotations

import functools
from datetime import datetime
from typing import Any

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError
from flask import current_app
from sqlalchemy import Connection
from sqlalchemy import exc as sa_exc

from webapp.card.numbers import new_card_number, new_code_secret
from webapp.clock import utcnow
from webapp.database import RetryTransaction, after_unknown_commit
from webapp.errors import EmailTaken, InvalidCredentials, ValidationFailed
from webapp.extensions import db
from webapp.mail import outbox

from . import links, queries, throttle
from .emails import normalise_email

hasher = PasswordHasher()  # argon2id with the library's current recommended cost


@functools.cache
def _dummy_hash() -> str:
    """Verified when the email is unknown, so a miss costs as long as a wrong password and
    response time does not reveal which emails have accounts. Made on first use: at import
    it cost every gunicorn worker 0.3 s of CPU at each (re)start."""
    return hasher.hash("not-a-real-password-only-for-timing")


def _create(conn: Connection, *, name: str, email: str, password_hash: str, region: str,
            role: str, store_id: int | None, verified_at: datetime | None) -> int:
    """The account, its wallet and its holder's card (slot 0)."""
    now = utcnow()
    account_id = queries.insert_account(
        conn, email=email, name=name, password_hash=password_hash, home_region=region,
        role=role, store_id=store_id, created_at=now, email_verified_at=verified_at,
    )
    wallet_id = queries.insert_wallet(conn, account_id, now)
    queries.insert_card(
        conn, account_id=account_id, wallet_id=wallet_id, slot=0, number=new_card_number(),
        display_name=name, code_secret=new_code_secret(), created_at=now,
    )
    return account_id


def register(*, name: str, email: str, password: str, region: str, role: str = "customer",
             store_id: int | None = None) -> dict:
    """Creates a verified account at once: for the operator's tools (staff accounts, demo
    data), whose addresses need no proof. The public way in is :func:`start_registration`."""
    email = normalise_email(email)
    password_hash = hasher.hash(password)

    def create(conn):
        if after_unknown_commit(conn):
            # The hash has a fresh random salt: only this call's own row carries it.
            existing = queries.account_by_email(conn, email)
            if existing is not None and existing["password_hash"] == password_hash:
                return existing
        account_id = _create(conn, name=name, email=email, password_hash=password_hash,
                             region=region, role=role, store_id=store_id,
                             verified_at=utcnow())
        return queries.account_by_id(conn, account_id)

    try:
        # Idempotent: a second run recognises its own row (above), so a lost COMMIT
        # answer never turns into "this email is taken".
        return db.write(create, name="account.register", idempotent=True)
    except sa_exc.IntegrityError as error:
        if db.read(lambda conn: queries.account_by_email(conn, email), name="account.email"):
            raise EmailTaken(
                "We could not create an account with these details. "
                "If you already have one, sign in instead."
            ) from error
        raise


# -- registration with a verified address ------------------------------------------


def start_registration(*, name: str, email: str, password: str, region: str) -> None:
    """Registers ``email`` if it is new, and mails its owner either way: a link that
    verifies the address and signs in, or "someone tried to register with your address".

    The caller's answer is the same in every case (no account is revealed), and so is
    the work: the password is hashed even when it will not be used.
    """
    email = normalise_email(email)
    password_hash = hasher.hash(password)
    link = links.new_link()
    key = outbox.new_message_key()
    config = current_app.config
    verify_url = outbox.public_url("auth.verify", token=link.secret)
    login_url = outbox.public_url("auth.login")
    reset_url = outbox.public_url("auth.forgot_password")
    ttl = config["VERIFY_TOKEN_TTL"]
    hours = int(ttl.total_seconds() // 3600)

    def work(conn: Connection) -> None:
        if outbox.already_queued(conn, key):
            return  # an earlier run of this request committed
        now = utcnow()
        account = queries.account_by_email(conn, email)
        if account is not None and account["email_key"] != email:
            # Equal only under MariaDB's accent-insensitive collation: a different
            # mailbox, which the unique key would refuse. Nothing to mail to anyone.
            current_app.logger.info("registration refused by collation for an address")
            return
        if account is None:
            try:
                account_id = _create(conn, name=name, email=email, password_hash=password_hash,
                                     region=region, role="customer", store_id=None,
                                     verified_at=None)
            except sa_exc.IntegrityError as error:
                raise RetryTransaction() from error  # registered a moment ago: run again
            account = {"id": account_id, "name": name, "email_verified_at": None}
        if account["email_verified_at"] is None:
            # Each link carries the password chosen with it: whoever opens a link sets
            # the password of that registration, not of a later one.
            links.store(conn, link, account_id=account["id"], purpose="verify", now=now,
                        ttl=ttl, email=email, password_hash=password_hash)
            outbox.enqueue(conn, kind="verify", recipient=email, key=key,
                           account_id=account["id"], name=account["name"], url=verify_url,
                           hours=hours)
        else:
            outbox.enqueue(conn, kind="register_existing", recipient=email, key=key,
                           account_id=account["id"], name=account["name"],
                           login_url=login_url, reset_url=reset_url)

    db.write(work, name="account.start_registration", idempotent=True)


def check_link(secret: str, purpose: str, *, signed_in_as: int | None) -> dict[str, Any]:
    """Whether a mailed link can be used, without using it (the page that asks the user
    to press the button)."""
    return db.read(lambda conn: links.usable(conn, secret, purpose, utcnow(),
                                             signed_in_as=signed_in_as),
                   name="account.check_link", causal=True)


def _link_account(conn: Connection, secret: str, purpose: str, stamp, *,
                  signed_in_as: int | None, spend: bool) -> tuple[dict, dict]:
    """The usable link (spent first when ``spend``) and its live account; an erased
    account makes the link invalid."""
    row = links.usable(conn, secret, purpose, stamp, signed_in_as=signed_in_as,
                       spent_by=stamp)
    if spend:
        links.spend(conn, row, stamp)
    account = queries.account_by_id(conn, row["account_id"])
    if account is None or account["erased_at"] is not None:
        raise links.LinkInvalid("This account no longer exists.")
    return row, account


def verify_email(secret: str, *, signed_in_as: int | None) -> dict:
    """Uses a verification link: the account is verified (with the password chosen in
    that registration) and returned, for the caller to sign it in."""
    stamp = utcnow()

    def work(conn: Connection) -> dict:
        row, account = _link_account(conn, secret, "verify", stamp,
                                     signed_in_as=signed_in_as, spend=True)
        if account["email_verified_at"] is None:
            queries.mark_verified(conn, account["id"], stamp, row["password_hash"])
        return queries.account_by_id(conn, account["id"])

    return db.write(work, name="account.verify", idempotent=True)


# -- sign in ------------------------------------------------------------------------


def authenticate(email: str, password: str, *, client: str) -> dict:
    """Returns the account or raises one generic :class:`InvalidCredentials`, or
    :class:`TooManyAttempts` while ``email`` is locked for the ``client`` address after
    repeated failures (see :mod:`webapp.auth.throttle`)."""
    email = normalise_email(email)
    throttle.check(email, client)
    try:
        account = _verify(email, password)
        if account.get("disabled_at") is not None:
            # The same answer as a wrong password: a disabled account is not an oracle.
            raise InvalidCredentials("Email or password is incorrect.")
    except InvalidCredentials:
        throttle.failed(email, client)
        raise
    throttle.succeeded(email, client)
    if account["role"] != "customer":
        from webapp import audit

        audit.record(actor_id=account["id"], actor_role=account["role"], action="sign-in",
                     region=account.get("admin_region") or account["home_region"],
                     store_id=account.get("store_id"))
    return account


def _verify(email: str, password: str) -> dict:
    """The account for a correct password, or one generic :class:`InvalidCredentials`.

    An account whose address is not verified yet answers exactly like a wrong password:
    anything else would tell a stranger that someone registered that address."""
    account = db.read(lambda conn: queries.account_by_email(conn, email), name="account.login")
    if account is not None and account["email_key"] != email:
        # The key column compares bytes (utf8mb4_bin), but a server configured otherwise
        # could find "josé@…" for "jose@…": only the address as registered signs in.
        account = None
    try:
        hasher.verify(account["password_hash"] if account else _dummy_hash(), password)
    except (VerifyMismatchError, VerificationError, InvalidHashError) as error:
        raise InvalidCredentials("Email or password is incorrect.") from error
    if account is None or account["email_verified_at"] is None or account["erased_at"]:
        raise InvalidCredentials("Email or password is incorrect.")
    return account


def check_password(account_id: int, password: str) -> dict:
    """Re-authentication before a sensitive change: the account, or a field error."""
    account = db.read(lambda conn: queries.account_by_id(conn, account_id), name="account",
                      causal=True)
    try:
        if account is None:
            raise VerifyMismatchError()
        hasher.verify(account["password_hash"], password)
    except (VerifyMismatchError, VerificationError, InvalidHashError) as error:
        raise ValidationFailed({"current_password": ["That is not your current password."]},
                               "Your current password is needed for this.") from error
    return account


def account(account_id: int) -> dict | None:
    """The account behind an access token, or None if it no longer exists."""
    return db.read(lambda conn: queries.account_by_id(conn, account_id), name="account")


# -- password reset, password and email changes -------------------------------------


def request_password_reset(email: str) -> None:
    """Mails a reset link if ``email`` has an account; the answer is the same if not.
    A newer request revokes the older links."""
    email = normalise_email(email)
    link = links.new_link()
    key = outbox.new_message_key()
    url = outbox.public_url("auth.reset_password", token=link.secret)
    ttl = current_app.config["RESET_TOKEN_TTL"]

    def work(conn: Connection) -> None:
        if outbox.already_queued(conn, key):
            return
        account = queries.account_by_email(conn, email)
        if account is None or account["email"] != email or account["erased_at"] is not None:
            outbox.placeholder(conn, kind="reset", key=key, name="", url=url)
            return
        now = utcnow()
        queries.revoke_account_tokens(conn, account["id"], "reset", now)
        links.store(conn, link, account_id=account["id"], purpose="reset", now=now, ttl=ttl)
        outbox.enqueue(conn, kind="reset", recipient=email, key=key, account_id=account["id"],
                       name=account["name"], url=url)

    db.write(work, name="account.request_reset", idempotent=True)


def _password_changed(conn: Connection, account: dict[str, Any], password_hash: str,
                      now: datetime, *, key: str, reset_url: str,
                      keep_family: str | None) -> None:
    """What every new password does: pending reset links die, devices are signed out
    (all of them, or all but the one that changed it), and the owner is told."""
    queries.set_password_hash(conn, account["id"], password_hash)
    queries.revoke_account_tokens(conn, account["id"], "reset", now)
    queries.revoke_all_refresh_tokens(conn, account["id"], now, except_family=keep_family)
    outbox.enqueue(conn, kind="password_changed", recipient=account["email"], key=key,
                   account_id=account["id"], name=account["name"], reset_url=reset_url,
                   kept_device=keep_family is not None)


def reset_password(secret: str, new_password: str, *, signed_in_as: int | None) -> dict:
    """Uses a reset link: sets the password, verifies the address (the link reached
    it), and revokes every refresh token of the account."""
    password_hash = hasher.hash(new_password)
    stamp = utcnow()
    key = outbox.new_message_key()
    reset_url = outbox.public_url("auth.forgot_password")

    def work(conn: Connection) -> dict:
        _row, account = _link_account(conn, secret, "reset", stamp,
                                      signed_in_as=signed_in_as, spend=True)
        if not outbox.already_queued(conn, key):
            _password_changed(conn, account, password_hash, stamp, key=key,
                              reset_url=reset_url, keep_family=None)
        if account["email_verified_at"] is None:
            queries.mark_verified(conn, account["id"], stamp)
        return account

    return db.write(work, name="account.reset_password", idempotent=True)


def change_password(account_id: int, current: str, new_password: str, *,
                    keep_family: str | None) -> None:
    account = check_password(account_id, current)
    password_hash = hasher.hash(new_password)
    key = outbox.new_message_key()
    reset_url = outbox.public_url("auth.forgot_password")

    def work(conn: Connection) -> None:
        if outbox.already_queued(conn, key):
            return
        _password_changed(conn, account, password_hash, utcnow(), key=key,
                          reset_url=reset_url, keep_family=keep_family)

    db.write(work, name="account.change_password")


def request_email_change(account_id: int, password: str, new_email: str) -> str:
    """Mails a confirmation link to the new address (or, if that address has an account,
    a note saying so) and tells the current address. Returns the new address."""
    account = check_password(account_id, password)
    new_email = normalise_email(new_email)
    if new_email == account["email"]:
        raise ValidationFailed({"email": ["That is already your address."]})
    link = links.new_link()
    keys = (outbox.new_message_key(), outbox.new_message_key())
    url = outbox.public_url("auth.confirm_email", token=link.secret)
    login_url = outbox.public_url("auth.login")
    reset_url = outbox.public_url("auth.forgot_password")
    ttl = current_app.config["EMAIL_CHANGE_TOKEN_TTL"]

    def work(conn: Connection) -> None:
        if outbox.already_queued(conn, keys[0]):
            return
        now = utcnow()
        queries.revoke_account_tokens(conn, account_id, "email", now)
        holder = queries.account_by_email(conn, new_email)
        if holder is None:
            links.store(conn, link, account_id=account_id, purpose="email", now=now, ttl=ttl,
                        email=new_email)
            outbox.enqueue(conn, kind="email_change", recipient=new_email, key=keys[0],
                           account_id=account_id, name=account["name"], url=url,
                           hours=int(ttl.total_seconds() // 3600))
        else:
            outbox.enqueue(conn, kind="email_in_use", recipient=new_email, key=keys[0],
                           account_id=holder["id"], name=holder["name"], login_url=login_url)
        outbox.enqueue(conn, kind="email_change_requested", recipient=account["email"],
                       key=keys[1], account_id=account_id, name=account["name"],
                       reset_url=reset_url)

    db.write(work, name="account.request_email_change")
    return new_email


def confirm_email_change(secret: str, *, signed_in_as: int | None) -> dict:
    """Uses an email-change link: the account's address becomes the new one; the old
    address is told."""
    stamp = utcnow()
    key = outbox.new_message_key()

    def work(conn: Connection) -> dict:
        # Spent below, only once the change is sure to go ahead.
        row, account = _link_account(conn, secret, "email", stamp,
                                     signed_in_as=signed_in_as, spend=False)
        if account["email"] == row["email"]:
            return account  # done by an earlier run of this request
        if queries.account_by_email(conn, row["email"]) is not None:
            raise EmailTaken("Another account started using this address meanwhile, so "
                             "yours keeps its old one.")
        links.spend(conn, row, stamp)
        try:
            queries.set_email(conn, account["id"], row["email"])
        except sa_exc.IntegrityError as error:
            raise RetryTransaction() from error
        outbox.enqueue(conn, kind="email_changed", recipient=account["email"], key=key,
                       account_id=account["id"], name=account["name"])
        return dict(account, email=row["email"])

    return db.write(work, name="account.confirm_email")
