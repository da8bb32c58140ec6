"""Extensions, created unbound; :func:`webapp.create_app` binds them to an app."""

from __future__ import annotations

from flask_compress import Compress
from flask_limiter import Limiter
from flask_limiter.util import get_remote_address
from flask_wtf import CSRFProtect

from webapp.database import Database

csrf = CSRFProtect()
# Limits are declared where they apply (the login and token endpoints), not globally.
limiter = Limiter(key_func=get_remote_address, default_limits=[])
db = Database()
# See webapp/compression.py.
compress = Compress()
