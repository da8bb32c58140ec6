"""What a signed-in page leaves behind: nothing a browser may keep after sign-out.

- Every page answered to a signed-in user is ``Cache-Control: no-store``, so neither the
  HTTP cache nor the back/forward cache brings it back after sign-out.
- Sign-out answers ``Clear-Site-Data: "cache", "storage"``.
- The account cookie (a keyed hash of the account id, not a secret) tells the service
  worker and the card script whose card they hold; it lives and dies with the session.
- ``GET /session`` says whether the session is still on, and for whom.
- The session cookie that holds the CSRF token is a new one at sign-in and at sign-out.
- The ``card`` cookie is Secure whenever the app is configured for HTTPS.
"""

from __future__ import annotations

from http.cookies import SimpleCookie

import pytest

from db.seed import seed_stores
from tests.helpers import PASSWORD, AuthActions, csrf_token
from webapp import create_app
from webapp.auth import tokens
from webapp.commands import upgrade_schema
from webapp.extensions import db
from webapp.staff import create_staff

ACCOUNT_COOKIE = "account"
# Not pages: the worker script, the manifest and static files have their own caching;
# health checks and the API answer machines (the API is no-store on its own).
NOT_PAGES = {"static", "pwa.service_worker", "pwa.manifest", "health.healthz",
             "health.readyz"}


def _set_cookies(response) -> dict:
    cookies = {}
    for header in response.headers.getlist("Set-Cookie"):
        cookies.update(SimpleCookie(header))
    return cookies


def _page_urls(app) -> list[str]:
    """Every GET page of the app without path arguments, straight from its URL map."""
    urls = [rule.rule for rule in app.url_map.iter_rules()
            if "GET" in rule.methods and not rule.arguments
            and rule.endpoint not in NOT_PAGES and not rule.endpoint.startswith("api.")]
    assert {"/", "/card", "/family", "/till", "/login", "/offline"} <= set(urls), urls
    return sorted(urls)


def _assert_no_store(response, what: str) -> None:
    cache = response.headers.get("Cache-Control", "")
    assert "no-store" in cache, f"{what}: Cache-Control {cache!r}"


@pytest.fixture
def customer(client, auth):
    auth.register()
    return client


@pytest.fixture
def barista(app):
    with app.app_context():
        create_staff(email="barista@example.com", store_code="IE-DUB-01", name="Aoife",
                     password=PASSWORD)
    client = app.test_client()
    AuthActions(client).login(email="barista@example.com")
    return client


# --- no-store ----------------------------------------------------------------------


def test_every_page_a_customer_sees_is_no_store(app, customer):
    for url in _page_urls(app):
        _assert_no_store(customer.get(url), f"customer GET {url}")
    _assert_no_store(customer.get("/card?fresh=1", headers={"HX-Request": "true"}),
                     "card history partial")
    _assert_no_store(customer.get("/no-such-page"), "404 page")
    page = customer.get("/family").get_data(as_text=True)
    added = customer.post("/family", data={"csrf_token": csrf_token(page), "name": "Tom"})
    assert added.status_code == 302
    _assert_no_store(added, "family add redirect")
    refused = customer.post("/family", data={"csrf_token": csrf_token(page), "name": ""})
    assert refused.status_code == 422
    _assert_no_store(refused, "family form with errors")


def test_every_page_a_barista_sees_is_no_store(app, barista):
    for url in _page_urls(app):
        _assert_no_store(barista.get(url), f"staff GET {url}")


def test_sign_in_and_register_answers_are_no_store(client, auth):
    _assert_no_store(auth.register(), "register redirect")
    auth.logout()
    _assert_no_store(auth.login(), "login redirect")


def test_the_worker_and_static_files_keep_their_own_caching(customer):
    for url in ("/sw.js", "/static/css/app.css?v=1", "/manifest.webmanifest"):
        with customer.get(url) as response:
            assert response.status_code == 200
            assert "no-store" not in response.headers.get("Cache-Control", ""), url


# --- sign-out ----------------------------------------------------------------------


def test_sign_out_clears_the_site_cache_and_storage(customer, auth):
    response = auth.logout()
    assert response.status_code == 302
    directives = {d.strip() for d in response.headers.get("Clear-Site-Data", "").split(",")}
    assert {'"cache"', '"storage"'} <= directives
    # Not "cookies": that would sign the user out of every site on the registrable domain.
    assert '"cookies"' not in directives
    _assert_no_store(response, "logout")


# --- the account cookie ------------------------------------------------------------


