"""The console's htmx partials in a real Chromium under the strict CSP: the support
search, the reports' period switch (and its error), the audit filter and a store edit
update their part of the page in place (the document is the same one: a marker set on
it survives), push the URL for searches and filters, and log no script error or CSP
refusal."""

from __future__ import annotations

import re

from playwright.sync_api import Page

from e2e.helpers import DEMO_PASSWORD, watch_console

MARK = "window.__samePage = true"
SAME = "window.__samePage === true"


def _sign_in_admin(page: Page) -> None:
    page.goto("/login")
    page.fill("#email", "admin@example.com")
    page.fill("#password", DEMO_PASSWORD)
    page.get_by_role("button", name="Sign in").click()
    page.wait_for_load_state()


def test_console_parts_update_in_place(page: Page) -> None:
    errors = watch_console(page)
    _sign_in_admin(page)

    page.goto("/admin/support")
    page.evaluate(MARK)
    page.fill("#f-q", "demo@example.com")
    page.get_by_role("button", name="Search").click()
    page.locator("#support-results li a").first.wait_for()
    assert page.evaluate(SAME)
    assert "q=demo%40example.com" in page.url
    page.locator("#support-results li a").first.click()  # a link: a page of its own
    page.wait_for_url(re.compile(r"/admin/support/\d+$"))

    page.goto("/admin/reports")
    page.evaluate(MARK)
    page.select_option("#f-grain", "month")
    page.get_by_role("button", name="Show").click()
    page.get_by_role("heading", name="Coins per month").wait_for()
    assert page.evaluate(SAME)
    assert "grain=month" in page.url
    page.fill("#f-since", "2026-02-01")
    page.fill("#f-until", "2026-01-01")
    page.get_by_role("button", name="Show").click()
    page.get_by_text("The first day must not be after the last.").wait_for()  # a 422
    assert page.evaluate(SAME)

    page.goto("/admin/audit")
    page.evaluate(MARK)
    page.select_option("#f-action", "support.open")
    page.get_by_role("button", name="Filter").click()
    page.wait_for_url(re.compile(r"/admin/audit\?.*action=support\.open"))
    assert page.locator("#audit-entries tbody tr").count() >= 1  # the record opened above
    assert page.evaluate(SAME)

    page.goto("/admin/stores")
    page.get_by_role("link", name="US-SEA-01").click()
    page.wait_for_load_state()
    page.evaluate(MARK)
    version = page.locator("input[name=version]").input_value()
    page.get_by_role("button", name="Save").click()
    page.locator("#store-edit .notice", has_text="Saved.").wait_for()
    assert page.locator("input[name=version]").input_value() == str(int(version) + 1)
    assert page.evaluate(SAME)
    assert errors == []
