"""Asking nodes how they are: connections, ``SHOW GLOBAL STATUS`` and waiting for a state.

A lab waits on the nodes' own word (Synced in a Primary component of the right size),
never on a sleep, and fails at once with the error logs when a node exits meanwhile.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any, Generic, TypeVar

import pymysql

from labs.galera.config import ADMIN_PASSWORD, ADMIN_USER, APP_PASSWORD, APP_USER
from labs.galera.node import GaleraNode
from labs.proc import LabError, tail

SYNCED = 4
STATUS_KEYS = (
    "wsrep_cluster_status",
    "wsrep_ready",
    "wsrep_local_state",
    "wsrep_cluster_size",
    "wsrep_last_committed",
)
_INT_KEYS = frozenset({"wsrep_local_state", "wsrep_cluster_size", "wsrep_last_committed"})


def connect_node(
    host: str, port: int, *, admin: bool = True, **kwargs: Any
) -> pymysql.connections.Connection:
    """A PyMySQL connection to a node as the lab's admin (or app) user; ``kwargs`` override."""
    params: dict[str, Any] = {
        "host": host,
        "port": port,
        "user": ADMIN_USER if admin else APP_USER,
        "password": ADMIN_PASSWORD if admin else APP_PASSWORD,
        "connect_timeout": 3,
        "read_timeout": 30,
        "write_timeout": 30,
        "autocommit": True,
    }
    params.update(kwargs)
    return pymysql.connect(**params)


def read_status(
    connect: Callable[[], pymysql.connections.Connection], keys: Sequence[str]
) -> dict[str, Any] | None:
    """The ``keys`` of SHOW GLOBAL STATUS (counters as ints), or None if the node won't say."""
    try:
        conn = connect()
    except pymysql.MySQLError:
        return None
    try:
        with conn.cursor() as cur:
            placeholders = ",".join(["%s"] * len(keys))
            cur.execute(f"SHOW GLOBAL STATUS WHERE Variable_name IN ({placeholders})", keys)
            rows = dict(cur.fetchall())
    except pymysql.MySQLError:
        return None
    finally:
        conn.close()
    result: dict[str, Any] = {}
    for key in keys:
        value = rows.get(key)
        if key in _INT_KEYS and value is not None:
            value = int(value)
        result[key] = value
    return result


def synced_primary(status: dict[str, Any] | None, size: int | None = None) -> bool:
    """The node is Synced in a Primary component (of ``size`` nodes, when given) and ready."""
    return (
        status is not None
        and status["wsrep_local_state"] == SYNCED
        and status["wsrep_cluster_status"] == "Primary"
        and status["wsrep_ready"] == "ON"
        and (size is None or status["wsrep_cluster_size"] == size)
    )


_Key = TypeVar("_Key")
Statuses = dict[_Key, dict[str, Any] | None]


def wait_for(
    nodes: Mapping[_Key, GaleraNode],
    status: Callable[[_Key], dict[str, Any] | None],
    done: Callable[[Statuses[_Key]], bool],
    what: str,
    timeout: float,
) -> Statuses[_Key]:
    """Poll the nodes' statuses until ``done``; fail at once when one of them exits."""
    deadline = time.monotonic() + timeout
    statuses: Statuses[_Key] = {}
    while True:
        for node in nodes.values():
            node.check_alive()
        statuses = {key: status(key) for key in nodes}
        if done(statuses):
            return statuses
        if time.monotonic() >= deadline:
            break
        time.sleep(0.2)
    logs = "\n".join(
        f"--- {node.name} status {statuses.get(key)}; "
        f"error log tail ({node.error_log}):\n{tail(node.error_log)}"
        for key, node in nodes.items()
    )
    raise LabError(f"timed out after {timeout:.0f}s waiting for {what}\n{logs}")


class NodeWaits(Generic[_Key]):
    """Waiting on a lab's nodes by key (an index here, a region name in labs.regions):
    the one implementation both labs use. A lab provides ``timeout``, ``status(key)``
    and ``node(key)``."""

    timeout: float
    timings: dict[str, float]

    def status(self, key: _Key) -> dict[str, Any] | None:
        raise NotImplementedError

    def node(self, key: _Key) -> GaleraNode:
        raise NotImplementedError

    def wait(
        self,
        keys: Iterable[_Key],
        done: Callable[[Statuses[_Key]], bool],
        what: str,
        timeout: float | None = None,
    ) -> Statuses[_Key]:
        """Until ``done(statuses)`` for the nodes ``keys`` (the lab's timeout by default)."""
        nodes = {key: self.node(key) for key in keys}
        limit = self.timeout if timeout is None else timeout
        return wait_for(nodes, self.status, done, what, limit)

    def wait_rejoined(self, key: _Key, started: float, timeout: float | None = None) -> None:
        """Until the restarted node ``key`` is Synced in a Primary component again; its
        restart's time (since ``started``, a monotonic clock) goes to ``timings``."""
        self.wait(
            [key],
            lambda statuses: synced_primary(statuses[key]),
            f"{self.node(key).name} to rejoin and reach Synced",
            timeout,
        )
        self.timings[f"restart_{key}"] = time.monotonic() - started

    def wait_synced(self, keys: Iterable[_Key], size: int, timeout: float | None = None) -> None:
        """Until every node of ``keys`` is Synced in a Primary component of ``size``."""
        wanted = list(keys)
        self.wait(
            wanted,
            lambda statuses: all(synced_primary(statuses[key], size) for key in wanted),
            f"nodes {wanted} Synced in a Primary component of {size}",
            timeout,
        )
