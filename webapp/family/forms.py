from __future__ import annotations

from flask_wtf import FlaskForm
from wtforms import DateField, EmailField, HiddenField, PasswordField, StringField
from wtforms.validators import DataRequired, Email, Length, Optional, Regexp, ValidationError

from webapp.clock import utcnow
from webapp.family.services import new_request_id
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


class AddMemberForm(MemberForm):
    """The add form carries its request's id: pressing Add again after an unclear answer
    (a timeout, "we couldn't confirm") sends the same id and adds no second member. A
    fresh form gets a fresh id."""

    request_id = HiddenField(
        validators=[
            Optional(),
            Regexp(r"^[A-Za-z0-9_-]{1,64}$", message="This form is out of date: reload the page."),
        ]
    )

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        if not self.request_id.data:
            self.request_id.data = new_request_id()


class JoinForm(PageForm):
    """A family member's own sign-in, made from the owner's invite."""

    email = EmailField("Your email", validators=[DataRequired(), Email(), Length(max=254)],
                       filters=[lambda v: v.strip() if isinstance(v, str) else v])
    password = PasswordField("Choose a password", validators=[
        DataRequired(), Length(min=10, max=128, message="Use 10 to 128 characters.")])
