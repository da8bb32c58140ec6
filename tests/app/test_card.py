"""The card page (holder, QR that really decodes, shared balance, recent activity,
switching between family cards) and the installable app around it (manifest, service
worker, offline page)."""

from __future__ import annotations

import json
import re
import struct
import uuid

import pytest
from sqlalchemy import select

from tests.helpers import AuthActions, csrf_token, decode_qr_svg
from webapp.card.numbers import format_card_number, is_valid_card_number
from webapp.card.queries import active_cards
from webapp.database.schema import accounts, wallets
from webapp.extensions import db
from webapp.ledger import services as ledger


def _card_svg(html: str) -> str:
    match = re.search(r'<div class="qr qr-static"[^>]*>\s*(<svg.*?</svg>)', html, re.S)
    assert match, "the card page has no server-rendered QR"
    return match.group(1)


def _card_number(html: str) -> str:
    match = re.search(r'<span class="card-number">([\d ]+)</span>', html)
    assert match
    return match.group(1).replace(" ", "")


# --- Fixtures -------------------------------------------------------------------------


def _account(app, email):
    with app.app_context():
        account = db.read(lambda conn: conn.execute(
            select(accounts).where(accounts.c.email == email)).mappings().first(), name="t")
        cards = db.read(lambda conn: active_cards(conn, account["id"]), name="t")
        return dict(account), cards


def _balance(app, account_id):
    with app.app_context():
        return db.read(lambda conn: conn.execute(select(wallets.c.balance).where(
            wallets.c.account_id == account_id)).scalar(), name="t", causal=True)


def _earn(app, number, amount_minor=1000, store="IE-DUB-01", currency="EUR"):
    with app.app_context():
        return ledger.earn(card=number, store_code=store, amount_minor=amount_minor,
                           currency=currency, idempotency_key=uuid.uuid4().hex, staff_id=None)


@pytest.fixture
def family(app, client, auth):
    """Ana with Tom and Zoë on the family card."""
    auth.register(name="Ana Silva")
    for name in ("Tom", "Zoë"):
        page = client.get("/family").get_data(as_text=True)
        assert client.post("/family", data={"csrf_token": csrf_token(page),
                                            "name": name}).status_code == 302
    account, cards = _account(app, "ana@example.com")
    return {"client": client, "account": account, "holder": cards[0], "tom": cards[1],
            "zoe": cards[2]}


# --- The card page --------------------------------------------------------------------


def test_card_page_shows_the_holder_and_a_qr_that_decodes_to_the_number(family):
    response = family["client"].get("/card")
    assert response.status_code == 200
    html = response.get_data(as_text=True)
    holder = family["holder"]
    assert '<h1 id="card-holder">Ana Silva</h1>' in html
    assert is_valid_card_number(holder["number"])
    assert _card_number(html) == holder["number"]
    assert format_card_number(holder["number"]) in html
    assert decode_qr_svg(_card_svg(html)) == [holder["number"]]
    assert response.headers["Cache-Control"] == "no-store"


def test_balance_is_the_shared_wallet_and_history_is_newest_first(app, family):
    _earn(app, family["holder"]["number"], 1250)  # 12 coins
    _earn(app, family["tom"]["number"], 2375, store="US-NYC-01", currency="USD")  # 23
    with app.app_context():
        ledger.redeem(card=family["zoe"]["number"], store_code="IN-BLR-01", coins=5,
                      idempotency_key=uuid.uuid4().hex, staff_id=None, confirmed=True)
    wallet_balance = _balance(app, family["account"]["id"])
    assert wallet_balance == 30

    for card in ("holder", "tom", "zoe"):  # the same wallet on every family card
        html = family["client"].get(f"/card?card={family[card]['id']}").get_data(as_text=True)
        assert f'<strong id="balance">{wallet_balance}</strong>' in html
        lines = re.findall(
            r'<li class="tx tx-(\w+)"[^>]*>\s*<span class="tx-coins">([+-]\d+)</span>\s*'
            r'<span class="tx-what">([^<]+)</span>', html)
        assert [(kind, coins) for kind, coins, _ in lines] == [
            ("redeem", "-5"), ("earn", "+23"), ("earn", "+12")]
        assert "Zoë" in lines[0][2]
        assert "Bengaluru" in lines[0][2]
        assert "Tom" in lines[1][2]
        assert "New York" in lines[1][2]


def test_history_shows_the_last_ten(app, family):
    for amount in range(100, 1300, 100):  # 12 purchases: 1, 2, ... 12 coins
        _earn(app, family["holder"]["number"], amount)
    html = family["client"].get("/card").get_data(as_text=True)
    coins = re.findall(r'<span class="tx-coins">\+(\d+)</span>', html)
    assert coins == [str(n) for n in range(12, 2, -1)]
    assert f'<strong id="balance">{sum(range(1, 13))}</strong>' in html


def test_new_card_has_no_activity_yet(family):
    html = family["client"].get("/card").get_data(as_text=True)
    assert '<strong id="balance">0</strong>' in html
    assert "No activity yet." in html


def test_switch_card_shows_that_members_card_and_qr(family):
    client = family["client"]
    html = client.get("/card").get_data(as_text=True)
    for card in ("tom", "zoe"):  # the switcher links every family card
        assert f'href="/card?card={family[card]["id"]}"' in html

    tom = family["tom"]
    html = client.get(f"/card?card={tom['id']}").get_data(as_text=True)
    assert '<h1 id="card-holder">Tom</h1>' in html
    assert _card_number(html) == tom["number"]
    assert decode_qr_svg(_card_svg(html)) == [tom["number"]]
    assert f'href="/card?card={tom["id"]}" aria-current="true"' in html
    # The choice sticks: the installed app opens on the card shown last.
    html = client.get("/card").get_data(as_text=True)
    assert _card_number(html) == tom["number"]
    html = client.get(f"/card?card={family['holder']['id']}").get_data(as_text=True)
    assert _card_number(html) == family["holder"]["number"]


