"""Registering and using passkeys. The relying party ID and origin come from config
(``WEBAUTHN_RP_ID``/``WEBAUTHN_ORIGIN``, by default PUBLIC_BASE_URL's host and origin),
never from the request. Challenges are stored hashed, single use, for
``WEBAUTHN_CHALLENGE_TTL``, so a captured response can't be replayed."""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import secrets
from typing import Any
from urllib.parse import urlsplit

from flask import current_app
from sqlalchemy import exc as sa_exc
from webauthn import (
    base64url_to_bytes,
    generate_authentication_options,
    generate_registration_options,
    options_to_json,
    verify_authentication_response,
    verify_registration_response,
)
from webauthn.helpers import bytes_to_base64url
from webauthn.helpers.exceptions import WebAuthnException
from webauthn.helpers.structs import (
    AuthenticatorSelectionCriteria,
    PublicKeyCredentialDescriptor,
    ResidentKeyRequirement,
    UserVerificationRequirement,
)

from webapp.auth import queries as account_queries
from webapp.clock import utcnow
from webapp.errors import Conflict, InvalidCredentials, NotFound, ValidationFailed
from webapp.extensions import db

from . import queries

MAX_PASSKEYS = 10


class PasskeyRejected(ValidationFailed):
    def __init__(self, detail: str) -> None:
        super().__init__({"passkey": [detail]}, detail)


def relying_party() -> tuple[str, str]:
    """(RP ID, origin). The RP ID must be a domain: an IP address is not one."""
    config = current_app.config
    base = urlsplit(config.get("PUBLIC_BASE_URL") or "")
    origin = config.get("WEBAUTHN_ORIGIN") or (f"{base.scheme}://{base.netloc}"
                                               if base.netloc else "")
    rp_id = config.get("WEBAUTHN_RP_ID") or (base.hostname or "")
    return rp_id, origin


def _hash(value: bytes | str) -> str:
    data = value.encode() if isinstance(value, str) else value
    return hashlib.sha256(data).hexdigest()


def _new_challenge(purpose: str, account_id: int | None) -> bytes:
    challenge = secrets.token_bytes(32)
    now = utcnow()
    db.write(lambda conn: queries.insert_challenge(
        conn, challenge_hash=_hash(bytes_to_base64url(challenge)), purpose=purpose,
        account_id=account_id, created_at=now,
        expires_at=now + current_app.config["WEBAUTHN_CHALLENGE_TTL"]),
        name="passkey.challenge")
    return challenge


def _client_challenge(credential: dict[str, Any]) -> str:
    """The challenge the browser signed, read from its clientDataJSON; verification
    then checks it against the stored one, the origin and the RP ID."""
    try:
        client_data = json.loads(base64url_to_bytes(credential["response"]["clientDataJSON"]))
        challenge = client_data["challenge"]
    except (KeyError, TypeError, ValueError, binascii.Error) as error:
        raise PasskeyRejected("That is not a passkey response.") from error
    if not isinstance(challenge, str):
        raise PasskeyRejected("That is not a passkey response.")
    return challenge


def _spend_challenge(challenge: str, purpose: str, account_id: int | None) -> bytes:
    spent = db.write(lambda conn: queries.spend_challenge(
        conn, _hash(challenge), purpose, account_id, utcnow()), name="passkey.spend_challenge")
    if not spent:
        raise PasskeyRejected("This passkey request has expired or was already used. "
                              "Please try again.")
    return base64url_to_bytes(challenge)


def _timeout_ms() -> int:
    return int(current_app.config["WEBAUTHN_CHALLENGE_TTL"].total_seconds() * 1000)


def registration_options(account_id: int) -> str:
    account = db.read(lambda conn: account_queries.account_by_id(conn, account_id),
                      name="account")
    existing = db.read(lambda conn: queries.passkeys_of(conn, account_id), name="passkeys")
    if len(existing) >= MAX_PASSKEYS:
        raise Conflict(f"An account can have at most {MAX_PASSKEYS} passkeys.")
    rp_id, _ = relying_party()
    options = generate_registration_options(
        rp_id=rp_id,
        rp_name=current_app.config["WEBAUTHN_RP_NAME"],
        user_name=account["email"],
        user_id=account_id.to_bytes(8, "big"),  # not personal data, unlike the email
        user_display_name=account["name"],
        challenge=_new_challenge("register", account_id),
        timeout=_timeout_ms(),
        # A discoverable credential: signing in then needs no email typed first.
        authenticator_selection=AuthenticatorSelectionCriteria(
            resident_key=ResidentKeyRequirement.REQUIRED,
            user_verification=UserVerificationRequirement.PREFERRED),
        exclude_credentials=[PublicKeyCredentialDescriptor(id=base64url_to_bytes(p["credential_id"]))
                             for p in existing],
    )
    return options_to_json(options)


