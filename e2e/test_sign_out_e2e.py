"""A card must not outlive its session, in a real Chromium.

- Sign out, press Back: the card does not come back (from the back/forward cache or the
  HTTP cache), and its secret is nowhere in the page.
- The offline card (kept by the service worker) goes when the session ends in any way,
  not only through the Sign out button: cookies cleared, refresh token revoked.
- A second account signed in on the same phone never sees the first one's card offline.

Playwright starts Chromium with ``--disable-back-forward-cache``; the Back test launches
its own Chromium without that switch, so the real back/forward cache is in play.
"""

from __future__ import annotations

import itertools
import re
from collections.abc import Iterator

import pytest
from playwright.sync_api import Browser, BrowserContext, Page, Playwright, expect

from e2e.conftest import CHROMIUM, CHROMIUM_ARGS
from e2e.helpers import submit_registration, verify_in_demo_mailbox, wait_until
from webapp.auth import tokens

PASSWORD = "sign-out-password-1"
_accounts = itertools.count(1)

# Every cache entry the service worker keeps for the card (stored as /card?account=<tag>),
# whoever's it is.
CACHED_CARDS = """async () => {
  const found = [];
  for (const name of await caches.keys()) {
    const cache = await caches.open(name);
    for (const request of await cache.keys()) {
      if (new URL(request.url).pathname === "/card") found.push(name + " " + request.url);
    }
  }
  return found;
}"""


def register(page: Page, name: str) -> str:
    email = f"signout{next(_accounts)}-{id(page)}@example.com"
    submit_registration(page, name, email, PASSWORD)
    page.wait_for_url(re.compile(r"/register/sent$"))
    verify_in_demo_mailbox(page, email)  # the link in the mail signs in, on /card
    return email


def sign_in(page: Page, email: str, next_path: str) -> None:
    page.goto(f"/login?next={next_path}")
    page.fill("#email", email)
    page.fill("#password", PASSWORD)
    page.get_by_role("button", name="Sign in").click()
    page.wait_for_url(re.compile(re.escape(next_path) + "$"))


def live_card_secret(page: Page) -> str:
    """The card's TOTP secret, once card.js has drawn the live code from it."""
    expect(page.locator("#card-qr > .qr[data-payload]")).to_have_count(1)
    secret = page.locator("#card-qr").get_attribute("data-secret")
    assert secret
    assert len(secret) >= 32
    return secret


def card_kept_offline(page: Page) -> str:
    """Waits for the service worker to control the page and keep the card; its secret."""
    wait_until(page, "() => navigator.serviceWorker.controller !== null")
    page.reload()
    secret = live_card_secret(page)
    wait_until(page, f"() => ({CACHED_CARDS})().then(found => found.length === 1)")
    return secret


def secret_gone(page: Page, secret: str) -> bool:
    try:
        return secret not in page.content() and page.locator("#card-qr > .qr svg").count() == 0
    except Exception:
        return False


def assert_offline_page_without(phone: BrowserContext, page: Page, secret: str) -> None:
    """Offline, /card shows the offline page, and the card's secret is not on it."""
    phone.set_offline(True)
    try:
        page.goto("/card")
        expect(page.locator("h1")).to_have_text("You're offline")
        assert secret not in page.content()
    finally:
        phone.set_offline(False)


def wait_secret_gone(page: Page, secret: str, timeout_ms: int = 15_000) -> None:
    waited = 0
    while not secret_gone(page, secret):
        assert waited < timeout_ms, f"the card and its secret are still on {page.url}"
        page.wait_for_timeout(100)
        waited += 100


@pytest.fixture
def bfcache_browser(playwright: Playwright) -> Iterator[Browser]:
    """Chromium as a phone runs it: with the back/forward cache Playwright turns off."""
    browser = playwright.chromium.launch(
        executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True,
        ignore_default_args=["--disable-back-forward-cache"])
    yield browser
    browser.close()


# --- Item 3: Back after sign-out ------------------------------------------------------


