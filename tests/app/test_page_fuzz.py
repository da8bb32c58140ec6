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

from tests.helpers import PASSWORD, AuthActions, csrf_token
from webapp.auth import tokens
from webapp.database.schema import accounts, cards
from webapp.extensions import db
from webapp.staff import create_staff

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


# Decoded values of ``next``: control characters, whitespace and a backslash (which
# browsers read as a slash, so "/\\evil" is "//evil") are never a same-site path.
@pytest.mark.parametrize("target", [
    "/card\r\nX:1", "/card\nX: 1", "/card\rX:1", "/card\x00", "/\t/evil", "/card\u2028X:1",
    "/card\x85X:1", "/\\evil.example", "/ /evil.example", "/card\u202e", "/card\ufeff",
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

# Odd values every input gets once, alone and slipped into a valid value, with every
# other input valid (so the odd one reaches the code behind the checks it passes).
ODD = [
    "²", "①", "٣",                 # digits to str.isdigit() (and "٣" to int()), not ASCII
    "\r\nX:1", "\x00", "\u2028",   # line breaks and NUL
    "\u202e", "\u200b", "\u3164",   # bidi override, zero-width space, Hangul filler
    "\\\\evil", "//evil.example",    # URLs that leave the site
    "9" * 30, "-1", "A" * 5000,    # out of range, huge
]
LINE_BREAKS = ["\r", "\n", "\x00", "\x85", "\u2028", "\u2029", "\x0b"]
odd_char = st.one_of(
    st.sampled_from(LINE_BREAKS),
    st.characters(categories=["Cc", "Cf", "Zs", "Zl", "Zp", "Co", "Mn"]),
    # Digits of other scripts, superscripts, circled numbers: str.isdigit() says yes to
    # many of them, int() to fewer.
    st.characters(categories=["Nd", "No", "Nl"]),
    st.characters(),
)
weird = st.one_of(
    st.sampled_from(ODD),
    st.text(odd_char, min_size=1, max_size=6),
    st.text(max_size=40),
    st.integers(min_value=-(2**70), max_value=2**70).map(str),
)

# What each page form posts (prefixes as the views use them); "<id>" is the path's card id.
FORM_FIELDS = {
    "/login": ["email", "password"],
    "/register": ["name", "email", "password", "region"],
    # Mailed links: the page's one button (a token in the path), or a new password.
    "/verify/<id>": [],
    "/password/forgot": ["email"],
    "/password/reset/<id>": ["password"],
    "/email/confirm/<id>": [],
    "/family": ["name", "birthday", "request_id"],
    "/family/<id>": ["m<id>-name", "m<id>-birthday"],
    "/family/<id>/remove": [],
    "/family/<id>/invite": [],
    "/family/<id>/invite/revoke": [],
    "/family/<id>/access/revoke": [],
    "/join/<id>": ["email", "password"],
    "/membership/leave": [],
    "/language": ["locale", "next"],
    "/till/lookup": ["card"],
    "/till/earn": ["earn-card", "earn-key", "earn-amount"],
    "/till/redeem": ["redeem-card", "redeem-key", "redeem-coins", "redeem-confirm"],
    "/till/reverse": ["reverse-card", "reverse-key", "reverse-transaction"],
    "/account/profile": ["name", "birthday"],
    "/account/password": ["current_password", "password"],
    "/account/email": ["email", "email_password"],
    "/account/devices/<id>/sign-out": [],
    "/account/devices/sign-out": [],
    "/account/export": [],
    "/account/delete": ["current_password", "understood"],
    # Passkey ceremonies post JSON (their bodies are the WebAuthn library's to check).
    "/login/passkey/options": [],
    "/login/passkey": [],
    "/account/passkeys/options": [],
    "/account/passkeys": ["name"],
    "/account/passkeys/<id>": ["p<id>-name"],
    "/account/passkeys/<id>/remove": [],
    "/admin/password": ["current", "new"],
    "/admin/stores": ["code", "name", "region", "currency", "minor_per_coin",
                      "max_purchase_minor", "coins_per_hour", "active"],
    "/admin/stores/<id>": ["name", "region", "currency", "minor_per_coin",
                           "max_purchase_minor", "coins_per_hour", "active", "version"],
    "/admin/staff": ["name", "email", "role", "store", "admin_region"],
    "/admin/staff/<id>": ["role", "store", "action", "key"],
    "/admin/staff/<id>/reset": [],
    "/admin/rewards": ["region", "name", "coins", "sort", "active"],
    "/admin/rewards/<id>": ["region", "name", "coins", "sort", "active", "version"],
    "/admin/support/<id>/adjust": ["coins", "reason", "label", "key"],
    "/admin/support/<id>/reverse": ["transaction", "reason", "key"],
    "/admin/cards/<id>/block": ["action", "reason"],
    "/admin/cards/<id>/reissue": [],
    # The Apple Wallet web service (devices, not people): its bodies are JSON.
    "/wallet/apple/v1/devices/<id>/registrations/<id>/<id>": [],
    "/wallet/apple/v1/log": [],
}
# The query parameters pages read, offered to every route (a page ignoring one is fine).
QUERY_KEYS = ["card", "fresh", "next"]


def _page_rules(app) -> list[tuple[str, str]]:
    rules = []
    for rule in app.url_map.iter_rules():
        if rule.endpoint == "static" or rule.endpoint.startswith("api."):
            continue
        if rule.endpoint == "auth.logout":
            continue  # its only input is the CSRF token, and it would end the fuzzed session
        path = re.sub(r"<[^>]+>", "<id>", rule.rule)
        for method in sorted(rule.methods - {"HEAD", "OPTIONS"}):
            if method in ("POST", "PUT", "PATCH", "DELETE"):
                assert path in FORM_FIELDS, f"new page form {path}: list its fields above"
            rules.append((method, path))
    assert ("POST", "/till/earn") in rules
    assert ("GET", "/card") in rules
    return sorted(rules)


def _valid_values(app, email: str) -> dict[str, str]:
    """A value that passes each input's own check."""
    with app.app_context():
        card = db.read(lambda conn: conn.execute(select(cards.c.id, cards.c.number)
                                                 .order_by(cards.c.id)).mappings().first(),
                       name="test")
    return {"email": email, "password": PASSWORD, "region": "ie", "name": "Tom",
            "birthday": "2015-05-05", "card": card["number"], "key": "till-" + "k" * 22,
            "amount": "5.00", "coins": "1", "transaction": "1", "confirm": "y", "fresh": "1",
            "next": "/family", "card_id": str(card["id"]), "request_id": "fuzz-request",
            "current_password": PASSWORD, "email_password": PASSWORD, "understood": "y",
            "current": PASSWORD, "new": PASSWORD + "-new", "code": "IE-DUB-99",
            "currency": "EUR", "minor_per_coin": "100", "max_purchase_minor": "10000",
            "coins_per_hour": "50", "active": "y", "version": "1", "role": "barista",
            "store": "IE-DUB-01", "admin_region": "ie", "action": "block",
            "reason": "Lost phone", "label": "Goodwill", "sort": "0", "locale": "hi"}


def _valid_input(rule: str, valid: dict[str, str]) -> tuple[str, dict, dict]:
    argument = valid["card_id"]
    query = {"card": valid["card_id"], "fresh": "1"}
    if rule in ("/login", "/register"):
        query = {"next": valid["next"]}
    form = {}
    for field in FORM_FIELDS.get(rule, []):
        name = field.replace("<id>", argument)
        form[name] = valid[name.rpartition("-")[2]]
    return argument, query, form


class Fuzzer:
    """Sends page requests as one client, with a CSRF token from its current session."""

    def __init__(self, app, client, email: str, *, sign_in_forms: bool) -> None:
        self.app = app
        self.client = client
        self.valid = _valid_values(app, email)
        # The sign-in and registration forms are the same views for everyone: fuzzed as
        # a visitor (each valid attempt costs an argon2 hash).
        self.rules = [(m, r) for m, r in _page_rules(app)
                      if sign_in_forms or m == "GET" or r not in ("/login", "/register")]
        self.seen: dict[int, int] = {}
        self._session: str | None = None
        self._token: str | None = None

    def token(self) -> str:
        # Signing in (valid credentials come up) starts a new CSRF session.
        cookie = self.client.get_cookie("session")
        if self._token is None or self._session != (cookie and cookie.value):
            self._token = csrf_token(self.client.get("/login").get_data(as_text=True))
            cookie = self.client.get_cookie("session")
            self._session = cookie and cookie.value
        return self._token

    def send(self, method: str, path: str, query: dict, form: dict, htmx: bool) -> None:
        token = self.token()
        headers = {"HX-Request": "true", "X-CSRFToken": token} if htmx else {}
        data = {"csrf_token": token, **form} if method == "POST" else None
        response = self.client.open(path, method=method, query_string=query, data=data,
                                    headers=headers)
        response.close()
        self.seen[response.status_code] = self.seen.get(response.status_code, 0) + 1
        assert response.status_code < 500, (method, path, query, form, htmx,
                                            response.status_code)

    def sweep(self) -> None:
        """Every input of every route gets every odd value, the rest valid."""
        for method, rule in self.rules:
            argument, query, form = _valid_input(rule, self.valid)
            path = rule.replace("<id>", argument)
            # Page forms read their fields; of the query, only sign-in reads "next".
            keys = QUERY_KEYS if method == "GET" else list(query)
            inputs = [("query", key) for key in keys] + [("form", name) for name in form]
            for where, name in inputs:
                valid = (query if where == "query" else form).get(name, "")
                for odd in ODD:
                    for value in {odd, valid + odd}:
                        changed_query, changed_form = dict(query), dict(form)
                        (changed_query if where == "query" else changed_form)[name] = value
                        self.send(method, path, changed_query, changed_form, htmx=False)

    def random(self, examples: int) -> None:
        """Hypothesis: several odd inputs at once, htmx or not, unknown fields."""
        for method, rule in self.rules:
            self._random_route(method, rule, examples)

    def _random_route(self, method: str, rule: str, examples: int) -> None:
        argument, query, form = _valid_input(rule, self.valid)
        values = {**query, **form}

        @settings(max_examples=examples, deadline=None, derandomize=True, database=None,
                  suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large,
                                         HealthCheck.large_base_example])
        @given(data=st.data())
        def check(data):
            path_argument = data.draw(st.one_of(
                st.just(argument), st.integers(min_value=0, max_value=2**70).map(str)))
            changed = {}
            for name in [*QUERY_KEYS, *form]:
                choice = data.draw(st.sampled_from(["valid", "odd", "missing"]))
                if choice == "valid" and name in values:
                    changed[name] = values[name]
                elif choice == "odd":
                    changed[name] = data.draw(weird)
            extra = data.draw(st.dictionaries(weird, weird, max_size=1))
            new_query = {k: v for k, v in changed.items() if k in QUERY_KEYS}
            new_form = {k: v for k, v in changed.items() if k not in QUERY_KEYS}
            new_form.update(extra)
            self.send(method, rule.replace("<id>", path_argument), new_query,
                      new_form if method == "POST" else {}, data.draw(st.booleans()))

        check()

    def report(self) -> None:
        print(f"statuses over {sum(self.seen.values())} requests: "
              f"{dict(sorted(self.seen.items()))}")
        assert 200 in self.seen  # the fuzz reached working pages, not only refusals


def _fuzz(app, client, email: str, *, sign_in_forms: bool = False) -> None:
    fuzzer = Fuzzer(app, client, email, sign_in_forms=sign_in_forms)
    if app.config.get("CLUSTER"):
        # The Galera lab is slower per request: a few random requests per route there;
        # the SQLite run carries the breadth.
        fuzzer.random(10)
    else:
        fuzzer.sweep()
        fuzzer.random(10)
    fuzzer.report()


def _family_customer(app):
    client = app.test_client()
    AuthActions(client).register()
    page = client.get("/family").get_data(as_text=True)
    for name in ("Tom", "Zoë"):
        client.post("/family", data={"csrf_token": csrf_token(page), "name": name})
    return client


def test_no_page_answers_500_to_a_customer(app):
    _fuzz(app, _family_customer(app), "ana@example.com")


def test_no_page_answers_500_to_a_barista(app):
    with app.app_context():
        create_staff(email="barista@example.com", store_code="IE-DUB-01", name="Aoife",
                     password=PASSWORD)
    _family_customer(app)  # a customer with cards, for lookups that find someone
    client = app.test_client()
    AuthActions(client).login(email="barista@example.com")
    _fuzz(app, client, "barista@example.com")


def test_no_page_answers_500_to_a_visitor(app):
    _family_customer(app)
    _fuzz(app, app.test_client(), "ana@example.com", sign_in_forms=True)
