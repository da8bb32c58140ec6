"""Watch Galera nodes' ``wsrep_cluster_status`` from the side, while a drill runs.

A fault drill wants to know whether the *surviving* nodes ever left the Primary
component (answering 1047 to everything) -- for example when a frozen node resumes and
rejoins. Polling every 50 ms over one kept-open admin connection per node records each
change with its time, so the drill can assert "never" and the benchmark can print how
long.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from labs.galera import GaleraLab

POLL_S = 0.05


@dataclass(frozen=True)
class Sample:
    at: float  # time.monotonic()
    node: int
    status: str  # wsrep_cluster_status, or "no answer"


class PrimaryWatch(threading.Thread):
    """Polls ``nodes`` until :meth:`stop`; keeps every change of status."""

    def __init__(self, lab: GaleraLab, nodes: tuple[int, ...]) -> None:
        super().__init__(daemon=True, name="primary-watch")
        self.lab = lab
        self.nodes = nodes
        self.changes: list[Sample] = []
        self.polls = 0
        self._stop_event = threading.Event()

    def start(self) -> PrimaryWatch:  # type: ignore[override]
        super().start()
        return self

    def stop(self) -> None:
        self._stop_event.set()
        self.join(timeout=10)

    def run(self) -> None:
        conns: dict[int, Any] = {}
        last: dict[int, str] = {}
        try:
            while not self._stop_event.is_set():
                for node in self.nodes:
                    status = self._status(conns, node)
                    if status != last.get(node):
                        self.changes.append(Sample(time.monotonic(), node, status))
                        last[node] = status
                self.polls += 1
                self._stop_event.wait(POLL_S)
        finally:
            for conn in conns.values():
                conn.close()

    def _status(self, conns: dict[int, Any], node: int) -> str:
        try:
            if node not in conns:
                conns[node] = self.lab.admin_connect(
                    node, connect_timeout=1, read_timeout=1, write_timeout=1
                )
            with conns[node].cursor() as cur:
                cur.execute("SHOW GLOBAL STATUS LIKE 'wsrep_cluster_status'")
                return str(cur.fetchone()[1])
        except Exception:  # a node that does not answer is not serving either
            conn = conns.pop(node, None)
            if conn is not None:
                conn.close()
            return "no answer"

    def outside_primary(self, since: float = 0.0) -> list[Sample]:
        """Every change to a status other than Primary at or after ``since``."""
        return [s for s in self.changes if s.at >= since and s.status != "Primary"]

    def seconds_outside(self, since: float = 0.0, until: float | None = None) -> dict[str, float]:
        """Per node (by region): seconds spent outside Primary between the two times."""
        until = time.monotonic() if until is None else until
        result = {}
        for node in self.nodes:
            changes = [s for s in self.changes if s.node == node]
            total = 0.0
            for this, after in zip(changes, [*changes[1:], None], strict=True):
                if this.status == "Primary":
                    continue
                start = max(this.at, since)
                end = min(after.at if after else until, until)
                total += max(0.0, end - start)
            result[self.lab.regions[node]] = round(total, 2)
        return result
