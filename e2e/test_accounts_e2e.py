"""A new customer's account, in Chromium, as they would use it: register and open the
verification mail that reached a real SMTP server; forget the password and reset it by
mail; add a passkey (Chromium's virtual authenticator, over the DevTools protocol) and
sign in with it; download their data; erase the account.

The app runs on http://localhost:<port> (a passkey's relying party must be a domain, not
an IP address) and delivers mail to an aiosmtpd server in this process.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path

import pytest
from argon2 import PasswordHasher
from playwright.sync_api import Browser, BrowserContext, Page, expect
from playwright.sync_api import Error as PlaywrightError

from e2e.conftest import LiveServer
from e2e.helpers import watch_console
from tests.mail_helpers import SmtpServer
from webapp import create_app
from webapp.auth.services import register
from webapp.commands import upgrade_schema
from webapp.errors import NotFound
from webapp.extensions import db
from webapp.ledger import services as ledger

PASSWORD = "first-password-1"
NEW_PASSWORD = "second-password-2"


@pytest.fixture(scope="module")
def smtp() -> Iterator[SmtpServer]:
    server = SmtpServer().start()
    yield server
    server.stop()


@pytest.fixture(scope="module")
def server(tmp_path_factory, smtp) -> Iterator[LiveServer]:
    from db.seed import seed_stores

    path = tmp_path_factory.mktemp("accounts") / "accounts.db"
    app = create_app({"PROFILE": "test", "DATABASE_URL": f"sqlite:///{path}",
                      "LOGIN_RATE_LIMIT": "1000 per minute", **smtp.config(),
                      "MAIL_SENDER": "Loyalty Card <hello@localhost>"})
    with app.app_context():
        upgrade_schema()
        seed_stores()
    with LiveServer(app) as live:
        live.url = live.url.replace("127.0.0.1", "localhost")
        app.config["PUBLIC_BASE_URL"] = live.url
        yield live
    with app.app_context():
        db.dispose()


@pytest.fixture
def context(browser: Browser, server: LiveServer) -> Iterator[BrowserContext]:
    context = browser.new_context(base_url=server.url)
    yield context
    context.close()


def deliver(server: LiveServer, smtp: SmtpServer, address: str, subject: str) -> str:
    """Runs the mail worker once and returns the plain text of the newest message with
    ``subject`` that reached ``address`` at the SMTP server."""
    result = server.app.test_cli_runner().invoke(args=["mail", "send"])
    assert result.exit_code == 0, result.output
    found = [m for m in smtp.to(address) if m.message["Subject"] == subject]
    assert found, f"no '{subject}' mail for {address}"
    return found[-1].text


def link(text: str, path: str) -> str:
    return re.search(r"http://localhost:\d+" + re.escape(path) + r"\S+", text).group()


def sign_in(page: Page, email: str, password: str) -> None:
    page.goto("/login")
    page.fill("#email", email)
    page.fill("#password", password)
    page.get_by_role("button", name="Sign in").click()
    page.wait_for_url(re.compile(r"/card$"))


def test_register_verify_passkey_export_erase(context: BrowserContext, server, smtp):
    page = context.new_page()
    errors = watch_console(page)
    email = "maya@example.com"

    # Register: the page says "check your inbox", the mail arrives, its link verifies.
    page.goto("/register")
    page.fill("#name", "Maya Mail")
    page.fill("#email", email)
    page.fill("#password", PASSWORD)
    page.get_by_role("button", name="Create card").click()
    page.wait_for_url(re.compile(r"/register/sent$"))
    expect(page.get_by_role("heading", name="Check your inbox")).to_be_visible()
    text = deliver(server, smtp, email, "Confirm your email address")
    page.goto(link(text, "/verify/"))
    page.get_by_role("button", name="Confirm and open my card").click()
    page.wait_for_url(re.compile(r"/card$"))
    expect(page.locator("#card-holder")).to_have_text("Maya Mail")
    number = page.locator(".card-number").inner_text().replace(" ", "")

    # Some history at the till, for the export.
    with server.app.app_context():
        ledger.earn(card=number, store_code="IE-DUB-01", amount_minor=1250, currency="EUR",
                    idempotency_key="e2e-accounts-1", staff_id=None)

    # A passkey from the account page, with Chromium's virtual authenticator.
    cdp = context.new_cdp_session(page)
    cdp.send("WebAuthn.enable")
    cdp.send("WebAuthn.addVirtualAuthenticator", {"options": {
        "protocol": "ctap2", "transport": "internal", "hasResidentKey": True,
        "hasUserVerification": True, "isUserVerified": True,
        "automaticPresenceSimulation": True}})
    page.goto("/account")
    page.fill("#passkey-name", "Test phone")
    page.get_by_role("button", name="Add a passkey").click()
    expect(page.locator(".notice[role=status]")).to_contain_text("Passkey “Test phone” added")
    expect(page.get_by_role("button", name="Remove Test phone")).to_be_visible()

    # Sign out, then back in with the passkey alone.
    page.get_by_role("button", name="Sign out").first.click()
    page.wait_for_url(re.compile(r"/login$"))
    page.get_by_role("button", name="Use a passkey").click()
    page.wait_for_url(re.compile(r"/card$"))
    expect(page.locator("#card-holder")).to_have_text("Maya Mail")

    # Download the data: the history is in it.
    page.goto("/account")
    with page.expect_download() as download:
        page.get_by_role("button", name="Download my data").click()
    data = json.loads(Path(download.value.path()).read_text(encoding="utf-8"))
    assert data["account"]["email"] == email
    assert [(e["kind"], e["coins"], e["store_name"]) for e in data["ledger"]] == [
        ("earn", 12, "Dublin, Grafton Street")]
    assert [p["name"] for p in data["passkeys"]] == ["Test phone"]

    # Erase: the page shows what is lost, the password confirms it.
    page.goto("/account/delete")
    expect(page.locator("main")).to_contain_text("12 coins")
    page.fill("#current_password", PASSWORD)
    page.check("#understood")
    page.get_by_role("button", name="Delete my account").click()
    expect(page.get_by_role("heading", name="Account deleted")).to_be_visible()
    with server.app.app_context(), pytest.raises(NotFound):
        ledger.lookup(number)  # the card no longer works at the till
    page.goto("/login")
    page.fill("#email", email)
    page.fill("#password", PASSWORD)
    page.get_by_role("button", name="Sign in").click()
    expect(page.locator(".alert")).to_have_text("Email or password is incorrect.")
    page.get_by_role("button", name="Use a passkey").click()
    expect(page.locator("#passkey-signin-error")).to_be_visible()
    assert errors == []


def test_forgotten_password_reset_by_mail_ends_old_sessions(browser: Browser, server, smtp,
                                                          monkeypatch):
    monkeypatch.setattr("webapp.auth.services.hasher",
                        PasswordHasher(time_cost=1, memory_cost=1024, parallelism=1))
    email = "rosa@example.com"
    with server.app.app_context():
        register(name="Rosa Reset", email=email, password=PASSWORD, region="us")
    old = browser.new_context(base_url=server.url)
    fresh = browser.new_context(base_url=server.url)
    try:
        old_page = old.new_page()
        sign_in(old_page, email, PASSWORD)
        old_cookies = old.cookies()
        assert any(c["name"] == "refresh_token" for c in old_cookies)

        page = fresh.new_page()
        page.goto("/login")
        page.get_by_role("link", name="Forgot your password?").click()
        page.fill("#email", email)
        page.get_by_role("button", name="Send the link").click()
        page.wait_for_url(re.compile(r"/password/forgot/sent$"))
        text = deliver(server, smtp, email, "Reset your password")
        page.goto(link(text, "/password/reset/"))
        page.fill("#password", NEW_PASSWORD)
        page.get_by_role("button", name="Save the new password").click()
        page.wait_for_url(re.compile(r"/login\?reset=1$"))
        expect(page.locator(".notice")).to_have_text(
            "Your password was changed. Sign in with the new one.")
        sign_in(page, email, NEW_PASSWORD)

        # The old session's refresh token no longer works: only its cookies, a new browser.
        replay = browser.new_context(base_url=server.url)
        try:
            replay.add_cookies([c for c in old_cookies if c["name"] == "refresh_token"])
            stale = replay.new_page()
            stale.goto("/card")
            stale.wait_for_url(re.compile(r"/login"))
        finally:
            replay.close()
        # The old device is signed out at once: its card's live poll is refused and takes it
        # to sign-in by itself, or the page it opens next does, whichever comes first.
        try:
            old_page.goto("/card")
        except PlaywrightError as error:  # the page's own redirect won the race
            if "interrupted by another navigation" not in str(error):
                raise
        old_page.wait_for_url(re.compile(r"/login"))
        # The link worked once.
        page.goto(link(text, "/password/reset/"))
        expect(page.get_by_role("heading", name="This link was already used")).to_be_visible()
    finally:
        old.close()
        fresh.close()
