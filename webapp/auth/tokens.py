"""The one token service for pages and API: short-lived JWT access tokens and rotating,
server-side refresh tokens with reuse detection.

Access tokens are HS256 JWTs with a ``kid`` header so keys can be rotated: new tokens
use ``JWT_ACTIVE_KID``, old kids keep verifying until they are removed from ``JWT_KEYS``.
Refresh tokens are random strings; only their SHA-256 is stored. Each use spends the
token and issues a new one in the same family; presenting a spent token again (after a
short grace for two tabs racing) revokes the whole family, because it means the token
leaked.
"""

from __future__ import annotations

import hashlib
import secrets
import time
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import jwt
from flask import current_app

from webapp.clock import utcnow
from webapp.database import after_unknown_commit
from webapp.errors import Unauthorized
from webapp.extensions import db

from . import devices, queries

ALGORITHM = "HS256"
# Two requests from one phone may carry the same refresh cookie; the loser of that race
# is not an attacker.
REUSE_GRACE = timedelta(seconds=10)


@dataclass(frozen=True)
class Principal:
    """Who is calling, as the access token says."""

    account_id: int
    role: str
    name: str
    # The refresh-token family (signed-in device) the token was issued to; None for
    # tokens issued before devices were tracked.
    family_id: str | None = None

    @property
    def is_staff(self) -> bool:
        return self.role in ("staff", "manager", "admin")

    @property
    def is_member(self) -> bool:
        """A family member's own sign-in: sees one card of someone else's wallet."""
        return self.role == "member"


@dataclass(frozen=True)
class TokenPair:
    access_token: str
    refresh_token: str | None
    expires_in: int


def issue_access_token(account_id: int, role: str, name: str,
                       family_id: str | None = None) -> tuple[str, int]:
    config = current_app.config
    now = utcnow()
    ttl = config["ACCESS_TOKEN_TTL"]
    claims = {
        "sub": str(account_id),
        "role": role,
        "name": name,
        "iss": config["JWT_ISSUER"],
        "aud": config["JWT_AUDIENCE"],
        "iat": now,
        "nbf": now,
        "exp": now + ttl,
        "jti": secrets.token_hex(8),
    }
    if family_id:
        claims["fam"] = family_id
    kid = config["JWT_ACTIVE_KID"]
    token = jwt.encode(claims, config["JWT_KEYS"][kid], algorithm=ALGORITHM, headers={"kid": kid})
    return token, int(ttl.total_seconds())


# token -> (kid, key, audience, issuer, principal, nbf, exp) for tokens that verified.
# Every page request presents the same access token for ten minutes; checking its
# signature and claims again each time was the largest per-request cost after the
# database (PyJWT validates base64 in Python). A hit still re-checks the key (rotation),
# audience, issuer and the time window, so it accepts exactly what jwt.decode would.
_VERIFIED: dict[str, tuple[str, str, str, str, Principal, float, float]] = {}
_VERIFIED_MAX = 8192


def decode_access_token(token: str) -> Principal:
    """Raises :class:`Unauthorized` for anything but a valid, current token of ours."""
    config = current_app.config
    cached = _VERIFIED.get(token)
    if cached is not None:
        kid, key, audience, issuer, principal, not_before, expires = cached
        now = time.time()
        if (
            config["JWT_KEYS"].get(kid) == key
            and audience == config["JWT_AUDIENCE"]
            and issuer == config["JWT_ISSUER"]
            and not_before <= now < expires
        ):
            return principal
        _VERIFIED.pop(token, None)
    principal, kid, claims = _verify(token, config)
    if len(_VERIFIED) >= _VERIFIED_MAX:
        _VERIFIED.clear()  # simple bound; refilling costs one decode per active user
    _VERIFIED[token] = (
        kid,
        config["JWT_KEYS"][kid],
        config["JWT_AUDIENCE"],
        config["JWT_ISSUER"],
        principal,
        float(claims.get("nbf", 0)),
        float(claims["exp"]),
    )
    return principal


def _verify(token: str, config: Mapping[str, Any]) -> tuple[Principal, str, dict[str, Any]]:
    try:
        kid = jwt.get_unverified_header(token).get("kid")
        key = config["JWT_KEYS"].get(kid) if isinstance(kid, str) else None
        if key is None:
            raise Unauthorized("Your session is not valid. Please sign in.")
        claims = jwt.decode(
            token,
            key,
            algorithms=[ALGORITHM],  # pinned: never trust the token's own "alg"
            audience=config["JWT_AUDIENCE"],
            issuer=config["JWT_ISSUER"],
            options={"require": ["exp", "iat", "iss", "aud", "sub"]},
        )
        family = claims.get("fam")
        principal = Principal(int(claims["sub"]), str(claims["role"]), str(claims.get("name", "")),
                              family if isinstance(family, str) else None)
        return principal, kid, claims
    except jwt.ExpiredSignatureError as error:
        raise Unauthorized("Your session has expired. Please sign in again.") from error
    except (jwt.InvalidTokenError, KeyError, ValueError, TypeError) as error:
        raise Unauthorized("Your session is not valid. Please sign in.") from error


