"""A real three-node MariaDB Galera cluster on one host, for tests and fault drills.

The lab exists so that failover, certification conflicts and crash recovery are
tested against the database we ship on, not a mock: each node is a separate
``mariadbd`` with its own datadir, ports and error log, started as a child process
in its own session so a test can ``SIGKILL`` it exactly like a crash.

Ports: a lab with port base ``B`` uses the 12 ports ``B .. B+11``: client ports
``B+i``, Galera group communication ``B+3+i``, IST ``B+6+i`` and rsync SST
``B+9+i`` for node ``i``. Two labs coexist when their bases are 12 or more apart.

Usage::

    with GaleraLab() as lab:
        engine = create_engine(lab.dsn(0))

or ``python -m db.lab up`` / ``python -m db.lab check``.
"""

from __future__ import annotations

import argparse
import atexit
import contextlib
import getpass
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import Any, Self, TypeVar

import pymysql

REGIONS: tuple[str, ...] = ("us", "ie", "in")
DEFAULT_PORT_BASE = 33061
PORTS_PER_LAB = 12
GALERA_PROVIDER = Path("/usr/lib/galera/libgalera_smm.so")
APT_PACKAGES = ("mariadb-server", "galera-4", "rsync", "mariadb-backup", "socat")

APP_DATABASE = "loyalty"
APP_USER = "loyalty"
APP_PASSWORD = "loyalty-lab"  # noqa: S105 - a throwaway lab bound to 127.0.0.1
ADMIN_USER = "lab_admin"
ADMIN_PASSWORD = "lab-admin"  # noqa: S105 - a throwaway lab bound to 127.0.0.1

SYNCED = 4
_STATUS_KEYS = (
    "wsrep_cluster_status",
    "wsrep_ready",
    "wsrep_local_state",
    "wsrep_cluster_size",
    "wsrep_last_committed",
)
_INT_KEYS = frozenset({"wsrep_local_state", "wsrep_cluster_size", "wsrep_last_committed"})
_POSITION_RE = re.compile(r"WSREP: Recovered position:\s*([0-9a-f-]{36}:-?\d+)")
_NIL_UUID = "00000000-0000-0000-0000-000000000000"
# Unix socket paths longer than this are silently truncated by the kernel.
_MAX_SOCKET_PATH = 100


class LabError(RuntimeError):
    """The lab could not reach the state asked for; the message says why."""


def find_binary(name: str) -> str | None:
    """Find a server binary even when /usr/sbin is not on PATH (non-login shells)."""
    found = shutil.which(name)
    if found:
        return found
    for folder in ("/usr/sbin", "/usr/bin", "/sbin"):
        candidate = Path(folder, name)
        if candidate.exists():
            return str(candidate)
    return None


def _missing_tools() -> list[str]:
    missing = [
        name
        for name in ("mariadbd", "mariadb-install-db", "mariadb", "rsync")
        if find_binary(name) is None
    ]
    if not GALERA_PROVIDER.exists():
        missing.append(str(GALERA_PROVIDER))
    return missing


def ensure_installed() -> None:
    """Install MariaDB + Galera with apt when missing.

    The project's own files must install what they need (a fresh machine or CI has
    nothing installed by hand), so the lab installs its server rather than assuming one.
    """
    if not _missing_tools():
        return
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    install = [
        "apt-get",
        "install",
        "-y",
        "-o",
        "DPkg::Lock::Timeout=600",
        *APT_PACKAGES,
    ]
    result = subprocess.run(install, env=env, capture_output=True, text=True, check=False)
    if result.returncode != 0:
        # A fresh machine may have no package lists yet: refresh once and retry.
        subprocess.run(["apt-get", "update"], env=env, capture_output=True, check=False)
        result = subprocess.run(install, env=env, capture_output=True, text=True, check=False)
    missing = _missing_tools()
    if result.returncode != 0 or missing:
        tail = "\n".join((result.stdout + result.stderr).splitlines()[-20:])
        raise LabError(
            f"could not install MariaDB Galera ({' '.join(install)} exited "
            f"{result.returncode}; still missing: {missing or 'nothing'}):\n{tail}"
        )


def tail(path: Path, lines: int = 25) -> str:
    try:
        text = path.read_text(errors="replace")
    except OSError as exc:
        return f"(no log at {path}: {exc})"
    return "\n".join(text.splitlines()[-lines:])


def _pid_alive(pid: int) -> bool:
    """True for a live process; a zombie (killed, not yet reaped) counts as dead."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    fields = stat.rsplit(")", 1)[-1].split()
    return bool(fields) and fields[0] not in ("Z", "X")


def _proc_session(pid: int) -> int | None:
    """Session id of a process, from /proc (field 6 of stat, after the command name)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = stat.rsplit(")", 1)[-1].split()
    return int(fields[3]) if len(fields) > 3 else None


def proc_cmdline(pid: int) -> str:
    try:
        return (
            Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        )
    except OSError:
        return ""


