"""Sign-in throttling: two layers over one store, the limiter's (Redis in production).

1. **Per client address** (Flask-Limiter): one bucket, :data:`SIGN_IN`, shared by the page
   (``POST /login``) and the API (``POST /api/v1/auth/token``), so switching path gains
   nothing; likewise :data:`SIGN_UP` for the two ways to register. Limits how fast one
   address guesses, across all accounts.
2. **Per account and client address** (here): from the ``LOGIN_BACKOFF_AFTER``-th
   consecutive failed password for one email from one address, each further failure
   locks that pair for twice as long as the last (2, 4, 8 ... s), never longer than
   ``LOGIN_BACKOFF_MAX_SECONDS``. A locked attempt is answered 429 with ``Retry-After``
   before the password is checked; a success clears the count.

Why the pair and not the account alone: a lock per account is a lock-out anyone can
cause, by failing on purpose with the victim's email. Keyed on the pair, the attacker
only locks themselves out; the real user signs in from their own address at once. The
bound (five minutes by default) caps the harm where attacker and user share an address
(one NAT): the user waits at most that long, and only while the attacker keeps failing.
What the pair cannot stop is a guess spread over many addresses; each of them still gets
only a few guesses per account before its own backoff, and layer 1 bounds each one's rate.

No server-side sleep: a sleeping request would pin one of gunicorn's threads for the whole
delay, so the backoff is a deadline stored beside the count, and the client is told when.

The deadline is computed at this layer from :func:`webapp.clock.timestamp`, not from the
store's own clock: the limits storage API takes no time argument (Redis expiries run on
the server's clock), and a clock owned here can be driven by the tests. The store's
expiry only forgets an idle count a day after its first failure.

When the store is down, the count moves to this process's memory (like Flask-Limiter's
in-memory fallback: weaker, since each worker counts on its own, but never a 500) and the
store is tried again after :data:`STORE_RECHECK_SECONDS`.
"""

from __future__ import annotations

import hashlib
import logging
import math
import time
from collections.abc import Callable
from typing import TypeVar

from flask import current_app
from flask_limiter.util import get_remote_address
from limits.storage import MemoryStorage, Storage

from webapp import clock
from webapp.errors import TooManyAttempts
from webapp.extensions import limiter

SIGN_IN = "sign-in"
SIGN_UP = "sign-up"
FORGET_SECONDS = 24 * 3600
STORE_RECHECK_SECONDS = 5.0

T = TypeVar("T")
log = logging.getLogger(__name__)

def sign_in_limit() -> str:
    return current_app.config["LOGIN_RATE_LIMIT"]


def sign_in_limited(view: Callable) -> Callable:
    """The per-address bucket every sign-in path shares."""
    return limiter.shared_limit(sign_in_limit, scope=SIGN_IN, methods=["POST"])(view)


def sign_up_limited(view: Callable) -> Callable:
    """The per-address bucket both ways to register share."""
    return limiter.shared_limit(sign_in_limit, scope=SIGN_UP, methods=["POST"])(view)


def client() -> str:
    """The address both layers count by: the peer, or the client nginx/the ALB saw
    when ``LOYALTY_PROXY_HOPS`` trusts their X-Forwarded-For (same as the limiter's key)."""
    return get_remote_address()


def delay_after(failures: int) -> int:
    """Seconds the pair stays locked after its ``failures``-th consecutive failure."""
    config = current_app.config
    after = config["LOGIN_BACKOFF_AFTER"]
    if failures < after:
        return 0
    doubling = min(failures - after, 32)  # 2**32 s is past any cap; avoids huge ints
    return min(config["LOGIN_BACKOFF_BASE_SECONDS"] * 2**doubling,
               config["LOGIN_BACKOFF_MAX_SECONDS"])


def check(email: str, client: str) -> None:
    """Raises :class:`TooManyAttempts` while the pair is locked."""
    key = _key(email, client)

    def locked_for(store: Storage) -> float:
        failures = store.get(_failures_key(key))
        delay = delay_after(failures)
        if not delay:
            return 0
        failed_at = store.get(_failed_at_key(key, failures)) / 1000
        now = clock.timestamp()
        if not failed_at or failed_at > now + 1:  # not written yet, or not a time of ours
            return 0
        return failed_at + delay - now

    remaining = _on_store(locked_for)
    if remaining > 0:
        raise TooManyAttempts(retry_after=math.ceil(remaining))


def failed(email: str, client: str) -> None:
    """Counts a wrong password; from the threshold on, stamps when the lock started."""
    key = _key(email, client)

    def record(store: Storage) -> None:
        failures = store.incr(_failures_key(key), FORGET_SECONDS)
        if delay_after(failures):
            # One stamp per failure number: the count's increment is atomic, so no two
            # concurrent failures share a number. Cleared first in case a count that was
            # reset left one behind.
            stamp = _failed_at_key(key, failures)
            store.clear(stamp)
            store.incr(stamp, FORGET_SECONDS, amount=int(clock.timestamp() * 1000))

    _on_store(record)


def succeeded(email: str, client: str) -> None:
    key = _key(email, client)
    _on_store(lambda store: store.clear(_failures_key(key)))


def _key(email: str, client: str) -> str:
    # Hashed: the store holds no email addresses.
    return hashlib.sha256(f"{email}\0{client}".encode()).hexdigest()[:32]


def _failures_key(key: str) -> str:
    return f"sign-in-failures/{key}"


def _failed_at_key(key: str, failures: int) -> str:
    return f"sign-in-failed-at/{key}/{failures}"


class _Fallback:
    """Per app: this process's memory, used while the shared store is unreachable."""

    def __init__(self) -> None:
        self.storage = MemoryStorage()
        self.store_down_until = 0.0


def _on_store(operation: Callable[[Storage], T]) -> T:
    """Runs ``operation`` on the shared store, or on this process's memory while the
    store is unreachable."""
    fallback = current_app.extensions.setdefault("loyalty.sign_in_fallback", _Fallback())
    if time.monotonic() >= fallback.store_down_until:
        store = limiter.storage
        try:
            return operation(store)
        except store.base_exceptions as error:
            fallback.store_down_until = time.monotonic() + STORE_RECHECK_SECONDS
            log.warning("limiter store unreachable, sign-in backoff counts in memory "
                        "for %.0f s: %s", STORE_RECHECK_SECONDS, error)
    return operation(fallback.storage)
