"""One normal form for an email address, for every path that takes one (the pages, the
API, the CLI): the account's identity is the address in this form, and the database
holds a unique index on it (``accounts.email_key``).

Without it the same address arrived as different strings: "josé" with a precomposed é
(NFC) from one keyboard and with a combining accent (NFD) from another, mixed case, a
domain typed in fullwidth letters. The normal form is what ``email_validator`` makes of
the address (local part NFC, domain as IDNA writes it), lower-cased, in NFC.
"""

from __future__ import annotations

import contextlib
import unicodedata

from email_validator import EmailNotValidError, validate_email


def normalize_email(address: str) -> str:
    text = address.strip()
    # Not an address: kept as typed, so signing in with it finds nobody.
    with contextlib.suppress(EmailNotValidError):
        text = validate_email(text, check_deliverability=False).normalized
    # Lower-casing can decompose (İ -> i + combining dot): NFC last.
    return unicodedata.normalize("NFC", text.lower())


# The spelling the accounts code uses.
normalise_email = normalize_email
