"""Helpers every kind of test may import: ``from tests.helpers import csrf_token, ...``.

Fixtures live in ``tests/conftest.py`` (``app``, ``client``, ``auth``, ``cluster_apps``)
and ``tests/lab_plugin.py`` (the Galera lab); plain functions and classes live here so
tests in any folder (unit, app, cluster, ops) import them the same way.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable
from pathlib import Path

import pytest

# The repository root, for tests that read the project's own files (deploy/, jmeter/).
ROOT = Path(__file__).resolve().parent.parent

PASSWORD = "correct-horse-battery"

# Input every money form and parser must refuse (the till pages and the parsers alike).
SCARY = ["<script>alert(1)</script>", "1'; DROP TABLE ledger; --", "' OR '1'='1"]
BAD_AMOUNTS = [
    "", "   ", "abc", "-5", "-0.01", "0", "0.00", "12.345", "1e3", "NaN", "Infinity",
    "99999999999999999999999999", "1000000.01", "12,50", "١٢", "0x10", "+5", "1 000",
    "0.50",  # fine as money, but earns no coin at 1 USD a coin
    *SCARY,
]
BAD_COINS = ["", "abc", "-1", "0", "1.5", "2e2", "99999999", "١", *SCARY]


def csrf_token(html: str) -> str:
    match = re.search(r'name="csrf_token" type="hidden" value="([^"]+)"', html) or re.search(
        r'name="csrf_token" value="([^"]+)"', html)
    assert match, "page has no CSRF token"
    return match.group(1)


class AuthActions:
    """Register and sign in through the real pages, CSRF and all."""

    def __init__(self, client):
        self.client = client

    def register(self, email="ana@example.com", name="Ana Silva", password=PASSWORD,
                 region="ie"):
        page = self.client.get("/register").get_data(as_text=True)
        return self.client.post("/register", data={
            "csrf_token": csrf_token(page), "name": name, "email": email,
            "password": password, "region": region})

    def login(self, email="ana@example.com", password=PASSWORD):
        page = self.client.get("/login").get_data(as_text=True)
        return self.client.post("/login", data={
            "csrf_token": csrf_token(page), "email": email, "password": password})

    def logout(self):
        page = self.client.get("/card").get_data(as_text=True)
        return self.client.post("/logout", data={"csrf_token": csrf_token(page)})


def wait_for(check: Callable[[], bool], timeout: float, what: str) -> float:
    """Poll ``check()`` until true; return the seconds it took (fail the test if never)."""
    started = time.monotonic()
    while time.monotonic() - started < timeout:
        if check():
            return time.monotonic() - started
        time.sleep(0.05)
    pytest.fail(f"timed out after {timeout}s waiting for {what}")
