"""The front door: Route 53 latency routing + ELB health checks, in one small proxy.

Clients say where they are, by port (one port per region, the way a phone in India
resolves the Indian endpoint) or with the header ``X-Client-Region`` on the shared
port. A request goes to the client's own region when that region's app is healthy,
else to the next nearest healthy one (by the lab's RTT table). Health is what an ELB
target group does: ``GET /readyz`` every ``interval`` seconds, ``fall`` failures in a
row make a region unhealthy, ``rise`` successes make it healthy again; a refused
connection marks it unhealthy at once and the request moves on (nothing was sent, so
that is safe even for a POST). With no healthy region the request goes to the
client's own region anyway (Route 53 "fails open"), so the client sees that app's own
degraded answer.

Every response carries ``X-Served-Region`` and ``X-Client-Region``; ``GET
/_front/status`` shows the health table. Run as ``python -m labs.regions.front --listen
127.0.0.1:18100 --region-ports 18101 --upstream us=10.213.1.2:8000,ie=...,in=...``.
"""

from __future__ import annotations

import argparse
import contextlib
import http.client
import json
import signal
import socket
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from labs.regions.topology import REGIONS, Topology, parse_rtts

HOP_BY_HOP = frozenset(
    {
        "connection",
        "keep-alive",
        "proxy-authenticate",
        "proxy-authorization",
        "te",
        "trailers",
        "transfer-encoding",
        "upgrade",
    }
)


class Health:
    """ELB-style health of one region's app."""

    def __init__(self, region: str, address: tuple[str, int], rise: int, fall: int) -> None:
        self.region = region
        self.address = address
        self.rise = rise
        self.fall = fall
        self.healthy = False
        self.checked = False
        self.successes = 0
        self.failures = 0
        self.last_status: int | str | None = None
        self.changed_at = time.time()
        self.lock = threading.Lock()

    def record(self, ok: bool, status: int | str | None, immediate: bool = False) -> None:
        with self.lock:
            self.last_status = status
            if ok:
                self.successes += 1
                self.failures = 0
                if not self.healthy and (self.successes >= self.rise or not self.checked):
                    self.healthy = True
                    self.changed_at = time.time()
            else:
                self.failures += 1
                self.successes = 0
                if self.healthy and (self.failures >= self.fall or immediate):
                    self.healthy = False
                    self.changed_at = time.time()
            self.checked = True

    def describe(self) -> dict[str, Any]:
        return {
            "region": self.region,
            "upstream": f"{self.address[0]}:{self.address[1]}",
            "healthy": self.healthy,
            "last_status": self.last_status,
            "since": round(self.changed_at, 3),
        }


class Front:
    def __init__(
        self,
        upstreams: dict[str, tuple[str, int]],
        topology: Topology,
        *,
        interval: float = 0.5,
        timeout: float = 2.0,
        rise: int = 2,
        fall: int = 2,
        request_timeout: float = 60.0,
    ) -> None:
        self.topology = topology
        self.health = {r: Health(r, upstreams[r], rise, fall) for r in REGIONS}
        self.interval = interval
        self.timeout = timeout
        self.request_timeout = request_timeout
        self.stop = threading.Event()
        self.served: dict[str, int] = dict.fromkeys(REGIONS, 0)

    # ------------------------------------------------------------------ health checks
    def check_forever(self, region: str) -> None:
        health = self.health[region]
        while not self.stop.is_set():
            started = time.monotonic()
            try:
                conn = http.client.HTTPConnection(*health.address, timeout=self.timeout)
                conn.request("GET", "/readyz", headers={"User-Agent": "front-health"})
                status = conn.getresponse().status
                conn.close()
                health.record(status == 200, status)
            except (OSError, http.client.HTTPException) as exc:
                health.record(False, type(exc).__name__)
            self.stop.wait(max(0.0, self.interval - (time.monotonic() - started)))

    def start_checks(self) -> None:
        for region in REGIONS:
            threading.Thread(target=self.check_forever, args=(region,), daemon=True).start()

    # ------------------------------------------------------------------ routing
    def candidates(self, client_region: str) -> list[str]:
        order = self.topology.preference(client_region)
        healthy = [r for r in order if self.health[r].healthy]
        return healthy or [client_region]

    def status(self) -> dict[str, Any]:
        return {
            "regions": [h.describe() for h in self.health.values()],
            "routes": {r: self.candidates(r)[0] for r in REGIONS},
            "served": dict(self.served),
        }


