"""One rulebook, two doors: every case of what staff may do runs through the till pages
(real sign-in, real CSRF forms, the hidden fields the page rendered) and through the
JSON API (Bearer JWT), on SQLite and on the Galera lab, and must end the same way on
both: the same status (any 2xx counts as one success) and the same ledger effect (the
target wallet's balance and the number of ledger rows).

The actors work at the New York store (USD, 1.00 a coin): Sam and Bo are baristas
(stored role ``staff``), Ada is an admin; Dana is a customer. Each door gets its own
fresh customer, so a live card code spent through one door can't spoil the other's.
What a case does before the action under test goes straight to the ledger, not through
either door.
"""

from __future__ import annotations

import html
import itertools
import json
import re
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import timedelta

import pytest

from tests.helpers import PASSWORD, AuthActions, csrf_token
from tests.ledger_helpers import assert_invariants, ledger_count, lost_commit_answer, new_customer
from webapp.card import codes
from webapp.card.queries import active_cards
from webapp.clock import utcnow
from webapp.extensions import db
from webapp.ledger import services as ledger
from webapp.staff import create_staff

HOME = "US-NYC-01"
OTHER_STORE = "US-SEA-01"  # same currency: only the store differs
ACTORS = {  # name: (role, email)
    "sam": ("staff", "sam@example.com"),
    "bo": ("staff", "bo@example.com"),
    "ada": ("admin", "ada@example.com"),
    "dana": ("customer", "dana@example.com"),
}
HX = {"HX-Request": "true", "HX-Target": "till-result"}
_customers = itertools.count()
OMIT = object()  # a form field not sent at all



@dataclass
class Outcome:
    status: int
    key: str | None = None  # the idempotency key the door sent
    transaction_id: int | None = None
    body: str = ""

    @property
    def ok(self) -> bool:
        return 200 <= self.status < 300


@dataclass(frozen=True)
class Holder:
    number: str
    secret: str
    wallet_id: int

    def live(self) -> str:
        return codes.rotating_payload(self.number, self.secret)

    def expired(self) -> str:
        return codes.rotating_payload(self.number, self.secret, now=time.time() - 300)


@dataclass
class World:
    app: object
    monkeypatch: pytest.MonkeyPatch
    ids: dict[str, int] = field(default_factory=dict)
    cards: dict[str, Holder] = field(default_factory=dict)

    def customer(self) -> Holder:
        with self.app.app_context():
            made = new_customer(f"customer{next(_customers)}@example.com", name="Cleo Customer")
        return Holder(made["number"], made["secret"], made["wallet_id"])

    def give(self, holder: Holder, coins: int) -> None:
        self.booked_by(None, holder, coins * 100)

    def booked_by(self, actor: str | None, holder: Holder, amount_minor: int, *,
                  at=None) -> int:
        """An earn written straight to the ledger as ``actor`` (None: no staff member),
        optionally as if at ``at`` (for the reversal window)."""
        with self.app.app_context(), self.monkeypatch.context() as clock:
            if at is not None:
                clock.setattr("webapp.ledger.services.utcnow", lambda: at)
            receipt = ledger.earn(card=holder.number, store_code=HOME,
                                  amount_minor=amount_minor, currency="USD",
                                  idempotency_key=uuid.uuid4().hex,
                                  staff_id=self.ids[actor] if actor else None)
        return receipt.transaction_id


# -- the two doors ------------------------------------------------------------------


