"""Access JWTs and rotating refresh tokens, as the browser sees them through cookies.

Anything wrong with a token means "not signed in": a page redirects to /login (htmx gets
``HX-Redirect``), never a 500. A refresh token works once; presenting a spent one after
the grace period means it leaked, and the whole family dies.
"""

from __future__ import annotations

import base64
import hashlib
import json
from datetime import timedelta
from http.cookies import SimpleCookie
from urllib.parse import parse_qs, urlsplit

import jwt
import pytest
from sqlalchemy import select

from db.seed import seed_stores
from tests.helpers import AuthActions
from webapp import create_app
from webapp.auth import tokens
from webapp.clock import utcnow
from webapp.commands import upgrade_schema
from webapp.database.schema import refresh_tokens
from webapp.extensions import db

ACCESS, REFRESH = "access_token", "refresh_token"


def _cookie(client, name):
    cookie = client.get_cookie(name)
    return cookie.value if cookie else None


def _set_cookies(response) -> dict[str, SimpleCookie]:
    cookies = {}
    for header in response.headers.getlist("Set-Cookie"):
        parsed = SimpleCookie(header)
        for name, morsel in parsed.items():
            cookies[name] = morsel
    return cookies


def _token_rows(app, *where):
    with app.app_context():
        return db.read(lambda conn: [dict(r) for r in conn.execute(
            select(refresh_tokens).where(*where).order_by(refresh_tokens.c.id)).mappings()],
            name="test.tokens", causal=True)


def _row_for(app, refresh: str) -> dict:
    [row] = _token_rows(app, refresh_tokens.c.token_hash
                        == hashlib.sha256(refresh.encode()).hexdigest())
    return row


@pytest.fixture
def signed_in(client, auth):
    response = auth.register()
    assert response.status_code == 302
    return client


def _only_refresh(client, refresh: str):
    """The browser's state once the 10-minute access cookie has gone."""
    client.delete_cookie(ACCESS)
    client.set_cookie(REFRESH, refresh)


def _b64(data: dict | bytes) -> str:
    raw = data if isinstance(data, bytes) else json.dumps(data).encode()
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def test_access_token_is_short_lived_hs256_with_kid(app, signed_in):
    token = _cookie(signed_in, ACCESS)
    header = jwt.get_unverified_header(token)
    assert header["alg"] == "HS256"
    assert header["kid"] == app.config["JWT_ACTIVE_KID"]
    claims = jwt.decode(token, options={"verify_signature": False})
    assert claims["exp"] - claims["iat"] <= 15 * 60
    assert claims["aud"] == app.config["JWT_AUDIENCE"]
    assert claims["iss"] == app.config["JWT_ISSUER"]
    # The production default, not only the test profile, keeps to the 15 minutes.
    from webapp.config import Config

    assert timedelta(minutes=15) >= Config.ACCESS_TOKEN_TTL


def test_session_cookies_are_httponly_lax_and_not_secure_over_http(auth):
    response = auth.register()
    cookies = _set_cookies(response)
    for name in (ACCESS, REFRESH):
        morsel = cookies[name]
        assert morsel["httponly"] is True
        assert morsel["samesite"] == "Lax"
        assert morsel["path"] == "/"
        assert not morsel["secure"]  # the test profile has HTTPS off
    assert int(cookies[ACCESS]["max-age"]) <= 15 * 60


def test_session_cookies_are_secure_when_https_is_on(tmp_path):
    app = create_app({"PROFILE": "test", "HTTPS": True,
                      "DATABASE_URL": f"sqlite:///{tmp_path / 'https.db'}"})
    try:
        with app.app_context():
            upgrade_schema()
            seed_stores()
        client = app.test_client()
        client.environ_base["wsgi.url_scheme"] = "https"
        # Flask-WTF checks the Referer on HTTPS (browsers send it: same-origin policy).
        client.environ_base["HTTP_REFERER"] = "https://localhost/register"
        response = AuthActions(client).register()
        assert response.status_code == 302
        cookies = _set_cookies(response)
        for name in (ACCESS, REFRESH):
            assert cookies[name]["secure"] is True
            assert cookies[name]["httponly"] is True
            assert cookies[name]["samesite"] == "Lax"
        card = client.get("/card", base_url="https://localhost")
        assert card.status_code == 200
        assert _set_cookies(card)["card"]["secure"] is True
    finally:
        db.dispose()


def test_refresh_rotates_on_every_use(app, signed_in):
    first = _cookie(signed_in, REFRESH)
    seen = [first]
    for _ in range(3):
        _only_refresh(signed_in, seen[-1])
        response = signed_in.get("/card")
        assert response.status_code == 200  # transparent: the page just shows
        cookies = _set_cookies(response)
        assert cookies[ACCESS].value
        assert cookies[REFRESH].value
        assert cookies[REFRESH].value not in seen
        seen.append(cookies[REFRESH].value)
    rows = _token_rows(app)
    assert len({row["family_id"] for row in rows}) == 1  # one login, one family
    assert [row["used_at"] is not None for row in rows] == [True, True, True, False]
    # The new access cookie is a valid token for the same account.
    with app.app_context():
        principal = tokens.decode_access_token(_cookie(signed_in, ACCESS))
    assert principal.account_id == _row_for(app, first)["account_id"]


