from __future__ import annotations

from wtforms import StringField
from wtforms.validators import DataRequired, Length, Regexp

from webapp.auth.forms import NAME_PATTERN
from webapp.forms import PageForm


class PasskeyNameForm(PageForm):
    name = StringField("Passkey name", validators=[
        DataRequired(message="Give the passkey a name, such as “My phone”."),
        Length(max=60), Regexp(NAME_PATTERN, message="Use letters, numbers and spaces.")],
        filters=[lambda v: v.strip() if isinstance(v, str) else v])
