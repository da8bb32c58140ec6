"""The ledger's contract, on SQLite and on the real Galera lab."""

from __future__ import annotations

import dataclasses
import hashlib
import itertools
import json
import re
import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import insert, select, update

from tests.helpers import PASSWORD
from tests.ledger_helpers import assert_invariants, ledger_count, new_customer
from webapp import errors
from webapp.card import codes
from webapp.clock import utcnow
from webapp.database.schema import cards as cards_table
from webapp.database.schema import ledger as ledger_table
from webapp.database.schema import rewards as rewards_table
from webapp.extensions import db
from webapp.ledger import queries
from webapp.ledger import services as ledger
from webapp.staff import create_staff

_emails = itertools.count()


def _key() -> str:
    return uuid.uuid4().hex


def says(message: str) -> str:
    """``match=`` for exactly this message: the till and the API show it as it is."""
    return f"^{re.escape(message)}$"


NOT_ENOUGH = "Not enough coins in the wallet for this."
KEY_REUSED = "This idempotency key was already used for a different transaction."
CODE_USED = "This card code was already used. Ask for the live card."
NOT_A_CARD = {"card": ["That is not a card number or card QR code."]}


@pytest.fixture
def customer(app):
    with app.app_context():
        yield new_customer(f"c{next(_emails)}@example.com")


def earn(card, amount_minor=1000, store="US-NYC-01", currency="USD", key=None):
    return ledger.earn(card=card, store_code=store, amount_minor=amount_minor,
                       currency=currency, idempotency_key=key or _key(), staff_id=None)


def redeem(card, coins, key=None, confirmed=True, store="IE-DUB-01"):
    return ledger.redeem(card=card, store_code=store, coins=coins,
                         idempotency_key=key or _key(), staff_id=None, confirmed=confirmed)


def test_earn_redeem_and_balance(app, customer):
    with app.app_context():
        first = earn(customer["number"], 1250)
        assert (first.kind, first.coins, first.balance) == ("earn", 12, 12)
        spent = redeem(customer["number"], 5)
        assert (spent.coins, spent.balance) == (-5, 7)
        india = earn(customer["number"], 16000, store="IN-BLR-01", currency="INR")
        assert (india.coins, india.region, india.currency) == (2, "in", "INR")
        assert assert_invariants()[customer["wallet_id"]] == 9


def test_redeem_more_than_balance_is_refused_and_writes_nothing(app, customer):
    with app.app_context():
        earn(customer["number"], 300)
        before = ledger_count()
        with pytest.raises(errors.InsufficientCoins, match=says(NOT_ENOUGH)):
            redeem(customer["number"], 4)
        assert ledger_count() == before
        assert assert_invariants()[customer["wallet_id"]] == 3


def test_same_key_returns_first_result_and_changes_nothing(app, customer):
    with app.app_context():
        key = _key()
        first = earn(customer["number"], 500, key=key)
        again = earn(customer["number"], 500, key=key)
        assert again.transaction_id == first.transaction_id
        assert again.balance == first.balance == 5
        assert (first.replayed, again.replayed) == (False, True)
        assert ledger_count() == 1


def test_a_key_found_replays_even_when_the_request_also_names_an_old_key(app, customer):
    # A till key is looked up under its old, unscoped form only when its own is absent.
    with app.app_context():
        def send():
            return ledger.earn(card=customer["number"], store_code="US-NYC-01",
                               amount_minor=500, currency="USD", idempotency_key="api:7:till-1",
                               staff_id=7, legacy_keys=("till-1",))

        first, again = send(), send()
        assert (again.transaction_id, again.replayed) == (first.transaction_id, True)
        assert ledger_count() == 1

def test_same_key_different_body_is_refused(app, customer):
    with app.app_context():
        key = _key()
        earn(customer["number"], 500, key=key)
        with pytest.raises(errors.IdempotencyMismatch, match=says(KEY_REUSED)):
            earn(customer["number"], 600, key=key)
        assert ledger_count() == 1


def test_one_key_reverses_one_transaction(app, customer):
    """The key of a reversal, sent again to reverse another transaction, is refused: it
    must not answer with the first reversal's receipt while the second stays booked."""
    with app.app_context():
        first = earn(customer["number"], 1000)
        second = earn(customer["number"], 2000)
        key = _key()
        ledger.reverse(transaction_id=first.transaction_id, idempotency_key=key, staff_id=None)
        with pytest.raises(errors.IdempotencyMismatch, match=says(KEY_REUSED)):
            ledger.reverse(transaction_id=second.transaction_id, idempotency_key=key,
                           staff_id=None)
        assert ledger_count() == 3
        assert assert_invariants()[customer["wallet_id"]] == 20


