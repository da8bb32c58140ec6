"""A tiny HTTP client for the checks: keep-alive, cookies, the app's login and API.

Standard library only (``http.client``), so timings are the app's and the network's,
not a client library's, and the lab needs nothing beyond the app's own dependencies.
"""

from __future__ import annotations

import http.client
import json
import re
import time
import uuid
from dataclasses import dataclass
from http.cookies import SimpleCookie
from typing import Any
from urllib.parse import urlencode, urlsplit

_CSRF_RE = re.compile(r'name="csrf_token"[^>]*value="([^"]+)"')


@dataclass
class Response:
    status: int
    headers: dict[str, str]
    body: bytes
    elapsed_ms: float

    @property
    def text(self) -> str:
        return self.body.decode(errors="replace")

    def json(self) -> Any:
        return json.loads(self.body)

    def header(self, name: str) -> str | None:
        return self.headers.get(name.lower())


class TransportError(RuntimeError):
    """No HTTP answer at all (connection refused/reset, timeout): outcome unknown."""


class Client:
    """One base URL, one kept-alive connection, a cookie jar."""

    def __init__(
        self, base_url: str, timeout: float = 30.0, headers: dict[str, str] | None = None
    ) -> None:
        parts = urlsplit(base_url)
        self.host = parts.hostname or "127.0.0.1"
        self.port = parts.port or 80
        self.timeout = timeout
        self.headers = dict(headers or {})
        self.cookies: dict[str, str] = {}
        self._conn: http.client.HTTPConnection | None = None

    def close(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __del__(self) -> None:
        # A forgotten client must not leave its socket to the GC (a ResourceWarning).
        self.close()

    def request(
        self,
        method: str,
        path: str,
        *,
        body: bytes | None = None,
        headers: dict[str, str] | None = None,
    ) -> Response:
        all_headers = {**self.headers, **(headers or {})}
        if self.cookies:
            all_headers["Cookie"] = "; ".join(f"{k}={v}" for k, v in self.cookies.items())
        for attempt in (1, 2):
            if self._conn is None:
                self._conn = http.client.HTTPConnection(self.host, self.port, timeout=self.timeout)
            started = time.perf_counter()
            try:
                self._conn.request(method, path, body=body, headers=all_headers)
                raw = self._conn.getresponse()
                data = raw.read()
            except (http.client.RemoteDisconnected, BrokenPipeError, ConnectionResetError) as exc:
                # A kept-alive connection the server closed meanwhile: reconnect once, but
                # only for requests that are safe to send twice.
                self.close()
                if attempt == 1 and method in ("GET", "HEAD"):
                    continue
                raise TransportError(f"{method} {path}: {exc!r}") from exc
            except (OSError, http.client.HTTPException) as exc:
                self.close()
                raise TransportError(f"{method} {path}: {exc!r}") from exc
            elapsed = (time.perf_counter() - started) * 1000
            headers_out = {k.lower(): v for k, v in raw.getheaders()}
            for key, value in raw.getheaders():
                if key.lower() == "set-cookie":
                    cookie = SimpleCookie()
                    cookie.load(value)
                    for name, morsel in cookie.items():
                        if morsel["max-age"] == "0" or not morsel.value:
                            self.cookies.pop(name, None)
                        else:
                            self.cookies[name] = morsel.value
            if raw.getheader("Connection", "").lower() == "close":
                self.close()
            return Response(raw.status, headers_out, data, elapsed)
        raise AssertionError("unreachable")

    def get(self, path: str, headers: dict[str, str] | None = None) -> Response:
        return self.request("GET", path, headers=headers)

    def post_json(self, path: str, payload: Any, headers: dict[str, str] | None = None) -> Response:
        return self.request(
            "POST",
            path,
            body=json.dumps(payload).encode(),
            headers={"Content-Type": "application/json", **(headers or {})},
        )

    def post_form(self, path: str, form: dict[str, str]) -> Response:
        return self.request(
            "POST",
            path,
            body=urlencode(form).encode(),
            headers={"Content-Type": "application/x-www-form-urlencoded"},
        )


# ---------------------------------------------------------------------- the app
def login_page(client: Client, email: str, password: str) -> None:
    """Sign in through the HTML form (CSRF token and all), leaving the session cookies."""
    page = client.get("/login")
    match = _CSRF_RE.search(page.text)
    if page.status != 200 or not match:
        raise AssertionError(f"login page: {page.status} {page.text[:300]}")
    answer = client.post_form(
        "/login", {"csrf_token": match.group(1), "email": email, "password": password}
    )
    if answer.status not in (302, 303):
        raise AssertionError(f"login failed: {answer.status} {answer.text[:300]}")


def api_token(client: Client, email: str, password: str) -> str:
    answer = client.post_json("/api/v1/auth/token", {"email": email, "password": password})
    if answer.status != 200:
        raise AssertionError(f"token for {email}: {answer.status} {answer.text[:300]}")
    return answer.json()["access_token"]


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def new_key(prefix: str = "lab") -> str:
    return f"{prefix}-{uuid.uuid4()}"


def earn(client: Client, token: str, card: str, amount: str, currency: str, key: str) -> Response:
    return client.post_json(
        "/api/v1/transactions",
        {"kind": "earn", "card": card, "amount": amount, "currency": currency},
        headers={**bearer(token), "Idempotency-Key": key},
    )


def redeem(client: Client, token: str, card: str, coins: int, key: str) -> Response:
    return client.post_json(
        "/api/v1/transactions",
        {"kind": "redeem", "card": card, "coins": coins, "confirm_static": True},
        headers={**bearer(token), "Idempotency-Key": key},
    )


def me(client: Client, token: str) -> Response:
    return client.get("/api/v1/me", headers=bearer(token))
