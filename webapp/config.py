"""Settings from environment variables (12-factor), one class per profile.

`LOYALTY_ENV` picks the profile: ``production`` (default, refuses to start without
secrets), ``demo`` (``make run``: SQLite, demo data, generated local secrets) or ``test``.
"""

from __future__ import annotations

import os
from datetime import timedelta
from typing import ClassVar

REGIONS = ("us", "ie", "in")


def _env(name: str, default: str | None = None) -> str | None:
    value = os.environ.get(name)
    return value if value not in (None, "") else default


def _env_int(name: str, default: int) -> int:
    return int(_env(name, str(default)))


def _env_bool(name: str, default: bool) -> bool:
    return (_env(name, "1" if default else "0") or "").lower() in ("1", "true", "yes", "on")


def parse_jwt_keys(raw: str | None) -> dict[str, str]:
    """``"kid1:secret1,kid2:secret2"`` -> ``{"kid1": "secret1", ...}``.

    Several keys let operators rotate without logging everyone out: new tokens are
    signed with ``JWT_ACTIVE_KID`` while tokens signed with older kids still verify.
    """
    keys: dict[str, str] = {}
    for part in (raw or "").split(","):
        if part.strip():
            kid, _, secret = part.strip().partition(":")
            keys[kid] = secret
    return keys


class Config:
    ENV_NAME = "production"
    SECRET_KEY = _env("SECRET_KEY")
    JWT_KEYS = parse_jwt_keys(_env("JWT_KEYS"))
    JWT_ACTIVE_KID = _env("JWT_ACTIVE_KID")
    JWT_ISSUER = _env("JWT_ISSUER", "loyalty-card")
    JWT_AUDIENCE = _env("JWT_AUDIENCE", "loyalty-card")
    ACCESS_TOKEN_TTL = timedelta(seconds=_env_int("ACCESS_TOKEN_TTL_SECONDS", 600))
    REFRESH_TOKEN_TTL = timedelta(days=_env_int("REFRESH_TOKEN_TTL_DAYS", 30))

    REGION = _env("LOYALTY_REGION", "us")
    DATABASE_URL = _env("LOYALTY_DATABASE_URL", "sqlite:///instance/loyalty.db")
    # "us=mysql+pymysql://...,ie=...,in=..."; empty means a single database.
    CLUSTER = _env("LOYALTY_CLUSTER")
    CLUSTER_KIND = _env("LOYALTY_CLUSTER_KIND", "auto")
    REGION_PREFERENCE = _env("LOYALTY_REGION_PREFERENCE")
    ALLOW_STALE_READS = _env_bool("LOYALTY_ALLOW_STALE_READS", False)
    HEALTH_CHECK_INTERVAL = float(_env("LOYALTY_HEALTH_CHECK_INTERVAL", "1.0"))
    DB_CONNECT_TIMEOUT = _env_int("LOYALTY_DB_CONNECT_TIMEOUT", 2)
    DB_READ_TIMEOUT = _env_int("LOYALTY_DB_READ_TIMEOUT", 10)
    DB_WRITE_TIMEOUT = _env_int("LOYALTY_DB_WRITE_TIMEOUT", 10)
    DB_RETRY_BUDGET = _env_int("LOYALTY_DB_RETRY_BUDGET", 8)
    # Seconds one request may spend retrying and failing over before it answers 503.
    DB_RETRY_TIME_BUDGET = float(_env("LOYALTY_DB_RETRY_TIME_BUDGET", "10"))
    DB_POOL_SIZE = _env_int("LOYALTY_DB_POOL_SIZE", 8)
    DB_POOL_OVERFLOW = _env_int("LOYALTY_DB_POOL_OVERFLOW", 4)
    # Proxies in front of the app (nginx, ALB) whose X-Forwarded-* headers to trust;
    # without it every client would share the proxy's address, and its login rate limit.
    PROXY_HOPS = _env_int("LOYALTY_PROXY_HOPS", 0)

    HTTPS = _env_bool("LOYALTY_HTTPS", True)
    # Bearer token that shows /readyz's member details (hosts, versions, roles, errors);
    # without it /readyz answers only ready or not. Unset: details only through the CLI.
    OPERATOR_TOKEN = _env("LOYALTY_OPERATOR_TOKEN")
    LOGIN_RATE_LIMIT = _env("LOYALTY_LOGIN_RATE_LIMIT", "10 per minute;50 per hour")
    RATELIMIT_STORAGE_URI = _env("RATELIMIT_STORAGE_URI", "memory://")
    RATELIMIT_HEADERS_ENABLED = True
    REVERSAL_WINDOW = timedelta(minutes=_env_int("LOYALTY_REVERSAL_WINDOW_MINUTES", 60 * 24))
    STATIC_REDEEM_NEEDS_CONFIRMATION = _env_bool("LOYALTY_STATIC_REDEEM_CONFIRM", True)
    FAMILY_LIMIT = 4
    LOAD_DEMO_DATA = False
    WTF_CSRF_TIME_LIMIT = None  # the token lives as long as the session cookie
    MAX_CONTENT_LENGTH = 64 * 1024
    SEND_FILE_MAX_AGE_DEFAULT = timedelta(days=365)  # static URLs are cache-busted
    # Flask-Compress (webapp/compression.py): brotli where the browser takes it (all
    # current ones), else gzip. Level 5 is brotli's knee here: htmx 52 -> 16 KB in 1.6 ms,
    # a card page in 0.14 ms. Nothing is streamed (static files are read into memory).
    COMPRESS_ALGORITHM: ClassVar[list[str]] = ["br", "gzip"]
    # What a browser loads. Not the JSON API: its answers are a few hundred bytes, and a
    # response carrying fresh tokens next to echoed input is best left uncompressed (BREACH).
    COMPRESS_MIMETYPES: ClassVar[list[str]] = [
        "text/html", "text/css", "text/javascript", "application/javascript",
        "application/manifest+json", "image/svg+xml", "text/plain",
    ]
    COMPRESS_BR_LEVEL = 5
    COMPRESS_MIN_SIZE = 500
    COMPRESS_STREAMS = False

    @classmethod
    def check(cls, values: dict) -> None:
        """Refuse to start without real secrets rather than run with guessable ones."""
        missing = [k for k in ("SECRET_KEY", "JWT_KEYS", "JWT_ACTIVE_KID") if not values.get(k)]
        if missing:
            raise RuntimeError(f"missing required settings: {', '.join(missing)}")
        if values["JWT_ACTIVE_KID"] not in values["JWT_KEYS"]:
            raise RuntimeError("JWT_ACTIVE_KID must name one of JWT_KEYS")
        if any(len(secret) < 32 for secret in values["JWT_KEYS"].values()):
            raise RuntimeError("every JWT key must be at least 32 characters")
        if values.get("OPERATOR_TOKEN") and len(values["OPERATOR_TOKEN"]) < 32:
            raise RuntimeError("LOYALTY_OPERATOR_TOKEN must be at least 32 characters")


