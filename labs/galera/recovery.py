"""Crash recovery: where each node stopped, and which node may bootstrap the cluster.

After a SIGKILL a node's grastate.dat says ``seqno: -1``; ``mariadbd --wsrep-recover``
reads the real position from InnoDB so the node can rejoin with just the writesets it
missed (IST) instead of a full copy (SST). After a whole-cluster crash Galera marks no
node ``safe_to_bootstrap``, so the lab does what an operator must: bootstrap the most
advanced node (nothing committed is thrown away) and join the others to it.
"""

from __future__ import annotations

import contextlib
import re
import subprocess
from collections.abc import Sequence

from labs.galera.node import GaleraNode
from labs.proc import LabError, require_binary, tail

_POSITION_RE = re.compile(r"WSREP: Recovered position:\s*([0-9a-f-]{36}:-?\d+)")
_NIL_UUID = "00000000-0000-0000-0000-000000000000"


def start_position(position: str | None) -> list[str]:
    """mariadbd arguments to start from a recovered ``uuid:seqno``, so the node can catch up
    by IST; with no position there are none and the node gets a full copy (SST)."""
    return [f"--wsrep-start-position={position}"] if position else []


def wsrep_recover(node: GaleraNode, prefix: Sequence[str] = ()) -> tuple[str | None, int]:
    """``uuid:seqno`` of the last transaction the node committed, read from InnoDB.

    After SIGKILL grastate.dat says ``seqno: -1``; ``--wsrep-recover`` reads the real
    position so the node can ask for just the missing writesets (IST). Returns the
    position (None when there is none) and mariadbd's exit code.
    """
    log = node.recover_log
    with contextlib.suppress(FileNotFoundError):
        log.unlink()
    result = subprocess.run(
        [
            *prefix,
            require_binary("mariadbd"),
            f"--defaults-file={node.cnf}",
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


def recover_position(node: GaleraNode, prefix: Sequence[str] = ()) -> str | None:
    """The node's last committed ``uuid:seqno`` (see :func:`wsrep_recover`).

    When InnoDB has none, a clean shutdown's grastate.dat may still have it.
    """
    position, returncode = wsrep_recover(node, prefix)
    if position:
        return position
    grastate = read_grastate(node)
    if grastate.get("uuid", _NIL_UUID) != _NIL_UUID and int(grastate.get("seqno", -1)) >= 0:
        return f"{grastate['uuid']}:{grastate['seqno']}"
    if returncode != 0:
        raise LabError(
            f"mariadbd --wsrep-recover failed on {node.name} "
            f"({returncode}):\n{tail(node.recover_log)}"
        )
    return None


def read_grastate(node: GaleraNode) -> dict[str, str]:
    path = node.datadir / "grastate.dat"
    values: dict[str, str] = {}
    with contextlib.suppress(OSError):
        for line in path.read_text().splitlines():
            key, sep, value = line.partition(":")
            if sep and not key.startswith("#"):
                values[key.strip()] = value.strip()
    return values


def most_advanced(positions: Sequence[str | None]) -> int:
    """Index of the node that committed the most (the first of equals): the one to bootstrap."""
    seqnos = [int(p.rsplit(":", 1)[1]) if p else -1 for p in positions]
    return max(range(len(seqnos)), key=lambda i: (seqnos[i], -i))


def mark_safe_to_bootstrap(node: GaleraNode) -> None:
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
