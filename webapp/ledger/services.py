"""Earning, redeeming and reversing coins: the product's contract.

Every movement is one transaction that (1) returns the first result if its idempotency
key was seen before, (2) applies a conditional UPDATE to the wallet, (3) appends the
ledger row. Each transaction is safe to run again from the start, which is what lets
the database layer retry conflicts and unknown COMMIT outcomes on another member
(``db.write(..., idempotent=True)``).

A row found by its key is a replay (``Idempotent-Replayed``) only when a client sent the
request again. When the router's own retry, after losing the answer to COMMIT, finds
the row its earlier attempt wrote, the request was sent once and is answered as the
first response would have been (:class:`_Attempts`).
"""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Protocol

from flask import current_app
from sqlalchemy import Connection
from sqlalchemy import exc as sa_exc

from webapp import money
from webapp.card import codes
from webapp.clock import utcnow
from webapp.database import RetryTransaction, after_unknown_commit
from webapp.errors import (
    AlreadyReversed,
    CardBlocked,
    CardCodeRejected,
    ConfirmationRequired,
    Conflict,
    IdempotencyMismatch,
    InsufficientCoins,
    NotFound,
    ValidationFailed,
)
from webapp.extensions import db
from webapp.telemetry import meter

from . import queries

_transactions = meter.create_counter(
    "loyalty.ledger.transactions", description="Ledger rows written, by kind and region")
_coins = meter.create_counter(
    "loyalty.ledger.coins", unit="{coin}", description="Coins moved, by kind and region")
_replays = meter.create_counter(
    "loyalty.ledger.replays",
    description="Requests answered from the ledger by their idempotency key, by kind and "
                "region: a retry (client's or router's) that found the first write")

MAX_AMOUNT_MINOR = 100_000_000  # a single purchase above 1,000,000.00 is a typo
MAX_REDEEM_COINS = 1_000_000
KEY_MAX_LENGTH = 100


@dataclass(frozen=True)
class Receipt:
    """What a till or API client gets back, identical for a replayed request."""

    transaction_id: int
    kind: str
    coins: int
    balance: int
    card_number: str | None
    amount_minor: int | None
    currency: str | None
    store_code: str | None
    region: str
    created_at: datetime
    replayed: bool
    reverses_id: int | None = None


@dataclass(frozen=True)
class ScannedCard:
    card_id: int
    wallet_id: int
    account_id: int  # the wallet's owner (the holder, for a family member's card)
    number: str
    display_name: str
    account_name: str
    balance: int
    code_step: int | None  # set when a valid rotating code was scanned

    @property
    def first_name(self) -> str:
        return self.display_name.split()[0] if self.display_name.strip() else ""


@dataclass(frozen=True)
class Booking:
    """What the rulebook decided for a movement: the store to book at and, for a reward,
    the coins it costs (None: the coins asked for)."""

    store_code: str | None
    coins: int | None = None


class Guard(Protocol):
    """The rulebook's half of an earn or redeem, run in the movement's own transaction
    (webapp.staff.services) so the staff member's checks and the audit row cost no
    transaction of their own: ``check`` reads and decides before anything is written
    (raising refuses, and nothing is written), ``record`` writes the audit row with the
    ledger row. Both run again whenever the transaction does."""

    def check(self, conn: Connection) -> Booking: ...

    def record(self, conn: Connection, receipt: Receipt) -> None: ...


def coins_for(amount_minor: int, store: dict[str, Any]) -> int:
    """Earning rounds down: 7.99 USD at 1 coin per USD earns 7 coins."""
    return amount_minor // store["minor_per_coin"]


def _request_hash(**fields: Any) -> str:
    return hashlib.sha256(json.dumps(fields, sort_keys=True, default=str).encode()).hexdigest()


def _check_key(key: str | None) -> str:
    if not key or not key.strip():
        raise ValidationFailed({"idempotency_key": ["An idempotency key is required."]})
    if len(key) > KEY_MAX_LENGTH or not key.isprintable():
        raise ValidationFailed(
            {"idempotency_key": [f"Use at most {KEY_MAX_LENGTH} printable characters."]})
    return key


