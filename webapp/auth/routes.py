"""Register (with a verified address), sign in and out, recover a password, confirm a
new address. The mailed links open a page with one button: opening a link changes
nothing, so a mail scanner that follows it can't use it up."""

from __future__ import annotations

import unicodedata
from urllib.parse import urlsplit

from flask import Blueprint, jsonify, make_response, redirect, request, url_for

from webapp.errors import InvalidCredentials, TooManyAttempts
from webapp.extensions import limiter
from webapp.i18n.messages import page_text
from webapp.pages import render_page

from . import services, throttle, tokens
from .forms import ConfirmForm, ForgotPasswordForm, LoginForm, RegisterForm, ResetPasswordForm
from .limits import address_key, address_limit
from .session import REFRESH_COOKIE, account_tag, current_principal, end_session, start_session

bp = Blueprint("auth", __name__)

# Mailed links carry 43 characters; anything much longer is not ours.
LINK = "<string(maxlength=100):token>"


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


def _signed_in_as() -> int | None:
    principal = current_principal()
    return principal.account_id if principal else None


def _no_store(body, status: int = 200):
    """Pages that show a link's form or a signed-in person's data: never cached."""
    response = make_response(body, status)
    response.headers["Cache-Control"] = "no-store"
    return response


def _link_page(token: str, purpose: str, form, use, template: str, *,
                status_on_errors: int = 200, **context):
    """An emailed link's page: a valid post uses the link (``use``); otherwise the link
    is checked first (a bad one never shows its form) and its form is shown, uncached."""
    if form.validate_on_submit():
        return use()
    services.check_link(token, purpose, signed_in_as=_signed_in_as())
    status = status_on_errors if form.errors else 200
    return _no_store(render_page(template, form=form, **context), status)


def _mail_a_link(form, template: str, send, sent: str):
    """A form whose answer is a mailed link (sign-up, forgotten password): a valid post
    calls ``send`` and says "check your inbox" (``sent``, an endpoint), the same answer
    whether or not the address has an account."""
    if form.validate_on_submit():
        send(form)
        return redirect(url_for(sent))
    return render_page(template, form=form), 422 if form.errors else 200


def _unsafe_in_url(char: str) -> bool:
    # C*: controls, format characters (bidi, zero-width), surrogates, unassigned; Z*: spaces
    # and line/paragraph separators.
    return unicodedata.category(char)[0] in "CZ"


@bp.route("/")
def index():
    return redirect(url_for("card.show" if current_principal() else "auth.login"))


@bp.route("/login", methods=["GET", "POST"])
@throttle.sign_in_limited
def login():
    form = LoginForm()
    error = None
    if form.validate_on_submit():
        try:
            account = services.authenticate(form.email.data, form.password.data,
                                            client=throttle.client())
        except TooManyAttempts as exc:  # the form again, saying how long to wait
            return render_page("auth/login.html", form=form, error=page_text(exc.detail)), 429, {
                "Retry-After": str(exc.retry_after)}
        except InvalidCredentials as exc:  # a database outage stays a 503, not a 401
            error = page_text(exc.detail)
        else:
            target = _safe_next(request.args.get("next"))
            if account["role"] in ("staff", "manager", "admin") and not request.args.get("next"):
                target = url_for("admin.index" if account["role"] != "staff" else "till.show")
            if account.get("must_change_password"):
                target = url_for("admin.password")
            response = redirect(target)
            start_session(response, tokens.issue_token_pair(account))
            return response
    status = 401 if error else (422 if form.errors else 200)
    return render_page("auth/login.html", form=form, error=error), status


@bp.route("/register", methods=["GET", "POST"])
@throttle.sign_up_limited
@limiter.limit(address_limit, key_func=address_key, methods=["POST"])
def register():
    def send(form):
        services.start_registration(name=form.name.data, email=form.email.data,
                                    password=form.password.data, region=form.region.data)

    return _mail_a_link(RegisterForm(), "auth/register.html", send, "auth.register_sent")


@bp.route("/register/sent")
def register_sent():
    return render_page("auth/check_inbox.html", what="register")


@bp.route(f"/verify/{LINK}", methods=["GET", "POST"])
def verify(token: str):
    def use():
        account = services.verify_email(token, signed_in_as=_signed_in_as())
        response = redirect(url_for("card.show"))
        start_session(response, tokens.issue_token_pair(account))
        return response

    return _link_page(token, "verify", ConfirmForm(), use, "auth/confirm_link.html",
                      what="verify")


@bp.route("/password/forgot", methods=["GET", "POST"])
@limiter.limit(throttle.sign_in_limit, methods=["POST"])
@limiter.limit(address_limit, key_func=address_key, methods=["POST"])
def forgot_password():
    return _mail_a_link(ForgotPasswordForm(), "auth/forgot.html",
                        lambda form: services.request_password_reset(form.email.data),
                        "auth.reset_sent")


@bp.route("/password/forgot/sent")
def reset_sent():
    return render_page("auth/check_inbox.html", what="reset")


@bp.route(f"/password/reset/{LINK}", methods=["GET", "POST"])
@limiter.limit(throttle.sign_in_limit, methods=["POST"])
def reset_password(token: str):
    form = ResetPasswordForm()

    def use():
        services.reset_password(token, form.password.data, signed_in_as=_signed_in_as())
        response = redirect(url_for("auth.login", reset=1))
        end_session(response)
        return response

    return _link_page(token, "reset", form, use, "auth/reset.html",
                      status_on_errors=422)


@bp.route(f"/email/confirm/{LINK}", methods=["GET", "POST"])
def confirm_email(token: str):
    def use():
        services.confirm_email_change(token, signed_in_as=_signed_in_as())
        return _no_store(render_page("auth/email_changed.html"))

    return _link_page(token, "email", ConfirmForm(), use, "auth/confirm_link.html",
                      what="email")


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
