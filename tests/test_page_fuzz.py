"""No page answers 500, whatever arrives in its query string or form fields.

First the three 500s the outside attack found (a digit ``int()`` refuses, a newline in
``next`` reaching a header, a valid token for an account that no longer exists), then
hypothesis over every page route in the app's URL map, signed in as a customer and as a
barista, with weird unicode, control characters and huge values in the query string and
in every form field (with a valid CSRF token, so the input reaches the views).
"""

from __future__ import annotations

import re

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import select

from webapp.auth import tokens
from webapp.database.schema import accounts, cards
from webapp.extensions import db
from webapp.staff import create_staff

from .conftest import PASSWORD, AuthActions, csrf_token

# --- The attack's three 500s ------------------------------------------------------------


@pytest.mark.parametrize("value", ["²", "①", "٣", "𝟙", "⁹", "1²", "12345678901234567890",
                                   "-1", " 1", "1\x00", "0x10", "", "%"])
def test_a_card_parameter_that_is_not_a_card_id_shows_the_own_card(client, auth, value):
    auth.register()
    response = client.get("/card", query_string={"card": value})
    assert response.status_code == 200
    assert '<h1 id="card-holder">Ana Silva</h1>' in response.get_data(as_text=True)


def test_a_card_cookie_that_is_not_a_card_id_shows_the_own_card(client, auth):
    auth.register()
    client.set_cookie("card", "²")
    assert client.get("/card").status_code == 200


@pytest.mark.parametrize("target", [
    "/card\r\nX:1", "/card\nX: 1", "/card\rX:1", "/card%0d%0aX:1", "/card\x00", "/\t/evil",
    "/card\u2028X:1", "/card\x85X:1", "/\\evil.example", "/ /evil.example",
])
def test_sign_in_with_a_control_character_in_next_goes_to_the_card(app, client, auth, target):
    auth.register()
    auth.logout()
    page = client.get("/login").get_data(as_text=True)
    response = client.post("/login", query_string={"next": target}, data={
        "csrf_token": csrf_token(page), "email": "ana@example.com", "password": PASSWORD})
    assert response.status_code == 302
    assert response.headers["Location"] == "/card"
    assert "X" not in response.headers


def test_a_percent_encoded_newline_in_next_is_not_a_500(client, auth):
    """The attack's exact request: ``POST /login?next=/card%0d%0aX:1``."""
    auth.register()
    auth.logout()
    page = client.get("/login").get_data(as_text=True)
    response = client.post("/login?next=/card%0d%0aX:1", data={
        "csrf_token": csrf_token(page), "email": "ana@example.com", "password": PASSWORD})
    assert response.status_code == 302
    assert response.headers["Location"] == "/card"
    assert "X" not in response.headers


def _ghost_client(app, role: str):
    """A client holding a valid access token for an account id that does not exist."""
    with app.app_context():
        top = db.read(lambda conn: conn.execute(select(accounts.c.id)
                                                .order_by(accounts.c.id.desc())).scalar(),
                      name="test") or 0
        access, _ = tokens.issue_access_token(top + 1000, role, "Ghost")
    client = app.test_client()
    client.set_cookie("access_token", access)
    return client


@pytest.mark.parametrize("role", ["customer", "staff"])
def test_a_valid_token_for_an_account_that_is_gone_means_signed_out(app, role):
    client = _ghost_client(app, role)
    for url in ("/card", "/card?card=1", "/family", "/till", "/"):
        response = client.get(url)
        assert response.status_code in (302, 401, 403), (url, response.status_code)
        if response.status_code == 302:
            assert response.headers["Location"].startswith(("/login", "/card", "/till")), url
    token = csrf_token(client.get("/login").get_data(as_text=True))
    posts = {
        "/family": {"name": "Tom"},
        "/family/1": {"m1-name": "Tom"},
        "/family/1/remove": {},
        "/till/lookup": {"card": "4929 1234 5678"},
        "/till/earn": {"earn-card": "492912345678", "earn-key": "till-" + "a" * 24,
                       "earn-amount": "5.00"},
    }
    for url, data in posts.items():
        response = client.post(url, data={"csrf_token": token, **data})
        assert response.status_code < 500, (url, response.status_code)


def test_the_ghost_is_sent_to_sign_in_and_loses_the_cookie(app):
    client = _ghost_client(app, "customer")
    response = client.get("/card")
    assert response.status_code == 302
    assert response.headers["Location"].startswith("/login")
    assert client.get_cookie("access_token") is None


# --- Fuzzing every page route -----------------------------------------------------------

# Not pages: files, the worker and manifest (no input), health checks (no input).
NOT_PAGES = {"static"}

