"""Card numbers and the per-card secret behind the rotating QR code."""

from __future__ import annotations

import base64
import secrets

CARD_DIGITS = 12


def luhn_check_digit(digits: str) -> str:
    total = 0
    for index, char in enumerate(reversed(digits)):
        value = int(char)
        if index % 2 == 0:  # every second digit from the right, counting the check digit
            value *= 2
            if value > 9:
                value -= 9
        total += value
    return str((10 - total % 10) % 10)


def new_card_number() -> str:
    """12 digits, the last a Luhn check digit so a mistyped number is caught at the till."""
    body = str(secrets.randbelow(9 * 10 ** (CARD_DIGITS - 2)) + 10 ** (CARD_DIGITS - 2))
    return body + luhn_check_digit(body)


def is_valid_card_number(number: str) -> bool:
    return (
        len(number) == CARD_DIGITS
        and number.isdigit()
        and luhn_check_digit(number[:-1]) == number[-1]
    )


def normalize_card_number(raw: str) -> str:
    """Accepts what a barista types: spaces and dashes are ignored."""
    return "".join(ch for ch in raw if ch not in " -")


def format_card_number(number: str) -> str:
    return " ".join(number[i : i + 4] for i in range(0, len(number), 4))


def new_code_secret() -> str:
    """160 random bits, base32 like RFC 6238 authenticator secrets."""
    return base64.b32encode(secrets.token_bytes(20)).decode("ascii")
