"""Cluster members as configured: parsing the ``CLUSTER`` setting, the preference
order of regions, and the :class:`Member` record the state machine updates."""

from __future__ import annotations

import collections
import threading
import time
from collections.abc import Mapping, Sequence
from typing import Any

import pymysql
from sqlalchemy import Engine
from sqlalchemy.engine import make_url

from .pool import make_engine
from .probes import MemberState


class Member:
    """One cluster member: its engine for work, its probe connection, its last health.

    Only :class:`Cluster` writes the health fields, under its lock.
    """

    def __init__(self, name: str, region: str, url: str, engine: Engine, index: int) -> None:
        self.name = name
        self.region = region
        self.url = url
        self.engine = engine
        self.index = index  # position in the CLUSTER setting
        self.rank = index  # position in the preference order, set by Cluster
        self.state = MemberState.SUSPECT  # unknown until the first probe
        self.role: str | None = None
        self.queue: int | None = None
        self.details: Mapping[str, Any] = {}
        self.latency_ms: float | None = None
        self.error: str | None = None
        self.checked_at: float | None = None  # time.monotonic() of the last probe
        self.changed_at = time.monotonic()
        self.server_version: str | None = None  # from the probe's handshake
        self.failures = 0  # consecutive failed probes, drives the backoff
        self.next_check_at = 0.0
        self._probe_conn: pymysql.connections.Connection | None = None
        self._probe_lock = threading.Lock()

    @property
    def backend(self) -> str:
        if self.server_version and "mariadb" in self.server_version.lower():
            return "mariadb"
        return self.engine.dialect.name

    @property
    def address(self) -> str:
        parsed = make_url(self.url)
        return f"{parsed.host}:{parsed.port or 3306}"

    def __repr__(self) -> str:
        return f"<Member {self.name} {self.state.value}>"


def parse_members(setting: str | Mapping[str, str]) -> list[tuple[str, str, str]]:
    """``"us=dsn,ie=dsn"`` (or a mapping) -> ``[(name, region, dsn), ...]`` in order.

    The label is the member's region; two members in one region get names ``us``, ``us-2``.
    """
    if isinstance(setting, Mapping):
        pairs = [(str(k), str(v)) for k, v in setting.items()]
    else:
        pairs = []
        for part in str(setting).split(","):
            if not part.strip():
                continue
            label, sep, dsn = part.strip().partition("=")
            if not sep or not label.strip() or not dsn.strip():
                raise ValueError(f"CLUSTER entries look like region=dsn, not {part.strip()!r}")
            pairs.append((label.strip(), dsn.strip()))
    if not pairs:
        raise ValueError("CLUSTER lists no members")
    seen: collections.Counter[str] = collections.Counter()
    members = []
    for region, dsn in pairs:
        seen[region] += 1
        name = region if seen[region] == 1 else f"{region}-{seen[region]}"
        members.append((name, region, dsn))
    return members


def preference_order(
    regions: Sequence[str], own: str | None, preference: str | Sequence[str] | None
) -> list[str]:
    """Regions in the order members are tried: REGION_PREFERENCE as given, else own
    region first; regions not mentioned follow in configuration order."""
    if isinstance(preference, str):
        wanted = [r.strip() for r in preference.split(",") if r.strip()]
    elif preference:
        wanted = list(preference)
    else:
        wanted = [own] if own else []
    order = [r for r in wanted if r in regions]
    order += [r for r in regions if r not in order]
    return list(dict.fromkeys(order))


def build_members(setting: str | Mapping[str, str], config: Mapping[str, Any]) -> list[Member]:
    return [
        Member(name, region, dsn, make_engine(dsn, config), index)
        for index, (name, region, dsn) in enumerate(parse_members(setting))
    ]


def describe_error(error: BaseException) -> str:
    orig = getattr(error, "orig", None) or error
    args = getattr(orig, "args", ())
    if len(args) >= 2:
        return f"{args[0]}: {args[1]}"
    return f"{type(orig).__name__}: {orig}" if str(orig) else type(orig).__name__
