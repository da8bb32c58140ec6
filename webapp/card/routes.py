"""The customer's card: QR, number, shared balance, recent history."""

from __future__ import annotations

from flask import Blueprint, make_response, request

from webapp.auth.session import current_principal, login_required
from webapp.pages import is_htmx_partial_request, render_page

from . import services
from .numbers import format_card_number
from .qr import card_qr_svg

bp = Blueprint("card", __name__)

CARD_COOKIE = "card"


def _chosen_card_id() -> int | None:
    raw = request.args.get("card") or request.cookies.get(CARD_COOKIE)
    return int(raw) if raw and raw.isdigit() and len(raw) < 19 else None


@bp.route("/card")
@login_required
def show():
    principal = current_principal()
    view = services.card_view(principal.account_id, _chosen_card_id(),
                              causal=bool(request.args.get("fresh")))
    body = render_page(
        "card/card.html", partial="history", view=view, qr_svg=card_qr_svg(view.card["number"]),
        number=format_card_number(view.card["number"]),
    )
    response = make_response(body)
    # The chosen card sticks, so the installed app opens on the card last shown.
    response.set_cookie(CARD_COOKIE, str(view.card["id"]), max_age=365 * 86400,
                        httponly=True, samesite="Lax", secure=request.is_secure)
    response.headers["Cache-Control"] = "private, no-cache"
    response.vary.add("HX-Request")  # one URL, two bodies: the page and its partial
    if is_htmx_partial_request():
        # The balance refresh revalidates: unchanged, it costs a 304 and no body. (The
        # ETag hashes the body; Flask-Compress suffixes it and answers 304 itself for a
        # compressed body.)
        response.add_etag()
        response.make_conditional(request)
    return response
