"""Which locale a request is served in: the customer's setting, else their browser's.

One locale decides both the language (the catalogs under webapp/translations; a locale
without one, such as en_IN, reads the English source) and the formats of numbers, money
and dates (Babel's CLDR data: en_IN groups in lakhs, ₹1,23,456.00).
"""

from __future__ import annotations

import functools

from babel import Locale
from flask import current_app, g, request
from flask_babel import refresh

from webapp.config import LOCALES

COOKIE = "lang"


def select_locale() -> str:
    """Flask-Babel's locale selector: a page that formats for someone else (the till, in
    its store's locale) says so first; then the card page's setting, then the browser's
    Accept-Language (``hi`` picks hi_IN, ``en-IN`` en_IN), else the default."""
    forced = g.get("forced_locale")
    if forced:
        return forced
    chosen = request.cookies.get(COOKIE)
    if chosen in LOCALES:
        return chosen
    return (request.accept_languages.best_match(LOCALES)
            or current_app.config["BABEL_DEFAULT_LOCALE"])


def use_locale(locale: str) -> None:
    """Serve the rest of this request in ``locale`` (e.g. the till in its store's)."""
    g.forced_locale = locale if locale in LOCALES else str(Locale.parse(locale))
    refresh()  # Flask-Babel remembers the locale once asked; forget it


@functools.cache
def choices() -> tuple[tuple[str, str], ...]:
    """Each locale named in its own language: "हिन्दी (भारत)", "English (India)"."""
    return tuple((code, Locale.parse(code).get_display_name(code)) for code in LOCALES)


def html_lang(locale: Locale) -> str:
    """BCP 47 for ``<html lang>``: hi-IN, en-US."""
    return f"{locale.language}-{locale.territory}" if locale.territory else locale.language
