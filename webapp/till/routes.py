"""The till: staff scan a card (or type its number), then earn, redeem or undo.

Every action is a plain form POST that renders the till page, so the till works
without JavaScript; htmx swaps only the ``result`` block of the same template. Errors
are shown in that block with their 4xx status and nothing is written: the ledger
checks everything before its one transaction, and a form that failed keeps its
idempotency key, so pressing the button again after a network error can't book twice.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from flask import current_app
from flask_wtf import FlaskForm

from webapp import staff
from webapp.auth.session import current_principal, staff_required
from webapp.card import codes
from webapp.card.numbers import format_card_number
from webapp.errors import AppError, Forbidden, IdempotencyMismatch, ServiceUnavailable
from webapp.extensions import db
from webapp.i18n import formatting
from webapp.i18n.locales import use_locale
from webapp.ledger import queries as ledger_queries
from webapp.ledger import services as ledger
from webapp.pages import render_page

from . import bp
from .forms import EarnForm, LookupForm, RedeemForm, ReverseForm, new_key

TEMPLATE = "till/till.html"
MISMATCH = ("This form was already submitted with different details, and that first "
            "submission was booked. Nothing new was booked now: check the balance first.")
UNAVAILABLE = ("We can't reach the loyalty service right now. Press the button again in a "
               "moment: the same form is never booked twice.")


@dataclass(frozen=True)
class Customer:
    """What the barista sees after a scan: enough to greet and check the card (the last
    4 digits); the full number only travels in the forms' hidden fields."""

    first_name: str
    last4: str
    balance: int
    scanned: str  # what was scanned or typed; redemptions send it back to be checked
    rotating: bool

    @property
    def masked(self) -> str:
        return format_card_number("•" * 8 + self.last4)


def _customer(scanned: str, card: ledger.ScannedCard) -> Customer:
    parsed = codes.parse_scanned(scanned)
    return Customer(card.first_name, card.number[-4:], card.balance, scanned,
                    bool(parsed and parsed.is_rotating))


def _fresh_customer(scanned: str) -> Customer | None:
    """The customer again after an action, by number: a rotating code may have expired
    since the scan, and showing the name and balance needs no proof of presence."""
    parsed = codes.parse_scanned(scanned or "")
    if parsed is None:
        return None
    try:
        return _customer(scanned, ledger.lookup(parsed.number))
    except AppError:
        return None


def _staff_store() -> dict[str, Any]:
    """The till books at the barista's own store (accounts.store_id)."""
    store = staff.home_store(current_principal().account_id)
    if store is None:
        raise Forbidden("Your staff account is not assigned to a store; ask an admin.")
    return store


def _message(error: AppError) -> str:
    if isinstance(error, ServiceUnavailable):
        return UNAVAILABLE
    if isinstance(error, IdempotencyMismatch):
        return MISMATCH
    errors = getattr(error, "errors", None)
    if errors:
        return " ".join(message for messages in errors.values() for message in messages)
    return error.detail


def _form_error(form: FlaskForm) -> str:
    return " ".join(dict.fromkeys(m for messages in form.errors.values() for m in messages))


def _attach(form: FlaskForm, error: AppError) -> None:
    """Puts the ledger's field errors next to the matching inputs."""
    for name, messages in (getattr(error, "errors", None) or {}).items():
        field = getattr(form, name, None)
        if field is not None and hasattr(field, "errors"):
            field.errors = [*field.errors, *messages]


def _till(store: dict[str, Any], *, customer: Customer | None = None,
          receipt: ledger.Receipt | None = None, error: str | None = None,
          status: int = 200, **forms: FlaskForm) -> tuple[str, int]:
    scanned = {"card": customer.scanned} if customer else {}
    receipt_card = receipt.card_number if receipt else None
    # Money and coins in the store's own formats, whoever's browser shows the till.
    use_locale(store["locale"])
    context = {
        "store": store,
        "customer": customer,
        "receipt": receipt,
        "error": error,
        "money": formatting.money,
        "needs_confirmation": bool(
            customer and not customer.rotating
            and current_app.config["STATIC_REDEEM_NEEDS_CONFIRMATION"]),
        "lookup_form": forms.get("lookup_form") or LookupForm(formdata=None),
        "earn_form": forms.get("earn_form") or EarnForm(
            formdata=None, prefix="earn", data=scanned, currency=store["currency"]),
        "redeem_form": forms.get("redeem_form") or RedeemForm(
            formdata=None, prefix="redeem", data=scanned),
        "reverse_form": ReverseForm(formdata=None, prefix="reverse", data={
            **scanned, "transaction": receipt.transaction_id if receipt else ""}),
        "receipt_last4": receipt_card[-4:] if receipt_card else None,
    }
    return render_page(TEMPLATE, partial="result", **context), status


