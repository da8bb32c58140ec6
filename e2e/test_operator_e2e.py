"""The programme as a new operator runs it, in a real Chromium, by clicks on labelled controls.

The global admin opens a store in India with its rate and a reward there, and a barista
for it (a one-time temporary password); the barista signs in in their own browser, is
made to choose a password, scans the demo customer's live card code (read off the
customer's screen, typed into the till's scan field as a scanner would), books a
purchase and redeems the reward with one tap. The customer's card shows the redemption
by the reward's name and the progress to the next reward; the admin finds it in the
report, its chart and the audit log; a support adjustment's customer-facing label shows
in the customer's history; the reward, retired, is no longer offered at the till.

The reward's price is set from the customer's balance (the session's other tests move
it), so that the redemption leaves exactly 25 coins: with the demo catalogue of the
customer's home region (Scone 20, Coffee 30) the card must then read "5 coins to Coffee".
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from playwright.sync_api import Browser, BrowserContext, Page, expect

from e2e.helpers import DEMO_PASSWORD, scan_qr, watch_console

ROOT = Path(__file__).resolve().parent.parent
SCREENSHOT = ROOT / "reports" / "console-reports.png"
PHONE = {"viewport": {"width": 390, "height": 844}, "device_scale_factor": 1}
DESKTOP = {"viewport": {"width": 1280, "height": 900}}
STORE = "IN-DEL-01"
STORE_NAME = "Delhi, Connaught Place"
ZONE = "Asia/Kolkata"
REWARD = "Masala dosa"
BARISTA = ("Asha (barista)", "asha.delhi@example.com")
LEFT_AFTER_REDEMPTION = 25  # then the next reward (Coffee, 30) is 5 coins away
EARNED = 10  # INR 500.00 at the new store's rate of INR 50.00 a coin


@pytest.fixture
def contexts(browser: Browser, base_url: str) -> Iterator[dict[str, BrowserContext]]:
    """One browser context (own cookies) per person: admin, barista, customer."""
    opened = {
        "admin": browser.new_context(base_url=base_url, **DESKTOP),
        "barista": browser.new_context(base_url=base_url, viewport={"width": 800,
                                                                     "height": 1280}),
        "customer": browser.new_context(base_url=base_url, **PHONE),
    }
    yield opened
    for context in opened.values():
        context.close()


def sign_in(page: Page, email: str, password: str) -> None:
    page.goto("/login")
    page.get_by_label("Email").fill(email)
    page.get_by_label("Password").fill(password)
    page.get_by_role("button", name="Sign in").click()
    page.wait_for_url(lambda url: not url.endswith("/login"))


def console_link(page: Page, name: str) -> None:
    page.get_by_role("navigation", name="Console").get_by_role("link", name=name).click()


def cells(row) -> list[str]:
    return [text.strip() for text in row.locator("th, td").all_inner_texts()]


def todays_totals(page: Page) -> list[str]:
    """Today's row of the report's "Totals per day" table, or zeros. A total is the sum
    of the stores' local days: the new store's bookings count on Kolkata's today."""
    today = datetime.now(ZoneInfo(ZONE)).date().isoformat()
    table = page.get_by_role("table", name="Totals per day")
    row = table.get_by_role("row").filter(has=page.get_by_role("rowheader", name=today))
    return cells(row) if row.count() else [today] + ["0"] * 9


