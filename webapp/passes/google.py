"""Google Wallet loyalty cards: the "Save to Google Wallet" link, a signed JWT.

The loyalty object's ``rotatingBarcode`` makes Google Wallet compute the same code our
card page does: RFC 6238 TOTP with HMAC-SHA1, 30 s steps, 6 digits, from the card's own
secret (``webapp.card.codes``), and a ``valuePattern`` that spells our rotating QR payload
``LC1.<card number>.<code>`` with ``{totp_value_0}`` where the code goes. So the till
checks a Google Wallet pass exactly like the live card, replay protection included.

Field names follow Google's Wallet API reference (Jwt, LoyaltyClass, LoyaltyObject,
RotatingBarcode, TotpDetails). The JWT carries the object, so the card's TOTP key travels
inside it (to the customer's own browser, which already has it on the card page, and to
Google). Google's recommended alternative, inserting the object through its REST API
first so the JWT names only its id, is described in docs/operations.md.
"""

from __future__ import annotations

import base64
import hashlib
from datetime import datetime
from typing import Any

import jwt

from webapp.card import codes
from webapp.card.numbers import format_card_number

from .keys import GoogleKeys

SAVE_URL = "https://pay.google.com/gp/v/save/"
# {totp_value_0} is replaced by the code of TotpDetails.parameters[0].
VALUE_PATTERN = f"{codes.ROTATING_PREFIX}.{{number}}.{{{{totp_value_0}}}}"


def class_id(keys: GoogleKeys) -> str:
    return f"{keys.issuer_id}.{keys.class_suffix}"


def object_id(keys: GoogleKeys, card_id: int, code_secret: str) -> str:
    """One object per card *and secret*: Google keeps an object it already has when the
    same id is saved again, so after the card's secret is rotated a new save must make a
    new object, never bring back the old key."""
    fingerprint = hashlib.sha256(code_secret.encode()).hexdigest()[:16]
    return f"{keys.issuer_id}.card-{card_id}-{fingerprint}"


def totp_key_base16(code_secret: str) -> str:
    """Our secrets are base32 (like authenticator apps); Google wants the key in Base16."""
    return base64.b16encode(base64.b32decode(code_secret)).decode("ascii")


def rotating_barcode(number: str, code_secret: str) -> dict[str, Any]:
    return {
        "type": "QR_CODE",
        "valuePattern": VALUE_PATTERN.format(number=number),
        # Under the code, for a barista who has to type it.
        "alternateText": format_card_number(number),
        "totpDetails": {
            "algorithm": "TOTP_SHA1",
            # int64 fields are strings in the API's JSON.
            "periodMillis": str(codes.STEP_SECONDS * 1000),
            "parameters": [{"key": totp_key_base16(code_secret), "valueLength": codes.DIGITS}],
        },
    }


def loyalty_class(keys: GoogleKeys, organization: str, logo_url: str) -> dict[str, Any]:
    """Saved with the first object if the issuer has no such class yet (Google ignores it
    once the class exists; edit it in the Business Console or through the REST API)."""
    return {
        "id": class_id(keys),
        "issuerName": organization,
        "programName": organization,
        "programLogo": {"sourceUri": {"uri": logo_url},
                        "contentDescription": {"defaultValue": {
                            "language": "en-US", "value": f"{organization} logo"}}},
        "accountNameLabel": "Card holder",
        "accountIdLabel": "Card number",
        "hexBackgroundColor": "#14532d",
        "reviewStatus": "UNDER_REVIEW",
    }


def loyalty_object(keys: GoogleKeys, *, card_id: int, holder: str, number: str,
                   code_secret: str, balance: int, as_of: datetime) -> dict[str, Any]:
    return {
        "id": object_id(keys, card_id, code_secret),
        "classId": class_id(keys),
        "state": "ACTIVE",
        "accountName": holder,
        "accountId": format_card_number(number),
        # Google shows what it was given; the live balance is on the card page (an
        # operator who patches objects through the REST API can keep it current).
        "loyaltyPoints": {"label": "Coins", "balance": {"int": balance}},
        "textModulesData": [{
            "id": "balance_note",
            "header": "Shared family balance",
            "body": f"{balance} coins on {as_of:%d %b %Y}. Open the app for today's balance.",
        }],
        "rotatingBarcode": rotating_barcode(number, code_secret),
    }


def save_jwt(keys: GoogleKeys, *, origins: list[str], loyalty_objects: list[dict[str, Any]],
             loyalty_classes: list[dict[str, Any]], issued_at: int) -> str:
    claims = {
        "iss": keys.service_account_email,
        "aud": "google",
        "typ": "savetowallet",
        "iat": issued_at,
        "origins": origins,
        "payload": {"loyaltyClasses": loyalty_classes, "loyaltyObjects": loyalty_objects},
    }
    headers = {"kid": keys.key_id} if keys.key_id else None
    return jwt.encode(claims, keys.private_key, algorithm="RS256", headers=headers)


def save_url(token: str) -> str:
    return SAVE_URL + token
