"""Register, sign in, sign out: argon2id hashes, one generic error, a rate limit."""

from __future__ import annotations

import hashlib
import re
from urllib.parse import urlsplit

import pytest
from argon2 import PasswordHasher
from sqlalchemy import select

from db.seed import seed_stores
from tests.helpers import PASSWORD, AuthActions, csrf_token
from tests.mail_helpers import outbox
from webapp import create_app
from webapp.commands import upgrade_schema
from webapp.config import REGIONS
from webapp.database.schema import accounts, cards, refresh_tokens, wallets
from webapp.extensions import db

# The production argon2id cost is this file's subject (other tests hash cheaply).
pytestmark = pytest.mark.full_password_cost

GENERIC_LOGIN_ERROR = "Email or password is incorrect."


def _rows(app, table, *where):
    with app.app_context():
        return db.read(
            lambda conn: [dict(r) for r in conn.execute(select(table).where(*where)).mappings()],
            name="test.rows", causal=True,
        )


def _cookie(client, name):
    cookie = client.get_cookie(name)
    return cookie.value if cookie else None


def _alert(html: str) -> str | None:
    match = re.search(r'<p class="alert" role="alert">([^<]*)</p>', html)
    return match.group(1) if match else None


@pytest.mark.parametrize("region", REGIONS)
def test_register_creates_account_wallet_and_holder_card(app, client, auth, region):
    response = auth.register(email="Ana.Silva@Example.COM", name="Ana Silva", region=region)

    assert response.status_code == 302
    assert response.headers["Location"] == "/card"
    assert _cookie(client, "access_token")
    assert _cookie(client, "refresh_token")
    [account] = _rows(app, accounts)
    assert account["email"] == "ana.silva@example.com"  # one account per mailbox
    assert account["home_region"] == region
    assert account["role"] == "customer"
    assert account["password_hash"].startswith("$argon2id$")
    # The library's recommended cost, not less (a cheaper hash would need a rehash).
    assert not PasswordHasher().check_needs_rehash(account["password_hash"])
    assert PASSWORD not in account["password_hash"]
    [wallet] = _rows(app, wallets)
    assert (wallet["account_id"], wallet["balance"]) == (account["id"], 0)
    [card] = _rows(app, cards)
    assert (card["slot"], card["display_name"], card["wallet_id"]) == (0, "Ana Silva",
                                                                       wallet["id"])
    page = client.get("/card").get_data(as_text=True)
    assert "Ana Silva" in page


def test_register_page_offers_the_three_home_regions(client):
    page = client.get("/register").get_data(as_text=True)
    for field in ("name", "email", "password"):
        assert f'name="{field}"' in page
    assert sorted(re.findall(r'name="region"[^>]*type="radio" value="(\w+)"', page)) == [
        "ie", "in", "us"]


def test_register_twice_with_one_email_answers_the_same_and_mails_the_owner(app, client, auth):
    """A second registration of an address is answered exactly like a first one (the
    enumeration tests compare bodies): only the owner learns of it, by mail."""
    auth.register()
    other = AuthActions(app.test_client())
    response = other.register(email="ANA@example.com", name="Someone Else", verify=False)

    assert response.status_code == 302
    assert response.headers["Location"] == "/register/sent"
    assert len(_rows(app, accounts)) == 1
    assert len(_rows(app, cards)) == 1
    assert [m["kind"] for m in outbox(app, "ana@example.com")] == ["verify", "register_existing"]
    assert other.client.get_cookie("access_token") is None


def test_login_form_fields_are_email_and_password(client):
    page = client.get("/login").get_data(as_text=True)
    assert re.search(r'<input[^>]*name="email"', page)
    assert re.search(r'<input[^>]*name="password"[^>]*type="password"|'
                     r'<input[^>]*type="password"[^>]*name="password"', page)


def test_login_sets_session_and_logout_ends_it(app, auth):
    auth.register()
    client = app.test_client()
    actions = AuthActions(client)

    response = actions.login(email=" ANA@example.com ")
    assert response.status_code == 302
    assert response.headers["Location"] == "/card"
    assert client.get("/card").status_code == 200
    refresh = _cookie(client, "refresh_token")
    [token] = _rows(app, refresh_tokens,
                    refresh_tokens.c.token_hash == hashlib.sha256(refresh.encode()).hexdigest())

    response = actions.logout()
    assert response.status_code == 302
    assert response.headers["Location"] == "/login"
    assert _cookie(client, "access_token") is None
    assert _cookie(client, "refresh_token") is None
    assert client.get("/card").status_code == 302
    # The refresh token is revoked server-side, not only forgotten by the browser...
    client.set_cookie("refresh_token", refresh)
    response = client.get("/card")
    assert response.status_code == 302
    assert response.headers["Location"].startswith("/login")
    family = _rows(app, refresh_tokens, refresh_tokens.c.family_id == token["family_id"])
    assert all(row["revoked_at"] is not None for row in family)
    # ...and only this session's: the registration session on the other client lives on.
    assert auth.client.get("/card").status_code == 200


