"""Local days in UTC terms: the pure-Python half of store-local reports.

A store's day is its own midnight to midnight (``stores.timezone``). The database keeps
naive UTC times and has no time zone tables we can count on (SQLite has none; MariaDB's
and MySQL's are often empty), so the zone arithmetic happens here and the SQL only sees
UTC instants and fixed offsets: for each zone, the UTC span of the report's local days,
cut where the zone's UTC offset changes (daylight saving). Inside one piece the local
date of an instant is the UTC date of ``instant + offset``, which every dialect can do.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta

from webapp.i18n.formatting import local, zone


@dataclass(frozen=True)
class Piece:
    """UTC instants in [start, end) are ``offset_seconds`` behind the zone's wall clock."""

    start: datetime
    end: datetime
    offset_seconds: int


def utc_of_local_midnight(name: str | None, day: date) -> datetime:
    """The naive UTC instant at which ``day`` begins in zone ``name``."""
    local = datetime.combine(day, time.min, tzinfo=zone(name))
    return local.astimezone(UTC).replace(tzinfo=None)


def local_today(name: str | None, now_utc: datetime) -> date:
    return local(now_utc, name).date()


def _offset(name: str | None, moment: datetime) -> int:
    return int(local(moment, name).utcoffset().total_seconds())


def _change_after(name: str | None, low: datetime, high: datetime) -> datetime:
    """The first instant in (low, high] with ``high``'s offset (offsets differ at the ends):
    a bisection to the second; zone changes fall on whole seconds."""
    target = _offset(name, high)
    while high - low > timedelta(seconds=1):
        middle = low + (high - low) / 2
        middle = middle.replace(microsecond=0)
        if middle <= low:
            break
        if _offset(name, middle) == target:
            high = middle
        else:
            low = middle
    return high


def pieces(name: str | None, first: date, last: date) -> list[Piece]:
    """The UTC span of local days ``first``..``last`` (inclusive) in zone ``name``, in
    pieces of constant offset. Steps a day at a time (zones change offset at most a few
    times a year, never twice within a day) and bisects where the offset changed."""
    start = utc_of_local_midnight(name, first)
    end = utc_of_local_midnight(name, last + timedelta(days=1))
    result: list[Piece] = []
    piece_start, offset = start, _offset(name, start)
    cursor = start
    while cursor < end:
        step = min(cursor + timedelta(days=1), end)
        probe = step - timedelta(seconds=1) if step == end else step
        if _offset(name, probe) != offset:
            change = _change_after(name, cursor, probe)
            result.append(Piece(piece_start, change, offset))
            piece_start, offset = change, _offset(name, change)
        cursor = step
    result.append(Piece(piece_start, end, offset))
    return result