def test_request_hashes_are_stored_in_a_stable_form(app, customer):
    """A retry may reach the next release (a rolling deploy): the stored hash of each
    request must be the one any release computes from the same request."""
    with app.app_context():
        bought = earn(customer["number"], 1000)
        spent = redeem(customer["number"], 3)
        undone = ledger.reverse(transaction_id=spent.transaction_id, idempotency_key=_key(),
                                staff_id=None)
        stored = db.read(lambda conn: {
            r.id: r.request_hash for r in conn.execute(select(ledger_table))}, name="test.hash")

        def digest(**fields):
            return hashlib.sha256(json.dumps(fields, sort_keys=True).encode()).hexdigest()

        assert stored[bought.transaction_id] == digest(
            kind="earn", card=customer["number"], store="US-NYC-01", amount=1000,
            currency="USD")
        assert stored[spent.transaction_id] == digest(
            kind="redeem", card=customer["number"], store="IE-DUB-01", coins=3)
        assert stored[undone.transaction_id] == digest(
            kind="reversal", reverses=spent.transaction_id)


def test_reversal_once_and_never_negative(app, customer):
    with app.app_context():
        bought = earn(customer["number"], 1000)
        reversal = ledger.reverse(transaction_id=bought.transaction_id, idempotency_key=_key(),
                                  staff_id=None)
        assert (reversal.kind, reversal.coins, reversal.balance) == ("reversal", -10, 0)
        with pytest.raises(errors.AlreadyReversed,
                           match=says("This transaction was already reversed.")):
            ledger.reverse(transaction_id=bought.transaction_id, idempotency_key=_key(),
                           staff_id=None)
        second = earn(customer["number"], 1000)
        redeem(customer["number"], 8)
        with pytest.raises(errors.InsufficientCoins, match=says(
                "Reversing this would make the balance negative: the coins were spent.")):
            ledger.reverse(transaction_id=second.transaction_id, idempotency_key=_key(),
                           staff_id=None)
        assert assert_invariants()[customer["wallet_id"]] == 2


def _stored_created_at(transaction_id):
    """The time the database kept (MariaDB's DATETIME may round what the app sent)."""
    return db.read(lambda conn: queries.entry_by_id(conn, transaction_id)["created_at"],
                   name="test.created_at", causal=True)


def test_reversal_window_is_inclusive_and_then_closes(app, customer, monkeypatch):
    """A reversal exactly at the end of REVERSAL_WINDOW still goes through; a second
    later the transaction is too old, and nothing is written."""
    with app.app_context():
        window = app.config["REVERSAL_WINDOW"]
        late = earn(customer["number"], 1000)
        on_time = earn(customer["number"], 2000)
        too_late_at = _stored_created_at(late.transaction_id) + window + timedelta(seconds=1)
        monkeypatch.setattr("webapp.ledger.services.utcnow", lambda: too_late_at)
        with pytest.raises(errors.Conflict, match=r"^This transaction is too old to reverse\.$"):
            ledger.reverse(transaction_id=late.transaction_id, idempotency_key=_key(),
                           staff_id=None)
        assert ledger_count() == 2
        assert assert_invariants()[customer["wallet_id"]] == 30

        at_the_edge = _stored_created_at(on_time.transaction_id) + window
        monkeypatch.setattr("webapp.ledger.services.utcnow", lambda: at_the_edge)
        reversal = ledger.reverse(transaction_id=on_time.transaction_id,
                                  idempotency_key=_key(), staff_id=None)
        assert (reversal.kind, reversal.coins, reversal.balance) == ("reversal", -20, 10)
        assert assert_invariants()[customer["wallet_id"]] == 10


def test_reversal_of_unknown_transaction(app):
    with app.app_context(), pytest.raises(errors.NotFound, match=says("No such transaction.")):
        ledger.reverse(transaction_id=999_999, idempotency_key=_key(), staff_id=None)


def test_rotating_code_pays_once(app, customer):
    with app.app_context():
        earn(customer["number"], 5000)
        payload = codes.rotating_payload(customer["number"], customer["secret"])
        redeem(payload, 3, confirmed=False)
        with pytest.raises(errors.CardCodeRejected, match=says(CODE_USED)):
            redeem(payload, 3, confirmed=False)
        assert assert_invariants()[customer["wallet_id"]] == 47


def test_a_cards_next_code_pays_after_its_last_one(app, customer):
    """The code of the next 30 s step is a new code: spending one step spends only it."""
    with app.app_context():
        earn(customer["number"], 5000)
        now = time.time()
        redeem(codes.rotating_payload(customer["number"], customer["secret"], now), 3,
               confirmed=False)
        following = codes.rotating_payload(customer["number"], customer["secret"],
                                           now + codes.STEP_SECONDS)
        assert redeem(following, 4, confirmed=False).balance == 43


