"""What every page form shares."""

from __future__ import annotations

from flask import request
from flask_wtf import FlaskForm
from wtforms import Field
from wtforms.validators import StopValidation

from webapp.names import clean_name


class PageForm(FlaskForm):
    """A form that a page posts: its text fields, never a JSON body or uploaded files.

    Flask-WTF would read a JSON body, or a file part, as a field's value, and those carry
    numbers, lists, objects or files where every validator expects text: ``{"name": 5}``
    was a 500. Pages send neither (the API parses its own JSON), so such a post is read
    as the plain form fields it has, and the missing ones get their field error (422).
    """

    def __init__(self, *args: object, **kwargs: object) -> None:
        if not args and "formdata" not in kwargs and (request.is_json or request.files):
            kwargs["formdata"] = request.form
        super().__init__(*args, **kwargs)


class NameRule:
    """The one name rule (:mod:`webapp.names`) as a validator: refuses the name with its
    message, or keeps the cleaned name as the field's data."""

    def __call__(self, form: FlaskForm, field: Field) -> None:
        try:
            field.data = clean_name(field.data or "")
        except ValueError as error:
            raise StopValidation(str(error)) from None
