"""Adjustments above the caller's bound (MANAGER_MAX_ADJUST, ADMIN_MAX_ADJUST): the API
answers 422 problem+json with a ``coins`` field error naming the bound, the console page
shows the same message with the same status, nothing is booked, the bound itself is
allowed, and the OpenAPI document states this server's bounds."""

from __future__ import annotations

import secrets

from sqlalchemy import func, select

from tests.conftest import PASSWORD, AuthActions
from tests.helpers import csrf_token
from webapp.auth.services import register
from webapp.database.schema import ledger, wallets
from webapp.extensions import db
from webapp.staff import create_staff

MANAGER_BOUND, ADMIN_BOUND = 40, 900


def _people(app):
    app.config.update(MANAGER_MAX_ADJUST=MANAGER_BOUND, ADMIN_MAX_ADJUST=ADMIN_BOUND)
    with app.app_context():
        manager = create_staff(email=f"m{secrets.token_hex(3)}@example.com",
                               store_code="US-NYC-01", name="Mo", password=PASSWORD,
                               role="manager")
        admin = register(name="Glen", email=f"g{secrets.token_hex(3)}@example.com",
                         password=PASSWORD, region="us", role="admin")
        customer = register(name="Casey", email=f"c{secrets.token_hex(3)}@example.com",
                            password=PASSWORD, region="us")
    return manager, admin, customer


def _adjustments(app, account_id: int) -> tuple[int, int]:
    with app.app_context():
        return db.read(lambda conn: tuple(conn.execute(
            select(func.count(ledger.c.id), func.coalesce(func.sum(ledger.c.coins), 0))
            .join(wallets, wallets.c.id == ledger.c.wallet_id)
            .where(wallets.c.account_id == account_id, ledger.c.kind == "adjustment")
        ).one()), name="test", causal=True)


def _api(client, email: str, account_id: int, coins: int):
    token = client.post("/api/v1/auth/token", json={"email": email, "password": PASSWORD})
    return client.post(f"/api/v1/console/customers/{account_id}/adjustments",
                       json={"coins": coins, "reason": "Goodwill", "label": "A gift"},
                       headers={"Authorization": f"Bearer {token.get_json()['access_token']}",
                                "Idempotency-Key": secrets.token_hex(8)})


def test_api_refuses_above_the_bound_with_a_field_error(app):
    manager, admin, customer = _people(app)
    client = app.test_client()
    for email, bound in ((manager["email"], MANAGER_BOUND), (admin["email"], ADMIN_BOUND)):
        for coins in (bound + 1, -(bound + 1)):
            answer = _api(client, email, customer["id"], coins)
            assert answer.status_code == 422, (email, coins)
            assert answer.mimetype == "application/problem+json"
            problem = answer.get_json()
            assert problem["type"].endswith("validation-error")
            assert f"At most {bound} coins" in " ".join(problem["errors"]["coins"])
    assert _adjustments(app, customer["id"]) == (0, 0)
    # The bound itself is allowed, for each role.
    assert _api(client, manager["email"], customer["id"], MANAGER_BOUND).status_code == 201
    assert _api(client, admin["email"], customer["id"], ADMIN_BOUND).status_code == 201
    assert _adjustments(app, customer["id"]) == (2, MANAGER_BOUND + ADMIN_BOUND)


def test_page_shows_the_same_refusal(app):
    manager, _admin, customer = _people(app)
    client = app.test_client()
    assert AuthActions(client).login(manager["email"]).status_code == 302
    page = client.get(f"/admin/support/{customer['id']}").get_data(as_text=True)
    assert f"at most {MANAGER_BOUND} either way" in page  # the form states the bound
    answer = client.post(f"/admin/support/{customer['id']}/adjust", data={
        "csrf_token": csrf_token(page), "coins": str(MANAGER_BOUND + 1),
        "reason": "Goodwill", "label": "A gift", "key": secrets.token_hex(6)})
    assert answer.status_code == 422
    text = answer.get_data(as_text=True)
    assert f"At most {MANAGER_BOUND} coins either way. Larger adjustments need an admin." \
        in text
    assert "Casey" in text  # the customer's record, with the message, not a refusal page
    assert 'aria-invalid="true" aria-describedby="f-coins-error"' in text  # at the field
    assert f'value="{MANAGER_BOUND + 1}"' in text  # what was typed, kept
    assert _adjustments(app, customer["id"]) == (0, 0)


def test_openapi_states_this_servers_bounds(app):
    app.config.update(MANAGER_MAX_ADJUST=MANAGER_BOUND, ADMIN_MAX_ADJUST=ADMIN_BOUND)
    app.extensions.pop("api_openapi", None)  # built once per app, from its config
    doc = app.test_client().get("/api/v1/openapi.json").get_json()
    op = doc["paths"]["/console/customers/{account_id}/adjustments"]["post"]
    assert f"managers {MANAGER_BOUND}, admins {ADMIN_BOUND}" in op["description"]
    assert "422" in op["responses"]
