"""Mail: an outbox table written in the same transaction as the change it reports, and
a sender (``flask --app webapp mail send``) that delivers it over SMTP. A mail server
that is down delays mail; it never fails the request that queued it.

``MAIL_BACKEND=outbox`` (``make run``) keeps mail in the outbox, logs it and shows it at
``/demo/outbox``, so the demo works without a mail server.
"""

from flask import Blueprint

bp = Blueprint("mail", __name__)

from . import routes  # noqa: E402,F401
