from flask import Blueprint

bp = Blueprint("family", __name__)

from . import routes  # noqa: E402,F401
