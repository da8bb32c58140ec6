"""The whole three-region lab: namespaces, WAN forwarder, Galera, apps, front router.

::

    with RegionLab() as lab:            # ~1 min: netns, forwarder, 3 nodes, schema, apps
        lab.front_url("in")             # where a customer in India points their phone
        lab.wan.isolate("in")           # partition India off (both directions)
        lab.kill_region("ie")           # Ireland's node and app die
        lab.restore_region("ie")        # they come back; the node catches up by IST

Every helper process belongs to the lab and goes away with it: host-side helpers (the
forwarder, the front router) die with the process that started them (``PDEATHSIG``)
and everything inside the namespaces is killed when they are deleted. A state file in
the temp dir lets the next run (or ``python -m labs.regions down``) clean up after a run
that was SIGKILLed.
"""

# ruff: noqa: S310 - a root-only lab that runs its own fixed commands
from __future__ import annotations

import contextlib
import json
import os
import secrets
import shutil
import signal
import subprocess
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

from labs import ROOT
from labs.proc import LabError, StartStop, StateFile, kill_quietly, proc_cmdline, python, tail
from labs.regions import netns
from labs.regions.forwarder import ForwarderClient
from labs.regions.front import port_free
from labs.regions.galera import RegionGalera
from labs.regions.topology import APP_PORT, REGIONS, Topology, format_rtts

DEFAULT_FRONT_PORT = 18100


def _die_with_parent(cmd: list[str]) -> list[str]:
    """``cmd`` set to be SIGKILLed when the lab process goes away (``PR_SET_PDEATHSIG``).

    util-linux ``setpriv`` does the prctl and execs, so no ``preexec_fn`` is needed
    (unsafe once the lab runs threads, e.g. the checks' traffic generators).
    """
    setpriv = shutil.which("setpriv")
    return [setpriv, "--pdeathsig", "KILL", "--", *cmd] if setpriv else cmd


