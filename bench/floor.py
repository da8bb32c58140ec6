"""The floor: the least a database-backed page can cost on this machine.

``gunicorn -c deploy/gunicorn.conf.py bench.floor:app`` -- one Flask view that does one
PyMySQL point SELECT (a wallet by primary key) and its COMMIT through an engine built by
the app's own ``make_engine`` (same pool size, timeouts, reset-on-return and disconnect
handling) and renders a tiny Jinja template. The card page adds sign-in, the rulebook's checks, more
columns and a bigger template on top of this; it cannot go below it.

The database is the one the app would use first: ``LOYALTY_DATABASE_URL``, or the
preferred region's member of ``LOYALTY_CLUSTER`` (``us=DSN,ie=DSN,...``).
"""

from __future__ import annotations

import os

from flask import Flask, render_template_string
from sqlalchemy import text

from webapp.database.pool import make_engine


def _database_url() -> str:
    url = os.environ.get("LOYALTY_DATABASE_URL")
    if url:
        return url
    members = dict(part.split("=", 1) for part in os.environ["LOYALTY_CLUSTER"].split(","))
    return members.get(os.environ.get("LOYALTY_REGION", "us")) or next(iter(members.values()))


app = Flask(__name__)
engine = make_engine(_database_url(), {})
_POINT = text("SELECT id, balance FROM wallets WHERE id = :id")
_PAGE = "<!doctype html><title>Card</title><p id=balance>{{ balance }} coins</p>"


@app.route("/card")
def card() -> str:
    # A transaction like every read of the app's (SELECT, then COMMIT): the same shape.
    with engine.begin() as conn:
        row = conn.execute(_POINT, {"id": 1}).first()
    return render_template_string(_PAGE, balance=row.balance if row else 0)
