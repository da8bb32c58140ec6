"""Accounts: register and authenticate. Password hashes are argon2id."""

from __future__ import annotations

import functools

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError
from sqlalchemy import exc as sa_exc

from webapp.card.numbers import new_card_number, new_code_secret
from webapp.clock import utcnow
from webapp.errors import EmailTaken, InvalidCredentials
from webapp.extensions import db

from . import queries
from .emails import normalize_email

hasher = PasswordHasher()  # argon2id with the library's current recommended cost


@functools.cache
def _dummy_hash() -> str:
    """Verified when the email is unknown, so a miss costs as long as a wrong password and
    response time does not reveal which emails have accounts. Made on first use: at import
    it cost every gunicorn worker 0.3 s of CPU at each (re)start."""
    return hasher.hash("not-a-real-password-only-for-timing")


def register(*, name: str, email: str, password: str, region: str, role: str = "customer",
             store_id: int | None = None) -> dict:
    """Creates the account, its wallet and its holder's card (slot 0) in one transaction."""
    email = normalize_email(email)
    password_hash = hasher.hash(password)

    def create(conn):
        now = utcnow()
        account_id = queries.insert_account(
            conn, email=email, name=name, password_hash=password_hash, home_region=region,
            role=role, store_id=store_id, created_at=now,
        )
        wallet_id = queries.insert_wallet(conn, account_id, now)
        queries.insert_card(
            conn, account_id=account_id, wallet_id=wallet_id, slot=0, number=new_card_number(),
            display_name=name, code_secret=new_code_secret(), created_at=now,
        )
        return queries.account_by_id(conn, account_id)

    try:
        return db.write(create, name="account.register")
    except sa_exc.IntegrityError as error:
        if db.read(lambda conn: queries.account_by_email(conn, email), name="account.email"):
            raise EmailTaken(
                "We could not create an account with these details. "
                "If you already have one, sign in instead."
            ) from error
        raise


def authenticate(email: str, password: str) -> dict:
    """Returns the account or raises one generic :class:`InvalidCredentials`."""
    email = normalize_email(email)
    account = db.read(lambda conn: queries.account_by_email(conn, email), name="account.login")
    if account is not None and account["email_key"] != email:
        # The key column compares bytes (utf8mb4_bin), but a server configured otherwise
        # could find "josé@…" for "jose@…": only the address as registered signs in.
        account = None
    try:
        hasher.verify(account["password_hash"] if account else _dummy_hash(), password)
    except (VerifyMismatchError, VerificationError, InvalidHashError) as error:
        raise InvalidCredentials("Email or password is incorrect.") from error
    if account is None:
        raise InvalidCredentials("Email or password is incorrect.")
    return account


def account(account_id: int) -> dict | None:
    """The account behind an access token, or None if it no longer exists."""
    return db.read(lambda conn: queries.account_by_id(conn, account_id), name="account")
