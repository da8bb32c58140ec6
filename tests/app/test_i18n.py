"""Local time, money and language on the real pages (SQLite and the Galera lab).

The card page in Hindi and in Indian English: lakh grouping (10,01,543 coins,
₹1,23,456.00), a Bengaluru purchase at its store's time with IST, a New York one with
EST; the same page for the US. The language comes from Accept-Language or the setting on
the page (a cookie); the till formats in its store's locale whatever the browser says.
"""

from __future__ import annotations

import re
from datetime import datetime, timedelta

import pytest
from sqlalchemy import select

from tests.helpers import PASSWORD, AuthActions, Clock, csrf_token
from webapp.card.queries import active_cards
from webapp.database.schema import accounts
from webapp.extensions import db
from webapp.ledger import services as ledger
from webapp.staff import create_staff

# 09:30 UTC is 15:00 in Bengaluru (IST, +5:30) and 04:30 in New York (EST, -5).
BOOKED = datetime(2026, 1, 12, 9, 30)
NNBSP = "\u202f"  # CLDR's English puts a narrow no-break space before AM/PM


@pytest.fixture
def clock(monkeypatch):
    return Clock.install(monkeypatch, BOOKED)


@pytest.fixture
def card(app, client, clock):
    """A signed-in holder with a ₹1,23,456.00 purchase in Bengaluru and a $1,000,000.00
    one in New York: 1,543 + 1,000,000 coins."""
    AuthActions(client).register(email="asha@example.com", name="Asha Rao", region="in")
    with app.app_context():
        account_id = db.read(lambda conn: conn.execute(
            select(accounts.c.id).where(accounts.c.email == "asha@example.com")).scalar(),
            name="test.account")
        number = db.read(lambda conn: active_cards(conn, account_id)[0]["number"],
                         name="test.card")
        ledger.earn(card=number, store_code="IN-BLR-01", amount_minor=12_345_600,
                    currency="INR", idempotency_key="blr-1", staff_id=None)
        ledger.earn(card=number, store_code="US-NYC-01", amount_minor=100_000_000,
                    currency="USD", idempotency_key="nyc-1", staff_id=None)
    return number


def page(client, path: str = "/card", **headers: str) -> str:
    response = client.get(path, headers=headers)
    assert response.status_code == 200, response.status_code
    return response.get_data(as_text=True)


def history(html: str) -> list[tuple[str, str, str]]:
    """(coins, what, when) of each history line, newest first."""
    return [(coins, " ".join(what.split()), when) for coins, what, when in re.findall(
        r'<span class="tx-coins">([^<]+)</span>\s*<span class="tx-what">([^<]+)</span>\s*'
        r'<time datetime="[^"]+">([^<]+)</time>', html)]


def balance(html: str) -> str:
    match = re.search(r'<p class="balance"><strong id="balance">([^<]+)</strong> ([^<]+)<', html)
    assert match
    return f"{match.group(1)} {match.group(2).strip()}"


def test_card_page_in_hindi(card, client):
    html = page(client, **{"Accept-Language": "hi-IN,hi;q=0.9,en;q=0.5"})
    assert '<html lang="hi-IN">' in html
    assert balance(html) == "10,01,543 सिक्के"
    assert "हाल की गतिविधि" in html  # Recent activity
    assert history(html) == [
        ("+10,00,000", "कमाए · Asha Rao · New York, 5th Avenue · $10,00,000.00",
         "12 जन॰, 4:30 am EST"),
        ("+1,543", "कमाए · Asha Rao · Bengaluru, MG Road · ₹1,23,456.00",
         "12 जन॰, 3:00 pm IST"),
    ]
    assert "Recent activity" not in html
    assert "बैलेंस ताज़ा करें" in html  # the no-JS refresh link


