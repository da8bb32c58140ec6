"""The JSON API v1 through the Flask test client, on SQLite and on the real Galera lab.

Every failure is checked as a problem document with a stable ``type``; every refused
money movement is checked to have written nothing (ledger rows unchanged, every wallet
balance equal to its ledger sum).
"""

from __future__ import annotations

import base64
import itertools
import json
import re
import uuid
from datetime import timedelta

import jwt
import pytest

from tests.helpers import PASSWORD
from tests.ledger_helpers import assert_invariants, ledger_count
from tests.mail_helpers import outbox, verify_via_outbox
from webapp.api.routes import REGISTRATION_ACCEPTED
from webapp.auth import tokens
from webapp.card import codes
from webapp.clock import utcnow
from webapp.problems import PROBLEM_BASE
from webapp.staff import create_staff

API = "/api/v1"
_emails = itertools.count()


def _problem(response, status: int, slug: str) -> dict:
    assert response.status_code == status, response.get_data(as_text=True)
    assert response.mimetype == "application/problem+json"
    body = response.get_json()
    assert body["type"] == PROBLEM_BASE + slug, body
    assert body["status"] == status
    return body


class Api:
    """A JSON client for /api/v1 with an optional Bearer token."""

    def __init__(self, client, token: str | None = None) -> None:
        self.client = client
        self.token = token

    def as_(self, token: str | None) -> Api:
        return Api(self.client, token)

    def request(self, method: str, path: str, *, json_body=None, data=None, key=None,
                headers=None, **kwargs):
        headers = dict(headers or {})
        if self.token:
            headers["Authorization"] = f"Bearer {self.token}"
        if key:
            headers["Idempotency-Key"] = key
        if json_body is not None:
            kwargs["json"] = json_body
        elif data is not None:
            kwargs["data"] = data
            kwargs["content_type"] = "application/json"
        return self.client.open(API + path, method=method, headers=headers, **kwargs)

    def get(self, path, **kwargs):
        return self.request("GET", path, **kwargs)

    def post(self, path, json_body=None, **kwargs):
        return self.request("POST", path, json_body=json_body, **kwargs)

    def patch(self, path, json_body=None, **kwargs):
        return self.request("PATCH", path, json_body=json_body, **kwargs)

    def delete(self, path, **kwargs):
        return self.request("DELETE", path, **kwargs)

    def register(self, email=None, name="Ana Silva", password=PASSWORD, region="ie"):
        email = email or f"api{next(_emails)}@example.com"
        return self.post("/auth/register", {"name": name, "email": email,
                                            "password": password, "region": region})

    def customer(self, **kwargs) -> dict:
        """A new customer: registered, verified through the mailed link (in a page
        client of its own), signed in with /auth/token."""
        email = kwargs.setdefault("email", f"api{next(_emails)}@example.com")
        response = self.register(**kwargs)
        assert response.status_code == 202, response.get_data(as_text=True)
        verify_via_outbox(self.client.application.test_client(), email)
        password = kwargs.get("password", PASSWORD)
        signed_in = self.post("/auth/token", {"email": email, "password": password})
        assert signed_in.status_code == 200, signed_in.get_data(as_text=True)
        body = signed_in.get_json()
        me = self.as_(body["access_token"]).get("/me").get_json()
        return {**body, "account": me["account"], "card": me["cards"][0],
                "api": self.as_(body["access_token"])}



@pytest.fixture
def api(client):
    return Api(client)


@pytest.fixture
def customer(api):
    return api.customer()


@pytest.fixture
def staff_api(app, api):
    """A barista at the Dublin store (EUR, 1.00 per coin)."""
    email = f"barista{next(_emails)}@example.com"
    with app.app_context():
        create_staff(email=email, store_code="IE-DUB-01", name="Aoife", password=PASSWORD)
    response = api.post("/auth/token", {"email": email, "password": PASSWORD})
    assert response.status_code == 200
    return api.as_(response.get_json()["access_token"])


def _key() -> str:
    return uuid.uuid4().hex


def _earn(staff_api, card: str, amount="10.00", currency="EUR", key=None, **extra):
    return staff_api.post("/transactions", {"kind": "earn", "card": card, "amount": amount,
                                            "currency": currency, **extra}, key=key or _key())


def _redeem(staff_api, card: str, coins: int, key=None, confirm=True, **extra):
    return staff_api.post("/transactions", {"kind": "redeem", "card": card, "coins": coins,
                                            "confirm_static": confirm, **extra},
                          key=key or _key())


