"""The rulebook: what café staff may do to a card, for the till pages and the API alike.

Both call :func:`lookup`, :func:`earn`, :func:`redeem` and :func:`reverse` with the
signed-in principal and the request as the client sent it; this module alone decides

- **who the staff member is now**: the staff record (role, store, admin scope, disabled)
  read with the same consistency as the action (:mod:`.roles`), so a role change or a
  disabled account takes effect on the next request;
- **the store** an action books at: the staff member's home store. A barista (stored role
  ``staff``) or manager may name no other, so they cannot pick another region, currency
  or earn rate; an ``admin`` may name any store in their region (global: any);
- **the idempotency key's scope**: the client's key, scoped per staff member, the same
  scheme for the till's forms and the API's header (see :func:`scoped_key`);
- **who may act**: staff only; a barista undoes only their own transactions within the
  reversal window, a manager any of their store's within the manager's window, an admin
  any in their region; nobody books on their own wallet, which holds their family's cards
  too (refused and audited); a barista's purchase is capped per currency
  (``MAX_PURCHASE``, or the store's own limit) and so are the coins they issue per hour
  (``COINS_PER_BARISTA_HOUR`` or the store's): above them a manager books;
- **which scan each action takes**: an earn goes by the card number from either format,
  so a rotating code that expired while the amount was typed still identifies the card;
  a redemption needs a live rotating code or a typed number with confirmation (the
  ledger checks both); a lookup needs a live code or a number.

A refusal is a :class:`~webapp.errors.Forbidden` (403) raised before anything is written.
Input and state errors stay what the ledger says (422, 404, 409, 428), on both channels.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from flask import current_app

from webapp import audit
from webapp.auth import session, tokens
from webapp.auth.tokens import Principal
from webapp.card import codes
from webapp.clock import utcnow
from webapp.errors import (
    Forbidden,
    NotFound,
    NotYourTransaction,
    OwnWallet,
    PurchaseLimitExceeded,
    StaffLimitExceeded,
    StoreNotAllowed,
    ValidationFailed,
)
from webapp.extensions import db
from webapp.ledger import services as ledger
from webapp.ledger.queries import store_by_code
from webapp.money import format_money, to_minor

from . import queries
from .roles import ADMIN, BARISTA, MANAGER, Actor, actor_from

# Till forms made keys "till-…" before keys were scoped; see _legacy_keys.
LEGACY_TILL_KEY_PREFIX = "till-"
NO_STORE = "Your staff account is not assigned to a store; ask an admin."


@dataclass(frozen=True)
class CardSummary:
    """What staff see after a scan: enough to greet the customer and check the card."""

    first_name: str
    last4: str
    balance: int
    rotating: bool  # scanned as a rotating QR code, not a typed number
    own_wallet: bool  # the staff member's own (or their family's) card: not theirs to book


def scoped_key(principal: Principal, key: str) -> str:
    """The ledger key for a client's key: ``api:<staff account id>:<key>``.

    Scoped per staff member, so two tills (or a till and a script) that pick the same
    key never answer each other's requests, and one scheme for the till's forms and the
    API's header. The prefix is the one the API has always stored: an API request sent
    to an older app server and retried on a newer one during a rolling deploy must still
    find its first write, or it would book twice.
    """
    return f"api:{principal.account_id}:{key}"


def _legacy_keys(key: str) -> tuple[str, ...]:
    # The till stored its form keys unscoped. A form submitted before this scheme and
    # retried after it must find that row. Drop this a release later, when no such
    # retry can still be pending.
    return (key,) if key.startswith(LEGACY_TILL_KEY_PREFIX) else ()


def _require_staff(principal: Principal | None) -> Principal:
    """The token's quick filter; the staff record (:func:`current_actor`) decides."""
    if principal is None or not principal.is_staff:
        raise Forbidden("This is for café staff.")
    return principal


def current_actor(principal: Principal | None, *, causal: bool = True) -> Actor:
    """The staff member as the database has them now (one primary-key read), or 403.

    Causal by default: it guards a write or a read of customer records, and a disabled
    barista must never get through on a stale member."""
    principal = _require_staff(principal)
    record = db.read(lambda conn: queries.staff_record(conn, principal.account_id),
                     name="staff.record", causal=causal)
    return actor_from(record)


