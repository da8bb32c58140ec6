"""The operator's wallet-pass credentials, read once at startup from files named in config.

Each wallet is all or nothing: with none of its settings the button is simply not
shown; with some but not all, or with a file that does not parse, the app refuses to
start and says which setting is wrong, rather than showing a button that fails later.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa

APPLE_SETTINGS = ("APPLE_PASS_TYPE_ID", "APPLE_TEAM_ID", "APPLE_PASS_CERT", "APPLE_PASS_KEY",
                  "APPLE_WWDR_CERT")
GOOGLE_SETTINGS = ("GOOGLE_WALLET_ISSUER_ID", "GOOGLE_WALLET_SERVICE_ACCOUNT")

SigningKey = rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey


@dataclass(frozen=True)
class AppleKeys:
    pass_type_id: str
    team_id: str
    certificate: x509.Certificate
    private_key: SigningKey
    wwdr: x509.Certificate


@dataclass(frozen=True)
class GoogleKeys:
    issuer_id: str
    class_suffix: str
    service_account_email: str
    private_key: rsa.RSAPrivateKey
    key_id: str | None


@dataclass(frozen=True)
class WalletKeys:
    apple: AppleKeys | None
    google: GoogleKeys | None
    organization: str
    demo: bool  # throwaway keys made by `make run`: the page says so

    @property
    def any(self) -> bool:
        return bool(self.apple or self.google)


def load(config: Mapping[str, Any]) -> WalletKeys:
    return WalletKeys(
        apple=_apple(config) if _configured(config, APPLE_SETTINGS) else None,
        google=_google(config) if _configured(config, GOOGLE_SETTINGS) else None,
        organization=config.get("PASS_ORGANIZATION") or "Loyalty Card",
        demo=bool(config.get("PASSES_DEMO")),
    )


def _configured(config: Mapping[str, Any], names: tuple[str, ...]) -> bool:
    present = [name for name in names if config.get(name)]
    if present and len(present) < len(names):
        missing = ", ".join(f"LOYALTY_{n}" for n in names if n not in present)
        raise RuntimeError(f"wallet passes half configured: also set {missing} "
                           "(docs/operations.md, Wallet passes)")
    return bool(present)


def _read(config: Mapping[str, Any], name: str) -> bytes:
    path = Path(config[name])
    try:
        return path.read_bytes()
    except OSError as error:
        raise RuntimeError(f"LOYALTY_{name}: cannot read {path}: {error.strerror}") from None


def _certificate(config: Mapping[str, Any], name: str) -> x509.Certificate:
    data = _read(config, name)
    try:
        return (x509.load_pem_x509_certificate(data) if b"-----BEGIN" in data
                else x509.load_der_x509_certificate(data))
    except ValueError:
        raise RuntimeError(f"LOYALTY_{name}: not a PEM or DER certificate") from None


def _apple(config: Mapping[str, Any]) -> AppleKeys:
    password = config.get("APPLE_PASS_KEY_PASSWORD")
    try:
        key = serialization.load_pem_private_key(
            _read(config, "APPLE_PASS_KEY"), password.encode() if password else None)
    except (ValueError, TypeError):
        raise RuntimeError("LOYALTY_APPLE_PASS_KEY: not a PEM private key, or the wrong "
                           "LOYALTY_APPLE_PASS_KEY_PASSWORD") from None
    if not isinstance(key, rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey):
        raise RuntimeError("LOYALTY_APPLE_PASS_KEY: must be an RSA or EC key")
    certificate = _certificate(config, "APPLE_PASS_CERT")
    if certificate.public_key().public_numbers() != key.public_key().public_numbers():
        raise RuntimeError("LOYALTY_APPLE_PASS_KEY does not belong to LOYALTY_APPLE_PASS_CERT")
    return AppleKeys(config["APPLE_PASS_TYPE_ID"], config["APPLE_TEAM_ID"], certificate, key,
                     _certificate(config, "APPLE_WWDR_CERT"))


def _google(config: Mapping[str, Any]) -> GoogleKeys:
    """The service account's JSON key file, as Google Cloud's console downloads it."""
    try:
        account = json.loads(_read(config, "GOOGLE_WALLET_SERVICE_ACCOUNT"))
        key = serialization.load_pem_private_key(account["private_key"].encode(), None)
        email = account["client_email"]
    except (ValueError, KeyError, TypeError, AttributeError):
        raise RuntimeError("LOYALTY_GOOGLE_WALLET_SERVICE_ACCOUNT: not a service-account JSON "
                           "key file (client_email, private_key)") from None
    if not isinstance(key, rsa.RSAPrivateKey):
        raise RuntimeError("LOYALTY_GOOGLE_WALLET_SERVICE_ACCOUNT: the key must be RSA (RS256)")
    return GoogleKeys(str(config["GOOGLE_WALLET_ISSUER_ID"]),
                      config.get("GOOGLE_WALLET_CLASS_SUFFIX") or "loyalty", email, key,
                      account.get("private_key_id"))
