"""Texts that reach a page from outside our templates, marked so ``make translations``
extracts them: WTForms' own validation messages (looked up in our catalog by
:class:`webapp.forms.PageForm`) and the service layer's messages that pages show
(:func:`page_text`). ``N_`` only marks; nothing is translated at import."""

from __future__ import annotations

from typing import Any

from flask_babel import gettext


class LazyText:
    """A text translated when it is shown (form labels and messages are made at import).

    Not Flask-Babel's ``lazy_gettext``: its strings have ``__html__``, which tells Jinja
    they are safe markup, so "without < or >" reached the page unescaped.
    """

    __slots__ = ("text",)

    def __init__(self, text: str) -> None:
        self.text = text

    def __str__(self) -> str:
        return gettext(self.text)

    def __mod__(self, values: Any) -> str:  # WTForms: message % {"min": 1, "max": 60}
        return str(self) % values

    def __eq__(self, other: object) -> bool:
        return str(self) == str(other)

    def __hash__(self) -> int:
        return hash(self.text)

    def __repr__(self) -> str:
        return f"LazyText({self.text!r})"


def lazy_gettext(text: str) -> LazyText:
    return LazyText(text)


def N_(text: str) -> str:  # the conventional gettext marker name
    return text


WTFORMS = (
    N_("This field is required."),
    N_("Invalid email address."),
    N_("Field cannot be longer than %(max)d characters."),
    N_("Field must be between %(min)d and %(max)d characters long."),
    N_("Not a valid choice."),
    N_("Not a valid date value."),
)
REGIONS = (N_("United States"), N_("Ireland"), N_("India"))  # webapp.config.REGION_NAMES
NAMES = (N_("Use letters, numbers and spaces, without < or >."),  # webapp.names
         N_("Enter a name with at least one visible character."))
SERVICES = (
    N_("Email or password is incorrect."),
    N_("We could not create an account with these details. If you already have one, "
       "sign in instead."),
    N_("No such family member."),
    N_("A family can have at most 4 members besides you."),
)


def page_text(text: str) -> str:
    """A service's message in the page's language, when the catalog has it (a message
    with values in it, say a number of seconds, stays as it was)."""
    return gettext(text)
