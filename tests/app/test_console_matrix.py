"""Authorization matrix: every console page route and console API operation, for every
role, on SQLite and the Galera lab. Each cell asserts the status, and every refused
request is checked to have changed nothing (ledger, audit log, stores, accounts,
rewards, card blocks)."""

from __future__ import annotations

import json
import secrets

import pytest
from sqlalchemy import func, insert, select, update

from tests.conftest import PASSWORD, AuthActions, csrf_token
from webapp.auth.services import register
from webapp.database.schema import accounts, audit_log, cards, ledger, rewards, stores
from webapp.extensions import db
from webapp.ledger import services as ledger_services
from webapp.staff import create_staff

ROLES = ["anonymous", "customer", "barista", "barista_other", "manager", "manager_other",
         "admin_other_region", "admin_global"]
GLOBAL = {"admin_global"}
ADMINS = {"admin_other_region", "admin_global"}
MANAGERS = {"manager", "manager_other"}
# The target store is US-NYC-01 and the customer's home region is us; the regional
# admin is India's, the "other" barista and manager work in Dublin.


def _counts():
    def read(conn):
        return {
            "ledger": conn.execute(select(func.count()).select_from(ledger)).scalar(),
            "audit": conn.execute(select(func.count()).select_from(audit_log)).scalar(),
            "stores": conn.execute(select(func.count()).select_from(stores)).scalar(),
            "store_versions": conn.execute(select(func.sum(stores.c.version))).scalar(),
            "accounts": conn.execute(select(func.count()).select_from(accounts)).scalar(),
            "disabled": conn.execute(select(func.count()).where(
                accounts.c.disabled_at.is_not(None))).scalar(),
            "hashes": tuple(conn.execute(select(accounts.c.password_hash)
                                         .order_by(accounts.c.id)).scalars()),
            "rewards": conn.execute(select(func.count()).select_from(rewards)).scalar(),
            "reward_versions": conn.execute(select(func.sum(rewards.c.version))).scalar(),
            "blocked": conn.execute(select(func.count()).where(
                cards.c.blocked_at.is_not(None))).scalar(),
        }
    return db.read(read, name="test.counts", causal=True)


@pytest.fixture
def world(app):
    with app.app_context():
        def staff(email, store, role="staff"):
            return create_staff(email=email, store_code=store, name=email.split("@")[0],
                                password=PASSWORD, role=role)

        people = {
            "customer": register(name="Casey Customer", email="casey@example.com",
                                 password=PASSWORD, region="us"),
            "barista": staff("b1@example.com", "US-NYC-01"),
            "barista_other": staff("b2@example.com", "IE-DUB-01"),
            "manager": staff("m1@example.com", "US-NYC-01", "manager"),
            "manager_other": staff("m2@example.com", "IE-DUB-01", "manager"),
            "admin_other_region": register(name="Asha", email="a.in@example.com",
                                           password=PASSWORD, region="in", role="admin"),
            "admin_global": register(name="Glen", email="a.all@example.com",
                                     password=PASSWORD, region="us", role="admin"),
            "victim": staff("victim@example.com", "US-NYC-01"),
        }
        db.write(lambda conn: conn.execute(update(accounts).where(
            accounts.c.id == people["admin_other_region"]["id"]).values(admin_region="in")),
            name="test")
        card = db.read(lambda conn: conn.execute(select(cards).where(
            cards.c.account_id == people["customer"]["id"])).mappings().one(), name="test")
        ledger_services.earn(card=card["number"], store_code="US-NYC-01", amount_minor=50000,
                             currency="USD", idempotency_key="seed-1",
                             staff_id=people["barista"]["id"])
        store = db.read(lambda conn: conn.execute(select(stores).where(
            stores.c.code == "US-NYC-01")).mappings().one(), name="test")
        reward = db.write(lambda conn: conn.execute(insert(rewards).values(
            region="us", name="Matrix coffee", coins=30, active=True, sort=1)
        ).inserted_primary_key[0], name="test")
        return {"people": people, "card": dict(card), "store": dict(store), "reward": reward}


