"""Lost COMMIT acknowledgements on the Galera lab, made deterministic by
:mod:`labs.ackloss`.

Every member of the cluster sits behind an acknowledgement-loss proxy; the app's own
region (``us``) is its preferred member. An armed proxy lets the COMMIT of one chosen
transaction through to the server, waits for the server's OK (so the transaction *is*
committed, cluster-wide) and then drops the app's connection before the OK reaches it.
The router sees ``2013 Lost connection`` during COMMIT: the outcome is unknown to it.

What must hold (the database layer's retry contract, ``db.write(idempotent=...)``):

* money movements are retried on another member, find the row their first attempt
  wrote, and are applied exactly once; the client that sent the request once gets the
  first response (201, no ``Idempotent-Replayed``), not a replay;
* a family add, a registration and a token refresh recognise their own earlier result:
  no second family member, no "email taken", no later logout as a token thief;
* work that cannot recognise its result is not run again: ``OutcomeUnknown``;
* when the retries after an unknown outcome fail too, the client gets 503 with the
  problem type ``outcome-unknown`` (not "refused, nothing happened"), and sending the
  request again with the same Idempotency-Key answers with what was committed.
"""

from __future__ import annotations

import itertools
import re
import uuid
from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import text

from db.seed import seed_stores
from labs.ackloss import AckLossProxy
from labs.galera import APP_USER
from labs.stack import router_of
from tests.conftest import AuthActions, csrf_token
from tests.mail_helpers import verify_via_outbox
from webapp import create_app
from webapp.auth import tokens
from webapp.auth.services import register
from webapp.clock import utcnow
from webapp.config import REGIONS
from webapp.errors import OutcomeUnknown
from webapp.extensions import db
from webapp.problems import PROBLEM_BASE
from webapp.staff import create_staff

pytestmark = [pytest.mark.mariadb, pytest.mark.cluster]

API = "/api/v1"
PASSWORD = "correct-horse-battery"
_emails = itertools.count()


# ---------------------------------------------------------------------------- fixtures
@pytest.fixture(scope="module")
def proxies(galera_lab):
    """One proxy in front of each node, for the whole module; disarmed between tests."""
    started = {
        region: AckLossProxy(("127.0.0.1", galera_lab.port(i))).start()
        for i, region in enumerate(REGIONS)
    }
    yield started
    for proxy in started.values():
        proxy.stop()



class Stack:
    """The ``us`` app on the proxied cluster, an API client and direct node access."""

    def __init__(self, app, lab, proxies) -> None:
        self.app = app
        self.lab = lab
        self.proxies = proxies
        self.client = app.test_client()

    @property
    def router(self):
        return router_of(self.app)

    def call(self, method: str, path: str, body=None, *, token=None, key=None):
        headers = {}
        if token:
            headers["Authorization"] = f"Bearer {token}"
        if key:
            headers["Idempotency-Key"] = key
        return self.client.open(API + path, method=method, json=body, headers=headers)

    def customer(self) -> dict:
        email = f"ackloss{next(_emails)}@example.com"
        response = self.call(
            "POST",
            "/auth/register",
            {"name": "Ana Silva", "email": email, "password": PASSWORD, "region": "ie"},
        )
        assert response.status_code == 202, response.get_data(as_text=True)
        verify_via_outbox(self.app.test_client(), email)
        body = self.call("POST", "/auth/token", {"email": email, "password": PASSWORD}).get_json()
        me = self.call("GET", "/me", token=body["access_token"]).get_json()
        return {**body, "email": email, "number": me["cards"][0]["number"]}

    def barista(self) -> str:
        """A barista at the Dublin store (EUR, one coin per euro): their access token."""
        email = f"barista{next(_emails)}@example.com"
        with self.app.app_context():
            create_staff(email=email, store_code="IE-DUB-01", name="Aoife", password=PASSWORD)
        response = self.call("POST", "/auth/token", {"email": email, "password": PASSWORD})
        assert response.status_code == 200
        return response.get_json()["access_token"]

    def on_every_node(self, sql: str, *args) -> list[tuple]:
        """``sql``'s first row on each node, after it applied everything committed."""
        rows = []
        for i in range(len(REGIONS)):
            with self.lab.admin_connect(i) as conn, conn.cursor() as cur:
                cur.execute("SET SESSION wsrep_sync_wait = 1")
                cur.execute(sql, args)
                rows.append(tuple(cur.fetchone()))
        return rows


