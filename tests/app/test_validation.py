"""Bad input on every form gets a clear message on the field (422) and changes nothing;
unusual but real input (accents, emoji, scripts written right to left, apostrophes) is
kept exactly as typed and rendered inert."""

from __future__ import annotations

import html as html_lib
import io
import re

import pytest
from sqlalchemy import func, select

from tests.helpers import PASSWORD, csrf_token
from tests.mail_helpers import verify_via_outbox
from webapp.database.schema import accounts, cards, metadata
from webapp.extensions import db

HTMX = {"HX-Request": "true", "HX-Target": "family"}

NAME_PATTERN_ERROR = "Use letters, numbers and spaces, without < or >."
REQUIRED = "This field is required."
TOO_LONG_60 = "Field cannot be longer than 60 characters."

# (id, value, expected error) for any name field: the holder's and a family member's.
BAD_NAMES = [
    ("empty", "", REQUIRED),
    ("only-spaces", "   ", REQUIRED),
    ("only-tabs-newlines", "\t\n\r", REQUIRED),
    ("too-long", "A" * 61, TOO_LONG_60),
    ("too-long-emoji", "😀" * 61, TOO_LONG_60),
    ("html-script", "<script>alert(1)</script>", NAME_PATTERN_ERROR),
    ("html-img", "<img src=x onerror=alert(1)>", NAME_PATTERN_ERROR),
    ("nul", "Ana\x00Silva", NAME_PATTERN_ERROR),
    ("bell", "Ana\x07", NAME_PATTERN_ERROR),
    ("ansi-escape", "\x1b[31mAna", NAME_PATTERN_ERROR),
    ("newline-inside", "Ana\nSilva", NAME_PATTERN_ERROR),
    ("tab-inside", "Ana\tSilva", NAME_PATTERN_ERROR),
    ("delete", "Ana\x7f", NAME_PATTERN_ERROR),
    ("c1-control", "Ana\x85Silva", NAME_PATTERN_ERROR),
    ("line-separator", "Ana\u2028Silva", NAME_PATTERN_ERROR),
    ("rtl-override", "Ana\u202eavlis", NAME_PATTERN_ERROR),
    ("rtl-isolate", "Ana\u2067Silva\u2069", NAME_PATTERN_ERROR),
    ("broken-utf8", "\ufffd\ufffd", NAME_PATTERN_ERROR),
]

# Real names and harmless oddities: stored exactly (trimmed) and shown escaped.
GOOD_NAMES = [
    ("accents", "Zoë Ní Bhriain", "Zoë Ní Bhriain"),
    ("cjk", "李小龙", "李小龙"),
    ("arabic-rtl", "محمد علي", "محمد علي"),
    ("hebrew-rtl", "דנה כהן", "דנה כהן"),
    ("devanagari", "प्रिया शर्मा", "प्रिया शर्मा"),
    ("emoji", "Ana 😀", "Ana 😀"),
    ("emoji-zwj", "👩‍👩‍👧 Silva", "👩‍👩‍👧 Silva"),
    ("exactly-60-emoji", "😀" * 60, "😀" * 60),
    ("apostrophe", "Seán O'Brien", "Seán O'Brien"),
    ("quotes-in-attribute", "\" autofocus onfocus=\"alert(1)", "\" autofocus onfocus=\"alert(1)"),
    ("sql", "Robert'); DROP TABLE cards;--", "Robert'); DROP TABLE cards;--"),
    ("sql-or", "' OR '1'='1", "' OR '1'='1"),
    ("jinja", "{{ config }}{% raw %}", "{{ config }}{% raw %}"),
    ("spaces-trimmed", "  Ana Silva  ", "Ana Silva"),
]


def _counts(app) -> dict[str, int]:
    def work(conn):
        return {table.name: conn.execute(select(func.count()).select_from(table)).scalar()
                for table in metadata.sorted_tables}

    with app.app_context():
        return db.read(work, name="test.counts", causal=True)


def _field_error(html: str, field: str) -> str:
    match = re.search(rf'<p class="error" id="{re.escape(field)}-error">([^<]*)</p>', html)
    assert match, f"no error shown on {field}"
    return html_lib.unescape(match.group(1))


def _register(client, **fields):
    page = client.get("/register").get_data(as_text=True)
    data = {"csrf_token": csrf_token(page), "name": "Ana Silva", "email": "ana@example.com",
            "password": PASSWORD, "region": "ie", **fields}
    return client.post("/register", data={k: v for k, v in data.items() if v is not None})