def _fresh_earn(world) -> int:
    # The block route may have blocked the card for an earlier role: unblock it here.
    db.write(lambda conn: conn.execute(update(cards).where(
        cards.c.id == world["card"]["id"]).values(blocked_at=None)), name="test")
    receipt = ledger_services.earn(
        card=world["card"]["number"], store_code="US-NYC-01", amount_minor=300,
        currency="USD", idempotency_key=secrets.token_hex(8),
        staff_id=world["people"]["barista"]["id"])
    return receipt.transaction_id


# name -> (method, path, form-or-json, roles allowed, success status)
def _page_routes(world):
    store_id, customer = world["store"]["id"], world["people"]["customer"]["id"]
    victim, card = world["people"]["victim"]["id"], world["card"]["id"]
    reward = world["reward"]
    managers_and_admins = MANAGERS | ADMINS
    return {
        "GET /admin": ("GET", "/admin", None, managers_and_admins, 200),
        "GET /admin/stores": ("GET", "/admin/stores", None, {"manager", *ADMINS}
                              | {"manager_other"}, 200),
        "POST /admin/stores": ("POST", "/admin/stores", lambda: {
            "code": f"US-T-{secrets.token_hex(2).upper()}", "name": "Test", "region": "us",
            "currency": "USD", "minor_per_coin": "100", "active": "1"}, GLOBAL, 302),
        "GET /admin/stores/<id>": ("GET", f"/admin/stores/{store_id}", None,
                                   {"manager", "admin_global"}, 200),
        "POST /admin/stores/<id>": ("POST", f"/admin/stores/{store_id}", lambda: {
            "version": str(_store_version(store_id)), "name": "New York, 5th Avenue",
            "region": "us", "currency": "USD", "minor_per_coin": "100", "active": "1",
            "coins_per_hour": str(secrets.randbelow(1000) + 100)}, GLOBAL, 302),
        "GET /admin/stores/<id>/day": ("GET", f"/admin/stores/{store_id}/day", None,
                                       {"manager", "admin_global"}, 200),
        "GET /admin/staff": ("GET", "/admin/staff", None, managers_and_admins, 200),
        "POST /admin/staff": ("POST", "/admin/staff", lambda: {
            "name": "New Barista", "email": f"nb{secrets.token_hex(3)}@example.com",
            "role": "staff", "store": "US-NYC-01"}, {"manager", "admin_global"}, 201),
        "POST /admin/staff/<id>": ("POST", f"/admin/staff/{victim}", lambda: {
            "action": "disable", "key": secrets.token_hex(4)},
            {"manager", "admin_global"}, 302),
        "POST /admin/staff/<id>/reset": ("POST", f"/admin/staff/{victim}/reset", lambda: {},
                                         {"manager", "admin_global"}, 200),
        "GET /admin/rewards": ("GET", "/admin/rewards", None, ADMINS, 200),
        "POST /admin/rewards": ("POST", "/admin/rewards", lambda: {
            "region": "us", "name": f"Cake {secrets.token_hex(2)}", "coins": "40",
            "sort": "1", "active": "1"}, GLOBAL, 302),
        "GET /admin/rewards/<id>": ("GET", f"/admin/rewards/{reward}", None, GLOBAL, 200),
        "POST /admin/rewards/<id>": ("POST", f"/admin/rewards/{reward}", lambda: {
            "version": str(_reward_version(reward)), "region": "us", "name": "Matrix coffee",
            "coins": str(secrets.randbelow(50) + 10), "sort": "1", "active": "1"},
            GLOBAL, 302),
        "GET /admin/support": ("GET", "/admin/support?q=Casey", None, managers_and_admins,
                               200),
        "GET /admin/support/<id>": ("GET", f"/admin/support/{customer}", None,
                                    MANAGERS | GLOBAL, 200),
        "POST /admin/support/<id>/adjust": ("POST", f"/admin/support/{customer}/adjust",
                                            lambda: {"coins": "5", "reason": "Broken machine",
                                                     "label": "Sorry about that",
                                                     "key": secrets.token_hex(6)},
                                            MANAGERS | GLOBAL, 302),
        "POST /admin/support/<id>/reverse": ("POST", f"/admin/support/{customer}/reverse",
                                             lambda: {"transaction": str(_fresh_earn(world)),
                                                      "reason": "Wrong card",
                                                      "key": secrets.token_hex(6)},
                                             {"manager", "admin_global"}, 302),
        "POST /admin/cards/<id>/block": ("POST", f"/admin/cards/{card}/block", lambda: {
            "action": "block", "reason": "Lost phone"}, MANAGERS | GLOBAL, 302),
        "GET /admin/audit": ("GET", "/admin/audit", None, managers_and_admins, 200),
        "GET /admin/audit.csv": ("GET", "/admin/audit.csv", None, managers_and_admins, 200),
        # Reports: every manager and admin gets their own scope (never another's figures:
        # tests/test_reports.py checks the scoping).
        "GET /admin/reports": ("GET", "/admin/reports", None, managers_and_admins, 200),
        "GET /admin/reports.csv": ("GET", "/admin/reports.csv?grain=month", None,
                                   managers_and_admins, 200),
        "GET /admin/reports/flows.svg": ("GET", "/admin/reports/flows.svg", None,
                                         managers_and_admins, 200),
        "GET /admin/reports/liability.svg": ("GET", "/admin/reports/liability.svg", None,
                                             ADMINS, 200),
    }


