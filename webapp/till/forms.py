"""The till's forms.

Amounts typed by the barista become integer minor units through :mod:`webapp.money`
(never a float, so 0.29 is 29 cents and not 28.999…), with messages worded for the
till. Each earn/redeem/reverse form carries an idempotency key made when the
form was rendered, so a double tap or a retry on a slow network books once.
"""

from __future__ import annotations

import re
import secrets

from wtforms import BooleanField, HiddenField, StringField
from wtforms.validators import InputRequired, Length, Optional, Regexp, ValidationError

from webapp.card import codes
from webapp.card.numbers import is_valid_card_number
from webapp.forms import PageForm
from webapp.ledger.services import MAX_AMOUNT_MINOR, MAX_REDEEM_COINS
from webapp.money import AmountError, decimals_of, format_money, to_minor

_AMOUNT = re.compile(r"^[0-9]+(?:\.[0-9]+)?$")  # ASCII digits only: \d accepts "٣"
_COINS = re.compile(r"^[0-9]+$")
_KEY = re.compile(r"^[A-Za-z0-9_-]{16,64}$")
KEY_PREFIX = "till-"


def new_key() -> str:
    return KEY_PREFIX + secrets.token_urlsafe(18)


def parse_amount(text: str, currency: str) -> int:
    """``"12.50"`` in USD -> ``1250``. Raises :class:`ValueError` with a message for the
    barista: empty, negative, zero, too many decimals, not a number, too large."""
    digits = decimals_of(currency)
    text = (text or "").strip()
    if not text:
        raise ValueError("Enter the purchase amount.")
    if text.startswith("-"):
        raise ValueError("The amount must be more than zero.")
    if "," in text and _AMOUNT.match(text.replace(",", ".")):
        raise ValueError("Use a dot for decimals, for example 12.50.")
    whole = text.partition(".")[0].lstrip("0")
    if _AMOUNT.match(text) and len(whole) > len(str(MAX_AMOUNT_MINOR)):
        raise ValueError(_too_large(currency))
    try:
        minor = to_minor(text, currency)
    except AmountError as error:
        if error.reason == "decimals":
            raise ValueError(f"Use at most {digits} decimals for {currency}." if digits else
                             f"{currency} has no decimals.") from error
        example = "12.50" if digits == 2 else "1250"
        raise ValueError(
            f"Enter the amount in {currency} as digits, for example {example}.") from error
    if minor <= 0:
        raise ValueError("The amount must be more than zero.")
    if minor > MAX_AMOUNT_MINOR:
        raise ValueError(_too_large(currency))
    return minor


def _too_large(currency: str) -> str:
    return f"That is more than {format_money(MAX_AMOUNT_MINOR, currency)} for one purchase."


def parse_coins(text: str) -> int:
    text = (text or "").strip()
    if not text:
        raise ValueError("Enter how many coins to redeem.")
    if text.startswith("-"):
        raise ValueError("Coins must be more than zero.")
    if not _COINS.match(text):
        raise ValueError("Enter whole coins, for example 5.")
    if len(text.lstrip("0")) > len(str(MAX_REDEEM_COINS)) or int(text) > MAX_REDEEM_COINS:
        raise ValueError(f"At most {MAX_REDEEM_COINS:,} coins at once.")
    coins = int(text)
    if coins <= 0:
        raise ValueError("Coins must be more than zero.")
    return coins


def _scanned_card(form: PageForm, field: StringField) -> None:
    scanned = codes.parse_scanned(field.data or "")
    if scanned is None:
        raise ValidationError(
            "That is not a card number. Type the 12 digits under the QR, or scan it.")
    if not is_valid_card_number(scanned.number):
        # The Luhn digit catches most typos before they become "no such card".
        raise ValidationError("Check the card number: one of the digits looks wrong.")


_stripped = [lambda v: v.strip() if isinstance(v, str) else v]
_key_validators = [
    InputRequired(message="This form is out of date: reload the till."),
    Regexp(_KEY, message="This form is out of date: reload the till."),
]
_card_validators = [
    InputRequired(message="Scan the card or type its number."),
    Length(max=40, message="That is not a card number."),
    _scanned_card,
]


class LookupForm(PageForm):
    card = StringField("Card number", validators=_card_validators, filters=_stripped)


class _CardActionForm(PageForm):
    """What every action after a scan carries: the scanned text and its own key."""

    card = HiddenField(validators=_card_validators, filters=_stripped)
    key = HiddenField(validators=_key_validators)

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        if not self.key.data:
            self.key.data = new_key()


# The store the page was rendered for: the rulebook refuses any other, so a page left
# open while the barista was moved to another store (and currency) books nothing.
_store_validators = [
    Optional(), Length(max=20, message="This form is out of date: reload the till.")]


class EarnForm(_CardActionForm):
    store = HiddenField(validators=_store_validators, filters=_stripped)
    amount = StringField("Purchase amount", validators=[Length(max=32)], filters=_stripped)

    def __init__(self, *args, currency: str = "USD", **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.currency = currency
        self.amount_minor: int | None = None

    def validate_amount(self, field: StringField) -> None:
        try:
            self.amount_minor = parse_amount(field.data or "", self.currency)
        except ValueError as error:
            raise ValidationError(str(error)) from None


class RedeemForm(_CardActionForm):
    store = HiddenField(validators=_store_validators, filters=_stripped)
    coins = StringField("Coins to redeem", validators=[Length(max=32)], filters=_stripped)
    confirm = BooleanField("I checked the customer's ID: redeem by card number")

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.coin_count: int | None = None

    def validate_coins(self, field: StringField) -> None:
        try:
            self.coin_count = parse_coins(field.data or "")
        except ValueError as error:
            raise ValidationError(str(error)) from None


class ReverseForm(_CardActionForm):
    transaction = HiddenField(validators=[
        InputRequired(message="Nothing to reverse."),
        Regexp(r"^[0-9]{1,18}$", message="Nothing to reverse."),
    ])
