"""One MariaDB Galera node per region namespace, talking to its peers over the WAN.

The node config is :mod:`db.lab`'s (same accounts, durability and Galera settings)
adapted to the namespaces: every node uses the standard ports inside its own
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

# ruff: noqa: S603 - a root-only lab that runs its own fixed commands
from __future__ import annotations

import contextlib
import os
import re
import shutil
import signal
import subprocess
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pymysql

from db.lab import (
    ADMIN_PASSWORD,
    ADMIN_USER,
    APP_DATABASE,
    APP_PASSWORD,
    APP_USER,
    GALERA_PROVIDER,
    SYNCED,
    LabError,
    ensure_installed,
)
from regions.netns import in_ns
from regions.topology import GCOMM_PORT, IST_PORT, MYSQL_PORT, REGIONS, SST_PORT, Topology

STATUS_KEYS = (
    "wsrep_cluster_status",
    "wsrep_ready",
    "wsrep_local_state",
    "wsrep_local_state_comment",
    "wsrep_cluster_size",
    "wsrep_last_committed",
    "wsrep_connected",
)
_INT_KEYS = frozenset({"wsrep_local_state", "wsrep_cluster_size", "wsrep_last_committed"})
_POSITION_RE = re.compile(r"WSREP: Recovered position:\s*([0-9a-f-]{36}:-?\d+)")
_NIL_UUID = "00000000-0000-0000-0000-000000000000"

WAN_EVS = {
    "keepalive_period": "PT1S",
    "suspect_timeout": "PT5S",
    "inactive_timeout": "PT10S",
    "install_timeout": "PT10S",
    "join_retrans_period": "PT1S",
    "send_window": "512",
    "user_send_window": "512",
}


def _binary(name: str) -> str:
    found = shutil.which(name)
    if found:
        return found
    for folder in ("/usr/sbin", "/usr/bin", "/sbin"):
        if Path(folder, name).exists():
            return str(Path(folder, name))
    raise LabError(f"{name} not found")


def tail(path: Path, lines: int = 30) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError as exc:
        return f"(no log at {path}: {exc})"


@dataclass
class Node:
    region: str
    home: Path
    proc: subprocess.Popen[bytes] | None = None
    log_offset: int = 0

    @property
    def datadir(self) -> Path:
        return self.home / "data"

    @property
    def socket(self) -> Path:
        return self.home / "mariadbd.sock"

    @property
    def error_log(self) -> Path:
        return self.home / "error.log"

    @property
    def cnf(self) -> Path:
        return self.home / "my.cnf"

    @property
    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None


class RegionGalera:
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
        self.evs = {**WAN_EVS, **(evs or {})}
        self.buffer_pool_size = buffer_pool_size
        self.gcache_size = gcache_size
        self.timeout = timeout
        self.nodes = {r: Node(r, base_dir / f"node-{r}") for r in REGIONS}
        self.timings: dict[str, float] = {}

    # ------------------------------------------------------------------ addresses
    def host_dsn(self, region: str, admin: bool = False) -> str:
        """URL the *host* uses to reach a node directly (over its veth, no WAN delay)."""
        user, password = (ADMIN_USER, ADMIN_PASSWORD) if admin else (APP_USER, APP_PASSWORD)
        host = self.topology.ns_ip(region)
        return f"mysql+pymysql://{user}:{password}@{host}:{MYSQL_PORT}/{APP_DATABASE}"

    def app_dsn(self, app_region: str, member: str) -> str:
        """URL an app in ``app_region`` uses for ``member``: local socket-near or over the WAN."""
        host = "127.0.0.1" if member == app_region else self.topology.identity(member)
        return f"mysql+pymysql://{APP_USER}:{APP_PASSWORD}@{host}:{MYSQL_PORT}/{APP_DATABASE}"

    def cluster_env(self, app_region: str) -> str:
        return ",".join(f"{m}={self.app_dsn(app_region, m)}" for m in REGIONS)

    def connect(self, region: str, *, admin: bool = True, **kwargs: Any) -> pymysql.Connection:
        params: dict[str, Any] = {
            "host": self.topology.ns_ip(region),
            "port": MYSQL_PORT,
            "user": ADMIN_USER if admin else APP_USER,
            "password": ADMIN_PASSWORD if admin else APP_PASSWORD,
            "database": APP_DATABASE,
            "connect_timeout": 3,
            "read_timeout": 30,
            "write_timeout": 30,
            "autocommit": True,
        }
        params.update(kwargs)
        return pymysql.connect(**params)

    # ------------------------------------------------------------------ lifecycle
    def start(self) -> None:
        ensure_installed()
        started = time.monotonic()
        self._prepare()
        for node in self.nodes.values():
            self._install_db(node)
        first = self.nodes[REGIONS[0]]
        self._spawn(first, ["--wsrep-new-cluster"])
        self._wait_socket(first)
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
        position = self._recover_position(node)
        extra = [f"--wsrep-start-position={position}"] if position else []
        self._spawn(node, extra)
        self.wait(
            [region],
            lambda s: _synced_primary(s[region]),
            f"node {region} to rejoin and reach Synced",
            timeout,
        )
        self.timings[f"restart_{region}"] = time.monotonic() - t0
        return self.join_method(region)

    def pid(self, region: str) -> int | None:
        node = self.nodes[region]
        return node.proc.pid if node.alive and node.proc else None

    # ------------------------------------------------------------------ status
    def status(self, region: str) -> dict[str, Any] | None:
        if not self.nodes[region].alive:
            return None
        try:
            conn = self.connect(region, connect_timeout=2, read_timeout=5, write_timeout=5)
        except pymysql.MySQLError:
            return None
        try:
            with conn.cursor() as cur:
                cur.execute(
                    "SHOW GLOBAL STATUS WHERE Variable_name IN ("
                    + ",".join(["%s"] * len(STATUS_KEYS))
                    + ")",
                    STATUS_KEYS,
                )
                rows = dict(cur.fetchall())
        except pymysql.MySQLError:
            return None
        finally:
            conn.close()
        return {
            k: (int(rows[k]) if k in _INT_KEYS and rows.get(k) is not None else rows.get(k))
            for k in STATUS_KEYS
        }

    def statuses(self) -> dict[str, dict[str, Any] | None]:
        return {r: self.status(r) for r in REGIONS}

    def wait(
        self,
        regions: Iterable[str],
        done: Callable[[dict[str, dict[str, Any] | None]], bool],
        what: str,
        timeout: float | None = None,
    ) -> dict[str, dict[str, Any] | None]:
        wanted = list(regions)
        deadline = time.monotonic() + (self.timeout if timeout is None else timeout)
        while True:
            for region in wanted:
                node = self.nodes[region]
                if node.proc is not None and node.proc.poll() is not None:
                    raise LabError(
                        f"node {region} exited with {node.proc.returncode}; "
                        f"log tail:\n{tail(node.error_log)}"
                    )
            statuses = {r: self.status(r) for r in wanted}
            if done(statuses):
                return statuses
            if time.monotonic() > deadline:
                logs = "\n".join(
                    f"--- {r}: {statuses[r]}\n{tail(self.nodes[r].error_log)}" for r in wanted
                )
                raise LabError(f"timed out waiting for {what}\n{logs}")
            time.sleep(0.25)

    def wait_synced(self, regions: Iterable[str], size: int, timeout: float | None = None) -> None:
        wanted = list(regions)
        self.wait(
            wanted,
            lambda s: all(
                _synced_primary(s[r]) and s[r]["wsrep_cluster_size"] == size for r in wanted
            ),
            f"{wanted} Synced in a Primary component of {size}",
            timeout,
        )

    def join_method(self, region: str) -> str | None:
        node = self.nodes[region]
        try:
            with node.error_log.open("rb") as fh:
                fh.seek(node.log_offset)
                text = fh.read().decode(errors="replace")
        except OSError:
            return None
        # MariaDB logs "SST received" after an IST too; the rsync script says which it was.
        if "rsync SST completed on joiner" in text:
            return "SST"
        if "rsync IST completed on joiner" in text or "IST received" in text:
            return "IST"
        return None

    # ------------------------------------------------------------------ internals
    def _prepare(self) -> None:
        self.base_dir.mkdir(parents=True, exist_ok=True)
        for node in self.nodes.values():
            (node.home / "tmp").mkdir(parents=True, exist_ok=True)
            node.datadir.mkdir(exist_ok=True)
            node.cnf.write_text(self._config(node))
        for path in [self.base_dir, *self.base_dir.rglob("*")]:
            shutil.chown(path, "mysql", "mysql")
        self.base_dir.chmod(0o750)

    def _config(self, node: Node) -> str:
        t, region = self.topology, node.region
        peers = ",".join(f"{t.identity(r)}:{GCOMM_PORT}" for r in REGIONS if r != region)
        options = ";".join(
            [
                f"gmcast.listen_addr=tcp://0.0.0.0:{GCOMM_PORT}",
                f"gmcast.segment={REGIONS.index(region)}",
                f"ist.recv_addr={t.identity(region)}:{IST_PORT}",
                f"ist.recv_bind=0.0.0.0:{IST_PORT}",
                f"gcache.size={self.gcache_size}",
                *(f"evs.{k}={v}" for k, v in self.evs.items()),
            ]
        )
        return "\n".join(
            [
                "[mariadbd]",
                "user=mysql",
                f"datadir={node.datadir}",
                f"socket={node.socket}",
                f"pid-file={node.home / 'mariadbd.pid'}",
                f"log-error={node.error_log}",
                f"tmpdir={node.home / 'tmp'}",
                f"port={MYSQL_PORT}",
                "bind-address=0.0.0.0",
                "skip-name-resolve",
                "max_connections=300",
                f"innodb_buffer_pool_size={self.buffer_pool_size}",
                "innodb_log_file_size=32M",
                # Jepsen lost committed writes with 0/2; the ledger needs durable commits.
                "innodb_flush_log_at_trx_commit=1",
                "innodb_autoinc_lock_mode=2",
                "binlog_format=ROW",
                "default_storage_engine=InnoDB",
                "character_set_server=utf8mb4",
                "collation_server=utf8mb4_unicode_ci",
                "wsrep_on=ON",
                f"wsrep_provider={GALERA_PROVIDER}",
                f"wsrep_cluster_name=loyalty-regions-{t.prefix}",
                f"wsrep_cluster_address=gcomm://{peers}",
                f"wsrep_node_name={region}",
                f"wsrep_node_address={t.identity(region)}",
                f"wsrep_node_incoming_address={t.identity(region)}:{MYSQL_PORT}",
                f'wsrep_provider_options="{options}"',
                "wsrep_sst_method=rsync",
                f"wsrep_sst_receive_address={t.identity(region)}:{SST_PORT}",
                "",
            ]
        )

    def _install_db(self, node: Node) -> None:
        result = subprocess.run(
            [
                _binary("mariadb-install-db"),
                f"--defaults-file={node.cnf}",
                "--user=mysql",
                "--skip-test-db",
                "--auth-root-authentication-method=socket",
            ],
            capture_output=True,
            text=True,
            check=False,
            timeout=300,
        )
        if result.returncode != 0:
            raise LabError(f"mariadb-install-db ({node.region}) failed:\n{result.stderr[-2000:]}")

    def _spawn(self, node: Node, extra: list[str]) -> None:
        node.log_offset = node.error_log.stat().st_size if node.error_log.exists() else 0
        with (node.home / "console.log").open("ab") as console:
            node.proc = subprocess.Popen(
                [
                    *in_ns(self.topology, node.region),
                    _binary("mariadbd"),
                    f"--defaults-file={node.cnf}",
                    *extra,
                ],
                stdin=subprocess.DEVNULL,
                stdout=console,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )

    def _killpg(self, node: Node) -> None:
        if node.proc is None:
            return
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(node.proc.pid, signal.SIGKILL)
        with contextlib.suppress(subprocess.TimeoutExpired):
            node.proc.wait(timeout=30)

    def _wait_socket(self, node: Node) -> None:
        deadline = time.monotonic() + self.timeout
        while time.monotonic() < deadline:
            if not node.alive:
                raise LabError(f"node {node.region} died:\n{tail(node.error_log)}")
            if self._socket_sql(node, "SELECT 1", check=False).returncode == 0:
                return
            time.sleep(0.2)
        raise LabError(f"node {node.region} did not start:\n{tail(node.error_log)}")

    def _socket_sql(self, node: Node, sql: str, check: bool = True) -> subprocess.CompletedProcess:
        result = subprocess.run(
            [
                _binary("mariadb"),
                "--no-defaults",
                f"--socket={node.socket}",
                "--user=root",
                "--batch",
                "-e",
                sql,
            ],
            capture_output=True,
            text=True,
            check=False,
            timeout=60,
        )
        if check and result.returncode != 0:
            raise LabError(f"SQL on {node.region} failed: {result.stderr.strip()}")
        return result

    def _create_accounts(self, node: Node) -> None:
        # Hosts are '%': the host reaches nodes from <net>.<r>.1, apps from 127.0.0.1 or
        # (other regions, through the forwarder) from the hub's veth address.
        statements = [
            f"CREATE USER IF NOT EXISTS '{ADMIN_USER}'@'%' IDENTIFIED BY '{ADMIN_PASSWORD}'",
            f"GRANT ALL PRIVILEGES ON *.* TO '{ADMIN_USER}'@'%' WITH GRANT OPTION",
            f"CREATE DATABASE IF NOT EXISTS {APP_DATABASE} "
            "CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci",
            f"CREATE USER IF NOT EXISTS '{APP_USER}'@'%' IDENTIFIED BY '{APP_PASSWORD}'",
            f"GRANT ALL PRIVILEGES ON {APP_DATABASE}.* TO '{APP_USER}'@'%'",
            # wsrep status for the app's health probe.
            f"GRANT PROCESS, REPLICATION CLIENT ON *.* TO '{APP_USER}'@'%'",
        ]
        self._socket_sql(node, ";\n".join(statements) + ";")

    def _recover_position(self, node: Node) -> str | None:
        log = node.home / "recover.log"
        with contextlib.suppress(FileNotFoundError):
            log.unlink()
        result = subprocess.run(
            [
                # In the namespace: the host's port 3306 may well be taken.
                *in_ns(self.topology, node.region),
                _binary("mariadbd"),
                f"--defaults-file={node.cnf}",
                "--wsrep-recover",
                f"--log-error={log}",
            ],
            capture_output=True,
            text=True,
            check=False,
            timeout=300,
        )
        text = (log.read_text(errors="replace") if log.exists() else "") + result.stderr
        found = _POSITION_RE.findall(text)
        if found:
            uuid, seqno = found[-1].rsplit(":", 1)
            if uuid != _NIL_UUID and int(seqno) >= 0:
                return found[-1]
        return None


def _synced_primary(s: dict[str, Any] | None) -> bool:
    return (
        s is not None
        and s["wsrep_local_state"] == SYNCED
        and s["wsrep_cluster_status"] == "Primary"
        and s["wsrep_ready"] == "ON"
    )