class TillDoor:
    """The till pages, as a browser posts them: CSRF token and hidden fields included."""

    name = "till"

    def __init__(self, app, email: str) -> None:
        self.client = app.test_client()
        AuthActions(self.client).login(email)
        page = self.client.get("/till")
        if page.status_code != 200:  # a customer: the token of a page they may see
            page = self.client.get("/card")
        self.token = csrf_token(page.get_data(as_text=True))

    def _post(self, path: str, data: dict) -> tuple[int, str]:
        data = {k: v for k, v in data.items() if v is not OMIT}
        response = self.client.post(path, data={"csrf_token": self.token, **data}, headers=HX)
        return response.status_code, response.get_data(as_text=True)

    @staticmethod
    def _hidden(page: str, name: str) -> str | None:
        match = re.search(rf'name="{re.escape(name)}" type="hidden" value="([^"]*)"', page)
        return html.unescape(match.group(1)) if match else None

    def _form(self, card: str, prefix: str) -> tuple[str | None, str | None]:
        """The key and store of the form the till renders after a scan of the card's
        number (what the barista had on screen before the code expired)."""
        _, page = self._post("/till/lookup", {"card": codes.parse_scanned(card).number})
        return self._hidden(page, f"{prefix}-key"), self._hidden(page, f"{prefix}-store")

    def _outcome(self, status: int, key: str, page: str) -> Outcome:
        transaction = self._hidden(page, "reverse-transaction") if status == 200 else None
        return Outcome(status, key, int(transaction) if transaction else None, page)

    def lookup(self, card: str) -> Outcome:
        status, page = self._post("/till/lookup", {"card": card})
        return Outcome(status, body=page)

    def earn(self, card: str, amount: str, *, key=None, store=None) -> Outcome:
        form_key, form_store = self._form(card, "earn")
        key = key or form_key or _till_key()
        status, page = self._post("/till/earn", {
            "earn-card": card, "earn-key": key, "earn-amount": amount,
            "earn-store": form_store if store is None else store})
        return self._outcome(status, key, page)

    def redeem(self, card: str, coins: int, *, confirm=False, key=None, store=None) -> Outcome:
        form_key, form_store = self._form(card, "redeem")
        key = key or form_key or _till_key()
        data = {"redeem-card": card, "redeem-key": key, "redeem-coins": str(coins),
                "redeem-store": form_store if store is None else store}
        if confirm:
            data["redeem-confirm"] = "y"
        status, page = self._post("/till/redeem", data)
        return self._outcome(status, key, page)

    def reverse(self, transaction_id: int, card: str, *, key=None) -> Outcome:
        key = key or _till_key()
        status, page = self._post("/till/reverse", {
            "reverse-card": codes.parse_scanned(card).number, "reverse-key": key,
            "reverse-transaction": str(transaction_id)})
        return Outcome(status, key, body=page)


def _till_key() -> str:
    """A key of the till's own format, for a post without a rendered form (a customer's,
    or a tampered undo form)."""
    return "till-" + uuid.uuid4().hex[:24]


class ApiDoor:
    """The JSON API with the actor's Bearer token."""

    name = "api"

    def __init__(self, app, email: str) -> None:
        self.client = app.test_client()
        response = self.client.post("/api/v1/auth/token",
                                    json={"email": email, "password": PASSWORD})
        assert response.status_code == 200, response.get_data(as_text=True)
        self.headers = {"Authorization": f"Bearer {response.get_json()['access_token']}"}

    def _post(self, path: str, body: dict | None, key: str | None = None):
        headers = dict(self.headers, **({"Idempotency-Key": key} if key else {}))
        return self.client.post("/api/v1" + path, json=body, headers=headers)

    def _outcome(self, response, key: str) -> Outcome:
        body = response.get_json(silent=True) or {}
        return Outcome(response.status_code, key, body.get("id") if response.status_code < 300
                       else None, response.get_data(as_text=True))

    def lookup(self, card: str) -> Outcome:
        response = self._post("/lookup", {"card": card})
        return Outcome(response.status_code, body=response.get_data(as_text=True))

    def earn(self, card: str, amount: str, *, key=None, store=None) -> Outcome:
        key = key or uuid.uuid4().hex
        body = {"kind": "earn", "card": card, "amount": amount, "currency": "USD"}
        if store is not None and store is not OMIT:
            body["store"] = store
        return self._outcome(self._post("/transactions", body, key), key)

    def redeem(self, card: str, coins: int, *, confirm=False, key=None, store=None) -> Outcome:
        key = key or uuid.uuid4().hex
        body = {"kind": "redeem", "card": card, "coins": coins, "confirm_static": confirm}
        if store is not None and store is not OMIT:
            body["store"] = store
        return self._outcome(self._post("/transactions", body, key), key)

    def reverse(self, transaction_id: int, card: str, *, key=None) -> Outcome:
        del card  # the till's form carries it to show the customer again; the API needn't
        key = key or uuid.uuid4().hex
        return self._outcome(self._post(f"/transactions/{transaction_id}/reversal", None, key),
                             key)