def _hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def issue_token_pair(account: dict) -> TokenPair:
    """A fresh login: new access token and a refresh token starting a new family."""
    refresh = secrets.token_urlsafe(32)
    family_id = secrets.token_hex(16)
    access, expires_in = issue_access_token(account["id"], account["role"], account["name"],
                                            family_id)

    def store(conn) -> None:
        if after_unknown_commit(conn) and queries.refresh_token_by_hash(conn, _hash(refresh)):
            return  # stored by the attempt whose COMMIT answer was lost
        _store_refresh_token(conn, refresh, account["id"], family_id)

    # Idempotent: the token is random to this call, so finding it means we stored it.
    db.write(store, name="refresh.issue", idempotent=True)
    return TokenPair(access, refresh, expires_in)


def _store_refresh_token(conn, token: str, account_id: int, family_id: str) -> None:
    now = utcnow()
    queries.insert_refresh_token(
        conn,
        token_hash=_hash(token),
        family_id=family_id,
        account_id=account_id,
        created_at=now,
        expires_at=now + current_app.config["REFRESH_TOKEN_TTL"],
        user_agent=devices.describe_client(),
        region=current_app.config["REGION"],
    )


def ensure_live(principal: Principal) -> None:
    """Signing a device out (from another one, or by erasing the account) ends its
    session at its next request, not when its access token expires: the family must
    still have a token that was not revoked."""
    family = principal.family_id
    if family and not db.read(lambda conn: queries.family_is_live(conn, family),
                              name="session.live"):
        raise signed_out()


def signed_out() -> Unauthorized:
    """The answer to a device whose session ended (:func:`ensure_live`, or the same
    check folded into another statement)."""
    return Unauthorized("You were signed out. Please sign in again.")


def rotate(refresh_token: str) -> TokenPair:
    """Spends ``refresh_token`` and returns a new pair.

    Within :data:`REUSE_GRACE` of the token's first use the caller gets a new access
    token but no new refresh token (the racing request already set it).
    """
    token_hash = _hash(refresh_token)
    successor = secrets.token_urlsafe(32)

    def spend(conn):
        now = utcnow()
        row = queries.refresh_token_by_hash(conn, token_hash)
        if row is None:
            return None, "unknown"
        if queries.spend_refresh_token(conn, token_hash, now):
            # Spent and replaced in one transaction: a crash can't strand the user.
            _store_refresh_token(conn, successor, row["account_id"], row["family_id"])
            return row, "rotated"
        if queries.refresh_token_by_hash(conn, _hash(successor)) is not None:
            # Our own successor, random to this call: an earlier attempt spent the token
            # and its COMMIT's answer was lost. Not "grace" (no new token, so the client
            # would keep the spent one and later be logged out as a token thief).
            return row, "rotated"
        if row["revoked_at"] is not None or row["expires_at"] <= now:
            return row, "dead"
        if row["used_at"] is not None and now - row["used_at"] <= REUSE_GRACE:
            return row, "grace"
        queries.revoke_token_family(conn, row["family_id"], now)
        return row, "reused"

    # Idempotent: a second run recognises its own successor (above).
    row, outcome = db.write(spend, name="refresh.rotate", idempotent=True)
    if outcome == "reused":
        current_app.logger.warning("refresh token reuse: family %s revoked", row["family_id"])
    if outcome not in ("rotated", "grace"):
        raise Unauthorized("Your session has ended. Please sign in again.")
    account = db.read(lambda conn: queries.account_by_id(conn, row["account_id"]), name="account")
    if account is None:
        raise Unauthorized("Your session has ended. Please sign in again.")
    access, expires_in = issue_access_token(account["id"], account["role"], account["name"],
                                            row["family_id"])
    return TokenPair(access, successor if outcome == "rotated" else None, expires_in)


def revoke(refresh_token: str) -> None:
    """Logout: the token's whole family stops working."""
    token_hash = _hash(refresh_token)

    def revoke_family(conn):
        row = queries.refresh_token_by_hash(conn, token_hash)
        if row is not None:
            queries.revoke_token_family(conn, row["family_id"], utcnow())

    # Idempotent: revoking an already revoked family changes nothing.
    db.write(revoke_family, name="refresh.revoke", idempotent=True)
