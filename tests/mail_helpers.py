"""Mail in tests, for real: an SMTP server (aiosmtpd) in the test process that the app's
sender delivers to, and helpers that follow the links in what arrives.

``verify_via_outbox`` is how tests that only need a signed-in customer get one: it
registers through the page, takes the verification mail the app queued (the same text
the SMTP sender would deliver) and opens its link, as the person would.
"""

from __future__ import annotations

import email
import email.policy
import re
import socket
import threading
from dataclasses import dataclass, field
from email.message import EmailMessage

import pytest
from aiosmtpd.controller import Controller
from sqlalchemy import select

from webapp.database.schema import mail_outbox
from webapp.extensions import db

LINK = re.compile(r"https?://[^\s<>\"]+")


@dataclass
class Received:
    envelope_from: str
    recipients: list[str]
    message: EmailMessage

    @property
    def text(self) -> str:
        return self.message.get_body(preferencelist=("plain",)).get_content()

    @property
    def html(self) -> str:
        return self.message.get_body(preferencelist=("html",)).get_content()

    def link(self, path: str) -> str:
        """The first link in the plain-text part whose path starts with ``path``."""
        for url in LINK.findall(self.text):
            if re.match(r"https?://[^/]+" + re.escape(path), url):
                return url
        raise AssertionError(f"no {path} link in:\n{self.text}")


@dataclass
class _Handler:
    messages: list[Received] = field(default_factory=list)
    arrived: threading.Condition = field(default_factory=threading.Condition)
    # Recipients this server refuses permanently (550), as for an unknown mailbox.
    refuse: set[str] = field(default_factory=set)

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):
        if address in self.refuse:
            return "550 5.1.1 No such mailbox"
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server, session, envelope):
        message = email.message_from_bytes(envelope.original_content or envelope.content,
                                           policy=email.policy.default)
        with self.arrived:
            self.messages.append(Received(envelope.mail_from, list(envelope.rcpt_tos),
                                          message))
            self.arrived.notify_all()
        return "250 Message accepted for delivery"


class SmtpServer:
    """A real SMTP server on 127.0.0.1 for one test; ``stop()`` makes it refuse
    connections (a mail server that is down), ``start()`` brings it back."""

    def __init__(self, **smtp_options) -> None:
        self.handler = _Handler()
        self.port = _free_port()
        self.controller: Controller | None = None
        self.smtp_options = smtp_options  # aiosmtpd's: tls_context, authenticator...

    def start(self) -> SmtpServer:
        self.controller = Controller(self.handler, hostname="127.0.0.1", port=self.port,
                                     **self.smtp_options)
        self.controller.start()
        return self

    def stop(self) -> None:
        if self.controller is not None:
            self.controller.stop()
            self.controller = None

    @property
    def messages(self) -> list[Received]:
        return list(self.handler.messages)

    def to(self, address: str) -> list[Received]:
        return [m for m in self.messages if address in m.recipients]

    def config(self) -> dict:
        return {"MAIL_BACKEND": "smtp", "MAIL_SERVER": "127.0.0.1", "MAIL_PORT": self.port,
                "MAIL_SECURITY": "none", "MAIL_USERNAME": None, "MAIL_TIMEOUT": 5.0}


def tls_context(folder):
    """A server context with a fresh self-signed certificate for localhost; returns it
    and the certificate's path (the CA file a client must be told to trust)."""
    import datetime
    import ipaddress
    import ssl

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")])
    now = datetime.datetime.now(datetime.UTC)
    certificate = (
        x509.CertificateBuilder().subject_name(name).issuer_name(name)
        .public_key(key.public_key()).serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=1))
        .not_valid_after(now + datetime.timedelta(hours=1))
        .add_extension(x509.SubjectAlternativeName([
            x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
            critical=False)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256()))
    cert_file, key_file = folder / "smtp-cert.pem", folder / "smtp-key.pem"
    cert_file.write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
    key_file.write_bytes(key.private_bytes(serialization.Encoding.PEM,
                                           serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(cert_file, key_file)
    return context, cert_file


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture
def smtp_server():
    server = SmtpServer().start()
    yield server
    server.stop()


def outbox(app, recipient: str | None = None) -> list[dict]:
    """The outbox rows, oldest first (bodies are blank once a row was delivered)."""
    query = select(mail_outbox).order_by(mail_outbox.c.id)
    if recipient is not None:
        query = query.where(mail_outbox.c.recipient == recipient)
    with app.app_context():
        return db.read(lambda conn: [dict(r) for r in conn.execute(query).mappings()],
                       name="test.outbox", causal=True)


def link_in(text: str, path: str) -> str:
    for url in LINK.findall(text):
        if re.match(r"https?://[^/]+" + re.escape(path), url):
            return url
    raise AssertionError(f"no {path} link in:\n{text}")


def path_of(url: str) -> str:
    return re.sub(r"^https?://[^/]+", "", url)


def confirm_link(client, url: str, **fields):
    """Opens a mailed link (GET: the page with its one button) and presses the button."""
    from tests.conftest import csrf_token

    page = client.get(path_of(url))
    assert page.status_code == 200, page.get_data(as_text=True)
    data = {"csrf_token": csrf_token(page.get_data(as_text=True)), **fields}
    return client.post(path_of(url), data=data)


def verify_via_outbox(client, email_address: str):
    """Opens the newest verification link queued for ``email_address`` (signs in)."""
    from webapp.auth.emails import normalize_email

    app = client.application
    # The mail goes to the address's normal form (NFC, lower case), as the app stores it.
    mails = [m for m in outbox(app, normalize_email(email_address)) if m["kind"] == "verify"]
    assert mails, f"no verification mail queued for {email_address}"
    return confirm_link(client, link_in(mails[-1]["body_text"], "/verify/"))