def _all_pids() -> list[int]:
    return [int(name) for name in os.listdir("/proc") if name.isdigit()]


def _kill_quietly(pid: int, sig: int = signal.SIGKILL) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.kill(pid, sig)


def _bind_error(port: int) -> OSError | None:
    """Whether mariadbd/Galera could bind the port (they too set SO_REUSEADDR)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind(("127.0.0.1", port))
        except OSError as exc:
            return exc
    return None


def _listening(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.5):
            return True
    except OSError:
        return False


def _port_holders(port: int) -> str:
    result = subprocess.run(
        ["ss", "-tanp"], capture_output=True, text=True, check=False, timeout=10
    )
    lines = [line for line in result.stdout.splitlines() if f":{port} " in line]
    return "\n".join(lines[:5]) or "(ss shows no socket on it)"


def _reserve_ports(first: int, last: int) -> None:
    """Keep the kernel from lending the lab's ports to outgoing connections (best effort)."""
    path = Path("/proc/sys/net/ipv4/ip_local_reserved_ports")
    with contextlib.suppress(OSError):
        current = [item for item in path.read_text().strip().split(",") if item]
        for item in current:
            low, _, high = item.partition("-")
            if int(low) <= first and last <= int(high or low):
                return
        path.write_text(",".join([*current, f"{first}-{last}"]) + "\n")


# ---------------------------------------------------------------------- shared pieces
# regions/galera.py runs the same nodes inside network namespaces (``make regions``).
# Everything about one node that does not depend on where it runs lives here, once, so
# the two labs cannot drift apart: files, my.cnf, start, recovery, status, waiting.


def require_binary(name: str) -> str:
    found = find_binary(name)
    if found is None:
        raise LabError(f"{name} not found")
    return found


class StartStop:
    """``with lab:`` starts the lab and always stops it, also when the body raised."""

    def start(self) -> None:
        raise NotImplementedError

    def stop(self) -> None:
        raise NotImplementedError

    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()