def test_card_page_in_indian_english(card, client):
    html = page(client, **{"Accept-Language": "en-IN"})
    assert '<html lang="en-IN">' in html
    assert balance(html) == "10,01,543 coins"
    assert history(html) == [
        ("+10,00,000", "Earn · Asha Rao · New York, 5th Avenue · $10,00,000.00",
         f"12 Jan, 4:30{NNBSP}AM EST"),
        ("+1,543", "Earn · Asha Rao · Bengaluru, MG Road · ₹1,23,456.00",
         f"12 Jan, 3:00{NNBSP}PM IST"),
    ]


def test_card_page_in_us_english_by_default(card, client):
    for html in (page(client), page(client, **{"Accept-Language": "fr-FR"})):
        assert '<html lang="en-US">' in html
        assert balance(html) == "1,001,543 coins"
        assert history(html)[1] == (
            "+1,543", "Earn · Asha Rao · Bengaluru, MG Road · ₹123,456.00",
            f"Jan 12, 3:00{NNBSP}PM IST")  # still the store's time: IST


def test_the_htmx_refresh_keeps_the_language(card, client):
    html = page(client, "/card?fresh=1", **{"Accept-Language": "hi", "HX-Request": "true"})
    assert html.lstrip().startswith('<section id="wallet"')
    assert balance(html) == "10,01,543 सिक्के"


def test_the_setting_on_the_card_page_wins_over_the_browser(card, client):
    html = page(client, **{"Accept-Language": "en-US"})
    assert '<select id="locale" name="locale">' in html
    assert '<option value="hi_IN">हिन्दी (भारत)</option>' in html
    response = client.post("/language", data={
        "csrf_token": csrf_token(html), "locale": "hi_IN", "next": "/card"})
    assert (response.status_code, response.headers["Location"]) == (302, "/card")
    cookie = client.get_cookie("lang")
    assert cookie.value == "hi_IN"
    assert cookie.http_only
    html = page(client, **{"Accept-Language": "en-US"})
    assert balance(html) == "10,01,543 सिक्के"
    assert '<option selected value="hi_IN">' in html

    # An unknown locale changes nothing; an outside "next" goes to the card.
    response = client.post("/language", data={
        "csrf_token": csrf_token(html), "locale": "xx_XX", "next": "//evil.example/"})
    assert response.headers["Location"] == "/card"
    assert client.get_cookie("lang").value == "hi_IN"
    # Without the CSRF token it is refused.
    assert client.post("/language", data={"locale": "en_US"}).status_code == 400
    assert client.get_cookie("lang").value == "hi_IN"


def test_the_expiry_warning_in_hindi(card, client, clock):
    clock.set(BOOKED + timedelta(days=365 - 10))
    html = page(client, **{"Accept-Language": "hi"})
    notice = re.search(r'<p class="notice" id="expiry">([^<]*)</p>', html).group(1)
    # The holder's region is India: 12 Jan 2027, 15:00 IST.
    assert notice == ("आपके 10,01,543 सिक्के 12 जन॰ को समाप्त हो जाएँगे, "
                      "जब तक आप कमाते या भुनाते नहीं।")


def test_sign_in_register_and_family_pages_in_hindi(app, client):
    hindi = {"Accept-Language": "hi"}
    html = page(client, "/login", **hindi)
    assert "<h1>साइन इन करें</h1>" in html
    assert ">ईमेल</label>" in html
    html = page(client, "/register", **hindi)
    assert "<h1>अपना कार्ड बनाएँ</h1>" in html
    assert "संयुक्त राज्य अमेरिका" in html  # the region choices
    response = client.post("/register", headers=hindi, data={
        "csrf_token": csrf_token(html), "name": "<b>", "email": "", "password": "short",
        "region": "in"})
    assert response.status_code == 422
    errors = response.get_data(as_text=True)
    assert "यह फ़ील्ड ज़रूरी है।" in errors  # WTForms' own message, from our catalog
    assert "10 से 128 अक्षरों का उपयोग करें।" in errors
    assert "&lt; या &gt; के बिना" in errors  # escaped, like any text

    AuthActions(client).register(email="ravi@example.com", name="Ravi", region="in")
    html = page(client, "/family", **hindi)
    assert "<h1>परिवार</h1>" in html
    assert "सदस्य (4 में से 0)" in html


