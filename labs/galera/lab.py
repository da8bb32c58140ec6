"""A real three-node MariaDB Galera cluster on one host, for tests and fault drills.

The lab exists so that failover, certification conflicts and crash recovery are
tested against the database we ship on, not a mock: each node is a separate
``mariadbd`` with its own datadir, ports and error log (see ``labs.galera.config``
for the ports), started in its own session so a test can ``SIGKILL`` it exactly like
a crash.

Usage::

    with GaleraLab() as lab:
        engine = create_engine(lab.dsn(0))

or ``python -m labs.galera up`` / ``python -m labs.galera check``.
"""

from __future__ import annotations

import atexit
import contextlib
import getpass
import os
import shutil
import signal
import subprocess
import tempfile
import threading
import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pymysql

from labs.galera.config import (
    DEFAULT_PORT_BASE,
    PORTS_PER_LAB,
    REGIONS,
    Tuning,
    account_statements,
    chown_tree,
    node_url,
    render_config,
)
from labs.galera.install import ensure_installed
from labs.galera.node import GaleraNode
from labs.galera.recovery import (
    mark_safe_to_bootstrap,
    most_advanced,
    recover_position,
    start_position,
)
from labs.galera.status import (
    STATUS_KEYS,
    SYNCED,
    NodeWaits,
    connect_node,
    read_status,
)
from labs.proc import (
    LabError,
    StartStop,
    StateFile,
    bind_error,
    kill_mentioning,
    kill_quietly,
    kill_sessions,
    listening,
    pid_alive,
    port_holders,
    reserve_ports,
)

# Unix socket paths longer than this are silently truncated by the kernel.
_MAX_SOCKET_PATH = 100


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


