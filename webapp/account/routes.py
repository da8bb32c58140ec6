"""/account: thin views over webapp.account.services, webapp.auth.services and
webapp.passkeys.services. Every page here is no-store: it shows a signed-in person's
data."""

from __future__ import annotations

import json

from flask import flash, g, make_response, redirect, url_for

from webapp.auth import services as auth
from webapp.auth.forms import ChangeEmailForm, ChangePasswordForm
from webapp.auth.session import clear_session_cookies, current_principal, login_required
from webapp.errors import ValidationFailed
from webapp.pages import render_page
from webapp.passkeys import services as passkeys
from webapp.passkeys.forms import PasskeyNameForm

from . import bp, services
from .forms import EraseForm, ProfileForm

FAMILY = "<string(length=32):family_id>"


def _no_store(body, status: int = 200):
    response = make_response(body, status)
    response.headers["Cache-Control"] = "no-store"
    return response


def _account_page(status: int = 200, **forms):
    principal = current_principal()
    data = services.profile(principal.account_id)
    holder = data["holder"] or {}
    keys = passkeys.passkeys_of(principal.account_id)
    context = {
        "profile_form": ProfileForm(formdata=None, data={
            "name": data["account"]["name"], "birthday": holder.get("birthday")}),
        "password_form": ChangePasswordForm(formdata=None),
        "email_form": ChangeEmailForm(formdata=None),
        **forms,
    }
    return _no_store(render_page(
        "account/account.html", account=data["account"], balance=data["balance"],
        family=[c for c in data["cards"] if c["slot"] > 0],
        devices=services.devices(principal.account_id), this_device=principal.family_id,
        passkeys=keys, passkey_forms={k["id"]: PasskeyNameForm(
            formdata=None, prefix=f"p{k['id']}", data={"name": k["name"]}) for k in keys},
        **context), status)


@bp.route("/account")
@login_required
def show():
    return _account_page()


@bp.post("/account/profile")
@login_required
def profile():
    form = ProfileForm()
    if not form.validate():
        return _account_page(422, profile_form=form)
    services.update_profile(current_principal().account_id, form.name.data, form.birthday.data)
    flash("Profile saved. Your card shows the new name when you next sign in.")
    return redirect(url_for("account.show"))


@bp.post("/account/password")
@login_required
def password():
    form = ChangePasswordForm()
    if form.validate():
        principal = current_principal()
        try:
            auth.change_password(principal.account_id, form.current_password.data,
                                 form.password.data, keep_family=principal.family_id)
        except ValidationFailed as error:
            form.current_password.errors = error.errors["current_password"]
        else:
            flash("Password changed. Your other devices were signed out.")
            return redirect(url_for("account.show"))
    return _account_page(422, password_form=form)


@bp.post("/account/email")
@login_required
def email():
    form = ChangeEmailForm()
    if form.validate():
        try:
            new_email = auth.request_email_change(current_principal().account_id,
                                                  form.email_password.data, form.email.data)
        except ValidationFailed as error:
            for name, messages in error.errors.items():
                field = form.email_password if name == "current_password" else form.email
                field.errors = messages
        else:
            flash(f"We sent a link to {new_email}. Your address changes when you open it.")
            return redirect(url_for("account.show"))
    return _account_page(422, email_form=form)


@bp.post(f"/account/devices/{FAMILY}/sign-out")
@login_required
def sign_out_device(family_id: str):
    principal = current_principal()
    services.sign_out_device(principal.account_id, family_id)
    if family_id == principal.family_id:
        response = redirect(url_for("auth.login"))
        clear_session_cookies(response)
        return response
    flash("That device is signed out.")
    return redirect(url_for("account.show") + "#devices")


@bp.post("/account/devices/sign-out")
@login_required
def sign_out_everywhere():
    services.sign_out_everywhere(current_principal().account_id)
    response = redirect(url_for("auth.login"))
    clear_session_cookies(response)
    return response


@bp.post("/account/export")
@login_required
def export():
    data = services.export(current_principal().account_id)
    response = make_response(json.dumps(data, ensure_ascii=False, indent=1))
    response.mimetype = "application/json"
    day = data["exported_at"][:10]
    response.headers["Content-Disposition"] = (
        f'attachment; filename="loyalty-card-data-{day}.json"')
    response.headers["Cache-Control"] = "no-store"
    return response


@bp.route("/account/delete", methods=["GET", "POST"])
@login_required
def erase():
    principal = current_principal()
    form = EraseForm()
    if form.validate_on_submit():
        try:
            forfeited = services.erase(principal.account_id, form.current_password.data)
        except ValidationFailed as error:
            form.current_password.errors = error.errors["current_password"]
        else:
            g.principal = None  # the page after it is a signed-out one
            response = _no_store(render_page("account/erased.html", forfeited=forfeited))
            clear_session_cookies(response)
            return response
    preview = services.erasure_preview(principal.account_id)
    status = 422 if form.errors else 200
    return _no_store(render_page("account/erase.html", form=form, preview=preview), status)