SPECIALS = [
    "²", "①", "٣", "𝟙", "\x00", "\r\n", "\n", "\r", "%0d%0a", "\u2028", "\u202e", "\ufeff",
    "\u200b", "\ud7ff", "\uffff", "\U0010ffff", "9" * 30, "-1", "0", "1e309", "NaN", "inf",
    "../", "//evil.example", "\\\\evil", "javascript:alert(1)", "<script>", "' OR 1=1 --",
    "A" * 5000, "é" * 300, "2015-02-30", "9999-12-31", "0001-01-01", "LC1.", "LC1.1.1",
    "4929 1234 5678", "492912345678", "till-" + "a" * 24, "on", "true", "[]", "{}",
]
weird = st.one_of(
    st.sampled_from(SPECIALS),
    st.text(max_size=40),
    st.text(st.characters(categories=["Cc", "Cf", "Zs", "Zl", "Zp", "Co", "Mn", "Nd", "No"]),
            max_size=12),
    st.integers(min_value=-(2**70), max_value=2**70).map(str),
)
FORM_FIELDS = [
    "name", "birthday", "email", "password", "region", "card", "key", "amount", "coins",
    "confirm", "transaction", "earn-card", "earn-key", "earn-amount", "redeem-card",
    "redeem-key", "redeem-coins", "redeem-confirm", "reverse-card", "reverse-key",
    "reverse-transaction", "m1-name", "m1-birthday", "csrf_token",
]
QUERY_KEYS = ["card", "fresh", "next", "page", "q"]


def _page_rules(app) -> list[tuple[str, str]]:
    rules = []
    for rule in app.url_map.iter_rules():
        if rule.endpoint in NOT_PAGES or rule.endpoint.startswith("api."):
            continue
        if rule.endpoint == "auth.logout":
            continue  # its only input is the CSRF token, and it would end the fuzzed session
        for method in sorted(rule.methods - {"HEAD", "OPTIONS"}):
            rules.append((method, rule.rule))
    assert ("POST", "/till/earn") in rules
    assert ("GET", "/card") in rules
    return sorted(rules)


def _path(rule: str, argument: str) -> str:
    return re.sub(r"<[^>]+>", argument, rule)


@st.composite
def page_requests(draw, rules: list[tuple[str, str]], card_ids: list[int]):
    method, rule = draw(st.sampled_from(rules))
    argument = draw(st.one_of(st.sampled_from([str(i) for i in card_ids] or ["1"]),
                              st.integers(min_value=0, max_value=2**70).map(str)))
    query = draw(st.dictionaries(st.one_of(st.sampled_from(QUERY_KEYS), weird), weird,
                                 max_size=3))
    form = {}
    if method == "POST":
        keys = st.one_of(st.sampled_from(FORM_FIELDS + [f"m{i}-name" for i in card_ids]),
                         weird)
        form = draw(st.dictionaries(keys, weird, max_size=6))
    htmx = draw(st.booleans())
    return method, _path(rule, argument), query, form, htmx


def _fuzz(app, client, examples: int) -> None:
    rules = _page_rules(app)
    token = csrf_token(client.get("/family" if ("GET", "/family") in rules else "/login")
                       .get_data(as_text=True))
    with app.app_context():
        card_ids = db.read(lambda conn: list(conn.execute(select(cards.c.id)).scalars()),
                           name="test")
    seen: dict[int, int] = {}

    @settings(max_examples=examples, deadline=None, derandomize=True, database=None,
              suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large,
                                     HealthCheck.large_base_example])
    @given(request=page_requests(rules, card_ids))
    def check(request):
        method, path, query, form, htmx = request
        headers = {"HX-Request": "true", "X-CSRFToken": token} if htmx else {}
        data = {"csrf_token": token, **form} if method == "POST" else None
        if data is not None and "csrf_token" in form:
            data["csrf_token"] = form["csrf_token"]
        response = client.open(path, method=method, query_string=query, data=data,
                               headers=headers)
        response.close()
        seen[response.status_code] = seen.get(response.status_code, 0) + 1
        assert response.status_code < 500, (method, path, query, form, htmx,
                                            response.status_code)

    check()
    print(f"statuses over {sum(seen.values())} requests: {dict(sorted(seen.items()))}")
    assert 200 in seen  # the fuzz reached working pages, not only refusals


def _family_customer(app):
    client = app.test_client()
    AuthActions(client).register()
    page = client.get("/family").get_data(as_text=True)
    for name in ("Tom", "Zoë"):
        client.post("/family", data={"csrf_token": csrf_token(page), "name": name})
    return client


@pytest.fixture
def fuzz_examples(app) -> int:
    # The Galera lab is slower per request; the SQLite run carries the breadth.
    return 60 if app.config.get("CLUSTER") else 250


def test_no_page_answers_500_to_a_customer(app, fuzz_examples):
    _fuzz(app, _family_customer(app), fuzz_examples)


def test_no_page_answers_500_to_a_barista(app, fuzz_examples):
    with app.app_context():
        create_staff(email="barista@example.com", store_code="IE-DUB-01", name="Aoife",
                     password=PASSWORD)
    _family_customer(app)  # a customer with cards, for lookups that find someone
    client = app.test_client()
    AuthActions(client).login(email="barista@example.com")
    _fuzz(app, client, fuzz_examples)


def test_no_page_answers_500_to_a_visitor(app, fuzz_examples):
    _fuzz(app, app.test_client(), fuzz_examples)
