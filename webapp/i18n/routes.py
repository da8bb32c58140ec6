"""The customer's language and formats setting (a form on the card page)."""

from __future__ import annotations

from dataclasses import dataclass

from flask import redirect, request, url_for
from wtforms import HiddenField, SelectField

from webapp.forms import PageForm

from . import bp, locales

ONE_YEAR = 365 * 86400


class LanguageForm(PageForm):
    locale = SelectField(choices=locales.choices)
    next = HiddenField()


@bp.route("/language", methods=["POST"])
def choose():
    """Remembers the choice in a cookie (no account needed: the login page can use it)."""
    from webapp.auth.routes import _safe_next  # here: auth's pages import this package

    form = LanguageForm()
    response = redirect(_safe_next(form.next.data))
    if form.validate():
        response.set_cookie(locales.COOKIE, form.locale.data, max_age=ONE_YEAR, httponly=True,
                            samesite="Lax", secure=request.is_secure)
    return response


@dataclass(frozen=True)
class LanguageMenu:
    """What the language setting shows: the locales, the current one, where to go back.
    A plain object, not a LanguageForm: building a form on every page cost more than a
    millisecond (a tenth of a card page); the POST is still validated by the form."""

    choices: tuple[tuple[str, str], ...]
    current: str
    next: str


def language_menu() -> LanguageMenu:
    """For a page's template: the setting with the current choice selected."""
    from flask_babel import get_locale

    return LanguageMenu(locales.choices(), str(get_locale()),
                        request.full_path.rstrip("?") if request.method == "GET"
                        else url_for("card.show"))
