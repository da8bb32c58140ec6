"""The history's dates and times, formatted from patterns resolved once per locale, read
exactly as Babel's own format_skeleton and format_time write them, in every locale we
offer, in every region's zone, either side of midnight and of a daylight-saving change."""

from __future__ import annotations

import itertools
from datetime import datetime

import pytest
from babel import Locale
from babel.dates import format_skeleton, format_time

from webapp.config import LOCALES, REGION_TIMEZONES
from webapp.i18n import formatting

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
