from __future__ import annotations

from wtforms import StringField
from wtforms.validators import DataRequired, Length

from webapp.forms import NameRule, PageForm


class PasskeyNameForm(PageForm):
    name = StringField("Passkey name", validators=[
        DataRequired(message="Give the passkey a name, such as “My phone”."),
        Length(max=60), NameRule()],
        filters=[lambda v: v.strip() if isinstance(v, str) else v])
