"""Coin expiry: after ``COIN_EXPIRY_MONTHS`` without activity, a wallet's coins expire.

Activity is any earn, redeem or adjustment by anyone in the family
(:data:`webapp.ledger.kinds.ACTIVITY`); a reversal only undoes one, so it keeps nothing
alive. Expiry is a ledger movement of kind ``expiry`` that takes the whole balance,
booked by a scheduled command (``flask --app webapp coins expire``) that every region may
run at the same moment:

* **Once per wallet and period.** The idempotency key is the wallet id plus the
  timestamp of its last activity, a value every node and every run computes alike. Two
  runs racing on two nodes write the same key; the ledger's unique index (or Galera's
  certification of the wallet row) lets one commit, and the other, run again, finds it.
* **Never both with a racing movement.** The debit is the ledger's own conditional
  UPDATE of the balance (never below zero), and the inactivity is checked again *after*
  that UPDATE, when the wallet row is this transaction's: an earn or redeem that
  committed first is seen and cancels the expiry (rolled back, nothing written). One that
  commits later on another node conflicts with our row at certification, and whichever
  is retried sees the other: a redeem then finds no coins, an expiry finds the activity.
"""

from __future__ import annotations

import calendar
import hashlib
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from flask import current_app
from sqlalchemy import Connection
from sqlalchemy import exc as sa_exc

from webapp import clock
from webapp.config import REGION_TIMEZONES
from webapp.database import RetryTransaction, after_unknown_commit
from webapp.errors import AppError
from webapp.extensions import db
from webapp.ledger import kinds
from webapp.ledger import queries as ledger_queries
from webapp.ledger import services as ledger_services  # a module: imports are circular

from . import queries

# Slack for the first, coarse pass over all wallets: a month is 28 to 31 days, and the
# exact test (add_months) is made again per wallet.
_CUTOFF_SLACK = timedelta(days=4)


def months() -> int:
    """The operator's setting; 0 means coins never expire."""
    return int(current_app.config["COIN_EXPIRY_MONTHS"])


def add_months(moment: datetime, count: int) -> datetime:
    """Same day ``count`` months later, or that month's last day (31 Jan + 1 = 28 Feb)."""
    index = moment.month - 1 + count
    year, month = moment.year + index // 12, index % 12 + 1
    return moment.replace(year=year, month=month,
                          day=min(moment.day, calendar.monthrange(year, month)[1]))


def expires_at(last_activity: datetime, period_months: int) -> datetime:
    return add_months(last_activity, period_months)


def idempotency_key(wallet_id: int, last_activity: datetime) -> str:
    """The same for every run and region that expires this wallet for this period."""
    return f"expiry:{wallet_id}:{last_activity:%Y%m%dT%H%M%S.%f}"


# ------------------------------------------------------------------- the card's warning
@dataclass(frozen=True)
class Notice:
    """"Your 40 coins expire on 12 Jan unless you earn or redeem"."""

    coins: int
    expires_at: datetime  # naive UTC, like every stored time
    timezone: str  # the holder's region's zone, for the date shown


def notice(conn: Connection, *, wallet_id: int, balance: int,
           recent: list[dict[str, Any]], now: datetime, period_months: int,
           warning_days: int) -> Notice | None:
    """The warning for the card page, or None; usually no query at all.

    ``recent`` is the page's history (newest first): its newest activity is the wallet's
    unless none of those rows is one, and only then is the ledger asked.
    """
    if period_months <= 0 or balance <= 0:
        return None
    last = next((row["created_at"] for row in recent if row["kind"] in kinds.ACTIVITY), None)
    if last is None:
        last = queries.last_activity(conn, wallet_id)
        if last is None:
            return None
    due = expires_at(last, period_months)
    if now < due - timedelta(days=warning_days):
        return None
    region = queries.home_region(conn, wallet_id)
    return Notice(balance, due, REGION_TIMEZONES.get(region, "UTC"))


# --------------------------------------------------------------------- the expiry itself
EXPIRED = "expired"  # this run booked the expiry
ALREADY = "already"  # another run (another region) had booked it for this period
ACTIVE = "active"  # not due (any more): there was activity
EMPTY = "empty"  # nothing to expire


class _ActivityResumed(Exception):
    """An earn or redeem committed before the expiry's debit: roll the debit back."""


