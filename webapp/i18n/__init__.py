"""Language and local formats: Flask-Babel, the locale choice, the formatting filters."""

from __future__ import annotations

from flask import Blueprint, Flask
from flask_babel import Babel, get_locale

from . import formatting, locales

bp = Blueprint("i18n", __name__)
babel = Babel()


def init_app(app: Flask) -> None:
    babel.init_app(app, locale_selector=locales.select_locale)
    formatting.init_app(app)
    app.context_processor(lambda: {"html_lang": locales.html_lang(get_locale())})
    app.jinja_env.globals["language_menu"] = routes.language_menu


from . import routes  # noqa: E402