def test_new_operator_runs_the_programme_end_to_end(contexts) -> None:
    admin = contexts["admin"].new_page()
    barista = contexts["barista"].new_page()
    customer = contexts["customer"].new_page()
    errors = {name: watch_console(page) for name, page in
              (("admin", admin), ("barista", barista), ("customer", customer))}

    # The customer opens their card: the balance the reward's price is set from.
    sign_in(customer, "demo@example.com", DEMO_PASSWORD)
    expect(customer).to_have_url(re.compile(r"/card$"))
    start_balance = int(customer.locator("#balance").inner_text())
    price = start_balance + EARNED - LEFT_AFTER_REDEMPTION
    assert price > 0, f"the demo customer has {start_balance} coins"

    # The admin: the console, the report as it is before anything happens.
    sign_in(admin, "admin@example.com", DEMO_PASSWORD)
    expect(admin).to_have_url(re.compile(r"/admin$"))
    console_link(admin, "Reports")
    before = todays_totals(admin)

    # A store in India with its rate and its time zone.
    console_link(admin, "Stores")
    admin.get_by_label("Code").fill(STORE)
    admin.get_by_label("Name").fill(STORE_NAME)
    admin.get_by_label("Region").fill("in")
    admin.get_by_label("Currency").fill("INR")
    admin.get_by_label("Money per coin (minor units)").fill("5000")
    admin.get_by_label(re.compile(r"time ?zone", re.IGNORECASE)).fill(ZONE)
    admin.get_by_role("button", name="Create store").click()
    expect(admin.get_by_role("status")).to_have_text(f"Store {STORE} created.")
    stores = admin.get_by_role("table", name="Stores in your scope")
    expect(stores.get_by_role("row", name=re.compile(STORE))).to_contain_text(
        "5000 minor INR / coin")

    # A reward in region "in".
    console_link(admin, "Rewards")
    admin.get_by_label("Region").fill("in")
    admin.get_by_label("Name").fill(REWARD)
    admin.get_by_label("Coin cost").fill(str(price))
    admin.get_by_label("Sort order").fill("3")
    admin.get_by_role("button", name="Add reward").click()
    expect(admin.get_by_role("status")).to_have_text("Saved.")
    expect(admin.get_by_role("table", name="Rewards per region").get_by_role(
        "row", name=re.compile(REWARD))).to_contain_text(str(price))

    # A barista for the store, with a temporary password shown once.
    console_link(admin, "Staff")
    admin.get_by_label("Name", exact=True).fill(BARISTA[0])
    admin.get_by_label("Email").fill(BARISTA[1])
    admin.get_by_label("Role", exact=True).select_option(label="barista")
    admin.get_by_label("Store", exact=True).select_option(STORE)
    admin.get_by_role("button", name="Create with a temporary password").click()
    shown = admin.get_by_role("status").filter(has_text="Temporary password")
    expect(shown).to_contain_text(BARISTA[1])
    temporary = shown.locator("code").inner_text()
    assert len(temporary) >= 12
    expect(admin.get_by_role("row", name=re.compile(re.escape(BARISTA[1])))).to_contain_text(
        "temporary password")

    # The barista signs in on their own device and must choose a password first.
    sign_in(barista, BARISTA[1], temporary)
    expect(barista).to_have_url(re.compile(r"/admin/password$"))
    barista.goto("/till")  # not before the password is changed
    expect(barista).to_have_url(re.compile(r"/admin/password$"))
    barista.get_by_label("Temporary password").fill(temporary)
    barista.get_by_label("New password").fill("asha-own-password-7")
    barista.get_by_role("button", name="Change password").click()
    barista.goto("/till")
    expect(barista).to_have_url(re.compile(r"/till$"))
    expect(barista.get_by_role("heading", level=1)).to_have_text(f"Till {STORE_NAME} · INR")

    # The customer's live code, read off their screen, goes into the till's scan field.
    live_code = scan_qr(customer)
    assert live_code.startswith("LC1.")
    barista.get_by_label("Card number").fill(live_code)
    barista.get_by_role("button", name="Find card").click()
    found = barista.locator("#customer")
    expect(found.get_by_role("heading", level=2)).to_have_text("Dana")
    expect(found).to_contain_text("live code")

    # A purchase first (the new store's rate), then the reward with one tap.
    barista.get_by_label("Purchase amount").fill("500.00")
    barista.get_by_role("button", name="Add coins").click()
    expect(barista.locator("#receipt")).to_contain_text(f"Added {EARNED} coins")
    rewards = barista.get_by_role("group", name="Rewards (one tap)")
    rewards.get_by_role("button", name=f"{REWARD} · {price} coins").click()
    receipt = barista.locator("#receipt")
    expect(receipt).to_contain_text(f"Redeemed {price} coins")
    expect(barista.locator("#receipt-balance")).to_have_text(str(LEFT_AFTER_REDEMPTION))

    # The customer's card: the redemption by the reward's name, the new progress.
    customer.reload()
    expect(customer.locator("#balance")).to_have_text(str(LEFT_AFTER_REDEMPTION))
    newest = customer.locator("#wallet li.tx").first
    expect(newest).to_contain_text(f"-{price}")
    expect(newest).to_contain_text(REWARD)
    expect(newest).to_contain_text(STORE_NAME)
    expect(newest.locator("time")).to_contain_text("IST")  # the store's region's time zone
    expect(customer.locator("#next-reward-text")).to_have_text("5 coins to Coffee")
    progress = customer.get_by_label("5 coins to Coffee")
    expect(progress).to_have_attribute("value", str(LEFT_AFTER_REDEMPTION))
    expect(progress).to_have_attribute("max", "30")

    # The report: today's totals moved by exactly this, the new store has its own row.
    console_link(admin, "Reports")
    after = todays_totals(admin)
    issued, redeemed = 1, 2
    assert int(after[issued]) == int(before[issued]) + EARNED, (before, after)
    assert int(after[redeemed]) == int(before[redeemed]) + price, (before, after)
    per_store = admin.get_by_role("table", name="Per region and store")
    store_row = per_store.get_by_role("row").filter(has_text=STORE)
    assert cells(store_row)[1:6] == ["IN", STORE, ZONE, str(EARNED), str(price)], \
        cells(store_row)

    # The chart: pygal's SVG, loaded under the page's CSP, with bars drawn from data.
    chart = admin.get_by_role("img", name=re.compile(r"^Bar chart of coins issued"))
    chart.scroll_into_view_if_needed()
    expect(chart).to_have_js_property("complete", True)
    assert chart.evaluate("img => img.naturalWidth") > 0
    SCREENSHOT.parent.mkdir(exist_ok=True)
    admin.screenshot(path=str(SCREENSHOT), full_page=True)
    print(f"\nconsole reports screenshot: {SCREENSHOT}")
    chart_url = chart.get_attribute("src")
    svg_page = contexts["admin"].new_page()
    svg_page.goto(chart_url)
    bars = svg_page.locator("g.series rect.rect")
    assert bars.count() > 0, "the chart has no bars"
    # Its bars carry today's figures from the table, which this redemption moved.
    values = svg_page.locator("g.series desc.value").all_text_contents()
    assert after[issued] in values, (after, values)
    assert after[redeemed] in values, (after, values)
    svg_page.close()

    # The audit log: the barista's redemption, at the new store.
    console_link(admin, "Audit log")
    admin.get_by_label("Kind").select_option("redeem")
    admin.get_by_role("button", name="Filter").click()
    admin.wait_for_url(re.compile(r"action=redeem"))
    entry = admin.get_by_role("row").filter(has_text=BARISTA[0]).first
    expect(entry).to_contain_text(STORE)
    expect(entry).to_contain_text("redeem")
    expect(entry).to_contain_text("barista")

    # Support: an adjustment with a reason and the label the customer reads.
    console_link(admin, "Support")
    admin.get_by_label("Email, card number or name").fill("demo@example.com")
    admin.get_by_role("button", name="Search").click()
    admin.get_by_role("link", name=re.compile(r"Dana Demo")).click()
    admin.get_by_label("Coins (+ to add, - to take away)").fill("7")
    admin.get_by_label("Reason (staff only)").fill("Dosa served cold, goodwill")
    admin.get_by_label("What the customer sees in their history").fill("Sorry about your dosa")
    admin.get_by_role("button", name="Adjust").click()
    expect(admin.get_by_role("status")).to_have_text("Adjusted.")
    history = admin.get_by_role("table", name="History (newest first)")
    expect(history.get_by_role("row").nth(1)).to_contain_text(
        "Dosa served cold, goodwill / “Sorry about your dosa”")

    customer.reload()
    expect(customer.locator("#balance")).to_have_text(str(LEFT_AFTER_REDEMPTION + 7))
    newest = customer.locator("#wallet li.tx").first
    expect(newest).to_contain_text("+7")
    expect(newest).to_contain_text("Sorry about your dosa")
    assert "goodwill" not in customer.locator("#wallet").inner_text()  # staff-only reason

    # The reward is retired: the till stops offering it at the next scan.
    console_link(admin, "Rewards")
    admin.get_by_role("link", name=REWARD).click()
    admin.get_by_label("Offered at the till").select_option(label="no")
    admin.get_by_role("button", name="Save").click()
    expect(admin.get_by_role("status")).to_have_text("Saved.")
    expect(admin.get_by_role("row", name=re.compile(REWARD))).to_contain_text("no")
    barista.get_by_role("link", name="Next customer").click()
    barista.get_by_label("Card number").fill(scan_qr(customer))
    barista.get_by_role("button", name="Find card").click()
    offered = barista.get_by_role("group", name="Rewards (one tap)")
    expect(offered.get_by_role("button", name=re.compile(r"^Chai"))).to_be_visible()
    expect(offered.get_by_role("button", name=re.compile(REWARD))).to_have_count(0)

    for name, found_errors in errors.items():
        assert found_errors == [], (name, found_errors)