def test_back_after_sign_out_shows_no_card(bfcache_browser: Browser, base_url: str,
                                           pixel7: dict) -> None:
    context = bfcache_browser.new_context(**pixel7, base_url=base_url)
    try:
        page = context.new_page()
        register(page, "Back Button Bea")
        page.goto("/family")
        page.goto("/card")
        secret = live_card_secret(page)

        page.get_by_role("button", name="Sign out").click()
        page.wait_for_url(re.compile(r"/login$"))
        page.go_back(wait_until="commit")
        wait_secret_gone(page, secret)
        expect(page.locator("#card-holder")).to_have_count(0)
        page.wait_for_url(re.compile(r"/login(\?|$)"))
        # And once more, from the login page the Back button leads to: the family page.
        page.go_back(wait_until="commit")
        wait_secret_gone(page, secret)
        expect(page.get_by_role("button", name="Sign out")).to_have_count(0)
    finally:
        context.close()


def test_card_restored_from_the_back_forward_cache_without_a_session_drops_its_secret(
        phone: BrowserContext) -> None:
    """What card.js does when a page comes back from the back/forward cache (a
    ``pageshow`` with ``persisted``) and the session is gone, whichever way it went."""
    page = phone.new_page()
    register(page, "Restored Rosa")
    secret = live_card_secret(page)
    phone.clear_cookies()
    page.evaluate("() => window.dispatchEvent("
                  "new PageTransitionEvent('pageshow', {persisted: true}))")
    wait_secret_gone(page, secret)
    page.wait_for_url(re.compile(r"/login(\?|$)"))


def test_card_restored_with_the_session_still_on_keeps_rotating(phone: BrowserContext) -> None:
    page = phone.new_page()
    register(page, "Still Here Sol")
    secret = live_card_secret(page)
    with page.expect_response(lambda r: r.url.endswith("/session")) as answer:
        page.evaluate("() => window.dispatchEvent("
                      "new PageTransitionEvent('pageshow', {persisted: true}))")
    assert answer.value.status == 200
    assert page.locator("#card-qr").get_attribute("data-secret") == secret
    expect(page.locator("#card-qr > .qr[data-payload]")).to_have_count(1)


# --- Item 4: the offline card ends with the session -----------------------------------


def test_offline_card_goes_when_the_cookies_are_cleared(phone: BrowserContext) -> None:
    page = phone.new_page()
    register(page, "Cleared Cleo")
    secret = card_kept_offline(page)

    phone.clear_cookies()  # e.g. "clear cookies" in the browser's settings
    assert_offline_page_without(phone, page, secret)
    assert page.evaluate(CACHED_CARDS) == []


def test_offline_card_goes_when_the_refresh_token_is_revoked(phone: BrowserContext,
                                                             live_server) -> None:
    """Signed out on another device (the token family revoked): the next visit online
    ends the session here too, and the card kept for offline use goes with it."""
    page = phone.new_page()
    register(page, "Revoked Remy")
    secret = card_kept_offline(page)

    refresh = next(c["value"] for c in phone.cookies() if c["name"] == "refresh_token")
    with live_server.app.app_context():
        tokens.revoke(refresh)
    phone.clear_cookies(name="access_token")  # the short-lived token has expired
    page.goto("/card")
    page.wait_for_url(re.compile(r"/login\?next=/card$"))
    wait_until(page, f"() => ({CACHED_CARDS})().then(found => found.length === 0)")

    assert_offline_page_without(phone, page, secret)


def test_second_account_on_the_phone_never_sees_the_first_ones_card(
        phone: BrowserContext, browser: Browser, base_url: str, pixel7: dict) -> None:
    other = browser.new_context(**pixel7, base_url=base_url)
    try:
        second_email = register(other.new_page(), "Second Sasha")
    finally:
        other.close()

    page = phone.new_page()
    register(page, "First Fern")
    first_secret = card_kept_offline(page)

    # Sasha signs in on Fern's phone (Fern never signed out) and opens another page.
    sign_in(page, second_email, "/family")
    assert_offline_page_without(phone, page, first_secret)
    assert page.evaluate(CACHED_CARDS) == []

    # Online, Sasha's own card is the one kept.
    page.goto("/card")
    expect(page.locator("#card-holder")).to_have_text("Second Sasha")
    second_secret = live_card_secret(page)
    wait_until(page, f"() => ({CACHED_CARDS})().then(found => found.length === 1)")
    phone.set_offline(True)
    try:
        page.reload()
        expect(page.locator("#card-holder")).to_have_text("Second Sasha")
        assert page.locator("#card-qr").get_attribute("data-secret") == second_secret
    finally:
        phone.set_offline(False)
