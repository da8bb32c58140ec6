"""Register, sign in, sign out."""

from __future__ import annotations

import unicodedata
from urllib.parse import urlsplit

from flask import current_app, jsonify, redirect, request, url_for

from webapp.errors import EmailTaken, InvalidCredentials
from webapp.extensions import limiter
from webapp.pages import render_page

from . import bp, services, tokens
from .forms import LoginForm, RegisterForm
from .session import REFRESH_COOKIE, account_tag, current_principal, end_session, start_session


def _login_limit() -> str:
    return current_app.config["LOGIN_RATE_LIMIT"]


def _safe_next(target: str | None) -> str:
    """Only same-site paths: an open redirect would turn our login into a phishing aid.

    No control characters or whitespace (a CR/LF would reach the Location header), and no
    backslash: browsers read "/\\evil.example" as "//evil.example"."""
    if (target and target.startswith("/") and not target.startswith("//")
            and "\\" not in target and not any(_unsafe_in_url(ch) for ch in target)):
        parts = urlsplit(target)
        if not parts.scheme and not parts.netloc:
            return target
    return url_for("card.show")


def _unsafe_in_url(char: str) -> bool:
    # C*: controls, format characters (bidi, zero-width), surrogates, unassigned; Z*: spaces
    # and line/paragraph separators.
    return unicodedata.category(char)[0] in "CZ"


@bp.route("/")
def index():
    return redirect(url_for("card.show" if current_principal() else "auth.login"))


@bp.route("/login", methods=["GET", "POST"])
@limiter.limit(_login_limit, methods=["POST"])
def login():
    form = LoginForm()
    error = None
    if form.validate_on_submit():
        try:
            account = services.authenticate(form.email.data, form.password.data)
        except InvalidCredentials as exc:  # a database outage stays a 503, not a 401
            error = exc.detail
        else:
            target = _safe_next(request.args.get("next"))
            if account["role"] in ("staff", "admin") and not request.args.get("next"):
                target = url_for("till.show")
            response = redirect(target)
            start_session(response, tokens.issue_token_pair(account))
            return response
    status = 401 if error else (422 if form.errors else 200)
    return render_page("auth/login.html", form=form, error=error), status


@bp.route("/register", methods=["GET", "POST"])
@limiter.limit(_login_limit, methods=["POST"])
def register():
    form = RegisterForm()
    error = None
    if form.validate_on_submit():
        try:
            account = services.register(
                name=form.name.data, email=form.email.data, password=form.password.data,
                region=form.region.data,
            )
        except EmailTaken as exc:
            error = exc.detail
        else:
            response = redirect(url_for("card.show"))
            start_session(response, tokens.issue_token_pair(account))
            return response
    status = 409 if error else (422 if form.errors else 200)
    return render_page("auth/register.html", form=form, error=error), status


@bp.route("/logout", methods=["POST"])
def logout():
    refresh = request.cookies.get(REFRESH_COOKIE)
    if refresh:
        tokens.revoke(refresh)
    response = redirect(url_for("auth.login"))
    end_session(response)
    return response


@bp.get("/session")
def session_status():
    """Whether the session is still on, and for which account: what the card script
    asks when the browser brings a card page back from its back/forward cache."""
    principal = current_principal()
    if principal is None:
        response = jsonify(status="signed-out")
        response.status_code = 401
        response.headers["Cache-Control"] = "no-store"
        return response
    return jsonify(account=account_tag(principal.account_id))
