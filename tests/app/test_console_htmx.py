"""The console's htmx partials: the support search, the audit filter, the reports' period
switch and the store edit answer htmx with their block alone, and that block is exactly
what the full page (the no-JavaScript fallback) shows; errors come back in the block with
their status (so htmx swaps them in); an htmx post without the CSRF token is refused and
changes nothing."""

from __future__ import annotations

import re
import secrets

from sqlalchemy import select

from tests.conftest import PASSWORD, AuthActions
from tests.helpers import csrf_token
from webapp.auth.services import register
from webapp.database.schema import stores
from webapp.extensions import db

HTMX = {"HX-Request": "true"}


def _signed_in_admin(app):
    with app.app_context():
        admin = register(name="Glen", email=f"g{secrets.token_hex(3)}@example.com",
                         password=PASSWORD, region="us", role="admin")
        register(name="Zelda Quinn", email="zelda@example.com", password=PASSWORD,
                 region="us")
    client = app.test_client()
    assert AuthActions(client).login(admin["email"]).status_code == 302
    return client


def _same_tokens(html: str) -> str:
    # CSRF tokens are signed afresh on each request: equal pages differ only there.
    return re.sub(r'(csrf_token" value=|X-CSRFToken": )"[^"]+"', r'\1"-"', html)


def _agree(client, url: str, element_id: str, status: int = 200) -> str:
    """The htmx answer is one element, ``element_id``, found verbatim in the full page."""
    full = client.get(url)
    part = client.get(url, headers=HTMX)
    assert (full.status_code, part.status_code) == (status, status), url
    fragment = part.get_data(as_text=True).strip()
    assert fragment.startswith(f'<section id="{element_id}"') or fragment.startswith(
        f'<div id="{element_id}"'), fragment[:80]
    assert "<html" not in fragment
    assert "console-nav" not in fragment
    assert _same_tokens(fragment) in _same_tokens(full.get_data(as_text=True))
    return fragment


def test_partials_agree_with_their_pages(app):
    client = _signed_in_admin(app)
    found = _agree(client, "/admin/support?q=Zelda", "support-results")
    assert "Zelda Quinn" in found
    refused = _agree(client, "/admin/support?q=Ze", "support-results", status=422)
    assert "at least 3 characters" in refused

    entries = _agree(client, "/admin/audit?action=support.open", "audit-entries")
    assert 'hx-get="/admin/audit"' in entries
    bad = _agree(client, "/admin/audit?since=yesterday", "audit-entries", status=422)
    assert "Use a date like" in bad

    month = _agree(client, "/admin/reports?grain=month", "report")
    assert "Coins per month" in month
    bad = _agree(client, "/admin/reports?since=2026-02-01&until=2026-01-01", "report",
                 status=422)
    assert "must not be after" in bad

    store_id = _store("US-NYC-01", app)["id"]
    _agree(client, f"/admin/stores/{store_id}", "store-edit")

    # Back to a pushed URL that htmx has no snapshot of: it asks for the whole page.
    restored = client.get("/admin/support?q=Zelda",
                          headers={**HTMX, "HX-History-Restore-Request": "true"})
    assert "console-nav" in restored.get_data(as_text=True)


def _store(code: str, app) -> dict:
    with app.app_context():
        return dict(db.read(lambda conn: conn.execute(select(stores).where(
            stores.c.code == code)).mappings().one(), name="test", causal=True))


def _edit(store: dict, **changes) -> dict:
    return {"version": store["version"], "name": store["name"], "region": store["region"],
            "currency": store["currency"], "minor_per_coin": store["minor_per_coin"],
            "timezone": store["timezone"], "active": "1", **changes}


def test_store_edit_in_place_with_csrf_header_and_stale_edit_refused(app):
    client = _signed_in_admin(app)
    store = _store("US-NYC-01", app)
    url = f"/admin/stores/{store['id']}"
    token = csrf_token(client.get(url).get_data(as_text=True))

    # No token in the form or the header: refused, nothing changed.
    refused = client.post(url, data=_edit(store, name="No token"), headers=HTMX)
    assert refused.status_code == 400
    assert _store("US-NYC-01", app)["name"] == store["name"]

    # The token in the header htmx sends (base.html's hx-headers), none in the form.
    saved = client.post(url, data=_edit(store, name="Fifth Avenue"),
                        headers={**HTMX, "X-CSRFToken": token})
    assert saved.status_code == 200
    fragment = saved.get_data(as_text=True)
    assert fragment.lstrip().startswith('<div id="store-edit"')
    assert "Saved." in fragment
    assert f'name="version" value="{store["version"] + 1}"' in fragment
    assert _store("US-NYC-01", app)["name"] == "Fifth Avenue"

    # The same form again (its version is now stale): 409 in the block, nothing changed.
    stale = client.post(url, data=_edit(store, name="Someone else"),
                        headers={**HTMX, "X-CSRFToken": token})
    assert stale.status_code == 409
    assert 'id="store-edit"' in stale.get_data(as_text=True)
    assert "changed by someone else" in stale.get_data(as_text=True)
    invalid = client.post(url, data=_edit(_store("US-NYC-01", app), timezone="Mars/Base"),
                          headers={**HTMX, "X-CSRFToken": token})
    assert invalid.status_code == 422
    assert "IANA time zone" in invalid.get_data(as_text=True)
    assert _store("US-NYC-01", app)["name"] == "Fifth Avenue"

    # Without JavaScript: the same post redirects to the page, which says it was saved.
    plain = client.post(url, data={**_edit(_store("US-NYC-01", app), name="Plain"),
                                   "csrf_token": token})
    assert plain.status_code == 302
    assert "Saved." in client.get(plain.headers["Location"]).get_data(as_text=True)
    assert _store("US-NYC-01", app)["name"] == "Plain"
