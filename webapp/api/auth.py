"""Bearer authentication for the API (RFC 6750), on the same token service as the pages.

Cookies are never read here: a request carries its access token in the Authorization
header or it is anonymous, which is also why the API needs no CSRF token.
"""

from __future__ import annotations

from typing import Literal

from flask import g, request

from webapp.auth import tokens
from webapp.auth.tokens import Principal
from webapp.errors import Forbidden, Unauthorized

Access = Literal["public", "account", "staff"]
REALM = "loyalty-card"
# RFC 6750 error codes for the WWW-Authenticate challenge.
INVALID_TOKEN = "invalid_token"  # noqa: S105 - an error code, not a secret
INSUFFICIENT_SCOPE = "insufficient_scope"


def authenticate(access: Access) -> Principal | None:
    """The caller, if ``access`` needs one: 401 without a valid token, 403 for a customer
    calling a staff operation."""
    if access == "public":
        return None
    scheme, _, token = request.headers.get("Authorization", "").partition(" ")
    token = token.strip()
    if scheme.lower() != "bearer" or not token:
        raise Unauthorized("Send an access token: 'Authorization: Bearer <token>'.")
    try:
        principal = tokens.decode_access_token(token)
        tokens.ensure_live(principal)
    except Unauthorized:
        g.api_token_error = INVALID_TOKEN
        raise
    g.api_principal = principal
    if principal.is_member:
        # A family member's sign-in shows their one card on the card page; the API
        # manages the owner's account, which a member may not.
        g.api_token_error = INSUFFICIENT_SCOPE
        raise Forbidden("A family member's sign-in can only show its card on the card page.")
    if access == "staff" and not principal.is_staff:
        g.api_token_error = INSUFFICIENT_SCOPE
        raise Forbidden("This operation is for café staff.")
    return principal


def current_principal() -> Principal:
    """The authenticated caller of an ``account`` or ``staff`` operation."""
    return g.api_principal


def add_challenge(response):
    """401s say how to authenticate; a 401/403 caused by the token says what was wrong."""
    error = g.pop("api_token_error", None)
    status = response.status_code
    if (status == 401 or (status == 403 and error)) and (
            "WWW-Authenticate" not in response.headers):
        challenge = f'Bearer realm="{REALM}"'
        if error:
            challenge += f', error="{error}"'
        response.headers["WWW-Authenticate"] = challenge
    return response
