"""The history's dates and times, formatted from patterns resolved once per locale, read
exactly as Babel's own format_skeleton and format_time write them, in every locale we
offer, in every region's zone, either side of midnight and of a daylight-saving change."""

from __future__ import annotations

import itertools
from datetime import datetime
from decimal import Decimal

import pytest
from babel import Locale
from babel.dates import format_skeleton, format_time
from babel.numbers import format_currency, format_decimal

from webapp.config import LOCALES, REGION_TIMEZONES
from webapp.i18n import formatting
from webapp.money import decimals_of

MOMENTS = [datetime(2026, 1, 12, 9, 30), datetime(2026, 3, 8, 6, 59),  # New York's spring
           datetime(2026, 3, 8, 7, 1), datetime(2026, 10, 25, 0, 30),  # Dublin's autumn
           datetime(2026, 11, 29, 18, 29), datetime(2026, 11, 29, 18, 31),  # Kolkata midnight
           datetime(2026, 12, 31, 23, 59)]
ZONES = sorted({*REGION_TIMEZONES.values(), "UTC"})


@pytest.mark.parametrize("locale_name", LOCALES)
def test_when_and_day_read_as_babel_writes_them(locale_name):
    locale = Locale.parse(locale_name)
    for moment, zone_name in itertools.product(MOMENTS, ZONES):
        there = formatting.local(moment, zone_name)
        expected_day = format_skeleton("MMMd", there, locale=locale)
        expected = f"{expected_day}, {format_time(there, 'short', locale=locale)} {there.tzname()}"
        assert formatting.when(moment, zone_name, locale) == expected, (moment, zone_name)
        assert formatting.day(moment, zone_name, locale) == expected_day, (moment, zone_name)


@pytest.mark.parametrize("locale_name", LOCALES)
def test_remembered_coins_and_amounts_read_as_babel_writes_them(locale_name):
    """Coins and amounts are remembered per value and locale: each locale still gets
    its own grouping and symbol, the first time and every time after (asked in every
    locale in turn, so an answer remembered for another locale would show)."""
    locale = Locale.parse(locale_name)
    for _ in range(2):
        for other in LOCALES:  # fill the memory with every locale's answers first
            formatting.coins(1_234_567, Locale.parse(other))
            formatting.money(12_345_600, "INR", other)
        for count in (0, 7, 1_234, 1_234_567):
            assert formatting.coins(count, locale) == format_decimal(count, locale=locale)
            assert formatting.signed_coins(-count, locale_name) == (
                ("-" if count else "") + format_decimal(count, locale=locale))
        for minor, currency in ((1250, "USD"), (12_345_600, "INR"), (123_450, "EUR"),
                                (1250, "JPY")):
            amount = Decimal(minor).scaleb(-decimals_of(currency))
            assert formatting.money(minor, currency, locale) == format_currency(
                amount, currency, locale=locale), (minor, currency)