def test_a_spent_code_step_is_spent_for_that_card_only(app, customer):
    """Two customers show their live codes in the same 30 s step: each pays once."""
    with app.app_context():
        other = new_customer(f"c{next(_emails)}@example.com")
        for person in (customer, other):
            earn(person["number"], 5000)
        now = time.time()
        first = codes.rotating_payload(customer["number"], customer["secret"], now)
        second = codes.rotating_payload(other["number"], other["secret"], now)
        redeem(first, 3, confirmed=False)
        assert redeem(second, 4, confirmed=False).balance == 46
        with pytest.raises(errors.CardCodeRejected, match=says(CODE_USED)):
            redeem(second, 4, confirmed=False)
        balances = assert_invariants()
        assert (balances[customer["wallet_id"]], balances[other["wallet_id"]]) == (47, 46)


def test_expired_rotating_code_is_refused(app, customer):
    with app.app_context():
        earn(customer["number"], 5000)
        old_code = codes.totp(customer["secret"], codes.current_step() - 5)
        stale = f"LC1.{customer['number']}.{old_code}"
        with pytest.raises(errors.CardCodeRejected, match=says(
                "This card code has expired. Ask the customer to show the live card.")):
            redeem(stale, 1, confirmed=False)


def test_static_number_redeem_needs_confirmation(app, customer):
    with app.app_context():
        earn(customer["number"], 5000)
        with pytest.raises(errors.ConfirmationRequired, match=says(
                "Redeeming by card number needs confirmation: check the customer's ID or "
                "ask them to show their live card code.")):
            redeem(customer["number"], 1, confirmed=False)
        assert redeem(customer["number"], 1, confirmed=True).balance == 49


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"amount_minor": 0}, "amount"),
        ({"amount_minor": -100}, "amount"),
        ({"amount_minor": 10**12}, "amount"),
        ({"amount_minor": 50}, "amount"),  # below one coin
        ({"currency": "EUR"}, "currency"),
        ({"store": "XX-NOPE-1"}, "store"),
        ({"key": ""}, "idempotency_key"),
        ({"key": "k" * 101}, "idempotency_key"),
    ],
)
def test_bad_earns_write_nothing(app, customer, kwargs, field):
    with app.app_context():
        args = {"amount_minor": 1000, "store": "US-NYC-01", "currency": "USD", "key": _key()}
        args.update(kwargs)
        with pytest.raises(errors.ValidationFailed) as error:
            ledger.earn(card=customer["number"], store_code=args["store"],
                        amount_minor=args["amount_minor"], currency=args["currency"],
                        idempotency_key=args["key"], staff_id=None)
        assert field in error.value.errors
        assert ledger_count() == 0


@pytest.mark.parametrize(("key", "message"), [
    *[(key, "An idempotency key is required.") for key in ("", "   ")],
    *[(key, "Use at most 100 printable characters.")
      for key in ("tab\there", "line\nbreak", "nul\x00", "k" * 101)],
])
def test_blank_long_or_unprintable_keys_are_refused(app, customer, key, message):
    with app.app_context():
        with pytest.raises(errors.ValidationFailed) as error:
            ledger.earn(card=customer["number"], store_code="US-NYC-01", amount_minor=1000,
                        currency="USD", idempotency_key=key, staff_id=None)
        assert error.value.errors == {"idempotency_key": [message]}
        assert ledger_count() == 0


def test_a_key_of_the_longest_allowed_length_books(app, customer):
    with app.app_context():
        key = "k" * ledger.KEY_MAX_LENGTH
        assert earn(customer["number"], 1000, key=key).coins == 10
        assert earn(customer["number"], 1000, key=key).replayed