DOORS = {"till": TillDoor, "api": ApiDoor}


# -- the cases ----------------------------------------------------------------------
# A case prepares what it needs (through the ledger, or a first call through the same
# door) and returns the wallet to watch and the action under test.

Action = tuple[Holder, Callable[[], Outcome]]


def lookup_by_number(w, door) -> Action:
    c = w.customer()
    return c, lambda: door.lookup(c.number)


def lookup_live_code(w, door) -> Action:
    c = w.customer()
    return c, lambda: door.lookup(c.live())


def lookup_expired_code(w, door) -> Action:
    c = w.customer()
    return c, lambda: door.lookup(c.expired())


def lookup_own_card(w, door) -> Action:
    own = w.cards["sam"]
    return own, lambda: door.lookup(own.number)


def lookup_unknown_card(w, door) -> Action:
    c = w.customer()
    return c, lambda: door.lookup("000000000000")


def earn_naming_home_store(w, door) -> Action:
    c = w.customer()
    return c, lambda: door.earn(c.number, "12.50", store=HOME)


def earn_default_store(w, door) -> Action:
    c = w.customer()
    return c, lambda: door.earn(c.number, "12.50", store=OMIT)


def earn_other_store(w, door) -> Action:
    c = w.customer()
    return c, lambda: door.earn(c.number, "12.50", store=OTHER_STORE)


def earn_live_code(w, door) -> Action:
    c = w.customer()
    return c, lambda: door.earn(c.live(), "7.00")


def earn_expired_code(w, door) -> Action:
    c = w.customer()
    return c, lambda: door.earn(c.expired(), "7.00")


def earn_replayed_key(w, door) -> Action:
    c = w.customer()
    first = door.earn(c.number, "12.50")
    assert first.ok, first.body
    return c, lambda: door.earn(c.number, "12.50", key=first.key)


def earn_key_reused_for_another_amount(w, door) -> Action:
    c = w.customer()
    first = door.earn(c.number, "12.50")
    assert first.ok, first.body
    return c, lambda: door.earn(c.number, "99.00", key=first.key)


def earn_bad_amount(w, door) -> Action:
    c = w.customer()
    return c, lambda: door.earn(c.number, "12.345")


def earn_on_own_card(w, door) -> Action:
    own = w.cards["sam"]
    return own, lambda: door.earn(own.number, "12.50")


def earn_on_own_familys_card(w, door) -> Action:
    kid = w.cards["sam-kid"]
    return kid, lambda: door.earn(kid.number, "12.50")


def earn_above_purchase_limit(w, door) -> Action:
    c = w.customer()
    return c, lambda: door.earn(c.number, "500.01")


def earn_at_purchase_limit(w, door) -> Action:
    c = w.customer()
    return c, lambda: door.earn(c.number, "500.00")


def earn_above_purchase_limit_by_admin(w, door) -> Action:
    c = w.customer()
    return c, lambda: door.earn(c.number, "600.00")


def redeem_live_code(w, door) -> Action:
    c = w.customer()
    w.give(c, 10)
    return c, lambda: door.redeem(c.live(), 3)


def redeem_expired_code(w, door) -> Action:
    c = w.customer()
    w.give(c, 10)
    return c, lambda: door.redeem(c.expired(), 3)


def redeem_typed_number_unconfirmed(w, door) -> Action:
    c = w.customer()
    w.give(c, 10)
    return c, lambda: door.redeem(c.number, 3)


def redeem_typed_number_confirmed(w, door) -> Action:
    c = w.customer()
    w.give(c, 10)
    return c, lambda: door.redeem(c.number, 3, confirm=True)


def redeem_other_store(w, door) -> Action:
    c = w.customer()
    w.give(c, 10)
    return c, lambda: door.redeem(c.live(), 3, store=OTHER_STORE)


def redeem_more_than_the_balance(w, door) -> Action:
    c = w.customer()
    w.give(c, 2)
    return c, lambda: door.redeem(c.live(), 3)


