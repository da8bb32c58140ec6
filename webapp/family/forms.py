from __future__ import annotations

from flask_wtf import FlaskForm
from wtforms import DateField, StringField
from wtforms.validators import DataRequired, Length, Optional, ValidationError

from webapp.clock import utcnow
from webapp.forms import NameRule, PageForm


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
            NameRule(),
        ],
        filters=[lambda v: v.strip() if isinstance(v, str) else v],
    )
    birthday = DateField("Birthday (optional)", validators=[Optional(), _not_in_future])
