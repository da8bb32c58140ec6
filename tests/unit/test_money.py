"""Money arithmetic and parsing, with no database: coins for an amount, and the till's
parsers for amounts and coin counts (exact decimals, never floats)."""

from __future__ import annotations

import pytest

from tests.helpers import BAD_AMOUNTS, BAD_COINS
from webapp.ledger.services import coins_for
from webapp.money import AmountError, to_minor
from webapp.till.forms import format_money, parse_amount, parse_coins


@pytest.mark.parametrize(
    ("amount_minor", "minor_per_coin", "coins"),
    [(799, 100, 7), (100, 100, 1), (99, 100, 0), (8000, 8000, 1), (15999, 8000, 1),
     (16000, 8000, 2), (123456, 100, 1234)],
)
def test_earning_rounds_down(amount_minor, minor_per_coin, coins):
    assert coins_for(amount_minor, {"minor_per_coin": minor_per_coin}) == coins


@pytest.mark.parametrize(("text", "currency", "minor"), [
    ("12.50", "USD", 1250), ("12.5", "USD", 1250), ("12", "EUR", 1200), ("0.29", "USD", 29),
    ("007.10", "USD", 710), (" 80.00 ", "INR", 8000), ("1000000.00", "USD", 100_000_000),
    ("0.01", "USD", 1), ("1250", "JPY", 1250),
])
def test_parse_amount_is_exact(text, currency, minor):
    assert parse_amount(text, currency) == minor


@pytest.mark.parametrize(("text", "currency"), [
    *[(text, "USD") for text in BAD_AMOUNTS if text != "0.50"],
    ("12.5", "JPY"), ("1" * 5000, "USD"), (".5", "USD"), ("5.", "USD"),
])
def test_parse_amount_refuses(text, currency):
    with pytest.raises(ValueError, match=r"\w"):
        parse_amount(text, currency)


@pytest.mark.parametrize("text", [*BAD_COINS, "1.0", "1" * 100, "1000001"])
def test_parse_coins_refuses(text):
    with pytest.raises(ValueError, match=r"\w"):
        parse_coins(text)


def test_parse_coins_and_format_money():
    assert parse_coins(" 15 ") == 15
    assert parse_coins("1000000") == 1_000_000
    assert format_money(123456, "EUR") == "1,234.56 EUR"
    assert format_money(8000, "INR") == "80.00 INR"


def test_the_largest_purchase_is_named_in_the_store_currency():
    from webapp.errors import ValidationFailed
    from webapp.ledger import services as ledger

    for currency, most in (("EUR", "1,000,000.00 EUR"), ("JPY", "100,000,000 JPY")):
        with pytest.raises(ValidationFailed) as refused:
            ledger.earn(card="400000000002", store_code="X", currency=currency,
                        amount_minor=ledger.MAX_AMOUNT_MINOR + 1, idempotency_key="k",
                        staff_id=None)
        assert refused.value.errors["amount"] == [f"Enter an amount above 0 and at most {most}."]


def test_limits_in_messages_come_from_the_constants(monkeypatch):
    from webapp.errors import ValidationFailed
    from webapp.ledger import services as ledger

    monkeypatch.setattr(ledger, "MAX_REDEEM_COINS", 5)
    monkeypatch.setattr(ledger, "MAX_AMOUNT_MINOR", 250)
    with pytest.raises(ValidationFailed) as refused:
        ledger.redeem(card="400000000002", store_code="X", coins=6, idempotency_key="k",
                      staff_id=None)
    assert refused.value.errors["coins"] == ["Enter whole coins above 0 and at most 5."]
    with pytest.raises(ValidationFailed) as refused:
        ledger.earn(card="400000000002", store_code="X", currency="USD", amount_minor=251,
                    idempotency_key="k", staff_id=None)
    assert refused.value.errors["amount"] == ["Enter an amount above 0 and at most 2.50 USD."]


@pytest.mark.parametrize(("text", "currency", "message", "reason"), [
    ("12.50", "XYZ", "Unknown currency 'XYZ'.", "currency"),
    ("12,50", "EUR", 'Write the amount as a decimal string such as "12.50".', "format"),
    ("1e3", "USD", 'Write the amount as a decimal string such as "12.50".', "format"),
    ("12.505", "USD", "USD amounts have at most 2 decimal places.", "decimals"),
    ("12.5", "JPY", "JPY amounts have at most 0 decimal places.", "decimals"),
])
def test_each_refusal_says_why_and_names_its_reason(text, currency, message, reason):
    """The API shows the message; pages word their own from ``reason``."""
    with pytest.raises(AmountError) as error:
        to_minor(text, currency)
    assert (str(error.value), error.value.reason) == (message, reason)