class _Attempts:
    """The ledger rows this call's attempts wrote. A row found by key is this call's own
    (not a replay) when an attempt wrote it and that attempt's COMMIT answer was lost."""

    def __init__(self) -> None:
        self.written: set[int] = set()

    def wrote(self, entry: dict[str, Any]) -> dict[str, Any]:
        self.written.add(entry["id"])
        return entry

    def is_own(self, conn: Connection, entry: dict[str, Any]) -> bool:
        return entry["id"] in self.written and after_unknown_commit(conn)

    def own(self, conn: Connection, key: str) -> Receipt | None:
        """After a lost COMMIT answer: the receipt of the row an earlier attempt wrote,
        if that COMMIT happened. A guarded movement asks this before its guard, which
        must not judge again what was already booked (its hourly total now counts it)."""
        if not self.written or not after_unknown_commit(conn):
            return None
        entry = queries.entry_by_key(conn, key)
        if entry is None or entry["id"] not in self.written:
            return None
        return _receipt(conn, entry, replayed=False)


def _replay(conn: Connection, key: str, request_hash: str, attempts: _Attempts, *,
            legacy_keys: Sequence[str] = (), staff_id: int | None = None,
            found_id: int | None = None, probed: bool = False) -> Receipt | None:
    """The first result of a request stored under ``key``, or None. ``probed``: the
    caller's own statement already looked the key up (``found_id``)."""
    if probed:
        entry = queries.entry_by_id(conn, found_id) if found_id is not None else None
    else:
        entry = queries.entry_by_key(conn, key)
    if entry is None and legacy_keys:
        # A request first sent before its key's scheme changed, retried after: it was
        # stored under its old key. Old keys were not scoped per staff member, so only
        # the same staff member's entry counts.
        entry = queries.entry_by_legacy_key(conn, legacy_keys, staff_id)
    if entry is None:
        return None
    if entry["request_hash"] != request_hash:
        raise IdempotencyMismatch(
            "This idempotency key was already used for a different transaction.")
    return _receipt(conn, entry, replayed=not attempts.is_own(conn, entry))


def _receipt(conn: Connection, entry: dict[str, Any], *, replayed: bool,
             card: ScannedCard | None = None, store: dict[str, Any] | None = None) -> Receipt:
    """``card`` and ``store``, when the caller has them in hand (a fresh earn or redeem),
    save two queries in the hottest transaction; a replay looks them up."""
    number = card.number if card else (
        queries.card_number(conn, entry["card_id"]) if entry["card_id"] else None)
    if store is None and entry["store_id"]:
        store = queries.store_by_id(conn, entry["store_id"])
    return Receipt(
        transaction_id=entry["id"], kind=entry["kind"], coins=entry["coins"],
        balance=entry["balance_after"], card_number=number,
        amount_minor=entry["amount_minor"], currency=entry["currency"],
        store_code=store["code"] if store else None, region=entry["region"],
        created_at=entry["created_at"], replayed=replayed, reverses_id=entry.get("reverses_id"),
    )


def _append(conn: Connection, *, wallet_id: int, delta: int, now: datetime,
            **row: Any) -> dict[str, Any]:
    """Conditional balance update + ledger row; raises InsufficientCoins on 0 rows."""
    balance = queries.apply_to_wallet(conn, wallet_id, delta, now)
    if balance is None:
        raise InsufficientCoins("Not enough coins in the wallet for this.")
    values = dict(row, wallet_id=wallet_id, coins=delta, balance_after=balance, created_at=now)
    try:
        entry_id = queries.insert_entry(conn, **values)
    except sa_exc.IntegrityError as error:
        # Another request with the same key (or reversing the same entry) committed
        # first; running again from the top will find it.
        raise RetryTransaction() from error
    return dict(values, id=entry_id)


def _recorded(receipt: Receipt) -> Receipt:
    """Counts first writes only: a replayed request moved no coins."""
    if receipt.replayed:
        _replays.add(1, {"kind": receipt.kind, "region": receipt.region})
    if not receipt.replayed:
        attributes = {"kind": receipt.kind, "region": receipt.region}
        _transactions.add(1, attributes)
        _coins.add(abs(receipt.coins), attributes)
    return receipt


def count_movement(kind: str, region: str, coins: int) -> None:
    """The same counters for a movement booked outside this module (an expiry)."""
    attributes = {"kind": kind, "region": region}
    _transactions.add(1, attributes)
    _coins.add(abs(coins), attributes)


