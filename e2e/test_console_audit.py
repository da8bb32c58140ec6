"""Accessibility of the operator console: axe-core finds no violations on any /admin page
(and on the states that add markup: form errors, a shown temporary password, search
results, a customer's record), at 360 px and at desktop width, and no page is wider
than the window (a 360 px phone never scrolls sideways; wide tables scroll in their own
box).

Each width signs in once and walks every page, so a run costs two sign-ins.
"""

from __future__ import annotations

import re
import secrets
from collections.abc import Iterator

import pytest
from playwright.sync_api import Browser, Page, expect

from e2e.helpers import axe_violations, login_staff

WIDTHS = {"360px": {"width": 360, "height": 740}, "desktop": {"width": 1280, "height": 800}}


@pytest.fixture(params=list(WIDTHS))
def audited(request, browser: Browser, base_url: str, axe_source: str) -> Iterator[Page]:
    # bypass_csp lets axe's script be injected; the app's own pages keep their CSP.
    context = browser.new_context(base_url=base_url, bypass_csp=True,
                                  viewport=WIDTHS[request.param])
    page = context.new_page()
    page.axe_source = axe_source  # type: ignore[attr-defined]
    yield page
    context.close()


def _too_wide(page: Page) -> str | None:
    """The page scrolls sideways (something is wider than the window)."""
    width = page.evaluate("document.documentElement.scrollWidth")
    window = page.evaluate("window.innerWidth")
    return f"page is {width} px wide in a {window} px window" if width > window else None


def _check(page: Page, found: dict[str, list[str]], name: str) -> None:
    problems = axe_violations(page)
    wide = _too_wide(page)
    if wide:
        problems.append(wide)
    if problems:
        found[name] = problems


def _demo_customer_id(page: Page) -> str:
    page.goto("/admin/support?q=demo%40example.com")
    href = page.get_by_role("link", name=re.compile(r"^Customer #\d+: Dana Demo$")).get_attribute(
        "href")
    return href.rsplit("/", 1)[1]


def test_every_console_page_has_no_axe_violations(audited: Page) -> None:
    found: dict[str, list[str]] = {}
    page = audited
    login_staff(page, "admin@example.com")

    page.goto("/admin")
    _check(page, found, "home")
    page.goto("/admin/stores")
    _check(page, found, "stores")
    page.get_by_role("button", name="Create store").click()  # every field in error
    expect(page.locator(".error").first).to_be_visible()
    _check(page, found, "stores, form in error")

    page.goto("/admin/stores")
    page.get_by_role("link", name="IN-BLR-01").click()
    expect(page.get_by_role("heading", level=1)).to_contain_text("IN-BLR-01")
    store_url = page.url
    _check(page, found, "store edit")
    page.get_by_label("Money per coin (minor units)").fill("lots")
    page.get_by_role("button", name="Save").click()
    expect(page.locator(".error").first).to_be_visible()
    _check(page, found, "store edit, form in error")
    page.goto(store_url)
    page.get_by_role("link", name="The store's day").click()
    page.wait_for_url(re.compile(r"/day"))
    _check(page, found, "store's day")

    page.goto("/admin/staff")
    _check(page, found, "staff")
    page.get_by_role("button", name="Create with a temporary password").click()
    expect(page.locator(".error").first).to_be_visible()
    _check(page, found, "staff, form in error")
    # A new member (not a demo one: other tests sign in with those), then a reset.
    name = f"Axe {secrets.token_hex(3)}"
    page.get_by_label("Name", exact=True).fill(name)
    page.get_by_label("Email").fill(f"{name.split()[1]}@example.com")
    page.get_by_label("Store", exact=True).select_option("IE-DUB-01")
    page.get_by_role("button", name="Create with a temporary password").click()
    expect(page.get_by_role("status")).to_contain_text("Temporary password")
    _check(page, found, "staff, temporary password shown")
    page.get_by_role("button", name=f"Reset password of {name}").click()
    # Whose password it is, by the address they sign in with (not an account number).
    expect(page.get_by_role("status")).to_contain_text(
        f"Temporary password for {name.split()[1]}@example.com")

    page.goto("/admin/rewards")
    _check(page, found, "rewards")
    page.get_by_role("button", name="Add reward").click()
    expect(page.locator(".error").first).to_be_visible()
    _check(page, found, "rewards, form in error")
    page.goto("/admin/rewards")
    page.get_by_role("link", name="Chai").click()
    expect(page.get_by_role("heading", level=1)).to_contain_text("Chai")
    _check(page, found, "reward edit")
    page.get_by_label("Coin cost").fill("0")  # refused: nothing saved
    page.get_by_role("button", name="Save").click()
    expect(page.locator(".error").first).to_be_visible()
    _check(page, found, "reward edit, form in error")

    page.goto("/admin/support")
    _check(page, found, "support")
    page.get_by_label("Email, card number or name").fill("Dana")
    page.get_by_role("button", name="Search").click()
    expect(page.get_by_role("link", name=re.compile(r"Dana Demo"))).to_be_visible()
    _check(page, found, "support, results")
    page.goto(f"/admin/support/{_demo_customer_id(page)}")
    _check(page, found, "customer")
    page.get_by_role("button", name="Adjust").click()  # no coins, no reason
    expect(page.get_by_role("alert")).to_be_visible()
    _check(page, found, "customer, adjustment refused")

    page.goto("/admin/audit")
    _check(page, found, "audit")
    page.get_by_label("Kind").select_option("sign-in")
    page.get_by_role("button", name="Filter").click()
    page.wait_for_url(re.compile(r"action=sign-in"))
    _check(page, found, "audit, filtered")

    page.goto("/admin/reports")
    _check(page, found, "reports")
    page.goto("/admin/reports?since=not-a-day")
    _check(page, found, "reports, form in error")

    page.goto("/admin/password")
    _check(page, found, "change password")

    assert found == {}, "\n".join(f"{name}: {problems}" for name, problems in found.items())


def test_a_managers_console_pages_have_no_axe_violations(audited: Page) -> None:
    """What differs for a store manager: the home page's link to today at their store,
    the staff page without admin choices, the store page without its settings form."""
    found: dict[str, list[str]] = {}
    page = audited
    login_staff(page, "manager.us@example.com")
    _check(page, found, "manager home")
    page.get_by_role("link", name=re.compile(r"^Today at ")).click()
    page.wait_for_url(re.compile(r"/day"))
    _check(page, found, "manager, store's day")
    page.goto("/admin/staff")
    _check(page, found, "manager, staff")
    page.goto("/admin/stores")
    page.get_by_role("link", name="US-NYC-01").click()
    expect(page.get_by_role("heading", level=1)).to_contain_text("US-NYC-01")
    _check(page, found, "manager, store")
    assert found == {}, "\n".join(f"{name}: {problems}" for name, problems in found.items())
