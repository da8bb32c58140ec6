"""The report charts in a real Chromium under the page's strict CSP: the pygal SVGs load
through <img> (their own response CSP allows pygal's inline <style>, nothing else), the
page reports no CSP violation, and each chart has its data table. A screenshot goes to
reports/charts.png (git-ignored) for the resolving note."""

from __future__ import annotations

from pathlib import Path

from playwright.sync_api import Page

from e2e.helpers import DEMO_PASSWORD

ROOT = Path(__file__).resolve().parent.parent


def test_report_charts_render_under_strict_csp(page: Page) -> None:
    violations: list[str] = []
    page.on("console", lambda m: violations.append(m.text)
            if "Content Security Policy" in m.text else None)
    page.goto("/login")
    page.fill("#email", "admin@example.com")
    page.fill("#password", DEMO_PASSWORD)
    page.get_by_role("button", name="Sign in").click()
    page.wait_for_load_state()
    page.goto("/admin/reports?grain=month")
    images = page.locator("figure.chart img")
    assert images.count() == 2
    for index in range(2):
        image = images.nth(index)
        image.scroll_into_view_if_needed()
        page.wait_for_function("img => img.complete", arg=image.element_handle())
        assert image.evaluate("img => img.naturalWidth") > 0
    assert page.get_by_role("table", name="Totals per month").count() == 1
    assert page.locator("text=Outstanding coins (liability)").count() == 1
    assert violations == []
    # Opened on its own (a top-level SVG document, where its response's CSP applies),
    # the chart keeps pygal's styles: the background is white, not the default black.
    page.goto("/admin/reports/flows.svg?grain=month")
    fill = page.evaluate("getComputedStyle(document.querySelector('rect.background')).fill")
    assert fill == "rgb(255, 255, 255)", fill
    page.goto("/admin/reports?grain=month")
    (ROOT / "reports").mkdir(exist_ok=True)
    page.screenshot(path=str(ROOT / "reports" / "charts.png"), full_page=True)
