"""An acknowledgement-loss proxy: a TCP proxy in front of one MySQL/MariaDB server that
lets a COMMIT through and then loses the server's answer.

Why: the hard case for a database client is not "the connection died before COMMIT"
(nothing happened, a retry is always right) but "COMMIT was sent and the answer never
came": the transaction may be committed everywhere, and a blind retry may do it twice.
Killing a connection from the server side cannot produce that case on demand; this proxy
can, deterministically.

How: the proxy relays bytes both ways and parses the client-to-server stream as MySQL
packets (3-byte little-endian length, 1-byte sequence id, payload). A command is a
packet with sequence id 0; ``COM_QUERY`` (0x03) carries the SQL text, and PyMySQL's
``commit()`` sends ``COM_QUERY "COMMIT"``. For each connection the proxy remembers
whether the open transaction ran a statement matching the armed pattern (by default
any INSERT/UPDATE/DELETE/REPLACE; ``COMMIT``/``ROLLBACK`` end a transaction). When it
sees the COMMIT of such a transaction while armed, it

1. marks the connection so that the server's next reply is swallowed,
2. forwards the COMMIT to the server,
3. waits for the server's reply (the OK: the transaction is now committed and, on
   Galera, certified cluster-wide -- or an error, recorded as well), and
4. closes both sockets without passing the reply on.

The client then reads EOF while waiting for the answer to COMMIT: PyMySQL raises
``OperationalError(2013, 'Lost connection to MySQL server during query')``. Each lost
acknowledgement is recorded in :attr:`AckLossProxy.drops` with the server's reply, so a
test can assert that the COMMIT really happened before it was lost.

Limits: plain (non-TLS) connections only -- a client that asks for TLS is relayed
untouched and never dropped; no compression (PyMySQL has none). One thread per
direction per connection: this is lab tooling for a handful of connections.

Use::

    with AckLossProxy(("127.0.0.1", 3306)) as proxy:
        dsn = f"mysql+pymysql://user:pw@127.0.0.1:{proxy.port}/db"
        proxy.arm(times=1, statement=rb"INSERT INTO ledger")
        ...  # the next transaction that inserts into the ledger loses its COMMIT ack
        assert proxy.drops[0].reply == "ok"

Or from a shell: ``python -m labs.ackloss --listen 3400 --upstream 127.0.0.1:3306
--drop 1 --verbose`` loses the answer to the next COMMIT of a transaction that wrote.
"""

from __future__ import annotations

import argparse
import contextlib
import logging
import re
import select
import socket
import threading
import time
from dataclasses import dataclass, field
from typing import Self

log = logging.getLogger(__name__)

COM_QUERY = 0x03
CLIENT_SSL = 0x0800
MAX_PACKET = 0xFFFFFF
# Any statement that changes data; what "a transaction that wrote" means by default.
WRITES = rb"^\s*(INSERT|UPDATE|DELETE|REPLACE)\b"
_COMMIT = re.compile(rb"^\s*COMMIT\s*;?\s*$", re.IGNORECASE)
_ROLLBACK = re.compile(rb"^\s*ROLLBACK\b", re.IGNORECASE)


@dataclass(frozen=True)
class Drop:
    """One lost acknowledgement."""

    connection: int  # the proxy's own connection counter
    statements: tuple[bytes, ...]  # the transaction's matching statements (truncated)
    reply: str  # what the server answered to COMMIT: "ok", "error <code>", "eof"
    at: float = field(default_factory=time.monotonic)


class _Arming:
    """How many more COMMITs to lose, and of which transactions. Shared by all
    connections of one proxy, under its lock."""

    def __init__(self) -> None:
        self.remaining: int | None = 0  # None: every matching COMMIT
        self.pattern = re.compile(WRITES, re.IGNORECASE)

    def take(self) -> bool:
        if self.remaining is None:
            return True
        if self.remaining > 0:
            self.remaining -= 1
            return True
        return False


class AckLossProxy:
    """Relays ``listen`` -> ``upstream``; see the module docstring."""

    def __init__(
        self, upstream: tuple[str, int], *, host: str = "127.0.0.1", port: int = 0
    ) -> None:
        self.upstream = upstream
        self._listener = socket.create_server((host, port))
        self.host, self.port = self._listener.getsockname()[:2]
        self.drops: list[Drop] = []
        self.connections = 0
        self._arming = _Arming()
        self._lock = threading.Lock()
        self._dropped = threading.Condition(self._lock)
        self._open: set[socket.socket] = set()
        self._stopped = threading.Event()
        self._thread: threading.Thread | None = None

    # ------------------------------------------------------------------ control
    def arm(self, times: int | None = 1, *, statement: bytes = WRITES) -> None:
        """Lose the acknowledgement of the next ``times`` COMMITs (``None``: all of
        them, until :meth:`disarm`) of transactions that ran a statement matching the
        regular expression ``statement`` (case-insensitive)."""
        with self._lock:
            self._arming.remaining = times
            self._arming.pattern = re.compile(statement, re.IGNORECASE)

    def disarm(self) -> None:
        with self._lock:
            self._arming.remaining = 0

    @property
    def armed(self) -> bool:
        with self._lock:
            return self._arming.remaining != 0

    def wait_for_drops(self, count: int, timeout: float = 10.0) -> list[Drop]:
        """Blocks until ``count`` acknowledgements were lost; returns them all."""
        with self._dropped:
            if not self._dropped.wait_for(lambda: len(self.drops) >= count, timeout):
                raise TimeoutError(f"{len(self.drops)} of {count} COMMIT acks lost")
            return list(self.drops)

    # ------------------------------------------------------------------ lifecycle
    def start(self) -> Self:
        self._thread = threading.Thread(target=self._accept, name="ackloss-accept", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stopped.set()
        with contextlib.suppress(OSError):
            self._listener.close()
        with self._lock:
            sockets = list(self._open)
        for sock in sockets:
            _close(sock)
        if self._thread is not None:
            self._thread.join(timeout=5)

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *_exc: object) -> None:
        self.stop()

    # ------------------------------------------------------------------ relaying
    def _accept(self) -> None:
        while not self._stopped.is_set():
            try:
                client, _ = self._listener.accept()
            except OSError:
                return
            try:
                server = socket.create_connection(self.upstream, timeout=5)
            except OSError as error:
                log.info("ackloss: upstream %s unreachable: %s", self.upstream, error)
                _close(client)
                continue
            server.settimeout(None)
            for sock in (client, server):
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            with self._lock:
                self.connections += 1
                link = _Link(self, self.connections, client, server)
                self._open.update((client, server))
            threading.Thread(
                target=link.client_to_server, name=f"ackloss-c2s-{link.number}", daemon=True
            ).start()
            threading.Thread(
                target=link.server_to_client, name=f"ackloss-s2c-{link.number}", daemon=True
            ).start()

    def _forget(self, *sockets: socket.socket) -> None:
        with self._lock:
            self._open.difference_update(sockets)

    def _record(self, drop: Drop) -> None:
        with self._dropped:
            self.drops.append(drop)
            self._dropped.notify_all()
        log.info("ackloss: lost the COMMIT ack of connection %d (%s)", drop.connection, drop.reply)