# --- Register -------------------------------------------------------------------------


@pytest.mark.parametrize(("value", "message"), [(v, m) for _, v, m in BAD_NAMES],
                         ids=[i for i, _, _ in BAD_NAMES])
def test_register_rejects_bad_names(app, client, value, message):
    before = _counts(app)
    response = _register(client, name=value)
    assert response.status_code == 422
    if message == TOO_LONG_60:
        message = "Field must be between 1 and 60 characters long."
    assert _field_error(response.get_data(as_text=True), "name") == message
    assert _counts(app) == before
    assert client.get_cookie("access_token") is None


BAD_REGISTRATIONS = [
    ("email-empty", "email", "", "email", REQUIRED),
    ("email-no-at", "email", "not-an-email", "email", "Invalid email address."),
    ("email-sql", "email", "' OR '1'='1' --", "email", "Invalid email address."),
    ("email-sql-domain", "email", "ana@example.com'; DROP TABLE accounts;--", "email",
     "Invalid email address."),
    ("email-html", "email", "<script>@example.com", "email", "Invalid email address."),
    ("email-nul", "email", "ana@example.com\x00", "email", "Invalid email address."),
    ("email-rtl-override", "email", "ana@exa\u202emple.com", "email",
     "Invalid email address."),
    ("email-too-long", "email", "a" * 245 + "@example.com", "email",
     "Invalid email address. Field cannot be longer than 254 characters."),
    ("email-two-addresses", "email", "ana@example.com, eve@example.com", "email",
     "Invalid email address."),
    ("password-empty", "password", "", "password", REQUIRED),
    ("password-too-short", "password", "short-pw", "password", "Use 10 to 128 characters."),
    ("password-too-long", "password", "p" * 129, "password", "Use 10 to 128 characters."),
    ("password-emoji-too-short", "password", "😀" * 9, "password",
     "Use 10 to 128 characters."),
    ("region-empty", "region", "", None, "Choose your home region."),
    ("region-missing", "region", None, None, "Choose your home region."),
    ("region-unknown", "region", "eu", None, "Not a valid choice."),
    ("region-uppercase", "region", "US", None, "Not a valid choice."),
    ("region-sql", "region", "us' OR '1'='1", None, "Not a valid choice."),
    ("region-number", "region", "1", None, "Not a valid choice."),
]


@pytest.mark.parametrize(("field", "value", "error_id", "message"),
                         [case[1:] for case in BAD_REGISTRATIONS],
                         ids=[case[0] for case in BAD_REGISTRATIONS])
def test_register_rejects_bad_fields(app, client, field, value, error_id, message):
    before = _counts(app)
    response = _register(client, **{field: value})
    assert response.status_code == 422
    html = response.get_data(as_text=True)
    if error_id:
        assert _field_error(html, error_id) == message
    else:  # the region's radio group shows its error under the legend
        assert f'<p class="error">{html_lib.escape(message)}</p>' in html
    assert _counts(app) == before


def test_register_with_everything_wrong_lists_every_field(app, client):
    before = _counts(app)
    response = _register(client, name="", email="x", password="1", region="zz")
    html = response.get_data(as_text=True)
    assert response.status_code == 422
    assert _field_error(html, "name") == REQUIRED
    assert _field_error(html, "email") == "Invalid email address."
    assert _field_error(html, "password") == "Use 10 to 128 characters."
    assert '<p class="error">Not a valid choice.</p>' in html
    assert 'aria-invalid="true"' in html
    assert _counts(app) == before


@pytest.mark.parametrize(("value", "stored"), [(v, s) for _, v, s in GOOD_NAMES],
                         ids=[i for i, _, _ in GOOD_NAMES])
def test_register_keeps_unusual_real_names_exactly(app, client, value, stored):
    response = _register(client, name=value)
    assert response.status_code == 302
    verify_via_outbox(client, "ana@example.com")
    with app.app_context():
        account = db.read(lambda conn: conn.execute(select(accounts)).mappings().one(),
                          name="t")
        card = db.read(lambda conn: conn.execute(select(cards)).mappings().one(), name="t")
    assert account["name"] == card["display_name"] == stored
    page = client.get("/card").get_data(as_text=True)
    heading = re.search(r'<h1 id="card-holder">([^<]*)</h1>', page)
    assert heading
    assert html_lib.unescape(heading.group(1)) == stored
    assert "onfocus=\"alert" not in page
    assert "<script>alert" not in page
    assert {t.name for t in metadata.sorted_tables} <= set(_counts(app))  # tables intact


