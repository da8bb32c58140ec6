"""Page sessions: the token pair in HttpOnly cookies, refreshed transparently.

The access token is read on every request; when it has expired, the refresh cookie is
rotated once and the new cookies are set on the way out. Anything invalid simply means
"not signed in": pages redirect to the login page (htmx gets ``HX-Redirect``), never a
500.

What a signed-in page leaves in the browser must not outlive the session: every answer
to a signed-in user is ``no-store`` (no HTTP cache, no back/forward cache to bring a card
back after sign-out), and sign-out asks the browser to clear the site's cache and storage.
A third cookie, ``account``, names the signed-in account by a keyed hash (not a secret,
and readable by scripts on purpose): the service worker and the card script compare it
with the card they hold, so a card is never shown to another account or after the
session ended, even offline.
"""

from __future__ import annotations

import functools
import hashlib
import hmac
from collections.abc import Callable
from typing import Any

from flask import Flask, current_app, g, redirect, request, session, url_for
from flask.typing import ResponseReturnValue

from webapp.errors import Forbidden, Unauthorized

from . import queries, tokens

ACCESS_COOKIE = "access_token"
REFRESH_COOKIE = "refresh_token"
ACCOUNT_COOKIE = "account"
# Sign-out clears what the browser kept for the site: the HTTP and back/forward caches,
# and storage (the offline card the service worker holds; the worker registers again on
# the next page). Not "cookies": that would reach every site of the registrable domain.
CLEAR_SITE_DATA = '"cache", "storage"'
# Answers with their own caching rules: the worker script, the manifest, static files.
_OWN_CACHING = frozenset({"static", "pwa.service_worker", "pwa.manifest"})


def current_principal() -> tokens.Principal | None:
    return g.get("principal")


def account_tag(account_id: int) -> str:
    """Names an account to the browser without revealing its id or being guessable for
    another account: a keyed hash, stable for the account, so it can key the offline card."""
    key = current_app.config["SECRET_KEY"].encode()
    return hmac.new(key, f"account-tag:{account_id}".encode(), hashlib.sha256).hexdigest()[:24]


def init_app(app: Flask) -> None:
    app.before_request(_load_principal)
    app.after_request(_finish_response)
    app.context_processor(lambda: {"principal": current_principal()})


def _load_principal() -> None:
    g.principal = None
    if request.path.startswith(("/static/", "/api/")) or request.endpoint == "static":
        return  # the API authenticates with Bearer tokens, never cookies
    access = request.cookies.get(ACCESS_COOKIE)
    if access:
        try:
            principal = tokens.decode_access_token(access)
        except Unauthorized:
            pass
        else:
            if principal.family_id and _view_checks_session():
                # The view asks in its own first statement (checks_session_itself).
                g.principal = principal
                g.unchecked_session = principal.family_id
                return
            if not _session_live(principal):
                return
            g.principal = principal
            return
    refresh = request.cookies.get(REFRESH_COOKIE)
    if refresh:
        try:
            pair = tokens.rotate(refresh)
        except Unauthorized:
            g.clear_session_cookies = True
            return
        g.principal = tokens.decode_access_token(pair.access_token)
        g.rotated_pair = pair
    elif request.cookies.get(ACCOUNT_COOKIE):
        g.clear_session_cookies = True  # it outlived the session: it must not name anyone


def _session_live(principal: tokens.Principal) -> bool:
    try:
        tokens.ensure_live(principal)
    except Unauthorized:  # signed out from another device: so is its refresh token
        g.clear_session_cookies = True
        return False
    return True


def _view_checks_session() -> bool:
    """Reads only: a write must never run for a device that was signed out."""
    view = current_app.view_functions.get(request.endpoint or "")
    return request.method in ("GET", "HEAD") and getattr(view, CHECKS_SESSION_ITSELF, False)


def checks_session_itself(view: Callable[..., ResponseReturnValue]) -> Callable[..., Any]:
    """For GET pages that read the database anyway (the card page and its live poll):
    the device's session check (:func:`webapp.auth.tokens.ensure_live`) is not a
    transaction of its own before the view but a column of the view's first statement,
    which saves a read transaction and its COMMIT per request. The view gets the family
    to check from :func:`unchecked_session` and calls :func:`session_checked` once its
    read said the session is live (or signs the caller out when it is not).

    Fails closed: if the view returns (or raises) without having confirmed the check,
    it is made here, before anything leaves, and a signed-out device gets the sign-in
    page instead of what the view made."""

    @functools.wraps(view)
    def wrapped(**kwargs: Any) -> ResponseReturnValue:
        try:
            response = view(**kwargs)
        except Exception:
            if not _confirmed_late():
                return redirect_to_login()
            raise
        if not _confirmed_late():
            return redirect_to_login()
        return response

    setattr(wrapped, CHECKS_SESSION_ITSELF, True)
    return wrapped


CHECKS_SESSION_ITSELF = "checks_session_itself"


def unchecked_session() -> str | None:
    """The device (refresh-token family) whose session this request has not checked
    yet: the view's read must check it (see :func:`checks_session_itself`)."""
    return g.get("unchecked_session")


