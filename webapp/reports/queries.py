"""Report SQL. Every figure is a GROUP BY in the database (SQLite, MariaDB and MySQL 8.4
alike); Python only pivots the grouped rows.

Periods are each store's local days and months (``stores.timezone``; a ledger row with no
store, such as an expiry or an admin's adjustment, counts in its region's zone,
``webapp.config.REGION_TIMEZONES``). No dialect's time zone functions are used: the
zone arithmetic is done in Python (:mod:`webapp.reports.zones`) and the SQL sees UTC
ranges per zone and, within each range, a fixed offset to add before taking the date.
"""

from __future__ import annotations

from datetime import date
from typing import Any

from sqlalchemy import Connection, and_, case, func, literal, null, or_, select
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.sql.expression import ColumnElement, FunctionElement
from sqlalchemy.types import Integer, String

from webapp.config import REGION_TIMEZONES
from webapp.database.schema import accounts, ledger, stores, wallets

from . import zones

PERIODS = {"day": "%Y-%m-%d", "month": "%Y-%m"}


class shifted_period(FunctionElement):
    """``created_at`` plus a fixed number of seconds, as 'YYYY-MM-DD' or 'YYYY-MM', in
    each dialect's own words."""

    type = String()
    inherit_cache = True
    name = "report_period"


def _seconds(element, compiler, **kw) -> tuple[str, str, str]:
    column, seconds, fmt = list(element.clauses)
    # The offset is written into the SQL as a number (an int from zoneinfo, never user
    # input): one fewer parameter per piece, and SQLite builds its modifier from it.
    return (compiler.process(column, **kw),
            compiler.process(seconds, **{**kw, "literal_binds": True}),
            compiler.process(fmt, **kw))


@compiles(shifted_period, "sqlite")
def _period_sqlite(element, compiler, **kw):
    column, seconds, fmt = _seconds(element, compiler, **kw)
    return f"strftime({fmt}, {column}, ({seconds}) || ' seconds')"


@compiles(shifted_period)
def _period_mysql(element, compiler, **kw):
    # MariaDB and MySQL: DATE_FORMAT takes the same %Y-%m-%d codes as strftime.
    column, seconds, fmt = _seconds(element, compiler, **kw)
    return f"DATE_FORMAT(TIMESTAMPADD(SECOND, {seconds}, {column}), {fmt})"


def row_zone() -> ColumnElement:
    """A ledger row's zone: its store's, else its region's (rows with no store)."""
    by_region = case(REGION_TIMEZONES, value=ledger.c.region, else_="UTC")
    return func.coalesce(stores.c.timezone, by_region)


def zones_in_use(conn: Connection) -> set[str]:
    """Every zone a ledger row can be in: the stores' and the regions' (and UTC)."""
    names = {row[0] for row in conn.execute(select(stores.c.timezone).distinct())}
    return names | set(REGION_TIMEZONES.values()) | {"UTC"}


class LocalPeriods:
    """The report's local days ``first``..``last`` in SQL: ``window`` selects the rows in
    those days (a UTC range per zone) and ``bucket`` names each row's local period."""

    def __init__(self, names: set[str], grain: str, first: date, last: date) -> None:
        fmt = PERIODS[grain]
        zone = row_zone()
        whens, ranges, spans = [], [], []
        for name in sorted(names):
            parts = zones.pieces(name, first, last)
            ranges.append(and_(zone == name, ledger.c.created_at >= parts[0].start,
                               ledger.c.created_at < parts[-1].end))
            spans += (parts[0].start, parts[-1].end)
            for n, part in enumerate(parts):
                condition = zone == name
                if n < len(parts) - 1:  # CASE takes the first match: pieces in order
                    condition = and_(condition, ledger.c.created_at < part.end)
                whens.append((condition, shifted_period(
                    ledger.c.created_at, literal(part.offset_seconds, Integer), fmt)))
        self.bucket = case(*whens, else_=null()).label("period")
        # The outer bounds first: a plain range an index on created_at can serve.
        self.window = and_(ledger.c.created_at >= min(spans),
                           ledger.c.created_at < max(spans), or_(*ranges))
        self.zone = zone.label("timezone")


