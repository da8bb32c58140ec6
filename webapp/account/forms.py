from __future__ import annotations

from wtforms import BooleanField, DateField, PasswordField, StringField
from wtforms.validators import DataRequired, InputRequired, Length, Optional

from webapp.family.forms import _not_in_future
from webapp.forms import NameRule, PageForm


class ProfileForm(PageForm):
    name = StringField("Your name", validators=[
        DataRequired(), Length(max=60),
        NameRule()],
        filters=[lambda v: v.strip() if isinstance(v, str) else v])
    birthday = DateField("Birthday (optional)", validators=[Optional(), _not_in_future])


class EraseForm(PageForm):
    current_password = PasswordField("Your password",
                                     validators=[DataRequired(), Length(max=128)])
    understood = BooleanField("I understand that my coins and my family's cards are lost",
                              validators=[InputRequired(message="Tick the box to go on.")])