def session_checked() -> None:
    """The view's read found the session live (or the view signed the caller out)."""
    g.pop("unchecked_session", None)


def check_unchecked_session(conn) -> None:
    """The session check a request deferred and has not made yet, in ``conn``'s
    transaction (see :meth:`webapp.database.Database.before_commit`)."""
    family = g.get("unchecked_session")
    if family is None:
        return
    if not queries.family_is_live(conn, family):
        raise tokens.signed_out()
    session_checked()


def _confirmed_late() -> bool:
    """The check the view did not make, made now; False when the device was signed out
    (the principal is dropped and the cookies are cleared on the way out)."""
    if g.pop("unchecked_session", None) is None:
        return True
    principal = current_principal()
    if principal is None or _session_live(principal):
        return True
    g.principal = None
    return False


def _finish_response(response):
    pair = g.pop("rotated_pair", None)
    if pair is not None:
        set_session_cookies(response, pair)
    elif g.pop("clear_session_cookies", False):
        clear_session_cookies(response)
    if current_principal() is not None and request.endpoint not in _OWN_CACHING:
        response.headers["Cache-Control"] = "no-store"
    return response


def start_session(response, pair: tokens.TokenPair) -> None:
    """Sign-in (and registration): the token cookies, and a new Flask session, so the
    CSRF token it holds is not one that was handed out (or planted) before sign-in."""
    _new_csrf_session()
    set_session_cookies(response, pair)


def end_session(response) -> None:
    """Sign-out: the cookies go, the CSRF session is replaced, and the browser is asked
    to drop what it kept of the site."""
    _new_csrf_session()
    clear_session_cookies(response)
    response.headers["Clear-Site-Data"] = CLEAR_SITE_DATA


def _new_csrf_session() -> None:
    # Flask-WTF keeps the raw CSRF token in the session and remembers it in g for the
    # request; without both, the next form gets a new token in a new session cookie.
    session.clear()
    g.pop("csrf_token", None)


def set_session_cookies(response, pair: tokens.TokenPair) -> None:
    config = current_app.config
    secure = bool(config["HTTPS"])
    lifetime = int(config["REFRESH_TOKEN_TTL"].total_seconds())
    response.set_cookie(
        ACCESS_COOKIE, pair.access_token, max_age=pair.expires_in, httponly=True,
        secure=secure, samesite="Lax", path="/",
    )
    if pair.refresh_token:
        response.set_cookie(
            REFRESH_COOKIE, pair.refresh_token, max_age=lifetime, httponly=True,
            secure=secure, samesite="Lax", path="/",
        )
        # Readable by scripts on purpose (see the module docstring); lives as long as
        # the refresh token it stands for.
        account_id = tokens.decode_access_token(pair.access_token).account_id
        response.set_cookie(
            ACCOUNT_COOKIE, account_tag(account_id), max_age=lifetime, httponly=False,
            secure=secure, samesite="Lax", path="/",
        )
    response.headers["Cache-Control"] = "no-store"


def clear_session_cookies(response) -> None:
    for name in (ACCESS_COOKIE, REFRESH_COOKIE, ACCOUNT_COOKIE):
        response.delete_cookie(name, path="/", secure=bool(current_app.config["HTTPS"]),
                               samesite="Lax")
    response.headers["Cache-Control"] = "no-store"


def login_required(view: Callable[..., ResponseReturnValue]) -> Callable[..., Any]:
    @functools.wraps(view)
    def wrapped(**kwargs: Any) -> ResponseReturnValue:
        if current_principal() is None:
            return redirect_to_login()
        return view(**kwargs)

    return wrapped


def owner_required(view: Callable[..., ResponseReturnValue]) -> Callable[..., Any]:
    """Pages that manage the account (the family): not for a family member's own
    sign-in, which only shows its card."""

    @functools.wraps(view)
    def wrapped(**kwargs: Any) -> ResponseReturnValue:
        principal = current_principal()
        if principal is None:
            return redirect_to_login()
        if principal.is_member:
            raise Forbidden("Only the card's owner can manage the family.")
        return view(**kwargs)

    return wrapped


def staff_required(view: Callable[..., ResponseReturnValue]) -> Callable[..., Any]:
    @functools.wraps(view)
    def wrapped(**kwargs: Any) -> ResponseReturnValue:
        principal = current_principal()
        if principal is None:
            return redirect_to_login()
        if not principal.is_staff:
            raise Forbidden("This page is for café staff.")
        return view(**kwargs)

    return wrapped


def redirect_to_login():
    # full_path ends in "?" when there is no query string; keep the next URL clean.
    next_url = request.full_path.rstrip("?") if request.method == "GET" else None
    target = url_for("auth.login", next=next_url)
    if request.headers.get("HX-Request"):
        # Swapping a login form into a fragment would be confusing: go to the page.
        response = current_app.response_class(status=204)
        response.headers["HX-Redirect"] = target
        return response
    return redirect(target)