def _api_routes(world):
    store_id, customer, card = (world["store"]["id"], world["people"]["customer"]["id"],
                                world["card"]["id"])
    managers_and_admins = MANAGERS | ADMINS
    return {
        "GET /console/stores": ("GET", "/api/v1/console/stores", None,
                                managers_and_admins, 200),
        "POST /console/stores": ("POST", "/api/v1/console/stores", lambda: {
            "code": f"US-A-{secrets.token_hex(2).upper()}", "name": "Api", "region": "us",
            "currency": "USD", "minor_per_coin": 100}, GLOBAL, 201),
        "PUT /console/stores/<id>": ("PUT", f"/api/v1/console/stores/{store_id}", lambda: {
            "version": _store_version(store_id), "name": "New York, 5th Avenue",
            "region": "us", "currency": "USD", "minor_per_coin": 100,
            "coins_per_hour": secrets.randbelow(1000) + 100}, GLOBAL, 200),
        "GET /console/staff": ("GET", "/api/v1/console/staff", None, managers_and_admins,
                               200),
        "POST /console/staff": ("POST", "/api/v1/console/staff", lambda: {
            "name": "Api Barista", "email": f"ab{secrets.token_hex(3)}@example.com",
            "role": "staff", "store": "US-NYC-01"}, {"manager", "admin_global"}, 201),
        "PUT /console/rewards/<id>": ("PUT", f"/api/v1/console/rewards/{world['reward']}",
                                      lambda: {"version": _reward_version(world["reward"]),
                                               "region": "us", "name": "Matrix coffee",
                                               "coins": secrets.randbelow(50) + 10},
                                      GLOBAL, 200),
        "GET /console/rewards": ("GET", "/api/v1/console/rewards", None, ADMINS, 200),
        "POST /console/rewards": ("POST", "/api/v1/console/rewards", lambda: {
            "region": "us", "name": f"Tea {secrets.token_hex(2)}", "coins": 25},
            GLOBAL, 201),
        "POST /console/customers/<id>/adjustments": (
            "POST", f"/api/v1/console/customers/{customer}/adjustments", lambda: {
                "coins": 3, "reason": "Goodwill", "label": "A gift from us"},
            MANAGERS | GLOBAL, 201),
        "PUT /console/cards/<id>/block": ("PUT", f"/api/v1/console/cards/{card}/block",
                                          lambda: {"blocked": True, "reason": "Lost"},
                                          MANAGERS | GLOBAL, 200),
        "GET /console/audit": ("GET", "/api/v1/console/audit", None, managers_and_admins,
                               200),
        "GET /console/reports": ("GET", "/api/v1/console/reports?grain=month", None,
                                 managers_and_admins, 200),
    }


