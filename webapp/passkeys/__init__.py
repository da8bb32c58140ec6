"""Passkeys (WebAuthn): sign in without a password. Registered from the account page,
several per account, each with a name; checked with the ``webauthn`` library."""

from flask import Blueprint

bp = Blueprint("passkeys", __name__)

from . import routes  # noqa: E402,F401
