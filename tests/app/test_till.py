"""The till through its pages, on SQLite and on the Galera lab: who may use it, what a
scan shows, earning and redeeming, and that bad input or a double submit never books
coins it shouldn't."""

from __future__ import annotations

import html
import re

import pytest
from sqlalchemy import select, update

from tests.helpers import BAD_AMOUNTS, BAD_COINS, PASSWORD, SCARY, AuthActions, csrf_token
from tests.ledger_helpers import assert_invariants, ledger_count, lost_commit_answer, new_customer
from webapp.auth.queries import account_by_email
from webapp.card import codes
from webapp.database.schema import accounts, stores, used_codes
from webapp.database.schema import ledger as ledger_table
from webapp.extensions import db
from webapp.ledger import services as ledger
from webapp.staff import create_staff

STAFF_EMAIL = "sam.till@example.com"
HX = {"HX-Request": "true", "HX-Target": "till-result"}


class Till:
    """A barista at the till, driving it through the same forms a browser posts."""

    def __init__(self, client, app) -> None:
        self.client = client
        self.app = app
        self.token = csrf_token(client.get("/till").get_data(as_text=True))
        self.last = ""

    def post(self, path: str, data: dict, *, htmx: bool = True):
        response = self.client.post(path, data={"csrf_token": self.token, **data},
                                    headers=HX if htmx else {})
        self.last = response.get_data(as_text=True)
        return response

    def lookup(self, card: str, **kwargs):
        return self.post("/till/lookup", {"card": card}, **kwargs)

    def form_value(self, name: str, page: str | None = None) -> str:
        match = re.search(rf'name="{re.escape(name)}" type="hidden" value="([^"]*)"',
                          page or self.last)
        assert match, f"no hidden {name} in the page"
        return html.unescape(match.group(1))

    def earn(self, amount: str, *, card: str | None = None, key: str | None = None,
             page: str | None = None, **kw):
        """Posts the earn form of the last page (or of ``page``), as a browser would."""
        data = {"earn-card": card or self.form_value("earn-card", page),
                "earn-key": key or self.form_value("earn-key", page), "earn-amount": amount}
        if page is not None:
            data["earn-store"] = self.form_value("earn-store", page)
        return self.post("/till/earn", data, **kw)

    def redeem(self, coins: str, *, card: str | None = None, key: str | None = None,
               confirm: bool = False, page: str | None = None, **kw):
        data = {"redeem-card": card or self.form_value("redeem-card", page),
                "redeem-key": key or self.form_value("redeem-key", page), "redeem-coins": coins}
        if page is not None:
            data["redeem-store"] = self.form_value("redeem-store", page)
        if confirm:
            data["redeem-confirm"] = "y"
        return self.post("/till/redeem", data, **kw)

    def alert(self) -> str | None:
        match = re.search(r'<p class="alert" role="alert">([^<]*)</p>', self.last)
        return html.unescape(match.group(1)) if match else None


@pytest.fixture
def customer(app):
    with app.app_context():
        return new_customer("dana@example.com", name="Dana Demo")


@pytest.fixture
def till(app, client):
    with app.app_context():
        create_staff(email=STAFF_EMAIL, store_code="US-NYC-01", name="Sam (barista)",
                     password=PASSWORD)
    AuthActions(client).login(STAFF_EMAIL)
    return Till(client, app)


def _state(app) -> tuple[dict[int, int], int]:
    with app.app_context():
        return assert_invariants(), ledger_count()


def _give(app, number: str, coins: int) -> None:
    with app.app_context():
        ledger.earn(card=number, store_code="US-NYC-01", amount_minor=coins * 100,
                    currency="USD", idempotency_key=f"gift-{number}-{coins}", staff_id=None)


def _rows(app, table):
    with app.app_context():
        return db.read(lambda conn: [dict(r) for r in conn.execute(select(table)).mappings()],
                       name="test.rows", causal=True)


# --- Who may use the till --------------------------------------------------------------

def test_anonymous_is_sent_to_login(client):
    response = client.get("/till")
    assert response.status_code == 302
    assert response.headers["Location"].startswith("/login?next=")
    hx = client.get("/till", headers={"HX-Request": "true"})
    assert hx.status_code == 204
    assert hx.headers["HX-Redirect"].startswith("/login")


