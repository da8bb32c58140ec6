"""One spelling per mailbox: every path that stores or looks up an address uses this."""

from __future__ import annotations

import unicodedata


def normalise_email(value: str) -> str:
    """NFC, trimmed, lower case: "José@Example.com" typed on two keyboards (composed or
    decomposed é) is one account, not two."""
    return unicodedata.normalize("NFC", value).strip().lower()
