"""The token service itself (``webapp.auth.tokens``), called as the pages and the API
call it, on SQLite and on the Galera lab: what an access token carries, what the cache
of verified tokens accepts, how a refresh token is spent (also when a COMMIT's answer
was lost), and the edges of its expiry and of the reuse grace.

The doors answer every refusal with the same 401 and sign-in page, so differences a
visitor cannot see through them are checked here: the message of each refusal, the
claims, whether a refusal revoked the family. The cookie flows are in test_tokens.py.
"""

from __future__ import annotations

import hashlib
import logging
import re
import time
from datetime import timedelta
from types import SimpleNamespace

import jwt
import pytest
from sqlalchemy import select

from tests.helpers import answer_lost
from webapp.auth import tokens
from webapp.auth.services import register
from webapp.clock import utcnow
from webapp.database.schema import refresh_tokens
from webapp.errors import Unauthorized
from webapp.extensions import db

FIREFOX = "Mozilla/5.0 (X11; Linux x86_64; rv:133.0) Gecko/20100101 Firefox/133.0"
ANDROID = ("Mozilla/5.0 (Linux; Android 14; Pixel 7) AppleWebKit/537.36 (KHTML, like Gecko) "
           "Chrome/131.0.0.0 Mobile Safari/537.36")

EXPIRED = r"^Your session has expired\. Please sign in again\.$"
NOT_VALID = r"^Your session is not valid\. Please sign in\.$"
ENDED = r"^Your session has ended\. Please sign in again\.$"
SIGNED_OUT = r"^You were signed out\. Please sign in again\.$"


@pytest.fixture
def ctx(app):
    """The service runs inside a request (it names the device from its User-Agent)."""
    with app.test_request_context(headers={"User-Agent": FIREFOX}):
        yield app


@pytest.fixture
def account(ctx):
    return register(name="Ana Silva", email="ana@example.com", password="x" * 12, region="ie")


@pytest.fixture
def verified(monkeypatch):
    """An empty cache of verified tokens, and the list of tokens really verified."""
    monkeypatch.setattr(tokens, "_VERIFIED", {})
    calls: list[str] = []
    real = tokens._verify

    def counting(token, config):
        calls.append(token)
        return real(token, config)

    monkeypatch.setattr(tokens, "_verify", counting)
    return calls


@pytest.fixture
def sqlite_only(app, request):
    if request.node.callspec.params["app"] != "sqlite":
        pytest.skip("answer_lost makes a COMMIT's answer go missing on the SQLite engine only")
    return app


def _claims(token: str) -> dict:
    return jwt.decode(token, options={"verify_signature": False})


def _row(refresh: str) -> dict:
    token_hash = hashlib.sha256(refresh.encode()).hexdigest()
    [row] = _rows(refresh_tokens.c.token_hash == token_hash)
    return row


def _rows(*where) -> list[dict]:
    return db.read(lambda conn: [dict(r) for r in conn.execute(
        select(refresh_tokens).where(*where).order_by(refresh_tokens.c.id)).mappings()],
        name="test.tokens", causal=True)


def _sign(app, **overrides) -> str:
    """A token signed with the app's own key: only the claims differ from ours."""
    now = utcnow()
    claims = {"sub": "7", "role": "customer", "name": "Ana", "iss": app.config["JWT_ISSUER"],
              "aud": app.config["JWT_AUDIENCE"], "iat": now, "nbf": now,
              "exp": now + timedelta(minutes=5), **overrides}
    claims = {name: value for name, value in claims.items() if value is not None}
    kid = app.config["JWT_ACTIVE_KID"]
    return jwt.encode(claims, app.config["JWT_KEYS"][kid], algorithm="HS256",
                      headers={"kid": kid})


def _clock(monkeypatch, moment) -> None:
    monkeypatch.setattr("webapp.auth.tokens.utcnow", lambda: moment)


# -- access tokens ----------------------------------------------------------------------