@pytest.fixture
def nothing_written(app):
    """Asserts on exit that the ledger did not grow and every balance is its ledger sum."""
    with app.app_context():
        before = ledger_count()
    yield
    with app.app_context():
        assert ledger_count() == before
        assert_invariants()


# -- auth ---------------------------------------------------------------------------


def test_register_answers_202_and_the_verified_account_signs_in(api):
    response = api.register(email="Zoe@Example.com", name="Zoë 山田 🙂", region="in",
                            password=PASSWORD)
    assert response.status_code == 202
    assert response.get_json() == {"status": "check-your-inbox",
                                   "detail": REGISTRATION_ACCEPTED}
    assert response.headers["Cache-Control"] == "no-store"
    # Not verified yet: signing in answers exactly like a wrong password.
    early = api.post("/auth/token", {"email": "zoe@example.com", "password": PASSWORD})
    wrong = api.post("/auth/token", {"email": "zoe@example.com", "password": "x" * 12})
    assert early.get_json() == _problem(wrong, 401, "invalid-credentials")
    assert early.status_code == 401

    verify_via_outbox(api.client.application.test_client(), "zoe@example.com")
    body = api.post("/auth/token", {"email": "zoe@example.com", "password": PASSWORD}).get_json()
    assert body["token_type"] == "Bearer"
    assert body["expires_in"] == 600
    assert body["refresh_token"]
    me = api.as_(body["access_token"]).get("/me")
    assert me.status_code == 200
    data = me.get_json()
    assert data["account"]["email"] == "zoe@example.com"
    assert data["account"]["role"] == "customer"
    assert data["balance"] == 0
    [card] = data["cards"]
    assert card["slot"] == 0
    assert card["display_name"] == "Zoë 山田 🙂"
    assert len(card["number"]) == 12
    assert "password_hash" not in json.dumps(data)


def test_register_twice_answers_the_same_as_a_new_address(app, api):
    first = api.register(email="dup@example.com")
    again = api.register(email="DUP@example.com")
    new = api.register(email="someone-new@example.com")
    assert first.status_code == again.status_code == new.status_code == 202
    assert first.get_data() == again.get_data() == new.get_data()
    assert [m["kind"] for m in outbox(app, "dup@example.com")] == ["verify", "verify"]


@pytest.mark.parametrize(
    ("change", "fields"),
    [
        ({"email": "not-an-email"}, {"email"}),
        ({"password": "short"}, {"password"}),
        ({"region": "mars"}, {"region"}),
        ({"name": "<script>alert(1)</script>"}, {"name"}),
        ({"name": "   "}, {"name"}),
        ({"name": 42}, {"name"}),
        ({"name": "x" * 61}, {"name"}),
        ({"admin": True}, {"admin"}),
        ({"role": "staff"}, {"role"}),
        ({"email": None, "password": None}, {"email", "password"}),
    ],
)
def test_register_validation_lists_the_fields(api, change, fields):
    body = {"name": "Ana", "email": "ok@example.com", "password": PASSWORD, "region": "us",
            **change}
    problem = _problem(api.post("/auth/register", body), 422, "validation-error")
    assert set(problem["errors"]) == fields


def test_token_with_wrong_password_or_unknown_email_is_one_generic_401(api, customer):
    wrong = api.post("/auth/token", {"email": customer["account"]["email"],
                                     "password": "wrong-password!"})
    unknown = api.post("/auth/token", {"email": "nobody@example.com", "password": PASSWORD})
    for response in (wrong, unknown):
        _problem(response, 401, "invalid-credentials")
        assert response.headers["WWW-Authenticate"].startswith("Bearer ")
    assert wrong.get_json()["detail"] == unknown.get_json()["detail"]


def test_token_then_refresh_rotates_and_reuse_revokes_the_family(app, api, customer,
                                                                 monkeypatch):
    email = customer["account"]["email"]
    first = api.post("/auth/token", {"email": email, "password": PASSWORD}).get_json()
    second = api.post("/auth/refresh", {"refresh_token": first["refresh_token"]})
    assert second.status_code == 200
    second = second.get_json()
    assert second["refresh_token"] not in (None, first["refresh_token"])
    assert api.as_(second["access_token"]).get("/me").status_code == 200
    third = api.post("/auth/refresh", {"refresh_token": second["refresh_token"]}).get_json()

    # The first token comes back after the grace period: it leaked, the family dies.
    later = utcnow() + tokens.REUSE_GRACE + timedelta(seconds=1)
    monkeypatch.setattr("webapp.auth.tokens.utcnow", lambda: later)
    _problem(api.post("/auth/refresh", {"refresh_token": first["refresh_token"]}),
             401, "unauthorized")
    _problem(api.post("/auth/refresh", {"refresh_token": third["refresh_token"]}),
             401, "unauthorized")
    # Another sign-in is another family and still works.
    assert api.post("/auth/refresh", {"refresh_token": customer["refresh_token"]}
                    ).status_code == 200


