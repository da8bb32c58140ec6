"""The WAN: a user-space TCP relay that delays every byte by half the link's RTT.

The kernel here has no ``netem``, so the lab makes latency in user space. The relay
listens on every region's identity address (see :mod:`labs.regions.topology`) on the
database ports. A connection from namespace ``s`` (source address ``<net>.<s>.2``) to
identity ``<net>.0.<d>`` is the link ``s -> d``: the relay opens a connection to the
real node at ``<net>.<d>.2`` and pumps bytes both ways, each direction through a queue
that releases a chunk ``rtt(s, d) / 2`` after it was read. Order is kept, throughput
is not capped (chunks are pipelined), and a full queue stops reading, so senders feel
back-pressure as on a real long fat pipe. Opening a connection costs one RTT, like a
TCP handshake.

Links can be cut per direction, like a partition on a real network: bytes for a cut
direction are *held* (not dropped: TCP would retransmit them after the heal) and new
connections that need a cut direction hang until the heal or a connect timeout. So a
peer notices a partition only by silence, exactly what Galera's ``evs`` timeouts are
for; nothing is reset.

Control: a unix socket speaking one JSON object per line (``status``, ``cut``, ``heal``,
``set_rtt``); :class:`ForwarderClient` wraps it. Run as
``python -m labs.regions.forwarder --prefix lcr --net 10.213 --control /path/ctl.sock``.
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import contextlib
import json
import os
import signal
import socket
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from labs.regions.topology import NODE_PORTS, REGIONS, Topology, format_rtts, parse_rtts

CHUNK = 64 * 1024
QUEUE_LIMIT = 4 * 1024 * 1024  # bytes in flight per direction before we stop reading
CONNECT_TIMEOUT = 20.0  # a connection that needs a cut link gives up after this
HOST = "host"  # connections from the host itself (not a region namespace): no delay


@dataclass
class Link:
    """One direction between two regions."""

    src: str
    dst: str
    delay: float  # one-way seconds
    up: bool = True
    healed: asyncio.Event = field(default_factory=asyncio.Event)
    connections: int = 0
    opened: int = 0
    bytes: int = 0
    held: int = 0  # bytes waiting because the link is cut

    def __post_init__(self) -> None:
        self.healed.set()

    def describe(self) -> dict[str, Any]:
        return {
            "src": self.src,
            "dst": self.dst,
            "delay_ms": round(self.delay * 1000, 3),
            "up": self.up,
            "connections": self.connections,
            "opened": self.opened,
            "bytes": self.bytes,
            "held": self.held,
        }


class Pipe:
    """One direction of one relayed connection: read, timestamp, release when due."""

    def __init__(
        self, link: Link, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        self.link = link
        self.reader = reader
        self.writer = writer
        self.queue: collections.deque[tuple[float, bytes]] = collections.deque()
        self.queued = 0
        self.item = asyncio.Event()
        self.space = asyncio.Event()
        self.space.set()

    async def read_side(self) -> None:
        loop = asyncio.get_running_loop()
        try:
            while True:
                await self.space.wait()
                data = await self.reader.read(CHUNK)
                self.queue.append((loop.time() + self.link.delay, data))
                self.queued += len(data)
                if self.queued >= QUEUE_LIMIT:
                    self.space.clear()
                self.item.set()
                if not data:
                    return
        except (ConnectionError, OSError):
            self.queue.append((0.0, b""))
            self.item.set()

    async def write_side(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            while not self.queue:
                self.item.clear()
                await self.item.wait()
            due, data = self.queue[0]
            wait = due - loop.time()
            if wait > 0:
                await asyncio.sleep(wait)
            if not self.link.up:
                self.link.held += len(data)
                await self.link.healed.wait()
                self.link.held -= len(data)
            self.queue.popleft()
            self.queued -= len(data)
            if self.queued < QUEUE_LIMIT:
                self.space.set()
            if not data:
                with contextlib.suppress(OSError, RuntimeError):
                    if self.writer.can_write_eof():
                        self.writer.write_eof()
                return
            self.writer.write(data)
            self.link.bytes += len(data)
            await self.writer.drain()


class Forwarder:
    def __init__(self, topology: Topology, ports: tuple[int, ...] = NODE_PORTS) -> None:
        self.topology = topology
        self.ports = ports
        self.links: dict[tuple[str, str], Link] = {}
        for src in (*REGIONS, HOST):
            for dst in REGIONS:
                delay = 0.0 if HOST in (src, dst) else topology.rtt_ms(src, dst) / 2000
                self.links[(src, dst)] = Link(src, dst, delay)
        self.servers: list[asyncio.base_events.Server] = []
        self.tasks: set[asyncio.Task[Any]] = set()
        self.started = time.time()

    def link(self, src: str, dst: str) -> Link:
        return self.links[(src, dst)]

    # ------------------------------------------------------------------ relaying
    async def start(self) -> None:
        for dst in REGIONS:
            for port in self.ports:
                server = await asyncio.start_server(
                    lambda r, w, dst=dst, port=port: self._accepted(r, w, dst, port),
                    host=self.topology.identity(dst),
                    port=port,
                    reuse_address=True,
                    backlog=256,
                )
                self.servers.append(server)

    def _spawn(self, coro: Any) -> asyncio.Task[Any]:
        task = asyncio.ensure_future(coro)
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)
        return task

    async def _accepted(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, dst: str, port: int
    ) -> None:
        peer = writer.get_extra_info("peername")[0]
        src = self.topology.region_of_ns_ip(peer) or HOST
        out, back = self.link(src, dst), self.links.get((dst, src))
        _nodelay(writer)
        try:
            # A cut link swallows the SYN: the connection hangs until healed or given up.
            async with asyncio.timeout(CONNECT_TIMEOUT):
                await out.healed.wait()
                if back is not None:
                    await back.healed.wait()
            rtt = out.delay + (back.delay if back is not None else 0.0)
            if rtt:
                await asyncio.sleep(rtt)  # the handshake's round trip
            backend = (self.topology.ns_ip(dst), port)
            async with asyncio.timeout(CONNECT_TIMEOUT):
                up_reader, up_writer = await asyncio.open_connection(*backend)
        except (TimeoutError, OSError):
            writer.transport.abort()
            return
        _nodelay(up_writer)
        out.connections += 1
        out.opened += 1
        forward = Pipe(out, reader, up_writer)
        backward = Pipe(back or self.link(HOST, dst), up_reader, writer)
        pumps = [
            self._spawn(forward.read_side()),
            self._spawn(forward.write_side()),
            self._spawn(backward.read_side()),
            self._spawn(backward.write_side()),
        ]
        try:
            writers = asyncio.gather(pumps[1], pumps[3])
            await writers
        except (ConnectionError, OSError):
            pass
        finally:
            out.connections -= 1
            for task in pumps:
                task.cancel()
            for w in (writer, up_writer):
                w.transport.abort()

    # ------------------------------------------------------------------ control
    def status(self) -> dict[str, Any]:
        return {
            "pid": os.getpid(),
            "uptime_s": round(time.time() - self.started, 1),
            "rtts": format_rtts(self.topology.rtts),
            "links": [link.describe() for (src, _), link in self.links.items() if src != HOST],
        }

    def cut(self, src: str, dst: str) -> None:
        link = self.link(src, dst)
        link.up = False
        link.healed.clear()

    def heal(self, src: str | None = None, dst: str | None = None) -> None:
        for (s, d), link in self.links.items():
            if (src is None or s == src) and (dst is None or d == dst):
                link.up = True
                link.healed.set()

    def set_rtt(self, a: str, b: str, ms: float) -> None:
        if a == b or a not in REGIONS or b not in REGIONS:
            raise ValueError(f"no link {a}-{b}")
        self.topology.rtts[frozenset((a, b))] = float(ms)
        self.link(a, b).delay = self.link(b, a).delay = float(ms) / 2000

    def handle(self, request: dict[str, Any]) -> dict[str, Any]:
        op = request.get("op")
        if op == "status":
            return self.status()
        if op == "cut":
            self.cut(_region(request["src"]), _region(request["dst"]))
        elif op == "heal":
            self.heal(request.get("src"), request.get("dst"))
        elif op == "set_rtt":
            self.set_rtt(_region(request["a"]), _region(request["b"]), float(request["ms"]))
        else:
            raise ValueError(f"unknown op {op!r}")
        return self.status()

    async def serve_control(self, path: Path) -> asyncio.base_events.Server:
        async def client(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            try:
                while line := await reader.readline():
                    try:
                        answer = {"ok": True, **self.handle(json.loads(line))}
                    except (ValueError, KeyError, TypeError) as exc:
                        answer = {"ok": False, "error": str(exc)}
                    writer.write(json.dumps(answer).encode() + b"\n")
                    await writer.drain()
            finally:
                writer.close()

        with contextlib.suppress(FileNotFoundError):
            path.unlink()
        server = await asyncio.start_unix_server(client, path=str(path))
        path.chmod(0o600)
        return server


def _region(value: Any) -> str:
    if value not in REGIONS:
        raise ValueError(f"unknown region {value!r}")
    return str(value)


def _nodelay(writer: asyncio.StreamWriter) -> None:
    sock = writer.get_extra_info("socket")
    if sock is not None:
        with contextlib.suppress(OSError):
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)


class ForwarderClient:
    """Talks to a running forwarder's control socket."""

    def __init__(self, path: str | os.PathLike[str], timeout: float = 5.0) -> None:
        self.path = str(path)
        self.timeout = timeout

    def call(self, op: str, **args: Any) -> dict[str, Any]:
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
            sock.settimeout(self.timeout)
            sock.connect(self.path)
            sock.sendall(json.dumps({"op": op, **args}).encode() + b"\n")
            data = b""
            while not data.endswith(b"\n"):
                chunk = sock.recv(65536)
                if not chunk:
                    break
                data += chunk
        answer = json.loads(data)
        if not answer.get("ok"):
            raise RuntimeError(f"forwarder refused {op}: {answer.get('error')}")
        return answer

    def status(self) -> dict[str, Any]:
        return self.call("status")

    def cut(self, src: str, dst: str) -> None:
        self.call("cut", src=src, dst=dst)

    def heal(self, src: str | None = None, dst: str | None = None) -> None:
        self.call("heal", src=src, dst=dst)

    def isolate(self, region: str, direction: str = "both") -> None:
        """Cut ``region`` off: ``both``, ``out`` (it cannot send) or ``in`` (cannot hear)."""
        if direction not in ("both", "out", "in"):
            raise ValueError("direction is both, out or in")
        for other in REGIONS:
            if other == region:
                continue
            if direction in ("both", "out"):
                self.cut(region, other)
            if direction in ("both", "in"):
                self.cut(other, region)

    def set_rtt(self, a: str, b: str, ms: float) -> None:
        self.call("set_rtt", a=a, b=b, ms=ms)

    def set_rtts(self, rtts: dict[frozenset[str], float]) -> None:
        for pair, ms in rtts.items():
            a, b = sorted(pair)
            self.set_rtt(a, b, ms)


async def _main(args: argparse.Namespace) -> None:
    topology = Topology(prefix=args.prefix, net=args.net, rtts=parse_rtts(args.rtts))
    forwarder = Forwarder(topology)
    await forwarder.start()
    control = await forwarder.serve_control(Path(args.control))
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
        loop.add_signal_handler(sig, stop.set)
    print(f"forwarder ready rtts={format_rtts(topology.rtts)}", flush=True)
    await stop.wait()
    control.close()
    for server in forwarder.servers:
        server.close()
    for task in list(forwarder.tasks):
        task.cancel()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m labs.regions.forwarder")
    parser.add_argument("--prefix", default="lcr")
    parser.add_argument("--net", default="10.213")
    parser.add_argument("--rtts", default=None, help="e.g. us-ie=70,us-in=190,ie-in=120")
    parser.add_argument("--control", required=True, help="unix socket path for control")
    args = parser.parse_args(argv)
    asyncio.run(_main(args))
    return 0


if __name__ == "__main__":
    sys.exit(main())