def scan(conn: Connection, scanned_text: str, *, now: float | None = None) -> ScannedCard:
    """Resolves what the till scanned or typed to an active card."""
    scanned = _parsed(scanned_text)
    return _checked_card(queries.card_by_number(conn, scanned.number), scanned, now)


def _parsed(scanned_text: str) -> codes.ScannedCode:
    # The doors send text; anything else from a caller (None, a number) is no card either.
    scanned = codes.parse_scanned(scanned_text) if isinstance(scanned_text, str) else None
    if scanned is None:
        raise ValidationFailed({"card": ["That is not a card number or card QR code."]})
    return scanned


def _checked_card(card: dict[str, Any] | None, scanned: codes.ScannedCode,
                  now: float | None) -> ScannedCard:
    """The till's checks of the card found for ``scanned`` (None: no active card)."""
    if card is None:
        raise NotFound("No active card with that number.")
    if card.get("blocked_at") is not None:
        raise CardBlocked("This card is blocked (reported lost). Nothing was booked: the "
                          "customer can get a new card number from support.")
    step = None
    if scanned.is_rotating:
        step = codes.matching_step(card["code_secret"], scanned.code, now)
        if step is None:
            raise CardCodeRejected(
                "This card code has expired. Ask the customer to show the live card.")
    return ScannedCard(card["id"], card["wallet_id"], card["account_id"], card["number"],
                       card["display_name"], card["account_name"], card["balance"], step)


def lookup(scanned_text: str) -> ScannedCard:
    return db.read(lambda conn: scan(conn, scanned_text), name="till.lookup", causal=True)


def _known(store: dict[str, Any] | None) -> dict[str, Any]:
    if store is None:
        raise ValidationFailed({"store": ["Unknown store."]})
    return store


def _context(conn: Connection, key: str, store_code: str, card: str, *,
             steps: Sequence[int] = ()) -> queries.Context:
    """The key, the store and the card in one statement (see queries.movement_context).
    Text that is no card number finds no card; it is refused where scan() refused it."""
    scanned = codes.parse_scanned(card or "") if isinstance(card, str) else None
    return queries.movement_context(conn, key=key, store_code=store_code,
                                    number=scanned.number if scanned else None, steps=steps)


def _largest_amount(currency: object) -> str:
    """MAX_AMOUNT_MINOR for messages: in the currency when it is one we know."""
    if isinstance(currency, str) and currency in money.CURRENCY_DECIMALS:
        return money.format_money(MAX_AMOUNT_MINOR, currency)
    return f"{MAX_AMOUNT_MINOR // 100:,}"


def _guarded(book: Callable[[Connection, Booking], Receipt], store_code: str | None,
             guard: Guard | None, key: str, attempts: _Attempts) -> Callable[[Connection], Receipt]:
    """The transaction's work: ``book`` alone, or between the guard's check and record."""
    if guard is None:
        return lambda conn: book(conn, Booking(store_code))

    def work(conn: Connection) -> Receipt:
        own = attempts.own(conn, key)
        if own is not None:
            return own  # booked, with its audit row, by the attempt whose answer was lost
        receipt = book(conn, guard.check(conn))
        guard.record(conn, receipt)
        return receipt

    return work


def _check_coins(coins: object) -> int:
    if (not isinstance(coins, int) or isinstance(coins, bool)
            or not 0 < coins <= MAX_REDEEM_COINS):
        raise ValidationFailed(
            {"coins": [f"Enter whole coins above 0 and at most {MAX_REDEEM_COINS:,}."]})
    return coins


