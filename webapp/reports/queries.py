"""Report SQL. Every figure is a GROUP BY in the database (SQLite, MariaDB and MySQL 8.4
alike); Python only pivots the grouped rows.

Periods are UTC days and months: stores carry no time zone yet, so a store's "day" is
the UTC day. When ``stores.timezone`` lands, :func:`period` is the one place to change.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import Connection, func, select
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.sql.expression import ColumnElement, FunctionElement
from sqlalchemy.types import String

from webapp.database.schema import accounts, ledger, stores, wallets

PERIODS = {"day": "%Y-%m-%d", "month": "%Y-%m"}


class period(FunctionElement):
    """``created_at`` as a 'YYYY-MM-DD' or 'YYYY-MM' string, in each dialect's own words."""

    type = String()
    inherit_cache = True
    name = "report_period"


@compiles(period, "sqlite")
def _period_sqlite(element, compiler, **kw):
    column, fmt = list(element.clauses)
    return f"strftime({compiler.process(fmt, **kw)}, {compiler.process(column, **kw)})"


@compiles(period)
def _period_mysql(element, compiler, **kw):
    # MariaDB and MySQL: DATE_FORMAT takes the same %Y-%m-%d codes as strftime.
    column, fmt = list(element.clauses)
    return f"DATE_FORMAT({compiler.process(column, **kw)}, {compiler.process(fmt, **kw)})"


def period_of(grain: str) -> ColumnElement:
    return period(ledger.c.created_at, PERIODS[grain])


def _scoped(query, *, region: str | None, store_id: int | None):
    if region is not None:
        query = query.where(ledger.c.region == region)
    if store_id is not None:
        query = query.where(ledger.c.store_id == store_id)
    return query


def flows(conn: Connection, *, grain: str, since: datetime, until: datetime,
          region: str | None = None, store_id: int | None = None) -> list[dict[str, Any]]:
    """Coins per (period, region, store, kind): count and signed sum. Every ledger kind
    present is returned (an ``expiry`` kind is counted once it exists; nothing here names
    the kinds), so the rows always add up to the ledger's sum."""
    bucket = period_of(grain).label("period")
    query = (select(bucket, ledger.c.region, ledger.c.store_id, stores.c.code.label("store"),
                    ledger.c.kind, func.count().label("count"),
                    func.sum(ledger.c.coins).label("coins"))
             .outerjoin(stores, stores.c.id == ledger.c.store_id)
             .where(ledger.c.created_at >= since, ledger.c.created_at < until)
             .group_by(bucket, ledger.c.region, ledger.c.store_id, stores.c.code,
                       ledger.c.kind)
             .order_by(bucket, ledger.c.region, stores.c.code, ledger.c.kind))
    query = _scoped(query, region=region, store_id=store_id)
    return [dict(r) for r in conn.execute(query).mappings()]


def active_wallets(conn: Connection, *, grain: str, since: datetime, until: datetime,
                   region: str | None = None,
                   store_id: int | None = None
                   ) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """Wallets with any ledger row in the period, per (period, region, store), and per
    period over the whole scope (the second list): a wallet
    active at two stores counts once in the scope's total."""
    bucket = period_of(grain).label("period")
    window = (ledger.c.created_at >= since, ledger.c.created_at < until)
    per_store = (select(bucket, ledger.c.region, ledger.c.store_id,
                        func.count(ledger.c.wallet_id.distinct()).label("wallets"))
                 .where(*window)
                 .group_by(bucket, ledger.c.region, ledger.c.store_id))
    total = (select(bucket, func.count(ledger.c.wallet_id.distinct()).label("wallets"))
             .where(*window).group_by(bucket).order_by(bucket))
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
