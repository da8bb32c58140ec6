from __future__ import annotations

from flask_wtf import FlaskForm
from wtforms import DateField, StringField
from wtforms.validators import DataRequired, Length, Optional, Regexp, ValidationError

from webapp.auth.forms import NAME_PATTERN, PageForm
from webapp.clock import utcnow


def _not_in_future(form: FlaskForm, field: DateField) -> None:
    if field.data and field.data > utcnow().date():
        raise ValidationError("A birthday can't be in the future.")
    if field.data and field.data.year < 1900:
        raise ValidationError("Enter a birthday after 1900.")


class MemberForm(PageForm):
    name = StringField(
        "Name",
        validators=[
            DataRequired(),
            Length(max=60),
            Regexp(NAME_PATTERN, message="Use letters, numbers and spaces, without < or >."),
        ],
        filters=[lambda v: v.strip() if isinstance(v, str) else v],
    )
    birthday = DateField("Birthday (optional)", validators=[Optional(), _not_in_future])