def earn(*, card: str, store_code: str | None, amount_minor: int, currency: str,
         idempotency_key: str, staff_id: int | None,
         legacy_keys: Sequence[str] = (), guard: Guard | None = None) -> Receipt:
    """Coins for a purchase at ``store_code``: the amount is in the store's currency.
    With a ``guard``, the guard's check names the store (``store_code`` is ignored)."""
    key = _check_key(idempotency_key)
    if (not isinstance(amount_minor, int) or isinstance(amount_minor, bool)
            or not 0 < amount_minor <= MAX_AMOUNT_MINOR):
        most = _largest_amount(currency)
        raise ValidationFailed({"amount": [f"Enter an amount above 0 and at most {most}."]})
    attempts = _Attempts()

    def book(conn: Connection, booking: Booking) -> Receipt:
        now = time.time()
        store_code = booking.store_code
        digest = _request_hash(kind="earn", card=card, store=store_code, amount=amount_minor,
                               currency=currency)
        context = _context(conn, key, store_code, card)
        replay = _replay(conn, key, digest, attempts, legacy_keys=legacy_keys,
                         staff_id=staff_id, found_id=context.replay_id, probed=True)
        if replay:
            return replay
        store = _known(context.store)
        if currency != store["currency"]:
            raise ValidationFailed(
                {"currency": [f"This store takes {store['currency']}, not {currency}."]})
        scanned = _checked_card(context.card, _parsed(card), now)
        coins = coins_for(amount_minor, store)
        if coins < 1:
            raise ValidationFailed({"amount": ["This amount is too small to earn a coin."]})
        entry = attempts.wrote(_append(
            conn, wallet_id=scanned.wallet_id, delta=coins, now=utcnow(), kind="earn",
            card_id=scanned.card_id, amount_minor=amount_minor, currency=currency,
            store_id=store["id"], region=store["region"], staff_id=staff_id,
            idempotency_key=key, request_hash=digest,
        ))
        return _receipt(conn, entry, replayed=False, card=scanned, store=store)

    # Idempotent: a second run finds the first one's row by its key.
    return _recorded(db.write(_guarded(book, store_code, guard, key, attempts),
                              name="ledger.earn", idempotent=True))


def redeem(*, card: str, store_code: str | None, coins: int | None, idempotency_key: str,
           staff_id: int | None, confirmed: bool = False,
           legacy_keys: Sequence[str] = (), reward_id: int | None = None,
           guard: Guard | None = None) -> Receipt:
    """Spends whole coins from the shared wallet of the scanned card.

    A rotating code's step is recorded with the redemption, so the same code (say, a
    screenshot) cannot pay twice. Redeeming by the static number needs ``confirmed``
    when the operator requires it, because a number can be copied.

    With a ``guard``, its check names the store, and for a reward its price (``coins``
    None); ``store_code`` is ignored.
    """
    key = _check_key(idempotency_key)
    if guard is None or coins is not None:
        _check_coins(coins)
    # The reward joins the hash only when there is one, so requests stored before
    # rewards existed still replay.
    extra = {"reward": reward_id} if reward_id is not None else {}
    needs_confirmation = current_app.config["STATIC_REDEEM_NEEDS_CONFIRMATION"]
    attempts = _Attempts()

    def book(conn: Connection, booking: Booking) -> Receipt:
        store_code = booking.store_code
        spent = coins if booking.coins is None else _check_coins(booking.coins)
        digest = _request_hash(kind="redeem", card=card, store=store_code, coins=spent,
                               **extra)
        clock_now = time.time()
        parsed = codes.parse_scanned(card or "") if isinstance(card, str) else None
        steps = codes.candidate_steps(clock_now) if parsed and parsed.is_rotating else ()
        context = _context(conn, key, store_code, card, steps=steps)
        replay = _replay(conn, key, digest, attempts, legacy_keys=legacy_keys,
                         staff_id=staff_id, found_id=context.replay_id, probed=True)
        if replay:
            return replay
        store = _known(context.store)
        scanned = _checked_card(context.card, _parsed(card), clock_now)
        if scanned.code_step is None and needs_confirmation and not confirmed:
            raise ConfirmationRequired(
                "Redeeming by card number needs confirmation: check the customer's ID or "
                "ask them to show their live card code.")
        if scanned.code_step is not None and scanned.code_step in context.used_steps:
            raise CardCodeRejected("This card code was already used. Ask for the live card.")
        now = utcnow()
        entry = attempts.wrote(_append(
            conn, wallet_id=scanned.wallet_id, delta=-spent, now=now, kind="redeem",
            card_id=scanned.card_id, amount_minor=None, currency=None, reward_id=reward_id,
            store_id=store["id"], region=store["region"], staff_id=staff_id,
            idempotency_key=key, request_hash=digest,
        ))
        if scanned.code_step is not None:
            try:
                queries.mark_code_used(conn, scanned.card_id, scanned.code_step, entry["id"], now)
            except sa_exc.IntegrityError as error:
                raise RetryTransaction() from error
        return _receipt(conn, entry, replayed=False, card=scanned, store=store)

    # Idempotent: a second run finds the first one's row by its key (before it would
    # find the rotating code used).
    return _recorded(db.write(_guarded(book, store_code, guard, key, attempts),
                              name="ledger.redeem", idempotent=True))