def add(account_id: int, credential: dict[str, Any], name: str) -> dict[str, Any]:
    challenge = _spend_challenge(_client_challenge(credential), "register", account_id)
    rp_id, origin = relying_party()
    try:
        verified = verify_registration_response(
            credential=credential, expected_challenge=challenge, expected_rp_id=rp_id,
            expected_origin=origin)
    except (WebAuthnException, ValueError, KeyError, TypeError) as error:
        raise PasskeyRejected(f"The passkey could not be checked: {error}") from error
    transports = credential.get("response", {}).get("transports")
    values = {
        "account_id": account_id,
        "credential_hash": _hash(verified.credential_id),
        "credential_id": bytes_to_base64url(verified.credential_id),
        "public_key": bytes_to_base64url(verified.credential_public_key),
        "sign_count": verified.sign_count,
        "name": name,
        "transports": ",".join(t for t in transports if isinstance(t, str))[:100]
        if isinstance(transports, list) else None,
        "created_at": utcnow(),
    }
    try:
        passkey_id = db.write(lambda conn: queries.insert_passkey(conn, **values),
                              name="passkey.add")
    except sa_exc.IntegrityError as error:
        raise Conflict("This passkey is already registered.") from error
    return dict(values, id=passkey_id)


def login_options() -> str:
    rp_id, _ = relying_party()
    options = generate_authentication_options(
        rp_id=rp_id, challenge=_new_challenge("login", None), timeout=_timeout_ms(),
        user_verification=UserVerificationRequirement.PREFERRED)
    return options_to_json(options)


def authenticate(credential: dict[str, Any]) -> dict[str, Any]:
    """The account whose passkey signed the challenge, or :class:`InvalidCredentials`."""
    challenge = _spend_challenge(_client_challenge(credential), "login", None)
    raw_id = credential.get("rawId") or credential.get("id")
    try:
        credential_id = base64url_to_bytes(raw_id)
    except (TypeError, ValueError, binascii.Error) as error:
        raise PasskeyRejected("That is not a passkey response.") from error
    passkey = db.read(lambda conn: queries.passkey_by_hash(conn, _hash(credential_id)),
                      name="passkey.find", causal=True)
    if passkey is None:
        raise InvalidCredentials("This passkey is not registered for any account here.")
    rp_id, origin = relying_party()
    try:
        verified = verify_authentication_response(
            credential=credential, expected_challenge=challenge, expected_rp_id=rp_id,
            expected_origin=origin,
            credential_public_key=base64url_to_bytes(passkey["public_key"]),
            credential_current_sign_count=passkey["sign_count"])
    except (WebAuthnException, ValueError, KeyError, TypeError) as error:
        raise InvalidCredentials("The passkey could not be checked.") from error
    account = db.read(lambda conn: account_queries.account_by_id(conn, passkey["account_id"]),
                      name="account", causal=True)
    if account is None or account["erased_at"] or account["email_verified_at"] is None:
        raise InvalidCredentials("This passkey is not registered for any account here.")
    db.write(lambda conn: queries.record_use(conn, passkey["id"], verified.new_sign_count,
                                             utcnow()), name="passkey.used")
    return account


def passkeys_of(account_id: int) -> list[dict[str, Any]]:
    return db.read(lambda conn: queries.passkeys_of(conn, account_id), name="passkeys")


def rename(account_id: int, passkey_id: int, name: str) -> None:
    if not db.write(lambda conn: queries.rename(conn, account_id, passkey_id, name),
                    name="passkey.rename"):
        raise NotFound("No such passkey.")


def remove(account_id: int, passkey_id: int) -> None:
    if not db.write(lambda conn: queries.remove(conn, account_id, passkey_id),
                    name="passkey.remove"):
        raise NotFound("No such passkey.")


def credential_hash_of(raw: str) -> str:
    """For tests and tools: the stored hash of a base64url credential id."""
    return _hash(base64.urlsafe_b64decode(raw + "=" * (-len(raw) % 4)))
