"""The till: café staff scan a card and earn or redeem coins."""

from flask import Blueprint

bp = Blueprint("till", __name__)

from . import routes  # noqa: E402,F401
