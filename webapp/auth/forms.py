from __future__ import annotations

from flask_wtf import FlaskForm
from wtforms import EmailField, PasswordField, RadioField, StringField
from wtforms.validators import DataRequired, Email, Length, Regexp

REGION_CHOICES = [("us", "United States"), ("ie", "Ireland"), ("in", "India")]
# Printable text only: no control characters sneaking into names shown at the till.
NAME_PATTERN = r"^[^\x00-\x1f\x7f<>]+$"


class LoginForm(FlaskForm):
    email = EmailField("Email", validators=[DataRequired(), Length(max=254)])
    password = PasswordField("Password", validators=[DataRequired(), Length(max=128)])


class RegisterForm(FlaskForm):
    name = StringField(
        "Your name",
        validators=[
            DataRequired(),
            Length(min=1, max=60),
            Regexp(NAME_PATTERN, message="Use letters, numbers and spaces, without < or >."),
        ],
        filters=[lambda v: v.strip() if isinstance(v, str) else v],
    )
    email = EmailField("Email", validators=[DataRequired(), Email(), Length(max=254)])
    password = PasswordField(
        "Password",
        validators=[
            DataRequired(),
            Length(min=10, max=128, message="Use 10 to 128 characters."),
        ],
    )
    region = RadioField("Home region", choices=REGION_CHOICES, default="us",
                        validators=[DataRequired()])