@pytest.mark.parametrize("email", ["zoë@example.com", "ana@exämple.com",
                                   "  Ana.Silva@Example.COM  ", "o'brien@example.ie"])
def test_register_accepts_real_emails(app, client, email):
    assert _register(client, email=email).status_code == 302
    with app.app_context():
        stored = db.read(lambda conn: conn.execute(select(accounts.c.email)).scalar(),
                         name="t")
    assert stored == email.strip().lower()


# --- Login ----------------------------------------------------------------------------


def _login(client, **fields):
    page = client.get("/login").get_data(as_text=True)
    data = {"csrf_token": csrf_token(page), "email": "ana@example.com",
            "password": PASSWORD, **fields}
    return client.post("/login", data={k: v for k, v in data.items() if v is not None})


@pytest.mark.parametrize(("field", "value", "message"), [
    ("email", "", REQUIRED),
    ("email", None, REQUIRED),
    ("email", "a" * 255, "Field cannot be longer than 254 characters."),
    ("password", "", REQUIRED),
    ("password", None, REQUIRED),
    ("password", "p" * 129, "Field cannot be longer than 128 characters."),
], ids=["email-empty", "email-missing", "email-too-long", "password-empty",
        "password-missing", "password-too-long"])
def test_login_rejects_malformed_fields(app, client, auth, field, value, message):
    auth.register()
    before = _counts(app)
    response = _login(app.test_client(), **{field: value})
    assert response.status_code == 422
    assert _field_error(response.get_data(as_text=True), field) == message
    assert _counts(app) == before


@pytest.mark.parametrize("email", [
    "' OR '1'='1' --", "ana@example.com' --", "ana@example.com\x00", "\u202eana@example.com",
    "ana@example.com<script>", "%", "_", "ANA@EXAMPLE.COM'; DROP TABLE accounts;--",
    # Equal to the registered address under MariaDB's accent-insensitive collation.
    "ána@example.com", "ana@exámple.com",
])
def test_login_injection_and_lookalike_emails_get_the_generic_answer(app, auth, email):
    """Even with the right password: only the address as registered signs in."""
    auth.register()
    before = _counts(app)
    client = app.test_client()
    response = _login(client, email=email)
    assert response.status_code == 401
    html = response.get_data(as_text=True)
    assert "Email or password is incorrect." in html
    assert client.get_cookie("access_token") is None
    assert _counts(app) == before


# --- Family: add and rename -----------------------------------------------------------


BAD_BIRTHDAYS = [
    ("not-a-date", "yesterday", "Not a valid date value."),
    ("impossible-date", "2020-02-30", "Not a valid date value."),
    ("other-format", "31/12/2010", "Not a valid date value."),
    ("sql", "2010-01-01'; DROP TABLE cards;--", "Not a valid date value."),
    ("emoji", "🎂", "Not a valid date value."),
    ("future", "2999-01-01", "A birthday can't be in the future."),
    ("too-old", "1899-12-31", "Enter a birthday after 1900."),
    ("year-zero", "0000-01-01", "Not a valid date value."),
]


@pytest.fixture
def signed_in(client, auth):
    auth.register()
    return client


def _add(client, *, htmx=False, **fields):
    token = csrf_token(client.get("/family").get_data(as_text=True))
    data = {"csrf_token": token, "name": "Tom", "birthday": "", **fields}
    return client.post("/family", data=data, headers=HTMX if htmx else {})


# Every bad name as a plain post; a few as htmx too (same form, same validators).
_FAMILY_NAME_CASES = [(v, m, False) for _, v, m in BAD_NAMES] + [
    (v, m, True) for i, v, m in BAD_NAMES if i in ("empty", "too-long", "html-script",
                                                  "rtl-override")]


@pytest.mark.parametrize(("value", "message", "htmx"), _FAMILY_NAME_CASES,
                         ids=[f"{i}-plain" for i, _, _ in BAD_NAMES] + [
                             "empty-htmx", "too-long-htmx", "html-script-htmx",
                             "rtl-override-htmx"])
def test_family_add_rejects_bad_names(app, signed_in, value, message, htmx):
    before = _counts(app)
    response = _add(signed_in, name=value, htmx=htmx)
    assert response.status_code == 422
    html = response.get_data(as_text=True)
    assert _field_error(html, "name") == message
    assert ("<html" in html) is not htmx
    assert _counts(app) == before


@pytest.mark.parametrize(("value", "message"), [(v, m) for _, v, m in BAD_BIRTHDAYS],
                         ids=[i for i, _, _ in BAD_BIRTHDAYS])