@dataclass
class GaleraNode:
    """One ``mariadbd``: its region, files and (when running) its process."""

    region: str
    home: Path
    proc: subprocess.Popen[bytes] | None = None
    # Size of the error log at the last start, so join_method() reads only this start.
    log_offset: int = 0

    @property
    def name(self) -> str:
        """How messages name the node."""
        return f"node {self.region}"

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
    def recover_log(self) -> Path:
        return self.home / "recover.log"

    @property
    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def install_db(self, user: str) -> None:
        cmd = [
            require_binary("mariadb-install-db"),
            f"--defaults-file={self.cnf}",
            f"--user={user}",
            "--skip-test-db",
            "--auth-root-authentication-method=socket",
        ]
        result = subprocess.run(cmd, capture_output=True, text=True, check=False, timeout=300)
        if result.returncode != 0:
            output = "\n".join((result.stdout + result.stderr).splitlines()[-20:])
            raise LabError(f"mariadb-install-db failed for {self.name}:\n{output}")

    def spawn(self, extra: Sequence[str], prefix: Sequence[str] = ()) -> None:
        """Start ``mariadbd`` (behind ``prefix``, e.g. ``ip netns exec``) in its own session.

        Its own session, so a Ctrl-C in the terminal does not reach the node (only the lab
        decides when a node dies), and its pid names a group with any SST helper it starts.
        """
        server = require_binary("mariadbd")
        self.log_offset = self.error_log.stat().st_size if self.error_log.exists() else 0
        with (self.home / "console.log").open("ab") as console:
            self.proc = subprocess.Popen(
                [*prefix, server, f"--defaults-file={self.cnf}", *extra],
                stdin=subprocess.DEVNULL,
                stdout=console,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )

    def check_alive(self) -> None:
        """Fail with the error log when the node exited (a node that never started is fine)."""
        if self.proc is not None and self.proc.poll() is not None:
            raise LabError(
                f"{self.name} exited with code {self.proc.returncode}; "
                f"error log tail ({self.error_log}):\n{tail(self.error_log)}"
            )

    def socket_sql(
        self, sql: str, user: str, check: bool = True
    ) -> subprocess.CompletedProcess[str]:
        """Run SQL over the unix socket as ``user``: works before any account exists."""
        result = subprocess.run(
            [
                require_binary("mariadb"),
                "--no-defaults",
                f"--socket={self.socket}",
                f"--user={user}",
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
            raise LabError(f"SQL on {self.name} failed: {result.stderr.strip()}")
        return result

    def wait_socket_sql(self, user: str, timeout: float) -> None:
        """Wait until the bootstrap node answers SQL on its socket (before accounts exist)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            self.check_alive()
            if self.socket_sql("SELECT 1", user, check=False).returncode == 0:
                return
            time.sleep(0.2)
        raise LabError(
            f"{self.name} did not accept connections within {timeout:.0f}s; "
            f"error log tail:\n{tail(self.error_log)}"
        )

    def wsrep_recover(self, prefix: Sequence[str] = ()) -> tuple[str | None, int]:
        """``uuid:seqno`` of the last transaction the node committed, read from InnoDB.

        After SIGKILL grastate.dat says ``seqno: -1``; ``--wsrep-recover`` reads the real
        position so the node can ask for just the missing writesets (IST). Returns the
        position (None when there is none) and mariadbd's exit code.
        """
        log = self.recover_log
        with contextlib.suppress(FileNotFoundError):
            log.unlink()
        result = subprocess.run(
            [
                *prefix,
                require_binary("mariadbd"),
                f"--defaults-file={self.cnf}",
                "--wsrep-recover",
                f"--log-error={log}",
            ],
            capture_output=True,
            text=True,
            check=False,
            timeout=300,
        )
        text = log.read_text(errors="replace") if log.exists() else ""
        found = _POSITION_RE.findall(text + result.stdout + result.stderr)
        if found:
            uuid, seqno = found[-1].rsplit(":", 1)
            if uuid != _NIL_UUID and int(seqno) >= 0:
                return found[-1], result.returncode
        return None, result.returncode

    def join_method(self) -> str | None:
        """How the node got its state at its last start: ``"IST"``, ``"SST"`` or None."""
        try:
            with self.error_log.open("rb") as fh:
                fh.seek(self.log_offset)
                text = fh.read().decode(errors="replace")
        except OSError:
            return None
        # MariaDB logs "SST received" after an IST too; the rsync script says which it was.
        if "rsync SST completed on joiner" in text:
            return "SST"
        if "rsync IST completed on joiner" in text or "IST received" in text:
            return "IST"
        return None


def start_position(position: str | None) -> list[str]:
    """mariadbd arguments to start from a recovered ``uuid:seqno``, so the node can catch up
    by IST; with no position there are none and the node gets a full copy (SST)."""
    return [f"--wsrep-start-position={position}"] if position else []


def render_config(
    node: GaleraNode,
    *,
    user: str,
    port: int,
    bind_address: str,
    cluster_name: str,
    peers: Sequence[str],
    node_address: str,
    sst_port: int,
    network_options: Sequence[str],
    gcache_size: str,
    evs: Mapping[str, str],
    buffer_pool_size: str,
) -> str:
    """The node's my.cnf. Only addresses differ between the labs; ``network_options`` are
    the Galera provider options about them (gmcast/ist listen and advertise addresses)."""
    provider_options = ";".join(
        [
            *network_options,
            f"gcache.size={gcache_size}",
            *(f"evs.{key}={value}" for key, value in evs.items()),
        ]
    )
    lines = [
        "[mariadbd]",
        f"user={user}",
        f"datadir={node.datadir}",
        f"socket={node.socket}",
        f"pid-file={node.home / 'mariadbd.pid'}",
        f"log-error={node.error_log}",
        # A private tmpdir: parallel install-db runs collided on temp tables in /tmp.
        f"tmpdir={node.home / 'tmp'}",
        f"port={port}",
        f"bind-address={bind_address}",
        "skip-name-resolve",
        "max_connections=300",
        f"innodb_buffer_pool_size={buffer_pool_size}",
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
        f"wsrep_cluster_name={cluster_name}",
        f"wsrep_cluster_address=gcomm://{','.join(peers)}",
        f"wsrep_node_name={node.region}",
        f"wsrep_node_address={node_address}",
        f"wsrep_node_incoming_address={node_address}:{port}",
        f'wsrep_provider_options="{provider_options}"',
        "wsrep_sst_method=rsync",
        f"wsrep_sst_receive_address={node_address}:{sst_port}",
        "",
    ]
    return "\n".join(lines)


def chown_tree(root: Path, user: str) -> None:
    """Hand the lab dir to the server's user (mariadbd runs as it when we are root)."""
    for path in [root, *root.rglob("*")]:
        shutil.chown(path, user, user)
    root.chmod(0o750)


def account_statements(admin_hosts: Sequence[str], app_hosts: Sequence[str]) -> list[str]:
    """SQL for the lab's all-privileges admin, the app database and the app's user."""
    admin = f"IDENTIFIED BY '{ADMIN_PASSWORD}'"
    app = f"IDENTIFIED BY '{APP_PASSWORD}'"
    return [
        *(f"CREATE USER IF NOT EXISTS '{ADMIN_USER}'@'{host}' {admin}" for host in admin_hosts),
        *(
            f"GRANT ALL PRIVILEGES ON *.* TO '{ADMIN_USER}'@'{host}' WITH GRANT OPTION"
            for host in admin_hosts
        ),
        f"CREATE DATABASE IF NOT EXISTS {APP_DATABASE} "
        "CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci",
        *(f"CREATE USER IF NOT EXISTS '{APP_USER}'@'{host}' {app}" for host in app_hosts),
        *(
            f"GRANT ALL PRIVILEGES ON {APP_DATABASE}.* TO '{APP_USER}'@'{host}'"
            for host in app_hosts
        ),
    ]


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


@dataclass(kw_only=True)
class _Node(GaleraNode):
    """A node of this lab: its own ports on 127.0.0.1 and the sessions it started."""

    index: int
    port: int
    gmcast_port: int
    ist_port: int
    sst_port: int
    sessions: set[int] = field(default_factory=set)
    paused: bool = False  # SIGSTOPped by pause(): alive, but answers nothing

    @property
    def name(self) -> str:
        return f"node {self.index} ({self.region})"


class GaleraLab(StartStop):
    """Three Galera nodes, regions ``us``, ``ie``, ``in`` (indexes 0, 1, 2) on 127.0.0.1.

    The short ``evs`` timeouts make a killed node leave the group in about 2 s instead
    of the default ~5 s, so fault tests stay quick. Galera constrains them: keepalive must
    stay below a third of the suspect timeout (or the node refuses to start), and the
    install timeout defaults to half the inactive timeout, which with these values equals
    the 1 s join retransmit period. Then any retransmitted JOIN makes the view install time
    out, and every membership change thrashes through non-Primary views for 20-60 s. So
    install_timeout defaults to inactive_timeout and join_retrans_period to 0.3 s.
    """

    def __init__(
        self,
        base_dir: str | os.PathLike[str] | None = None,
        port_base: int | None = None,
        *,
        keepalive_period: str = "PT0.3S",
        suspect_timeout: str = "PT1S",
        inactive_timeout: str = "PT2S",
        install_timeout: str | None = None,
        join_retrans_period: str = "PT0.3S",
        buffer_pool_size: str = "64M",
        gcache_size: str = "64M",
        keep: bool = False,
        timeout: float = 120.0,
    ) -> None:
        if port_base is None:
            port_base = int(os.environ.get("LAB_PORT_BASE") or DEFAULT_PORT_BASE)
        self.port_base = port_base
        self._owns_dir = base_dir is None
        self.base_dir = Path(base_dir) if base_dir is not None else None
        self.keep = keep
        self.timeout = timeout
        self.evs = {
            "keepalive_period": keepalive_period,
            "suspect_timeout": suspect_timeout,
            "inactive_timeout": inactive_timeout,
            "install_timeout": install_timeout or inactive_timeout,
            "join_retrans_period": join_retrans_period,
        }
        self.buffer_pool_size = buffer_pool_size
        self.gcache_size = gcache_size
        self.timings: dict[str, float] = {}
        self._nodes: list[_Node] = []
        self._started = False
        self._lock = threading.Lock()
        self._run_as = "mysql" if os.geteuid() == 0 else getpass.getuser()
        self._state_file = Path(tempfile.gettempdir()) / f"galera-lab-{port_base}.json"

    # ------------------------------------------------------------------ addresses
    @property
    def regions(self) -> tuple[str, ...]:
        return REGIONS

    def port(self, i: int) -> int:
        """Client port of node ``i``."""
        return self.port_base + i

    def dsn(self, i: int) -> str:
        """SQLAlchemy URL of node ``i`` for the application user."""
        return f"mysql+pymysql://{APP_USER}:{APP_PASSWORD}@127.0.0.1:{self.port(i)}/{APP_DATABASE}"

    def members_env(self) -> str:
        """``us=DSN,ie=DSN,in=DSN``: the cluster members as the app reads them from env."""
        return ",".join(f"{region}={self.dsn(i)}" for i, region in enumerate(REGIONS))

    def error_log(self, i: int) -> Path:
        """Path of node ``i``'s error log (appended to across restarts)."""
        return self._node(i).error_log

    def is_running(self, i: int) -> bool:
        return bool(self._nodes) and self._node(i).alive

    def pid(self, i: int) -> int | None:
        node = self._node(i)
        return node.proc.pid if node.alive and node.proc else None

    def admin_connect(self, i: int, **kwargs: Any) -> pymysql.connections.Connection:
        """A PyMySQL connection to node ``i`` as the lab's all-privileges user."""
        return connect_node("127.0.0.1", self.port(i), **kwargs)

    # ------------------------------------------------------------------ lifecycle
    def start(self) -> None:
        """Create, bootstrap and join the three nodes, then the app database and users."""
        if self._started:
            raise LabError("lab already started")
        ensure_installed()
        started = time.monotonic()
        try:
            self._prepare()
            with ThreadPoolExecutor(max_workers=len(REGIONS)) as pool:
                list(pool.map(self._install_db, self._nodes))
            self.timings["start_install_db"] = time.monotonic() - started
            self._spawn(self._nodes[0], ["--wsrep-new-cluster"])
            self._nodes[0].wait_socket_sql(self._socket_user(), self.timeout)
            self._create_accounts(self._nodes[0])
            self.timings["start_bootstrap"] = time.monotonic() - started
            # Join one at a time: a second joiner would only wait for the donor anyway,
            # and sequential joins keep rsync SST from fighting for two cores.
            for node in self._nodes[1:]:
                self._spawn(node, [])
                self._wait_synced([node.index], size=node.index + 1)
            self._wait_synced(range(len(REGIONS)), size=len(REGIONS))
        except BaseException:
            self._teardown(keep=self.keep)
            raise
        self._started = True
        self.timings["start"] = time.monotonic() - started

    def stop(self, keep: bool | None = None) -> None:
        """Shut every node down cleanly (SIGKILL after a grace period), remove the files."""
        self._teardown(keep=self.keep if keep is None else keep)

    def kill(self, i: int) -> None:
        """SIGKILL node ``i``: a crash, with no chance to leave the group politely."""
        node = self._node(i)
        if not node.alive:
            raise LabError(f"node {i} ({node.region}) is not running")
        self._sigkill(node)

    def kill_all(self) -> None:
        """SIGKILL every running node at (nearly) the same moment: a whole-cluster crash."""
        nodes = [node for node in self._nodes if node.alive]
        for node in nodes:
            assert node.proc is not None
            _kill_quietly(node.proc.pid)
        for node in nodes:
            self._sigkill(node)

    def pause(self, i: int) -> None:
        """SIGSTOP node ``i``: a gray failure. Its sockets stay open and connections are
        accepted by the kernel, but nothing answers: no SQL, no group messages."""
        node = self._node(i)
        if not node.alive or node.proc is None:
            raise LabError(f"node {i} ({node.region}) is not running")
        os.kill(node.proc.pid, signal.SIGSTOP)
        node.paused = True

    def resume(self, i: int) -> None:
        """SIGCONT a paused node ``i``: it finds itself evicted and rejoins (IST)."""
        node = self._node(i)
        if node.proc is not None and node.alive:
            os.kill(node.proc.pid, signal.SIGCONT)
        node.paused = False

    def shutdown(self, i: int, timeout: float = 60.0) -> None:
        """Stop node ``i`` cleanly (SIGTERM): it leaves the group, the others keep quorum."""
        node = self._node(i)
        if node.alive:
            self._terminate([node], timeout)

    def restart(self, i: int, timeout: float | None = None) -> None:
        """Start a stopped or killed node from its recovered position so it rejoins by IST."""
        node = self._node(i)
        if node.alive:
            raise LabError(f"node {i} ({node.region}) is still running; kill it first")
        started = time.monotonic()
        self._reap(node)
        self._spawn(node, start_position(self._recover_position(node)))
        self._wait(
            [i],
            lambda s: synced_primary(s[i]),
            f"node {i} ({node.region}) to rejoin and reach Synced",
            timeout,
        )
        self.timings[f"restart_{i}"] = time.monotonic() - started

    def recover_all(self, timeout: float | None = None) -> None:
        """Bring the cluster back after every node crashed.

        Galera marks no node ``safe_to_bootstrap`` after a whole-cluster crash, so we
        do what an operator must: recover each node's last committed seqno, bootstrap
        the most advanced one (nothing committed is thrown away) and join the others.
        """
        live = [node.index for node in self._nodes if node.alive]
        if live:
            raise LabError(f"recover_all() needs every node down; still running: {live}")
        started = time.monotonic()
        for node in self._nodes:
            self._reap(node)
        with ThreadPoolExecutor(max_workers=len(self._nodes)) as pool:
            positions = list(pool.map(self._recover_position, self._nodes))
        seqnos = [int(p.rsplit(":", 1)[1]) if p else -1 for p in positions]
        leader = max(range(len(seqnos)), key=lambda i: (seqnos[i], -i))
        self._mark_safe_to_bootstrap(self._nodes[leader])
        first = start_position(positions[leader])
        self._spawn(self._nodes[leader], ["--wsrep-new-cluster", *first])
        self._wait_synced([leader], size=1, timeout=timeout)
        for node in self._nodes:
            if node.index == leader:
                continue
            self._spawn(node, start_position(positions[node.index]))
        self._wait_synced(range(len(self._nodes)), size=len(self._nodes), timeout=timeout)
        self.timings["recover_all"] = time.monotonic() - started

    def bootstrap_survivor(self, i: int, timeout: float | None = None) -> None:
        """Make a non-Primary survivor a one-node Primary component (``pc.bootstrap``).

        After two of three nodes crash the survivor has no quorum and answers 1047 to
        every query; only an operator can decide it holds the truth.
        """
        node = self._node(i)
        if not node.alive:
            raise LabError(f"node {i} ({node.region}) is not running")
        conn = self.admin_connect(i)
        try:
            with conn.cursor() as cur:
                cur.execute("SET GLOBAL wsrep_provider_options='pc.bootstrap=YES'")
        finally:
            conn.close()
        self._wait(
            [i],
            lambda s: (
                s[i] is not None
                and s[i]["wsrep_cluster_status"] == "Primary"
                and s[i]["wsrep_local_state"] == SYNCED
            ),
            f"node {i} ({node.region}) to become Primary after pc.bootstrap",
            timeout,
        )

    def heal(self, timeout: float | None = None) -> None:
        """Whatever faults a test left, get back to three Synced nodes (for fixtures)."""
        if not self._nodes:
            raise LabError("lab not started")
        for node in self._nodes:
            if node.paused:
                self.resume(node.index)
        live = [node.index for node in self._nodes if node.alive]
        if not live:
            self.recover_all(timeout)
            return
        statuses = {i: self.status(i) for i in live}
        if not any(s and s["wsrep_cluster_status"] == "Primary" for s in statuses.values()):
            best = max(live, key=lambda i: (statuses[i] or {}).get("wsrep_last_committed", -1))
            self.bootstrap_survivor(best, timeout)
        for node in self._nodes:
            if not node.alive:
                self.restart(node.index, timeout)
        self._wait_synced(range(len(self._nodes)), size=len(self._nodes), timeout=timeout)

    # ------------------------------------------------------------------ status
    def status(self, i: int) -> dict[str, Any] | None:
        """The node's wsrep health, or None when it is down or not accepting connections."""
        if not self._node(i).alive:
            return None
        return read_status(
            lambda: self.admin_connect(i, connect_timeout=1, read_timeout=3, write_timeout=3),
            _STATUS_KEYS,
        )

    def statuses(self) -> list[dict[str, Any] | None]:
        return [self.status(node.index) for node in self._nodes]

    def join_method(self, i: int) -> str | None:
        """How node ``i`` got its state at its last start: ``"IST"``, ``"SST"`` or None."""
        return self._node(i).join_method()

    # ------------------------------------------------------------------ internals
    def _node(self, i: int) -> _Node:
        if not self._nodes:
            raise LabError("lab not started")
        if not 0 <= i < len(self._nodes):
            raise LabError(f"no node {i}: nodes are 0..{len(self._nodes) - 1}")
        return self._nodes[i]

    def _prepare(self) -> None:
        self._reap_stale_lab()
        self._check_ports_free()
        if self.base_dir is None:
            self.base_dir = Path(tempfile.mkdtemp(prefix=f"galera-lab-{self.port_base}-"))
        self.base_dir.mkdir(parents=True, exist_ok=True)
        self._check_reachable_by_server(self.base_dir)
        b = self.port_base
        self._nodes = [
            _Node(
                index=i,
                region=region,
                port=b + i,
                gmcast_port=b + 3 + i,
                ist_port=b + 6 + i,
                sst_port=b + 9 + i,
                home=self.base_dir / f"node{i}-{region}",
            )
            for i, region in enumerate(REGIONS)
        ]
        for node in self._nodes:
            if len(str(node.socket)) > _MAX_SOCKET_PATH:
                raise LabError(f"socket path too long for a unix socket: {node.socket}")
            node.datadir.mkdir(parents=True, exist_ok=True)
            (node.home / "tmp").mkdir(exist_ok=True)
            node.cnf.write_text(self._config(node))
        self._chown_tree(self.base_dir)
        self._write_state()
        atexit.register(self._atexit)

    def _config(self, node: _Node) -> str:
        return render_config(
            node,
            user=self._run_as,
            port=node.port,
            bind_address="127.0.0.1",
            cluster_name=f"loyalty-lab-{self.port_base}",
            peers=[f"127.0.0.1:{n.gmcast_port}" for n in self._nodes],
            node_address="127.0.0.1",
            sst_port=node.sst_port,
            network_options=[
                f"gmcast.listen_addr=tcp://127.0.0.1:{node.gmcast_port}",
                f"ist.recv_addr=127.0.0.1:{node.ist_port}",
            ],
            gcache_size=self.gcache_size,
            evs=self.evs,
            buffer_pool_size=self.buffer_pool_size,
        )

    def _chown_tree(self, root: Path) -> None:
        if os.geteuid() == 0:
            chown_tree(root, self._run_as)

    def _check_reachable_by_server(self, path: Path) -> None:
        """The server runs as ``mysql``: every parent of the lab dir must let it through."""
        if os.geteuid() != 0:
            return
        for parent in path.resolve().parents:
            mode = parent.stat().st_mode
            if not mode & 0o001:
                raise LabError(
                    f"{parent} is not searchable by other users, so mariadbd (user "
                    f"{self._run_as}) cannot reach {path}; choose another --dir"
                )

    def _check_ports_free(self) -> None:
        """Fail fast on a port another server listens on; wait out borrowed ones.

        The default ports sit inside Linux's ephemeral range (32768-60999), so a client
        connection elsewhere on the machine can hold one of them for a moment as its
        local port. Reserving the range keeps that from happening again.
        """
        last = self.port_base + PORTS_PER_LAB - 1
        deadline = time.monotonic() + 15
        for port in range(self.port_base, last + 1):
            while (error := _bind_error(port)) is not None:
                if _listening(port) or time.monotonic() > deadline:
                    raise LabError(
                        f"port {port} is busy ({error}); a lab with port base "
                        f"{self.port_base} needs {self.port_base}..{last} free: set "
                        f"LAB_PORT_BASE (or --port-base) to another value\n{_port_holders(port)}"
                    )
                time.sleep(0.2)
        _reserve_ports(self.port_base, last)

    # The state file lets a later run clean up after a run that was SIGKILLed (no atexit).
    def _write_state(self) -> None:
        state = {
            "owner": os.getpid(),
            "base_dir": str(self.base_dir),
            "owns_dir": self._owns_dir,
            "pids": [node.proc.pid for node in self._nodes if node.proc is not None],
        }
        with contextlib.suppress(OSError):
            self._state_file.write_text(json.dumps(state))

    def _reap_stale_lab(self) -> None:
        try:
            state = json.loads(self._state_file.read_text())
        except (OSError, ValueError):
            return
        owner = int(state.get("owner", 0))
        base_dir = str(state.get("base_dir", ""))
        if owner and owner != os.getpid() and _pid_alive(owner):
            # Another live process owns a lab on these ports: never kill someone else's lab.
            return
        if base_dir:
            stale = [
                pid for pid in _all_pids() if pid != os.getpid() and base_dir in proc_cmdline(pid)
            ]
            for pid in stale:
                _kill_quietly(pid)
            deadline = time.monotonic() + 10
            while any(_pid_alive(pid) for pid in stale) and time.monotonic() < deadline:
                time.sleep(0.1)
            if state.get("owns_dir") and Path(base_dir).exists():
                shutil.rmtree(base_dir, ignore_errors=True)
        with contextlib.suppress(OSError):
            self._state_file.unlink()

    def _install_db(self, node: _Node) -> None:
        node.install_db(self._run_as)

    def _spawn(self, node: _Node, extra: Sequence[str]) -> None:
        node.spawn(extra)
        assert node.proc is not None
        node.sessions.add(node.proc.pid)
        self._write_state()

    def _socket_user(self) -> str:
        # unix_socket auth: the OS user that runs the lab is the server's superuser.
        return "root" if os.geteuid() == 0 else self._run_as

    def _create_accounts(self, node: _Node) -> None:
        statements = account_statements(
            admin_hosts=("127.0.0.1", "localhost"), app_hosts=("%", "localhost")
        )
        node.socket_sql(";\n".join(statements) + ";", self._socket_user())

    def _wait(
        self,
        indexes: Iterable[int],
        done: Callable[[dict[int, dict[str, Any] | None]], bool],
        what: str,
        timeout: float | None = None,
    ) -> None:
        nodes = {i: self._node(i) for i in indexes}
        limit = self.timeout if timeout is None else timeout
        wait_for(nodes, self.status, done, what, limit)

    def _wait_synced(self, indexes: Iterable[int], size: int, timeout: float | None = None) -> None:
        wanted = list(indexes)
        self._wait(
            wanted,
            lambda s: all(synced_primary(status, size) for status in s.values()),
            f"nodes {wanted} Synced in a Primary cluster of {size}",
            timeout,
        )

    def _recover_position(self, node: _Node) -> str | None:
        """The node's last committed ``uuid:seqno`` (see GaleraNode.wsrep_recover).

        When InnoDB has none, a clean shutdown's grastate.dat may still have it.
        """
        position, returncode = node.wsrep_recover()
        if position:
            return position
        grastate = self._read_grastate(node)
        if grastate.get("uuid", _NIL_UUID) != _NIL_UUID and int(grastate.get("seqno", -1)) >= 0:
            return f"{grastate['uuid']}:{grastate['seqno']}"
        if returncode != 0:
            raise LabError(
                f"mariadbd --wsrep-recover failed on node {node.index} "
                f"({returncode}):\n{tail(node.recover_log)}"
            )
        return None

    def _read_grastate(self, node: _Node) -> dict[str, str]:
        path = node.datadir / "grastate.dat"
        values: dict[str, str] = {}
        with contextlib.suppress(OSError):
            for line in path.read_text().splitlines():
                key, sep, value = line.partition(":")
                if sep and not key.startswith("#"):
                    values[key.strip()] = value.strip()
        return values

    def _mark_safe_to_bootstrap(self, node: _Node) -> None:
        path = node.datadir / "grastate.dat"
        if not path.exists():
            return
        text = path.read_text()
        text, count = re.subn(r"(?m)^safe_to_bootstrap:\s*\d+", "safe_to_bootstrap: 1", text)
        if count == 0:
            text = text.rstrip("\n") + "\nsafe_to_bootstrap: 1\n"
        # Rewriting in place keeps the file's owner (mysql).
        with path.open("w") as fh:
            fh.write(text)

    def _sigkill(self, node: _Node) -> None:
        if node.proc is None:
            return
        node.paused = False
        _kill_quietly(node.proc.pid)
        with contextlib.suppress(subprocess.TimeoutExpired):
            node.proc.wait(timeout=30)
        self._reap(node)

    def _terminate(self, nodes: list[_Node], timeout: float) -> None:
        for node in nodes:
            if node.alive and node.proc is not None:
                _kill_quietly(node.proc.pid, signal.SIGTERM)
                if node.paused:  # a stopped process acts on SIGTERM only once continued
                    _kill_quietly(node.proc.pid, signal.SIGCONT)
                    node.paused = False
        deadline = time.monotonic() + timeout
        for node in nodes:
            if node.proc is None:
                continue
            try:
                node.proc.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                _kill_quietly(node.proc.pid)
                node.proc.wait(timeout=30)
            self._reap(node)

    def _reap(self, node: _Node) -> None:
        """Kill what the node left behind (an rsync daemon from an SST, a shell script)."""
        if node.proc is not None and node.proc.poll() is None:
            return
        for session in node.sessions:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(session, signal.SIGKILL)
        if node.sessions:
            for pid in _all_pids():
                if _proc_session(pid) in node.sessions:
                    _kill_quietly(pid)
        node.sessions.clear()

    def _teardown(self, keep: bool) -> None:
        with self._lock:
            nodes = list(self._nodes)
            if nodes:
                self._terminate(nodes, timeout=60)
                for node in nodes:
                    self._reap(node)
            if self.base_dir is not None:
                leftovers = [
                    pid
                    for pid in _all_pids()
                    if pid != os.getpid() and str(self.base_dir) in proc_cmdline(pid)
                ]
                for pid in leftovers:
                    _kill_quietly(pid)
                if not keep and self.base_dir.exists():
                    shutil.rmtree(self.base_dir, ignore_errors=True)
            with contextlib.suppress(OSError):
                state = json.loads(self._state_file.read_text())
                if state.get("owner") == os.getpid():
                    self._state_file.unlink()
            atexit.unregister(self._atexit)
            self._started = False

    def _atexit(self) -> None:
        with contextlib.suppress(Exception):
            self._teardown(keep=self.keep)


# ---------------------------------------------------------------------- CLI
def _print_statuses(lab: GaleraLab) -> None:
    for i, region in enumerate(REGIONS):
        print(f"  node {i} {region:>2} :{lab.port(i)}  {lab.status(i)}")


def _cmd_up(args: argparse.Namespace) -> int:
    lab = GaleraLab(base_dir=args.dir, port_base=args.port_base, keep=args.keep)
    stop = threading.Event()

    def on_signal(signum: int, _frame: object) -> None:
        stop.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGHUP, on_signal)
    print(f"starting Galera lab in {args.dir or 'a temp dir'}...", file=sys.stderr)
    lab.start()
    try:
        print(f"started in {lab.timings['start']:.1f}s, dir {lab.base_dir}", file=sys.stderr)
        print(lab.members_env(), flush=True)
        print("Ctrl-C or SIGTERM to stop", file=sys.stderr, flush=True)
        while not stop.wait(1.0):
            pass
    except KeyboardInterrupt:
        pass
    finally:
        print("stopping Galera lab...", file=sys.stderr)
        lab.stop()
    return 0


def _cmd_check(args: argparse.Namespace) -> int:
    lab = GaleraLab(base_dir=args.dir, port_base=args.port_base, keep=args.keep)
    with lab:
        print(f"start: {lab.timings['start']:.1f}s")
        _print_statuses(lab)
        print(f"members: {lab.members_env()}")
        if args.faults:
            t0 = time.monotonic()
            lab.kill(1)
            lab.restart(1)
            print(f"kill(1)+restart(1): {time.monotonic() - t0:.1f}s via {lab.join_method(1)}")
            t0 = time.monotonic()
            lab.kill_all()
            lab.recover_all()
            print(f"kill_all+recover_all: {time.monotonic() - t0:.1f}s")
            _print_statuses(lab)
        t0 = time.monotonic()
    print(f"stop: {time.monotonic() - t0:.1f}s")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m db.lab", description=__doc__.split("\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    for name, helptext in (
        ("up", "start the lab, print the members env line, run until Ctrl-C/SIGTERM"),
        ("check", "start the lab, print statuses and timings, stop"),
    ):
        cmd = sub.add_parser(name, help=helptext)
        cmd.add_argument("--port-base", type=int, default=None)
        cmd.add_argument("--dir", default=None, help="lab directory (default: a temp dir)")
        cmd.add_argument("--keep", action="store_true", help="keep the directory on stop")
        if name == "check":
            cmd.add_argument(
                "--faults", action="store_true", help="also time kill/restart and recover_all"
            )
    args = parser.parse_args(argv)
    try:
        return _cmd_up(args) if args.command == "up" else _cmd_check(args)
    except LabError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
