"""Family members: add, rename, remove. htmx swaps the list block of the same page;
without JavaScript the same forms post and redirect."""

from __future__ import annotations

from flask import Blueprint, current_app, flash, make_response, redirect, url_for
from flask_babel import gettext as _

from webapp.auth import tokens
from webapp.auth.session import (
    clear_session_cookies,
    current_principal,
    login_required,
    owner_required,
    start_session,
)
from webapp.card.qr import link_qr_svg
from webapp.errors import AppError, Forbidden, OutcomeUnknown
from webapp.i18n.messages import lazy_gettext as _l
from webapp.i18n.messages import page_text
from webapp.pages import is_htmx_partial_request, render_page

from . import invites, services
from .forms import AddMemberForm, JoinForm, MemberForm

bp = Blueprint("family", __name__)

# Ids are BIGINT: a longer number in the URL is a 404, not an overflow in the driver.
MEMBER_ID = "<int(max=9223372036854775807):card_id>"


def _family_page(form: AddMemberForm | None = None, *, error: str | None = None,
                 status: int = 200, edit_forms: dict | None = None):
    account_id = current_principal().account_id
    members = services.members(account_id)
    states = invites.states(account_id)
    forms = {m["id"]: MemberForm(prefix=f"m{m['id']}", data={
        "name": m["display_name"], "birthday": m["birthday"]}) for m in members}
    forms.update(edit_forms or {})
    body = render_page(
        "family/family.html", partial="family_list", members=members,
        form=form or AddMemberForm(formdata=None), edit_forms=forms, error=error,
        limit=current_app.config["FAMILY_LIMIT"], states=states,
    )
    return body, status


def _done(message: str):
    if is_htmx_partial_request():
        flash(message)
        return _family_page()
    flash(message)
    return redirect(url_for("family.show"))


@bp.route("/family")
@owner_required
def show():
    return _family_page()


@bp.route("/family", methods=["POST"])
@owner_required
def add():
    form = AddMemberForm()
    if not form.validate():
        return _family_page(form, status=422)
    try:
        added = services.add(current_principal().account_id, form.name.data,
                             form.birthday.data, request_id=form.request_id.data)
    except OutcomeUnknown as error:
        # The form keeps its request id, so pressing Add again cannot add a second one.
        message = _("We couldn't confirm that %(name)s was added. Press Add member again: "
                    "they will not be added twice.", name=form.name.data)
        return _family_page(form, error=message, status=error.status)
    except AppError as error:
        return _family_page(form, error=page_text(error.detail), status=error.status)
    return _done(_("%(name)s now has a card.", name=added.card["display_name"]))


@bp.route(f"/family/{MEMBER_ID}", methods=["POST"])
@owner_required
def rename(card_id: int):
    form = MemberForm(prefix=f"m{card_id}")
    if not form.validate():
        return _family_page(status=422, edit_forms={card_id: form})
    try:
        services.rename(current_principal().account_id, card_id, form.name.data,
                        form.birthday.data)
    except AppError as error:
        return _family_page(error=page_text(error.detail), status=error.status)
    return _done(_("Saved."))


def _owner_does(action, done):
    """The view for an owner's one-click change to a member's card: ``done`` when it
    worked, else the family page with the rulebook's reason."""
    @owner_required
    def view(card_id: int):
        try:
            action(current_principal().account_id, card_id)
        except AppError as error:
            return _family_page(error=page_text(error.detail), status=error.status)
        return _done(str(done))

    return view


# The owner's one-click changes to a member's card: the URL after the member's, the
# endpoint, the rulebook's action and what the family page says once it is done.
ONE_CLICK = (
    ("remove", "remove", services.remove,
     _l("Family member removed. Their past purchases stay in your history.")),
    ("invite/revoke", "revoke_invite", invites.revoke_invites,
     _l("Invite cancelled: its link no longer works.")),
    ("access/revoke", "revoke_access", invites.revoke_member,
     _l("Their phone no longer shows the card, and its old codes stop working.")),
)
for _path, _endpoint, _action, _message in ONE_CLICK:
    bp.add_url_rule(f"/family/{MEMBER_ID}/{_path}", _endpoint, _owner_does(_action, _message),
                    methods=["POST"])


@bp.route(f"/family/{MEMBER_ID}/invite", methods=["POST"])
@owner_required
def invite(card_id: int):
    """The link and QR for the member's phone, shown once: only a hash is kept."""
    try:
        created = invites.create(current_principal().account_id, card_id)
    except AppError as error:
        return _family_page(error=page_text(error.detail), status=error.status)
    link = url_for("family.join", token=created.token, _external=True)
    body = render_page("family/invite.html", invite=created, link=link,
                       qr_svg=link_qr_svg(link), card_id=card_id)
    return body, 201


GONE = {
    "unknown": "This invite link is not valid. Check that you copied all of it, "
               "or ask for a new one.",
    "used": "This invite has already been used. Ask the card's owner for a new one if you need it.",
    "expired": "This invite has expired (invites last 24 hours). "
               "Ask the card's owner for a new one.",
    "revoked": "This invite was cancelled by the card's owner. Ask them for a new one.",
}


def _gone(error: invites.InviteGone):
    response = make_response(render_page("family/invite_gone.html",
                                         message=GONE[error.reason]), 410)
    response.headers["Cache-Control"] = "no-store"
    return response


@bp.route("/join/<token>", methods=["GET", "POST"])
def join(token: str):
    """The member's phone opens the owner's link: they choose their own sign-in."""
    token = token[:100]
    try:
        card = invites.check(token)
    except invites.InviteGone as error:
        return _gone(error)
    form = JoinForm()
    error = None
    if form.validate_on_submit():
        try:
            account = invites.accept(token, email=form.email.data, password=form.password.data)
        except invites.InviteGone as gone:
            return _gone(gone)
        except AppError as failure:
            error = failure.detail
        else:
            response = redirect(url_for("card.show"))
            start_session(response, tokens.issue_token_pair(account))
            return response
    status = 409 if error else (422 if form.errors else 200)
    response = make_response(render_page("family/join.html", form=form, card=card,
                                         error=error), status)
    # The token is in the URL: keep it out of caches and other sites' Referer.
    response.headers["Cache-Control"] = "no-store"
    response.headers["Referrer-Policy"] = "no-referrer"
    return response


@bp.route("/membership/leave", methods=["POST"])
@login_required
def leave():
    principal = current_principal()
    if not principal.is_member:
        raise Forbidden("Only a family member's own sign-in can leave a family.")
    invites.leave(principal.account_id)
    response = redirect(url_for("auth.login"))
    clear_session_cookies(response)
    return response
