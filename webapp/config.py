"""Settings from environment variables (12-factor), one class per profile.

`LOYALTY_ENV` picks the profile: ``production`` (default, refuses to start without
secrets), ``demo`` (``make run``: SQLite, demo data, generated local secrets) or ``test``.
"""

from __future__ import annotations

import os
from datetime import timedelta
from typing import ClassVar

from redis.backoff import NoBackoff
from redis.retry import Retry

# The regions the product runs in, with the names people see. Everything that lists
# regions (sign-up, the API, the CLI, the labs) reads them from here.
REGION_NAMES = {"us": "United States", "ie": "Ireland", "in": "India"}
REGIONS = tuple(REGION_NAMES)

# Family cards the database can hold per account (slots 1..FAMILY_SLOTS; slot 0 is the
# holder's own card): the cards table's CHECK is built from it. FAMILY_LIMIT, what the
# app lets people add, may be lower and never higher (Config.check refuses that), so
# raising the limit beyond this needs a migration first.
FAMILY_SLOTS = 4


def _env(name: str, default: str | None = None) -> str | None:
    value = os.environ.get(name)
    return value if value not in (None, "") else default


def _env_int(name: str, default: int) -> int:
    return int(_env(name, str(default)))


def _env_bool(name: str, default: bool) -> bool:
    return (_env(name, "1" if default else "0") or "").lower() in ("1", "true", "yes", "on")


def parse_amounts(raw: str | None) -> dict[str, str]:
    """``"USD=500,INR=40000"`` -> ``{"USD": "500", "INR": "40000"}`` (decimal strings,
    checked against each currency's decimals when used)."""
    amounts: dict[str, str] = {}
    for part in (raw or "").split(","):
        if part.strip():
            currency, _, amount = part.strip().partition("=")
            amounts[currency.strip().upper()] = amount.strip()
    return amounts


