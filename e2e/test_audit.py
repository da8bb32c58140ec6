"""Accessibility: axe-core finds no violations on the pages people use, in a real Chromium.

axe-core comes from the npm registry into tools/audit (git-ignored) through
``scripts/audit.sh install-axe``, run here on first use. Every rule axe runs by default is
checked (WCAG 2.0/2.1/2.2 A and AA plus its best practices), on a phone-sized and a
desktop-sized window, and on the states that add markup: form errors, a found customer
at the till.
"""

from __future__ import annotations

import re
from collections.abc import Iterator

import pytest
from playwright.sync_api import Browser, Page

from e2e.helpers import axe_violations as violations
from e2e.helpers import login

VIEWPORTS = {"phone": {"width": 390, "height": 844}, "desktop": {"width": 1280, "height": 800}}


@pytest.fixture(params=list(VIEWPORTS))
def audited(request, browser: Browser, base_url: str, axe_source: str) -> Iterator[Page]:
    # bypass_csp lets axe's script be injected; the app's own pages keep their CSP.
    context = browser.new_context(
        base_url=base_url, bypass_csp=True, viewport=VIEWPORTS[request.param]
    )
    page = context.new_page()
    page.axe_source = axe_source  # type: ignore[attr-defined]
    yield page
    context.close()


def test_register_page(audited: Page):
    audited.goto("/register")
    assert violations(audited) == []
    audited.get_by_role("button", name="Create card").click()  # every field in error
    audited.wait_for_selector(".error")
    assert violations(audited) == []


def test_login_page(audited: Page):
    audited.goto("/login")
    assert violations(audited) == []
    audited.fill("#email", "demo@example.com")
    audited.fill("#password", "wrong-password-1")
    audited.get_by_role("button", name="Sign in").click()
    audited.wait_for_selector(".alert")
    assert violations(audited) == []


def test_card_page(audited: Page):
    login(audited, "demo@example.com")
    audited.goto("/card")
    assert violations(audited) == []
    # After the htmx history refresh, too.
    audited.get_by_role("link", name="Refresh balance").click()
    audited.wait_for_load_state("networkidle")
    assert violations(audited) == []


def test_family_page(audited: Page):
    login(audited, "demo@example.com")
    audited.goto("/family")
    assert violations(audited) == []


def test_till_page(audited: Page, live_server):
    login(audited, "barista.ie@example.com")
    assert violations(audited) == []
    audited.fill("#card", _demo_card_number(live_server.app))
    audited.get_by_role("button", name="Find card").click()
    audited.wait_for_selector("#customer")
    assert violations(audited) == []


def test_reports_page(audited: Page):
    audited.goto("/login")
    audited.fill("#email", "admin@example.com")
    audited.fill("#password", "demo-password-1")
    audited.get_by_role("button", name="Sign in").click()
    audited.wait_for_load_state()
    audited.goto("/admin/reports")
    assert violations(audited) == []
    audited.goto("/admin/reports?since=not-a-day")  # the form in error
    assert violations(audited) == []


def _demo_card_number(app) -> str:
    from webapp.auth.queries import account_by_email
    from webapp.card.queries import active_cards
    from webapp.extensions import db

    with app.app_context():
        account = db.read(lambda c: account_by_email(c, "demo@example.com"), name="audit")
        return db.read(lambda c: active_cards(c, account["id"])[0]["number"], name="audit")


def test_account_pages(audited: Page):
    login(audited, "demo@example.com")
    audited.goto("/account")
    assert violations(audited) == []
    audited.get_by_role("button", name="Change password").click()  # fields in error
    audited.wait_for_selector("#current_password-error")
    assert violations(audited) == []
    audited.goto("/account/delete")
    assert violations(audited) == []


def test_recovery_pages(audited: Page):
    audited.goto("/password/forgot")
    assert violations(audited) == []
    audited.fill("#email", "demo@example.com")
    audited.get_by_role("button", name="Send the link").click()
    audited.wait_for_url("**/password/forgot/sent")
    assert violations(audited) == []
    audited.goto("/demo/outbox")
    assert violations(audited) == []
    audited.goto("/password/reset/" + "x" * 43)  # a link that is not valid
    assert violations(audited) == []


def test_family_invite_pages(audited: Page):
    """The owner's invite (link + QR), the member's join form (empty and in error), a
    used-up invite, and the card in "show at till" mode."""
    login(audited, "demo@example.com")
    audited.goto("/family")
    audited.get_by_role("button", name=re.compile(r"^Put on .+'s phone$")).first.click()
    audited.wait_for_selector("#invite-link")
    assert violations(audited) == []
    link = audited.locator("#invite-link").input_value()
    audited.goto(link)
    assert violations(audited) == []
    audited.get_by_role("button", name="Show my card").click()  # every field in error
    audited.wait_for_selector(".error")
    assert violations(audited) == []
    audited.goto("/join/" + "x" * 43)  # not a valid invite
    assert violations(audited) == []
    audited.goto("/card")
    audited.get_by_role("button", name="Show at till").click()
    audited.wait_for_selector("body.at-till")
    assert violations(audited) == []