@dataclass(frozen=True)
class Outcome:
    wallet_id: int
    status: str
    coins: int = 0  # expired, as a positive number
    entry_id: int | None = None
    region: str | None = None  # the expiry row's: the holder's home region


def expire_wallet(wallet_id: int, *, now: datetime | None = None,
                  period_months: int | None = None) -> Outcome:
    """Expires one wallet's coins if it is due, in one transaction (see the module doc)."""
    now = now or clock.utcnow()
    period = months() if period_months is None else period_months
    written: set[int] = set()

    def work(conn: Connection) -> Outcome:
        last = queries.last_activity(conn, wallet_id)
        if last is None or period <= 0 or expires_at(last, period) > now:
            return Outcome(wallet_id, ACTIVE)
        key = idempotency_key(wallet_id, last)
        entry = ledger_queries.entry_by_key(conn, key)
        if entry is not None:
            # Ours when an attempt of this call wrote it and lost the COMMIT answer.
            own = entry["id"] in written and after_unknown_commit(conn)
            return Outcome(wallet_id, EXPIRED if own else ALREADY, -entry["coins"], entry["id"],
                           entry["region"])
        wallet = queries.wallet(conn, wallet_id)
        if wallet is None or wallet["balance"] <= 0:
            return Outcome(wallet_id, EMPTY)
        coins = wallet["balance"]
        left = ledger_queries.apply_to_wallet(conn, wallet_id, -coins, now)
        if left is None:
            # The balance fell since it was read (a redeem, or a reversal): look again.
            raise RetryTransaction()
        # The wallet row is now this transaction's (a lock here, certified against any
        # other change of it on Galera), so what the ledger says now is final for us.
        if queries.last_activity(conn, wallet_id) != last:
            raise _ActivityResumed()
        if left != 0:
            # Coins came in after the read (an earn, a reversal): the UPDATE's balance is
            # the row's, which this transaction now holds.
            raise RetryTransaction()
        values = {
            "wallet_id": wallet_id, "card_id": None, "kind": kinds.EXPIRY, "coins": -coins,
            "amount_minor": None, "currency": None, "store_id": None,
            "region": wallet["home_region"], "staff_id": None, "idempotency_key": key,
            "request_hash": hashlib.sha256(key.encode()).hexdigest(), "balance_after": 0,
            "created_at": now,
        }
        try:
            entry_id = ledger_queries.insert_entry(conn, **values)
        except sa_exc.IntegrityError as error:
            raise RetryTransaction() from error  # another run's row: found on the rerun
        written.add(entry_id)
        return Outcome(wallet_id, EXPIRED, coins, entry_id, wallet["home_region"])

    try:
        # Idempotent: a rerun finds the row by its key, derived from the period.
        outcome = db.write(work, name="coins.expire", idempotent=True)
    except _ActivityResumed:
        return Outcome(wallet_id, ACTIVE)
    if outcome.status == EXPIRED:
        ledger_services.count_movement(kinds.EXPIRY, outcome.region, outcome.coins)
    return outcome


@dataclass
class Summary:
    candidates: int = 0
    outcomes: list[Outcome] = field(default_factory=list)
    failed: list[tuple[int, str]] = field(default_factory=list)

    def count(self, status: str) -> int:
        return sum(o.status == status for o in self.outcomes)

    def coins(self, status: str = EXPIRED) -> int:
        return sum(o.coins for o in self.outcomes if o.status == status)


def due_wallets(now: datetime, period_months: int) -> list[dict[str, Any]]:
    """Wallets whose coins are due to expire at ``now`` (read only; no transaction)."""
    cutoff = add_months(now, -period_months) + _CUTOFF_SLACK
    rows = db.read(lambda conn: queries.wallets_inactive_since(conn, cutoff),
                   name="coins.due", causal=True)
    return [row for row in rows if expires_at(row["last_activity"], period_months) <= now]


def expire_due(*, now: datetime | None = None) -> Summary:
    """Expires every wallet that is due; a wallet that fails is reported, not fatal."""
    now = now or clock.utcnow()
    period = months()
    summary = Summary()
    if period <= 0:
        return summary
    due = due_wallets(now, period)
    summary.candidates = len(due)
    for row in due:
        try:
            summary.outcomes.append(expire_wallet(row["id"], now=now, period_months=period))
        except AppError as error:  # e.g. no database member: the next run catches up
            summary.failed.append((row["id"], error.detail))
    return summary
