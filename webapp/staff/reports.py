"""The rulebook for reports: who sees which figures.

| report | barista | manager | regional admin | global admin |
|---|---|---|---|---|
| flows and active wallets | - | own store | region | all |
| outstanding coins (liability) | - | - | owners homed in region | all |

Figures per period: ``issued`` (earn), ``redeemed`` (redeem, as a positive number),
``reversed`` and ``adjusted`` (signed: what they did to balances), ``expired`` (the
``expiry`` kind, positive), ``other`` (any other kind, e.g. erasure), and ``net`` (the
ledger's sum), so ``issued - redeemed + reversed + adjusted - expired + other == net``.
Days and months are local: each store's row counts the store's own days (its
``timezone``; rows without a store, such as expiries, their region's zone). A total over
several stores is the sum of their local days: "2026-11-29" in a global report is New
York's 29 November plus Bengaluru's 29 November, which are different UTC spans. A
wallet active at two stores on the same local date counts once in that date's total.
The default last day is the latest local "today" in the caller's scope.
"""

from __future__ import annotations

from datetime import date, timedelta
from typing import Any

from webapp.auth.tokens import Principal
from webapp.clock import utcnow
from webapp.errors import ValidationFailed
from webapp.extensions import db
from webapp.reports import queries, zones

from .roles import require
from .services import current_actor

FIGURES = ("issued", "redeemed", "reversed", "adjusted", "expired", "other", "net",
           "transactions", "active_wallets")
# kind -> (figure, sign as shown)
_KINDS = {"earn": ("issued", 1), "redeem": ("redeemed", -1), "reversal": ("reversed", 1),
          "adjustment": ("adjusted", 1), "expiry": ("expired", -1)}
DEFAULT_SPAN = {"day": 14, "month": 366}
MAX_SPAN = {"day": 400, "month": 3700}


def _empty() -> dict[str, int]:
    return dict.fromkeys(FIGURES, 0)


def _add(figures: dict[str, int], kind: str, count: int, coins: int) -> None:
    figure, sign = _KINDS.get(kind, ("other", 1))
    figures[figure] += sign * coins
    figures["net"] += coins
    figures["transactions"] += count


def window(grain: str, since: date | None, until: date | None,
           today: date) -> tuple[date, date]:
    """The report's first and last day (inclusive), validated."""
    if grain not in queries.PERIODS:
        raise ValidationFailed({"grain": ["Choose day or month."]})
    until = until or today
    since = since or (until - timedelta(days=DEFAULT_SPAN[grain] - 1))
    if grain == "month":
        since = since.replace(day=1)
    if since > until:
        raise ValidationFailed({"since": ["The first day must not be after the last."]})
    if (until - since).days > MAX_SPAN[grain]:
        raise ValidationFailed({"since": ["That is too long a span; choose fewer days."]})
    return since, until


def report(principal: Principal | None, *, grain: str = "day", since: date | None = None,
           until: date | None = None, today: date | None = None) -> dict[str, Any]:
    actor = current_actor(principal)
    require(actor.is_admin or actor.is_manager, "Reports are for managers and admins.")
    region = actor.region_scope()
    store_id = actor.store_scope()

    # The zones first (a few rows): the default last day and the SQL depend on them, and
    # the window is validated before the figures are read.
    names = db.read(queries.zones_in_use, name="console.report.zones", causal=True)
    now = utcnow()
    first, last = window(grain, since, until,
                         today or max(zones.local_today(name, now) for name in names))
    periods = queries.LocalPeriods(names, grain, first, last)

    def read(conn):
        flows = queries.flows(conn, periods, region=region, store_id=store_id)
        per_store, per_period = queries.active_wallets(conn, periods, region=region,
                                                       store_id=store_id)
        owed = queries.liability(conn, home_region=region) if actor.is_admin else None
        return flows, per_store, per_period, owed

    flows, per_store, per_period, owed = db.read(read, name="console.report", causal=True)
    rows: dict[tuple, dict[str, Any]] = {}
    totals: dict[str, dict[str, int]] = {}
    for row in flows:
        key = (row["period"], row["region"], row["store_id"])
        line = rows.setdefault(key, {"period": row["period"], "region": row["region"],
                                     "store_id": row["store_id"],
                                     "store": row["store"] or "—",
                                     "timezone": row["timezone"], **_empty()})
        _add(line, row["kind"], int(row["count"]), int(row["coins"] or 0))
        _add(totals.setdefault(row["period"], _empty()), row["kind"], int(row["count"]),
             int(row["coins"] or 0))
    for row in per_store:
        line = rows.get((row["period"], row["region"], row["store_id"]))
        if line is not None:
            line["active_wallets"] = int(row["wallets"])
    for row in per_period:
        totals.setdefault(row["period"], _empty())["active_wallets"] = int(row["wallets"])
    liability = None
    if owed is not None:
        liability = {"by_region": owed,
                     "balance": sum(r["balance"] for r in owed),
                     "ledger": sum(r["ledger"] for r in owed)}
    return {"grain": grain, "since": first, "until": last, "scope": actor.scope,
            "timezone": "local",
            "rows": [rows[k] for k in sorted(rows, key=lambda k: (k[0], k[1], str(k[2])))],
            "totals": [{"period": p, **totals[p]} for p in sorted(totals)],
            "liability": liability}