def test_refresh_reused_within_the_grace_gets_access_but_no_new_refresh_token(api, customer):
    first = api.post("/auth/refresh", {"refresh_token": customer["refresh_token"]}).get_json()
    racing = api.post("/auth/refresh", {"refresh_token": customer["refresh_token"]})
    assert racing.status_code == 200
    assert racing.get_json()["refresh_token"] is None
    assert api.post("/auth/refresh", {"refresh_token": first["refresh_token"]}
                    ).status_code == 200


def test_logout_revokes_the_refresh_token_and_always_answers_204(api, customer):
    assert api.post("/auth/logout", {"refresh_token": customer["refresh_token"]}
                    ).status_code == 204
    _problem(api.post("/auth/refresh", {"refresh_token": customer["refresh_token"]}),
             401, "unauthorized")
    assert api.post("/auth/logout", {"refresh_token": "never-issued"}).status_code == 204


def test_unknown_refresh_token_is_401(api):
    _problem(api.post("/auth/refresh", {"refresh_token": "x" * 43}), 401, "unauthorized")


def test_token_endpoints_are_rate_limited_with_retry_after(app, api):
    app.config["LOGIN_RATE_LIMIT"] = "2 per minute"
    body = {"email": "nobody@example.com", "password": PASSWORD}
    assert [api.post("/auth/token", body).status_code for _ in range(2)] == [401, 401]
    limited = api.post("/auth/token", body)
    _problem(limited, 429, "http-429")
    assert int(limited.headers["Retry-After"]) > 0
    assert [api.register().status_code for _ in range(3)] == [202, 202, 429]


# -- authentication and authorization -------------------------------------------------

PROTECTED = [
    ("GET", "/me"), ("GET", "/family"), ("POST", "/family"), ("PATCH", "/family/1"),
    ("DELETE", "/family/1"), ("GET", "/wallet/transactions"), ("POST", "/transactions"),
    ("POST", "/transactions/1/reversal"),
]


@pytest.mark.parametrize(("method", "path"), PROTECTED)
def test_no_token_is_401_with_a_bearer_challenge(api, method, path):
    response = api.request(method, path, json_body={})
    _problem(response, 401, "unauthorized")
    assert response.headers["WWW-Authenticate"] == 'Bearer realm="loyalty-card"'


def _b64(data: dict) -> str:
    return base64.urlsafe_b64encode(json.dumps(data).encode()).rstrip(b"=").decode()


def _claims(app, account_id: int, **overrides) -> dict:
    now = utcnow()
    return {"sub": str(account_id), "role": "staff", "name": "Mallory",
            "iss": app.config["JWT_ISSUER"], "aud": app.config["JWT_AUDIENCE"],
            "iat": now, "nbf": now, "exp": now + timedelta(minutes=5), **overrides}


def _bad_tokens(app, customer) -> dict[str, str]:
    key = app.config["JWT_KEYS"]["test"]
    account_id = customer["account"]["id"]
    header, _payload, signature = customer["access_token"].split(".")
    claims = jwt.decode(customer["access_token"], options={"verify_signature": False})
    past = utcnow() - timedelta(minutes=20)
    return {
        "tampered": ".".join([header, _b64({**claims, "role": "staff"}), signature]),
        "expired": jwt.encode(_claims(app, account_id, iat=past, nbf=past,
                                      exp=past + timedelta(minutes=10)),
                              key, algorithm="HS256", headers={"kid": "test"}),
        "alg-none": ".".join([_b64({"alg": "none", "typ": "JWT", "kid": "test"}),
                              _b64(_claims(app, account_id, iat=1, nbf=1,
                                           exp=4_000_000_000)), ""]),
        "other-key": jwt.encode(_claims(app, account_id), "a-different-key-of-32-bytes-000000",
                                algorithm="HS256", headers={"kid": "test"}),
        "unknown-kid": jwt.encode(_claims(app, account_id), key, algorithm="HS256",
                                  headers={"kid": "nope"}),
        "wrong-audience": jwt.encode(_claims(app, account_id, aud="someone-else"), key,
                                     algorithm="HS256", headers={"kid": "test"}),
        "garbage": "not.a.jwt",
        "refresh-token-as-access": customer["refresh_token"],
    }