class GaleraLab(StartStop, NodeWaits[int]):
    """Three Galera nodes, regions ``us``, ``ie``, ``in`` (indexes 0, 1, 2) on 127.0.0.1.

    Short ``evs`` timeouts make a killed or frozen node leave the group in about 2.3 s
    instead of the default ~5 s, so fault tests stay quick. Galera constrains them:
    keepalive must stay below a third of the suspect timeout (or the node refuses to
    start), and the install timeout defaults to half the inactive timeout, which with
    short values comes close to the join retransmit period; then any retransmitted JOIN
    makes the view install time out, and every membership change thrashes through
    non-Primary views for 20-60 s. So install_timeout defaults to inactive_timeout and
    join_retrans_period to 0.3 s.

    Why a 1.5 s suspect timeout and not 1 s: a node that resumes after a freeze (SIGSTOP,
    a long GC-like stall) finds its group connections closed and needs about a second to
    reconnect; with 1 s it suspects the healthy nodes meanwhile, its join messages split
    them, and both survivors fell to one-node non-Primary views for 0.3-0.9 s on every
    resume (4 of 4 long freezes with 1 s; 0 of 11 with 1.5 s / 3 s). A freeze that ends
    while the others are still evicting the node (1.4-2.5 s here) can still cost them the
    Primary component for 0.3-1.4 s whatever the timeouts; the app waits that out
    (DB_QUORUM_GRACE). docs/database.md has the numbers and what production should use.
    """

    def __init__(
        self,
        base_dir: str | os.PathLike[str] | None = None,
        port_base: int | None = None,
        *,
        keepalive_period: str = "PT0.3S",
        suspect_timeout: str = "PT1.5S",
        inactive_timeout: str = "PT3S",
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
        self.tuning = Tuning(
            evs={
                "keepalive_period": keepalive_period,
                "suspect_timeout": suspect_timeout,
                "inactive_timeout": inactive_timeout,
                "install_timeout": install_timeout or inactive_timeout,
                "join_retrans_period": join_retrans_period,
            },
            gcache_size=gcache_size,
            buffer_pool_size=buffer_pool_size,
        )
        self.timings: dict[str, float] = {}
        self._nodes: list[_Node] = []
        self._started = False
        self._lock = threading.Lock()
        self._run_as = "mysql" if os.geteuid() == 0 else getpass.getuser()
        self._state = StateFile(f"galera-lab-{port_base}")

    # ------------------------------------------------------------------ addresses
    @property
    def regions(self) -> tuple[str, ...]:
        return REGIONS

    def port(self, i: int) -> int:
        """Client port of node ``i``."""
        return self.port_base + i

    def dsn(self, i: int) -> str:
        """SQLAlchemy URL of node ``i`` for the application user."""
        return node_url("127.0.0.1", self.port(i))

    def schema_dsn(self, i: int) -> str:
        """SQLAlchemy URL of node ``i`` for the schema owner (``SCHEMA_DATABASE_URL``)."""
        return node_url("127.0.0.1", self.port(i), "owner")

    def members_env(self) -> str:
        """``us=DSN,ie=DSN,in=DSN``: the cluster members as the app reads them from env."""
        return ",".join(f"{region}={self.dsn(i)}" for i, region in enumerate(REGIONS))

    def error_log(self, i: int) -> Path:
        """Path of node ``i``'s error log (appended to across restarts)."""
        return self.node(i).error_log

    def is_running(self, i: int) -> bool:
        return bool(self._nodes) and self.node(i).alive

    def pid(self, i: int) -> int | None:
        node = self.node(i)
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
                self.wait_synced([node.index], size=node.index + 1)
            self.wait_synced(range(len(REGIONS)), size=len(REGIONS))
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
        node = self.node(i)
        if not node.alive:
            raise LabError(f"node {i} ({node.region}) is not running")
        self._sigkill(node)

    def kill_all(self) -> None:
        """SIGKILL every running node at (nearly) the same moment: a whole-cluster crash."""
        nodes = [node for node in self._nodes if node.alive]
        for node in nodes:
            assert node.proc is not None
            kill_quietly(node.proc.pid)
        for node in nodes:
            self._sigkill(node)

    def pause(self, i: int) -> None:
        """SIGSTOP node ``i``: a gray failure. Its sockets stay open and the kernel still
        accepts connections, but nothing answers: no SQL, no group messages."""
        node = self.node(i)
        if not node.alive or node.proc is None:
            raise LabError(f"node {i} ({node.region}) is not running")
        os.kill(node.proc.pid, signal.SIGSTOP)
        node.paused = True

    def resume(self, i: int) -> None:
        """SIGCONT a paused node ``i``: it finds itself evicted and rejoins (IST)."""
        node = self.node(i)
        if node.proc is not None and node.alive:
            os.kill(node.proc.pid, signal.SIGCONT)
        node.paused = False

    def shutdown(self, i: int, timeout: float = 60.0) -> None:
        """Stop node ``i`` cleanly (SIGTERM): it leaves the group, the others keep quorum."""
        node = self.node(i)
        if node.alive:
            self._terminate([node], timeout)

    def restart(self, i: int, timeout: float | None = None) -> None:
        """Start a stopped or killed node from its recovered position so it rejoins by IST."""
        node = self.node(i)
        if node.alive:
            raise LabError(f"node {i} ({node.region}) is still running; kill it first")
        started = time.monotonic()
        self._reap(node)
        self._spawn(node, start_position(recover_position(node)))
        self.wait_rejoined(i, started, timeout)

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
            positions = list(pool.map(recover_position, self._nodes))
        leader = most_advanced(positions)
        mark_safe_to_bootstrap(self._nodes[leader])
        first = start_position(positions[leader])
        self._spawn(self._nodes[leader], ["--wsrep-new-cluster", *first])
        self.wait_synced([leader], size=1, timeout=timeout)
        for node in self._nodes:
            if node.index == leader:
                continue
            self._spawn(node, start_position(positions[node.index]))
        self.wait_synced(range(len(self._nodes)), size=len(self._nodes), timeout=timeout)
        self.timings["recover_all"] = time.monotonic() - started

    def bootstrap_survivor(self, i: int, timeout: float | None = None) -> None:
        """Make a non-Primary survivor a one-node Primary component (``pc.bootstrap``).

        After two of three nodes crash the survivor has no quorum and answers 1047 to
        every query; only an operator can decide it holds the truth.
        """
        node = self.node(i)
        if not node.alive:
            raise LabError(f"node {i} ({node.region}) is not running")
        conn = self.admin_connect(i)
        try:
            with conn.cursor() as cur:
                cur.execute("SET GLOBAL wsrep_provider_options='pc.bootstrap=YES'")
        finally:
            conn.close()
        self.wait(
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
        self.wait_synced(range(len(self._nodes)), size=len(self._nodes), timeout=timeout)

    # ------------------------------------------------------------------ status
    def status(self, i: int) -> dict[str, Any] | None:
        """The node's wsrep health, or None when it is down or not accepting connections."""
        if not self.node(i).alive:
            return None
        return read_status(
            lambda: self.admin_connect(i, connect_timeout=1, read_timeout=3, write_timeout=3),
            STATUS_KEYS,
        )

    def statuses(self) -> list[dict[str, Any] | None]:
        return [self.status(node.index) for node in self._nodes]

    def join_method(self, i: int) -> str | None:
        """How node ``i`` got its state at its last start: ``"IST"``, ``"SST"`` or None."""
        return self.node(i).join_method()

    # ------------------------------------------------------------------ internals
    def node(self, i: int) -> _Node:
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
            tuning=self.tuning,
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
            while (error := bind_error(port)) is not None:
                if listening(port) or time.monotonic() > deadline:
                    raise LabError(
                        f"port {port} is busy ({error}); a lab with port base "
                        f"{self.port_base} needs {self.port_base}..{last} free: set "
                        f"LAB_PORT_BASE (or --port-base) to another value\n{port_holders(port)}"
                    )
                time.sleep(0.2)
        reserve_ports(self.port_base, last)

    # The state file lets a later run clean up after a run that was SIGKILLed (no atexit).
    def _write_state(self) -> None:
        self._state.write(
            base_dir=str(self.base_dir),
            owns_dir=self._owns_dir,
            pids=[node.proc.pid for node in self._nodes if node.proc is not None],
        )

    def _reap_stale_lab(self) -> None:
        state = self._state.read()
        if not state:
            return
        if StateFile.owned_by_another_live_process(state):
            # Another live process owns a lab on these ports: never kill someone else's lab.
            return
        base_dir = str(state.get("base_dir", ""))
        if base_dir:
            stale = kill_mentioning(base_dir)
            deadline = time.monotonic() + 10
            while any(pid_alive(pid) for pid in stale) and time.monotonic() < deadline:
                time.sleep(0.1)
            StateFile.remove_owned_dir(state)
        self._state.remove()

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

    def _sigkill(self, node: _Node) -> None:
        if node.proc is None:
            return
        node.paused = False
        kill_quietly(node.proc.pid)
        with contextlib.suppress(subprocess.TimeoutExpired):
            node.proc.wait(timeout=30)
        self._reap(node)

    def _terminate(self, nodes: list[_Node], timeout: float) -> None:
        for node in nodes:
            if node.alive and node.proc is not None:
                kill_quietly(node.proc.pid, signal.SIGTERM)
                if node.paused:  # a stopped process acts on SIGTERM only once continued
                    kill_quietly(node.proc.pid, signal.SIGCONT)
                    node.paused = False
        deadline = time.monotonic() + timeout
        for node in nodes:
            if node.proc is None:
                continue
            try:
                node.proc.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                kill_quietly(node.proc.pid)
                node.proc.wait(timeout=30)
            self._reap(node)

    def _reap(self, node: _Node) -> None:
        """Kill what the node left behind (an rsync daemon from an SST, a shell script)."""
        if node.proc is not None and node.proc.poll() is None:
            return
        kill_sessions(node.sessions)
        node.sessions.clear()

    def _teardown(self, keep: bool) -> None:
        with self._lock:
            nodes = list(self._nodes)
            if nodes:
                self._terminate(nodes, timeout=60)
                for node in nodes:
                    self._reap(node)
            if self.base_dir is not None:
                kill_mentioning(str(self.base_dir))
                if not keep and self.base_dir.exists():
                    shutil.rmtree(self.base_dir, ignore_errors=True)
            self._state.remove_if_mine()
            atexit.unregister(self._atexit)
            self._started = False

    def _atexit(self) -> None:
        with contextlib.suppress(Exception):
            self._teardown(keep=self.keep)
