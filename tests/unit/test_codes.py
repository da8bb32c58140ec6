"""Rotating card codes: RFC 6238 (TOTP, SHA-1, 30 s) cut to 6 digits, the ±1 step
window the till accepts, and what the till's scanner or keyboard may hand over."""

from __future__ import annotations

import base64

import pytest

from webapp.card import codes
from webapp.card.numbers import new_code_secret

# RFC 6238 Appendix B and RFC 4226 Appendix D use the ASCII secret "12345678901234567890".
RFC_SECRET = base64.b32encode(b"12345678901234567890").decode()


@pytest.mark.parametrize(("unix_time", "rfc_totp"), [
    (59, "94287082"),
    (1111111109, "07081804"),
    (1111111111, "14050471"),
    (1234567890, "89005924"),
    (2000000000, "69279037"),
    (20000000000, "65353130"),
])
def test_rfc6238_sha1_vectors_cut_to_six_digits(unix_time, rfc_totp):
    # Truncation is "value mod 10^digits", so 6 digits are the last 6 of the RFC's 8.
    step = codes.current_step(unix_time)
    assert codes.totp(RFC_SECRET, step) == rfc_totp[-6:]
    assert codes.rotating_payload("123456789012", RFC_SECRET, now=unix_time) == (
        f"LC1.123456789012.{rfc_totp[-6:]}")


def test_rfc4226_hotp_vectors():
    expected = ["755224", "287082", "359152", "969429", "338314",
                "254676", "287922", "162583", "399871", "520489"]
    assert [codes.totp(RFC_SECRET, counter) for counter in range(10)] == expected


def test_codes_keep_leading_zeros():
    assert codes.totp(RFC_SECRET, codes.current_step(1111111109)) == "081804"


def test_step_boundaries():
    assert codes.current_step(0) == 0
    assert codes.current_step(29.999) == 0
    assert codes.current_step(30) == 1


@pytest.mark.parametrize(("offset", "accepted"), [
    (-2, False), (-1, True), (0, True), (1, True), (2, False),
])
def test_one_step_either_side_is_accepted(offset, accepted):
    secret = new_code_secret()
    now = 1_700_000_015.0  # mid-step
    step = codes.current_step(now)
    code = codes.totp(secret, step + offset)
    assert codes.matching_step(secret, code, now) == (step + offset if accepted else None)


def test_window_follows_the_clock_at_step_edges():
    secret = new_code_secret()
    step = 56_666_667
    code = codes.totp(secret, step)
    assert codes.matching_step(secret, code, step * 30) == step  # first instant
    assert codes.matching_step(secret, code, (step + 2) * 30 - 0.001) == step  # last
    assert codes.matching_step(secret, code, (step + 2) * 30) is None
    assert codes.matching_step(secret, code, (step - 1) * 30) == step  # phone clock ahead
    assert codes.matching_step(secret, code, (step - 1) * 30 - 0.001) is None


def test_wrong_codes_are_refused():
    secret = new_code_secret()
    now = 1_700_000_000
    right = codes.totp(secret, codes.current_step(now))
    wrong = f"{(int(right) + 1) % 1_000_000:06d}"
    assert codes.matching_step(secret, wrong, now) is None
    assert codes.matching_step(new_code_secret(), right, now) is None


@pytest.mark.parametrize(("text", "number", "code"), [
    ("LC1.123456789012.654321", "123456789012", "654321"),
    ("  LC1.123456789012.000001\n", "123456789012", "000001"),  # scanners add newlines
    ("123456789012", "123456789012", None),
    ("1234 5678 9012", "123456789012", None),
    (" 1234-5678-9012 ", "123456789012", None),
])
def test_parse_scanned_accepts(text, number, code):
    scanned = codes.parse_scanned(text)
    assert scanned == codes.ScannedCode(number, code)
    assert scanned.is_rotating is (code is not None)


@pytest.mark.parametrize("text", [
    "", "   ", "abc", "12345678901", "1234567890123", "1234.5678.9012",
    "LC1.12345678901.123456", "LC1.1234567890123.123456", "LC1.123456789012.12345",
    "LC1.123456789012.1234567", "lc1.123456789012.123456", "LC2.123456789012.123456",
    "LC1.123456789012", "LC1 123456789012 123456", "LC1.123456789012.123456.1",
    "https://example.com/LC1.123456789012.123456",
    "١٢٣٤٥٦٧٨٩٠١٢",  # Arabic-Indic digits: isdigit() says yes, the till must say no
    "LC1.١٢٣٤٥٦٧٨٩٠١٢.١٢٣٤٥٦",
    "１２３４５６７８９０１２",  # fullwidth digits
    "<script>alert(1)</script>", "123456789012'; DROP TABLE cards; --",
    "4000 0000 000X2", "4000_0000_0002",  # only spaces and dashes separate the groups
])
def test_parse_scanned_refuses(text):
    assert codes.parse_scanned(text) is None


def test_rotating_payload_roundtrip():
    secret = new_code_secret()
    payload = codes.rotating_payload("400000000006", secret, now=1_700_000_000)
    scanned = codes.parse_scanned(payload)
    assert scanned.number == "400000000006"
    assert codes.matching_step(secret, scanned.code, 1_700_000_000) == codes.current_step(
        1_700_000_000)
