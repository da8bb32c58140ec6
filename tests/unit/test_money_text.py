"""Minor units back to text, for the API (decimal strings) and for people (grouped, with
the currency): every currency's decimals, zero and negative amounts."""

from __future__ import annotations

import pytest

from webapp.money import decimals_of, format_money, to_decimal_string


@pytest.mark.parametrize(("currency", "decimals"), [
    ("EUR", 2), ("USD", 2), ("INR", 2), ("GBP", 2), ("JPY", 0),
    ("XYZ", 2),  # a currency we do not know is shown with cents rather than refused
])
def test_decimals_of(currency, decimals):
    assert decimals_of(currency) == decimals


@pytest.mark.parametrize(("minor", "currency", "text"), [
    (1250, "EUR", "12.50"), (5, "USD", "0.05"), (0, "EUR", "0.00"),
    (-1250, "EUR", "-12.50"), (-5, "USD", "-0.05"),
    (1250, "JPY", "1250"), (0, "JPY", "0"), (-7, "JPY", "-7"),
    (1250, "XYZ", "12.50"),
])
def test_to_decimal_string(minor, currency, text):
    assert to_decimal_string(minor, currency) == text


@pytest.mark.parametrize(("minor", "currency", "text"), [
    (123456, "USD", "1,234.56 USD"), (5, "EUR", "0.05 EUR"),
    (100_000_000, "USD", "1,000,000.00 USD"),
    (123456, "JPY", "123,456 JPY"), (7, "JPY", "7 JPY"),
    (123456, "XYZ", "1,234.56 XYZ"),
])
def test_format_money(minor, currency, text):
    assert format_money(minor, currency) == text