# The largest purchase a barista may book, per currency, as a decimal string in that
# currency's units. Above it a manager (an admin, until stores get editable limits)
# books the sale. One dict: the till's and the API's messages are formatted from it.
DEFAULT_MAX_PURCHASE = {"USD": "500.00", "EUR": "500.00", "GBP": "500.00",
                        "INR": "40000.00", "JPY": "75000"}


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
    # The schema owner's URL (MySQL/MariaDB): `flask db upgrade` migrates and grants as
    # this account; the app's own account may only append to the ledger tables. Unset:
    # migrations run as the app's account (SQLite, or an account allowed DDL).
    SCHEMA_DATABASE_URL = _env("LOYALTY_SCHEMA_DATABASE_URL")
    CLUSTER_KIND = _env("LOYALTY_CLUSTER_KIND", "auto")
    REGION_PREFERENCE = _env("LOYALTY_REGION_PREFERENCE")
    ALLOW_STALE_READS = _env_bool("LOYALTY_ALLOW_STALE_READS", False)
    HEALTH_CHECK_INTERVAL = float(_env("LOYALTY_HEALTH_CHECK_INTERVAL", "1.0"))
    # A probe not answered within this is a stalled member: suspect, routed around.
    HEALTH_CHECK_TIMEOUT = float(_env("LOYALTY_HEALTH_CHECK_TIMEOUT", "1.0"))
    DB_CONNECT_TIMEOUT = float(_env("LOYALTY_DB_CONNECT_TIMEOUT", "2"))
    # Longest wait for any one answer from a member (socket read/write timeout). Well
    # below DB_RETRY_TIME_BUDGET, so a frozen member costs one timeout and the work still
    # has time to run elsewhere; raise it on a slow machine, where a slow answer would
    # otherwise be taken for a dead member (and a COMMIT for an unknown outcome).
    DB_STATEMENT_TIMEOUT = float(_env("LOYALTY_DB_STATEMENT_TIMEOUT", "3"))
    DB_RETRY_BUDGET = _env_int("LOYALTY_DB_RETRY_BUDGET", 8)
    # No member takes writes, but one did less than this ago: wait for quorum to come back
    # (a view change) instead of answering 503 at once. A real quorum loss costs this much.
    DB_QUORUM_GRACE = float(_env("LOYALTY_DB_QUORUM_GRACE", "3"))
    # Seconds one request may spend retrying and failing over before it answers 503.
    DB_RETRY_TIME_BUDGET = float(_env("LOYALTY_DB_RETRY_TIME_BUDGET", "10"))
    DB_POOL_SIZE = _env_int("LOYALTY_DB_POOL_SIZE", 8)
    DB_POOL_OVERFLOW = _env_int("LOYALTY_DB_POOL_OVERFLOW", 4)
    # Off: a dropped pooled connection is caught on its first statement instead (one
    # round trip per transaction saved; docs/performance.md). On only to compare.
    DB_POOL_PRE_PING = _env_bool("LOYALTY_DB_POOL_PRE_PING", False)
    # Proxies in front of the app (nginx, ALB) whose X-Forwarded-* headers to trust;
    # without it every client would share the proxy's address, and its login rate limit.
    PROXY_HOPS = _env_int("LOYALTY_PROXY_HOPS", 0)

    HTTPS = _env_bool("LOYALTY_HTTPS", True)
    # Bearer token that shows /readyz's member details (hosts, versions, roles, errors);
    # without it /readyz answers only ready or not. Unset: details only through the CLI.
    OPERATOR_TOKEN = _env("LOYALTY_OPERATOR_TOKEN")
    # Sign-in attempts per client address, page and API together (webapp/auth/throttle.py).
    LOGIN_RATE_LIMIT = _env("LOYALTY_LOGIN_RATE_LIMIT", "10 per minute;50 per hour")
    # Where the limits count (Flask-Limiter / limits storage URI). Production needs one
    # store shared by every worker of the region (redis://...): a per-process memory://
    # store lets each gunicorn worker count separately. Required in production; memory://
    # there only when explicitly set (a single-process deployment).
    RATELIMIT_STORAGE_URI = _env("LOYALTY_RATELIMIT_STORAGE_URI")
    # A store that does not answer within half a second, tried twice, counts as down (see
    # below): redis-py's default of 3 retries with backoff of up to 10 s would hold a
    # sign-in for seconds when the store's host stops answering.
    RATELIMIT_STORAGE_OPTIONS: ClassVar[dict] = {
        "socket_connect_timeout": 0.5, "socket_timeout": 0.5,
        "retry": Retry(NoBackoff(), 1)}
    # Store down: limits go on counting in each worker's memory (weaker, not gone) and
    # the store is retried with backoff; an error racing that switch is logged, not a 500.
    RATELIMIT_IN_MEMORY_FALLBACK_ENABLED = True
    RATELIMIT_SWALLOW_ERRORS = True
    # "10 per minute" means any 60 s, not a clock minute (twice the limit across a
    # window boundary).
    RATELIMIT_STRATEGY = "moving-window"
    # Off: Flask-Limiter would stamp every answer of a limited route with its own
    # Retry-After (and the max of it and any other), hiding the per-account wait. A 429 of
    # the per-address limit gets its Retry-After from webapp/error_pages.py instead.
    RATELIMIT_HEADERS_ENABLED = False
    # Per account and client address (webapp/auth/throttle.py): from the
    # LOGIN_BACKOFF_AFTER-th consecutive failure on, each failure locks that pair for
    # BASE * 2**(n - AFTER) seconds, at most MAX; a success clears it.
    LOGIN_BACKOFF_AFTER = _env_int("LOYALTY_LOGIN_BACKOFF_AFTER", 5)
    LOGIN_BACKOFF_BASE_SECONDS = _env_int("LOYALTY_LOGIN_BACKOFF_BASE_SECONDS", 2)
    LOGIN_BACKOFF_MAX_SECONDS = _env_int("LOYALTY_LOGIN_BACKOFF_MAX_SECONDS", 300)
    REVERSAL_WINDOW = timedelta(minutes=_env_int("LOYALTY_REVERSAL_WINDOW_MINUTES", 60 * 24))
    # A manager (or admin) reverses any transaction of their store within this window.
    MANAGER_REVERSAL_WINDOW = timedelta(
        days=_env_int("LOYALTY_MANAGER_REVERSAL_WINDOW_DAYS", 30))
    # Coins a barista may issue per hour at a store (a store may set its own).
    COINS_PER_BARISTA_HOUR = _env_int("LOYALTY_COINS_PER_BARISTA_HOUR", 5000)
    # The largest support adjustment a manager may make (an admin: ADMIN_MAX_ADJUST).
    MANAGER_MAX_ADJUST = _env_int("LOYALTY_MANAGER_MAX_ADJUST", 100)
    ADMIN_MAX_ADJUST = _env_int("LOYALTY_ADMIN_MAX_ADJUST", 10000)
    STATIC_REDEEM_NEEDS_CONFIRMATION = _env_bool("LOYALTY_STATIC_REDEEM_CONFIRM", True)
    # "USD=500,INR=40000" overrides single currencies; the others keep their default.
    MAX_PURCHASE: ClassVar[dict[str, str]] = {
        **DEFAULT_MAX_PURCHASE, **parse_amounts(_env("LOYALTY_MAX_PURCHASE"))}
    FAMILY_LIMIT = FAMILY_SLOTS
    LOAD_DEMO_DATA = False

    # Accounts (webapp/auth, webapp/account). Links in mail are built from this URL,
    # never from the request's Host header (a forged Host would mail out a phishing link).
    PUBLIC_BASE_URL = _env("LOYALTY_PUBLIC_BASE_URL")
    VERIFY_TOKEN_TTL = timedelta(hours=_env_int("LOYALTY_VERIFY_TOKEN_HOURS", 48))
    RESET_TOKEN_TTL = timedelta(minutes=30)
    EMAIL_CHANGE_TOKEN_TTL = timedelta(hours=_env_int("LOYALTY_EMAIL_CHANGE_TOKEN_HOURS", 24))
    # Unverified accounts are deleted this long after registering (flask accounts cleanup).
    UNVERIFIED_ACCOUNT_TTL = timedelta(days=_env_int("LOYALTY_UNVERIFIED_ACCOUNT_DAYS", 7))
    # Per email address (registration, password reset), on top of the per-client limit.
    ADDRESS_RATE_LIMIT = _env("LOYALTY_ADDRESS_RATE_LIMIT", "5 per hour")
    # Passkeys: the relying party is the site's registrable domain; the origin is where
    # the pages are served. Both default to PUBLIC_BASE_URL's.
    WEBAUTHN_RP_ID = _env("LOYALTY_WEBAUTHN_RP_ID")
    WEBAUTHN_ORIGIN = _env("LOYALTY_WEBAUTHN_ORIGIN")
    WEBAUTHN_RP_NAME = _env("LOYALTY_WEBAUTHN_RP_NAME", "Loyalty Card")
    WEBAUTHN_CHALLENGE_TTL = timedelta(seconds=_env_int("LOYALTY_WEBAUTHN_CHALLENGE_SECONDS", 120))

    # Mail (webapp/mail). "smtp" sends from the outbox over SMTP (flask mail send);
    # "outbox" keeps mail in the outbox, logs it and shows it at /demo/outbox (demo only).
    MAIL_BACKEND = _env("LOYALTY_MAIL_BACKEND", "smtp")
    MAIL_SERVER = _env("LOYALTY_MAIL_SERVER", "localhost")
    MAIL_PORT = _env_int("LOYALTY_MAIL_PORT", 587)
    # starttls | ssl (implicit TLS, port 465) | none (a relay on localhost only)
    MAIL_SECURITY = _env("LOYALTY_MAIL_SECURITY", "starttls")
    MAIL_USERNAME = _env("LOYALTY_MAIL_USERNAME")
    MAIL_PASSWORD = _env("LOYALTY_MAIL_PASSWORD")
    # A CA bundle to trust instead of the system's (a private relay's certificate).
    MAIL_CA_FILE = _env("LOYALTY_MAIL_CA_FILE")
    MAIL_SENDER = _env("LOYALTY_MAIL_SENDER", "Loyalty Card <no-reply@loyalty.example>")
    MAIL_TIMEOUT = float(_env("LOYALTY_MAIL_TIMEOUT", "10"))
    # A message that fails this often is given up (and stays in the outbox with its error).
    MAIL_MAX_ATTEMPTS = _env_int("LOYALTY_MAIL_MAX_ATTEMPTS", 12)
    # Delivered mail (bodies already blanked) is deleted after this (flask accounts cleanup).
    MAIL_RETENTION = timedelta(days=_env_int("LOYALTY_MAIL_RETENTION_DAYS", 7))
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

    # Wallet passes (docs/operations.md, "Wallet passes"). A wallet's button shows only
    # when all its settings are given; the files are read once at startup.
    PASS_ORGANIZATION = _env("LOYALTY_PASS_ORGANIZATION", "Loyalty Card")
    APPLE_PASS_TYPE_ID = _env("LOYALTY_APPLE_PASS_TYPE_ID")  # pass.com.example.loyalty
    APPLE_TEAM_ID = _env("LOYALTY_APPLE_TEAM_ID")
    APPLE_PASS_CERT = _env("LOYALTY_APPLE_PASS_CERT")  # path: the Pass Type ID certificate
    APPLE_PASS_KEY = _env("LOYALTY_APPLE_PASS_KEY")  # path: its private key (PEM)
    APPLE_PASS_KEY_PASSWORD = _env("LOYALTY_APPLE_PASS_KEY_PASSWORD")
    APPLE_WWDR_CERT = _env("LOYALTY_APPLE_WWDR_CERT")  # path: Apple's WWDR intermediate
    GOOGLE_WALLET_ISSUER_ID = _env("LOYALTY_GOOGLE_WALLET_ISSUER_ID")
    GOOGLE_WALLET_CLASS_SUFFIX = _env("LOYALTY_GOOGLE_WALLET_CLASS_SUFFIX", "loyalty")
    GOOGLE_WALLET_SERVICE_ACCOUNT = _env("LOYALTY_GOOGLE_WALLET_SERVICE_ACCOUNT")  # JSON key path
    PASSES_DEMO = False  # set by `make run` with its throwaway keys

    @classmethod
    def check(cls, values: dict) -> None:
        """Refuse to start without real secrets rather than run with guessable ones, or
        with a family limit the database cannot hold."""
        missing = [k for k in ("SECRET_KEY", "JWT_KEYS", "JWT_ACTIVE_KID") if not values.get(k)]
        if missing:
            raise RuntimeError(f"missing required settings: {', '.join(missing)}")
        if values["JWT_ACTIVE_KID"] not in values["JWT_KEYS"]:
            raise RuntimeError("JWT_ACTIVE_KID must name one of JWT_KEYS")
        if any(len(secret) < 32 for secret in values["JWT_KEYS"].values()):
            raise RuntimeError("every JWT key must be at least 32 characters")
        if not values.get("RATELIMIT_STORAGE_URI"):
            raise RuntimeError(
                "set LOYALTY_RATELIMIT_STORAGE_URI: redis://HOST:6379/0, the region's limiter "
                "store shared by every worker (memory:// only for a single process)")
        from webapp.money import AmountError, to_minor

        for currency, amount in values.get("MAX_PURCHASE", {}).items():
            try:
                to_minor(amount, currency)
            except AmountError as error:
                raise RuntimeError(f"LOYALTY_MAX_PURCHASE {currency}={amount}: {error}") from None
        limit = values.get("FAMILY_LIMIT")
        if isinstance(limit, bool) or not isinstance(limit, int) or not 0 <= limit <= FAMILY_SLOTS:
            raise RuntimeError(
                f"FAMILY_LIMIT must be a whole number from 0 to {FAMILY_SLOTS}, the family "
                f"slots the database holds (not {limit!r}); more needs a migration first")
        if values.get("OPERATOR_TOKEN") and len(values["OPERATOR_TOKEN"]) < 32:
            raise RuntimeError("LOYALTY_OPERATOR_TOKEN must be at least 32 characters")


