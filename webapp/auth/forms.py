from __future__ import annotations

from wtforms import EmailField, PasswordField, RadioField, SelectChoice, StringField
from wtforms.validators import DataRequired, Email, InputRequired, Length

from webapp.config import REGION_NAMES
from webapp.forms import NameRule, PageForm

REGION_CHOICES = [SelectChoice(code, name) for code, name in REGION_NAMES.items()]


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


def _new_password(label: str = "New password") -> PasswordField:
    return PasswordField(label, validators=[
        DataRequired(), Length(min=10, max=128, message="Use 10 to 128 characters.")])


class ConfirmForm(PageForm):
    """A button that uses a mailed link: opening the link itself changes nothing, so a
    mail scanner that follows links can't spend it."""


class ForgotPasswordForm(PageForm):
    email = EmailField("Email", validators=[DataRequired(), Email(), Length(max=254)],
                       filters=[_strip])


class ResetPasswordForm(PageForm):
    password = _new_password()


class ChangePasswordForm(PageForm):
    current_password = PasswordField("Current password",
                                     validators=[DataRequired(), Length(max=128)])
    password = _new_password()


class ChangeEmailForm(PageForm):
    email = EmailField("New email", validators=[DataRequired(), Email(), Length(max=254)],
                       filters=[_strip])
    # Not "current_password": the password form on the same page has that id.
    email_password = PasswordField("Current password",
                                   validators=[DataRequired(), Length(max=128)])
