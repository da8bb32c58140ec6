"""Bearer authentication for the API (RFC 6750), on the same token service as the pages.

Cookies are never read here: a request carries its access token in the Authorization
header or it is anonymous, which is also why the API needs no CSRF token.
"""

from __future__ import annotations

from typing import Literal

from flask import g, request

from webapp.auth import tokens
from webapp.auth.session import check_unchecked_session
from webapp.auth.tokens import Principal
from webapp.errors import Forbidden, Unauthorized
from webapp.extensions import db

Access = Literal["public", "account", "staff"]
REALM = "loyalty-card"
# RFC 6750 error codes for the WWW-Authenticate challenge.
INVALID_TOKEN = "invalid_token"  # noqa: S105 - an error code, not a secret
INSUFFICIENT_SCOPE = "insufficient_scope"


def authenticate(access: Access, *, defer_session_check: bool = False) -> Principal | None:
    """The caller, if ``access`` needs one: 401 without a valid token, 403 for a customer
    calling a staff operation.

    ``defer_session_check`` (an operation whose service checks the device's session in
    its own first statement, saving a transaction: see ``Operation.checks_session_itself``):
    the check is left pending (:func:`webapp.auth.session.unchecked_session`). Fail-closed:
    a write of this request makes it before COMMIT if still pending, and so does
    :func:`confirm_session` before the answer leaves."""
    if access == "public":
        return None
    scheme, _, token = request.headers.get("Authorization", "").partition(" ")
    token = token.strip()
    if scheme.lower() != "bearer" or not token:
        raise Unauthorized("Send an access token: 'Authorization: Bearer <token>'.")
    try:
        principal = tokens.decode_access_token(token)
    except Unauthorized:
        g.api_token_error = INVALID_TOKEN
        raise
    g.api_principal = principal
    # Deferred only for a caller the operation is for: anyone else is refused below,
    # and a signed-out device is told so (401) rather than what it may not do (403).
    in_scope = principal.is_staff if access == "staff" else not principal.is_member
    deferred = defer_session_check and principal.family_id is not None and in_scope
    if deferred:
        g.unchecked_session = principal.family_id
        db.before_commit(check_unchecked_session)
    else:
        try:
            tokens.ensure_live(principal)
        except Unauthorized:
            g.api_token_error = INVALID_TOKEN
            raise
    if principal.is_member:
        # A family member's sign-in shows their one card on the card page; the API
        # manages the owner's account, which a member may not.
        g.api_token_error = INSUFFICIENT_SCOPE
        raise Forbidden("A family member's sign-in can only show its card on the card page.")
    if access == "staff" and not principal.is_staff:
        g.api_token_error = INSUFFICIENT_SCOPE
        raise Forbidden("This operation is for café staff.")
    return principal


def confirm_session() -> None:
    """The deferred session check (see :func:`authenticate`), made now if the operation
    did not make it: 401 for a device signed out elsewhere, whatever the view made."""
    if g.pop("unchecked_session", None) is None:
        return
    try:
        tokens.ensure_live(g.api_principal)
    except Unauthorized:
        g.api_token_error = INVALID_TOKEN
        raise


def signed_out_in_view() -> None:
    """A view's own session check refused the device: the challenge says why."""
    g.api_token_error = INVALID_TOKEN


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
