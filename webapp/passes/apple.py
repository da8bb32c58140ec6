"""Apple Wallet store cards: pass.json, the manifest and its signature, zipped as .pkpass.

Built as Apple's Wallet Passes documentation specifies: every file of the pass is listed
in ``manifest.json`` with its SHA-1; ``signature`` is a detached PKCS#7 (DER) signature
of the manifest made with the pass type's certificate and key, carrying Apple's WWDR
intermediate so the phone can chain it to Apple's root. Signed with the ``cryptography``
package: the Python pkpass libraries on PyPI are small forks with one maintainer each,
and this is the whole of what they would do for us.
"""

from __future__ import annotations

import hashlib
import io
import json
import zipfile
from dataclasses import dataclass
from datetime import datetime
from functools import cache
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.serialization import pkcs7

from webapp.card.numbers import format_card_number

from .keys import AppleKeys

MEDIA_TYPE = "application/vnd.apple.pkpass"
ASSETS = Path(__file__).resolve().parent / "assets"
# The images a store card uses: the icon is required (lock screen, notifications).
IMAGES = ("icon.png", "icon@2x.png", "icon@3x.png", "logo.png", "logo@2x.png")
# The app's colours (static/css/app.css), so the pass looks like the card page.
GREEN = "rgb(20,83,45)"
WHITE = "rgb(255,255,255)"
PALE = "rgb(187,247,208)"


@dataclass(frozen=True)
class PassContent:
    serial: str
    holder: str
    number: str
    balance: int
    voided: bool
    web_service_url: str | None
    authentication_token: str | None


def pass_json(content: PassContent, keys: AppleKeys, organization: str) -> dict[str, Any]:
    """The store card. Its QR is the plain card number, which the till takes like a typed
    number (``webapp.card.codes.parse_scanned``): a pass is a picture that cannot rotate,
    so it earns by number, and redeeming from it asks the till for confirmation."""
    data: dict[str, Any] = {
        "formatVersion": 1,
        "passTypeIdentifier": keys.pass_type_id,
        "teamIdentifier": keys.team_id,
        "serialNumber": content.serial,
        "organizationName": organization,
        "description": f"{organization}: the card of {content.holder}",
        "logoText": organization,
        "foregroundColor": WHITE,
        "labelColor": PALE,
        "backgroundColor": GREEN,
        "sharingProhibited": True,
        "storeCard": {
            "headerFields": [{
                "key": "balance", "label": "COINS", "value": content.balance,
                "numberStyle": "PKNumberStyleDecimal",
                # Shown on the lock screen when an update changes the balance.
                "changeMessage": "Your family now has %@ coins",
            }],
            "primaryFields": [{"key": "holder", "label": "CARD HOLDER",
                               "value": content.holder}],
            "secondaryFields": [{"key": "number", "label": "CARD NUMBER",
                                 "value": format_card_number(content.number)}],
            "backFields": [{
                "key": "shared", "label": "Shared balance",
                "value": "The coins are shared by your family. At the till, the barista "
                         "scans this code or types the card number.",
            }],
        },
        "barcodes": [{
            "format": "PKBarcodeFormatQR",
            "message": content.number,
            "messageEncoding": "iso-8859-1",
            "altText": format_card_number(content.number),
        }],
    }
    if content.voided:
        data["voided"] = True  # the card was removed: Wallet greys the pass out
    if content.web_service_url and content.authentication_token:
        data["webServiceURL"] = content.web_service_url
        data["authenticationToken"] = content.authentication_token
    return data


@cache
def _image(name: str) -> bytes:
    return (ASSETS / name).read_bytes()


def manifest(files: dict[str, bytes]) -> bytes:
    """Every file of the pass and its SHA-1 (hex), as Apple requires."""
    return json.dumps(
        {name: hashlib.sha1(data).hexdigest() for name, data in sorted(files.items())},  # noqa: S324 - Apple's format
        indent=1, sort_keys=True).encode()


def sign(data: bytes, keys: AppleKeys) -> bytes:
    """Detached PKCS#7 in DER over ``data``, with the WWDR intermediate included."""
    return (
        pkcs7.PKCS7SignatureBuilder()
        .set_data(data)
        .add_signer(keys.certificate, keys.private_key, hashes.SHA256())
        .add_certificate(keys.wwdr)
        .sign(serialization.Encoding.DER,
              [pkcs7.PKCS7Options.DetachedSignature, pkcs7.PKCS7Options.Binary])
    )


def build(content: PassContent, keys: AppleKeys, organization: str,
          modified: datetime | None = None) -> bytes:
    """The .pkpass: a zip of pass.json, the images, manifest.json and signature."""
    files = {"pass.json": json.dumps(pass_json(content, keys, organization),
                                     ensure_ascii=False, indent=1).encode()}
    files.update({name: _image(name) for name in IMAGES})
    files["manifest.json"] = manifest(files)
    files["signature"] = sign(files["manifest.json"], keys)
    stamp = (modified or datetime(2020, 1, 1)).timetuple()[:6]
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for name, data in files.items():
            archive.writestr(zipfile.ZipInfo(name, date_time=stamp), data,
                             compress_type=zipfile.ZIP_DEFLATED)
    return buffer.getvalue()