def test_the_till_formats_in_its_stores_locale(app, client, clock):
    with app.app_context():
        create_staff(email="priya@example.com", store_code="IN-BLR-01", name="Priya",
                     password=PASSWORD)
    customer = app.test_client()
    AuthActions(customer).register(email="dev@example.com", name="Dev", region="in")
    with app.app_context():
        number = db.read(lambda conn: active_cards(conn, conn.execute(
            select(accounts.c.id).where(accounts.c.email == "dev@example.com")).scalar()
        )[0]["number"], name="test.card")
    # A manager's sale, above a barista's cap: the number is what this test is about.
    app.config["MAX_PURCHASE"] = {**app.config["MAX_PURCHASE"], "INR": "200000.00"}
    AuthActions(client).login("priya@example.com")
    till = page(client, "/till", **{"Accept-Language": "en-US"})
    response = client.post("/till/lookup", headers={"Accept-Language": "en-US"},
                           data={"csrf_token": csrf_token(till), "card": number})
    html = response.get_data(as_text=True)
    assert "for example ₹12.50." in html
    key = re.search(r'id="earn-key" name="earn-key" type="hidden" value="([^"]+)"', html)
    response = client.post("/till/earn", headers={"Accept-Language": "en-US"}, data={
        "csrf_token": csrf_token(html), "earn-card": number, "earn-key": key.group(1),
        "earn-amount": "123456.00", "earn-store": "IN-BLR-01"})
    html = response.get_data(as_text=True)
    assert response.status_code == 200, html
    assert "Added 1,543 coins" in html
    assert "for a purchase of ₹1,23,456.00" in html
    assert '<strong id="receipt-balance">1,543</strong>' in html


def test_stores_get_a_time_zone_and_locale_from_the_cli(app, runner):
    listed = runner.invoke(args=["stores", "list"]).output
    assert re.search(r"IN-BLR-01\s+in INR 8000 minor units per coin  Asia/Kolkata en_IN", listed)
    assert "America/Los_Angeles en_US  Seattle, Pike Place" in listed

    made = runner.invoke(args=["stores", "create", "IN-MUM-01", "--name", "Mumbai",
                               "--region", "in", "--currency", "INR", "--minor-per-coin",
                               "8000"])
    assert made.exit_code == 0, made.output
    changed = runner.invoke(args=["stores", "set", "IE-DUB-01", "--timezone",
                                  "Europe/London", "--locale", "en_GB"])
    assert changed.output.strip() == "store IE-DUB-01 updated"
    bad_zone = runner.invoke(args=["stores", "set", "IE-DUB-01", "--timezone", "Mars/Base"])
    assert bad_zone.exit_code != 0
    assert "Unknown time zone 'Mars/Base'" in bad_zone.output
    bad_locale = runner.invoke(args=["stores", "create", "IE-COR-01", "--name", "Cork",
                                     "--region", "ie", "--currency", "EUR",
                                     "--minor-per-coin", "100", "--locale", "xx_YY"])
    assert bad_locale.exit_code != 0
    assert "Unknown locale 'xx_YY'" in bad_locale.output
    unknown = runner.invoke(args=["stores", "set", "NOPE-01", "--timezone", "UTC"])
    assert "no store with code NOPE-01" in unknown.output

    listed = runner.invoke(args=["stores", "list"]).output
    assert re.search(r"IN-MUM-01\s+in INR 8000 minor units per coin  Asia/Kolkata en_IN", listed)
    assert "Europe/London en_GB  Dublin" in listed
    assert "IE-COR-01" not in listed
