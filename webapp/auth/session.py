"""Page sessions: the token pair in HttpOnly cookies, refreshed transparently.

The access token is read on every request; when it has expired, the refresh cookie is
rotated once and the new cookies are set on the way out. Anything invalid simply means
"not signed in": pages redirect to the login page (htmx gets ``HX-Redirect``), never a
500.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

from flask import Flask, current_app, g, redirect, request, url_for
from flask.typing import ResponseReturnValue

from webapp.errors import Forbidden, Unauthorized

from . import tokens

ACCESS_COOKIE = "access_token"
REFRESH_COOKIE = "refresh_token"


def current_principal() -> tokens.Principal | None:
    return g.get("principal")


def init_app(app: Flask) -> None:
    app.before_request(_load_principal)
    app.after_request(_store_rotated_cookies)
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
            try:
                tokens.ensure_live(principal)
            except Unauthorized:  # signed out from another device: so is its refresh token
                g.clear_session_cookies = True
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


def _store_rotated_cookies(response):
    pair = g.pop("rotated_pair", None)
    if pair is not None:
        set_session_cookies(response, pair)
    elif g.pop("clear_session_cookies", False):
        clear_session_cookies(response)
    return response


def set_session_cookies(response, pair: tokens.TokenPair) -> None:
    config = current_app.config
    secure = bool(config["HTTPS"])
    response.set_cookie(
        ACCESS_COOKIE, pair.access_token, max_age=pair.expires_in, httponly=True,
        secure=secure, samesite="Lax", path="/",
    )
    if pair.refresh_token:
        response.set_cookie(
            REFRESH_COOKIE, pair.refresh_token,
            max_age=int(config["REFRESH_TOKEN_TTL"].total_seconds()), httponly=True,
            secure=secure, samesite="Lax", path="/",
        )


def clear_session_cookies(response) -> None:
    for name in (ACCESS_COOKIE, REFRESH_COOKIE):
        response.delete_cookie(name, path="/")


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