class DemoConfig(Config):
    """``make run``: one process on SQLite with demo accounts; secrets made locally."""

    ENV_NAME = "demo"
    HTTPS = _env_bool("LOYALTY_HTTPS", False)
    LOAD_DEMO_DATA = True
    LOGIN_RATE_LIMIT = _env("LOYALTY_LOGIN_RATE_LIMIT", "30 per minute")
    # One process (make run): its memory is the shared store.
    RATELIMIT_STORAGE_URI = _env("LOYALTY_RATELIMIT_STORAGE_URI", "memory://")
    # make run has no mail server: mail stays in the outbox, shown at /demo/outbox.
    MAIL_BACKEND = _env("LOYALTY_MAIL_BACKEND", "outbox")
    PUBLIC_BASE_URL = _env("LOYALTY_PUBLIC_BASE_URL", "http://127.0.0.1:8000")


class TestConfig(Config):
    ENV_NAME = "test"
    TESTING = True
    HTTPS = False
    SECRET_KEY = "test-secret-key-not-for-production-000000"  # noqa: S105 - tests only
    JWT_KEYS: ClassVar[dict[str, str]] = {"test": "test-jwt-key-not-for-production-0000000000"}
    JWT_ACTIVE_KID = "test"
    DATABASE_URL = "sqlite://"
    CLUSTER = None
    SCHEMA_DATABASE_URL = None
    LOGIN_RATE_LIMIT = "1000 per minute"
    RATELIMIT_STORAGE_URI = "memory://"
    ADDRESS_RATE_LIMIT = "1000 per minute"
    HEALTH_CHECK_INTERVAL = 0.2
    PUBLIC_BASE_URL = "http://localhost"
    MAIL_SECURITY = "none"


PROFILES = {"production": Config, "demo": DemoConfig, "test": TestConfig}


def profile_from_env() -> type[Config]:
    name = _env("LOYALTY_ENV", "production")
    try:
        return PROFILES[name]
    except KeyError:
        raise RuntimeError(f"LOYALTY_ENV must be one of {sorted(PROFILES)}, not {name!r}") from None