def make_handler(front: Front, port_regions: dict[int, str]) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        server_version = "loyalty-front"
        # Buffer the response so headers and body leave in one segment (with Nagle and
        # delayed ACKs, two small writes cost the client ~40 ms), and never wait to send.
        wbufsize = 256 * 1024
        disable_nagle_algorithm = True

        def log_message(self, format: str, *args: Any) -> None:
            return

        def _client_region(self) -> str | None:
            port = self.server.server_address[1]
            if port in port_regions:
                return port_regions[port]
            region = (self.headers.get("X-Client-Region") or "us").strip().lower()
            return region if region in REGIONS else None

        def _reply(self, status: int, body: dict[str, Any], extra: dict[str, str]) -> None:
            data = json.dumps(body).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            for key, value in extra.items():
                self.send_header(key, value)
            self.end_headers()
            self.wfile.write(data)

        def _handle(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(length) if length else b""
            if self.path.startswith("/_front/status"):
                self._reply(200, front.status(), {})
                return
            client = self._client_region()
            if client is None:
                self._reply(400, {"title": "unknown X-Client-Region"}, {})
                return
            headers = {
                k: v
                for k, v in self.headers.items()
                if k.lower() not in HOP_BY_HOP and k.lower() != "content-length"
            }
            headers["X-Forwarded-For"] = self.client_address[0]
            headers["X-Forwarded-Proto"] = "http"
            headers["X-Client-Region"] = client
            if body:
                headers["Content-Length"] = str(len(body))
            tried: list[str] = []
            for region in front.candidates(client):
                tried.append(region)
                health = front.health[region]
                conn = http.client.HTTPConnection(*health.address, timeout=front.timeout)
                try:
                    conn.connect()
                except OSError as exc:
                    # Nothing was sent: safe to move on, whatever the method.
                    health.record(False, type(exc).__name__, immediate=True)
                    continue
                try:
                    conn.sock.settimeout(front.request_timeout)
                    conn.request(self.command, self.path, body=body or None, headers=headers)
                    response = conn.getresponse()
                    data = response.read()
                except (OSError, http.client.HTTPException) as exc:
                    conn.close()
                    self._reply(
                        502,
                        {"title": "upstream failed", "region": region, "error": str(exc)},
                        {"X-Served-Region": region, "X-Client-Region": client},
                    )
                    return
                conn.close()
                front.served[region] += 1
                self.send_response(response.status, response.reason)
                for key, value in response.getheaders():
                    if key.lower() not in HOP_BY_HOP and key.lower() != "content-length":
                        self.send_header(key, value)
                self.send_header("Content-Length", str(len(data)))
                self.send_header("X-Served-Region", region)
                self.send_header("X-Client-Region", client)
                self.end_headers()
                if self.command != "HEAD":
                    self.wfile.write(data)
                return
            self._reply(
                503,
                {"title": "no region reachable", "tried": tried},
                {"Retry-After": "5", "X-Client-Region": client},
            )

        do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = do_HEAD = do_OPTIONS = _handle

    return Handler


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 256


def parse_upstreams(text: str) -> dict[str, tuple[str, int]]:
    upstreams: dict[str, tuple[str, int]] = {}
    for part in text.split(","):
        region, _, address = part.partition("=")
        host, _, port = address.rpartition(":")
        upstreams[region.strip()] = (host, int(port))
    missing = set(REGIONS) - set(upstreams)
    if missing:
        raise ValueError(f"no upstream for {sorted(missing)}")
    return upstreams


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m labs.regions.front")
    parser.add_argument("--listen", default="127.0.0.1:18100", help="shared port (header)")
    parser.add_argument(
        "--region-ports",
        type=int,
        default=None,
        help="first of three ports, one per region (us, ie, in)",
    )
    parser.add_argument("--upstream", required=True, help="us=host:port,ie=...,in=...")
    parser.add_argument("--rtts", default=None)
    parser.add_argument("--interval", type=float, default=0.5)
    parser.add_argument("--rise", type=int, default=2)
    parser.add_argument("--fall", type=int, default=2)
    args = parser.parse_args(argv)

    topology = Topology(rtts=parse_rtts(args.rtts))
    front = Front(
        parse_upstreams(args.upstream),
        topology,
        interval=args.interval,
        rise=args.rise,
        fall=args.fall,
    )
    host, _, port = args.listen.rpartition(":")
    port_regions: dict[int, str] = {}
    if args.region_ports:
        port_regions = {args.region_ports + i: r for i, r in enumerate(REGIONS)}
    handler = make_handler(front, port_regions)
    servers = [_Server((host, int(port)), handler)]
    servers += [_Server((host, p), handler) for p in port_regions]
    front.start_checks()
    for server in servers:
        threading.Thread(target=server.serve_forever, daemon=True).start()

    def shutdown(_signum: int, _frame: object) -> None:
        front.stop.set()

    for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
        signal.signal(sig, shutdown)
    print(f"front ready on {args.listen} region ports {sorted(port_regions)}", flush=True)
    front.stop.wait()
    for server in servers:
        with contextlib.suppress(OSError):
            server.shutdown()
            server.server_close()
    return 0


def port_free(host: str, port: int) -> bool:
    with socket.socket() as probe:
        try:
            probe.bind((host, port))
        except OSError:
            return False
    return True


if __name__ == "__main__":
    sys.exit(main())