@pytest.fixture
def make_stack(galera_schema, galera_clean, proxies):
    """``make_stack(**settings)``: the ``us`` app on the proxied cluster."""
    lab = galera_clean
    members = ",".join(
        f"{region}={lab.dsn(i).replace(f':{lab.port(i)}/', f':{proxies[region].port}/')}"
        for i, region in enumerate(REGIONS)
    )
    made = []

    def make(**settings) -> Stack:
        app = create_app(
            {
                "PROFILE": "test",
                "CLUSTER": members,
                "CLUSTER_KIND": "galera",
                "REGION": "us",
                **settings,
            }
        )
        made.append(app)
        with app.app_context():
            seed_stores()
        return Stack(app, lab, proxies)

    yield make
    for proxy in proxies.values():
        proxy.disarm()
        proxy.drops.clear()
    for app in made:
        router_of(app).dispose()


@pytest.fixture
def stack(make_stack) -> Stack:
    return make_stack()


def lost_once(stack: Stack, statement: bytes) -> None:
    """Asserts that exactly one COMMIT ack was lost, at ``us``, after the server said OK
    (the transaction was committed), and that the router retried it elsewhere."""
    drops = stack.proxies["us"].drops
    assert len(drops) == 1, drops
    assert drops[0].reply == "ok", drops[0]
    assert any(statement.lower() in s.lower() for s in drops[0].statements), drops[0]
    stats = stack.router.stats.snapshot()
    assert stats["retries"].get("commit_unknown") == 1, stats
    assert stats["failovers"] >= 1, stats


def _problem(response, status: int, slug: str) -> dict:
    assert response.status_code == status, response.get_data(as_text=True)
    assert response.mimetype == "application/problem+json"
    body = response.get_json()
    assert body["type"] == PROBLEM_BASE + slug, body
    return body


# ---------------------------------------------------------------------------- money
def _earn_whose_commit_ack_is_lost(stack) -> tuple[Any, dict, str, str]:
    """A barista's earn of 10.00 EUR whose COMMIT answer the us proxy drops once; it was
    sent once, so it must be answered as the first send: 201, not a replay (issue item
    16). Returns the answer, the request, the barista's token and the key."""
    customer, barista = stack.customer(), stack.barista()
    key = uuid.uuid4().hex
    earn = {"kind": "earn", "card": customer["number"], "amount": "10.00", "currency": "EUR"}

    stack.proxies["us"].arm(1, statement=rb"INSERT INTO ledger")
    response = stack.call("POST", "/transactions", earn, token=barista, key=key)

    lost_once(stack, b"INSERT INTO ledger")
    assert response.status_code == 201, response.get_data(as_text=True)
    assert "Idempotent-Replayed" not in response.headers
    return response, earn, barista, key


def test_earn_whose_commit_ack_was_lost_is_applied_once_and_answered_201(stack):
    response, earn, barista, key = _earn_whose_commit_ack_is_lost(stack)
    receipt = response.get_json()
    assert (receipt["coins"], receipt["balance"]) == (10, 10)
    assert (
        stack.on_every_node(
            "SELECT COUNT(*), SUM(coins) FROM loyalty.ledger WHERE idempotency_key LIKE %s",
            f"%{key}",
        )
        == [(1, 10)] * 3
    )
    assert stack.on_every_node("SELECT SUM(balance) FROM loyalty.wallets") == [(10,)] * 3

    # A genuine second send is a replay.
    again = stack.call("POST", "/transactions", earn, token=barista, key=key)
    assert again.status_code == 200
    assert again.headers["Idempotent-Replayed"] == "true"
    assert again.get_json()["id"] == receipt["id"]