BAD_TOKENS = ["tampered", "expired", "alg-none", "other-key", "unknown-kid",
              "wrong-audience", "garbage", "refresh-token-as-access"]


@pytest.mark.parametrize("kind", BAD_TOKENS)
def test_invalid_tokens_are_401_invalid_token(app, api, customer, kind):
    token = _bad_tokens(app, customer)[kind]
    for method, path in [("GET", "/me"), ("POST", "/transactions")]:
        response = api.as_(token).request(method, path, json_body={}, key=_key())
        _problem(response, 401, "unauthorized")
        assert 'error="invalid_token"' in response.headers["WWW-Authenticate"]


@pytest.mark.parametrize("header", ["Basic YWRtaW46YWRtaW4=", "Bearer", "Bearer   ", "token x"])
def test_other_authorization_schemes_are_401(api, header):
    _problem(api.get("/me", headers={"Authorization": header}), 401, "unauthorized")


def test_customer_calling_staff_operations_is_403(api, customer, nothing_written):
    me = customer["api"]
    earn = _earn(me, customer["card"]["number"])
    problem = _problem(earn, 403, "forbidden")
    assert "staff" in problem["detail"]
    assert 'error="insufficient_scope"' in earn.headers["WWW-Authenticate"]
    _problem(me.post("/transactions/1/reversal", key=_key()), 403, "forbidden")


# -- family -------------------------------------------------------------------------


def test_family_crud_and_the_limit_of_four(api, customer):
    me = customer["api"]
    assert me.get("/family").get_json() == {"members": [], "limit": 4}
    added = []
    for name in ["Alex", "Robin", "O'Brien; DROP TABLE cards;--", "Zoë 🙂"]:
        response = me.post("/family", {"name": name, "birthday": "2015-06-01"})
        assert response.status_code == 201
        added.append(response.get_json())
    assert [m["slot"] for m in added] == [1, 2, 3, 4]
    assert added[2]["display_name"] == "O'Brien; DROP TABLE cards;--"
    _problem(me.post("/family", {"name": "Fifth"}), 409, "family-full")
    assert [m["id"] for m in me.get("/family").get_json()["members"]] == [m["id"] for m in added]

    renamed = me.patch(f"/family/{added[0]['id']}", {"name": "  Alexandra  "})
    assert renamed.status_code == 200
    assert renamed.get_json()["display_name"] == "Alexandra"
    assert renamed.get_json()["birthday"] == "2015-06-01"  # left out: kept
    cleared = me.patch(f"/family/{added[0]['id']}", {"birthday": None}).get_json()
    assert cleared == {**renamed.get_json(), "birthday": None}

    assert me.delete(f"/family/{added[1]['id']}").status_code == 204
    _problem(me.delete(f"/family/{added[1]['id']}"), 404, "not-found")
    assert me.post("/family", {"name": "Sam"}).get_json()["slot"] == 2  # the freed slot
    me_cards = me.get("/me").get_json()["cards"]
    assert len(me_cards) == 5


def test_other_accounts_cards_look_missing(api, customer):
    other = api.customer()
    theirs = other["api"].post("/family", {"name": "Kid"}).get_json()
    me = customer["api"]
    _problem(me.patch(f"/family/{theirs['id']}", {"name": "Mine now"}), 404, "not-found")
    _problem(me.delete(f"/family/{theirs['id']}"), 404, "not-found")
    # The holder's own card is not a family member either.
    _problem(me.delete(f"/family/{customer['card']['id']}"), 404, "not-found")
    _problem(me.delete(f"/family/{2**63}"), 404, "not-found")
    _problem(me.delete("/family/99999999999999999999999"), 404, "not-found")
    assert other["api"].get("/family").get_json()["members"][0]["display_name"] == "Kid"


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"name": "Kid", "birthday": "2999-01-01"}, "birthday"),
        ({"name": "Kid", "birthday": "1850-01-01"}, "birthday"),
        ({"name": "Kid", "birthday": "2020-02-30"}, "birthday"),
        ({"name": "Kid", "birthday": 20200101}, "birthday"),
        ({"name": "<b>Kid</b>"}, "name"),
        ({"name": "Kid\u202e"}, "name"),
        ({"name": ""}, "name"),
        ({}, "name"),
        ({"name": "Kid", "slot": 0}, "slot"),
    ],
)
def test_family_validation(customer, body, field):
    problem = _problem(customer["api"].post("/family", body), 422, "validation-error")
    assert field in problem["errors"]
    assert customer["api"].get("/family").get_json()["members"] == []