@pytest.mark.parametrize(
    ("next_url", "expected"),
    [
        ("/family", "/family"),
        ("/card?card=3", "/card?card=3"),
        ("//evil.example/phish", "/card"),
        ("https://evil.example/phish", "/card"),
        ("javascript:alert(1)", "/card"),
    ],
)
def test_login_only_redirects_to_same_site_paths(app, auth, next_url, expected):
    auth.register()
    client = app.test_client()
    page = client.get("/login").get_data(as_text=True)
    response = client.post("/login", query_string={"next": next_url}, data={
        "csrf_token": csrf_token(page), "email": "ana@example.com", "password": PASSWORD})
    assert response.status_code == 302
    assert response.headers["Location"] == expected


@pytest.mark.parametrize("next_url", ["/\\evil.example", "/\\/evil.example", "/%2F/evil.example"])
def test_login_next_with_backslashes_stays_on_site(app, auth, next_url):
    auth.register()
    client = app.test_client()
    page = client.get("/login").get_data(as_text=True)
    response = client.post("/login", query_string={"next": next_url}, data={
        "csrf_token": csrf_token(page), "email": "ana@example.com", "password": PASSWORD})
    location = response.headers["Location"]
    # Browsers read "/\\host" as "//host"; the Location must not start that way.
    assert location.startswith("/")
    assert not location.startswith(("//", "/\\"))
    assert urlsplit(location).netloc == ""


def test_signed_in_root_goes_to_card_and_anonymous_to_login(client, auth):
    response = client.get("/")
    assert response.headers["Location"] == "/login"
    auth.register()
    assert client.get("/").headers["Location"] == "/card"


def test_staff_sign_in_lands_on_the_till(app):
    from webapp.staff import create_staff

    with app.app_context():
        create_staff(email="barista@example.com", store_code="IE-DUB-01", name="Aoife",
                     password=PASSWORD)
    response = AuthActions(app.test_client()).login(email="barista@example.com")
    assert response.status_code == 302
    assert response.headers["Location"] == "/till"


def test_bad_credentials_get_one_generic_answer(app, auth):
    auth.register()
    wrong_password = AuthActions(app.test_client()).login(password="not-the-password")
    unknown_email = AuthActions(app.test_client()).login(email="nobody@example.com")
    bad_format = AuthActions(app.test_client()).login(email="not-an-email")

    for response in (wrong_password, unknown_email, bad_format):
        assert response.status_code == 401
        assert _alert(response.get_data(as_text=True)) == GENERIC_LOGIN_ERROR
        assert "access_token" not in response.headers.get("Set-Cookie", "")

    # Nothing else on the page differs either (the echoed email and CSRF token aside).
    def normalized(response, email):
        html = response.get_data(as_text=True).replace(email, "EMAIL")
        return re.sub(r'(value="|"X-CSRFToken": ")[^"]{20,}"', r'\1TOKEN"', html)

    assert normalized(wrong_password, "ana@example.com") == normalized(
        unknown_email, "nobody@example.com")


def _rate_limited_app(tmp_path, limit: str):
    app = create_app({"PROFILE": "test", "DATABASE_URL": f"sqlite:///{tmp_path / 'rl.db'}",
                      "LOGIN_RATE_LIMIT": limit})
    with app.app_context():
        upgrade_schema()
        seed_stores()
    return app


def test_login_is_rate_limited_with_retry_after(tmp_path):
    app = _rate_limited_app(tmp_path, "3 per minute")
    try:
        client = app.test_client()
        actions = AuthActions(client)
        actions.register(email="ana@example.com")  # its own bucket: register is limited too
        statuses = [actions.login(password="wrong-password-x").status_code for _ in range(3)]
        assert statuses == [401, 401, 401]

        response = actions.login()  # even the right password waits now
        assert response.status_code == 429
        retry_after = int(response.headers["Retry-After"])
        assert 0 < retry_after <= 60
        assert "Too many attempts" in response.get_data(as_text=True)
        assert _cookie(client, "access_token") is None or "access_token" not in (
            response.headers.get("Set-Cookie", ""))
        # Reading the form is not limited; only attempts are.
        assert client.get("/login").status_code == 200
    finally:
        db.dispose()


def test_register_is_rate_limited(tmp_path):
    app = _rate_limited_app(tmp_path, "2 per minute")
    try:
        actions = AuthActions(app.test_client())
        codes = [actions.register(email=f"user{i}@example.com", verify=False).status_code
                 for i in range(3)]
        assert codes == [302, 302, 429]
        with app.app_context():
            assert len(db.read(lambda conn: conn.execute(select(accounts)).all(),
                               name="test")) == 2
    finally:
        db.dispose()
