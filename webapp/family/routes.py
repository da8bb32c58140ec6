"""Family members: add, rename, remove. htmx swaps the list block of the same page;
without JavaScript the same forms post and redirect."""

from __future__ import annotations

from flask import Blueprint, current_app, flash, redirect, url_for

from webapp.auth.session import current_principal, login_required
from webapp.errors import AppError, OutcomeUnknown
from webapp.pages import is_htmx_partial_request, render_page

from . import services
from .forms import AddMemberForm, MemberForm

bp = Blueprint("family", __name__)

# Ids are BIGINT: a longer number in the URL is a 404, not an overflow in the driver.
MEMBER_ID = "<int(max=9223372036854775807):card_id>"


def _family_page(form: AddMemberForm | None = None, *, error: str | None = None,
                 status: int = 200, edit_forms: dict | None = None):
    account_id = current_principal().account_id
    members = services.members(account_id)
    forms = {m["id"]: MemberForm(prefix=f"m{m['id']}", data={
        "name": m["display_name"], "birthday": m["birthday"]}) for m in members}
    forms.update(edit_forms or {})
    body = render_page(
        "family/family.html", partial="family_list", members=members,
        form=form or AddMemberForm(formdata=None), edit_forms=forms, error=error,
        limit=current_app.config["FAMILY_LIMIT"],
    )
    return body, status


def _done(message: str):
    if is_htmx_partial_request():
        flash(message)
        return _family_page()
    flash(message)
    return redirect(url_for("family.show"))


@bp.route("/family")
@login_required
def show():
    return _family_page()


@bp.route("/family", methods=["POST"])
@login_required
def add():
    form = AddMemberForm()
    if not form.validate():
        return _family_page(form, status=422)
    try:
        added = services.add(current_principal().account_id, form.name.data,
                             form.birthday.data, request_id=form.request_id.data)
    except OutcomeUnknown as error:
        # The form keeps its request id, so pressing Add again cannot add a second one.
        message = (f"We couldn't confirm that {form.name.data} was added. Press "
                   "Add member again: they will not be added twice.")
        return _family_page(form, error=message, status=error.status)
    except AppError as error:
        return _family_page(form, error=error.detail, status=error.status)
    return _done(f"{added.card['display_name']} now has a card.")


@bp.route(f"/family/{MEMBER_ID}", methods=["POST"])
@login_required
def rename(card_id: int):
    form = MemberForm(prefix=f"m{card_id}")
    if not form.validate():
        return _family_page(status=422, edit_forms={card_id: form})
    try:
        services.rename(current_principal().account_id, card_id, form.name.data,
                        form.birthday.data)
    except AppError as error:
        return _family_page(error=error.detail, status=error.status)
    return _done("Saved.")


@bp.route(f"/family/{MEMBER_ID}/remove", methods=["POST"])
@login_required
def remove(card_id: int):
    try:
        services.remove(current_principal().account_id, card_id)
    except AppError as error:
        return _family_page(error=error.detail, status=error.status)
    return _done("Family member removed. Their past purchases stay in your history.")