def test_earn_that_fills_the_hourly_limit_whose_commit_ack_was_lost_is_answered_201(
        make_stack):
    """The rulebook's checks run in the earn's own transaction, so the router's retry
    runs them again. An earn that filled the barista's hourly limit exactly must still
    be answered as booked (its retry finds its own row first), not refused because the
    hourly total now counts it; and its audit row, committed with it, is there once."""
    stack = make_stack(COINS_PER_BARISTA_HOUR=10)
    response, earn, barista, _ = _earn_whose_commit_ack_is_lost(stack)
    receipt = response.get_json()
    assert (receipt["coins"], receipt["balance"]) == (10, 10)
    assert stack.on_every_node(
        "SELECT COUNT(*) FROM loyalty.audit_log WHERE event_key = %s", f"ledger:{receipt['id']}"
    ) == [(1,)] * 3
    # The limit holds: the next earn is a manager's.
    refused = stack.call("POST", "/transactions", earn, token=barista, key=uuid.uuid4().hex)
    _problem(refused, 403, "staff-limit")


def test_redeem_whose_commit_ack_was_lost_is_applied_once(stack):
    customer, barista = stack.customer(), stack.barista()
    earn = {"kind": "earn", "card": customer["number"], "amount": "25.00", "currency": "EUR"}
    assert stack.call("POST", "/transactions", earn, token=barista, key="e1").status_code == 201
    key = uuid.uuid4().hex
    redeem = {"kind": "redeem", "card": customer["number"], "coins": 7, "confirm_static": True}

    stack.proxies["us"].arm(1, statement=rb"INSERT INTO ledger")
    response = stack.call("POST", "/transactions", redeem, token=barista, key=key)

    lost_once(stack, b"INSERT INTO ledger")
    assert response.status_code == 201, response.get_data(as_text=True)
    assert "Idempotent-Replayed" not in response.headers
    assert response.get_json()["balance"] == 18
    assert (
        stack.on_every_node("SELECT COUNT(*), SUM(coins) FROM loyalty.ledger WHERE kind = 'redeem'")
        == [(1, -7)] * 3
    )
    assert stack.on_every_node("SELECT SUM(balance) FROM loyalty.wallets") == [(18,)] * 3


# ---------------------------------------------------------------------------- the others
@pytest.mark.parametrize("with_key", [True, False], ids=["client-key", "no-key"])
def test_family_add_whose_commit_ack_was_lost_adds_one_member(stack, with_key):
    customer = stack.customer()
    key = uuid.uuid4().hex if with_key else None

    stack.proxies["us"].arm(1, statement=rb"INSERT INTO cards")
    response = stack.call(
        "POST", "/family", {"name": "Kid"}, token=customer["access_token"], key=key
    )

    lost_once(stack, b"INSERT INTO cards")
    assert response.status_code == 201, response.get_data(as_text=True)
    assert "Idempotent-Replayed" not in response.headers
    members = stack.call("GET", "/family", token=customer["access_token"]).get_json()["members"]
    assert [m["display_name"] for m in members] == ["Kid"]
    if with_key:  # the client's re-send gets the same member, once
        again = stack.call(
            "POST", "/family", {"name": "Kid"}, token=customer["access_token"], key=key
        )
        assert again.status_code == 200
        assert again.headers["Idempotent-Replayed"] == "true"
        assert again.get_json()["id"] == response.get_json()["id"]
        members = stack.call("GET", "/family", token=customer["access_token"]).get_json()
        assert len(members["members"]) == 1


def test_family_add_from_the_page_whose_commit_ack_was_lost_adds_one_member(stack):
    auth = AuthActions(stack.client)
    email = f"page{next(_emails)}@example.com"
    assert auth.register(email=email).status_code == 302
    page = stack.client.get("/family").get_data(as_text=True)
    assert 'name="request_id"' in page

    stack.proxies["us"].arm(1, statement=rb"INSERT INTO cards")
    response = stack.client.post(
        "/family", data={"csrf_token": csrf_token(page), "name": "Kid", "birthday": ""}
    )

    lost_once(stack, b"INSERT INTO cards")
    assert response.status_code == 302, response.get_data(as_text=True)
    page = stack.client.get("/family").get_data(as_text=True)
    assert page.count(">Remove Kid</button>") == 1