def test_customer_gets_403(client, auth, customer):
    auth.login("dana@example.com")
    assert client.get("/till").status_code == 403
    token = csrf_token(client.get("/card").get_data(as_text=True))
    response = client.post("/till/lookup", data={"csrf_token": token,
                                                 "card": customer["number"]})
    assert response.status_code == 403


def test_missing_csrf_token_is_refused(app, till, customer):
    before = _state(app)
    response = till.client.post("/till/lookup", data={"card": customer["number"]})
    assert response.status_code == 400
    response = till.client.post("/till/earn", data={
        "earn-card": customer["number"], "earn-key": "till-" + "k" * 24, "earn-amount": "5"})
    assert response.status_code == 400
    assert _state(app) == before


# --- Scanning and typing ---------------------------------------------------------------

def test_page_offers_manual_entry_and_loads_no_scanner_library_eagerly(till):
    page = till.client.get("/till").get_data(as_text=True)
    assert 'action="/till/lookup"' in page
    assert 'name="card"' in page
    assert "New York, 5th Avenue" in page
    assert "USD" in page
    assert "jsQR" not in re.sub(r'data-jsqr="[^"]*"', "", page)  # lazy: only if needed
    assert "js/till.js" in page


def test_manual_lookup_shows_first_name_masked_card_and_balance(app, till, customer):
    _give(app, customer["number"], 7)
    spaced = " ".join(customer["number"][i:i + 4] for i in (0, 4, 8))
    response = till.lookup(spaced)  # what a barista types, with spaces
    assert response.status_code == 200
    page = till.last
    assert "<html" not in page
    assert page.lstrip().startswith('<section id="till-result"')
    assert "<h2>Dana</h2>" in page
    assert "Demo" not in page
    assert f"•••• •••• {customer['number'][-4:]}" in page
    assert customer["number"] not in page.replace(f'value="{customer["number"]}"', "")
    assert '<strong id="till-balance">7</strong>' in page
    assert "typed number" in page
    assert 'name="redeem-confirm"' in page


def test_lookup_without_javascript_renders_the_whole_page(till, customer):
    response = till.lookup(customer["number"], htmx=False)
    assert response.status_code == 200
    assert "<html" in till.last
    assert 'id="earn"' in till.last
    assert "<h2>Dana</h2>" in till.last


def test_rotating_code_lookup_needs_no_confirmation(till, customer):
    payload = codes.rotating_payload(customer["number"], customer["secret"])
    assert till.lookup(payload).status_code == 200
    assert "live code" in till.last
    assert 'name="redeem-confirm"' not in till.last
    assert till.form_value("redeem-card") == payload


def test_a_refused_lookup_keeps_what_was_typed_with_the_error_at_the_field(till, customer):
    assert till.lookup("1234", htmx=False).status_code == 422
    message = "That is not a card number. Type the 12 digits under the QR, or scan it."
    assert till.alert() == message
    assert re.search(r'<input [^>]*id="card"[^>]*value="1234"', till.last)
    assert f'<p class="error" id="card-error">{message}</p>' in till.last


def test_expired_rotating_code_is_refused_at_lookup(till, customer):
    stale = codes.rotating_payload(customer["number"], customer["secret"],
                                   now=codes.current_step() * 30 - 300)
    assert till.lookup(stale).status_code == 422
    assert "expired" in till.alert()


# --- Earning and redeeming -------------------------------------------------------------

def test_earn_in_store_currency(app, till, customer):
    till.lookup(customer["number"])
    response = till.earn("12.50")
    assert response.status_code == 200, till.alert()
    assert "Added 12 coins" in till.last
    assert "$12.50" in till.last  # the store's locale, en_US
    assert '<strong id="receipt-balance">12</strong>' in till.last
    assert '<strong id="till-balance">12</strong>' in till.last
    [row] = _rows(app, ledger_table)
    assert (row["kind"], row["coins"], row["amount_minor"], row["currency"]) == (
        "earn", 12, 1250, "USD")
    with app.app_context():
        staff = db.read(lambda conn: account_by_email(conn, STAFF_EMAIL), name="test.staff")
    assert row["staff_id"] == staff["id"]
    # The receipt names the transaction and the card's last digits only.
    assert (f'<p class="muted">Transaction {row["id"]} · card ending '
            f'{customer["number"][-4:]}</p>') in till.last
    assert_invariants_ok(app)