def test_family_patch_refuses_a_null_name(customer):
    kid = customer["api"].post("/family", {"name": "Kid"}).get_json()
    _problem(customer["api"].patch(f"/family/{kid['id']}", {"name": None}), 422,
             "validation-error")


# -- transactions ---------------------------------------------------------------------


def test_earn_then_replay_returns_the_first_result(app, staff_api, customer):
    number = customer["card"]["number"]
    key = _key()
    first = _earn(staff_api, number, amount="12.50", key=key)
    assert first.status_code == 201
    receipt = first.get_json()
    assert receipt["kind"] == "earn"
    assert (receipt["coins"], receipt["balance"]) == (12, 12)
    assert (receipt["amount"], receipt["currency"]) == ("12.50", "EUR")
    assert receipt["store_code"] == "IE-DUB-01"  # the barista's home store
    assert receipt["card_number"] == number
    assert receipt["created_at"].endswith("Z")

    replay = _earn(staff_api, number, amount="12.50", key=key)
    assert replay.status_code == 200
    assert replay.get_json() == receipt
    assert replay.headers["Idempotent-Replayed"] == "true"

    mismatch = _earn(staff_api, number, amount="99.00", key=key)
    _problem(mismatch, 422, "idempotency-key-reused")
    assert customer["api"].get("/me").get_json()["balance"] == 12
    with app.app_context():
        assert ledger_count() == 1
        assert_invariants()


def test_the_same_key_from_another_barista_is_another_transaction(app, api, staff_api,
                                                                  customer):
    email = f"second{next(_emails)}@example.com"
    with app.app_context():
        create_staff(email=email, store_code="IE-DUB-01", name="Niamh", password=PASSWORD)
    other = api.as_(api.post("/auth/token", {"email": email, "password": PASSWORD}
                             ).get_json()["access_token"])
    key = _key()
    assert _earn(staff_api, customer["card"]["number"], key=key).status_code == 201
    assert _earn(other, customer["card"]["number"], key=key).status_code == 201
    assert customer["api"].get("/me").get_json()["balance"] == 20


@pytest.mark.parametrize("headers", [{}, {"Idempotency-Key": ""},
                                     {"Idempotency-Key": "x" * 65},
                                     {"Idempotency-Key": "has space"}])
def test_the_idempotency_key_is_required(staff_api, customer, nothing_written, headers):
    response = staff_api.post("/transactions", {
        "kind": "earn", "card": customer["card"]["number"], "amount": "5.00",
        "currency": "EUR"}, headers=headers)
    problem = _problem(response, 422, "validation-error")
    assert set(problem["errors"]) == {"idempotency_key"}


def test_earn_names_the_home_store_only_and_redeem_with_confirmation(app, staff_api,
                                                                     customer):
    number = customer["card"]["number"]
    # Another store (another region, currency and earn rate) is not the barista's to pick.
    with app.app_context():
        before = ledger_count()
    _problem(_earn(staff_api, number, amount="20.00", currency="USD", store="US-NYC-01"),
             403, "store-not-allowed")
    with app.app_context():
        assert ledger_count() == before
    earned = _earn(staff_api, number, amount="20.00", store="IE-DUB-01")
    assert earned.status_code == 201
    assert earned.get_json()["region"] == "ie"
    _problem(_redeem(staff_api, number, 5, confirm=False), 428, "confirmation-required")
    redeemed = _redeem(staff_api, number, 5)
    assert redeemed.status_code == 201
    assert redeemed.get_json()["coins"] == -5
    assert redeemed.get_json()["balance"] == 15
    assert redeemed.get_json()["amount"] is None


def test_redeem_by_rotating_code_needs_no_confirmation_and_works_once(staff_api, customer):
    card = customer["card"]
    _earn(staff_api, card["number"], amount="10.00")
    payload = codes.rotating_payload(card["number"], card["code_secret"])
    assert _redeem(staff_api, payload, 2, confirm=False).status_code == 201
    _problem(_redeem(staff_api, payload, 2, confirm=False), 422, "card-code-rejected")
    assert customer["api"].get("/me").get_json()["balance"] == 8