def test_registration_whose_commit_ack_was_lost_succeeds(stack):
    email = f"newcomer{next(_emails)}@example.com"
    body = {"name": "Nia Newcomer", "email": email, "password": PASSWORD, "region": "ie"}

    stack.proxies["us"].arm(1, statement=rb"INSERT INTO accounts")
    response = stack.call("POST", "/auth/register", body)

    lost_once(stack, b"INSERT INTO accounts")
    # The same answer as any registration: the retry recognised its own row.
    assert response.status_code == 202, response.get_data(as_text=True)
    assert (
        stack.on_every_node("SELECT COUNT(*) FROM loyalty.accounts WHERE email = %s", email)
        == [(1,)] * 3
    )
    verify_via_outbox(stack.app.test_client(), email)
    signed_in = stack.call("POST", "/auth/token", {"email": email, "password": PASSWORD})
    assert signed_in.status_code == 200


def test_refresh_whose_commit_ack_was_lost_rotates_and_never_logs_out_later(stack, monkeypatch):
    customer = stack.customer()

    stack.proxies["us"].arm(1, statement=rb"UPDATE refresh_tokens")
    response = stack.call("POST", "/auth/refresh", {"refresh_token": customer["refresh_token"]})

    lost_once(stack, b"UPDATE refresh_tokens")
    assert response.status_code == 200, response.get_data(as_text=True)
    successor = response.get_json()["refresh_token"]
    # The retry recognised its own successor: a new refresh token, not "grace" (None),
    # which would leave the client holding the spent one.
    assert successor
    assert successor != customer["refresh_token"]
    # Well past the reuse grace, the successor works: no logout as a token thief.
    later = utcnow() + tokens.REUSE_GRACE + timedelta(seconds=5)
    monkeypatch.setattr("webapp.auth.tokens.utcnow", lambda: later)
    again = stack.call("POST", "/auth/refresh", {"refresh_token": successor})
    assert again.status_code == 200, again.get_data(as_text=True)
    assert (
        stack.on_every_node(
            "SELECT COUNT(*) FROM loyalty.refresh_tokens WHERE revoked_at IS NOT NULL"
        )
        == [(0,)] * 3
    )


# ---------------------------------------------------------------------------- the contract
def test_work_not_marked_idempotent_is_not_run_again(stack):
    """A blind retry of this work would add 2: it is not retried, and the caller learns
    that the outcome is unknown (here: it happened, once)."""
    with stack.lab.admin_connect(0) as conn, conn.cursor() as cur:
        cur.execute(
            "CREATE TABLE IF NOT EXISTS loyalty.ackloss_scratch (id INT PRIMARY KEY, n INT)"
        )
        cur.execute("REPLACE INTO loyalty.ackloss_scratch VALUES (1, 0)")
        # The app's account changes only the tables it was granted (webapp/database/
        # privileges.py); a scratch table is not one of the schema's.
        cur.execute(f"GRANT UPDATE ON loyalty.ackloss_scratch TO '{APP_USER}'@'%'")
    runs = []

    def work(conn):
        runs.append(1)
        conn.execute(text("UPDATE ackloss_scratch SET n = n + 1 WHERE id = 1"))

    stack.proxies["us"].arm(1, statement=rb"ackloss_scratch")
    with stack.app.app_context(), pytest.raises(OutcomeUnknown):
        db.write(work, name="test.not_idempotent")
    assert runs == [1]
    assert stack.proxies["us"].drops[0].reply == "ok"
    assert stack.on_every_node("SELECT n FROM loyalty.ackloss_scratch WHERE id = 1") == [(1,)] * 3
    assert stack.router.stats.snapshot()["outcome_unknown"] == 1


