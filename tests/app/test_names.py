"""Invisible names: one rule for every name people give (their own, their family
members'), on the pages and in the API alike.

A name needs at least one visible character. Format characters (zero-width space, word
joiner, LRM/RLM, invisible operators U+2061-2064, BOM) and blank fillers (the Hangul
fillers U+115F, U+1160, U+3164, U+FFA0, the blank Braille pattern) are taken out; the
zero-width joiner and non-joiner stay where scripts and emoji need them, between two
characters. Controls, bidi overrides and isolates, < and > are refused as before.
"""

from __future__ import annotations

import html as html_lib
import re

import pytest
from sqlalchemy import select

from tests.helpers import PASSWORD, AuthActions, csrf_token
from tests.mail_helpers import verify_via_outbox
from webapp.database.schema import accounts, cards
from webapp.extensions import db
from webapp.names import INVISIBLE_MESSAGE, clean_name

API = "/api/v1"

# Nothing visible: refused on every path.
INVISIBLE = [
    ("zwsp", "\u200b"),
    ("zwsp-many", "\u200b\u200b\u200b"),
    ("zwnj-zwj", "\u200c\u200d"),
    ("lrm-rlm", "\u200e\u200f"),
    ("word-joiner", "\u2060"),
    ("invisible-operators", "\u2061\u2062\u2063\u2064"),
    ("bom", "\ufeff"),
    ("hangul-filler", "\u3164"),
    ("hangul-choseong-filler", "\u115f"),
    ("hangul-jungseong-filler", "\u1160"),
    ("halfwidth-hangul-filler", "\uffa0"),
    ("braille-blank", "\u2800"),
    ("mongolian-vowel-separator", "\u180e"),
    ("soft-hyphen", "\u00ad"),
    ("combining-mark-alone", "\u0301"),
    ("filler-between-spaces", " \u3164 \u3164 "),
    ("mixed", "\u200b\u3164\ufeff\u2060\u200e"),
]
# Visible, with invisible characters to take out.
CLEANED = [
    ("trailing-zwsp", "Ana\u200b", "Ana"),
    ("leading-bom", "\ufeffAna", "Ana"),
    ("lrm-inside", "An\u200ea", "Ana"),
    ("word-joiner-inside", "Ana\u2060Silva", "AnaSilva"),
    ("filler-after", "Ana \u3164", "Ana"),
    ("filler-inside", "Ana\u3164Silva", "AnaSilva"),
    ("invisible-times", "Tom\u2062", "Tom"),
    ("joiner-at-the-edges", "\u200dAna\u200c", "Ana"),
]
# Scripts and emoji that need the joiners: kept as typed.
KEPT = [
    ("persian-zwnj", "می\u200cخواهم"),
    ("devanagari-zwj", "क्\u200dष"),
    ("emoji-family", "👩\u200d👩\u200d👧 Silva"),
    ("malayalam-chillu", "ന്\u200d"),
    ("arabic", "محمد علي"),
]


# --- The rule itself ----------------------------------------------------------------


@pytest.mark.parametrize("value", [v for _, v in INVISIBLE], ids=[i for i, _ in INVISIBLE])
def test_a_name_with_nothing_visible_is_refused(value):
    with pytest.raises(ValueError, match="visible"):
        clean_name(value)


@pytest.mark.parametrize(("value", "cleaned"), [(v, c) for _, v, c in CLEANED],
                         ids=[i for i, _, _ in CLEANED])
def test_invisible_characters_are_taken_out(value, cleaned):
    assert clean_name(value) == cleaned


@pytest.mark.parametrize("value", [v for _, v in KEPT], ids=[i for i, _ in KEPT])
def test_joiners_that_scripts_need_are_kept(value):
    assert clean_name(value) == value


@pytest.mark.parametrize("value", ["Ana\u202eoB", "Ana\u2066x\u2069", "Ana\x00", "Ana\n",
                                   "<b>", "Ana\u2028", "\ufffd"])
def test_controls_overrides_and_markup_are_refused(value):
    with pytest.raises(ValueError, match="without < or >"):
        clean_name(value)


def test_no_format_character_survives():
    """Every format character (Unicode Cf) is taken out, except the two joiners between
    characters (and emoji tag sequences, which only exist after a flag)."""
    import sys
    import unicodedata

    for code in range(sys.maxunicode + 1):
        char = chr(code)
        if unicodedata.category(char) != "Cf" or char in "\u200c\u200d":
            continue
        try:
            cleaned = clean_name(f"A{char}B")
        except ValueError:
            continue  # refused outright (bidi controls)
        assert cleaned == "AB", f"U+{code:04X} survived"


# --- Pages and API: the same rule ---------------------------------------------------


def _field_error(html: str, field: str) -> str:
    match = re.search(rf'<p class="error" id="{re.escape(field)}-error">([^<]*)</p>', html)
    assert match, f"no error shown on {field}"
    return html_lib.unescape(match.group(1))