def redeem_replayed_key(w, door) -> Action:
    c = w.customer()
    w.give(c, 10)
    code = c.live()
    first = door.redeem(code, 3)
    assert first.ok, first.body
    return c, lambda: door.redeem(code, 3, key=first.key)


def redeem_from_own_card(w, door) -> Action:
    own = w.cards["sam"]
    w.give(own, 10)
    return own, lambda: door.redeem(own.live(), 3)


def reverse_own_transaction(w, door) -> Action:
    c = w.customer()
    earned = door.earn(c.number, "12.50")
    assert earned.ok, earned.body
    return c, lambda: door.reverse(earned.transaction_id, c.number)


def reverse_another_baristas_transaction(w, door) -> Action:
    c = w.customer()
    transaction = w.booked_by("bo", c, 1250)
    return c, lambda: door.reverse(transaction, c.number)


def reverse_on_own_wallet(w, door) -> Action:
    # Booked by Sam on Sam's own card, as the API allowed before the rulebook.
    own = w.cards["sam"]
    transaction = w.booked_by("sam", own, 1250)
    return own, lambda: door.reverse(transaction, own.number)


def reverse_outside_the_window(w, door) -> Action:
    c = w.customer()
    window = w.app.config["REVERSAL_WINDOW"]
    transaction = w.booked_by("sam", c, 1250, at=utcnow() - window - timedelta(minutes=1))
    return c, lambda: door.reverse(transaction, c.number)


def reverse_twice(w, door) -> Action:
    c = w.customer()
    earned = door.earn(c.number, "12.50")
    assert door.reverse(earned.transaction_id, c.number).ok
    return c, lambda: door.reverse(earned.transaction_id, c.number)


def reverse_replayed_key(w, door) -> Action:
    c = w.customer()
    earned = door.earn(c.number, "12.50")
    first = door.reverse(earned.transaction_id, c.number)
    assert first.ok, first.body
    return c, lambda: door.reverse(earned.transaction_id, c.number, key=first.key)


def reverse_unknown_transaction(w, door) -> Action:
    c = w.customer()
    return c, lambda: door.reverse(987654321, c.number)


def customer_earns(w, door) -> Action:
    c = w.customer()
    return c, lambda: door.earn(c.number, "12.50")


def customer_reverses(w, door) -> Action:
    c = w.customer()
    transaction = w.booked_by("sam", c, 1250)
    return c, lambda: door.reverse(transaction, c.number)


OK = "2xx"
# (case, actor, expected status, change of the watched wallet's balance, new ledger rows).
# One case may run for several actors (a barista, an admin, a customer): ids name both.
CASES = [
    # lookup
    (lookup_by_number, "sam", OK, 0, 0),
    (lookup_live_code, "sam", OK, 0, 0),
    (lookup_expired_code, "sam", 422, 0, 0),
    (lookup_own_card, "sam", OK, 0, 0),  # shown, flagged as the barista's own (below)
    (lookup_unknown_card, "sam", 404, 0, 0),
    (lookup_by_number, "dana", 403, 0, 0),
    # earn
    (earn_naming_home_store, "sam", OK, 12, 1),
    (earn_default_store, "sam", OK, 12, 1),
    (earn_other_store, "sam", 403, 0, 0),
    (earn_other_store, "ada", OK, 12, 1),
    (earn_live_code, "sam", OK, 7, 1),
    (earn_expired_code, "sam", OK, 7, 1),  # the code still identifies the card
    (earn_replayed_key, "sam", OK, 0, 0),
    (earn_key_reused_for_another_amount, "sam", 422, 0, 0),
    (earn_bad_amount, "sam", 422, 0, 0),
    (earn_on_own_card, "sam", 403, 0, 0),
    (earn_on_own_familys_card, "sam", 403, 0, 0),
    (earn_above_purchase_limit, "sam", 403, 0, 0),
    (earn_at_purchase_limit, "sam", OK, 500, 1),
    (earn_above_purchase_limit_by_admin, "ada", OK, 600, 1),
    (customer_earns, "dana", 403, 0, 0),
    # redeem
    (redeem_live_code, "sam", OK, -3, 1),
    (redeem_expired_code, "sam", 422, 0, 0),
    (redeem_typed_number_unconfirmed, "sam", 428, 0, 0),
    (redeem_typed_number_confirmed, "sam", OK, -3, 1),
    (redeem_other_store, "sam", 403, 0, 0),
    (redeem_more_than_the_balance, "sam", 409, 0, 0),
    (redeem_replayed_key, "sam", OK, 0, 0),
    (redeem_from_own_card, "sam", 403, 0, 0),
    (redeem_live_code, "dana", 403, 0, 0),
    # reverse
    (reverse_own_transaction, "sam", OK, -12, 1),
    (reverse_another_baristas_transaction, "sam", 403, 0, 0),
    (reverse_another_baristas_transaction, "ada", OK, -12, 1),
    (reverse_on_own_wallet, "sam", 403, 0, 0),
    (reverse_outside_the_window, "sam", 409, 0, 0),
    (reverse_twice, "sam", 409, 0, 0),
    (reverse_replayed_key, "sam", OK, 0, 0),
    (reverse_unknown_transaction, "sam", 404, 0, 0),
    (customer_reverses, "dana", 403, 0, 0),
]


