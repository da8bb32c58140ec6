"""The one rule for names people give: their own and their family members', on the
pages (WTForms) and in the API (pydantic) alike. The till greets people by these names,
so a name must show something, and show what it says.

- Refused: control characters (C0, C1, line and paragraph separators), bidi overrides,
  embeddings and isolates (they make "Ana\u202eoB" display as someone else), U+FFFD (only
  ever from bytes that were not UTF-8), and < >.
- Taken out: format characters (Unicode category Cf: zero-width space, word joiner, LRM
  and RLM, the invisible operators U+2061-2064, BOM, soft hyphen...) and characters that
  draw as a blank letter (the Hangul fillers, the blank Braille pattern). The zero-width
  joiner and non-joiner stay where Persian, Indic scripts and emoji sequences need them
  (between two characters, or after a virama); tag characters stay after a flag
  (subdivision flags).
- Then: surrounding spaces trimmed, and at least one visible character (a letter, digit,
  punctuation mark or symbol) left.

Scripts are not restricted: names in Arabic, Devanagari or Chinese are names.
"""

from __future__ import annotations

import re
import unicodedata

MAX_LENGTH = 60
# The pattern the API documents; clean_name() is what enforces it (and more).
PATTERN = r"^[^\x00-\x1f\x7f-\x9f\u2028\u2029\u202a-\u202e\u2066-\u2069\ufffd<>]+$"
REFUSED = re.compile(r"[\x00-\x1f\x7f-\x9f\u2028\u2029\u202a-\u202e\u2066-\u2069\ufffd<>]")
REFUSED_MESSAGE = "Use letters, numbers and spaces, without < or >."
INVISIBLE_MESSAGE = "Enter a name with at least one visible character."

# Letters and marks that render as blank space.
BLANKS = frozenset("\u115f\u1160\u3164\uffa0\u2800\u17b4\u17b5")
JOINERS = frozenset("\u200c\u200d")  # ZWNJ, ZWJ
BLACK_FLAG = "\U0001f3f4"
TAGS = range(0xE0020, 0xE0080)  # emoji tag characters, ending with CANCEL TAG


def clean_name(value: str) -> str:
    """The name as stored, or :class:`ValueError` with a message for the person."""
    if REFUSED.search(value):
        raise ValueError(REFUSED_MESSAGE)
    kept: list[str] = []
    for index, char in enumerate(value):
        if char in BLANKS:
            continue
        if unicodedata.category(char) == "Cf" and not _needed(value, index, kept):
            continue
        kept.append(char)
    cleaned = "".join(kept).strip()
    if not any(_visible(char) for char in cleaned):
        raise ValueError(INVISIBLE_MESSAGE)
    return cleaned


def _needed(value: str, index: int, kept: list[str]) -> bool:
    """A format character that does a job: a joiner between two characters (or after a
    virama, as in Malayalam's chillu letters written with ZWJ at the end of a word), or a
    tag continuing a flag's tag sequence."""
    char = value[index]
    if char in JOINERS:
        before = kept[-1] if kept else ""
        after = value[index + 1] if index + 1 < len(value) else ""
        if not before or not _joinable(before):
            return False
        return (bool(after) and _joinable(after)) or unicodedata.category(before)[0] == "M"
    if ord(char) in TAGS:
        return bool(kept) and (kept[-1] == BLACK_FLAG or ord(kept[-1]) in TAGS)
    return False


def _joinable(char: str) -> bool:
    return unicodedata.category(char)[0] in "LMNS" and char not in BLANKS


def _visible(char: str) -> bool:
    return unicodedata.category(char)[0] in "LNPS" and char not in BLANKS