def test_earn_with_a_fresh_form_each_time(app, till, customer):
    till.lookup(customer["number"])
    till.earn("3.00")
    first_key = till.form_value("earn-key")
    till.earn("4.99")  # the form rendered after a success has a new key
    assert till.form_value("earn-key") != first_key
    assert '<strong id="till-balance">7</strong>' in till.last
    assert _state(app)[1] == 2


def test_a_redemption_leaves_a_fresh_redeem_form(app, till, customer):
    _give(app, customer["number"], 20)
    till.lookup(customer["number"])
    key = till.form_value("redeem-key")
    assert till.redeem("4", confirm=True).status_code == 200, till.alert()
    assert till.form_value("redeem-key") != key
    assert till.redeem("3", confirm=True).status_code == 200, till.alert()
    assert "already booked once" not in till.last
    assert '<strong id="receipt-balance">13</strong>' in till.last


def test_a_page_left_open_after_a_move_to_another_store_books_nothing(app, till, customer):
    # Each action form names the store its page was rendered for; the barista was moved
    # to Dublin since: the rulebook refuses the New York page's forms.
    _give(app, customer["number"], 20)
    till.lookup(customer["number"])
    page = till.last
    assert till.form_value("earn-store", page) == till.form_value("redeem-store", page) \
        == "US-NYC-01"
    with app.app_context():
        db.write(lambda conn: conn.execute(update(accounts).where(
            accounts.c.email == STAFF_EMAIL).values(store_id=select(stores.c.id).where(
                stores.c.code == "IE-DUB-01").scalar_subquery())), name="test")
    before = _state(app)
    assert till.redeem("4", confirm=True, page=page).status_code == 403
    assert "only at the store you work at" in till.alert()
    assert till.earn("5.00", page=page).status_code == 403
    assert _state(app) == before


def test_redeem_with_rotating_code(app, till, customer):
    _give(app, customer["number"], 20)
    till.lookup(codes.rotating_payload(customer["number"], customer["secret"]))
    response = till.redeem("5")
    assert response.status_code == 200, till.alert()
    assert "Redeemed 5 coins" in till.last
    assert '<strong id="receipt-balance">15</strong>' in till.last
    assert len(_rows(app, used_codes)) == 1
    assert_invariants_ok(app)


def test_replayed_rotating_code_is_refused(app, till, customer):
    _give(app, customer["number"], 20)
    payload = codes.rotating_payload(customer["number"], customer["secret"])
    till.lookup(payload)
    assert till.redeem("5").status_code == 200
    before = _state(app)
    # A screenshot of the same code, scanned again (maybe at another till).
    assert till.lookup(payload).status_code == 200
    response = till.redeem("5")
    assert response.status_code == 422
    assert till.alert() == "This card code was already used. Ask for the live card."
    assert _state(app) == before


def test_static_number_redeem_needs_the_confirmation_box(app, till, customer):
    _give(app, customer["number"], 10)
    till.lookup(customer["number"])
    before = _state(app)
    assert till.redeem("4").status_code == 428
    assert "needs confirmation" in till.alert()
    assert 'name="redeem-confirm"' in till.last
    assert _state(app) == before
    response = till.redeem("4", confirm=True)  # the same form, now with the box ticked
    assert response.status_code == 200, till.alert()
    assert '<strong id="receipt-balance">6</strong>' in till.last


def test_static_redeem_without_confirmation_when_operator_allows(app, till, customer):
    app.config["STATIC_REDEEM_NEEDS_CONFIRMATION"] = False
    _give(app, customer["number"], 10)
    till.lookup(customer["number"])
    assert 'name="redeem-confirm"' not in till.last
    assert till.redeem("4").status_code == 200