class _Link:
    """One client connection and its server connection."""

    def __init__(
        self, proxy: AckLossProxy, number: int, client: socket.socket, server: socket.socket
    ) -> None:
        self.proxy = proxy
        self.number = number
        self.client = client
        self.server = server
        self.greeted = False  # the client's first packet (handshake response) went by
        self.passthrough = False  # TLS: nothing to parse
        self.statements: list[bytes] = []  # matching statements of the open transaction
        self.swallow = threading.Event()  # the server's next reply must not reach the client
        self.pending: tuple[bytes, ...] = ()

    def client_to_server(self) -> None:
        buffer = b""
        try:
            while True:
                chunk = self.client.recv(65536)
                if not chunk:
                    break
                if self.passthrough:
                    self.server.sendall(chunk)
                    continue
                buffer += chunk
                while len(buffer) >= 4:
                    length = int.from_bytes(buffer[:3], "little")
                    if len(buffer) < 4 + length:
                        break
                    packet, buffer = buffer[: 4 + length], buffer[4 + length :]
                    self._inspect(packet[3], packet[4:])
                    self.server.sendall(packet)
                    if self.passthrough and buffer:
                        self.server.sendall(buffer)
                        buffer = b""
        except OSError:
            pass
        finally:
            self._close_both()

    def _inspect(self, sequence: int, payload: bytes) -> None:
        if not self.greeted:
            # The handshake response (or SSL request) starts with the client's
            # capability flags; after an SSL request the stream is TLS.
            self.greeted = True
            if len(payload) >= 4 and int.from_bytes(payload[:4], "little") & CLIENT_SSL:
                self.passthrough = True
            return
        if sequence != 0 or not payload or payload[0] != COM_QUERY:
            return
        sql = payload[1:]
        if _COMMIT.match(sql):
            statements, self.statements = tuple(self.statements), []
            if statements:
                with self.proxy._lock:
                    lose = self.proxy._arming.take()
                if lose:
                    # Set before the COMMIT leaves: its reply is the next thing the
                    # server sends (the client does not pipeline).
                    self.pending = statements
                    self.swallow.set()
            return
        if _ROLLBACK.match(sql):
            self.statements = []
            return
        with self.proxy._lock:
            pattern = self.proxy._arming.pattern
        if pattern.search(sql):
            self.statements.append(sql[:200])

    def server_to_client(self) -> None:
        try:
            while True:
                chunk = self.server.recv(65536)
                if self.swallow.is_set():
                    self.proxy._record(Drop(self.number, self.pending, _reply(chunk)))
                    break
                if not chunk:
                    break
                self.client.sendall(chunk)
        except OSError:
            pass
        finally:
            self._close_both()

    def _close_both(self) -> None:
        for sock in (self.client, self.server):
            _close(sock)
        self.proxy._forget(self.client, self.server)


def _reply(chunk: bytes) -> str:
    if len(chunk) < 5:
        return "eof"
    kind = chunk[4]
    if kind == 0x00:
        return "ok"
    if kind == 0xFF and len(chunk) >= 7:
        return f"error {int.from_bytes(chunk[5:7], 'little')}"
    return f"reply 0x{kind:02x}"


def _close(sock: socket.socket) -> None:
    with contextlib.suppress(OSError):
        sock.shutdown(socket.SHUT_RDWR)
    with contextlib.suppress(OSError):
        sock.close()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--listen", type=int, required=True, help="port to listen on")
    parser.add_argument("--upstream", required=True, help="host:port of the server")
    parser.add_argument("--drop", type=int, default=0, help="lose the next N COMMIT acks")
    parser.add_argument("--verbose", action="store_true")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING)
    host, _, port = args.upstream.rpartition(":")
    with AckLossProxy((host or "127.0.0.1", int(port)), port=args.listen) as proxy:
        if args.drop:
            proxy.arm(args.drop)
        print(f"relaying 127.0.0.1:{proxy.port} -> {args.upstream}; Ctrl-C to stop", flush=True)
        with contextlib.suppress(KeyboardInterrupt):
            while True:
                select.select([], [], [], 3600)


if __name__ == "__main__":
    main()