def test_transparent_refresh_when_access_expired(app, signed_in):
    refresh = _cookie(signed_in, REFRESH)
    account_id = _row_for(app, refresh)["account_id"]
    past = utcnow() - timedelta(minutes=20)
    # The cookie is still sent (a phone's clock is off); the token inside has expired.
    signed_in.set_cookie(ACCESS, _sign(app, _claims(
        app, sub=str(account_id), iat=past, nbf=past, exp=past + timedelta(minutes=10))))
    response = signed_in.get("/family")
    assert response.status_code == 200
    cookies = _set_cookies(response)
    assert cookies[REFRESH].value != refresh
    with app.app_context():
        assert tokens.decode_access_token(cookies[ACCESS].value).account_id == account_id


def test_reusing_a_spent_refresh_token_revokes_the_whole_family(app, signed_in, monkeypatch):
    stolen = _cookie(signed_in, REFRESH)
    _only_refresh(signed_in, stolen)
    response = signed_in.get("/card")
    current = _set_cookies(response)[REFRESH].value

    # Outside the 10 s grace: the old token coming back means someone copied it.
    later = utcnow() + tokens.REUSE_GRACE + timedelta(seconds=1)
    monkeypatch.setattr("webapp.auth.tokens.utcnow", lambda: later)
    _only_refresh(signed_in, stolen)
    response = signed_in.get("/card")
    assert response.status_code == 302
    assert response.headers["Location"].startswith("/login")
    cleared = _set_cookies(response)
    assert cleared[REFRESH].value == ""
    assert cleared[ACCESS].value == ""

    family_id = _row_for(app, stolen)["family_id"]
    assert all(row["revoked_at"] is not None
               for row in _token_rows(app, refresh_tokens.c.family_id == family_id))
    # The legitimate holder's newest token dies with it.
    _only_refresh(signed_in, current)
    response = signed_in.get("/card")
    assert response.status_code == 302
    assert response.headers["Location"].startswith("/login")


def test_two_tabs_racing_within_the_grace_both_stay_signed_in(app, signed_in):
    refresh = _cookie(signed_in, REFRESH)
    _only_refresh(signed_in, refresh)
    winner = signed_in.get("/card")
    assert winner.status_code == 200
    successor = _set_cookies(winner)[REFRESH].value

    _only_refresh(signed_in, refresh)  # the second tab sends the same cookie
    loser = signed_in.get("/card")
    assert loser.status_code == 200
    cookies = _set_cookies(loser)
    assert ACCESS in cookies
    assert REFRESH not in cookies
    assert all(row["revoked_at"] is None for row in _token_rows(app))
    _only_refresh(signed_in, successor)
    assert signed_in.get("/card").status_code == 200


def test_refresh_token_expired_server_side_leads_to_login(app, signed_in, monkeypatch):
    refresh = _cookie(signed_in, REFRESH)
    later = utcnow() + app.config["REFRESH_TOKEN_TTL"] + timedelta(seconds=1)
    monkeypatch.setattr("webapp.auth.tokens.utcnow", lambda: later)
    _only_refresh(signed_in, refresh)
    response = signed_in.get("/card")
    assert response.status_code == 302
    assert response.headers["Location"].startswith("/login")


def _claims(app, **overrides):
    now = utcnow()
    claims = {"sub": "1", "role": "customer", "name": "Ana", "iss": app.config["JWT_ISSUER"],
              "aud": app.config["JWT_AUDIENCE"], "iat": now, "nbf": now,
              "exp": now + timedelta(minutes=5)}
    claims.update(overrides)
    return {k: v for k, v in claims.items() if v is not None}


def _sign(app, claims, *, kid="test", key=None, alg="HS256"):
    key = key or app.config["JWT_KEYS"]["test"]
    return jwt.encode(claims, key, algorithm=alg, headers={"kid": kid})