def test_a_sign_in_token_names_the_account_and_its_device(ctx, account):
    pair = tokens.issue_token_pair(account)
    header = jwt.get_unverified_header(pair.access_token)
    assert (header["alg"], header["kid"]) == ("HS256", ctx.config["JWT_ACTIVE_KID"])
    claims = _claims(pair.access_token)
    family_id = _row(pair.refresh_token)["family_id"]
    assert (claims["sub"], claims["role"], claims["name"], claims["fam"]) == (
        str(account["id"]), "customer", "Ana Silva", family_id)
    assert re.fullmatch(r"[0-9a-f]+", claims["jti"])
    # The family names the device: its column and the account page's sign-out address
    # take 32 characters.
    assert re.fullmatch(r"[0-9a-f]{32}", family_id)
    assert tokens.decode_access_token(pair.access_token) == tokens.Principal(
        account["id"], "customer", "Ana Silva", family_id)
    assert pair.expires_in == int(ctx.config["ACCESS_TOKEN_TTL"].total_seconds())
    assert pair.expires_in == claims["exp"] - claims["iat"]


def test_two_tokens_issued_in_one_second_differ(ctx, monkeypatch):
    _clock(monkeypatch, utcnow())
    first, _ = tokens.issue_access_token(7, "customer", "Ana", "f" * 32)
    second, _ = tokens.issue_access_token(7, "customer", "Ana", "f" * 32)
    assert first != second
    assert _claims(first)["jti"] != _claims(second)["jti"]


def test_claims_a_token_may_lack_or_carry_oddly(ctx):
    # Signed with our key but not by issue_access_token (an older version of it): no
    # name, no "not before", a device that is not a string.
    principal = tokens.decode_access_token(_sign(ctx, name=None, nbf=None, fam=12))
    assert principal == tokens.Principal(7, "customer", "", None)
    assert tokens.decode_access_token(_sign(ctx, fam=["a" * 32])).family_id is None
    assert tokens.decode_access_token(_sign(ctx, fam="a" * 32)).family_id == "a" * 32


def test_a_token_with_our_key_but_another_issuer_is_refused(ctx):
    with pytest.raises(Unauthorized, match=NOT_VALID):
        tokens.decode_access_token(_sign(ctx, iss="someone-else"))
    with pytest.raises(Unauthorized, match=NOT_VALID):
        tokens.decode_access_token(_sign(ctx, aud="someone-else"))


def test_each_refusal_says_why(ctx):
    past = utcnow() - timedelta(hours=1)
    with pytest.raises(Unauthorized, match=EXPIRED):
        tokens.decode_access_token(_sign(ctx, iat=past, nbf=past, exp=past + timedelta(minutes=5)))
    header, payload, signature = _sign(ctx).split(".")
    with pytest.raises(Unauthorized, match=NOT_VALID):  # the signature check
        tokens.decode_access_token(f"{header}.{payload}.{signature[::-1]}")
    with pytest.raises(Unauthorized, match=NOT_VALID):  # no key of that kid
        tokens.decode_access_token(jwt.encode({"sub": "7"}, "k" * 40, algorithm="HS256",
                                              headers={"kid": "retired"}))


# -- the cache of verified tokens -------------------------------------------------------


def test_a_verified_token_is_not_verified_again(ctx, verified):
    token, _ = tokens.issue_access_token(7, "customer", "Ana", "f" * 32)
    first = tokens.decode_access_token(token)
    assert tokens.decode_access_token(token) == first
    assert verified == [token]


def test_a_cached_token_follows_the_keys_audience_and_issuer(ctx, verified):
    token, _ = tokens.issue_access_token(7, "customer", "Ana", "f" * 32)
    tokens.decode_access_token(token)
    config = ctx.config
    for name, changed in [("JWT_AUDIENCE", "another-app"), ("JWT_ISSUER", "another-issuer"),
                          ("JWT_KEYS", {config["JWT_ACTIVE_KID"]: "n" * 40})]:
        kept = config[name]
        config[name] = changed  # replaced, not edited: the test profile's dict is shared
        with pytest.raises(Unauthorized, match=NOT_VALID):
            tokens.decode_access_token(token)
        config[name] = kept
        assert tokens.decode_access_token(token).account_id == 7


