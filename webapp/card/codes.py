"""Rotating card codes (RFC 6238 TOTP: HMAC-SHA1, 30 s steps, 6 digits).

The card page computes the code in JavaScript from the card's secret, so it keeps
rotating offline. The QR then carries ``LC1.<card number>.<code>``; the till verifies it
here within ±1 step, and a redemption records the step so a screenshot can't be replayed.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
import struct
import time
from dataclasses import dataclass

STEP_SECONDS = 30
DIGITS = 6
ROTATING_PREFIX = "LC1"
# ASCII only: \d and str.isdigit() also accept other scripts' digits, which would reach
# hmac.compare_digest (TypeError on non-ASCII) and the database as a "number".
_ROTATING = re.compile(r"^LC1\.(\d{12})\.(\d{6})$", re.ASCII)


@dataclass(frozen=True)
class ScannedCode:
    number: str
    code: str | None  # None for a static card number

    @property
    def is_rotating(self) -> bool:
        return self.code is not None


def totp(secret_b32: str, step: int) -> str:
    key = base64.b32decode(secret_b32)
    digest = hmac.new(key, struct.pack(">Q", step), hashlib.sha1).digest()
    offset = digest[-1] & 0x0F
    value = struct.unpack(">I", digest[offset : offset + 4])[0] & 0x7FFFFFFF
    return str(value % 10**DIGITS).zfill(DIGITS)


def current_step(now: float | None = None) -> int:
    return int((time.time() if now is None else now) // STEP_SECONDS)


def candidate_steps(now: float | None = None) -> tuple[int, int, int]:
    """The steps a code scanned ``now`` may be for, in the order they are tried."""
    step = current_step(now)
    return step, step - 1, step + 1


def matching_step(secret_b32: str, code: str, now: float | None = None) -> int | None:
    """The step (±1 around now) whose code equals ``code``, or None."""
    for candidate in candidate_steps(now):
        if hmac.compare_digest(totp(secret_b32, candidate), code):
            return candidate
    return None


def parse_scanned(text: str) -> ScannedCode | None:
    """What a till scanned or typed: a rotating payload or a card number."""
    text = text.strip()
    match = _ROTATING.match(text)
    if match:
        return ScannedCode(match.group(1), match.group(2))
    digits = "".join(ch for ch in text if ch not in " -")
    if digits.isascii() and digits.isdigit() and len(digits) == 12:
        return ScannedCode(digits, None)
    return None


def rotating_payload(number: str, secret_b32: str, now: float | None = None) -> str:
    return f"{ROTATING_PREFIX}.{number}.{totp(secret_b32, current_step(now))}"