def _scoped(query, *, region: str | None, store_id: int | None):
    if region is not None:
        query = query.where(ledger.c.region == region)
    if store_id is not None:
        query = query.where(ledger.c.store_id == store_id)
    return query


def flows(conn: Connection, periods: LocalPeriods, *, region: str | None = None,
          store_id: int | None = None) -> list[dict[str, Any]]:
    """Coins per (period, region, store, kind): count and signed sum. Every ledger kind
    present is returned (an ``expiry`` kind is counted once it exists; nothing here names
    the kinds), so the rows always add up to the ledger's sum."""
    bucket = periods.bucket
    query = (select(bucket, ledger.c.region, ledger.c.store_id, stores.c.code.label("store"),
                    periods.zone, ledger.c.kind, func.count().label("count"),
                    func.sum(ledger.c.coins).label("coins"))
             .select_from(ledger.outerjoin(stores, stores.c.id == ledger.c.store_id))
             .where(periods.window)
             .group_by(bucket, ledger.c.region, ledger.c.store_id, stores.c.code,
                       periods.zone, ledger.c.kind)
             .order_by(bucket, ledger.c.region, stores.c.code, ledger.c.kind))
    query = _scoped(query, region=region, store_id=store_id)
    return [dict(r) for r in conn.execute(query).mappings()]


def active_wallets(conn: Connection, periods: LocalPeriods, *, region: str | None = None,
                   store_id: int | None = None
                   ) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """Wallets with any ledger row in the period, per (period, region, store), and per
    period over the whole scope (the second list): a wallet
    active at two stores counts once in the scope's total."""
    bucket = periods.bucket
    joined = ledger.outerjoin(stores, stores.c.id == ledger.c.store_id)
    per_store = (select(bucket, ledger.c.region, ledger.c.store_id,
                        func.count(ledger.c.wallet_id.distinct()).label("wallets"))
                 .select_from(joined).where(periods.window)
                 .group_by(bucket, ledger.c.region, ledger.c.store_id))
    total = (select(bucket, func.count(ledger.c.wallet_id.distinct()).label("wallets"))
             .select_from(joined).where(periods.window).group_by(bucket).order_by(bucket))
    per_store = _scoped(per_store, region=region, store_id=store_id)
    total = _scoped(total, region=region, store_id=store_id)
    return ([dict(r) for r in conn.execute(per_store).mappings()],
            [dict(r) for r in conn.execute(total).mappings()])


def liability(conn: Connection, *, home_region: str | None = None) -> list[dict[str, Any]]:
    """Outstanding coins by the wallet owner's home region, twice: the wallets' balances
    and the ledger's sums (they must agree; the report shows both)."""
    balances = (select(accounts.c.home_region.label("region"),
                       func.count().label("wallets"),
                       func.coalesce(func.sum(wallets.c.balance), 0).label("balance"))
                .join(accounts, accounts.c.id == wallets.c.account_id)
                .group_by(accounts.c.home_region))
    sums = (select(accounts.c.home_region.label("region"),
                   func.coalesce(func.sum(ledger.c.coins), 0).label("ledger"))
            .join(wallets, wallets.c.id == ledger.c.wallet_id)
            .join(accounts, accounts.c.id == wallets.c.account_id)
            .group_by(accounts.c.home_region))
    if home_region is not None:
        balances = balances.where(accounts.c.home_region == home_region)
        sums = sums.where(accounts.c.home_region == home_region)
    by_region = {r["region"]: {**dict(r), "ledger": 0}
                 for r in conn.execute(balances).mappings()}
    for row in conn.execute(sums).mappings():
        by_region.setdefault(row["region"], {"region": row["region"], "wallets": 0,
                                             "balance": 0})["ledger"] = row["ledger"]
    return [{k: (int(v) if k != "region" else v) for k, v in by_region[r].items()}
            for r in sorted(by_region)]