class DemoConfig(Config):
    """``make run``: one process on SQLite with demo accounts; secrets made locally."""

    ENV_NAME = "demo"
    HTTPS = _env_bool("LOYALTY_HTTPS", False)
    LOAD_DEMO_DATA = True
    LOGIN_RATE_LIMIT = _env("LOYALTY_LOGIN_RATE_LIMIT", "30 per minute")


class TestConfig(Config):
    ENV_NAME = "test"
    TESTING = True
    HTTPS = False
    SECRET_KEY = "test-secret-key-not-for-production-000000"  # noqa: S105 - tests only
    JWT_KEYS: ClassVar[dict[str, str]] = {"test": "test-jwt-key-not-for-production-0000000000"}
    JWT_ACTIVE_KID = "test"
    DATABASE_URL = "sqlite://"
    CLUSTER = None
    LOGIN_RATE_LIMIT = "1000 per minute"
    HEALTH_CHECK_INTERVAL = 0.2


PROFILES = {"production": Config, "demo": DemoConfig, "test": TestConfig}


def profile_from_env() -> type[Config]:
    name = _env("LOYALTY_ENV", "production")
    try:
        return PROFILES[name]
    except KeyError:
        raise RuntimeError(f"LOYALTY_ENV must be one of {sorted(PROFILES)}, not {name!r}") from None