def test_insufficient_coins_is_409_and_writes_nothing(app, staff_api, customer):
    number = customer["card"]["number"]
    _earn(staff_api, number, amount="3.00")
    with app.app_context():
        before = ledger_count()
    _problem(_redeem(staff_api, number, 4), 409, "insufficient-coins")
    with app.app_context():
        assert ledger_count() == before
        assert_invariants()
    assert customer["api"].get("/me").get_json()["balance"] == 3


def test_family_cards_share_the_wallet(staff_api, customer):
    kid = customer["api"].post("/family", {"name": "Kid"}).get_json()
    _earn(staff_api, kid["number"], amount="7.99")
    assert customer["api"].get("/me").get_json()["balance"] == 7
    [entry] = customer["api"].get("/wallet/transactions").get_json()["items"]
    assert entry["card"] == {"number": kid["number"], "display_name": "Kid"}
    assert entry["amount"] == "7.99"


def test_reversal_once(app, staff_api, customer):
    number = customer["card"]["number"]
    earned = _earn(staff_api, number, amount="10.00").get_json()
    key = _key()
    reversed_ = staff_api.post(f"/transactions/{earned['id']}/reversal", key=key)
    assert reversed_.status_code == 201
    receipt = reversed_.get_json()
    assert receipt["kind"] == "reversal"
    assert receipt["reverses_id"] == earned["id"]
    assert (receipt["coins"], receipt["balance"]) == (-10, 0)

    replay = staff_api.post(f"/transactions/{earned['id']}/reversal", key=key)
    assert replay.status_code == 200
    assert replay.get_json() == receipt
    _problem(staff_api.post(f"/transactions/{earned['id']}/reversal", key=_key()), 409,
             "already-reversed")
    _problem(staff_api.post("/transactions/987654321/reversal", key=_key()), 404, "not-found")
    _problem(staff_api.post(f"/transactions/{2**64}/reversal", key=_key()), 404, "not-found")
    _problem(staff_api.post(f"/transactions/{receipt['id']}/reversal", key=_key()), 409,
             "conflict")  # a reversal is not reversed
    with app.app_context():
        assert ledger_count() == 2
        assert_invariants()


def test_reversing_spent_coins_is_409(staff_api, customer):
    number = customer["card"]["number"]
    earned = _earn(staff_api, number, amount="10.00").get_json()
    _redeem(staff_api, number, 8)
    _problem(staff_api.post(f"/transactions/{earned['id']}/reversal", key=_key()), 409,
             "insufficient-coins")


def test_reversal_requires_an_idempotency_key(staff_api, customer, nothing_written):
    _problem(staff_api.post("/transactions/1/reversal"), 422, "validation-error")


def test_history_pages_with_a_cursor(staff_api, customer):
    number = customer["card"]["number"]
    ids = [_earn(staff_api, number, amount=f"{n}.00").get_json()["id"] for n in range(1, 6)]
    me = customer["api"]
    seen, cursor, pages = [], None, 0
    # Bounded: a cursor that is ignored or never ends must fail the test, not hang it.
    for _ in range(10):
        query = {"limit": 2, **({"cursor": cursor} if cursor else {})}
        page = me.get("/wallet/transactions", query_string=query)
        assert page.status_code == 200
        body = page.get_json()
        seen += [item["id"] for item in body["items"]]
        pages += 1
        cursor = body["next_cursor"]
        if cursor is None:
            break
    assert pages == 3
    assert seen == sorted(ids, reverse=True)
    names = {store["code"]: store["name"] for store in me.get("/stores").get_json()["stores"]}
    item = me.get("/wallet/transactions").get_json()["items"][0]
    assert item["store_code"] in names
    assert item["store_name"] == names[item["store_code"]]
    assert me.get("/wallet/transactions").get_json()["items"][0]["balance_after"] == 15


@pytest.mark.parametrize("query", [{"limit": 0}, {"limit": 101}, {"limit": "ten"},
                                   {"cursor": "abc"}, {"cursor": -1}, {"cursor": 2**63}])
def test_history_query_validation(customer, query):
    problem = _problem(customer["api"].get("/wallet/transactions", query_string=query), 422,
                       "validation-error")
    assert set(problem["errors"]) == set(query)