@pytest.fixture
def world(app, client, monkeypatch) -> World:
    """The actors, Sam's own card and a family member's card on Sam's wallet."""
    w = World(app, monkeypatch)
    with app.app_context():
        for name, (role, email) in ACTORS.items():
            if role == "customer":
                w.ids[name] = new_customer(email, name="Dana Customer")["account"]["id"]
            else:
                w.ids[name] = create_staff(email=email, store_code=HOME, name=name.title(),
                                           password=PASSWORD, role=role)["id"]
    # Sam's family member, added the way Sam would (staff have a wallet like anyone).
    token = client.post("/api/v1/auth/token", json={
        "email": ACTORS["sam"][1], "password": PASSWORD}).get_json()["access_token"]
    kid = client.post("/api/v1/family", json={"name": "Sam Junior"},
                      headers={"Authorization": f"Bearer {token}"})
    assert kid.status_code == 201, kid.get_data(as_text=True)
    with app.app_context():
        cards = db.read(lambda conn: active_cards(conn, w.ids["sam"]), name="test.cards")
    for key, card in zip(("sam", "sam-kid"), cards, strict=True):
        w.cards[key] = Holder(card["number"], card["code_secret"], card["wallet_id"])
    return w


def _state(app, holder: Holder) -> tuple[int, int]:
    with app.app_context():
        return assert_invariants().get(holder.wallet_id, 0), ledger_count()


def _matches(outcome: Outcome, expected) -> bool:
    return outcome.ok if expected == OK else outcome.status == expected


@pytest.mark.parametrize(("case", "actor", "expected", "coins", "rows"), CASES,
                         ids=[f"{case.__name__}-{actor}" for case, actor, *_ in CASES])