def test_the_cache_stays_within_its_bound(ctx, verified, monkeypatch):
    monkeypatch.setattr(tokens, "_VERIFIED_MAX", 2)
    for n in range(5):
        token, _ = tokens.issue_access_token(n + 1, "customer", "Ana")
        assert tokens.decode_access_token(token).account_id == n + 1
        assert len(tokens._VERIFIED) <= 2
    assert token in tokens._VERIFIED


def test_a_cached_token_is_trusted_from_its_nbf(ctx, verified, monkeypatch):
    token, _ = tokens.issue_access_token(7, "customer", "Ana")
    tokens.decode_access_token(token)
    nbf = _claims(token)["nbf"]
    monkeypatch.setattr(tokens, "time", SimpleNamespace(time=lambda: float(nbf)))
    tokens.decode_access_token(token)
    assert len(verified) == 1
    # A clock set back before it: the cache does not vouch, the token is checked again.
    monkeypatch.setattr(tokens, "time", SimpleNamespace(time=lambda: float(nbf - 1)))
    tokens.decode_access_token(token)
    assert len(verified) == 2


def test_a_cached_token_is_refused_from_its_exp(ctx, verified, monkeypatch):
    ctx.config["ACCESS_TOKEN_TTL"] = timedelta(seconds=2)
    token, _ = tokens.issue_access_token(7, "customer", "Ana")
    tokens.decode_access_token(token)
    exp = _claims(token)["exp"]
    # PyJWT reads the real clock: wait (at most 2 s) until the token has expired for it,
    # then let the cache see the very second it ends.
    while time.time() < exp:
        time.sleep(exp - time.time() + 0.01)
    monkeypatch.setattr(tokens, "time", SimpleNamespace(time=lambda: float(exp)))
    with pytest.raises(Unauthorized, match=EXPIRED):
        tokens.decode_access_token(token)


# -- refresh tokens ---------------------------------------------------------------------


def test_a_refresh_token_records_the_device_and_region(ctx, account):
    pair = tokens.issue_token_pair(account)
    row = _row(pair.refresh_token)
    assert (row["user_agent"], row["region"]) == ("Firefox on Linux", ctx.config["REGION"])
    with ctx.test_request_context(headers={"User-Agent": ANDROID}):
        rotated = tokens.rotate(pair.refresh_token)
    row = _row(rotated.refresh_token)
    assert (row["user_agent"], row["region"]) == ("Chrome Mobile on Android",
                                                  ctx.config["REGION"])


def test_a_rotated_pair_is_for_the_same_account_and_device(ctx, account):
    pair = tokens.issue_token_pair(account)
    rotated = tokens.rotate(pair.refresh_token)
    claims = _claims(rotated.access_token)
    assert (claims["sub"], claims["role"], claims["name"], claims["fam"]) == (
        str(account["id"]), "customer", "Ana Silva", _row(pair.refresh_token)["family_id"])
    assert rotated.expires_in == int(ctx.config["ACCESS_TOKEN_TTL"].total_seconds())
    assert _row(rotated.refresh_token)["family_id"] == claims["fam"]


def test_a_sign_in_whose_commit_answer_was_lost_stores_one_token(sqlite_only, ctx, account):
    with answer_lost(ctx) as lost:
        pair = tokens.issue_token_pair(account)
    assert lost == [1]
    assert len(_rows(refresh_tokens.c.account_id == account["id"])) == 1
    assert tokens.rotate(pair.refresh_token).refresh_token


def test_a_rotation_whose_commit_answer_was_lost_returns_its_own_successor(sqlite_only, ctx,
                                                                          account):
    pair = tokens.issue_token_pair(account)
    with answer_lost(ctx) as lost:
        rotated = tokens.rotate(pair.refresh_token)
    assert lost == [1]
    # Not the grace answer (no refresh token): the client would keep the spent one.
    assert rotated.refresh_token is not None
    assert tokens.decode_access_token(rotated.access_token).account_id == account["id"]
    assert tokens.rotate(rotated.refresh_token).refresh_token
    assert all(row["revoked_at"] is None
               for row in _rows(refresh_tokens.c.account_id == account["id"]))


