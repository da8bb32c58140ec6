"""JSON API v1: Bearer JWT, problem+json errors, OpenAPI 3.1 document."""

from flask import Blueprint

from webapp.extensions import csrf

bp = Blueprint("api", __name__)
# Bearer tokens only, never cookies: a cross-site page can't make the browser authenticate.
csrf.exempt(bp)

from . import console, routes  # noqa: E402,F401