def _audit_booking(actor: Actor, receipt: ledger.Receipt, store: dict[str, Any] | None,
                   owner: int | None, *, conn=None, **details: Any) -> None:
    """The ledger row's audit row, keyed by it (a replay is logged once). With ``conn``,
    in the booking's own transaction: a fresh row's key cannot be taken yet, so it is
    inserted without looking first; a replay's may be (or, for a row booked before the
    two shared a transaction, may be missing), so that looks first."""
    fields: dict[str, Any] = {
        "actor_id": actor.account_id, "actor_role": actor.role, "action": receipt.kind,
        "region": receipt.region, "store_id": store["id"] if store else None,
        "subject_id": owner, "target": f"ledger:{receipt.transaction_id}",
        "details": ({"coins": receipt.coins, **details} if details or receipt.coins
                    else None),
        "event_key": f"ledger:{receipt.transaction_id}"}
    if conn is None:
        audit.record(**fields)
    elif receipt.replayed:
        audit.record_in(conn, **fields)
    else:
        audit.record_new_in(conn, **fields)


def _card_number(scanned: str) -> str:
    parsed = codes.parse_scanned(scanned or "")
    if parsed is None:
        raise ValidationFailed({"card": ["That is not a card number or card QR code."]})
    return parsed.number


def working_store(principal: Principal | None) -> dict[str, Any]:
    """The store the staff member works at, or 403: the till shows and books there."""
    store = current_actor(principal).store
    if store is None:
        raise Forbidden(NO_STORE)
    return store


@dataclass(frozen=True)
class _Context:
    actor: Actor
    named: dict[str, Any] | None  # the store the request named, when not the home store
    owner: int | None  # the account whose wallet the card books on
    earned_last_hour: int  # coins this barista issued in the last hour (earn only)
    reward: dict[str, Any] | None = None


def _read_context(conn, principal: Principal, store_code: str | None, number: str, *,
                  hourly: bool = False, reward_id: int | None = None) -> _Context:
    """Everything the rules need, read in the booking's own transaction (so with its
    causal barrier: the staff record may have changed a moment ago elsewhere), mostly
    in one statement. That statement also checks the device's session, so a device
    signed out elsewhere is refused here, on every channel, before anything is written
    (the API leaves that check to this read: see webapp.api.openapi)."""
    from webapp.staff import catalogue

    since = utcnow() - timedelta(hours=1) if hourly else None
    read = queries.rules_context(conn, principal.account_id, family=principal.family_id,
                                 number=number, since=since)
    if not read.session_live:
        raise tokens.signed_out()
    session.session_checked()
    actor = actor_from(read.record)
    home = actor.store
    named = None
    if store_code and (home is None or store_code != home["code"]):
        named = store_by_code(conn, store_code)
    earned = read.coins_since if actor.role == BARISTA else 0
    reward = catalogue.reward_by_id(conn, reward_id) if reward_id is not None else None
    return _Context(actor, named, read.card_owner, earned, reward)


class _OwnWalletRefused(Exception):
    """Raised inside the booking's transaction (nothing is written); the refusal is
    audited after it, in a transaction of its own (:func:`_booked`)."""

    def __init__(self, actor: Actor, owner: int) -> None:
        super().__init__("own wallet")
        self.actor, self.owner = actor, owner


@dataclass
class _Rules:
    """The rulebook's half of an earn or redeem (a ledger :class:`~webapp.ledger.services.
    Guard`): the staff member's checks before the ledger books and the audit row after,
    in the ledger's transaction. Was two transactions of their own (4 and 3 round trips
    of an API earn, docs/performance.md)."""

    principal: Principal
    action: str  # "earn" or "redeem"
    store_code: str | None  # the store the request named
    number: str
    amount_minor: int | None = None  # an earn's
    currency: str | None = None
    reward_id: int | None = None  # a redemption's
    context: _Context | None = None
    chosen: dict[str, Any] | None = None

    def check(self, conn) -> ledger.Booking:
        context = _read_context(conn, self.principal, self.store_code, self.number,
                                hourly=self.action == "earn", reward_id=self.reward_id)
        chosen = _choose_store(context, self.store_code)
        if context.owner is not None and context.owner == context.actor.account_id:
            raise _OwnWalletRefused(context.actor, context.owner)
        coins = None
        if self.action == "earn":
            _check_purchase_limit(context.actor, chosen, self.amount_minor, self.currency)
            _check_hourly_limit(context, chosen, self.amount_minor)
        elif self.reward_id is not None:
            reward = context.reward
            if reward is None or not reward["active"] or reward["region"] != chosen["region"]:
                raise ValidationFailed({"reward": ["That reward is not offered at this store."]})
            coins = reward["coins"]
        self.context, self.chosen = context, chosen
        return ledger.Booking(chosen["code"], coins)

    def record(self, conn, receipt: ledger.Receipt) -> None:
        details = {"reward": self.reward_id} if self.reward_id is not None else {}
        _audit_booking(self.context.actor, receipt, self.chosen, self.context.owner,
                       conn=conn, **details)


