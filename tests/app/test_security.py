"""Security headers on every response, no inline script or style in any page, and CSRF
on every form (plain posts and htmx alike)."""

from __future__ import annotations

import uuid
from html.parser import HTMLParser

import pytest
from sqlalchemy import func, select

from tests.helpers import PASSWORD, AuthActions, csrf_token
from webapp import create_app
from webapp.card.queries import active_cards
from webapp.database.schema import accounts, metadata, refresh_tokens
from webapp.extensions import db
from webapp.ledger import services as ledger
from webapp.staff import create_staff


class InlineCodeFinder(HTMLParser):
    """Everything a strict CSP (script-src 'self', style-src 'self') would block."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.problems: list[str] = []
        self._in_script = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        attributes = dict(attrs)
        if tag == "script":
            self._in_script = True
            if not attributes.get("src"):
                self.problems.append("inline <script> block")
        if tag == "style":
            self.problems.append("<style> element")
        for name, value in attrs:
            if name.startswith("on"):
                self.problems.append(f"event handler {name}= on <{tag}>")
            if name == "style":
                self.problems.append(f'style="" on <{tag}>')
            if name.startswith(("hx-on", "data-hx-on")):
                self.problems.append(f"{name} (inline script through htmx) on <{tag}>")
            if name in ("href", "src", "action", "formaction") and (value or "").strip(
            ).lower().startswith("javascript:"):
                self.problems.append(f"javascript: URL in {name} on <{tag}>")

    handle_startendtag = handle_starttag

    def handle_endtag(self, tag: str) -> None:
        if tag == "script":
            self._in_script = False

    def handle_data(self, data: str) -> None:
        if self._in_script and data.strip():
            self.problems.append("script element with inline content")


def inline_code(html: str) -> list[str]:
    finder = InlineCodeFinder()
    finder.feed(html)
    finder.close()
    return finder.problems


def _counts() -> dict[str, int]:
    def work(conn):
        return {table.name: conn.execute(select(func.count()).select_from(table)).scalar()
                for table in metadata.sorted_tables}

    return db.read(work, name="test.counts", causal=True)


@pytest.fixture
def family_account(app, client, auth):
    """A signed-in customer with two family members and some history."""
    auth.register(name="Ana Silva")
    for name in ("Tom", "Zoë"):
        page = client.get("/family").get_data(as_text=True)
        client.post("/family", data={"csrf_token": csrf_token(page), "name": name})
    with app.app_context():
        account_id = db.read(lambda conn: conn.execute(select(accounts.c.id)).scalar(),
                             name="test")
        holder, tom, _ = db.read(lambda conn: active_cards(conn, account_id), name="test")
        for card, amount in ((holder, 1250), (tom, 480)):
            ledger.earn(card=card["number"], store_code="IE-DUB-01", amount_minor=amount,
                        currency="EUR", idempotency_key=uuid.uuid4().hex, staff_id=None)
    return {"client": client, "tom": tom["id"], "account_id": account_id}


def _customer_pages(client, tom_id):
    page = client.get("/family").get_data(as_text=True)
    token = csrf_token(page)
    htmx = {"HX-Request": "true", "X-CSRFToken": token}
    return {
        "card": client.get("/card"),
        "card tom": client.get(f"/card?card={tom_id}"),
        "card history partial": client.get("/card?fresh=1", headers={
            "HX-Request": "true", "HX-Target": "wallet"}),
        "family": client.get("/family"),
        "family partial after add error": client.post("/family", data={"name": ""},
                                                      headers=htmx),
        "family page after add error": client.post("/family", data={
            "csrf_token": token, "name": "<script>"}),
        "family after rename error": client.post(f"/family/{tom_id}", data={
            "csrf_token": token, f"m{tom_id}-name": ""}),
        "offline": client.get("/offline"),
        "not found": client.get("/no-such-page"),
        "method not allowed": client.get("/logout"),
        "csrf failure": client.post("/family", data={"name": "Nobody"}),
        "card for another account": client.get("/card?card=999999"),
    }


def _anonymous_pages(client):
    page = client.get("/login").get_data(as_text=True)
    token = csrf_token(page)
    return {
        "login": client.get("/login"),
        "login error": client.post("/login", data={"csrf_token": token,
                                                   "email": "x@example.com",
                                                   "password": "wrong-password"}),
        "login invalid": client.post("/login", data={"csrf_token": token}),
        "register": client.get("/register"),
        "register invalid": client.post("/register", data={"csrf_token": token,
                                                         "name": "", "region": "zz"}),
        "offline": client.get("/offline"),
        "card redirect": client.get("/card"),
        "too large": client.post("/login", data={"csrf_token": token, "email": "x" * 70_000}),
    }


def _all_responses(app, family_account):
    customer = _customer_pages(family_account["client"], family_account["tom"])
    anonymous = _anonymous_pages(app.test_client())
    with app.app_context():
        create_staff(email="barista@example.com", store_code="IE-DUB-01", name="Aoife",
                     password=PASSWORD)
    staff_client = app.test_client()
    AuthActions(staff_client).login(email="barista@example.com")
    staff = {"till": staff_client.get("/till"),
             "customer page as staff": staff_client.get("/family")}
    other = {
        "manifest": app.test_client().get("/manifest.webmanifest"),
        "sw": app.test_client().get("/sw.js"),
        "static css": app.test_client().get("/static/css/app.css"),
        "readyz": app.test_client().get("/readyz"),
        "health": app.test_client().get("/healthz"),
        "api": app.test_client().get("/api/v1/no-such-thing"),
    }
    responses = {**{f"customer {k}": v for k, v in customer.items()},
                 **{f"anonymous {k}": v for k, v in anonymous.items()},
                 **{f"staff {k}": v for k, v in staff.items()}, **other}
    for response in responses.values():  # buffered, so streamed files are closed
        response.get_data()
        response.close()
    return responses


def test_security_headers_on_every_response(app, family_account):
    responses = _all_responses(app, family_account)
    assert {r.status_code for r in responses.values()} >= {200, 302, 400, 404, 405, 413, 422}
    for name, response in responses.items():
        csp = response.headers.get("Content-Security-Policy", "")
        directives = {d.split()[0]: d.split()[1:] for d in csp.split(";") if d.strip()}
        assert directives.get("script-src") == ["'self'"], name
        assert "'unsafe-inline'" not in csp, name
        assert "'unsafe-eval'" not in csp, name
        assert directives.get("frame-ancestors") == ["'none'"], name
        assert directives.get("object-src") == ["'none'"], name
        assert response.headers.get("X-Content-Type-Options") == "nosniff", name
        assert response.headers.get("Referrer-Policy") in (
            "same-origin", "strict-origin-when-cross-origin", "no-referrer"), name
        assert "Strict-Transport-Security" not in response.headers, name  # HTTP config


def test_hsts_only_when_https_config_is_on():
    app = create_app({"PROFILE": "test", "HTTPS": True, "DATABASE_URL": "sqlite://"})
    try:
        client = app.test_client()
        for path in ("/login", "/healthz", "/sw.js", "/no-such-page"):
            with client.get(path, base_url="https://localhost") as response:
                hsts = response.headers.get("Strict-Transport-Security", "")
            assert hsts.startswith("max-age="), path
            assert int(hsts.split("=")[1].split(";")[0]) >= 180 * 86400
    finally:
        db.dispose()


def test_no_inline_script_handlers_or_style_in_any_page(app, family_account):
    responses = _all_responses(app, family_account)
    html_pages = {name: r for name, r in responses.items()
                  if r.mimetype == "text/html" and r.status_code != 302}
    assert len(html_pages) >= 18
    for name, response in html_pages.items():
        assert inline_code(response.get_data(as_text=True)) == [], name


def test_the_inline_code_finder_finds_inline_code():
    assert inline_code('<p onclick="x()" style="color:red">a</p><script>alert(1)</script>'
                       '<a href="javascript:void(0)">x</a><style>p{}</style>'
                       '<button hx-on:click="x()">b</button>') == [
        "event handler onclick= on <p>", 'style="" on <p>', "inline <script> block",
        "script element with inline content", "javascript: URL in href on <a>",
        "<style> element", "hx-on:click (inline script through htmx) on <button>"]
    assert inline_code('<script src="/static/js/app.js" defer></script>') == []


def test_user_text_cannot_break_out_of_attributes(app, client, auth):
    """A name with quotes is stored as typed and rendered inert, even inside attributes
    (hx-confirm, value=) where a missing escape would add an event handler."""
    auth.register()
    page = client.get("/family").get_data(as_text=True)
    name = "\" onmouseover=\"alert(1)\" x='"
    response = client.post("/family", data={"csrf_token": csrf_token(page), "name": name})
    assert response.status_code == 302
    for path in ("/family", "/card"):
        html = client.get(path).get_data(as_text=True)
        assert inline_code(html) == [], path
    assert "&#34; onmouseover=&#34;alert(1)&#34; x=&#39;" in client.get("/family").get_data(
        as_text=True)


# --- CSRF -----------------------------------------------------------------------------


def _form_posts(tom_id: int) -> dict[str, tuple[str, dict[str, str]]]:
    return {
        "login": ("/login", {"email": "ana@example.com", "password": PASSWORD}),
        "register": ("/register", {"name": "Eve", "email": "eve@example.com",
                                   "password": PASSWORD, "region": "us"}),
        "logout": ("/logout", {}),
        "family add": ("/family", {"name": "Mallory"}),
        "family rename": (f"/family/{tom_id}", {f"m{tom_id}-name": "Mallory"}),
        "family remove": (f"/family/{tom_id}/remove", {}),
    }


FORMS = ["login", "register", "logout", "family add", "family rename", "family remove"]
BAD_TOKENS = {
    "missing": None,
    "forged": "IjAwMDAwMDAwMDAwMDAwMDAwMDAwMDAwMDAwMDAwMDAwMDAwMDAwMDAi.aaaaaa.bbbbbbbbbbbbbb",
    "garbage": "'; DROP TABLE cards;--",
}


def _state(app, account_id: int) -> tuple[dict[str, int], str, str]:
    with app.app_context():
        counts = _counts()
        cards = db.read(lambda conn: active_cards(conn, account_id), name="test")
        revoked = db.read(lambda conn: conn.execute(select(func.count()).select_from(
            refresh_tokens).where(refresh_tokens.c.revoked_at.is_not(None))).scalar(),
            name="test")
    names = ",".join(c["display_name"] for c in cards)
    return counts, names, str(revoked)


@pytest.mark.parametrize("form", FORMS)
@pytest.mark.parametrize("token", list(BAD_TOKENS))
def test_every_form_rejects_a_bad_csrf_token(app, family_account, form, token):
    client = family_account["client"]
    path, data = _form_posts(family_account["tom"])[form]
    if BAD_TOKENS[token] is not None:
        data = {**data, "csrf_token": BAD_TOKENS[token]}
    before = _state(app, family_account["account_id"])

    response = client.post(path, data=data)

    assert response.status_code == 400
    html = response.get_data(as_text=True)
    assert "This form has expired. Please go back, reload and try again." in html
    assert "Traceback" not in html
    assert _state(app, family_account["account_id"]) == before
    assert client.get("/card").status_code == 200  # still signed in (logout refused)


@pytest.mark.parametrize("form", FORMS)
def test_htmx_requests_without_the_csrf_header_are_rejected(app, family_account, form):
    client = family_account["client"]
    path, data = _form_posts(family_account["tom"])[form]
    before = _state(app, family_account["account_id"])

    response = client.post(path, data=data, headers={
        "HX-Request": "true", "HX-Target": "family", "HX-Current-URL": "http://localhost/family"})

    assert response.status_code == 400
    assert "This form has expired" in response.get_data(as_text=True)
    assert _state(app, family_account["account_id"]) == before


def test_htmx_request_with_the_csrf_header_only_is_accepted(app, family_account):
    """What the hx-headers on <body> does: the header alone is a valid token."""
    client = family_account["client"]
    token = csrf_token(client.get("/family").get_data(as_text=True))
    response = client.post("/family", data={"name": "Header Only"}, headers={
        "HX-Request": "true", "HX-Target": "family", "X-CSRFToken": token})
    assert response.status_code == 200
    assert "Header Only" in response.get_data(as_text=True)


def test_csrf_token_of_another_session_is_rejected(app, family_account, auth):
    stranger = app.test_client()
    stranger_token = csrf_token(stranger.get("/login").get_data(as_text=True))
    client = family_account["client"]
    before = _state(app, family_account["account_id"])
    response = client.post("/family", data={"csrf_token": stranger_token, "name": "Mallory"})
    assert response.status_code == 400
    assert _state(app, family_account["account_id"]) == before


def test_body_carries_the_csrf_header_for_htmx(client, auth):
    auth.register()
    html = client.get("/card").get_data(as_text=True)
    assert '<body hx-headers=\'{"X-CSRFToken": "' in html