def test_family_add_rejects_bad_birthdays(app, signed_in, value, message):
    before = _counts(app)
    response = _add(signed_in, birthday=value)
    assert response.status_code == 422
    assert _field_error(response.get_data(as_text=True), "birthday") == message
    assert _counts(app) == before


@pytest.mark.parametrize(("value", "stored"), [(v, s) for _, v, s in GOOD_NAMES],
                         ids=[i for i, _, _ in GOOD_NAMES])
def test_family_add_keeps_unusual_real_names_exactly(app, signed_in, value, stored):
    assert _add(signed_in, name=value).status_code == 302
    with app.app_context():
        names = db.read(lambda conn: list(conn.execute(
            select(cards.c.display_name).where(cards.c.slot == 1)).scalars()), name="t")
    assert names == [stored]
    page = signed_in.get("/family").get_data(as_text=True)
    shown = re.search(r'<input[^>]*name="m\d+-name"[^>]*value="([^"]*)"', page)
    assert shown
    assert html_lib.unescape(shown.group(1)) == stored
    assert "onfocus=\"alert" not in page


JSON_BODIES = [{"name": 5}, {"name": True}, {"name": None}, {"name": 1.5}, {"name": ["A", "B"]},
               {"name": {"first": "Tom"}}, {"name": "Tom", "birthday": 20150505},
               {"email": 5, "password": 5}, {"email": ["a@example.com"], "password": {}},
               [1, 2], "just a string", {"name": "Tom"}]


@pytest.mark.parametrize("path", ["/login", "/register", "/family"])
@pytest.mark.parametrize("body", JSON_BODIES, ids=[f"json{i}" for i in range(len(JSON_BODIES))])
def test_json_bodies_on_page_forms_are_refused_cleanly(app, signed_in, path, body):
    """Pages post forms; JSON (with numbers, lists, objects where text is expected) gets
    the form back with its fields missing, never a 500."""
    token = csrf_token(signed_in.get("/family").get_data(as_text=True))
    before = _counts(app)
    response = signed_in.post(path, json=body, headers={"X-CSRFToken": token})
    assert response.status_code == 422
    assert REQUIRED in html_lib.unescape(response.get_data(as_text=True))
    assert _counts(app) == before


def test_family_add_with_a_file_instead_of_text(app, signed_in):
    token = csrf_token(signed_in.get("/family").get_data(as_text=True))
    before = _counts(app)
    response = signed_in.post("/family", data={
        "csrf_token": token, "name": (io.BytesIO(b"Tom"), "name.txt")})
    assert response.status_code == 422
    assert _field_error(response.get_data(as_text=True), "name") == REQUIRED
    assert _counts(app) == before


def test_oversized_body_is_refused_with_a_friendly_page(app, signed_in):
    before = _counts(app)
    response = _add(signed_in, name="A" * 70_000)
    assert response.status_code == 413
    assert "That request is too large." in response.get_data(as_text=True)
    assert _counts(app) == before


@pytest.mark.parametrize(("field", "value", "message"),
                         [("name", v, m) for _, v, m in BAD_NAMES[::3]]
                         + [("birthday", v, m) for _, v, m in BAD_BIRTHDAYS[::2]],
                         ids=[f"name-{i}" for i, _, _ in BAD_NAMES[::3]]
                         + [f"birthday-{i}" for i, _, _ in BAD_BIRTHDAYS[::2]])
def test_family_rename_rejects_bad_input(app, signed_in, field, value, message):
    _add(signed_in, name="Tom", birthday="2015-05-05")
    with app.app_context():
        tom_id = db.read(lambda conn: conn.execute(
            select(cards.c.id).where(cards.c.slot == 1)).scalar(), name="t")
    before = _counts(app)
    token = csrf_token(signed_in.get("/family").get_data(as_text=True))
    data = {"csrf_token": token, f"m{tom_id}-name": "Tom", f"m{tom_id}-birthday": "2015-05-05",
            f"m{tom_id}-{field}": value}
    response = signed_in.post(f"/family/{tom_id}", data=data, headers=HTMX)
    assert response.status_code == 422
    assert _field_error(response.get_data(as_text=True), f"m{tom_id}-{field}") == message
    with app.app_context():
        tom = db.read(lambda conn: conn.execute(
            select(cards).where(cards.c.id == tom_id)).mappings().one(), name="t")
    assert (tom["display_name"], str(tom["birthday"])) == ("Tom", "2015-05-05")
    assert _counts(app) == before