@bp.route("/till")
@staff_required
def show():
    return _till(_staff_store())


@bp.route("/till/lookup", methods=["POST"])
@staff_required
def lookup():
    store = _staff_store()
    form = LookupForm()
    if not form.validate():
        return _till(store, lookup_form=form, error=_form_error(form), status=422)
    try:
        card = ledger.lookup(form.card.data)
    except AppError as error:
        return _till(store, lookup_form=form, error=_message(error), status=error.status)
    return _till(store, customer=_customer(form.card.data, card))


@bp.route("/till/earn", methods=["POST"])
@staff_required
def earn():
    store = _staff_store()
    form = EarnForm(prefix="earn", currency=store["currency"])
    if not form.validate():
        return _till(store, customer=_fresh_customer(form.card.data), earn_form=form,
                     error=_form_error(form), status=422)
    try:
        # Earning needs no proof of presence beyond the scan just made, so it goes by
        # number: a rotating code that expired while the barista typed doesn't matter.
        receipt = ledger.earn(
            card=codes.parse_scanned(form.card.data).number, store_code=store["code"],
            amount_minor=form.amount_minor, currency=store["currency"],
            idempotency_key=form.key.data, staff_id=current_principal().account_id)
    except AppError as error:
        return _failed(store, form, error)
    return _till(store, customer=_fresh_customer(form.card.data), receipt=receipt)


@bp.route("/till/redeem", methods=["POST"])
@staff_required
def redeem():
    store = _staff_store()
    form = RedeemForm(prefix="redeem")
    if not form.validate():
        return _till(store, customer=_fresh_customer(form.card.data), redeem_form=form,
                     error=_form_error(form), status=422)
    try:
        # Redeeming goes by what was scanned: a rotating code is checked again and
        # spent, a typed number needs the confirmation box when the operator says so.
        receipt = ledger.redeem(
            card=form.card.data, store_code=store["code"], coins=form.coin_count,
            idempotency_key=form.key.data, staff_id=current_principal().account_id,
            confirmed=bool(form.confirm.data))
    except AppError as error:
        return _failed(store, form, error)
    return _till(store, customer=_fresh_customer(form.card.data), receipt=receipt)


@bp.route("/till/reverse", methods=["POST"])
@staff_required
def reverse():
    store = _staff_store()
    form = ReverseForm(prefix="reverse")
    if not form.validate():
        return _till(store, customer=_fresh_customer(form.card.data),
                     error=_form_error(form), status=422)
    staff_id = current_principal().account_id
    transaction_id = int(form.transaction.data)
    try:
        original = db.read(lambda conn: ledger_queries.entry_by_id(conn, transaction_id),
                           name="till.reverse.check", causal=True)
        if original is None or original["staff_id"] != staff_id:
            # The till undoes its own mistakes; anything else is an admin's job.
            raise Forbidden("You can only undo a transaction you made yourself.")
        receipt = ledger.reverse(transaction_id=transaction_id, idempotency_key=form.key.data,
                                 staff_id=staff_id, store_code=store["code"])
    except AppError as error:
        return _till(store, customer=_fresh_customer(form.card.data), error=_message(error),
                     status=error.status)
    return _till(store, customer=_fresh_customer(form.card.data), receipt=receipt)


def _failed(store: dict[str, Any], form: EarnForm | RedeemForm, error: AppError):
    if isinstance(error, IdempotencyMismatch):
        form.key.data = new_key()
    _attach(form, error)
    forms = {"earn_form" if isinstance(form, EarnForm) else "redeem_form": form}
    return _till(store, customer=_fresh_customer(form.card.data), error=_message(error),
                 status=error.status, **forms)