def test_other_wallets_never_show(staff_api, customer, api):
    other = api.customer()
    _earn(staff_api, other["card"]["number"])
    assert customer["api"].get("/wallet/transactions").get_json() == {
        "items": [], "next_cursor": None}


BAD_TRANSACTIONS = [
    # (body changes, status, problem type, field)
    ({"amount": 12.5}, 422, "validation-error", "amount"),
    ({"amount": 1250}, 422, "validation-error", "amount"),
    ({"amount": "12.505"}, 422, "validation-error", "amount"),
    ({"amount": "-1.00"}, 422, "validation-error", "amount"),
    ({"amount": "+1.00"}, 422, "validation-error", "amount"),
    ({"amount": "1e3"}, 422, "validation-error", "amount"),
    ({"amount": " 12.50"}, 422, "validation-error", "amount"),
    ({"amount": "12."}, 422, "validation-error", "amount"),
    ({"amount": "12,50"}, 422, "validation-error", "amount"),
    ({"amount": "١٢"}, 422, "validation-error", "amount"),
    ({"amount": "NaN"}, 422, "validation-error", "amount"),
    ({"amount": "0"}, 422, "validation-error", "amount"),
    ({"amount": "0.99"}, 422, "validation-error", "amount"),  # below one coin
    ({"amount": "1000000.01"}, 422, "validation-error", "amount"),
    ({"amount": "999999999999"}, 422, "validation-error", "amount"),
    ({"amount": "9" * 400}, 422, "validation-error", "amount"),
    ({"currency": "USD"}, 422, "validation-error", "currency"),  # a EUR store
    ({"currency": "GBP"}, 422, "validation-error", "currency"),
    ({"currency": "eur"}, 422, "validation-error", "currency"),
    ({"card": "000000000000"}, 404, "not-found", None),
    ({"card": "<script>alert(1)</script>"}, 422, "validation-error", "card"),
    ({"card": "'; DROP TABLE ledger; --"}, 422, "validation-error", "card"),
    ({"card": "1 OR 1=1"}, 422, "validation-error", "card"),
    ({"card": ""}, 422, "validation-error", "card"),
    ({"card": 123456789012}, 422, "validation-error", "card"),
    ({"card": None}, 422, "validation-error", "card"),
    ({"card": "LC1.000000000000.123456"}, 404, "not-found", None),
    ({"store": "XX-NOPE-01"}, 403, "store-not-allowed", None),  # only the home store
    ({"store": "ie-dub-01"}, 422, "validation-error", "store"),
    ({"kind": "transfer"}, 422, "validation-error", "kind"),
    ({"kind": None}, 422, "validation-error", "kind"),
    ({"extra": "field"}, 422, "validation-error", "extra"),
    ({"kind": "redeem"}, 422, "validation-error", "coins"),
]


@pytest.mark.parametrize(("change", "status", "slug", "field"), BAD_TRANSACTIONS,
                         ids=[json.dumps(c[0], ensure_ascii=True)[:40] for c in BAD_TRANSACTIONS])
def test_bad_earn_input_writes_nothing(staff_api, customer, nothing_written, change, status,
                                       slug, field):
    body = {"kind": "earn", "card": customer["card"]["number"], "amount": "12.50",
            "currency": "EUR", **change}
    problem = _problem(staff_api.post("/transactions", body, key=_key()), status, slug)
    if field:
        assert field in problem["errors"], problem


BAD_REDEMPTIONS = [
    ({"coins": 0}, "coins"),
    ({"coins": -5}, "coins"),
    ({"coins": 10**7}, "coins"),
    ({"coins": 2**64}, "coins"),
    ({"coins": "5"}, "coins"),
    ({"coins": 5.5}, "coins"),  # 5.0 is an integer to JSON Schema, and to the API
    ({"coins": True}, "coins"),
    ({"confirm_static": "yes"}, "confirm_static"),
    ({"amount": "5.00"}, "amount"),
]


@pytest.mark.parametrize(("change", "field"), BAD_REDEMPTIONS,
                         ids=[json.dumps(c[0])[:40] for c in BAD_REDEMPTIONS])
def test_bad_redeem_input_writes_nothing(app, staff_api, customer, change, field):
    _earn(staff_api, customer["card"]["number"], amount="50.00")
    with app.app_context():
        before = ledger_count()
    body = {"kind": "redeem", "card": customer["card"]["number"], "coins": 5,
            "confirm_static": True, **change}
    problem = _problem(staff_api.post("/transactions", body, key=_key()), 422,
                       "validation-error")
    assert field in problem["errors"]
    with app.app_context():
        assert ledger_count() == before
        assert_invariants()


