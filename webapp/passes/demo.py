"""Throwaway wallet keys for ``make run``, so a new user sees both buttons work.

A private CA stands in for Apple's WWDR intermediate and signs a pass certificate; an RSA
key with a made-up email stands in for a Google service account. Made once into
instance/demo-wallet-keys/ (git-ignored) and reused; the card page labels the buttons as
demo keys, because no phone will install a pass signed with them.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from datetime import UTC, datetime, timedelta
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import NameOID
from flask import Flask

from .keys import APPLE_SETTINGS, GOOGLE_SETTINGS

PASS_TYPE_ID = "pass.invalid.loyalty-card.demo"  # noqa: S105 - an identifier, not a secret
TEAM_ID = "DEMO000000"
GOOGLE_ISSUER_ID = "3388000000000000000"
GOOGLE_EMAIL = "demo-wallet@loyalty-card-demo.iam.gserviceaccount.invalid"
FILES = {"APPLE_PASS_CERT": "pass-cert.pem", "APPLE_PASS_KEY": "pass-key.pem",
         "APPLE_WWDR_CERT": "demo-wwdr.pem",
         "GOOGLE_WALLET_SERVICE_ACCOUNT": "google-service-account.json"}


def use_demo_keys(app: Flask) -> None:
    """Configures demo keys for each wallet the operator left unconfigured."""
    config = app.config
    apple = not any(config.get(name) for name in APPLE_SETTINGS)
    google = not any(config.get(name) for name in GOOGLE_SETTINGS)
    if not (apple or google):
        return
    folder = _ensure_keys(Path(app.instance_path) / "demo-wallet-keys")
    if apple:
        config.update(APPLE_PASS_TYPE_ID=PASS_TYPE_ID, APPLE_TEAM_ID=TEAM_ID,
                      APPLE_PASS_KEY_PASSWORD=None)
        config.update({name: str(folder / FILES[name])
                       for name in ("APPLE_PASS_CERT", "APPLE_PASS_KEY", "APPLE_WWDR_CERT")})
    if google:
        config.update(GOOGLE_WALLET_ISSUER_ID=GOOGLE_ISSUER_ID,
                      GOOGLE_WALLET_SERVICE_ACCOUNT=str(folder / FILES[
                          "GOOGLE_WALLET_SERVICE_ACCOUNT"]))
    config["PASSES_DEMO"] = True


def _ensure_keys(folder: Path) -> Path:
    """Made in a scratch folder and renamed into place, so two workers starting at once
    end up using the same keys (the loser of the rename uses the winner's)."""
    if folder.exists():
        return folder
    folder.parent.mkdir(parents=True, exist_ok=True)
    scratch = Path(tempfile.mkdtemp(prefix=".demo-wallet-keys-", dir=folder.parent))
    for name, data in make_keys().items():
        (scratch / name).write_bytes(data)
        (scratch / name).chmod(0o600)
    try:
        os.rename(scratch, folder)
    except OSError:  # another process got there first
        shutil.rmtree(scratch, ignore_errors=True)
    return folder


def _name(common_name: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name),
                      x509.NameAttribute(NameOID.ORGANIZATION_NAME, "Loyalty Card demo")])


def _pem(key: rsa.RSAPrivateKey) -> bytes:
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                             serialization.NoEncryption())


def make_keys() -> dict[str, bytes]:
    now = datetime.now(UTC)
    ca_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    ca = (x509.CertificateBuilder().subject_name(_name("Demo WWDR (not Apple)"))
          .issuer_name(_name("Demo WWDR (not Apple)")).public_key(ca_key.public_key())
          .serial_number(x509.random_serial_number())
          .not_valid_before(now - timedelta(days=1)).not_valid_after(now + timedelta(days=3650))
          .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
          .sign(ca_key, hashes.SHA256()))
    pass_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    certificate = (x509.CertificateBuilder().subject_name(_name(f"Pass Type ID: {PASS_TYPE_ID}"))
                   .issuer_name(ca.subject).public_key(pass_key.public_key())
                   .serial_number(x509.random_serial_number())
                   .not_valid_before(now - timedelta(days=1))
                   .not_valid_after(now + timedelta(days=3650))
                   .add_extension(x509.BasicConstraints(ca=False, path_length=None),
                                  critical=True)
                   .sign(ca_key, hashes.SHA256()))
    google_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    account = {"type": "service_account", "client_email": GOOGLE_EMAIL,
               "private_key_id": "demo", "private_key": _pem(google_key).decode()}
    return {
        FILES["APPLE_WWDR_CERT"]: ca.public_bytes(serialization.Encoding.PEM),
        FILES["APPLE_PASS_CERT"]: certificate.public_bytes(serialization.Encoding.PEM),
        FILES["APPLE_PASS_KEY"]: _pem(pass_key),
        FILES["GOOGLE_WALLET_SERVICE_ACCOUNT"]: json.dumps(account, indent=1).encode(),
    }