def test_redeem_more_than_balance_is_refused(app, till, customer):
    _give(app, customer["number"], 3)
    till.lookup(customer["number"])
    before = _state(app)
    assert till.redeem("4", confirm=True).status_code == 409
    assert "Not enough coins" in till.alert()
    assert _state(app) == before


def test_redeem_at_another_regions_store(app, client, customer):
    _give(app, customer["number"], 10)
    with app.app_context():
        create_staff(email="priya@example.com", store_code="IN-BLR-01", name="Priya",
                     password=PASSWORD)
    AuthActions(client).login("priya@example.com")
    till = Till(client, app)
    till.lookup(codes.rotating_payload(customer["number"], customer["secret"]))
    assert till.redeem("2").status_code == 200, till.alert()
    [_, row] = _rows(app, ledger_table)
    assert (row["region"], row["coins"]) == ("in", -2)
    till.lookup(customer["number"])
    assert till.earn("80.00").status_code == 200  # INR at 80 rupees a coin
    assert "Added 1 coin</strong>" in till.last
    assert "₹80.00" in till.last  # the store's locale, en_IN


# --- Never twice, never on error --------------------------------------------------------

def test_double_submit_with_the_same_form_books_once(app, till, customer):
    till.lookup(customer["number"])
    page = till.last
    key, card = till.form_value("earn-key", page), till.form_value("earn-card", page)
    first = till.earn("12.50", key=key, card=card)
    second = till.earn("12.50", key=key, card=card)
    assert (first.status_code, second.status_code) == (200, 200)
    assert "already booked once" in till.last
    balances, count = _state(app)
    assert count == 1
    assert balances[customer["wallet_id"]] == 12


def test_double_submit_of_a_redeem_books_once(app, till, customer):
    _give(app, customer["number"], 10)
    till.lookup(codes.rotating_payload(customer["number"], customer["secret"]))
    page = till.last
    key, card = till.form_value("redeem-key", page), till.form_value("redeem-card", page)
    assert till.redeem("3", key=key, card=card).status_code == 200
    assert till.redeem("3", key=key, card=card).status_code == 200  # not "code used"
    assert "already booked once" in till.last
    balances, count = _state(app)
    assert count == 2
    assert balances[customer["wallet_id"]] == 7


def test_same_form_resent_with_another_amount_is_refused(app, till, customer):
    till.lookup(customer["number"])
    key, card = till.form_value("earn-key"), till.form_value("earn-card")
    till.earn("12.50", key=key, card=card)
    before = _state(app)
    assert till.earn("99.00", key=key, card=card).status_code == 422
    assert "already submitted with different details" in till.alert()
    assert till.form_value("earn-key") != key  # a fresh form to carry on with
    assert re.fullmatch(r"till-[A-Za-z0-9_-]{24}", till.form_value("earn-key"))
    assert _state(app) == before


def test_form_keeps_its_key_after_an_error_so_a_retry_is_safe(till, customer):
    till.lookup(customer["number"])
    key = till.form_value("earn-key")
    assert till.earn("abc", key=key).status_code == 422
    assert till.form_value("earn-key") == key


BAD_CARDS = [
    ("", 422), ("letters-not-digits", 422), ("1234", 422), ("LC1.123.456", 422),
    ("000000000001", 422),  # wrong Luhn check digit
    ("000000000000", 404),  # a valid-looking number nobody has
    *[(text, 422) for text in SCARY],
]

# One app per table rather than per row: each case still goes through the real forms,
# and the failure message names the input. (The parsers get a row each further down.)


def test_bad_amounts_are_refused_and_write_nothing(app, till, customer):
    till.lookup(customer["number"])
    before = _state(app)
    for amount in BAD_AMOUNTS:
        response = till.earn(amount)
        assert response.status_code == 422, amount
        assert till.alert(), amount
        assert "<script>" not in till.last, amount
    assert _state(app) == before


def test_bad_coin_counts_are_refused_and_write_nothing(app, till, customer):
    _give(app, customer["number"], 10)
    till.lookup(customer["number"])
    before = _state(app)
    for coins in BAD_COINS:
        assert till.redeem(coins, confirm=True).status_code == 422, coins
        assert till.alert(), coins
        assert "<script>" not in till.last, coins
    assert _state(app) == before


