"""JSON API v1: Bearer JWT, problem+json errors, OpenAPI 3.1 document."""

from flask import Blueprint

bp = Blueprint("api", __name__)

from . import routes  # noqa: E402,F401