def _reward_version(reward_id):
    return db.read(lambda conn: conn.execute(select(rewards.c.version).where(
        rewards.c.id == reward_id)).scalar(), name="test", causal=True)


def _store_version(store_id):
    return db.read(lambda conn: conn.execute(select(stores.c.version).where(
        stores.c.id == store_id)).scalar(), name="test", causal=True)


EMAILS = {"customer": "casey@example.com", "barista": "b1@example.com",
          "barista_other": "b2@example.com", "manager": "m1@example.com",
          "manager_other": "m2@example.com", "admin_other_region": "a.in@example.com",
          "admin_global": "a.all@example.com"}


def _api_token(client, role):
    if role == "anonymous":
        return None
    answer = client.post("/api/v1/auth/token", json={"email": EMAILS[role],
                                                     "password": PASSWORD})
    assert answer.status_code == 200, answer.get_json()
    return answer.get_json()["access_token"]


def _page_sender(client, csrf):
    """Sends a matrix cell as the signed-in page session (forms carry the CSRF token)."""
    def send(method, path, body):
        if method == "GET":
            return client.get(path)
        return client.post(path, data={"csrf_token": csrf, **body})
    return send


def _api_sender(app, token):
    """Sends a matrix cell to the API with the role's bearer token (none: anonymous)."""
    def send(method, path, body):
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        if "adjustments" in path:
            headers["Idempotency-Key"] = secrets.token_hex(8)
        return app.test_client().open(
            path, method=method, headers=headers,
            data=json.dumps(body) if body is not None else None,
            content_type="application/json" if body is not None else None)
    return send


def test_authorization_matrix(app, world):
    results = []
    # Requests run outside any app context of ours (a pushed one would share ``g``
    # between requests); database reads and setup enter one each time.
    def counts():
        with app.app_context():
            return _counts()

    def prepare(data):
        with app.app_context():
            return data() if data else None

    def check(role, name, route, send, anonymous_status):
        """One cell: the answer the rulebook gives ``role``, and nothing changed if refused."""
        method, path, data, allowed, ok = route
        body = prepare(data)
        before = counts()
        answer = send(method, path, body)
        expected = ok if role in allowed else (anonymous_status if role == "anonymous" else 403)
        results.append((name, role, answer.status_code))
        assert answer.status_code == expected, (name, role, answer.status_code,
                                                answer.get_data(as_text=True)[:400])
        if role not in allowed:
            assert counts() == before, (name, role)

    pages, apis = _page_routes(world), _api_routes(world)
    for role in ROLES:
        client = app.test_client()
        if role != "anonymous":
            assert AuthActions(client).login(EMAILS[role]).status_code == 302
        token = _api_token(app.test_client(), role)
        csrf = csrf_token(client.get("/login").get_data(as_text=True))

        page, api = _page_sender(client, csrf), _api_sender(app, token)
        for name, route in pages.items():
            check(role, name, route, page, anonymous_status=302)  # to the sign-in page
        for name, route in apis.items():
            check(role, name, route, api, anonymous_status=401)
    routes = len(_page_routes(world)) + len(_api_routes(world))
    print(f"\nauthorization matrix: {routes} routes x {len(ROLES)} roles = {len(results)} cells")
    assert len(results) == routes * len(ROLES)
