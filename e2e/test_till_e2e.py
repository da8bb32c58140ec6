"""The till and the card in a real Chromium: the customer's live QR goes through a fake
camera (a .y4m video made at test time from the card's secret), the till decodes it with
jsQR, baristas in two regions earn and redeem on the one shared wallet, and a replayed
code is refused.

The video must carry a code that is valid while the test runs: the server accepts the
current 30 s step and one either side, so each camera phase makes its own video from a
code with at least 10 s left in its step (40 s or more of validity).
"""

from __future__ import annotations

import re
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path

import pytest
from playwright.sync_api import Browser, Page, expect

from e2e.conftest import CHROMIUM_ARGS
from e2e.fixtures.camera import write_qr_y4m
from e2e.helpers import login, scan_qr, watch_console
from tests.ledger_helpers import lost_commit_answer
from webapp.card import codes

CUSTOMER = "demo@example.com"
FAKE_CAMERA = ["--use-fake-device-for-media-stream", "--use-fake-ui-for-media-stream"]
PHONE = {"viewport": {"width": 390, "height": 844}, "device_scale_factor": 1}


@pytest.fixture
def customer_page(browser: Browser, base_url: str) -> Iterator[Page]:
    context = browser.new_context(base_url=base_url, **PHONE)
    page = context.new_page()
    login(page, CUSTOMER)
    yield page
    context.close()


def balance_on_card(page: Page) -> int:
    page.reload()
    return int(page.locator("#balance").inner_text())


def fresh_payload(number: str, secret: str) -> str:
    left = codes.STEP_SECONDS - time.time() % codes.STEP_SECONDS
    if left < 10:
        time.sleep(left + 0.2)
    return codes.rotating_payload(number, secret)


@contextmanager
def till_with_camera(playwright, launch_args: dict, base_url: str, video: Path,
                     barista: str) -> Iterator[Page]:
    """A separate Chromium whose webcam plays ``video``, signed in as ``barista``."""
    browser = playwright.chromium.launch(**{
        **launch_args,
        "args": [*CHROMIUM_ARGS, *FAKE_CAMERA, f"--use-file-for-fake-video-capture={video}"],
    })
    try:
        context = browser.new_context(base_url=base_url, permissions=["camera"],
                                      viewport={"width": 800, "height": 1280})
        page = context.new_page()
        errors = watch_console(page)
        login(page, barista)
        expect(page).to_have_url(re.compile(r"/till$"))
        yield page
        # A CSP violation (inline script or style) would show up here first.
        assert errors == [], errors
    finally:
        browser.close()


def scan(page: Page) -> None:
    start = page.locator("#scan-start")
    expect(start).to_be_visible()  # till.js found getUserMedia
    start.click()
    expect(page.locator("#customer h2")).to_be_visible(timeout=15_000)
    expect(page.locator("#scan-video")).to_be_hidden()  # camera off once the card is read


def test_scan_earn_then_redeem_in_another_region_and_replay_is_refused(
        customer_page, playwright, browser_type_launch_args, base_url, tmp_path):
    card = customer_page.locator("#card-qr")
    number, secret = card.get_attribute("data-number"), card.get_attribute("data-secret")
    start_balance = balance_on_card(customer_page)

    # New York: the live QR through the camera, then a purchase of $12.50
    # (the US store formats money in en_US).
    video = write_qr_y4m(fresh_payload(number, secret), tmp_path / "us.y4m")
    with till_with_camera(playwright, browser_type_launch_args, base_url, video,
                          "barista.us@example.com") as till:
        scan(till)
        customer = till.locator("#customer")
        expect(customer.locator("h2")).to_have_text("Dana")
        expect(customer).to_contain_text(f"•••• •••• {number[-4:]}")
        expect(customer).to_contain_text("live code")
        assert number not in customer.inner_text()
        expect(till.locator("#till-balance")).to_have_text(str(start_balance))
        expect(till.locator("#earn-amount")).to_be_focused()
        till.fill("#earn-amount", "12.50")
        till.get_by_role("button", name="Add coins").click()
        expect(till.locator("#receipt")).to_contain_text("Added 12 coins")
        expect(till.locator("#receipt")).to_contain_text("for a purchase of $12.50")
        expect(till.locator("#receipt-balance")).to_have_text(str(start_balance + 12))

    assert balance_on_card(customer_page) == start_balance + 12

    # Bengaluru: the same wallet, a redemption by live code, then the same code again.
    video = write_qr_y4m(fresh_payload(number, secret), tmp_path / "in.y4m")
    with till_with_camera(playwright, browser_type_launch_args, base_url, video,
                          "barista.in@example.com") as till:
        expect(till.locator("h1")).to_contain_text("INR")
        scan(till)
        expect(till.locator("#till-balance")).to_have_text(str(start_balance + 12))
        expect(till.locator("input[name=redeem-confirm]")).to_have_count(0)
        till.fill("#redeem-coins", "3")
        till.get_by_role("button", name="Redeem coins").click()
        expect(till.locator("#receipt")).to_contain_text("Redeemed 3 coins")
        expect(till.locator("#receipt-balance")).to_have_text(str(start_balance + 9))

        till.get_by_role("link", name="Next customer").click()
        scan(till)  # the camera still shows the code that just paid
        till.fill("#redeem-coins", "1")
        till.get_by_role("button", name="Redeem coins").click()
        expect(till.locator("#till-result .alert")).to_have_text(
            "This card code was already used. Ask for the live card.")
        expect(till.locator("#receipt")).to_have_count(0)
        expect(till.locator("#till-balance")).to_have_text(str(start_balance + 9))

    assert balance_on_card(customer_page) == start_balance + 9
    expect(customer_page.locator("#wallet")).to_contain_text("Bengaluru")


