"""Passkeys through the JSON endpoints that static/js/passkeys.js calls, with a software
authenticator making real WebAuthn responses; on SQLite and on the Galera lab."""

from __future__ import annotations

import re
from datetime import timedelta

import pytest
from sqlalchemy import select, update

from tests.helpers import AuthActions, csrf_token
from tests.webauthn_helpers import SoftAuthenticator
from webapp.clock import utcnow
from webapp.database.schema import passkeys, webauthn_challenges
from webapp.extensions import db

ORIGIN = "https://loyalty.test"


@pytest.fixture(autouse=True)
def _setup(app):
    app.config["PUBLIC_BASE_URL"] = ORIGIN


def _header_token(client, path="/account") -> dict:
    html = client.get(path).get_data(as_text=True)
    return {"X-CSRFToken": re.search(r'"X-CSRFToken": "([^"]+)"', html).group(1)}


def _add(client, authenticator, name="My phone", **create):
    headers = _header_token(client)
    options = client.post("/account/passkeys/options", headers=headers)
    assert options.status_code == 200, options.get_data(as_text=True)
    assert options.headers["Cache-Control"] == "no-store"
    body = options.get_json()
    credential = authenticator.create(body, **create)
    return client.post("/account/passkeys", headers=headers,
                       json={"credential": credential, "name": name}), body


def _sign_in(client, authenticator, **get):
    headers = _header_token(client, "/login")
    options = client.post("/login/passkey/options", headers=headers).get_json()
    assertion = authenticator.get(options, **get)
    return client.post("/login/passkey", headers=headers, json={"credential": assertion}), (
        assertion, headers)


def _rows(app, table, *where):
    with app.app_context():
        return db.read(
            lambda conn: [dict(r) for r in conn.execute(select(table).where(*where)).mappings()],
            name="test.rows", causal=True)


def test_register_a_passkey_then_sign_in_with_it(app, client, auth):
    auth.register()
    key = SoftAuthenticator("loyalty.test", ORIGIN)
    response, options = _add(client, key, name="Ana's phone")
    assert response.status_code == 201, response.get_data(as_text=True)
    # The relying party and the user handle: from config and the account id, not PII.
    assert options["rp"] == {"id": "loyalty.test", "name": "Loyalty Card"}
    assert options["authenticatorSelection"]["residentKey"] == "required"
    assert "example.com" not in options["user"]["id"]
    [stored] = _rows(app, passkeys)
    assert stored["name"] == "Ana's phone"
    assert "Ana&#39;s phone" in client.get("/account").get_data(as_text=True)

    browser = app.test_client()
    response, _ = _sign_in(browser, key)
    assert response.status_code == 200, response.get_data(as_text=True)
    assert response.get_json() == {"redirect": "/card"}
    assert browser.get("/card").status_code == 200
    [stored] = _rows(app, passkeys)
    assert stored["sign_count"] == 1
    assert stored["last_used_at"] is not None


def test_several_passkeys_renamed_and_removed(app, client, auth):
    auth.register()
    phone, laptop = (SoftAuthenticator("loyalty.test", ORIGIN) for _ in range(2))
    assert _add(client, phone, name="Phone")[0].status_code == 201
    response, options = _add(client, laptop, name="Laptop")
    assert response.status_code == 201
    assert len(options["excludeCredentials"]) == 1  # the phone's: not registered twice
    first, second = _rows(app, passkeys)

    page = client.get("/account").get_data(as_text=True)
    client.post(f"/account/passkeys/{first['id']}", data={
        "csrf_token": csrf_token(page), f"p{first['id']}-name": "Old phone"})
    assert _rows(app, passkeys)[0]["name"] == "Old phone"
    response = client.post(f"/account/passkeys/{first['id']}/remove",
                           data={"csrf_token": csrf_token(page)})
    assert response.status_code == 302
    assert [p["name"] for p in _rows(app, passkeys)] == ["Laptop"]
    response, _ = _sign_in(app.test_client(), phone)
    assert response.status_code == 401
    assert response.get_json() == {
        "error": "This passkey is not registered for any account here."}
    assert _sign_in(app.test_client(), laptop)[0].status_code == 200

    # Another account can neither rename nor remove it.
    other = app.test_client()
    AuthActions(other).register(email="bob@example.com", name="Bob")
    page = other.get("/account").get_data(as_text=True)
    assert other.post(f"/account/passkeys/{second['id']}/remove",
                      data={"csrf_token": csrf_token(page)}).status_code == 404
    assert len(_rows(app, passkeys)) == 1


def test_challenges_are_single_use_short_lived_and_bound_to_the_origin(app, client, auth):
    auth.register()
    key = SoftAuthenticator("loyalty.test", ORIGIN)
    _add(client, key)

    browser = app.test_client()
    response, (assertion, headers) = _sign_in(browser, key)
    assert response.status_code == 200
    # Signing in rotated the session (and its CSRF token): replay with the new session's
    # token, so it is the spent challenge that refuses the assertion, not CSRF.
    assert _header_token(browser) != headers
    replay = browser.post("/login/passkey", headers=_header_token(browser),
                          json={"credential": assertion})
    assert replay.status_code in (400, 422), replay.get_data(as_text=True)
    assert "expired or was already used" in replay.get_json()["error"]

    # Signed for another site: refused, and the challenge is spent all the same.
    response, _ = _sign_in(app.test_client(), key, origin="https://evil.example")
    assert response.status_code == 401
    assert response.get_json() == {"error": "The passkey could not be checked."}

    # Too old.
    headers = _header_token(browser, "/login")
    options = browser.post("/login/passkey/options", headers=headers).get_json()
    with app.app_context():
        db.write(lambda conn: conn.execute(update(webauthn_challenges).values(
            expires_at=utcnow() - timedelta(seconds=1))), name="t")
    late = browser.post("/login/passkey", headers=headers,
                        json={"credential": key.get(options)})
    assert late.status_code in (400, 422)
    assert "expired" in late.get_json()["error"]


def test_passkey_endpoints_refuse_bad_input_cleanly(app, client, auth):
    headers = _header_token(client, "/login")
    for body in ({}, {"credential": "x"}, {"credential": {"response": {}}},
                 {"credential": {"response": {"clientDataJSON": "!!"}}}):
        response = client.post("/login/passkey", headers=headers, json=body)
        assert response.status_code == 422, body
        assert response.get_json()["error"]
    # No CSRF header: refused before anything runs.
    assert app.test_client().post("/login/passkey/options").status_code == 400
    # Registering needs a session.
    assert client.post("/account/passkeys/options", headers=headers).status_code == 302
    auth.register()
    key = SoftAuthenticator("loyalty.test", ORIGIN)
    response, _ = _add(client, key, name="")
    assert response.status_code == 422
    assert _rows(app, passkeys) == []
