"""Processes, ports and state files: what every lab needs to start, stop and clean up.

A lab's children run in their own sessions so a test can SIGKILL one like a crash and
a Ctrl-C in the terminal does not reach them. When the process that started a lab is
itself SIGKILLed nothing runs its ``finally``, so each lab writes a *state file* in the
temp dir naming its owner pid and what to remove; the next start (or a watcher, see
``labs.regions``) reads it and cleans up after an owner that is gone, and never touches
a lab whose owner is still alive.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from types import TracebackType
from typing import Any, Self

from labs import ROOT


class LabError(RuntimeError):
    """The lab could not reach the state asked for; the message says why."""


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


# ---------------------------------------------------------------------- binaries
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


def require_binary(name: str) -> str:
    found = find_binary(name)
    if found is None:
        raise LabError(f"{name} not found")
    return found


def python() -> str:
    """The project's interpreter (its venv when there is one), for helper processes."""
    venv = ROOT / ".venv" / "bin" / "python"
    return str(venv) if venv.exists() else sys.executable


def tail(path: Path, lines: int = 25) -> str:
    try:
        text = path.read_text(errors="replace")
    except OSError as exc:
        return f"(no log at {path}: {exc})"
    return "\n".join(text.splitlines()[-lines:])


# ---------------------------------------------------------------------- processes
def pid_alive(pid: int) -> bool:
    """True for a live process; a zombie (killed, not yet reaped) counts as dead."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    fields = stat.rsplit(")", 1)[-1].split()
    return bool(fields) and fields[0] not in ("Z", "X")


def proc_session(pid: int) -> int | None:
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


def all_pids() -> list[int]:
    return [int(name) for name in os.listdir("/proc") if name.isdigit()]


def kill_quietly(pid: int, sig: int = signal.SIGKILL) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.kill(pid, sig)


def kill_mentioning(text: str) -> list[int]:
    """SIGKILL every other process whose command line contains ``text`` (a lab's dir)."""
    found = [pid for pid in all_pids() if pid != os.getpid() and text in proc_cmdline(pid)]
    for pid in found:
        kill_quietly(pid)
    return found


def kill_sessions(sessions: set[int]) -> None:
    """SIGKILL whole sessions: what a node left behind (an rsync daemon, a shell script)."""
    for session in sessions:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(session, signal.SIGKILL)
    if sessions:
        for pid in all_pids():
            if proc_session(pid) in sessions:
                kill_quietly(pid)


# ---------------------------------------------------------------------- ports
def bind_error(port: int) -> OSError | None:
    """Whether mariadbd/Galera could bind the port (they too set SO_REUSEADDR)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind(("127.0.0.1", port))
        except OSError as exc:
            return exc
    return None


def listening(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.5):
            return True
    except OSError:
        return False


def port_holders(port: int) -> str:
    result = subprocess.run(
        ["ss", "-tanp"], capture_output=True, text=True, check=False, timeout=10
    )
    lines = [line for line in result.stdout.splitlines() if f":{port} " in line]
    return "\n".join(lines[:5]) or "(ss shows no socket on it)"


def reserve_ports(first: int, last: int) -> None:
    """Keep the kernel from lending the lab's ports to outgoing connections (best effort)."""
    path = Path("/proc/sys/net/ipv4/ip_local_reserved_ports")
    with contextlib.suppress(OSError):
        current = [item for item in path.read_text().strip().split(",") if item]
        for item in current:
            low, _, high = item.partition("-")
            if int(low) <= first and last <= int(high or low):
                return
        path.write_text(",".join([*current, f"{first}-{last}"]) + "\n")


# ---------------------------------------------------------------------- state files
class StateFile:
    """``<tmp>/<name>.json``: which process owns a lab and what to remove after it."""

    def __init__(self, name: str) -> None:
        self.path = Path(tempfile.gettempdir()) / f"{name}.json"

    def read(self) -> dict[str, Any]:
        try:
            state = json.loads(self.path.read_text())
        except (OSError, ValueError):
            return {}
        return state if isinstance(state, dict) else {}

    def write(self, **state: Any) -> None:
        """Record this process as the owner, with ``state`` (base_dir, pids, ...)."""
        with contextlib.suppress(OSError):
            self.path.write_text(json.dumps({"owner": os.getpid(), **state}))

    @staticmethod
    def owner(state: dict[str, Any]) -> int:
        return int(state.get("owner") or 0)

    @classmethod
    def owned_by_another_live_process(cls, state: dict[str, Any]) -> bool:
        """Someone else's running lab: never clean that up."""
        owner = cls.owner(state)
        return bool(owner) and owner != os.getpid() and pid_alive(owner)

    def remove(self) -> None:
        with contextlib.suppress(OSError):
            self.path.unlink()

    def remove_if_mine(self) -> None:
        if self.owner(self.read()) == os.getpid():
            self.remove()

    @staticmethod
    def remove_owned_dir(state: dict[str, Any]) -> None:
        """Delete the lab's directory when the lab created it (never a dir it was given)."""
        base_dir = state.get("base_dir")
        if base_dir and state.get("owns_dir") and Path(base_dir).exists():
            shutil.rmtree(base_dir, ignore_errors=True)


def wait_for_owner_to_die(owner: int, poll: float = 1.0) -> None:
    """Block until ``owner`` is gone: the watcher side of a stale-lab reaper."""
    while pid_alive(owner):
        time.sleep(poll)