def test_bad_or_unknown_cards_are_refused(app, till, customer):
    before = _state(app)
    for card, status in BAD_CARDS:
        assert till.lookup(card).status_code == status, card
        assert till.alert(), card
        assert "<script>" not in till.last, card
        assert 'id="customer"' not in till.last, card
    assert _state(app) == before


def test_tampered_hidden_fields_write_nothing(app, till, customer):
    till.lookup(customer["number"])
    before = _state(app)
    assert till.earn("5.00", key="not a key!").status_code == 422
    assert till.earn("5.00", card="<b>1</b>").status_code == 422
    no_key = till.post("/till/earn", {"earn-card": customer["number"], "earn-amount": "5.00"})
    assert no_key.status_code == 422
    assert _state(app) == before


def test_a_ledger_refusal_is_shown_at_its_input_on_the_same_form(app, till, customer):
    till.lookup(customer["number"])
    before = _state(app)
    key = till.form_value("earn-key")
    assert till.earn("0.50").status_code == 422  # a valid amount, below one coin
    message = "This amount is too small to earn a coin."
    assert till.alert() == message
    assert f'<p class="error" id="earn-amount-error">{message}</p>' in till.last
    assert 'aria-invalid="true"' in till.last
    assert till.form_value("earn-key") == key  # the same form: pressing again is safe
    assert _try_again_form(till.last) is None  # refused, not unknown: nothing to retry
    assert _state(app) == before


def test_a_code_that_expired_before_the_redemption_still_shows_the_customer(
        app, till, customer):
    # The scan was good, the redemption is rung up after the code expired: refused (a
    # redemption needs the live code), and the customer stays on screen, looked up again
    # by number, which needs no live code.
    _give(app, customer["number"], 4)
    stale = codes.rotating_payload(customer["number"], customer["secret"],
                                   now=codes.current_step() * 30 - 300)
    before = _state(app)
    response = till.post("/till/redeem", {"redeem-card": stale, "redeem-coins": "2",
                                          "redeem-key": "till-" + "r" * 24})
    assert response.status_code == 422
    assert "expired" in till.alert()
    assert "<h2>Dana</h2>" in till.last
    assert '<strong id="till-balance">4</strong>' in till.last
    assert _state(app) == before


def test_an_admin_naming_a_store_of_another_currency_is_told_so(app, client, customer):
    # An admin may book at any store of their region from their own store's till; a
    # tampered (or stale) store field naming a store in another currency is the ledger's
    # refusal, which names no field of the form: said, not a 500.
    with app.app_context():
        create_staff(email="ada.admin@example.com", store_code="US-NYC-01", name="Ada",
                     password=PASSWORD, role="admin")
    AuthActions(client).login("ada.admin@example.com")
    till = Till(client, app)
    till.lookup(customer["number"])
    before = _state(app)
    response = till.post("/till/earn", {"earn-card": customer["number"],
                                        "earn-key": till.form_value("earn-key"),
                                        "earn-amount": "5.00", "earn-store": "IE-DUB-01"})
    assert response.status_code == 422
    assert till.alert() == "This store takes EUR, not USD."
    assert _state(app) == before


def test_every_form_error_is_said_once(app, till, customer):
    till.lookup(customer["number"])
    before = _state(app)
    response = till.post("/till/earn", {"earn-card": "", "earn-key": "", "earn-amount": "",
                                        "earn-store": "S" * 21})
    assert response.status_code == 422
    # The key's and the store's message is the same sentence: said once.
    assert till.alert() == ("Scan the card or type its number. This form is out of date: "
                            "reload the till. Enter the purchase amount.")
    assert _state(app) == before


def test_errors_without_javascript_render_the_page_with_the_message(app, till, customer):
    till.lookup(customer["number"])
    before = _state(app)
    response = till.earn("12.345", htmx=False)
    assert response.status_code == 422
    assert "<html" in till.last
    assert "Use at most 2 decimals for USD." in till.last
    assert _state(app) == before


# --- When the outcome is unknown --------------------------------------------------------

