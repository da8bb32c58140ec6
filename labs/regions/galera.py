"""One MariaDB Galera node per region namespace, talking to its peers over the WAN.

A node is :class:`labs.galera.node.GaleraNode` (same files, my.cnf, accounts,
recovery and status as the localhost lab, from the same code) adapted to the
namespaces: it runs behind ``ip netns exec``, uses the standard ports inside its own
namespace, listens on all its addresses and *advertises* its identity address
(``wsrep_node_address``, ``ist.recv_addr``, ``wsrep_sst_receive_address``), which only
the hub owns, so group communication, IST and rsync SST between regions all cross
the delay forwarder. Because the identity is not local to the node, rsync SST binds
its daemon to every address and IST binds with ``ist.recv_bind``, as in a NAT setup.

WAN settings: each region is its own ``gmcast.segment``; the ``evs`` timeouts are
scaled for 190 ms RTT and a busy 2-core host (keepalive 1 s, suspect 5 s, inactive
10 s) so a partition is noticed in seconds without flapping under load; the send
windows are widened as Galera's WAN guide recommends so commits are not throttled by
the RTT.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import time
from pathlib import Path
from typing import Any

import pymysql

from labs.galera.config import (
    APP_DATABASE,
    APP_USER,
    Tuning,
    account_statements,
    chown_tree,
    node_url,
    render_config,
)
from labs.galera.install import ensure_installed
from labs.galera.node import GaleraNode
from labs.galera.recovery import start_position, wsrep_recover
from labs.galera.status import NodeWaits, connect_node, read_status
from labs.proc import LabError
from labs.regions.netns import in_ns
from labs.regions.topology import GCOMM_PORT, IST_PORT, MYSQL_PORT, REGIONS, SST_PORT, Topology

STATUS_KEYS = (
    "wsrep_cluster_status",
    "wsrep_ready",
    "wsrep_local_state",
    "wsrep_local_state_comment",
    "wsrep_cluster_size",
    "wsrep_last_committed",
    "wsrep_connected",
)

WAN_EVS = {
    "keepalive_period": "PT1S",
    "suspect_timeout": "PT5S",
    "inactive_timeout": "PT10S",
    "install_timeout": "PT10S",
    "join_retrans_period": "PT1S",
    "send_window": "512",
    "user_send_window": "512",
}


class RegionGalera(NodeWaits[str]):
    """Three Galera nodes, one per region namespace (the namespaces must exist)."""

    def __init__(
        self,
        topology: Topology,
        base_dir: Path,
        *,
        evs: dict[str, str] | None = None,
        buffer_pool_size: str = "64M",
        gcache_size: str = "128M",
        timeout: float = 180.0,
    ) -> None:
        self.topology = topology
        self.base_dir = base_dir
        self.tuning = Tuning(evs={**WAN_EVS, **(evs or {})}, gcache_size=gcache_size,
                             buffer_pool_size=buffer_pool_size)
        self.timeout = timeout
        self.nodes = {r: GaleraNode(r, base_dir / f"node-{r}") for r in REGIONS}
        self.timings: dict[str, float] = {}

    # ------------------------------------------------------------------ addresses
    def host_dsn(self, region: str, admin: bool = False, owner: bool = False) -> str:
        """URL the *host* uses to reach a node directly (over its veth, no WAN delay), as
        the app, the lab's admin or the schema owner (migrations)."""
        account = "owner" if owner else "admin" if admin else "app"
        return node_url(self.topology.ns_ip(region), MYSQL_PORT, account)

    def app_dsn(self, app_region: str, member: str) -> str:
        """URL an app in ``app_region`` uses for ``member``: local socket-near or over the WAN."""
        host = "127.0.0.1" if member == app_region else self.topology.identity(member)
        return node_url(host, MYSQL_PORT)

    def cluster_env(self, app_region: str) -> str:
        return ",".join(f"{m}={self.app_dsn(app_region, m)}" for m in REGIONS)

    def connect(self, region: str, *, admin: bool = True, **kwargs: Any) -> pymysql.Connection:
        return connect_node(
            self.topology.ns_ip(region),
            MYSQL_PORT,
            admin=admin,
            **{"database": APP_DATABASE, **kwargs},
        )

    # ------------------------------------------------------------------ lifecycle
    def start(self) -> None:
        ensure_installed()
        started = time.monotonic()
        self._prepare()
        for node in self.nodes.values():
            self._install_db(node)
        first = self.nodes[REGIONS[0]]
        self._spawn(first, ["--wsrep-new-cluster"])
        first.wait_socket_sql("root", self.timeout)
        self._create_accounts(first)
        self.timings["bootstrap"] = time.monotonic() - started
        for region in REGIONS[1:]:
            t0 = time.monotonic()
            self._spawn(self.nodes[region], [])
            self.wait_synced([region], size=REGIONS.index(region) + 1)
            self.timings[f"join_{region}"] = time.monotonic() - t0
        self.wait_synced(REGIONS, size=len(REGIONS))
        self.timings["start"] = time.monotonic() - started

    def stop(self, timeout: float = 60.0) -> None:
        live = [n for n in self.nodes.values() if n.alive]
        for node in live:
            assert node.proc is not None
            with contextlib.suppress(ProcessLookupError):
                node.proc.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + timeout
        for node in live:
            assert node.proc is not None
            try:
                node.proc.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                self._killpg(node)

    def kill(self, region: str) -> None:
        """SIGKILL the node (and an SST helper it may have started): a crash."""
        node = self.nodes[region]
        if not node.alive:
            raise LabError(f"node {region} is not running")
        self._killpg(node)

    def restart(self, region: str, timeout: float | None = None) -> str | None:
        """Start a dead node from its recovered position; returns how it joined (IST/SST)."""
        node = self.nodes[region]
        if node.alive:
            raise LabError(f"node {region} is still running")
        t0 = time.monotonic()
        self._spawn(node, start_position(self._recover_position(node)))
        self.wait_rejoined(region, t0, timeout)
        return self.join_method(region)

    def pid(self, region: str) -> int | None:
        node = self.nodes[region]
        return node.proc.pid if node.alive and node.proc else None

    # ------------------------------------------------------------------ status
    def node(self, region: str) -> GaleraNode:
        return self.nodes[region]

    def status(self, region: str) -> dict[str, Any] | None:
        if not self.nodes[region].alive:
            return None
        return read_status(
            lambda: self.connect(region, connect_timeout=2, read_timeout=5, write_timeout=5),
            STATUS_KEYS,
        )

    def statuses(self) -> dict[str, dict[str, Any] | None]:
        return {r: self.status(r) for r in REGIONS}

    def join_method(self, region: str) -> str | None:
        return self.nodes[region].join_method()

    # ------------------------------------------------------------------ internals
    def _prepare(self) -> None:
        self.base_dir.mkdir(parents=True, exist_ok=True)
        for node in self.nodes.values():
            (node.home / "tmp").mkdir(parents=True, exist_ok=True)
            node.datadir.mkdir(exist_ok=True)
            node.cnf.write_text(self._config(node))
        chown_tree(self.base_dir, "mysql")

    def _config(self, node: GaleraNode) -> str:
        t, region = self.topology, node.region
        return render_config(
            node,
            user="mysql",
            port=MYSQL_PORT,
            bind_address="0.0.0.0",  # noqa: S104 - inside the region's own namespace
            cluster_name=f"loyalty-regions-{t.prefix}",
            peers=[f"{t.identity(r)}:{GCOMM_PORT}" for r in REGIONS if r != region],
            node_address=t.identity(region),
            sst_port=SST_PORT,
            network_options=[
                f"gmcast.listen_addr=tcp://0.0.0.0:{GCOMM_PORT}",
                f"gmcast.segment={REGIONS.index(region)}",
                f"ist.recv_addr={t.identity(region)}:{IST_PORT}",
                f"ist.recv_bind=0.0.0.0:{IST_PORT}",
            ],
            tuning=self.tuning,
        )

    def _install_db(self, node: GaleraNode) -> None:
        node.install_db("mysql")

    def _spawn(self, node: GaleraNode, extra: list[str]) -> None:
        node.spawn(extra, prefix=in_ns(self.topology, node.region))

    def _killpg(self, node: GaleraNode) -> None:
        if node.proc is None:
            return
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(node.proc.pid, signal.SIGKILL)
        with contextlib.suppress(subprocess.TimeoutExpired):
            node.proc.wait(timeout=30)

    def _create_accounts(self, node: GaleraNode) -> None:
        # Hosts are '%': the host reaches nodes from <net>.<r>.1, apps from 127.0.0.1 or
        # (other regions, through the forwarder) from the hub's veth address.
        statements = [
            *account_statements(admin_hosts=("%",), app_hosts=("%",)),
            # wsrep status for the app's health probe.
            f"GRANT PROCESS, REPLICATION CLIENT ON *.* TO '{APP_USER}'@'%'",
        ]
        node.socket_sql(";\n".join(statements) + ";", "root")

    def _recover_position(self, node: GaleraNode) -> str | None:
        # In the namespace: the host's port 3306 may well be taken.
        position, _ = wsrep_recover(node, prefix=in_ns(self.topology, node.region))
        return position
