"""The rewards catalogue, per region: SQL and the reads the till and card need."""

from __future__ import annotations

from typing import Any

from sqlalchemy import Connection, select

from webapp.database.schema import rewards
from webapp.extensions import db


def reward_by_id(conn: Connection, reward_id: int) -> dict[str, Any] | None:
    row = conn.execute(select(rewards).where(rewards.c.id == reward_id)).mappings().first()
    return dict(row) if row else None


def region_rewards(conn: Connection, region: str | None, *,
                   active_only: bool = True) -> list[dict[str, Any]]:
    query = select(rewards).order_by(rewards.c.region, rewards.c.sort, rewards.c.coins)
    if region is not None:
        query = query.where(rewards.c.region == region)
    if active_only:
        query = query.where(rewards.c.active.is_(True))
    return [dict(row) for row in conn.execute(query).mappings()]


def offered(region: str) -> list[dict[str, Any]]:
    """The region's active rewards, cheapest first within the sort order."""
    return db.read(lambda conn: region_rewards(conn, region), name="rewards.offered")


def next_reward(balance: int, offers: list[dict[str, Any]]) -> dict[str, Any] | None:
    """The cheapest reward the balance does not reach yet, with how many coins are
    missing (``missing``) and the progress in percent (``percent``)."""
    above = sorted((r for r in offers if r["coins"] > balance), key=lambda r: r["coins"])
    if not above:
        return None
    reward = above[0]
    return {**reward, "missing": reward["coins"] - balance,
            "percent": int(100 * balance / reward["coins"])}
