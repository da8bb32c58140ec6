"""The rulebook: what café staff may do to a card, for the till pages and the API alike.

Both call :func:`lookup`, :func:`earn`, :func:`redeem` and :func:`reverse` with the
signed-in principal and the request as the client sent it; this module alone decides

- **the store** an action books at: the staff member's home store. A barista (stored role
  ``staff``) may name no other, so they cannot pick another region, currency or earn
  rate; an ``admin`` may name any store, as before;
- **the idempotency key's scope**: the client's key, scoped per staff member, the same
  scheme for the till's forms and the API's header (see :func:`scoped_key`);
- **who may act**: staff only; a barista undoes only their own transactions (an admin
  any); nobody books on their own wallet, which holds their family's cards too; a
  barista's purchase is capped per currency (``MAX_PURCHASE``), above it a manager books;
- **which scan each action takes**: an earn goes by the card number from either format,
  so a rotating code that expired while the amount was typed still identifies the card;
  a redemption needs a live rotating code or a typed number with confirmation (the
  ledger checks both); a lookup needs a live code or a number.

A refusal is a :class:`~webapp.errors.Forbidden` (403) raised before anything is written.
Input and state errors stay what the ledger says (422, 404, 409, 428), on both channels.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from flask import current_app

from webapp.auth.tokens import Principal
from webapp.card import codes
from webapp.errors import (
    Forbidden,
    NotFound,
    NotYourTransaction,
    OwnWallet,
    PurchaseLimitExceeded,
    StoreNotAllowed,
    ValidationFailed,
)
from webapp.extensions import db
from webapp.ledger import services as ledger
from webapp.ledger.queries import store_by_code
from webapp.money import format_money, to_minor

from . import queries

ADMIN = "admin"  # a barista is stored as "staff"
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
    if principal is None or not principal.is_staff:
        raise Forbidden("This is for café staff.")
    return principal


def _card_number(scanned: str) -> str:
    parsed = codes.parse_scanned(scanned or "")
    if parsed is None:
        raise ValidationFailed({"card": ["That is not a card number or card QR code."]})
    return parsed.number


def working_store(principal: Principal | None) -> dict[str, Any]:
    """The store the staff member works at, or 403: the till shows and books there."""
    principal = _require_staff(principal)
    store = db.read(lambda conn: queries.home_store(conn, principal.account_id),
                    name="staff.home_store")
    if store is None:
        raise Forbidden(NO_STORE)
    return store


@dataclass(frozen=True)
class _Context:
    home: dict[str, Any] | None
    named: dict[str, Any] | None  # the store the request named, when not the home store
    owner: int | None  # the account whose wallet the card books on


def _context(principal: Principal, store_code: str | None, number: str) -> _Context:
    """Everything the rules need, in one read before the ledger's write. Card owners
    never change and a home store rarely does, so no causal barrier is needed."""

    def read(conn) -> _Context:
        home = queries.home_store(conn, principal.account_id)
        named = None
        if store_code and (home is None or store_code != home["code"]):
            named = store_by_code(conn, store_code)
        return _Context(home, named, queries.card_owner(conn, number))

    return db.read(read, name="staff.context")


def _choose_store(principal: Principal, context: _Context,
                  store_code: str | None) -> dict[str, Any]:
    home = context.home
    if store_code is None or (home is not None and store_code == home["code"]):
        if home is None:
            raise Forbidden(NO_STORE)
        return home
    if principal.role != ADMIN:
        where = f" ({home['code']})" if home else ""
        raise StoreNotAllowed(f"You can book only at the store you work at{where}.")
    if context.named is None:
        raise ValidationFailed({"store": ["Unknown store."]})
    return context.named


def _refuse_own_wallet(principal: Principal, owner: int | None) -> None:
    if owner is not None and owner == principal.account_id:
        raise OwnWallet("This card is on your own wallet (yours or your family's): "
                        "ask a colleague to book it.")


def purchase_limit(currency: str) -> int | None:
    """The largest purchase a barista may book in ``currency``, in minor units."""
    amount = current_app.config["MAX_PURCHASE"].get(currency)
    return None if amount is None else to_minor(amount, currency)


def _check_purchase_limit(principal: Principal, store: dict[str, Any], amount_minor: int,
                          currency: str) -> None:
    if principal.role == ADMIN:
        return  # a manager books the large sales
    if currency != store["currency"] or not 0 < amount_minor <= ledger.MAX_AMOUNT_MINOR:
        return  # not a valid amount for this store at all: the ledger's 422 says why
    limit = purchase_limit(currency)
    if limit is not None and amount_minor > limit:
        raise PurchaseLimitExceeded(
            f"Purchases above {format_money(limit, currency)} must be booked by a manager.")


def lookup(principal: Principal | None, scanned: str, *,
           by_number: bool = False) -> CardSummary:
    """The card behind a scan. ``by_number`` shows it again after an action, when a
    rotating code may have expired since the scan: showing needs no proof of presence."""
    principal = _require_staff(principal)
    parsed = codes.parse_scanned(scanned or "")
    card = ledger.lookup(_card_number(scanned) if by_number else scanned)
    return CardSummary(card.first_name, card.number[-4:], card.balance,
                       rotating=bool(parsed and parsed.is_rotating),
                       own_wallet=card.account_id == principal.account_id)


def earn(principal: Principal | None, *, card: str, amount_minor: int, currency: str,
         key: str, store: str | None = None) -> ledger.Receipt:
    principal = _require_staff(principal)
    number = _card_number(card)
    context = _context(principal, store, number)
    chosen = _choose_store(principal, context, store)
    _refuse_own_wallet(principal, context.owner)
    _check_purchase_limit(principal, chosen, amount_minor, currency)
    return ledger.earn(card=number, store_code=chosen["code"], amount_minor=amount_minor,
                       currency=currency, idempotency_key=scoped_key(principal, key),
                       staff_id=principal.account_id, legacy_keys=_legacy_keys(key))


def redeem(principal: Principal | None, *, card: str, coins: int, key: str,
           confirmed: bool, store: str | None = None) -> ledger.Receipt:
    principal = _require_staff(principal)
    context = _context(principal, store, _card_number(card))
    chosen = _choose_store(principal, context, store)
    _refuse_own_wallet(principal, context.owner)
    # The scan as sent: the ledger checks a rotating code is live and unused, and that a
    # typed number comes with the confirmation the operator asks for.
    return ledger.redeem(card=card, store_code=chosen["code"], coins=coins,
                         idempotency_key=scoped_key(principal, key),
                         staff_id=principal.account_id, confirmed=confirmed,
                         legacy_keys=_legacy_keys(key))


def reverse(principal: Principal | None, *, transaction_id: int,
            key: str) -> ledger.Receipt:
    principal = _require_staff(principal)

    def read(conn):
        return (queries.home_store(conn, principal.account_id),
                queries.entry_with_owner(conn, transaction_id))

    # Causal: the transaction may have been booked a moment ago in another region.
    home, entry = db.read(read, name="staff.reverse.check", causal=True)
    if entry is None:
        raise NotFound("No such transaction.")
    if principal.role != ADMIN and entry["staff_id"] != principal.account_id:
        # The till undoes its own mistakes; anything else is a manager's job.
        raise NotYourTransaction("You can only undo a transaction you made yourself.")
    _refuse_own_wallet(principal, entry["wallet_owner"])
    if home is None and principal.role != ADMIN:
        raise Forbidden(NO_STORE)
    return ledger.reverse(transaction_id=transaction_id,
                          idempotency_key=scoped_key(principal, key),
                          staff_id=principal.account_id,
                          store_code=home["code"] if home else None,
                          legacy_keys=_legacy_keys(key))