def test_a_token_spent_in_the_grace_of_a_signed_out_family_is_refused(ctx, account):
    # A -> B, then the device signs out with B: A, spent seconds ago, must not get an
    # access token through the two-tabs grace.
    first = tokens.issue_token_pair(account)
    second = tokens.rotate(first.refresh_token)
    tokens.revoke(second.refresh_token)
    with pytest.raises(Unauthorized, match=ENDED):
        tokens.rotate(first.refresh_token)


def test_a_refresh_token_at_its_expiry_is_dead_not_reused(ctx, account, monkeypatch, caplog):
    pair = tokens.issue_token_pair(account)
    row = _row(pair.refresh_token)
    _clock(monkeypatch, row["expires_at"])
    with caplog.at_level(logging.WARNING), pytest.raises(Unauthorized, match=ENDED):
        tokens.rotate(pair.refresh_token)
    # Expired is not stolen: nothing revoked, no alarm.
    assert _row(pair.refresh_token)["revoked_at"] is None
    assert "reuse" not in caplog.text


def test_a_spent_token_at_the_end_of_the_grace_still_gets_access(ctx, account, monkeypatch):
    first = tokens.issue_token_pair(account)
    second = tokens.rotate(first.refresh_token)
    _clock(monkeypatch, _row(first.refresh_token)["used_at"] + tokens.REUSE_GRACE)
    racing = tokens.rotate(first.refresh_token)
    assert racing.refresh_token is None
    # Issued by the moved clock (10 s ahead): its claims, not yet a valid time window.
    assert _claims(racing.access_token)["sub"] == str(account["id"])
    assert _row(second.refresh_token)["revoked_at"] is None


def test_reuse_revokes_the_family_and_names_it_in_the_log(ctx, account, monkeypatch, caplog):
    first = tokens.issue_token_pair(account)
    second = tokens.rotate(first.refresh_token)
    family_id = _row(first.refresh_token)["family_id"]
    _clock(monkeypatch, _row(first.refresh_token)["used_at"] + tokens.REUSE_GRACE
           + timedelta(microseconds=1))
    with caplog.at_level(logging.WARNING), pytest.raises(Unauthorized, match=ENDED):
        tokens.rotate(first.refresh_token)
    assert [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING] == [
        f"refresh token reuse: family {family_id} revoked"]
    assert _row(second.refresh_token)["revoked_at"] is not None


def test_a_refresh_token_whose_account_is_gone_is_refused(ctx):
    # The cleanup deletes an account and its tokens together; a rotation that spent
    # the token just before finds no account.
    pair = tokens.issue_token_pair({"id": 987_654_321, "role": "customer", "name": "Gone"})
    with pytest.raises(Unauthorized, match=ENDED):
        tokens.rotate(pair.refresh_token)


def test_unknown_and_revoked_refresh_tokens_are_refused(ctx, account):
    with pytest.raises(Unauthorized, match=ENDED):
        tokens.rotate("never-issued")
    pair = tokens.issue_token_pair(account)
    tokens.revoke(pair.refresh_token)
    with pytest.raises(Unauthorized, match=ENDED):
        tokens.rotate(pair.refresh_token)


# -- the session check ------------------------------------------------------------------


def test_a_device_is_live_until_signed_out(ctx, account):
    pair = tokens.issue_token_pair(account)
    principal = tokens.decode_access_token(pair.access_token)
    tokens.ensure_live(principal)
    # A token from before devices were tracked names no family: nothing to check.
    tokens.ensure_live(tokens.Principal(account["id"], "customer", "Ana Silva", None))
    tokens.revoke(pair.refresh_token)
    with pytest.raises(Unauthorized, match=SIGNED_OUT):
        tokens.ensure_live(principal)
    tokens.ensure_live(tokens.Principal(account["id"], "customer", "Ana Silva", None))
