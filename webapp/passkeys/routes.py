"""Passkey endpoints for static/js/passkeys.js (JSON in, JSON out, CSRF header), and the
account page's plain forms to rename and remove one."""

from __future__ import annotations

from typing import Any

from flask import current_app, flash, jsonify, redirect, request, url_for

from webapp.auth import tokens
from webapp.auth.session import current_principal, login_required, start_session
from webapp.errors import AppError
from webapp.extensions import limiter

from . import bp, services
from .forms import PasskeyNameForm

PASSKEY_ID = "<int(max=9223372036854775807):passkey_id>"


def _login_limit() -> str:
    return current_app.config["LOGIN_RATE_LIMIT"]


def _json_options(options: str):
    response = current_app.response_class(options, mimetype="application/json")
    response.headers["Cache-Control"] = "no-store"
    return response


def _problem(error: AppError):
    response = jsonify(error=error.detail)
    response.status_code = error.status
    return response


def _credential() -> dict[str, Any]:
    body = request.get_json(silent=True)
    credential = body.get("credential") if isinstance(body, dict) else None
    if not isinstance(credential, dict):
        raise services.PasskeyRejected("That is not a passkey response.")
    return credential


@bp.post("/login/passkey/options")
@limiter.limit(_login_limit)
def login_options():
    return _json_options(services.login_options())


@bp.post("/login/passkey")
@limiter.limit(_login_limit)
def login():
    from webapp.auth.routes import _safe_next

    try:
        account = services.authenticate(_credential())
    except AppError as error:
        return _problem(error)
    body = request.get_json(silent=True) or {}
    target = _safe_next(body.get("next") if isinstance(body.get("next"), str) else None)
    if account["role"] in ("staff", "admin") and not body.get("next"):
        target = url_for("till.show")
    response = jsonify(redirect=target)
    start_session(response, tokens.issue_token_pair(account))
    return response


@bp.post("/account/passkeys/options")
@login_required
def register_options():
    try:
        return _json_options(services.registration_options(current_principal().account_id))
    except AppError as error:
        return _problem(error)


@bp.post("/account/passkeys")
@login_required
def register():
    body = request.get_json(silent=True)
    raw_name = body.get("name") if isinstance(body, dict) else None
    # CSRFProtect checked the header already; the form only validates the name.
    form = PasskeyNameForm(formdata=None, meta={"csrf": False},
                           data={"name": raw_name if isinstance(raw_name, str) else ""})
    if not form.validate():
        return jsonify(error=" ".join(form.name.errors)), 422
    try:
        passkey = services.add(current_principal().account_id, _credential(), form.name.data)
    except AppError as error:
        return _problem(error)
    flash(f"Passkey “{passkey['name']}” added. You can sign in with it now.")
    return jsonify(id=passkey["id"], name=passkey["name"], redirect=url_for("account.show")), 201


@bp.post(f"/account/passkeys/{PASSKEY_ID}")
@login_required
def rename(passkey_id: int):
    form = PasskeyNameForm(prefix=f"p{passkey_id}")
    if form.validate():
        services.rename(current_principal().account_id, passkey_id, form.name.data)
        flash("Passkey renamed.")
    else:
        flash("A passkey name: " + " ".join(form.name.errors))
    return redirect(url_for("account.show") + "#passkeys")


@bp.post(f"/account/passkeys/{PASSKEY_ID}/remove")
@login_required
def remove(passkey_id: int):
    services.remove(current_principal().account_id, passkey_id)
    flash("Passkey removed: it no longer signs in.")
    return redirect(url_for("account.show") + "#passkeys")