def test_unknown_outcome_the_retries_cannot_settle_is_outcome_unknown_then_replayed(make_stack):
    """Every member loses the answer to every COMMIT of the earn (the first attempt's
    committed; the retries find its row, but their answers are lost too): the client
    gets 503 ``outcome-unknown``, never the plain "nothing happened" 503. The re-send
    with the same key answers with what was committed, once."""
    stack = make_stack(DB_RETRY_BUDGET=3)
    customer, barista = stack.customer(), stack.barista()
    key = uuid.uuid4().hex
    earn = {"kind": "earn", "card": customer["number"], "amount": "10.00", "currency": "EUR"}

    for proxy in stack.proxies.values():
        proxy.arm(None, statement=rb"\bidempotency_key\b")
    response = stack.call("POST", "/transactions", earn, token=barista, key=key)

    problem = _problem(response, 503, "outcome-unknown")
    assert "same Idempotency-Key" in problem["detail"]
    assert response.headers["Retry-After"]
    assert sum(len(p.drops) for p in stack.proxies.values()) == 4  # 1 + retry budget
    assert stack.router.stats.snapshot()["outcome_unknown"] == 1
    assert (
        stack.on_every_node(
            "SELECT COUNT(*), SUM(coins) FROM loyalty.ledger WHERE idempotency_key LIKE %s",
            f"%{key}",
        )
        == [(1, 10)] * 3
    )

    for proxy in stack.proxies.values():
        proxy.disarm()
    again = stack.call("POST", "/transactions", earn, token=barista, key=key)
    assert again.status_code == 200, again.get_data(as_text=True)
    assert again.headers["Idempotent-Replayed"] == "true"
    assert (again.get_json()["coins"], again.get_json()["balance"]) == (10, 10)
    assert stack.on_every_node("SELECT SUM(balance) FROM loyalty.wallets") == [(10,)] * 3


def test_family_page_after_an_unknown_outcome_keeps_the_request_and_adds_once(make_stack):
    """Every member loses every answer of the add: the page says it cannot tell, keeps
    the form's request id, and pressing Add again adds the member once."""
    stack = make_stack(DB_RETRY_BUDGET=2)
    auth = AuthActions(stack.client)
    assert auth.register(email=f"page{next(_emails)}@example.com").status_code == 302
    page = stack.client.get("/family").get_data(as_text=True)
    request_id = re.search(r'name="request_id" type="hidden" value="([^"]+)"', page)[1]
    form = {"csrf_token": csrf_token(page), "name": "Kid", "birthday": "", "request_id": request_id}

    for proxy in stack.proxies.values():
        # The add's own transactions (they look the request id up), not the page's reads.
        proxy.arm(None, statement=rb"cards\.request_id = ")
    response = stack.client.post("/family", data=form)

    assert response.status_code == 503
    html = response.get_data(as_text=True)
    assert "couldn&#39;t confirm that Kid was added" in html
    assert f'value="{request_id}"' in html
    assert stack.on_every_node("SELECT COUNT(*) FROM loyalty.cards WHERE slot > 0") == [(1,)] * 3

    for proxy in stack.proxies.values():
        proxy.disarm()
    again = stack.client.post("/family", data=form)
    assert again.status_code == 302
    assert stack.on_every_node("SELECT COUNT(*) FROM loyalty.cards WHERE slot > 0") == [(1,)] * 3


# ---------------------------------------------------------------------------- the console
def _global_admin(stack: Stack) -> str:
    """A global admin's access token (signed in before any proxy is armed)."""
    email = f"admin{next(_emails)}@example.com"
    with stack.app.app_context():
        register(name="Glen Admin", email=email, password=PASSWORD, region="us", role="admin")
    response = stack.call("POST", "/auth/token", {"email": email, "password": PASSWORD})
    assert response.status_code == 200, response.get_data(as_text=True)
    return response.get_json()["access_token"]


def test_store_edit_whose_commit_ack_was_lost_is_saved_once_not_a_conflict(stack):
    admin = _global_admin(stack)
    store = next(s for s in stack.call("GET", "/console/stores", token=admin)
                 .get_json()["stores"] if s["code"] == "IE-DUB-01")
    edit = {k: store[k] for k in ("name", "region", "currency", "minor_per_coin", "active")}
    edit.update(name="Dublin, Grafton St.", version=store["version"])

    stack.proxies["us"].arm(1, statement=rb"UPDATE stores")
    response = stack.call("PUT", f"/console/stores/{store['id']}", edit, token=admin)

    lost_once(stack, b"UPDATE stores")
    # The retry found its own version: saved, never "changed by someone else".
    assert response.status_code == 200, response.get_data(as_text=True)
    assert response.get_json()["version"] == store["version"] + 1
    assert stack.on_every_node(
        "SELECT name, version FROM loyalty.stores WHERE id = %s", store["id"]
    ) == [("Dublin, Grafton St.", store["version"] + 1)] * 3
    assert stack.on_every_node(
        "SELECT COUNT(*) FROM loyalty.audit_log WHERE action = 'store.update'"
    ) == [(1,)] * 3


