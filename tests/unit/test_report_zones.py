"""Local days as UTC pieces of constant offset (webapp.reports.zones): a zone without
daylight time is one piece; New York's days around its changes are cut where the offset
changes, and its 23-hour spring day ends at the right instant."""

from __future__ import annotations

from datetime import date, datetime

import pytest

from webapp.reports import zones


@pytest.mark.parametrize(("name", "first", "last", "expected"), [
    ("Asia/Kolkata", date(2026, 12, 1), date(2026, 12, 1),
     [(datetime(2026, 11, 30, 18, 30), datetime(2026, 12, 1, 18, 30), 19800)]),
    ("America/New_York", date(2026, 10, 31), date(2026, 11, 1),
     [(datetime(2026, 10, 31, 4), datetime(2026, 11, 1, 6), -14400),
      (datetime(2026, 11, 1, 6), datetime(2026, 11, 2, 5), -18000)]),
    ("America/New_York", date(2026, 3, 8), date(2026, 3, 8),  # a 23-hour day
     [(datetime(2026, 3, 8, 5), datetime(2026, 3, 8, 7), -18000),
      (datetime(2026, 3, 8, 7), datetime(2026, 3, 9, 4), -14400)]),
])
def test_zone_pieces(name, first, last, expected):
    assert [(p.start, p.end, p.offset_seconds)
            for p in zones.pieces(name, first, last)] == expected