def reverse(*, transaction_id: int, idempotency_key: str, staff_id: int | None,
            store_code: str | None = None, legacy_keys: Sequence[str] = (),
            window: timedelta | None = None, reason: str | None = None,
            check: Callable[[dict[str, Any]], None] | None = None) -> Receipt:
    """A compensating row for an earn or redeem, once, within the reversal window
    (``window``: a manager's is longer). ``check`` sees the original entry inside the
    transaction and may refuse it (the rulebook's store check)."""
    key = _check_key(idempotency_key)
    digest = _request_hash(kind="reversal", reverses=transaction_id)
    window = window or current_app.config["REVERSAL_WINDOW"]
    attempts = _Attempts()

    def work(conn: Connection) -> Receipt:
        replay = _replay(conn, key, digest, attempts, legacy_keys=legacy_keys,
                         staff_id=staff_id)
        if replay:
            return replay
        original = queries.entry_by_id(conn, transaction_id)
        if original is None:
            raise NotFound("No such transaction.")
        if check is not None:
            check(original)
        if original["kind"] not in ("earn", "redeem", "adjustment"):
            raise Conflict("Only earns, redemptions and adjustments can be reversed.")
        if queries.reversal_of(conn, transaction_id) is not None:
            raise AlreadyReversed("This transaction was already reversed.")
        now = utcnow()
        if now - original["created_at"] > window:
            raise Conflict("This transaction is too old to reverse.")
        store = queries.store_by_code(conn, store_code) if store_code else None
        try:
            entry = attempts.wrote(_append(
                conn, wallet_id=original["wallet_id"], delta=-original["coins"], now=now,
                kind="reversal", card_id=original["card_id"], amount_minor=None,
                currency=None, store_id=store["id"] if store else original["store_id"],
                region=store["region"] if store else original["region"], staff_id=staff_id,
                idempotency_key=key, request_hash=digest, reverses_id=transaction_id,
                reason=reason,
            ))
        except InsufficientCoins as error:
            raise InsufficientCoins(
                "Reversing this would make the balance negative: the coins were spent."
            ) from error
        return _receipt(conn, entry, replayed=False)

    # Idempotent: a second run finds the first one's row by its key (before it would
    # find the transaction "already reversed").
    return _recorded(db.write(work, name="ledger.reverse", idempotent=True))


def adjust(*, wallet_id: int, coins: int, reason: str, label: str, idempotency_key: str,
           staff_id: int | None, store_code: str | None, region: str) -> Receipt:
    """A support correction of ``coins`` (+ or -) with the staff-facing ``reason`` and the
    ``label`` the customer sees in their history. Never below zero."""
    key = _check_key(idempotency_key)
    if (not isinstance(coins, int) or isinstance(coins, bool) or coins == 0
            or abs(coins) > MAX_REDEEM_COINS):
        raise ValidationFailed({"coins": ["Enter whole coins, not 0 (use - to take away)."]})
    digest = _request_hash(kind="adjustment", wallet=wallet_id, coins=coins, reason=reason,
                           label=label)
    attempts = _Attempts()

    def work(conn: Connection) -> Receipt:
        replay = _replay(conn, key, digest, attempts)
        if replay:
            return replay
        store = queries.store_by_code(conn, store_code) if store_code else None
        try:
            entry = attempts.wrote(_append(
                conn, wallet_id=wallet_id, delta=coins, now=utcnow(), kind="adjustment",
                card_id=None, amount_minor=None, currency=None,
                store_id=store["id"] if store else None, region=region, staff_id=staff_id,
                idempotency_key=key, request_hash=digest, reason=reason, label=label,
            ))
        except InsufficientCoins as error:
            raise InsufficientCoins("The wallet does not hold that many coins.") from error
        return _receipt(conn, entry, replayed=False, store=store)

    # Idempotent: a second run finds the first one's row by its key.
    return _recorded(db.write(work, name="ledger.adjust", idempotent=True))


def history(wallet_id: int, *, limit: int = 20, before_id: int | None = None,
            causal: bool = False) -> list[dict[str, Any]]:
    return db.read(lambda conn: queries.history(conn, wallet_id, limit, before_id),
                   name="ledger.history", causal=causal)


def stores() -> list[dict[str, Any]]:
    return db.read(queries.all_stores, name="stores")
