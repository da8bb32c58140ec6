"""The console offers what the rulebook allows and nothing else: for a manager, a regional
admin and a global admin, every role the staff form offers is one the service creates, and
every role it leaves out is refused; the rewards link and the new-store form show exactly
when the service lets the actor use them. The pages read these from the rulebook
(``console.powers``) instead of mirroring its rules, and this test holds them together."""

from __future__ import annotations

import re
import secrets

import pytest
from sqlalchemy import update

from tests.conftest import PASSWORD, AuthActions, csrf_token
from webapp.auth.services import register
from webapp.database.schema import accounts
from webapp.extensions import db
from webapp.staff import create_staff
from webapp.staff.roles import STAFF_ROLES

# actor -> (the store a new barista or manager gets, the region a new store gets)
ACTORS = {
    "manager": ("US-NYC-01", "us"),
    "admin_in": ("IN-BLR-01", "in"),
    "admin_global": ("IE-DUB-01", "ie"),
}


def _make(actor: str) -> str:
    email = f"{actor}@example.com"
    if actor == "manager":
        create_staff(email=email, store_code="US-NYC-01", name="Mo", password=PASSWORD,
                     role="manager")
        return email
    account = register(name="Ad", email=email, password=PASSWORD, region="us", role="admin")
    if actor == "admin_in":
        db.write(lambda conn: conn.execute(update(accounts).where(
            accounts.c.id == account["id"]).values(admin_region="in")), name="test")
    return email


def _signed_in_page(app, client, actor: str, path: str) -> str:
    with app.app_context():
        email = _make(actor)
    AuthActions(client).login(email)
    return client.get(path).get_data(as_text=True)


def _offered_roles(html: str) -> set[str]:
    select = re.search(r'<select id="f-role" name="role">(.*?)</select>', html, re.S)
    assert select, "the staff page has no role field"
    return set(re.findall(r'<option value="([^"]+)"', select.group(1)))


def _create(client, page: str, role: str, store: str, region: str) -> int:
    return client.post("/admin/staff", data={
        "csrf_token": csrf_token(page), "name": f"New {role}",
        "email": f"n{secrets.token_hex(3)}@example.com", "role": role, "store": store,
        "admin_region": region}).status_code


@pytest.mark.parametrize("actor", list(ACTORS))
def test_the_staff_form_offers_exactly_the_roles_the_service_creates(app, client, actor):
    store, region = ACTORS[actor]
    page = _signed_in_page(app, client, actor, "/admin/staff")
    offered = _offered_roles(page)
    assert offered  # every console actor may at least hire a barista
    created = {role for role in STAFF_ROLES if _create(client, page, role, store, region) == 201}
    assert offered == created
    assert ('name="admin_region"' in page) == ("admin" in created)


@pytest.mark.parametrize("actor", list(ACTORS))
def test_catalogue_and_store_controls_show_when_the_service_allows_them(app, client, actor):
    _, region = ACTORS[actor]
    page = _signed_in_page(app, client, actor, "/admin/stores")
    rewards_open = client.get("/admin/rewards").status_code == 200
    assert ('href="/admin/rewards"' in page) == rewards_open
    code = f"{region.upper()}-TST-{secrets.randbelow(90) + 10}"
    created = client.post("/admin/stores", data={
        "csrf_token": csrf_token(page), "code": code,
        "name": "Offer test", "region": region,
        "currency": {"us": "USD", "ie": "EUR", "in": "INR"}[region], "minor_per_coin": "100",
        "active": "1"}).status_code
    assert created in (201, 302, 403)
    assert ("<h2>New store</h2>" in page) == (created != 403)
