from __future__ import annotations

from wtforms import EmailField, PasswordField, RadioField, SelectChoice, StringField
from wtforms.validators import DataRequired, Email, InputRequired, Length

from webapp.forms import NameRule, PageForm

REGION_CHOICES = [SelectChoice("us", "United States"), SelectChoice("ie", "Ireland"),
                  SelectChoice("in", "India")]


def _strip(value: object) -> object:
    """Phone keyboards add a space after an autocompleted word; it is never meant."""
    return value.strip() if isinstance(value, str) else value


class LoginForm(PageForm):
    email = EmailField("Email", validators=[DataRequired(), Length(max=254)])
    password = PasswordField("Password", validators=[DataRequired(), Length(max=128)])


class RegisterForm(PageForm):
    name = StringField(
        "Your name",
        validators=[
            DataRequired(),
            Length(min=1, max=60),
            NameRule(),
        ],
        filters=[_strip],
    )
    email = EmailField("Email", validators=[DataRequired(), Email(), Length(max=254)],
                       filters=[_strip])
    password = PasswordField(
        "Password",
        validators=[
            DataRequired(),
            Length(min=10, max=128, message="Use 10 to 128 characters."),
        ],
    )
    # InputRequired: a post without the field is refused, not quietly given the default.
    region = RadioField("Home region", choices=REGION_CHOICES, default="us",
                        validators=[InputRequired(message="Choose your home region.")])
