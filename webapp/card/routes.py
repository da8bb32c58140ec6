"""The customer's card: QR, number, shared balance, recent history, and the small
conditional endpoint its script polls so a till's earn shows without a click."""

from __future__ import annotations

from flask import Blueprint, current_app, make_response, request
from jinja2_fragments.flask import render_block

from webapp.auth.session import (
    ACCOUNT_COOKIE,
    account_tag,
    checks_session_itself,
    clear_session_cookies,
    current_principal,
    login_required,
    redirect_to_login,
    session_checked,
    unchecked_session,
)
from webapp.pages import is_htmx_partial_request, render_page

from . import services
from .numbers import format_card_number
from .qr import card_qr_svg

bp = Blueprint("card", __name__)

CARD_COOKIE = "card"
# Whose card this page is: the service worker keys the offline copy by it (sw.js).
ACCOUNT_HEADER = "X-Loyalty-Account"


def _chosen_card_id() -> int | None:
    raw = request.args.get("card") or request.cookies.get(CARD_COOKIE)
    # ASCII digits only: str.isdigit() also accepts "²" and "①", which int() refuses.
    return int(raw) if raw and raw.isascii() and raw.isdigit() and len(raw) < 19 else None


def _signed_out():
    """A sign-in that no longer shows a card (a member whose access was revoked, a
    device signed out from another one): signed out, so the phone's worker drops its
    cached card when it sees the login page."""
    session_checked()
    response = redirect_to_login()
    clear_session_cookies(response)
    return response


@bp.route("/card")
@checks_session_itself
@login_required
def show():
    principal = current_principal()
    account = account_tag(principal.account_id)
    try:
        view = services.card_view(principal, _chosen_card_id(),
                                  causal=bool(request.args.get("fresh")),
                                  session_family=unchecked_session())
    except (services.NoCard, services.SessionEnded):
        return _signed_out()
    session_checked()
    rewards = list(view.rewards)
    body = render_page(
        "card/card.html", partial="history", view=view, qr_svg=card_qr_svg(view.card["number"]),
        number=format_card_number(view.card["number"]), account=account,
        account_cookie=ACCOUNT_COOKIE, rewards=rewards,
        next_reward=services.next_reward(view.balance, rewards),
    )
    response = make_response(body)
    # The chosen card sticks, so the installed app opens on the card last shown. Secure
    # as configured: behind a TLS-terminating proxy the request itself looks like HTTP.
    response.set_cookie(CARD_COOKIE, str(view.card["id"]), max_age=365 * 86400,
                        httponly=True, samesite="Lax",
                        secure=bool(current_app.config["HTTPS"]))
    response.headers[ACCOUNT_HEADER] = account
    # Signed in: never stored (the back/forward cache must not bring the card back).
    response.headers["Cache-Control"] = "no-store"
    response.vary.add("HX-Request")  # one URL, two bodies: the page and its partial
    if is_htmx_partial_request():
        # The balance refresh revalidates: unchanged, it costs a 304 and no body. (The
        # ETag hashes the body; Flask-Compress suffixes it and answers 304 itself for a
        # compressed body.)
        response.add_etag()
        response.make_conditional(request)
    return response


# Ids are BIGINT: a longer number is a 404, not an overflow in the driver.
@bp.route("/card/<int(max=9223372036854775807):card_id>/live")
@checks_session_itself
def live(card_id: int):
    """304 while nothing changed (the script sends If-None-Match itself: signed-in
    responses are not stored, so the browser would not); else the wallet block, whose
    new rows the script announces. 401 (not a redirect, which fetch would follow) once
    the caller is signed out or may no longer see the card."""
    principal = current_principal()
    etag = (services.live_version(principal, card_id, session_family=unchecked_session())
            if principal else None)
    session_checked()  # live, or answered 401 below
    if etag is None:
        response = make_response("", 401)
        clear_session_cookies(response)
    elif request.headers.get("If-None-Match") == etag:
        response = make_response("", 304)
    else:
        view = services.card_view(principal, card_id)
        response = make_response(render_block("card/card.html", "history", view=view))
    if etag:
        response.headers["ETag"] = etag
    response.headers["Cache-Control"] = "private, no-store"
    return response