def _booked(action: str, book: Callable[[], ledger.Receipt]) -> ledger.Receipt:
    """Runs ``book()``; an own-wallet refusal from its guard is audited and answered."""
    try:
        return book()
    except _OwnWalletRefused as refused:
        _refuse_own_wallet(refused.actor, refused.owner, action)
        raise  # not reached: _refuse_own_wallet raises OwnWallet


def _choose_store(context: _Context, store_code: str | None) -> dict[str, Any]:
    actor = context.actor
    home = actor.store
    if store_code is None or (home is not None and store_code == home["code"]):
        if home is None:
            raise Forbidden(NO_STORE)
        return home
    if actor.role != ADMIN:
        where = f" ({home['code']})" if home else ""
        raise StoreNotAllowed(f"You can book only at the store you work at{where}.")
    if context.named is None:
        raise ValidationFailed({"store": ["Unknown store."]})
    if not actor.covers_region(context.named["region"]):
        raise StoreNotAllowed("That store is outside your region.")
    return context.named


def _refuse_own_wallet(actor: Actor, owner: int | None, action: str) -> None:
    if owner is not None and owner == actor.account_id:
        # Self-dealing is worth a line in the log even though nothing was booked.
        audit.record(actor_id=actor.account_id, actor_role=actor.role, action="refused",
                     store_id=actor.store["id"] if actor.store else None,
                     region=actor.store["region"] if actor.store else None,
                     subject_id=owner, details={"attempted": action, "rule": "own-wallet"})
        raise OwnWallet("This card is on your own wallet (yours or your family's): "
                        "ask a colleague to book it.")


def purchase_limit(currency: str, store: dict[str, Any] | None = None) -> int | None:
    """The largest purchase a barista may book in ``currency``, in minor units: the
    store's own limit when it has one (in its currency), else the configured default."""
    if store is not None and store.get("max_purchase_minor") is not None \
            and store["currency"] == currency:
        return store["max_purchase_minor"]
    amount = current_app.config["MAX_PURCHASE"].get(currency)
    return None if amount is None else to_minor(amount, currency)


def coins_per_hour(store: dict[str, Any]) -> int:
    """The coins a barista may issue per hour at ``store``."""
    own = store.get("coins_per_hour")
    return own if own is not None else current_app.config["COINS_PER_BARISTA_HOUR"]


def _check_purchase_limit(actor: Actor, store: dict[str, Any], amount_minor: int,
                          currency: str) -> None:
    if actor.role != BARISTA:
        return  # managers and admins book the large sales
    if currency != store["currency"] or not 0 < amount_minor <= ledger.MAX_AMOUNT_MINOR:
        return  # not a valid amount for this store at all: the ledger's 422 says why
    limit = purchase_limit(currency, store)
    if limit is not None and amount_minor > limit:
        raise PurchaseLimitExceeded(
            f"Purchases above {format_money(limit, currency)} must be booked by a manager.")


def _check_hourly_limit(context: _Context, store: dict[str, Any], amount_minor: int) -> None:
    # A soft limit: read before the write, so two tills racing may pass it by one sale.
    # It catches a runaway till or a barista paying themselves, not a coin's worth.
    if context.actor.role != BARISTA or not 0 < amount_minor <= ledger.MAX_AMOUNT_MINOR:
        return  # not a valid amount at all: the ledger's 422 says why
    limit = coins_per_hour(store)
    if context.earned_last_hour + ledger.coins_for(amount_minor, store) > limit:
        raise StaffLimitExceeded(
            f"You have issued {context.earned_last_hour} coins in the last hour; the limit "
            f"at this store is {limit}. A manager must book this sale.")