@pytest.mark.parametrize("choice", ["other-account", "removed", "abc", "-1", "1e3", "",
                                    "99999999999999999999999", "0x1", "١٢"])
def test_unknown_or_foreign_card_id_falls_back_to_own_card(app, family, choice):
    client = family["client"]
    if choice == "other-account":
        stranger = app.test_client()
        AuthActions(stranger).register(email="bob@example.com", name="Bob")
        choice = str(_account(app, "bob@example.com")[1][0]["id"])
    elif choice == "removed":
        zoe = family["zoe"]
        client.post(f"/family/{zoe['id']}/remove",
                    data={"csrf_token": csrf_token(client.get("/family").get_data(as_text=True))})
        choice = str(zoe["id"])
    response = client.get("/card", query_string={"card": choice})
    assert response.status_code == 200
    html = response.get_data(as_text=True)
    assert _card_number(html) == family["holder"]["number"]
    assert "Bob" not in html


def test_history_partial_for_htmx(app, family):
    _earn(app, family["holder"]["number"], 500)
    response = family["client"].get("/card?fresh=1", headers={"HX-Request": "true",
                                                               "HX-Target": "wallet"})
    html = response.get_data(as_text=True)
    assert html.lstrip().startswith('<section id="wallet"')
    assert "<html" not in html
    assert '<strong id="balance">5</strong>' in html


def test_history_partial_answers_304_until_the_wallet_changes(app, family):
    """The refresh is a conditional request: unchanged -> 304 with no body; an earn in
    between -> 200 with the new balance and a new ETag."""
    client = family["client"]
    partial = {"HX-Request": "true", "HX-Target": "wallet"}
    _earn(app, family["holder"]["number"], 500)
    first = client.get("/card?fresh=1", headers=partial)
    etag = first.headers.get("ETag")
    assert first.status_code == 200
    assert etag
    assert "HX-Request" in first.headers.get("Vary", "")
    again = client.get("/card?fresh=1", headers={**partial, "If-None-Match": etag})
    assert again.status_code == 304
    assert again.get_data() == b""
    _earn(app, family["holder"]["number"], 500)
    changed = client.get("/card?fresh=1", headers={**partial, "If-None-Match": etag})
    assert changed.status_code == 200
    assert changed.headers["ETag"] != etag
    assert '<strong id="balance">10</strong>' in changed.get_data(as_text=True)


def test_card_page_needs_sign_in(client):
    response = client.get("/card")
    assert response.status_code == 302
    assert response.headers["Location"].startswith("/login")


# --- The installable app --------------------------------------------------------------


def _png_size(data: bytes) -> tuple[int, int]:
    assert data[:8] == b"\x89PNG\r\n\x1a\n", "not a PNG"
    assert data[12:16] == b"IHDR"
    return struct.unpack(">II", data[16:24])


def test_manifest_makes_an_installable_app(client):
    response = client.get("/manifest.webmanifest")
    assert response.status_code == 200
    assert response.mimetype == "application/manifest+json"
    manifest = json.loads(response.get_data(as_text=True))
    response.close()
    assert manifest["name"]
    assert manifest["short_name"]
    assert len(manifest["short_name"]) <= 12  # fits under a home-screen icon
    assert manifest["display"] == "standalone"
    assert manifest["scope"] == "/"
    assert manifest["start_url"].startswith("/card")
    assert re.fullmatch(r"#[0-9a-fA-F]{6}", manifest["theme_color"])
    assert re.fullmatch(r"#[0-9a-fA-F]{6}", manifest["background_color"])
    login = client.get("/login").get_data(as_text=True)
    assert f'<meta name="theme-color" content="{manifest["theme_color"]}">' in login
    assert '<link rel="manifest" href="/manifest.webmanifest">' in login

    found = set()
    for icon in manifest["icons"]:
        with client.get(icon["src"]) as image:
            assert image.status_code == 200, icon["src"]
            assert image.mimetype == icon["type"] == "image/png"
            width, height = _png_size(image.get_data())
        assert f"{width}x{height}" == icon["sizes"], icon["src"]
        for purpose in icon.get("purpose", "any").split():
            found.add((purpose, width))
    assert {("any", 192), ("any", 512), ("maskable", 512)} <= found


def test_service_worker_is_served_at_the_root_without_a_long_cache(client):
    with client.get("/sw.js") as response:
        assert response.status_code == 200
        assert response.mimetype in ("text/javascript", "application/javascript")
        cache = response.headers["Cache-Control"]
        assert "no-cache" in cache or "max-age=0" in cache or "no-store" in cache
        assert "immutable" not in cache
        assert response.headers.get("Service-Worker-Allowed", "/") == "/"
        body = response.get_data(as_text=True)
    assert 'addEventListener("fetch"' in body
    assert '"/offline"' in body  # the offline page is precached
    app_js = client.get("/static/js/app.js")
    assert 'register("/sw.js"' in app_js.get_data(as_text=True)
    app_js.close()


def test_offline_page(client):
    response = client.get("/offline")
    assert response.status_code == 200
    html = response.get_data(as_text=True)
    assert "You're offline" in html
    assert 'href="/card"' in html
