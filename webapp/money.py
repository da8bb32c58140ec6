"""Money as text: decimal strings, never floats, for the API and the till alike.

A float cannot hold 0.10 exactly, so amounts arrive as strings ("12.50") and become
integer minor units (cents, paise) with integer arithmetic only.
"""

from __future__ import annotations

import re

# ISO 4217 minor-unit exponents of the currencies our stores take.
CURRENCY_DECIMALS: dict[str, int] = {"EUR": 2, "INR": 2, "USD": 2, "GBP": 2, "JPY": 0}
# Far above any purchase: the ledger's own maximum (ledger.services.MAX_AMOUNT_MINOR) is lower.
MAX_WHOLE_DIGITS = 12
_MOST_DECIMALS = max(CURRENCY_DECIMALS.values())
# For the OpenAPI document; to_minor checks the decimals of the actual currency.
AMOUNT_PATTERN = rf"^[0-9]{{1,{MAX_WHOLE_DIGITS}}}(\.[0-9]{{1,{_MOST_DECIMALS}}})?$"
_AMOUNT = re.compile(rf"^([0-9]{{1,{MAX_WHOLE_DIGITS}}})(?:\.([0-9]+))?$")


class AmountError(ValueError):
    """The amount is not a plain decimal in this currency; the message says why and
    ``reason`` (currency, format, decimals) lets a page word it for its own users."""

    def __init__(self, message: str, reason: str) -> None:
        super().__init__(message)
        self.reason = reason


def to_minor(text: str, currency: str) -> int:
    """``"12.50", "EUR"`` -> ``1250``. Refuses exponents, signs and surplus decimals."""
    decimals = CURRENCY_DECIMALS.get(currency)
    if decimals is None:
        raise AmountError(f"Unknown currency {currency!r}.", "currency")
    match = _AMOUNT.fullmatch(text)
    if match is None:
        raise AmountError('Write the amount as a decimal string such as "12.50".', "format")
    whole, fraction = match.group(1), match.group(2) or ""
    if len(fraction) > decimals:
        raise AmountError(f"{currency} amounts have at most {decimals} decimal places.",
                          "decimals")
    return int(whole) * 10**decimals + int(fraction.ljust(decimals, "0") or "0")


def decimals_of(currency: str) -> int:
    return CURRENCY_DECIMALS.get(currency, 2)


def to_decimal_string(minor: int, currency: str) -> str:
    """``1250, "EUR"`` -> ``"12.50"``."""
    decimals = decimals_of(currency)
    sign = "-" if minor < 0 else ""
    whole, fraction = divmod(abs(minor), 10**decimals)
    return f"{sign}{whole}.{fraction:0{decimals}d}" if decimals else f"{sign}{whole}"


def format_money(minor: int, currency: str) -> str:
    """``123456, "USD"`` -> ``"1,234.56 USD"`` for people."""
    decimals = decimals_of(currency)
    whole, fraction = divmod(minor, 10**decimals)
    return f"{whole:,}.{fraction:0{decimals}d} {currency}" if decimals else f"{whole:,} {currency}"