def lookup(principal: Principal | None, scanned: str, *,
           by_number: bool = False) -> CardSummary:
    """The card behind a scan. ``by_number`` shows it again after an action, when a
    rotating code may have expired since the scan: showing needs no proof of presence."""
    actor = current_actor(principal)
    parsed = codes.parse_scanned(scanned or "")
    card = ledger.lookup(_card_number(scanned) if by_number else scanned)
    return CardSummary(card.first_name, card.number[-4:], card.balance,
                       rotating=bool(parsed and parsed.is_rotating),
                       own_wallet=card.account_id == actor.account_id)


def earn(principal: Principal | None, *, card: str, amount_minor: int, currency: str,
         key: str, store: str | None = None) -> ledger.Receipt:
    principal = _require_staff(principal)
    number = _card_number(card)
    rules = _Rules(principal, "earn", store, number, amount_minor=amount_minor,
                   currency=currency)
    return _booked("earn", lambda: ledger.earn(
        card=number, store_code=None, amount_minor=amount_minor, currency=currency,
        idempotency_key=scoped_key(principal, key), staff_id=principal.account_id,
        legacy_keys=_legacy_keys(key), guard=rules))


def redeem(principal: Principal | None, *, card: str, coins: int | None, key: str,
           confirmed: bool, store: str | None = None,
           reward_id: int | None = None) -> ledger.Receipt:
    """Free-form ``coins``, or a catalogue reward (``reward_id``: its price, and the ledger
    row records it)."""
    principal = _require_staff(principal)
    rules = _Rules(principal, "redeem", store, _card_number(card), reward_id=reward_id)
    # The scan as sent: the ledger checks a rotating code is live and unused, and that a
    # typed number comes with the confirmation the operator asks for.
    return _booked("redeem", lambda: ledger.redeem(
        card=card, store_code=None, coins=None if reward_id is not None else coins,
        idempotency_key=scoped_key(principal, key), staff_id=principal.account_id,
        confirmed=confirmed, legacy_keys=_legacy_keys(key), reward_id=reward_id,
        guard=rules))


def reverse(principal: Principal | None, *, transaction_id: int, key: str,
            reason: str | None = None) -> ledger.Receipt:
    """A barista undoes their own transactions within the reversal window; a manager any
    of their store's within ``MANAGER_REVERSAL_WINDOW``; an admin any in their region,
    within the manager's window."""
    principal = _require_staff(principal)

    def read(conn):
        return (actor_from(queries.staff_record(conn, principal.account_id)),
                queries.entry_with_owner(conn, transaction_id))

    # Causal: the transaction may have been booked a moment ago in another region.
    actor, entry = db.read(read, name="staff.reverse.check", causal=True)
    if entry is None:
        raise NotFound("No such transaction.")
    home = actor.store
    window = None
    if actor.role == BARISTA:
        if entry["staff_id"] != actor.account_id:
            # The till undoes its own mistakes; anything else is a manager's job.
            raise NotYourTransaction("You can only undo a transaction you made yourself.")
    elif actor.role == MANAGER:
        if home is None or entry["store_id"] != home["id"]:
            raise NotYourTransaction("A manager reverses only their own store's transactions.")
        window = current_app.config["MANAGER_REVERSAL_WINDOW"]
    else:
        if not actor.covers_region(entry["region"]):
            raise NotYourTransaction("That transaction is outside your region.")
        window = current_app.config["MANAGER_REVERSAL_WINDOW"]
    _refuse_own_wallet(actor, entry["wallet_owner"], "reversal")
    if home is None and actor.role != ADMIN:
        raise Forbidden(NO_STORE)
    receipt = ledger.reverse(transaction_id=transaction_id,
                             idempotency_key=scoped_key(principal, key),
                             staff_id=principal.account_id,
                             store_code=home["code"] if home else None,
                             legacy_keys=_legacy_keys(key), window=window,
                             reason=(reason or None))
    _audit_booking(actor, receipt, home, entry["wallet_owner"], reverses=transaction_id,
                   **({"reason": reason} if reason else {}))
    return receipt
