from flask import Blueprint

bp = Blueprint("card", __name__)

from . import routes  # noqa: E402,F401