class RegionLab(StartStop):
    def __init__(
        self,
        topology: Topology | None = None,
        *,
        front_port: int | None = None,
        base_dir: str | os.PathLike[str] | None = None,
        app_workers: int = 1,
        app_threads: int = 8,
        keep: bool = False,
    ) -> None:
        self.topology = topology or Topology(
            prefix=os.environ.get("REGIONS_PREFIX") or "lcr",
            net=os.environ.get("REGIONS_NET") or "10.213",
        )
        self.front_port = front_port or int(
            os.environ.get("REGIONS_FRONT_PORT") or DEFAULT_FRONT_PORT
        )
        self._owns_dir = base_dir is None
        self.base_dir = Path(base_dir) if base_dir else None
        self.app_workers = app_workers
        self.app_threads = app_threads
        self.keep = keep
        self.galera: RegionGalera | None = None
        self.wan = ForwarderClient("/nonexistent")
        self.procs: dict[str, subprocess.Popen[bytes]] = {}
        self._reaper: subprocess.Popen[bytes] | None = None
        self.timings: dict[str, float] = {}
        self.secrets = {
            "SECRET_KEY": secrets.token_urlsafe(32),
            "JWT_KEYS": f"k1:{secrets.token_urlsafe(36)}",
            "JWT_ACTIVE_KID": "k1",
        }
        self._state = self.state_file(self.topology)

    # ------------------------------------------------------------------ addresses
    def app_url(self, region: str) -> str:
        """The region's app, straight (no front router), as seen from the host."""
        return f"http://{self.topology.ns_ip(region)}:{APP_PORT}"

    def front_url(self, client_region: str | None = None) -> str:
        """The front router: per-region port for ``client_region``, else the shared port."""
        if client_region is None:
            return f"http://127.0.0.1:{self.front_port}"
        return f"http://127.0.0.1:{self.front_port + 1 + REGIONS.index(client_region)}"

    # ------------------------------------------------------------------ lifecycle
    def start(self, *, apps: bool = True) -> None:
        started = time.monotonic()
        self.cleanup_stale(self.topology)
        if self.base_dir is None:
            self.base_dir = Path(
                tempfile.mkdtemp(prefix=f"loyalty-regions-{self.topology.prefix}-")
            )
        self.base_dir.mkdir(parents=True, exist_ok=True)
        self.base_dir.chmod(0o755)  # mariadbd runs as mysql and must reach its datadir
        self._write_state()
        self._start_reaper()
        try:
            t0 = time.monotonic()
            netns.setup(self.topology)
            netns.check_isolated(self.topology)
            self.timings["netns"] = time.monotonic() - t0
            self._start_forwarder()
            t0 = time.monotonic()
            self.galera = RegionGalera(self.topology, self.base_dir / "galera")
            self.galera.start()
            self.timings["galera"] = time.monotonic() - t0
            if apps:
                t0 = time.monotonic()
                self._schema_and_seed()
                self.timings["schema_seed"] = time.monotonic() - t0
                t0 = time.monotonic()
                for region in REGIONS:
                    self.start_app(region, wait=False)
                for region in REGIONS:
                    self.wait_app(region)
                self.timings["apps"] = time.monotonic() - t0
                self._start_front()
                self.wait_front_healthy()
        except BaseException:
            self.stop()
            raise
        self.timings["start"] = time.monotonic() - started

    def stop(self) -> None:
        """Tear everything down; safe to call twice and after a failed start."""
        t0 = time.monotonic()
        for name in ("front", *(f"app-{r}" for r in REGIONS)):
            self._stop_proc(name)
        if self.galera is not None:
            with contextlib.suppress(Exception):
                self.galera.stop(timeout=30)
        self._stop_proc("forwarder")
        netns.teardown(self.topology)
        if self.base_dir is not None and self._owns_dir and not self.keep:
            shutil.rmtree(self.base_dir, ignore_errors=True)
        self._state.remove_if_mine()
        if self._reaper is not None and self._reaper.poll() is None:
            self._reaper.terminate()
            with contextlib.suppress(subprocess.TimeoutExpired):
                self._reaper.wait(timeout=5)
        self.timings["stop"] = time.monotonic() - t0

    @staticmethod
    def state_file(topology: Topology) -> StateFile:
        """Names the lab's owner, directory and host-side helpers (see labs.proc)."""
        return StateFile(f"loyalty-regions-{topology.prefix}")

    @classmethod
    def cleanup_stale(cls, topology: Topology, force: bool = False) -> bool:
        """Remove what a dead run left (namespaces, helpers, temp dir). True if it did."""
        state_file = cls.state_file(topology)
        state = state_file.read()
        if StateFile.owned_by_another_live_process(state) and not force:
            raise LabError(
                f"a region lab with prefix {topology.prefix!r} is running "
                f"(pid {StateFile.owner(state)}); "
                "stop it, or use another prefix/net, or `python -m labs.regions down --force`"
            )
        found = bool(state) or bool(
            netns.existing_namespaces() & {topology.netns(r) for r in REGIONS}
        )
        for pid in state.get("helpers", []):
            if "regions." in proc_cmdline(pid):
                kill_quietly(pid)
        netns.teardown(topology)
        StateFile.remove_owned_dir(state)
        state_file.remove()
        return found

    def _start_reaper(self) -> None:
        """A watcher in its own session that cleans up if this process dies unannounced
        (``python -m labs.regions reap``: it outlives a SIGKILLed owner)."""
        self._reaper = subprocess.Popen(
            [
                python(), "-m", "labs.regions",
                "--prefix", self.topology.prefix,
                "reap", "--owner", str(os.getpid()),
            ],
            cwd=ROOT,
            env={**os.environ, "PYTHONPATH": str(ROOT)},
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
        )  # fmt: skip

    def _write_state(self) -> None:
        self._state.write(
            base_dir=str(self.base_dir),
            owns_dir=self._owns_dir,
            helpers=[p.pid for n, p in self.procs.items() if not n.startswith("app-")],
        )

    # ------------------------------------------------------------------ helpers
    def _spawn(self, name: str, cmd: list[str], env: dict[str, str] | None = None) -> None:
        assert self.base_dir is not None
        log = (self.base_dir / f"{name}.log").open("ab")
        try:
            self.procs[name] = subprocess.Popen(
                _die_with_parent(cmd),
                cwd=ROOT,
                env={**os.environ, "PYTHONPATH": str(ROOT), **(env or {})},
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        finally:
            log.close()
        self._write_state()

    def _stop_proc(self, name: str, sig: int = signal.SIGTERM, timeout: float = 10.0) -> None:
        proc = self.procs.pop(name, None)
        if proc is None or proc.poll() is not None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, sig)
        try:
            proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=10)

    def log_tail(self, name: str, lines: int = 30) -> str:
        assert self.base_dir is not None
        return tail(self.base_dir / f"{name}.log", lines)

    def _start_forwarder(self) -> None:
        assert self.base_dir is not None
        control = self.base_dir / "forwarder.sock"
        self._spawn(
            "forwarder",
            [
                python(), "-m", "labs.regions.forwarder",
                "--prefix", self.topology.prefix,
                "--net", self.topology.net,
                "--rtts", format_rtts(self.topology.rtts),
                "--control", str(control),
            ],
        )  # fmt: skip
        self.wan = ForwarderClient(control)
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline:
            if self.procs["forwarder"].poll() is not None:
                raise LabError(f"forwarder exited:\n{self.log_tail('forwarder')}")
            with contextlib.suppress(OSError):
                self.wan.status()
                return
            time.sleep(0.1)
        raise LabError(f"forwarder did not start:\n{self.log_tail('forwarder')}")

    def _flask(self, *args: str) -> str:
        assert self.galera is not None
        env = {
            **os.environ,
            "PYTHONPATH": str(ROOT),
            "LOYALTY_ENV": "demo",
            "LOYALTY_DATABASE_URL": self.galera.host_dsn(REGIONS[0]),
            "LOYALTY_SCHEMA_DATABASE_URL": self.galera.host_dsn(REGIONS[0], owner=True),
            "LOYALTY_CLUSTER": "",
            **self.secrets,
        }
        flask = str(Path(python()).with_name("flask"))
        result = subprocess.run(
            [flask, "--app", "webapp", *args],
            cwd=ROOT, env=env, capture_output=True, text=True, check=False, timeout=600,
        )  # fmt: skip
        if result.returncode != 0:
            raise LabError(f"flask {' '.join(args)} failed:\n{result.stdout}\n{result.stderr}")
        return result.stdout.strip()

    def _schema_and_seed(self) -> None:
        self._flask("db", "upgrade")
        self._flask("demo", "seed")

    def app_env(self, region: str) -> dict[str, str]:
        assert self.galera is not None
        return {
            "LOYALTY_ENV": "production",
            **self.secrets,
            "LOYALTY_HTTPS": "0",
            "LOYALTY_REGION": region,
            "LOYALTY_CLUSTER": self.galera.cluster_env(region),
            "LOYALTY_CLUSTER_KIND": "galera",
            "LOYALTY_REGION_PREFERENCE": ",".join(self.topology.preference(region)),
            # The production profile mails no link without it (registration answers 503).
            "LOYALTY_PUBLIC_BASE_URL": self.front_url(region),
            "LOYALTY_LOGIN_RATE_LIMIT": "10000 per minute",
            # The lab measures the WAN and the database, not the limiter store.
            "LOYALTY_RATELIMIT_STORAGE_URI": "memory://",
            "OTEL_SERVICE_NAME": f"loyalty-{region}",
        }

    def start_app(self, region: str, wait: bool = True) -> None:
        gunicorn = str(Path(python()).with_name("gunicorn"))
        self._spawn(
            f"app-{region}",
            [
                *netns.in_ns(self.topology, region), gunicorn,
                "--bind", f"0.0.0.0:{APP_PORT}",
                "--workers", str(self.app_workers),
                "--worker-class", "gthread",
                "--threads", str(self.app_threads),
                "--timeout", "60",
                "--graceful-timeout", "5",
                "--keep-alive", "75",
                "--access-logfile", "-",
                "webapp:create_app()",
            ],
            env=self.app_env(region),
        )  # fmt: skip
        if wait:
            self.wait_app(region)

    def wait_app(self, region: str, timeout: float = 120.0) -> None:
        """Until the app answers ``/healthz`` (it may still be unready: no quorum)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            proc = self.procs.get(f"app-{region}")
            if proc is None or proc.poll() is not None:
                raise LabError(f"app {region} exited:\n{self.log_tail(f'app-{region}')}")
            url = f"{self.app_url(region)}/healthz"
            with (
                contextlib.suppress(OSError, urllib.error.URLError),
                urllib.request.urlopen(url, timeout=2) as answer,
            ):
                if answer.status == 200:
                    return
            time.sleep(0.2)
        raise LabError(f"app {region} did not start:\n{self.log_tail(f'app-{region}')}")

    def kill_app(self, region: str) -> None:
        self._stop_proc(f"app-{region}", sig=signal.SIGKILL)

    def _start_front(self) -> None:
        host = "127.0.0.1"
        for port in range(self.front_port, self.front_port + 1 + len(REGIONS)):
            if not port_free(host, port):
                raise LabError(
                    f"port {port} is busy: set REGIONS_FRONT_PORT to a free range of 4 ports"
                )
        upstreams = ",".join(f"{r}={self.topology.ns_ip(r)}:{APP_PORT}" for r in REGIONS)
        self._spawn(
            "front",
            [
                python(), "-m", "labs.regions.front",
                "--listen", f"{host}:{self.front_port}",
                "--region-ports", str(self.front_port + 1),
                "--upstream", upstreams,
                "--rtts", format_rtts(self.topology.rtts),
            ],
        )  # fmt: skip

    def front_status(self) -> dict[str, Any]:
        with urllib.request.urlopen(f"{self.front_url()}/_front/status", timeout=5) as r:
            return json.loads(r.read())

    def wait_front_healthy(
        self, regions: tuple[str, ...] = REGIONS, healthy: bool = True, timeout: float = 60.0
    ) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        status: dict[str, Any] = {}
        while time.monotonic() < deadline:
            proc = self.procs.get("front")
            if proc is not None and proc.poll() is not None:
                raise LabError(f"front router exited:\n{self.log_tail('front')}")
            with contextlib.suppress(OSError, urllib.error.URLError, ValueError):
                status = self.front_status()
                states = {h["region"]: h["healthy"] for h in status["regions"]}
                if all(states[r] is healthy for r in regions):
                    return status
            time.sleep(0.2)
        raise LabError(f"front router: {regions} not healthy={healthy} in {timeout}s: {status}")

    # ------------------------------------------------------------------ faults
    def heal(self, timeout: float = 180.0) -> None:
        """Whatever a drill left: links healed, nodes and apps running, all healthy."""
        assert self.galera is not None
        self.wan.heal()
        for region in REGIONS:
            if not self.galera.nodes[region].alive:
                self.galera.restart(region, timeout)
        self.galera.wait_synced(REGIONS, size=len(REGIONS), timeout=timeout)
        for region in REGIONS:
            proc = self.procs.get(f"app-{region}")
            if proc is None or proc.poll() is not None:
                self.start_app(region)
        self.wait_front_healthy(timeout=timeout)

    def kill_region(self, region: str) -> None:
        """The whole region dies at once: its app and its node, SIGKILL."""
        assert self.galera is not None
        self.kill_app(region)
        self.galera.kill(region)

    def restore_region(self, region: str, timeout: float | None = None) -> str | None:
        """Restart the region's node (IST from its recovered position) and app."""
        assert self.galera is not None
        method = self.galera.restart(region, timeout)
        self.start_app(region)
        return method