def test_the_till_and_the_api_agree(app, world, case, actor, expected, coins, rows):
    seen = {}
    for name, door_type in DOORS.items():
        door = door_type(app, ACTORS[actor][1])
        holder, act = case(world, door)
        balance, count = _state(app, holder)
        outcome = act()
        after = _state(app, holder)
        seen[name] = (outcome.status, after[0] - balance, after[1] - count)
        assert _matches(outcome, expected), (name, outcome.status, outcome.body[:600])
        assert (after[0] - balance, after[1] - count) == (coins, rows), (name, seen)
    # The same outcome on both doors: status class (2xx) or the same refusal.
    till, api = seen["till"], seen["api"]
    assert (till[0] // 100, till[1:]) == (api[0] // 100, api[1:]), seen
    if expected != OK:
        assert till[0] == api[0], seen


# -- what the table can't say -------------------------------------------------------


def _alert(page: str) -> str:
    match = re.search(r'<p class="alert" role="alert">([^<]*)</p>', page)
    return html.unescape(match.group(1)) if match else ""


def _detail(outcome: Outcome) -> str:
    return json.loads(outcome.body)["detail"]


def _problem_type(outcome: Outcome) -> str:
    return json.loads(outcome.body)["type"].rsplit("/", 1)[-1]


def test_a_reversal_outside_the_window_is_too_old_on_both_doors(app, world):
    for door in (TillDoor(app, ACTORS["sam"][1]), ApiDoor(app, ACTORS["sam"][1])):
        holder, act = reverse_outside_the_window(world, door)
        outcome = act()
        assert outcome.status == 409
        message = _alert(outcome.body) if door.name == "till" else _detail(outcome)
        assert message == "This transaction is too old to reverse.", (door.name, message)
    # Just inside the window it still works: the limit is the window, not "any old one".
    door = ApiDoor(app, ACTORS["sam"][1])
    holder = world.customer()
    inside = utcnow() - app.config["REVERSAL_WINDOW"] + timedelta(minutes=5)
    assert door.reverse(world.booked_by("sam", holder, 1250, at=inside), holder.number).ok


@pytest.mark.parametrize(("case", "slug", "words"), [
    (earn_other_store, "store-not-allowed", "only at the store you work at (US-NYC-01)"),
    (earn_on_own_card, "own-wallet", "your own wallet"),
    (earn_on_own_familys_card, "own-wallet", "your own wallet"),
    (earn_above_purchase_limit, "purchase-limit",
     "Purchases above 500.00 USD must be booked by a manager."),
    (reverse_another_baristas_transaction, "not-your-transaction",
     "only undo a transaction you made yourself"),
])
def test_refusals_say_why_on_both_doors(app, world, case, slug, words):
    till, api = TillDoor(app, ACTORS["sam"][1]), ApiDoor(app, ACTORS["sam"][1])
    till_outcome = case(world, till)[1]()
    api_outcome = case(world, api)[1]()
    assert (till_outcome.status, api_outcome.status) == (403, 403)
    assert words in _alert(till_outcome.body)
    assert words in _detail(api_outcome)
    assert _problem_type(api_outcome) == slug
    assert 'id="customer"' in till_outcome.body or slug == "not-your-transaction"


def test_lookup_of_ones_own_card_shows_it_but_offers_no_booking(app, world):
    own = world.cards["sam-kid"].number
    till = TillDoor(app, ACTORS["sam"][1])
    page = till.lookup(own).body
    assert 'id="own-wallet"' in page
    assert 'id="earn"' not in page
    assert 'id="redeem"' not in page
    api = ApiDoor(app, ACTORS["sam"][1])
    assert json.loads(api.lookup(own).body)["own_wallet"] is True
    customer = world.customer()
    body = json.loads(api.lookup(customer.live()).body)
    assert body == {"first_name": "Cleo", "card_last4": customer.number[-4:], "balance": 0,
                    "live_code": True, "own_wallet": False}
    page = till.lookup(customer.number).body
    assert 'id="own-wallet"' not in page
    assert 'id="earn"' in page


def test_the_purchase_limit_and_its_message_come_from_config(app, world):
    app.config["MAX_PURCHASE"] = dict(app.config["MAX_PURCHASE"], USD="100.00")
    door = TillDoor(app, ACTORS["sam"][1])
    holder = world.customer()
    refused = door.earn(holder.number, "100.01")
    assert refused.status == 403
    assert _alert(refused.body) == "Purchases above 100.00 USD must be booked by a manager."
    assert door.earn(holder.number, "100.00").ok
    # A barista in India: the rupee limit, in rupees.
    with app.app_context():
        create_staff(email="priya@example.com", store_code="IN-BLR-01", name="Priya",
                     password=PASSWORD)
    india = ApiDoor(app, "priya@example.com")
    response = india._post("/transactions", {"kind": "earn", "card": holder.number,
                                             "amount": "40000.01", "currency": "INR"},
                           uuid.uuid4().hex)
    assert response.status_code == 403
    assert response.get_json()["detail"] == (
        "Purchases above 40,000.00 INR must be booked by a manager.")


def test_every_currency_has_a_purchase_limit_that_parses():
    from webapp.config import Config
    from webapp.money import CURRENCY_DECIMALS, to_minor

    assert set(Config.MAX_PURCHASE) == set(CURRENCY_DECIMALS)
    assert all(to_minor(amount, currency) > 0
               for currency, amount in Config.MAX_PURCHASE.items())


def test_a_bad_purchase_limit_setting_stops_the_app_at_start():
    from webapp import create_app
    from webapp.config import DEFAULT_MAX_PURCHASE

    with pytest.raises(RuntimeError, match="USD=5,00"):
        create_app({"PROFILE": "test", "MAX_PURCHASE": {**DEFAULT_MAX_PURCHASE, "USD": "5,00"}})


# -- one key scheme -----------------------------------------------------------------


def test_one_key_scheme_a_till_key_replays_through_the_api(app, world):
    """The same barista, the same key, the same sale: one transaction, whichever door."""
    holder = world.customer()
    till, api = TillDoor(app, ACTORS["sam"][1]), ApiDoor(app, ACTORS["sam"][1])
    first = till.earn(holder.number, "12.50")
    assert first.ok
    before = _state(app, holder)
    again = api._post("/transactions", {"kind": "earn", "card": holder.number,
                                        "amount": "12.50", "currency": "USD"}, first.key)
    assert again.status_code == 200, again.get_data(as_text=True)
    assert again.headers["Idempotent-Replayed"] == "true"
    assert again.get_json()["id"] == first.transaction_id
    assert _state(app, holder) == before


def test_two_baristas_sending_the_same_till_key_each_book_their_own_sale(app, world):
    """Till keys are scoped per staff member: Bo's form that happens to carry Sam's key
    (a copied page, a collision) books Bo's sale instead of replaying Sam's receipt."""
    holder = world.customer()
    sam, bo = TillDoor(app, ACTORS["sam"][1]), TillDoor(app, ACTORS["bo"][1])
    first = sam.earn(holder.number, "12.50")
    assert first.ok
    second = bo.earn(holder.number, "12.50", key=first.key)
    assert second.ok
    assert "already booked once" not in second.body
    assert second.transaction_id != first.transaction_id
    assert _state(app, holder)[0] == 24


def test_keys_stored_before_scoping_still_replay_for_their_own_staff_member(app, world):
    """A till form submitted before keys were scoped and retried after finds its row
    (stored under the bare key), so it can't book twice across the deploy; the bare key
    of another staff member's row is not theirs to replay."""
    holder = world.customer()
    legacy_key = _till_key()
    with app.app_context():
        ledger.earn(card=holder.number, store_code=HOME, amount_minor=1250, currency="USD",
                    idempotency_key=legacy_key, staff_id=world.ids["sam"])
    before = _state(app, holder)
    retry = TillDoor(app, ACTORS["sam"][1]).earn(holder.number, "12.50", key=legacy_key)
    assert retry.ok
    assert "already booked once" in retry.body
    assert _state(app, holder) == before
    other = TillDoor(app, ACTORS["bo"][1]).earn(holder.number, "12.50", key=legacy_key)
    assert other.ok
    assert "already booked once" not in other.body
    assert _state(app, holder) == (before[0] + 12, before[1] + 1)


# -- an unknown outcome -------------------------------------------------------------


def test_an_unknown_outcome_is_retried_with_the_same_key_on_both_doors(app, world):
    """The sale committed but the answer was lost: both doors say so (503) without a new
    key, and the retry with the same key replays instead of booking again."""
    for door in (TillDoor(app, ACTORS["sam"][1]), ApiDoor(app, ACTORS["sam"][1])):
        holder = world.customer()
        before = _state(app, holder)
        with lost_commit_answer() as lost:
            unknown = door.earn(holder.number, "12.50")
        assert lost["fired"] == 1
        assert unknown.status == 503, (door.name, unknown.body[:300])
        assert _state(app, holder) == (before[0] + 12, before[1] + 1)  # it did happen
        if door.name == "api":
            assert _problem_type(unknown) == "outcome-unknown"
        else:
            assert TillDoor._hidden(unknown.body, "earn-key") == unknown.key
        retry = door.earn(holder.number, "12.50", key=unknown.key)
        assert retry.status == 200, (door.name, retry.body[:300])
        assert _state(app, holder) == (before[0] + 12, before[1] + 1)
