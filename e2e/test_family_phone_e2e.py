"""A family member's own phone, in real Chromium contexts, as a new user would: the owner
invites Tom; Tom's phone (a second context) accepts, signs in and shows his own card; a
barista (a third context) earns on the live code read off Tom's screen; BOTH phones show
the new balance and say so to screen readers without any click; the owner revokes Tom,
whose next request is refused and whose cached card is gone from the phone."""

from __future__ import annotations

import itertools
import re

from playwright.sync_api import Browser, BrowserContext, Page, expect

from e2e.helpers import (
    login,
    scan_qr,
    submit_registration,
    verify_in_demo_mailbox,
    wait_until,
    watch_console,
)

PASSWORD = "family-phone-pass-1"
_runs = itertools.count(1)


# The worker keeps the card in this cache under /card?account=<tag> (whose card it is).
CARD_KEPT = "() => caches.open('card-v4').then(c => c.keys()).then(k => k.length > 0)"
CARD_GONE = "() => caches.open('card-v4').then(c => c.keys()).then(k => k.length === 0)"


def _context(browser: Browser, base_url: str, device: dict | None = None) -> BrowserContext:
    return browser.new_context(**(device or {}), base_url=base_url)


def _register_owner(page: Page) -> str:
    email = f"owner{next(_runs)}-{id(page)}@example.com"
    submit_registration(page, "Olive Owner", email, PASSWORD)
    page.wait_for_url(re.compile(r"/register/sent$"))
    verify_in_demo_mailbox(page, email)  # the link in the mail signs in
    return email


def _balance(page: Page) -> int:
    return int(page.locator("#balance").inner_text())


def test_member_on_own_phone_sees_live_balance_and_loses_the_card_when_revoked(
        browser: Browser, base_url: str, pixel7: dict) -> None:
    owner_ctx = _context(browser, base_url, pixel7)
    member_ctx = _context(browser, base_url, pixel7)
    till_ctx = _context(browser, base_url)
    try:
        owner = owner_ctx.new_page()
        owner_errors = watch_console(owner)
        _register_owner(owner)

        # The owner adds Tom and invites him: a link and a QR for Tom's phone.
        owner.goto("/family")
        owner.fill("#name", "Tom")
        owner.get_by_role("button", name="Add member").click()
        expect(owner.locator("#family-members")).to_have_text("Members (1 of 4)")
        owner.get_by_role("button", name="Put on Tom's phone").click()
        expect(owner.locator("h1")).to_have_text("Tom's card on their own phone")
        link = owner.locator("#invite-link").input_value()
        assert re.search(r"/join/[A-Za-z0-9_-]{40,}$", link)

        # Tom's phone opens the link and makes its own sign-in.
        member = member_ctx.new_page()
        member_errors = watch_console(member)
        member.goto(link)
        member.fill("#email", f"tom{next(_runs)}-{id(member)}@example.com")
        member.fill("#password", PASSWORD)
        member.get_by_role("button", name="Show my card").click()
        member.wait_for_url(re.compile(r"/card$"))
        expect(member.locator("#card-holder")).to_have_text("Tom")
        expect(member.get_by_role("link", name="Family")).to_have_count(0)
        expect(member.locator(".card-switcher")).to_have_count(0)
        # Installed-app behaviour: the worker keeps Tom's card for the till offline.
        wait_until(member, "() => navigator.serviceWorker.controller !== null")
        member.reload()
        wait_until(member, CARD_KEPT)
        member.wait_for_timeout(300)  # let card.js start polling on this load

        owner.goto("/card")
        start = _balance(owner)
        assert _balance(member) == start

        # The barista scans Tom's live code off his screen and rings up 12.50 EUR.
        payload = scan_qr(member)
        assert re.fullmatch(r"LC1\.\d{12}\.\d{6}", payload)
        till = till_ctx.new_page()
        login(till, "barista.ie@example.com")
        till.fill("#card", payload)
        till.get_by_role("button", name="Find card").click()
        expect(till.locator("#customer h2")).to_have_text("Tom")
        till.fill("#earn-amount", "12.50")
        till.get_by_role("button", name="Add coins").click()
        expect(till.locator("#receipt")).to_contain_text("Added 12 coins")

        # Both phones update by themselves, and tell screen readers politely.
        for phone in (member, owner):
            expect(phone.locator("#balance")).to_have_text(str(start + 12), timeout=6000)
            expect(phone.locator("#wallet li.tx").first).to_contain_text("Tom")
            expect(phone.locator("#live-announce")).to_have_attribute("aria-live", "polite")
            expect(phone.locator("#live-announce")).to_have_text(
                re.compile(r"\+12 coins at Dublin"))

        # "Show at till" on Tom's phone: the code fills the screen and still scans.
        member.get_by_role("button", name="Show at till").click()
        expect(member.locator("body")).to_have_class(re.compile("at-till"))
        expect(member.locator("#till-hint")).to_be_visible()
        box = member.locator("#card-qr > .qr").bounding_box()
        assert box
        assert box["width"] >= 0.85 * member.viewport_size["width"]
        assert re.fullmatch(r"LC1\.\d{12}\.\d{6}", scan_qr(member))
        member.mouse.click(10, 10)
        expect(member.locator("body")).not_to_have_class(re.compile("at-till"))

        # The owner revokes Tom's phone: its next request is refused, its card removed.
        owner.goto("/family")
        owner.get_by_role("button", name="Stop Tom's phone").click()
        expect(owner.locator(".notice[role=status]")).to_contain_text("no longer shows the card")
        member.wait_for_url(re.compile(r"/login"), timeout=20_000)  # its next poll: 401
        wait_until(member, CARD_GONE)
        member_ctx.set_offline(True)
        try:
            member.goto("/card")
            expect(member.locator("h1")).to_have_text("You're offline")
            expect(member.locator("#card-qr")).to_have_count(0)
        finally:
            member_ctx.set_offline(False)

        assert owner_errors == []
        assert member_errors == []
    finally:
        for ctx in (owner_ctx, member_ctx, till_ctx):
            ctx.close()
