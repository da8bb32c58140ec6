"""Money on the wire: decimal strings, never JSON numbers.

A float cannot hold 0.10 exactly, so the API takes amounts as strings ("12.50") and
turns them into integer minor units (cents, paise) with integer arithmetic only.
"""

from __future__ import annotations

import re

# ISO 4217 minor-unit exponents of the currencies our stores take.
CURRENCY_DECIMALS: dict[str, int] = {"EUR": 2, "INR": 2, "USD": 2}
MAX_WHOLE_DIGITS = 12  # far above any purchase; the ledger refuses more than 1,000,000.00
_MOST_DECIMALS = max(CURRENCY_DECIMALS.values())
# For the OpenAPI document; to_minor checks the decimals of the actual currency.
AMOUNT_PATTERN = rf"^[0-9]{{1,{MAX_WHOLE_DIGITS}}}(\.[0-9]{{1,{_MOST_DECIMALS}}})?$"
_AMOUNT = re.compile(rf"^([0-9]{{1,{MAX_WHOLE_DIGITS}}})(?:\.([0-9]+))?$")


class AmountError(ValueError):
    """The amount is not a plain decimal in this currency; the message says why."""


def to_minor(text: str, currency: str) -> int:
    """``"12.50", "EUR"`` -> ``1250``. Refuses exponents, signs and surplus decimals."""
    decimals = CURRENCY_DECIMALS.get(currency)
    if decimals is None:
        raise AmountError(f"Unknown currency {currency!r}.")
    match = _AMOUNT.fullmatch(text)
    if match is None:
        raise AmountError('Write the amount as a decimal string such as "12.50".')
    whole, fraction = match.group(1), match.group(2) or ""
    if len(fraction) > decimals:
        raise AmountError(f"{currency} amounts have at most {decimals} decimal places.")
    return int(whole) * 10**decimals + int(fraction.ljust(decimals, "0") or "0")


def to_decimal_string(minor: int, currency: str) -> str:
    """``1250, "EUR"`` -> ``"12.50"``."""
    decimals = CURRENCY_DECIMALS.get(currency, 2)
    sign = "-" if minor < 0 else ""
    whole, fraction = divmod(abs(minor), 10**decimals)
    return f"{sign}{whole}.{fraction:0{decimals}d}" if decimals else f"{sign}{whole}"
