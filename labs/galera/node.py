"""One ``mariadbd`` process: its files, its start, SQL over its socket, how it joined.

Each node runs in its own session, so a Ctrl-C in the terminal does not reach it (only
the lab decides when a node dies) and a test can ``SIGKILL`` it exactly like a crash.
"""

from __future__ import annotations

import subprocess
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from labs.proc import LabError, require_binary, tail


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

    # Its files, all under ``home``.
    datadir: Path = field(init=False, repr=False, compare=False)
    socket: Path = field(init=False, repr=False, compare=False)
    error_log: Path = field(init=False, repr=False, compare=False)
    cnf: Path = field(init=False, repr=False, compare=False)
    recover_log: Path = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        self.datadir = self.home / "data"
        self.socket = self.home / "mariadbd.sock"
        self.error_log = self.home / "error.log"
        self.cnf = self.home / "my.cnf"
        self.recover_log = self.home / "recover.log"

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
