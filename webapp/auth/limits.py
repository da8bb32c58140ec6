"""Per-address rate limits (registration, password reset), on the app's one limiter.

A limit per client address alone lets one attacker with many addresses flood one
mailbox; a limit per email address holds for everyone asking about that mailbox. It
answers the same for known and unknown addresses, so it reveals nothing.
"""

from __future__ import annotations

import hashlib

from flask import current_app, request

from .emails import normalise_email


def address_limit() -> str:
    return current_app.config["ADDRESS_RATE_LIMIT"]


def address_key() -> str:
    """The limiter key for the email address in the form or JSON body. Hashed: the
    limiter's storage (Redis) need not hold people's addresses."""
    email = request.form.get("email") if request.form else None
    if email is None and request.is_json:
        body = request.get_json(silent=True)
        email = body.get("email") if isinstance(body, dict) else None
    if not isinstance(email, str) or not email.strip():
        return "address:none"
    digest = hashlib.sha256(normalise_email(email).encode()).hexdigest()[:32]
    return f"address:{digest}"
