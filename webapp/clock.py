"""Time, in one place: naive UTC datetimes, as stored in every table, and epoch seconds
for deadlines shared between processes (the sign-in backoff). Tests replace these."""

from __future__ import annotations

import time
from datetime import UTC, datetime


def utcnow() -> datetime:
    return datetime.now(UTC).replace(tzinfo=None)


def timestamp() -> float:
    """Seconds since the epoch: the same on every worker and host (NTP), unlike monotonic."""
    return time.time()
