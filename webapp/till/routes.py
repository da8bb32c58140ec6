"""The till: staff scan a card (or type its number), then earn, redeem or undo.

Every action is a plain form POST that renders the till page, so the till works
without JavaScript; htmx swaps only the ``result`` block of the same template. What a
barista may do is the staff rulebook's (:mod:`webapp.staff.services`, which the API
calls too); a view parses its form, calls the rulebook and renders the answer. Errors
are shown in the result block with their status and nothing is written, and a form
that failed keeps its idempotency key, so pressing the button again after a network
error or an unknown outcome can't book twice.
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
from webapp.errors import AppError, IdempotencyMismatch, OutcomeUnknown, ServiceUnavailable
from webapp.i18n import formatting
from webapp.i18n.locales import use_locale
from webapp.ledger.services import Receipt
from webapp.pages import render_page
from webapp.staff import catalogue

from . import bp
from .forms import EarnForm, LookupForm, RedeemForm, ReverseForm, new_key

TEMPLATE = "till/till.html"
MISMATCH = ("This form was already submitted with different details, and that first "
            "submission was booked. Nothing new was booked now: check the balance first.")
UNAVAILABLE = ("We can't reach the loyalty service right now. Press the button again in a "
               "moment: the same form is never booked twice.")
# After an unknown outcome the form keeps its key: only a retry with that key can tell
# "booked" from "not booked". A new form would book the sale a second time.
UNKNOWN = ("{what} may already be booked: the connection was lost before the loyalty "
           "service could confirm it. Press “Try again”: retrying with this form is safe "
           "and never books it twice. Don't ring it up again on a new form.")
WHAT = {"earn": "This sale", "redeem": "This redemption", "reverse": "This undo"}


@dataclass(frozen=True)
class Customer:
    """A scan as the barista sees it: the rulebook's summary of the card and the text
    that was scanned or typed, which the action forms send back."""

    card: staff.CardSummary
    scanned: str

    @property
    def masked(self) -> str:
        return format_card_number("•" * 8 + self.card.last4)


def _fresh_customer(scanned: str | None) -> Customer | None:
    """The customer again after an action, by number: a rotating code may have expired
    since the scan. A failure here only leaves the name and balance out."""
    try:
        card = staff.lookup(current_principal(), scanned or "", by_number=True)
    except AppError:
        return None
    return Customer(card, scanned)


def _message(error: AppError, action: str | None = None) -> str:
    if isinstance(error, OutcomeUnknown):
        return UNKNOWN.format(what=WHAT.get(action, "This"))
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


def _is_rotating(scanned: str | None) -> bool:
    parsed = codes.parse_scanned(scanned or "")
    return bool(parsed and parsed.is_rotating)


def _till(store: dict[str, Any], *, customer: Customer | None = None,
          receipt: Receipt | None = None, error: str | None = None, status: int = 200,
          retry: str | None = None, **forms: FlaskForm) -> tuple[str, int]:
    """The page, or its result block for htmx. ``retry`` names the action whose outcome
    is unknown: its form (with its key) is offered again as "Try again"."""
    scanned = {"card": customer.scanned} if customer else {}
    receipt_card = receipt.card_number if receipt else None
    # Money and coins in the store's own formats, whoever's browser shows the till.
    use_locale(store["locale"])
    redeem_form = forms.get("redeem_form") or RedeemForm(
        formdata=None, prefix="redeem", data={**scanned, "store": store["code"]})
    context = {
        "store": store,
        "customer": customer,
        "receipt": receipt,
        "error": error,
        "retry": retry,
        "money": formatting.money,
        "needs_confirmation": bool(
            (customer or retry == "redeem")
            and not _is_rotating(customer.scanned if customer else redeem_form.card.data)
            and current_app.config["STATIC_REDEEM_NEEDS_CONFIRMATION"]),
        "lookup_form": forms.get("lookup_form") or LookupForm(formdata=None),
        "earn_form": forms.get("earn_form") or EarnForm(
            formdata=None, prefix="earn", data={**scanned, "store": store["code"]},
            currency=store["currency"]),
        "redeem_form": redeem_form,
        "reverse_form": forms.get("reverse_form") or ReverseForm(
            formdata=None, prefix="reverse",
            data={**scanned, "transaction": receipt.transaction_id if receipt else ""}),
        "receipt_last4": receipt_card[-4:] if receipt_card else None,
        # One-tap buttons on the redeem panel: the store's region's active rewards.
        "rewards": catalogue.offered(store["region"]) if customer or retry else [],
    }
    return render_page(TEMPLATE, partial="result", **context), status


def _store() -> dict[str, Any]:
    return staff.working_store(current_principal())


@bp.route("/till")
@staff_required
def show():
    return _till(_store())


@bp.route("/till/lookup", methods=["POST"])
@staff_required
def lookup():
    store = _store()
    form = LookupForm()
    if not form.validate():
        return _till(store, lookup_form=form, error=_form_error(form), status=422)
    try:
        card = staff.lookup(current_principal(), form.card.data)
    except AppError as error:
        return _till(store, lookup_form=form, error=_message(error), status=error.status)
    return _till(store, customer=Customer(card, form.card.data))


def _book(store, form, what: str, book):
    """Earn or redeem from the till: an invalid form comes back as typed (422); else
    ``book()`` runs, and its receipt or its error is shown with the customer."""
    if not form.validate():
        return _till(store, customer=_fresh_customer(form.card.data), error=_form_error(form),
                     status=422, **{f"{what}_form": form})
    try:
        receipt = book()
    except AppError as error:
        return _failed(store, form, error, what)
    return _till(store, customer=_fresh_customer(form.card.data), receipt=receipt)


@bp.route("/till/earn", methods=["POST"])
@staff_required
def earn():
    store = _store()
    form = EarnForm(prefix="earn", currency=store["currency"])
    return _book(store, form, "earn", lambda: staff.earn(
        current_principal(), card=form.card.data, amount_minor=form.amount_minor,
        currency=store["currency"], key=form.key.data, store=form.store.data or None))


@bp.route("/till/redeem", methods=["POST"])
@staff_required
def redeem():
    store = _store()
    form = RedeemForm(prefix="redeem")
    return _book(store, form, "redeem", lambda: staff.redeem(
        current_principal(), card=form.card.data, coins=form.coin_count, key=form.key.data,
        confirmed=bool(form.confirm.data), store=form.store.data or None,
        reward_id=form.reward_id))


@bp.route("/till/reverse", methods=["POST"])
@staff_required
def reverse():
    store = _store()
    form = ReverseForm(prefix="reverse")
    if not form.validate():
        return _till(store, customer=_fresh_customer(form.card.data),
                     error=_form_error(form), status=422)
    try:
        receipt = staff.reverse(current_principal(), transaction_id=int(form.transaction.data),
                                key=form.key.data)
    except AppError as error:
        # Unreachable or unknown: the same undo form (same key) is offered again.
        retry = "reverse" if isinstance(error, ServiceUnavailable) else None
        return _till(store, customer=_fresh_customer(form.card.data),
                     error=_message(error, "reverse"), status=error.status, retry=retry,
                     **({"reverse_form": form} if retry else {}))
    return _till(store, customer=_fresh_customer(form.card.data), receipt=receipt)


def _failed(store: dict[str, Any], form: EarnForm | RedeemForm, error: AppError,
            action: str):
    if isinstance(error, IdempotencyMismatch):
        form.key.data = new_key()
    _attach(form, error)
    return _till(store, customer=_fresh_customer(form.card.data),
                 error=_message(error, action), status=error.status,
                 retry=action if isinstance(error, ServiceUnavailable) else None,
                 **{f"{action}_form": form})