def _register_page(client, name: str, email: str = "ana@example.com"):
    page = client.get("/register").get_data(as_text=True)
    return client.post("/register", data={
        "csrf_token": csrf_token(page), "name": name, "email": email,
        "password": PASSWORD, "region": "ie"})


def _register_api(client, name: str, email: str = "ana@example.com"):
    return client.post(f"{API}/auth/register", json={
        "name": name, "email": email, "password": PASSWORD, "region": "ie"})


def _stored_names(app) -> list[tuple[str, str]]:
    def work(conn):
        return [tuple(row) for row in conn.execute(
            select(accounts.c.name, cards.c.display_name)
            .join(cards, cards.c.account_id == accounts.c.id).where(cards.c.slot == 0))]

    with app.app_context():
        return db.read(work, name="test", causal=True)


@pytest.mark.parametrize("value", [v for _, v in INVISIBLE[::2]],
                         ids=[i for i, _ in INVISIBLE[::2]])
def test_register_page_refuses_an_invisible_name(app, client, value):
    response = _register_page(client, value)
    assert response.status_code == 422
    assert _field_error(response.get_data(as_text=True), "name") == INVISIBLE_MESSAGE
    assert _stored_names(app) == []


@pytest.mark.parametrize("value", [v for _, v in INVISIBLE[::2]],
                         ids=[i for i, _ in INVISIBLE[::2]])
def test_register_api_refuses_an_invisible_name(app, client, value):
    response = _register_api(client, value)
    assert response.status_code == 422
    assert response.get_json()["errors"]["name"] == [INVISIBLE_MESSAGE]
    assert _stored_names(app) == []


@pytest.mark.parametrize(("value", "cleaned"), [(v, c) for _, v, c in CLEANED[:4]],
                         ids=[i for i, _, _ in CLEANED[:4]])
def test_page_and_api_store_the_same_cleaned_name(app, client, value, cleaned):
    assert _register_page(client, value, "page@example.com").status_code == 302
    assert _register_api(app.test_client(), value, "api@example.com").status_code == 202
    assert _stored_names(app) == [(cleaned, cleaned), (cleaned, cleaned)]


@pytest.fixture
def signed_in(client):
    # Registered and verified by the mailed link, which signs the browser in.
    assert AuthActions(client).register(name="Ana Silva").status_code == 302
    return client


@pytest.mark.parametrize("value", ["\u3164", "\u200b\u200b", "\ufeff\u2060"])
def test_family_page_refuses_an_invisible_member(app, signed_in, value):
    token = csrf_token(signed_in.get("/family").get_data(as_text=True))
    response = signed_in.post("/family", data={"csrf_token": token, "name": value})
    assert response.status_code == 422
    assert _field_error(response.get_data(as_text=True), "name") == INVISIBLE_MESSAGE
    with app.app_context():
        assert db.read(lambda conn: conn.execute(select(cards).where(cards.c.slot > 0))
                       .first(), name="test", causal=True) is None


def test_family_page_rename_refuses_an_invisible_name(app, signed_in):
    token = csrf_token(signed_in.get("/family").get_data(as_text=True))
    assert signed_in.post("/family", data={"csrf_token": token, "name": "Tom"}
                          ).status_code == 302
    with app.app_context():
        tom = db.read(lambda conn: conn.execute(select(cards.c.id).where(cards.c.slot == 1))
                      .scalar(), name="test", causal=True)
    response = signed_in.post(f"/family/{tom}", data={"csrf_token": token,
                                                     f"m{tom}-name": "\u200b\u3164"})
    assert response.status_code == 422
    assert _field_error(response.get_data(as_text=True), f"m{tom}-name") == INVISIBLE_MESSAGE


def test_family_api_refuses_an_invisible_member_and_rename(app, client):
    assert _register_api(client, "Ana Silva").status_code == 202
    assert verify_via_outbox(app.test_client(), "ana@example.com").status_code == 302
    signed_in = client.post(f"{API}/auth/token", json={"email": "ana@example.com",
                                                       "password": PASSWORD})
    assert signed_in.status_code == 200, signed_in.get_data(as_text=True)
    token = signed_in.get_json()["access_token"]
    bearer = {"Authorization": f"Bearer {token}"}
    refused = client.post(f"{API}/family", json={"name": "\u3164"}, headers=bearer)
    assert refused.status_code == 422
    assert refused.get_json()["errors"]["name"] == [INVISIBLE_MESSAGE]
    kid = client.post(f"{API}/family", json={"name": "Kid\u200b"}, headers=bearer)
    assert kid.status_code == 201
    assert kid.get_json()["display_name"] == "Kid"
    renamed = client.patch(f"{API}/family/{kid.get_json()['id']}", json={"name": "\ufeff"},
                           headers=bearer)
    assert renamed.status_code == 422
    assert renamed.get_json()["errors"]["name"] == [INVISIBLE_MESSAGE]
