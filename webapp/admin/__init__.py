"""The operator console (/admin): stores, staff, rewards, customer support, the audit
log and the store's day. Views parse forms and call :mod:`webapp.staff.console`."""

from flask import Blueprint

bp = Blueprint("admin", __name__, url_prefix="/admin")

from . import routes  # noqa: E402,F401
