"""The demo's mailbox: what the app would have mailed, with working links. Only when
mail is kept in the outbox (``MAIL_BACKEND=outbox``, the demo); a 404 otherwise."""

from __future__ import annotations

from flask import abort, current_app, make_response

from webapp.extensions import db
from webapp.pages import render_page

from . import bp, queries


@bp.route("/demo/outbox")
def outbox():
    if current_app.config["MAIL_BACKEND"] != "outbox" or current_app.config["ENV_NAME"] == (
            "production"):
        abort(404)
    messages = db.read(lambda conn: queries.recent_messages(conn, 20), name="mail.demo",
                       causal=True)
    response = make_response(render_page("mail/outbox.html", messages=messages))
    response.headers["Cache-Control"] = "no-store"
    return response