def test_account_cookie_names_the_account_without_revealing_it(app, client, auth):
    cookies = _set_cookies(auth.register())
    tag = cookies[ACCOUNT_COOKIE].value
    morsel = cookies[ACCOUNT_COOKIE]
    assert not morsel["httponly"]  # the service worker and card.js read it
    assert morsel["samesite"] == "Lax"
    assert morsel["path"] == "/"
    assert int(morsel["max-age"]) == int(app.config["REFRESH_TOKEN_TTL"].total_seconds())
    assert len(tag) >= 16
    assert tag.isalnum()

    card = client.get("/card")
    assert card.headers["X-Loyalty-Account"] == tag
    assert f'data-account="{tag}"' in card.get_data(as_text=True)

    other = app.test_client()
    other_tag = _set_cookies(AuthActions(other).register(email="bo@example.com"))[
        ACCOUNT_COOKIE].value
    assert other_tag != tag
    # Signing in again as the same account gives the same tag: it names the account.
    auth.logout()
    assert _set_cookies(auth.login())[ACCOUNT_COOKIE].value == tag


def test_account_cookie_goes_at_sign_out(customer, auth):
    cookies = _set_cookies(auth.logout())
    assert cookies[ACCOUNT_COOKIE].value == ""
    assert customer.get_cookie(ACCOUNT_COOKIE) is None


def test_account_cookie_goes_when_the_session_ends_otherwise(app, customer):
    with app.app_context():
        tokens.revoke(customer.get_cookie("refresh_token").value)
    customer.delete_cookie("access_token")
    response = customer.get("/card")
    assert response.status_code == 302
    assert customer.get_cookie(ACCOUNT_COOKIE) is None


# --- GET /session ------------------------------------------------------------------


def test_session_says_whose_session_is_on(client, auth):
    assert client.get("/session").status_code == 401
    auth.register()
    answer = client.get("/session")
    assert answer.status_code == 200
    assert answer.get_json() == {"account": client.get_cookie(ACCOUNT_COOKIE).value}
    _assert_no_store(answer, "/session")
    auth.logout()
    gone = client.get("/session")
    assert gone.status_code == 401
    assert gone.is_json


# --- item 12: the CSRF session and the card cookie ---------------------------------


def _session_cookie(client) -> str | None:
    cookie = client.get_cookie("session")
    return cookie.value if cookie else None


def test_sign_in_rotates_the_session_that_holds_the_csrf_token(app, client, auth):
    with app.app_context():
        create_staff(email="ana@example.com", store_code="IE-DUB-01", name="Ana",
                     password=PASSWORD)
    before = csrf_token(client.get("/login").get_data(as_text=True))
    session_before = _session_cookie(client)
    assert session_before
    response = client.post("/login", data={"csrf_token": before, "email": "ana@example.com",
                                           "password": PASSWORD})
    assert response.status_code == 302
    assert _session_cookie(client) != session_before
    after = csrf_token(client.get("/till").get_data(as_text=True))
    assert after != before
    # A token picked up before sign-in (planted, or read off a shared screen) is dead.
    stale = client.post("/logout", data={"csrf_token": before})
    assert stale.status_code == 400
    assert client.get("/till").status_code == 200  # still signed in


def test_sign_out_rotates_the_session_that_holds_the_csrf_token(client, auth):
    auth.register()
    signed_in = csrf_token(client.get("/card").get_data(as_text=True))
    session_before = _session_cookie(client)
    assert client.post("/logout", data={"csrf_token": signed_in}).status_code == 302
    assert _session_cookie(client) != session_before
    fresh = csrf_token(client.get("/login").get_data(as_text=True))
    assert fresh != signed_in
    replay = client.post("/login", data={"csrf_token": signed_in, "email": "ana@example.com",
                                         "password": PASSWORD})
    assert replay.status_code == 400


@pytest.mark.parametrize(("https", "scheme", "secure"), [
    (True, "http", True),    # TLS ends at a proxy the app was not told to trust
    (True, "https", True),
    (False, "https", False),
    (False, "http", False),
], ids=["https-behind-proxy", "https", "http-config-https-request", "http"])
def test_card_cookie_secure_follows_the_https_setting(tmp_path, https, scheme, secure):
    """``scheme`` is what the app sees; the browser is on HTTPS whenever the app is
    configured for it (it would not send the Secure session cookies otherwise)."""
    app = create_app({"PROFILE": "test", "HTTPS": https,
                      "DATABASE_URL": f"sqlite:///{tmp_path / 'https.db'}"})
    browser = "https" if https else scheme
    try:
        with app.app_context():
            upgrade_schema()
            seed_stores()
        client = app.test_client()
        client.environ_base["wsgi.url_scheme"] = browser
        client.environ_base["HTTP_REFERER"] = f"{browser}://localhost/register"
        assert AuthActions(client).register().status_code == 302
        card = client.get("/card", base_url=f"{browser}://localhost",
                          environ_overrides={"wsgi.url_scheme": scheme})
        assert card.status_code == 200
        assert bool(_set_cookies(card)["card"]["secure"]) is secure
    finally:
        db.dispose()
