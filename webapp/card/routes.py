"""The customer's card: QR, number, shared balance, recent history."""

from __future__ import annotations

from flask import current_app, make_response, request

from webapp.auth.session import ACCOUNT_COOKIE, account_tag, current_principal, login_required
from webapp.pages import render_page

from . import bp, services
from .numbers import format_card_number
from .qr import card_qr_svg

CARD_COOKIE = "card"
# Whose card this page is: the service worker keys the offline copy by it (sw.js).
ACCOUNT_HEADER = "X-Loyalty-Account"


def _chosen_card_id() -> int | None:
    raw = request.args.get("card") or request.cookies.get(CARD_COOKIE)
    # ASCII digits only: str.isdigit() also accepts "²" and "①", which int() refuses.
    return int(raw) if raw and raw.isascii() and raw.isdigit() and len(raw) < 19 else None


@bp.route("/card")
@login_required
def show():
    principal = current_principal()
    account = account_tag(principal.account_id)
    view = services.card_view(principal.account_id, _chosen_card_id(),
                              causal=bool(request.args.get("fresh")))
    body = render_page(
        "card/card.html", partial="history", view=view, qr_svg=card_qr_svg(view.card["number"]),
        number=format_card_number(view.card["number"]), account=account,
        account_cookie=ACCOUNT_COOKIE,
    )
    response = make_response(body)
    # The chosen card sticks, so the installed app opens on the card last shown. Secure
    # as configured: behind a TLS-terminating proxy the request itself looks like HTTP.
    response.set_cookie(CARD_COOKIE, str(view.card["id"]), max_age=365 * 86400,
                        httponly=True, samesite="Lax",
                        secure=bool(current_app.config["HTTPS"]))
    response.headers[ACCOUNT_HEADER] = account
    return response
