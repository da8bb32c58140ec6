"""The account page: profile, sign-in methods (passkeys, password, email), signed-in
devices, and the owner's data (export, erasure)."""

from flask import Blueprint

bp = Blueprint("account", __name__)

from . import routes  # noqa: E402,F401