def test_amount_edges(app, customer):
    """One minor unit is an amount but too small for a coin; the largest amount books."""
    with app.app_context():
        with pytest.raises(errors.ValidationFailed) as error:
            earn(customer["number"], 1)
        assert error.value.errors == {"amount": ["This amount is too small to earn a coin."]}
        assert earn(customer["number"], 100).coins == 1  # exactly one coin's worth
        most = earn(customer["number"], ledger.MAX_AMOUNT_MINOR)
        assert (most.coins, most.balance) == (ledger.MAX_AMOUNT_MINOR // 100, 1_000_001)
        for refused in (ledger.MAX_AMOUNT_MINOR + 1, 0, -100, True, 1000.0, "1000"):
            with pytest.raises(errors.ValidationFailed) as error:
                earn(customer["number"], refused)
            # Zero too: refused as no amount, not as too small for a coin.
            assert error.value.errors == {
                "amount": ["Enter an amount above 0 and at most 1,000,000.00 USD."]}
        assert ledger_count() == 2


@pytest.mark.parametrize(("currency", "most"), [
    ("USD", "1,000,000.00 USD"), ("JPY", "100,000,000 JPY"),
    ("XYZ", "1,000,000"), (None, "1,000,000"),  # not a currency we know: no unit named
])
def test_the_largest_amount_is_named_in_the_refusal(app, customer, currency, most):
    with app.app_context():
        with pytest.raises(errors.ValidationFailed) as error:
            earn(customer["number"], ledger.MAX_AMOUNT_MINOR + 1, currency=currency)
        assert error.value.errors == {"amount": [f"Enter an amount above 0 and at most {most}."]}


def test_coin_count_edges(app, customer):
    """Zero and one past the limit are refused before anything is read; the limit books."""
    with app.app_context():
        earn(customer["number"], ledger.MAX_AMOUNT_MINOR)
        for refused in (0, ledger.MAX_REDEEM_COINS + 1, True, 2.0):
            with pytest.raises(errors.ValidationFailed) as error:
                redeem(customer["number"], refused)
            assert list(error.value.errors) == ["coins"]
        assert redeem(customer["number"], ledger.MAX_REDEEM_COINS).balance == 0
        assert ledger_count() == 2


def test_a_reversal_cannot_be_reversed(app, customer):
    with app.app_context():
        bought = earn(customer["number"], 1000)
        reversal = ledger.reverse(transaction_id=bought.transaction_id, idempotency_key=_key(),
                                  staff_id=None)
        with pytest.raises(errors.Conflict, match=says(
                "Only earns, redemptions and adjustments can be reversed.")):
            ledger.reverse(transaction_id=reversal.transaction_id, idempotency_key=_key(),
                           staff_id=None)
        assert ledger_count() == 2
        assert assert_invariants()[customer["wallet_id"]] == 0


@pytest.mark.parametrize("card", ["", "abc", "123", "<script>", "1' OR '1'='1", None, 123, b"123"])
def test_malformed_cards_write_nothing(app, customer, card):
    with app.app_context():
        for action in (lambda: earn(card, 1000), lambda: redeem(card, 1)):
            with pytest.raises(errors.ValidationFailed) as error:
                action()
            assert error.value.errors == NOT_A_CARD
        assert ledger_count() == 0


def test_unknown_cards_write_nothing(app, customer):
    with app.app_context():
        with pytest.raises(errors.NotFound, match=says("No active card with that number.")):
            earn("000000000000", 1000)
        assert ledger_count() == 0


OPS = st.lists(
    st.one_of(
        st.tuples(st.just("earn"), st.integers(min_value=1, max_value=5000)),
        st.tuples(st.just("redeem"), st.integers(min_value=1, max_value=60)),
        st.tuples(st.just("reverse"), st.integers(min_value=0, max_value=20)),
        st.tuples(st.just("retry"), st.integers(min_value=0, max_value=20)),
    ),
    min_size=1,
    max_size=25,
)


@settings(max_examples=40, deadline=None, derandomize=True,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(ops=OPS)
def test_random_sequences_keep_balance_equal_to_ledger(app, ops):
    """Whatever sequence of earn/redeem/reverse/retry: balance == sum(ledger) >= 0, and a
    retried request never changes anything."""
    with app.app_context():
        person = new_customer(f"h{next(_emails)}@example.com")
        done: list[tuple[str, dict, object]] = []  # (key, request, receipt)
        expected = 0
        for op, value in ops:
            try:
                if op == "earn":
                    key = _key()
                    receipt = earn(person["number"], value * 100, key=key)
                    done.append((key, {"op": "earn", "amount": value * 100}, receipt))
                    expected += value
                elif op == "redeem":
                    key = _key()
                    receipt = redeem(person["number"], value, key=key)
                    done.append((key, {"op": "redeem", "coins": value}, receipt))
                    expected -= value
                elif op == "reverse" and done:
                    _, _, target = done[value % len(done)]
                    if target.kind in ("earn", "redeem"):
                        receipt = ledger.reverse(transaction_id=target.transaction_id,
                                                 idempotency_key=_key(), staff_id=None)
                        expected += receipt.coins
                elif op == "retry" and done:
                    key, request, first = done[value % len(done)]
                    if request["op"] == "earn":
                        again = earn(person["number"], request["amount"], key=key)
                    else:
                        again = redeem(person["number"], request["coins"], key=key)
                    assert again.transaction_id == first.transaction_id
                    assert again.replayed
            except (errors.InsufficientCoins, errors.AlreadyReversed):
                pass
            balances = assert_invariants()
            assert balances[person["wallet_id"]] == expected


def _race(threads: int, fn) -> list:
    barrier = threading.Barrier(threads)

    def run(i):
        barrier.wait()
        try:
            return fn(i)
        except Exception as error:
            return error

    with ThreadPoolExecutor(threads) as pool:
        return list(pool.map(run, range(threads)))


def test_concurrent_redeems_never_overspend(app, customer):
    """N tills redeem from one wallet at once, asking for more than it holds: exactly the
    affordable ones succeed, none lost, none doubled, balance >= 0."""
    threads, each, funded = 12, 5, 42
    with app.app_context():
        earn(customer["number"], funded * 100)

    def attempt(_):
        with app.app_context():
            return redeem(customer["number"], each)

    results = _race(threads, attempt)
    ok = [r for r in results if not isinstance(r, Exception)]
    refused = [r for r in results if isinstance(r, errors.InsufficientCoins)]
    assert len(ok) + len(refused) == threads, [r for r in results if isinstance(r, Exception)
                                                and not isinstance(r, errors.InsufficientCoins)]
    assert len(ok) == funded // each
    assert len({r.transaction_id for r in ok}) == len(ok)
    with app.app_context():
        balance = assert_invariants()[customer["wallet_id"]]
    assert balance == funded - each * len(ok)
    print(f"\nconcurrent redeem: attempts={threads} successes={len(ok)} "
          f"refused={len(refused)} final balance={balance} (ledger sum equal)")


def test_racing_retries_with_one_key_write_one_row(app, customer):
    threads = 10
    key = _key()

    def attempt(_):
        with app.app_context():
            return earn(customer["number"], 700, key=key)

    results = _race(threads, attempt)
    errors = [r for r in results if isinstance(r, Exception)]
    assert not errors, errors
    assert len({r.transaction_id for r in results}) == 1
    assert sum(not r.replayed for r in results) == 1
    with app.app_context():
        assert ledger_count() == 1
        assert assert_invariants()[customer["wallet_id"]] == 7


# -- rewards, keys stored before scoping, adjustments -----------------------------------


def _reward(region: str, name: str, coins: int) -> int:
    return db.write(lambda conn: conn.execute(insert(rewards_table).values(
        region=region, name=name, coins=coins, active=True, sort=0)).inserted_primary_key[0],
        name="test.reward")


def _row(transaction_id):
    return db.read(lambda conn: queries.entry_by_id(conn, transaction_id), name="test.row",
                   causal=True)


def test_a_reward_redemption_records_its_reward_and_its_key_names_it(app, customer):
    """The reward is on the row and in the request's hash: the key of a reward's
    redemption, sent again for another reward or for plain coins, is refused. A fresh
    redemption's receipt says it was not replayed (False, not merely falsy)."""
    with app.app_context():
        coffee, tea = _reward("ie", "Coffee", 3), _reward("ie", "Tea", 3)
        earn(customer["number"], 5000)
        key = _key()
        spent = ledger.redeem(card=customer["number"], store_code="IE-DUB-01", coins=3,
                              idempotency_key=key, staff_id=None, confirmed=True,
                              reward_id=coffee)
        assert spent.replayed is False
        assert _row(spent.transaction_id)["reward_id"] == coffee
        for other in ({"reward_id": tea}, {}):
            with pytest.raises(errors.IdempotencyMismatch, match=says(KEY_REUSED)):
                ledger.redeem(card=customer["number"], store_code="IE-DUB-01", coins=3,
                              idempotency_key=key, staff_id=None, confirmed=True, **other)
        again = ledger.redeem(card=customer["number"], store_code="IE-DUB-01", coins=3,
                              idempotency_key=key, staff_id=None, confirmed=True,
                              reward_id=coffee)
        assert (again.transaction_id, again.replayed) == (spent.transaction_id, True)
        plain = redeem(customer["number"], 2)
        assert _row(plain.transaction_id)["reward_id"] is None
        assert ledger_count() == 3
        assert assert_invariants()[customer["wallet_id"]] == 45


def test_a_reward_redemptions_hash_is_stored_in_a_stable_form(app, customer):
    """As for the other requests: any release computes the same hash for it (and a
    redemption without a reward hashes as it did before rewards existed)."""
    with app.app_context():
        coffee = _reward("ie", "Coffee", 3)
        earn(customer["number"], 5000)
        spent = ledger.redeem(card=customer["number"], store_code="IE-DUB-01", coins=3,
                              idempotency_key=_key(), staff_id=None, confirmed=True,
                              reward_id=coffee)
        fields = {"kind": "redeem", "card": customer["number"], "store": "IE-DUB-01",
                  "coins": 3, "reward": coffee}
        expected = hashlib.sha256(json.dumps(fields, sort_keys=True).encode()).hexdigest()
        assert _row(spent.transaction_id)["request_hash"] == expected


def test_a_redemption_stored_under_an_old_key_replays_for_its_own_staff_member(app, customer):
    """A redemption first sent with a key of the old scheme (stored bare) and retried
    with the new one finds its row, for the staff member who booked it only."""
    with app.app_context():
        sam = create_staff(email=f"sam{next(_emails)}@example.com", store_code="IE-DUB-01",
                           name="Sam", password=PASSWORD)["id"]
        bo = create_staff(email=f"bo{next(_emails)}@example.com", store_code="IE-DUB-01",
                          name="Bo", password=PASSWORD)["id"]
        earn(customer["number"], 5000)
        old = "till-" + _key()

        def send(staff_id, key, legacy=()):
            return ledger.redeem(card=customer["number"], store_code="IE-DUB-01", coins=4,
                                 idempotency_key=key, staff_id=staff_id, confirmed=True,
                                 legacy_keys=legacy)

        first = send(sam, old)
        retry = send(sam, f"api:{sam}:{old}", (old,))
        assert (retry.transaction_id, retry.replayed) == (first.transaction_id, True)
        other = send(bo, f"api:{bo}:{old}", (old,))
        assert other.transaction_id != first.transaction_id
        assert other.replayed is False
        assert ledger_count() == 3
        assert assert_invariants()[customer["wallet_id"]] == 42


def _adjust(wallet_id, coins, key=None):
    return ledger.adjust(wallet_id=wallet_id, coins=coins, reason="Goodwill",
                         label="Sorry about the wait", idempotency_key=key or _key(),
                         staff_id=None, store_code=None, region="us")


ADJUST_REFUSED = {"coins": ["Enter whole coins, not 0 (use - to take away)."]}


@pytest.mark.parametrize("coins", [0, True, False, "5", 5.0, None,
                                   1_000_001, -1_000_001])
def test_adjustments_of_no_whole_coins_or_too_many_write_nothing(app, customer, coins):
    with app.app_context():
        with pytest.raises(errors.ValidationFailed) as error:
            _adjust(customer["wallet_id"], coins)
        assert error.value.errors == ADJUST_REFUSED
        assert ledger_count() == 0


def test_adjustment_edges_book(app, customer):
    """One coin either way and the largest adjustment either way are adjustments."""
    with app.app_context():
        wallet = customer["wallet_id"]
        assert _adjust(wallet, 1).balance == 1
        assert _adjust(wallet, ledger.MAX_REDEEM_COINS).balance == 1_000_001
        assert _adjust(wallet, -1).balance == 1_000_000
        taken = _adjust(wallet, -ledger.MAX_REDEEM_COINS)
        assert (taken.kind, taken.coins, taken.balance, taken.replayed) == (
            "adjustment", -ledger.MAX_REDEEM_COINS, 0, False)
        with pytest.raises(errors.InsufficientCoins, match=says(
                "The wallet does not hold that many coins.")):
            _adjust(wallet, -1)
        assert ledger_count() == 4
        assert assert_invariants()[wallet] == 0


def test_a_replay_answers_with_the_first_receipt(app, customer):
    """Whatever the kind, a request sent again gets the receipt it got the first time
    (looked up again: the card number, the store, the amounts), marked replayed."""
    with app.app_context():
        staff_id = create_staff(email=f"sam{next(_emails)}@example.com",
                                store_code="US-NYC-01", name="Sam", password=PASSWORD)["id"]
        earn(customer["number"], 5000)
        calls = {
            "earn": lambda key: ledger.earn(
                card=customer["number"], store_code="US-NYC-01", amount_minor=2599,
                currency="USD", idempotency_key=key, staff_id=staff_id),
            "redeem": lambda key: ledger.redeem(
                card=customer["number"], store_code="IE-DUB-01", coins=4,
                idempotency_key=key, staff_id=staff_id, confirmed=True),
            "adjust": lambda key: ledger.adjust(
                wallet_id=customer["wallet_id"], coins=-2, reason="Double scan",
                label="Correction", idempotency_key=key, staff_id=staff_id,
                store_code="IN-BLR-01", region="in"),
        }
        receipts = {}
        for kind, call in calls.items():
            key = _key()
            first, again = call(key), call(key)
            assert first.replayed is False
            assert again.replayed is True
            assert again == dataclasses.replace(first, replayed=True), kind
            receipts[kind] = first
        assert (receipts["earn"].card_number, receipts["earn"].store_code,
                receipts["earn"].amount_minor, receipts["earn"].currency,
                receipts["earn"].region) == (customer["number"], "US-NYC-01", 2599, "USD", "us")
        assert (receipts["redeem"].card_number, receipts["redeem"].store_code,
                receipts["redeem"].amount_minor, receipts["redeem"].region) == (
            customer["number"], "IE-DUB-01", None, "ie")
        assert (receipts["adjust"].card_number, receipts["adjust"].store_code,
                receipts["adjust"].region, receipts["adjust"].coins) == (
            None, "IN-BLR-01", "in", -2)
        key = _key()
        undo = ledger.reverse(transaction_id=receipts["earn"].transaction_id,
                              idempotency_key=key, staff_id=staff_id, store_code="IE-DUB-01",
                              reason="Wrong card")
        again = ledger.reverse(transaction_id=receipts["earn"].transaction_id,
                               idempotency_key=key, staff_id=staff_id, store_code="IE-DUB-01",
                               reason="Wrong card")
        assert again == dataclasses.replace(undo, replayed=True)
        assert (undo.kind, undo.coins, undo.card_number, undo.store_code, undo.region,
                undo.reverses_id, undo.replayed) == (
            "reversal", -25, customer["number"], "IE-DUB-01", "ie",
            receipts["earn"].transaction_id, False)
        rows = {"adjust": _row(receipts["adjust"].transaction_id),
                "reversal": _row(undo.transaction_id)}
        assert (rows["adjust"]["reason"], rows["adjust"]["label"], rows["adjust"]["staff_id"],
                rows["adjust"]["card_id"]) == ("Double scan", "Correction", staff_id, None)
        assert (rows["reversal"]["reason"], rows["reversal"]["staff_id"],
                rows["reversal"]["card_id"]) == ("Wrong card", staff_id, customer["card_id"])
        assert assert_invariants()[customer["wallet_id"]] == 50 + 25 - 4 - 2 - 25


def test_a_reversal_without_a_store_is_booked_where_the_original_was(app, customer):
    with app.app_context():
        bought = earn(customer["number"], 16000, store="IN-BLR-01", currency="INR")
        undo = ledger.reverse(transaction_id=bought.transaction_id, idempotency_key=_key(),
                              staff_id=None)
        assert (undo.store_code, undo.region, undo.coins) == ("IN-BLR-01", "in", 0 - bought.coins)
        adjusted = _adjust(customer["wallet_id"], 3)
        assert (adjusted.store_code, adjusted.region) == (None, "us")


def test_the_reversal_check_sees_the_original_and_may_refuse(app, customer):
    """``check`` (the rulebook's store check) sees the original entry inside the
    transaction; what it raises goes to the caller and nothing is written."""
    with app.app_context():
        bought = earn(customer["number"], 1000)
        seen = []

        def refuse(original):
            seen.append((original["id"], original["kind"], original["coins"]))
            raise errors.Conflict("Not here.")

        with pytest.raises(errors.Conflict, match=says("Not here.")):
            ledger.reverse(transaction_id=bought.transaction_id, idempotency_key=_key(),
                           staff_id=None, check=refuse)
        assert seen == [(bought.transaction_id, "earn", 10)]
        assert ledger_count() == 1


def test_the_reversal_window_can_be_given(app, customer, monkeypatch):
    """A manager's window is passed in: longer than the default, it lets an older
    transaction through; shorter, it refuses a younger one."""
    with app.app_context():
        bought = earn(customer["number"], 1000)
        default = app.config["REVERSAL_WINDOW"]
        later = _stored_created_at(bought.transaction_id) + default + timedelta(seconds=5)
        monkeypatch.setattr("webapp.ledger.services.utcnow", lambda: later)
        with pytest.raises(errors.Conflict, match=r"^This transaction is too old to reverse\.$"):
            ledger.reverse(transaction_id=bought.transaction_id, idempotency_key=_key(),
                           staff_id=None, window=default)
        undone = ledger.reverse(transaction_id=bought.transaction_id, idempotency_key=_key(),
                                staff_id=None, window=default + timedelta(seconds=10))
        assert undone.coins == -10
        again = earn(customer["number"], 1000)
        soon = _stored_created_at(again.transaction_id) + timedelta(seconds=2)
        monkeypatch.setattr("webapp.ledger.services.utcnow", lambda: soon)
        with pytest.raises(errors.Conflict, match=r"^This transaction is too old to reverse\.$"):
            ledger.reverse(transaction_id=again.transaction_id, idempotency_key=_key(),
                           staff_id=None, window=timedelta(seconds=1))


def test_an_earn_names_what_is_wrong_exactly(app, customer):
    with app.app_context():
        for kwargs, expected in (
                ({"currency": "EUR"}, {"currency": ["This store takes USD, not EUR."]}),
                ({"store": "XX-NOPE-1"}, {"store": ["Unknown store."]})):
            with pytest.raises(errors.ValidationFailed) as error:
                earn(customer["number"], 1000, **kwargs)
            assert error.value.errors == expected
        assert ledger_count() == 0


def test_the_tills_lookup_resolves_a_number_or_a_live_code(app, customer):
    with app.app_context():
        earn(customer["number"], 1200)
        by_number = ledger.lookup(customer["number"])
        assert (by_number.card_id, by_number.wallet_id, by_number.account_id,
                by_number.number, by_number.balance, by_number.code_step) == (
            customer["card_id"], customer["wallet_id"], customer["account"]["id"],
            customer["number"], 12, None)
        assert (by_number.display_name, by_number.account_name) == (
            "Test Customer", "Test Customer")
        live = ledger.lookup(codes.rotating_payload(customer["number"], customer["secret"]))
        assert live.card_id == customer["card_id"]
        assert live.code_step in (codes.current_step() - 1, codes.current_step())
        with pytest.raises(errors.ValidationFailed) as error:
            ledger.lookup(None)
        assert error.value.errors == NOT_A_CARD


def test_an_adjustment_can_be_reversed(app, customer):
    with app.app_context():
        given = _adjust(customer["wallet_id"], 5)
        undo = ledger.reverse(transaction_id=given.transaction_id, idempotency_key=_key(),
                              staff_id=None)
        assert (undo.kind, undo.coins, undo.balance, undo.reverses_id) == (
            "reversal", -5, 0, given.transaction_id)


def test_stores_are_listed_in_code_order(app):
    with app.app_context():
        codes_listed = [store["code"] for store in ledger.stores()]
        assert {"US-NYC-01", "US-SEA-01", "IE-DUB-01", "IN-BLR-01"} <= set(codes_listed)
        assert codes_listed == sorted(codes_listed)  # they were created in another order


def test_an_adjustments_key_and_hash_name_everything_it_does(app, customer):
    """Sent again with the same key, an adjustment of another wallet, amount, reason or
    label is refused; the stored hash is the one any release computes."""
    with app.app_context():
        other = new_customer(f"c{next(_emails)}@example.com")
        key = _key()
        first = ledger.adjust(wallet_id=customer["wallet_id"], coins=5, reason="Goodwill",
                              label="Sorry", idempotency_key=key, staff_id=None,
                              store_code=None, region="us")
        fields = {"kind": "adjustment", "wallet": customer["wallet_id"], "coins": 5,
                  "reason": "Goodwill", "label": "Sorry"}
        assert _row(first.transaction_id)["request_hash"] == hashlib.sha256(
            json.dumps(fields, sort_keys=True).encode()).hexdigest()
        for change in ({"wallet_id": other["wallet_id"]}, {"coins": 6},
                       {"reason": "Other"}, {"label": "Other"}):
            args = {"wallet_id": customer["wallet_id"], "coins": 5, "reason": "Goodwill",
                    "label": "Sorry", **change}
            with pytest.raises(errors.IdempotencyMismatch, match=says(KEY_REUSED)):
                ledger.adjust(**args, idempotency_key=key, staff_id=None, store_code=None,
                              region="us")
        assert ledger_count() == 1


def test_history_is_newest_first_limited_and_names_card_and_store(app, customer):
    with app.app_context():
        bought = earn(customer["number"], 1000)
        spent = redeem(customer["number"], 2)
        given = _adjust(customer["wallet_id"], 1)
        items = ledger.history(customer["wallet_id"], limit=2)
        assert [i["id"] for i in items] == [given.transaction_id, spent.transaction_id]
        assert (items[0]["card_number"], items[0]["card_name"]) == (None, None)
        assert (items[1]["card_number"], items[1]["card_name"], items[1]["store_code"]) == (
            customer["number"], "Test Customer", "IE-DUB-01")
        older = ledger.history(customer["wallet_id"], limit=2, before_id=spent.transaction_id)
        assert [(i["id"], i["store_code"]) for i in older] == [
            (bought.transaction_id, "US-NYC-01")]


def test_history_names_the_reward_a_redemption_was_for(app, customer):
    with app.app_context():
        # Two rewards, so a wrong join names the other one.
        _, cake = (db.write(lambda conn, name=name: conn.execute(insert(rewards_table).values(
            region="ie", name=name, coins=2, active=True, sort=0)).inserted_primary_key[0],
            name="test.reward") for name in ("Coffee", "Cake"))
        earn(customer["number"], 1000)
        ledger.redeem(card=customer["number"], store_code="IE-DUB-01", coins=2,
                      idempotency_key=_key(), staff_id=None, confirmed=True, reward_id=cake)
        items = ledger.history(customer["wallet_id"], limit=5)
        assert [(i["kind"], i["reward_id"], i["reward_name"]) for i in items] == [
            ("redeem", cake, "Cake"), ("earn", None, None)]

def test_a_blocked_card_books_nothing_and_says_why(app, customer):
    with app.app_context():
        db.write(lambda conn: conn.execute(update(cards_table).where(
            cards_table.c.id == customer["card_id"]).values(blocked_at=utcnow())),
            name="test.block")
        with pytest.raises(errors.CardBlocked, match=says(
                "This card is blocked (reported lost). Nothing was booked: the customer can "
                "get a new card number from support.")):
            earn(customer["number"], 1000)
        assert ledger_count() == 0