def _bad_tokens(app) -> dict[str, str]:
    good = _sign(app, _claims(app))
    header, payload, signature = good.split(".")
    now = utcnow()
    admin_payload = _b64({**json.loads(base64.urlsafe_b64decode(payload + "==")),
                          "role": "admin"})
    return {
        "expired": _sign(app, _claims(app, iat=now - timedelta(hours=1),
                                      nbf=now - timedelta(hours=1),
                                      exp=now - timedelta(minutes=1))),
        "not-yet-valid": _sign(app, _claims(app, nbf=now + timedelta(hours=1))),
        "garbage": "not-a-jwt",
        "empty-segments": "..",
        "tampered-payload": f"{header}.{admin_payload}.{signature}",
        "tampered-signature": f"{header}.{payload}.{signature[::-1]}",
        "alg-none": f"{_b64({'alg': 'none', 'typ': 'JWT', 'kid': 'test'})}.{payload}.",
        "alg-none-no-kid": jwt.encode(_claims(app), None, algorithm="none"),
        "alg-hs512": _sign(app, _claims(app), key="k" * 64, alg="HS512"),
        "wrong-kid": _sign(app, _claims(app), kid="retired"),
        "kid-not-string": (f"{_b64({'alg': 'HS256', 'kid': ['test']})}.{payload}.{signature}"),
        "other-key-same-kid": _sign(app, _claims(app), key="x" * 48),
        "wrong-audience": _sign(app, _claims(app, aud="someone-else")),
        "wrong-issuer": _sign(app, _claims(app, iss="evil-issuer")),
        "no-expiry": _sign(app, _claims(app, exp=None)),
        "no-subject": _sign(app, _claims(app, sub=None)),
        "subject-not-a-number": _sign(app, _claims(app, sub="ana")),
        "no-role": _sign(app, _claims(app, role=None)),
        "header-not-json": f"{_b64(b'{not json')}.{payload}.{signature}",
        "huge": "a" * 3000,
        "non-ascii": "é.é.é",
    }


BAD_TOKEN_NAMES = [
    "expired", "not-yet-valid", "garbage", "empty-segments", "tampered-payload",
    "tampered-signature", "alg-none", "alg-none-no-kid", "alg-hs512", "wrong-kid",
    "kid-not-string", "other-key-same-kid", "wrong-audience", "wrong-issuer", "no-expiry",
    "no-subject", "subject-not-a-number", "no-role", "header-not-json", "huge", "non-ascii",
]


@pytest.mark.parametrize("kind", BAD_TOKEN_NAMES)
def test_bad_access_token_leads_to_login(app, client, kind):
    client.set_cookie(ACCESS, _bad_tokens(app)[kind])
    for path in ("/card", "/family"):
        response = client.get(path)
        assert response.status_code == 302, response.get_data(as_text=True)[:300]
        location = urlsplit(response.headers["Location"])
        assert location.path == "/login"
        assert parse_qs(location.query)["next"][0].rstrip("?") == path
    # The login page itself still renders for a visitor with a broken cookie.
    assert client.get("/login").status_code == 200


@pytest.mark.parametrize("kind", BAD_TOKEN_NAMES)
def test_bad_access_token_on_htmx_request_gets_hx_redirect(app, client, kind):
    client.set_cookie(ACCESS, _bad_tokens(app)[kind])
    response = client.get("/card", headers={"HX-Request": "true", "HX-Target": "wallet"})
    assert response.status_code == 204
    assert response.headers["HX-Redirect"].startswith("/login")
    assert not response.data


@pytest.mark.parametrize("kind", ["expired", "tampered-payload", "alg-none", "wrong-kid"])
def test_bad_access_token_with_valid_refresh_is_replaced(app, signed_in, kind):
    """The refresh cookie is the source of truth; a bad access cookie is just stale."""
    signed_in.set_cookie(ACCESS, _bad_tokens(app)[kind])
    response = signed_in.get("/card")
    assert response.status_code == 200
    cookies = _set_cookies(response)
    assert cookies[ACCESS].value
    assert cookies[REFRESH].value
    with app.app_context():
        tokens.decode_access_token(cookies[ACCESS].value)


@pytest.mark.parametrize("refresh", ["", "x", "a" * 4000, "é", "'; DROP TABLE refresh_tokens;--"])
def test_unknown_refresh_token_leads_to_login_and_clears_cookies(app, client, refresh):
    client.set_cookie(REFRESH, refresh)
    response = client.get("/card")
    assert response.status_code == 302
    assert response.headers["Location"].startswith("/login")
    if refresh:
        assert _set_cookies(response)[REFRESH].value == ""


def test_token_signed_with_a_retired_kid_is_refused_and_old_kid_still_verifies(tmp_path):
    """Key rotation: tokens of a kid still listed verify; removing the kid ends them."""
    keys = {"old": "o" * 40, "new": "n" * 40}
    app = create_app({"PROFILE": "test", "DATABASE_URL": "sqlite://", "JWT_KEYS": keys,
                      "JWT_ACTIVE_KID": "new"})
    try:
        with app.app_context():
            old_token = _sign(app, _claims(app), kid="old", key=keys["old"])
            assert tokens.decode_access_token(old_token).account_id == 1
            issued, _ = tokens.issue_access_token(1, "customer", "Ana")
            assert jwt.get_unverified_header(issued)["kid"] == "new"
            del app.config["JWT_KEYS"]["old"]
            with pytest.raises(tokens.Unauthorized):
                tokens.decode_access_token(old_token)
    finally:
        db.dispose()