def test_manual_entry_works_without_javascript(browser: Browser, base_url, customer_page):
    number = customer_page.locator("#card-qr").get_attribute("data-number")
    context = browser.new_context(base_url=base_url, java_script_enabled=False)
    try:
        till = context.new_page()
        login(till, "barista.ie@example.com")
        expect(till.locator("#scan-start")).to_be_hidden()
        till.fill("#card", number)
        till.get_by_role("button", name="Find card").click()
        expect(till.locator("#customer h2")).to_have_text("Dana")
        expect(till.locator("input[name=redeem-confirm]")).to_have_count(1)
        till.fill("#earn-amount", "0.5")
        till.get_by_role("button", name="Add coins").click()
        expect(till.locator("#till-result .alert")).to_contain_text("too small to earn a coin")
        till.fill("#earn-amount", "2.00")
        till.get_by_role("button", name="Add coins").click()
        expect(till.locator("#receipt")).to_contain_text("Added 2 coins")
    finally:
        context.close()


def test_an_unknown_outcome_offers_try_again_with_the_same_form(browser: Browser, base_url,
                                                                customer_page):
    """htmx swaps the till's 503 answer in (app.js): the barista reads that the sale may
    already be booked and presses "Try again", which shows it was booked once."""
    number = customer_page.locator("#card-qr").get_attribute("data-number")
    start_balance = balance_on_card(customer_page)
    context = browser.new_context(base_url=base_url)
    try:
        till = context.new_page()
        errors = watch_console(till)
        login(till, "barista.us@example.com")
        till.fill("#card", number)
        till.get_by_role("button", name="Find card").click()
        till.fill("#earn-amount", "4.00")
        with lost_commit_answer() as lost:
            till.get_by_role("button", name="Add coins").click()
            expect(till.locator("#till-result .alert")).to_contain_text(
                "may already be booked")
        assert lost["fired"] == 1
        expect(till.locator("#earn-amount")).to_have_value("4.00")
        till.get_by_role("button", name="Try again").click()
        expect(till.locator("#receipt")).to_contain_text("Added 4 coins")
        expect(till.locator("#receipt")).to_contain_text("already booked once")
        assert errors == [], errors
    finally:
        context.close()
    assert balance_on_card(customer_page) == start_balance + 4


def _qr_box(page: Page) -> tuple[dict, dict]:
    return (page.locator("#card-qr").bounding_box(),
            page.locator("#card-qr > .qr").bounding_box())


def test_card_shows_a_rotating_qr_that_scans_and_works_offline(browser: Browser, base_url):
    # Without JavaScript: the static QR of the number, in the same box.
    context = browser.new_context(base_url=base_url, java_script_enabled=False, **PHONE)
    page = context.new_page()
    login(page, CUSTOMER)
    static_boxes = _qr_box(page)
    number = page.locator("#card-qr").get_attribute("data-number")
    secret = page.locator("#card-qr").get_attribute("data-secret")
    expect(page.locator("#card-qr > .qr svg")).to_have_count(1)
    context.close()

    context = browser.new_context(base_url=base_url, **PHONE)
    # A fake clock that starts 1 s into a step (it keeps running), so the code the test
    # expects is the one shown for the next 29 s.
    start = 1_700_000_011
    context.clock.install(time=datetime.fromtimestamp(start, UTC))
    page = context.new_page()
    errors = watch_console(page)
    login(page, CUSTOMER)
    qr = page.locator("#card-qr > .qr")
    step = codes.current_step(start)
    expect(qr).to_have_attribute("data-payload", f"LC1.{number}.{codes.totp(secret, step)}")
    countdown = re.compile(r"new code in ([1-9]|[12][0-9]|30) s$")
    expect(page.locator("#code-status")).to_have_text(countdown)
    assert _qr_box(page) == static_boxes  # no layout shift when the live QR appears
    assert scan_qr(page) == f"LC1.{number}.{codes.totp(secret, step)}"

    assert errors == [], errors  # no CSP violation, no script error
    # Let the service worker take the page, then go offline: the card still rotates.
    page.evaluate("navigator.serviceWorker.ready.then(() => true)")
    page.reload()
    expect(qr).to_have_attribute("data-payload", re.compile(r"^LC1\."))
    context.set_offline(True)
    page.reload()
    expect(page.locator("#card-qr")).to_have_attribute("data-number", number)
    shown = int(qr.get_attribute("data-step"))
    context.clock.fast_forward(30_000)
    expect(qr).to_have_attribute("data-step", str(shown + 1))
    expect(qr).to_have_attribute("data-payload", f"LC1.{number}.{codes.totp(secret, shown + 1)}")
    assert scan_qr(page) == f"LC1.{number}.{codes.totp(secret, shown + 1)}"
    context.close()