@pytest.mark.parametrize(
    ("raw", "status", "slug"),
    [
        (b"{", 400, "malformed-json"),
        (b'{"kind": "earn",}', 400, "malformed-json"),
        (b'{"kind": "earn", "card": "\\ud800"}', 400, "malformed-json"),
        (b"\xff\xfe", 400, "malformed-json"),
        (b"", 422, "validation-error"),
        (b"[]", 422, "validation-error"),
        (b"null", 422, "validation-error"),
        (b'"earn"', 422, "validation-error"),
    ],
)
def test_unparseable_bodies_are_problems(staff_api, nothing_written, raw, status, slug):
    _problem(staff_api.post("/transactions", data=raw, key=_key()), status, slug)


# -- the rest -----------------------------------------------------------------------


def test_stores_are_public(api):
    stores = api.get("/stores").get_json()["stores"]
    by_code = {store["code"]: store for store in stores}
    assert by_code["IE-DUB-01"] == {"code": "IE-DUB-01", "name": "Dublin, Grafton Street",
                                    "region": "ie", "currency": "EUR",
                                    "money_per_coin": "1.00"}
    assert by_code["IN-BLR-01"]["money_per_coin"] == "80.00"
    assert [store["code"] for store in stores] == sorted(by_code)  # a stable order


def test_unknown_paths_and_methods_are_problems(api, customer):
    _problem(api.get("/nope"), 404, "http-404")
    wrong_method = customer["api"].request("PUT", "/me")
    _problem(wrong_method, 405, "http-405")
    assert "GET" in wrong_method.headers["Allow"]


def test_the_api_needs_no_csrf_token_and_ignores_cookies(app, client, auth, api):
    """Cookies never authenticate the API, so a cross-site form can't use them."""
    auth.register(email="cookie@example.com")
    assert client.get_cookie("access_token") is not None
    _problem(api.get("/me"), 401, "unauthorized")


def test_openapi_document_describes_every_operation(app, api):
    response = api.get("/openapi.json")
    assert response.status_code == 200
    doc = response.get_json()
    assert doc["openapi"].startswith("3.1")
    assert doc["components"]["securitySchemes"]["bearerAuth"]["scheme"] == "bearer"
    routes = {
        (rule.rule.removeprefix(API), method.lower())
        for rule in app.url_map.iter_rules() if rule.rule.startswith(API + "/")
        for method in rule.methods - {"HEAD", "OPTIONS"}
    }
    documented = {
        (re.sub(r"\{(\w+_id)\}", r"<int:\1>", path), method)
        for path, item in doc["paths"].items() for method in item
    }
    assert documented == routes
    transactions = doc["paths"]["/transactions"]["post"]
    assert {"200", "201", "401", "403", "404", "409", "422", "428", "503"} <= set(
        transactions["responses"])
    assert transactions["security"] == [{"bearerAuth": []}]
    assert any(p["name"] == "Idempotency-Key" and p["required"]
               for p in transactions["parameters"])
    # The store field and the 403s say what the staff rulebook refuses.
    store = json.dumps(doc["components"]["schemas"]["EarnRequest"]["properties"]["store"])
    assert "home store" in store
    assert "403" in store
    forbidden = doc["components"]["responses"]["Problem403"]["description"]
    for slug in ("store-not-allowed", "not-your-transaction", "own-wallet", "purchase-limit"):
        assert slug in forbidden
        assert PROBLEM_BASE + slug in json.dumps(doc["components"]["schemas"]["Problem"])
    assert "403" in doc["paths"]["/lookup"]["post"]["responses"]
    problem = doc["components"]["responses"]["Problem401"]
    assert "application/problem+json" in problem["content"]
    assert problem["headers"]["WWW-Authenticate"]["required"] is True
    assert doc["paths"]["/auth/token"]["post"]["security"] == []


def test_the_balance_always_equals_the_ledger(app, staff_api, customer):
    number = customer["card"]["number"]
    for amount in ["1.00", "2.50", "3.99"]:
        _earn(staff_api, number, amount=amount)
    _redeem(staff_api, number, 2)
    with app.app_context():
        balances = assert_invariants()
    assert customer["api"].get("/me").get_json()["balance"] == 1 + 2 + 3 - 2
    assert sorted(balances.values()) == [0, 4]  # the barista's wallet, the customer's