@pytest.mark.parametrize("statement", [b"INSERT INTO accounts", b"INSERT INTO audit_log"],
                         ids=["account", "flags-and-audit"])
def test_staff_create_whose_commit_ack_was_lost_creates_one_account(stack, statement):
    admin = _global_admin(stack)
    email = f"newbarista{next(_emails)}@example.com"
    body = {"name": "Niamh", "email": email, "role": "staff", "store": "IE-DUB-01"}

    stack.proxies["us"].arm(1, statement=re.escape(statement))
    response = stack.call("POST", "/console/staff", body, token=admin)

    lost_once(stack, statement)
    assert response.status_code == 201, response.get_data(as_text=True)
    created = response.get_json()
    assert stack.on_every_node(
        "SELECT COUNT(*), SUM(must_change_password) FROM loyalty.accounts WHERE email = %s",
        email) == [(1, 1)] * 3
    assert stack.on_every_node(
        "SELECT COUNT(*) FROM loyalty.audit_log WHERE action = 'staff.create' AND target = %s",
        f"account:{created['id']}") == [(1,)] * 3
    # The temporary password shown is the one that works.
    signed_in = stack.call("POST", "/auth/token", {"email": email,
                                                   "password": created["temporary_password"]})
    assert signed_in.status_code == 200, signed_in.get_data(as_text=True)


def test_reward_create_whose_commit_ack_was_lost_adds_one_reward(stack):
    admin = _global_admin(stack)
    body = {"region": "ie", "name": "Flat white", "coins": 35}

    stack.proxies["us"].arm(1, statement=rb"INSERT INTO rewards")
    response = stack.call("POST", "/console/rewards", body, token=admin)

    lost_once(stack, b"INSERT INTO rewards")
    assert response.status_code == 201, response.get_data(as_text=True)
    assert stack.on_every_node(
        "SELECT COUNT(*) FROM loyalty.rewards WHERE name = 'Flat white'") == [(1,)] * 3
    assert stack.on_every_node(
        "SELECT COUNT(*) FROM loyalty.audit_log WHERE action = 'reward.create'") == [(1,)] * 3


def test_adjustment_whose_commit_ack_was_lost_is_applied_once(stack):
    admin, customer = _global_admin(stack), stack.customer()
    me = stack.call("GET", "/me", token=customer["access_token"]).get_json()
    account_id = me["account"]["id"]
    key = uuid.uuid4().hex
    body = {"coins": 12, "reason": "Machine broke", "label": "Sorry for the wait"}

    stack.proxies["us"].arm(1, statement=rb"INSERT INTO ledger")
    response = stack.call("POST", f"/console/customers/{account_id}/adjustments", body,
                          token=admin, key=key)

    lost_once(stack, b"INSERT INTO ledger")
    assert response.status_code == 201, response.get_data(as_text=True)
    assert "Idempotent-Replayed" not in response.headers
    assert response.get_json()["balance"] == 12
    assert stack.on_every_node(
        "SELECT COUNT(*), SUM(coins) FROM loyalty.ledger WHERE kind = 'adjustment'"
    ) == [(1, 12)] * 3
    assert stack.on_every_node("SELECT SUM(balance) FROM loyalty.wallets") == [(12,)] * 3
    assert stack.on_every_node(
        "SELECT COUNT(*) FROM loyalty.audit_log WHERE action = 'adjustment'") == [(1,)] * 3
    again = stack.call("POST", f"/console/customers/{account_id}/adjustments", body,
                       token=admin, key=key)
    assert again.status_code == 200
    assert again.headers["Idempotent-Replayed"] == "true"
    assert stack.on_every_node("SELECT SUM(balance) FROM loyalty.wallets") == [(12,)] * 3
