"""Numbers, money and times for people, in the request's locale (Babel, CLDR data).

Stored times are naive UTC; each is shown in the zone of the place it happened (a store's
``timezone``) with that zone's abbreviation from the tz database: a Bengaluru redemption
reads "12 Jan, 3:00 PM IST" in every language. The abbreviation is the tz database's, not
CLDR's: CLDR names India's zone "GMT+5:30" outside en_IN, and Babel calls Dublin's
winter time "IST" in en_IE, both wrong on a receipt.
"""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal
from functools import lru_cache
from zoneinfo import ZoneInfo

from babel import Locale
from babel.dates import DateTimePattern, match_skeleton, parse_pattern
from babel.numbers import format_currency, format_decimal
from flask import Flask
from flask_babel import get_locale

from webapp.i18n.messages import lazy_gettext as _l
from webapp.ledger import kinds
from webapp.money import decimals_of

KIND_LABELS = {
    kinds.EARN: _l("Earn"),
    kinds.REDEEM: _l("Redeem"),
    kinds.REVERSAL: _l("Reversal"),
    kinds.ADJUSTMENT: _l("Adjustment"),
    kinds.EXPIRY: _l("Expired"),
}


@lru_cache(maxsize=64)
def zone(name: str | None) -> ZoneInfo:
    try:
        return ZoneInfo(name or "UTC")
    except (ValueError, KeyError):  # a store with a zone this host's tzdata lacks
        return ZoneInfo("UTC")


# Coins and amounts are pure functions of (value, locale): remembered, because a card
# page formats 20-30 of them (each history line its coins twice and its amount) and
# Babel parses the pattern and walks the digits in Python every time (with the lines'
# labels about a tenth of the page's CPU, docs/performance.md). Bounded: the values a
# page shows repeat (small coin counts, the menu's prices).
_FORMATTED = 4096


def _name(locale) -> str | None:
    locale = locale or get_locale()
    return str(locale) if locale is not None else None


@lru_cache(maxsize=_FORMATTED)
def _coins(count: int, locale: str | None) -> str:
    return format_decimal(count, locale=locale)


@lru_cache(maxsize=_FORMATTED)
def _money(minor: int, currency: str, locale: str | None) -> str:
    amount = Decimal(minor).scaleb(-decimals_of(currency))
    return format_currency(amount, currency, locale=locale)


def coins(count: int, locale=None) -> str:
    """1234567 -> "1,234,567" (en_US), "12,34,567" (en_IN, hi_IN)."""
    return _coins(count, _name(locale))


def signed_coins(count: int, locale=None) -> str:
    """+12 or -5, grouped for the locale."""
    sign = "+" if count > 0 else "-" if count < 0 else ""
    return sign + coins(abs(count), locale)


def money(minor: int, currency: str, locale=None) -> str:
    """12345600 INR -> "₹1,23,456.00" (en_IN), 123450 EUR -> "€1,234.50"."""
    return _money(minor, currency, _name(locale))


def local(moment: datetime, timezone: str | None) -> datetime:
    """A stored (naive UTC) time as a wall-clock time in ``timezone``."""
    return moment.replace(tzinfo=UTC).astimezone(zone(timezone))


@lru_cache(maxsize=32)
def _patterns(locale: Locale) -> tuple[DateTimePattern, DateTimePattern]:
    """The locale's day ("MMMd" skeleton) and short time patterns, resolved once: Babel's
    format_skeleton and format_time match the skeleton and look the pattern up on every
    call, 0.2 ms a history line, a fifth of a card page (docs/performance.md). Applying
    the pattern to an aware time is what they do after that, to the letter."""
    skeletons = locale.datetime_skeletons
    return (parse_pattern(skeletons[match_skeleton("MMMd", skeletons)]),
            locale.time_formats["short"])


def when(moment: datetime, timezone: str | None, locale=None) -> str:
    """"Jan 12, 3:00 PM IST" (en_US), "12 जन॰, 3:00 pm IST" (hi_IN)."""
    locale = Locale.parse(locale or get_locale())  # a Locale, or its name
    there = local(moment, timezone)
    month_day, short_time = _patterns(locale)
    return f"{month_day.apply(there, locale)}, {short_time.apply(there, locale)} {there.tzname()}"


def day(moment: datetime, timezone: str | None, locale=None) -> str:
    """"12 Jan" (en_IE, en_IN), "Jan 12" (en_US), "12 जन॰" (hi_IN)."""
    locale = Locale.parse(locale or get_locale())
    return _patterns(locale)[0].apply(local(moment, timezone), locale)


def kind_label(kind: str) -> str:
    return _kind_label(kind, _name(None))


@lru_cache(maxsize=256)
def _kind_label(kind: str, locale: str | None) -> str:
    # Keyed by the locale the request's translations are for (one catalogue per locale).
    label = KIND_LABELS.get(kind)
    return str(label) if label is not None else kind.capitalize()


def init_app(app: Flask) -> None:
    app.jinja_env.filters.update(
        coins=coins, signed_coins=signed_coins, money=money, when=when, day=day,
        kind_label=kind_label,
    )