def _try_again_form(page: str) -> str | None:
    """The action of the form whose button reads "Try again", if any."""
    for form in re.findall(r"<form\b.*?</form>", page, re.S):
        if re.search(r"<button[^>]*>\s*Try again\s*</button>", form):
            return re.search(r'action="([^"]+)"', form).group(1)
    return None


@pytest.mark.parametrize("htmx", [True, False], ids=["htmx", "no-js"])
def test_unknown_outcome_keeps_the_key_and_offers_try_again(app, till, customer, htmx):
    """The sale committed but the answer was lost (the database layer's OutcomeUnknown):
    the till says it may already be booked, keeps the form's key and amount, and its "Try
    again" replays the first booking instead of ringing the sale up twice."""
    till.lookup(customer["number"])
    key = till.form_value("earn-key")
    with lost_commit_answer() as lost:
        response = till.earn("12.50", key=key, htmx=htmx)
    assert lost["fired"] == 1
    assert response.status_code == 503
    assert "may already be booked" in till.alert()
    assert "retrying with this form is safe" in till.alert()
    assert till.form_value("earn-key") == key  # never a fresh key after an unknown outcome
    assert 'value="12.50"' in till.last
    assert _try_again_form(till.last) == "/till/earn"
    assert ("<html" in till.last) is not htmx
    balances, count = _state(app)
    assert (balances[customer["wallet_id"]], count) == (12, 1)  # it was booked

    again = till.earn("12.50", key=till.form_value("earn-key"), card=till.form_value("earn-card"))
    assert again.status_code == 200, till.alert()
    assert "already booked once" in till.last
    assert _state(app) == (balances, 1)


def test_unknown_outcome_of_a_redeem_and_an_undo_offer_the_same_form_again(app, till, customer):
    _give(app, customer["number"], 10)
    till.lookup(codes.rotating_payload(customer["number"], customer["secret"]))
    key = till.form_value("redeem-key")
    with lost_commit_answer():
        assert till.redeem("3", key=key).status_code == 503
    assert "This redemption may already be booked" in till.alert()
    assert till.form_value("redeem-key") == key
    assert _try_again_form(till.last) == "/till/redeem"
    assert till.redeem("3", key=key).status_code == 200  # the same code, replayed
    assert "already booked once" in till.last
    data = {f"reverse-{n}": till.form_value(f"reverse-{n}")
            for n in ("card", "key", "transaction")}
    with lost_commit_answer():
        assert till.post("/till/reverse", data).status_code == 503
    assert "This undo may already be booked" in till.alert()
    assert till.form_value("reverse-key") == data["reverse-key"]
    assert _try_again_form(till.last) == "/till/reverse"
    assert till.post("/till/reverse", data).status_code == 200
    balances, count = _state(app)
    assert (balances[customer["wallet_id"]], count) == (10, 3)  # gift, redeem, undo: once each


# --- Undo -------------------------------------------------------------------------------

def test_undo_the_transaction_just_made(app, till, customer):
    till.lookup(customer["number"])
    till.earn("12.50")
    data = {f"reverse-{n}": till.form_value(f"reverse-{n}")
            for n in ("card", "key", "transaction")}
    assert till.post("/till/reverse", data).status_code == 200, till.alert()
    assert "Undone: -12 coins" in till.last
    assert '<strong id="receipt-balance">0</strong>' in till.last
    assert 'action="/till/reverse"' not in till.last  # an undo is not undone from the till
    assert till.post("/till/reverse", {**data, "reverse-key": "till-another-key-000000"}
                     ).status_code == 409
    balances, count = _state(app)
    assert count == 2
    assert balances[customer["wallet_id"]] == 0


def test_undo_is_only_for_ones_own_transactions(app, till, customer):
    with app.app_context():
        receipt = ledger.earn(card=customer["number"], store_code="US-NYC-01",
                              amount_minor=500, currency="USD", idempotency_key="other-till",
                              staff_id=None)
    before = _state(app)
    response = till.post("/till/reverse", {
        "reverse-card": customer["number"], "reverse-key": "till-" + "u" * 24,
        "reverse-transaction": str(receipt.transaction_id)})
    assert response.status_code == 403
    assert _state(app) == before


def assert_invariants_ok(app) -> None:
    with app.app_context():
        assert_invariants()
